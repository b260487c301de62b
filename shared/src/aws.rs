//! DynamoDB clients. In Lambda the client takes the function's credentials and region from the
//! environment. Locally it is built from static parts only, so the SDK never walks its default
//! chain (which would end at the EC2 metadata address).

use std::net::IpAddr;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};

/// Timeouts sized for DynamoDB inside a short Lambda invocation: a stuck attempt is abandoned
/// and retried (with the same `ClientRequestToken`) well before API Gateway gives up.
pub(crate) fn cloud_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(1_000))
        .operation_attempt_timeout(Duration::from_millis(1_500))
        .operation_timeout(Duration::from_millis(4_000))
        .build()
}

/// DynamoDB Local on a shared two-core machine answers hundreds of concurrent transactions in
/// seconds, not milliseconds; a timeout there would turn a slow success into an unknown outcome.
pub fn local_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(45))
        .build()
}

/// The SDK's default HTTPS client (hyper 1, rustls on aws-lc), named explicitly so that every
/// client built here, and the local one trusting an extra CA, uses the same TLS stack.
fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    https_client_trusting(None)
}

/// [`https_client`] with the trust store of `tls` when one is given.
fn https_client_trusting(
    tls: Option<aws_smithy_http_client::tls::TlsContext>,
) -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let builder = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
    match tls {
        Some(tls) => builder.tls_context(tls).build_https(),
        None => builder.build_https(),
    }
}

fn retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// The client for the deployed functions: region and credentials read once from the variables
/// Lambda sets for the execution environment (`AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). No provider chain, no profile files: a shorter
/// cold start, and nothing that could reach for the metadata service.
pub(crate) fn lambda_client() -> Result<Client, String> {
    lambda_client_from(|k| std::env::var(k).ok())
}

fn lambda_client_from(get: impl Fn(&str) -> Option<String>) -> Result<Client, String> {
    let (region, credentials) = lambda_identity(get)?;
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials)
        .http_client(https_client())
        .timeout_config(cloud_timeouts())
        .retry_config(retries())
        // No stalled-stream protection (a timer and a body wrapper on every request, ≈0.03 ms of
        // CPU per warm invoke: docs/benchmarks-journal.md, stalled-stream protection): every answer is one small JSON body and
        // the attempt timeout already abandons one that stalls.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    Ok(Client::from_conf(config))
}

/// The region and credentials Lambda sets for the execution environment (`AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), for every client of a
/// deployed function.
fn lambda_identity(get: impl Fn(&str) -> Option<String>) -> Result<(Region, Credentials), String> {
    let var = |k: &str| get(k).ok_or_else(|| format!("{k} is not set (Lambda sets it for every function)"));
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        get("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    Ok((Region::new(var("AWS_REGION")?), credentials))
}

/// The region and static credentials of every local client: `AWS_REGION`, `AWS_ACCESS_KEY_ID`
/// and `AWS_SECRET_ACCESS_KEY` when set, else `us-east-1` and fixed local keys.
fn local_identity() -> (Region, Credentials) {
    let env =
        |k: &str, default: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned());
    let credentials = Credentials::new(
        env("AWS_ACCESS_KEY_ID", "local"),
        env("AWS_SECRET_ACCESS_KEY", "local"),
        None,
        None,
        "flash-sale-local",
    );
    (Region::new(env("AWS_REGION", "us-east-1")), credentials)
}

/// A client from the standard AWS environment (profiles, SSO-exported keys, region), for the
/// operator's CLI and the load generator run against a deployed stage.
pub async fn cloud_client() -> Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(cloud_timeouts())
        .retry_config(retries())
        .load()
        .await;
    Client::new(&shared)
}

/// The variable naming a PEM file with a CA certificate that the local client trusts, besides the
/// system roots, for an `https://` loopback endpoint (a TLS terminator in front of DynamoDB Local,
/// so that benchmarks pay for TLS as the deployed function does). Honoured only together with a
/// loopback `DYNAMODB_ENDPOINT`; the deployed client ([`lambda_client`]) never reads it.
pub const CA_BUNDLE_VAR: &str = "DYNAMODB_CA_BUNDLE";

