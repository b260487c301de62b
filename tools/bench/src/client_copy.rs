//! A copy of `flash_sale::aws::local_client` with its HTTP client chosen by the caller (shared by
//! `client-init` and the `purchase-variant` binary).

use std::time::Duration;

use anyhow::{Result, anyhow};

/// A copy of `flash_sale::aws::local_client` with one change: the HTTP client is set on the
/// config builder, so the SDK never builds its default HTTPS client (and never loads the system
/// certificate store). Same loopback check, static credentials, region, timeouts and retries.
pub fn local_client_with_http(endpoint: &str, http: aws_sdk_dynamodb::config::SharedHttpClient) -> Result<aws_sdk_dynamodb::Client> {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    flash_sale::aws::require_loopback(endpoint).map_err(|m| anyhow!(m))?;
    let env = |k: &str, default: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned());
    let credentials = Credentials::new(
        env("AWS_ACCESS_KEY_ID", "local"),
        env("AWS_SECRET_ACCESS_KEY", "local"),
        None,
        None,
        "flash-sale-local",
    );
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(45))
        .build();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env("AWS_REGION", "us-east-1")))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .http_client(http)
        .build();
    Ok(aws_sdk_dynamodb::Client::from_conf(config))
}
