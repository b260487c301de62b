//! The local DynamoDB client with its HTTP client chosen by the caller (shared by `client-init`
//! and the `purchase-variant` binary).

use anyhow::{Result, anyhow};

/// `flash_sale::aws::local_client` with one change: the HTTP client is set on the config, so the
/// SDK never builds its default HTTPS client (and never loads the system certificate store).
pub fn local_client_with_http(endpoint: &str, http: aws_sdk_dynamodb::config::SharedHttpClient) -> Result<aws_sdk_dynamodb::Client> {
    let config = flash_sale::aws::local_config(endpoint, flash_sale::aws::local_timeouts()).map_err(|m| anyhow!(m))?;
    Ok(aws_sdk_dynamodb::Client::from_conf(config.http_client(http).build()))
}