/// Refuses anything but an `http://` or `https://` URL on a loopback address.
pub fn require_loopback(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| format!("local endpoint `{endpoint}` must start with http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback { Ok(()) } else { Err(format!("local endpoint `{endpoint}` is not a loopback address")) }
}

/// A client for DynamoDB Local: static credentials (from `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` if set, else fixed local ones), the region from `AWS_REGION` or
/// `us-east-1`, and the given loopback endpoint. Refuses any other endpoint. An `https://`
/// endpoint is reached with the SDK's own rustls (aws-lc) client, trusting the system roots plus
/// the CA in `DYNAMODB_CA_BUNDLE` ([`CA_BUNDLE_VAR`]) if set.
pub fn local_client(endpoint: &str) -> Result<Client, String> {
    local_client_with_timeouts(endpoint, local_timeouts())
}

/// [`local_client`] with other timeouts (fault-injection tests use cloud-like ones).
pub fn local_client_with_timeouts(endpoint: &str, timeouts: TimeoutConfig) -> Result<Client, String> {
    Ok(Client::from_conf(local_config(endpoint, timeouts)?.build()))
}

/// The configuration behind [`local_client`], for callers that change one more part of it
/// (the benchmarks swap the HTTP client). Refuses a non-loopback endpoint.
pub fn local_config(endpoint: &str, timeouts: TimeoutConfig) -> Result<aws_sdk_dynamodb::config::Builder, String> {
    require_loopback(endpoint)?;
    let ca_bundle = std::env::var(CA_BUNDLE_VAR).ok().filter(|v| !v.is_empty());
    let (region, credentials) = local_identity();
    let mut builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .timeout_config(timeouts)
        .retry_config(retries())
        // As the deployed client (lambda_client_from).
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    builder = builder.http_client(local_tls_client(endpoint, ca_bundle.as_deref())?.unwrap_or_else(https_client));
    Ok(builder)
}

/// The HTTPS client for an `https://` loopback endpoint with an extra CA: the SDK's default
/// client (rustls on aws-lc, system roots) with the CA from `ca_bundle` added to its trust store,
/// so a local TLS endpoint costs what the deployed client's first connection costs. `None` (the
/// SDK's default client) when no CA is given; an error for a CA with a plain `http://` endpoint
/// or a file without a PEM certificate.
fn local_tls_client(
    endpoint: &str,
    ca_bundle: Option<&str>,
) -> Result<Option<aws_sdk_dynamodb::config::SharedHttpClient>, String> {
    use aws_smithy_http_client::tls::{TlsContext, TrustStore};
    let Some(path) = ca_bundle else { return Ok(None) };
    if !endpoint.starts_with("https://") {
        return Err(format!("{CA_BUNDLE_VAR} is set but the endpoint `{endpoint}` is not https://"));
    }
    let pem = std::fs::read(path).map_err(|e| format!("{CA_BUNDLE_VAR} `{path}`: {e}"))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{CA_BUNDLE_VAR} `{path}` holds no PEM certificate"));
    }
    let trust = TrustStore::default().with_pem_certificate(pem);
    let tls = TlsContext::builder().with_trust_store(trust).build().map_err(|e| format!("{CA_BUNDLE_VAR}: {e}"))?;
    Ok(Some(https_client_trusting(Some(tls))))
}

/// The Secrets Manager client of a Lambda binary that reads its admission key from a secret:
/// the Lambda environment's region and credentials, as [`lambda_client`]; or, with
/// `endpoint` (`SECRETS_MANAGER_ENDPOINT`, loopback only: tests and the local stack), static
/// local credentials.
pub fn secrets_client(endpoint: Option<&str>) -> Result<aws_sdk_secretsmanager::Client, String> {
    let builder = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(cloud_timeouts())
        .retry_config(retries());
    let builder = match endpoint {
        Some(endpoint) => {
            require_loopback(endpoint)?;
            let (region, credentials) = local_identity();
            builder.endpoint_url(endpoint).region(region).credentials_provider(credentials)
        }
        None => {
            let (region, credentials) = lambda_identity(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))?;
            builder.region(region).credentials_provider(credentials)
        }
    };
    Ok(aws_sdk_secretsmanager::Client::from_conf(builder.build()))
}

/// The client a Lambda binary uses: local when `DYNAMODB_ENDPOINT` is configured, the Lambda
/// environment's otherwise.
pub(crate) fn client_for(endpoint: Option<&str>) -> Result<Client, String> {
    match endpoint {
        Some(e) => local_client(e).map_err(|e| format!("DYNAMODB_ENDPOINT {e}")),
        None => lambda_client(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lambda_client_comes_from_the_environment_or_names_what_is_missing() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let err = lambda_client_from(env(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")])).unwrap_err();
        assert!(err.contains("AWS_REGION"), "{err}");
        let client = lambda_client_from(env(&[
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(client.config().region().map(|r| r.as_ref()), Some("eu-west-1"));
    }

    #[test]
    fn only_loopback_endpoints_are_local() {
        for ok in [
            "http://127.0.0.1:8000",
            "http://localhost:8000/",
            "http://[::1]:8000",
            "http://127.0.0.2",
            "https://127.0.0.1:8443",
            "https://localhost:8443",
        ] {
            assert!(require_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://169.254.169.254",
            "http://10.0.0.1:8000",
            "http://127.0.0.1.example.com:8000",
            "https://127.0.0.1.example.com:8443",
            "https://10.0.0.1:8443",
            "127.0.0.1:8000",
            "ftp://127.0.0.1:8000",
        ] {
            assert!(require_loopback(bad).is_err(), "{bad}");
        }
    }

    /// A throwaway self-signed CA certificate (its key was never kept).
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBkDCCATWgAwIBAgIUfpoA+cHhepgGB2DW9UU0UcejcHAwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSZmxhc2gtc2FsZSB0ZXN0IENBMB4XDTI2MTEyNjAxMjIxMloX
DTM2MTEyMzAxMjIxMlowHTEbMBkGA1UEAwwSZmxhc2gtc2FsZSB0ZXN0IENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAmDSfi2Xd3tUUFuAOuC0kuarcaggrP+J
VG5ol5dkmYZ3AoKl4rSybr8iBsPd6WD7OhIttaERwEEF0n9LXPdtCKNTMFEwHQYD
VR0OBBYEFDlvopXNBzr4raSFi0bDX6lRwOB5MB8GA1UdIwQYMBaAFDlvopXNBzr4
raSFi0bDX6lRwOB5MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIh
AK/JhZSe3Mz8zNuYp1yKojsRsDFVVDbnsa5RZH8p0sqxAiEA4oc4TVDJu2QpET4C
IH6ivnlI8JTcIlYWi5M2szDlWoc=
-----END CERTIFICATE-----
";

    #[test]
    fn an_extra_ca_is_taken_only_for_https_and_only_from_a_pem_file() {
        assert!(local_tls_client("https://127.0.0.1:8443", None).unwrap().is_none(), "no CA: the SDK's default");
        let dir = std::env::temp_dir().join(format!("flash-sale-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let not_pem = not_pem.to_str().unwrap();
        let err = local_tls_client("http://127.0.0.1:8000", Some(not_pem)).unwrap_err();
        assert!(err.contains("not https://"), "{err}");
        let err = local_tls_client("https://127.0.0.1:8443", Some(not_pem)).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, TEST_CA).unwrap();
        assert!(local_tls_client("https://127.0.0.1:8443", Some(ca.to_str().unwrap())).unwrap().is_some());
        let missing = dir.join("missing.pem");
        assert!(local_tls_client("https://127.0.0.1:8443", Some(missing.to_str().unwrap())).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_extra_ca_never_reaches_a_non_loopback_endpoint() {
        // `local_config` checks the endpoint before it reads the CA; the deployed client reads neither.
        let err = local_config("https://dynamodb.us-east-1.amazonaws.com", local_timeouts()).unwrap_err();
        assert!(err.contains("not a loopback"), "{err}");
    }
}
