//! The one hot call, the purchase's `TransactWriteItems`, sent without the SDK's orchestrator.
//!
//! Every other call goes through the SDK. This one decides every sale and runs on every purchase,
//! and the SDK's per-call machinery (runtime plugins, interceptors, config bag, identity and
//! endpoint resolution, retry classifiers) costs about as much client CPU as the whole rest of a
//! warm invoke (BENCHMARKS.md section 4f). Here the request is built with `serde_json`, signed
//! with `aws-sigv4` and sent through the SDK's own HTTP connector, so TLS, the connection pool,
//! the connect timeout and any test or benchmark HTTP client stay exactly the SDK's.
//!
//! What the SDK gives every call is kept, taken from the same client's configuration:
//! - the endpoint, resolved once by the SDK itself (a request built and stopped before it is sent);
//! - credentials from the client's own SigV4 identity resolver, found the same way, and kept
//!   until five minutes before they expire;
//! - the attempt and operation timeouts;
//! - the standard retry rule: at most `max_attempts` attempts for transient failures (timeouts,
//!   I/O errors, HTTP 500/502/503/504, the SDK's throttling and transient error codes), with
//!   exponential backoff and full jitter, the throttling base for throttling errors and the
//!   non-throttling base for the others. Every attempt carries the same `ClientRequestToken`, so a
//!   transaction whose answer was lost is not applied twice.
//!
//! Not kept: the SDK's client-wide retry quota (a token bucket that stops retries when many fail)
//! and clock-skew correction. A Lambda environment serves one invocation at a time and its clock
//! is synchronised, and the operation timeout still bounds every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::auth::AuthSchemeId;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::{Identity, ResolveIdentity, SharedIdentityResolver};
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::GetIdentityResolver;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use super::StoreError;

/// The error codes the SDK's standard retry rule treats as throttling (`aws-runtime`'s
/// `THROTTLING_ERRORS`) and as transient (`TRANSIENT_ERRORS`).
const THROTTLING_ERRORS: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];
const TRANSIENT_ERRORS: &[&str] = &["RequestTimeout", "RequestTimeoutException"];
const TRANSIENT_STATUS: &[u16] = &[500, 502, 503, 504];

/// Credentials are fetched again this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// What DynamoDB answered to a `TransactWriteItems`.
#[derive(Debug)]
pub(super) enum TxAnswer {
    Committed,
    /// `TransactionCanceledException`, with its reasons in transaction item order.
    Cancelled(Vec<CancellationReason>),
    /// `TransactionInProgressException` after the last attempt: the same token is still running.
    InProgress,
}

/// The lean sender, built once per store from its SDK client.
pub(super) struct Direct {
    connector: SharedHttpConnector,
    url: String,
    host: String,
    region: String,
    /// The client's SigV4 identity resolver (its credentials provider) and the components it
    /// was found in, as the SDK would call it.
    resolver: SharedIdentityResolver,
    components: RuntimeComponents,
    identity: Mutex<Option<Identity>>,
    max_attempts: u32,
    throttling_backoff: Duration,
    transient_backoff: Duration,
    max_backoff: Duration,
    attempt_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").field("url", &self.url).field("region", &self.region).finish_non_exhaustive()
    }
}

/// One failed attempt, and whether the standard rule retries it.
struct Failure {
    kind: FailureKind,
    message: String,
    /// `TransactionInProgressException`: retried as throttling, an answer of its own at the end.
    in_progress: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    Throttling,
    Transient,
    Final,
}

impl Direct {
    /// Takes everything from `client`'s configuration; the endpoint is the one the SDK resolves
    /// for it (endpoint URL, region, partition).
    pub(super) async fn from_client(client: &Client) -> Result<Self, String> {
        let config = client.config();
        let region = config.region().ok_or("the DynamoDB client has no region")?.to_string();
        let seen = resolved(client).await?;
        let url = seen.uri;
        let uri: http::Uri = url.parse().map_err(|e| format!("endpoint `{url}`: {e}"))?;
        let host = uri.authority().ok_or_else(|| format!("endpoint `{url}` has no host"))?.to_string();
        let url = format!("{}/", url.trim_end_matches('/'));
        // `flash_sale::aws` sets the HTTP client on every client it builds; for any other client
        // this path gets a default one of its own (a pool of its own).
        let http = config.http_client().unwrap_or_else(crate::aws::https_client);
        let timeouts =
            config.timeout_config().cloned().unwrap_or_else(aws_smithy_types::timeout::TimeoutConfig::disabled);
        let mut settings = HttpConnectorSettings::builder();
        settings.set_connect_timeout(timeouts.connect_timeout());
        settings.set_read_timeout(timeouts.read_timeout());
        let components = connector_components(config)?;
        // The same settings as the SDK's own calls: the HTTP client hands out the same cached
        // connector, so both share one connection pool and one TLS configuration.
        let connector =
            aws_smithy_runtime_api::client::http::HttpClient::http_connector(&http, &settings.build(), &components);
        let retry = config.retry_config().cloned().unwrap_or_else(aws_smithy_types::retry::RetryConfig::standard);
        let throttling_backoff = retry.initial_backoff();
        Ok(Self {
            connector,
            url,
            host,
            region,
            resolver: seen.resolver,
            components: seen.components,
            identity: Mutex::new(None),
            max_attempts: retry.max_attempts().max(1),
            throttling_backoff,
            transient_backoff: retry.retry_spec().map_or(throttling_backoff, |s| s.non_throttling_initial_backoff()),
            max_backoff: retry.max_backoff(),
            attempt_timeout: timeouts.operation_attempt_timeout(),
            operation_timeout: timeouts.operation_timeout(),
        })
    }

    /// Sends one `TransactWriteItems` with the standard retry rule, within the operation timeout.
    pub(super) async fn transact_write_items(&self, request: &TransactWrite<'_>) -> Result<TxAnswer, StoreError> {
        let body =
            serde_json::to_vec(request).map_err(|e| StoreError::Unavailable(format!("TransactWriteItems: {e}")))?;
        let body = bytes_body(body);
        let all = self.with_retries(&body);
        match self.operation_timeout {
            Some(limit) => tokio::time::timeout(limit, all).await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!("TransactWriteItems: operation timed out after {limit:?}")))
            }),
            None => all.await,
        }
    }

    async fn with_retries(&self, body: &bytes::Bytes) -> Result<TxAnswer, StoreError> {
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(body).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            if failure.kind == FailureKind::Final || attempt >= self.max_attempts {
                return if failure.in_progress { Ok(TxAnswer::InProgress) } else { Err(failure.into_error()) };
            }
            let base =
                if failure.kind == FailureKind::Throttling { self.throttling_backoff } else { self.transient_backoff };
            let backoff = base.saturating_mul(1 << (attempt - 1).min(16)).min(self.max_backoff);
            tokio::time::sleep(backoff.mul_f64(fastrand::f64())).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, body: &bytes::Bytes) -> Result<TxAnswer, Failure> {
        let request = self.signed(body).await?;
        let exchange = async {
            let response = self.connector.call(request).await.map_err(|e| Failure {
                kind: if e.is_timeout() || e.is_io() { FailureKind::Transient } else { FailureKind::Final },
                message: format!("TransactWriteItems: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)),
                in_progress: false,
            })?;
            let status = response.status().as_u16();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .map_err(|e| Failure {
                    kind: FailureKind::Transient,
                    message: format!("TransactWriteItems: reading the answer: {e}"),
                    in_progress: false,
                })?
                .to_bytes();
            Ok((status, body))
        };
        let (status, body) = match self.attempt_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange).await.unwrap_or_else(|_| {
                Err(Failure {
                    kind: FailureKind::Transient,
                    message: format!("TransactWriteItems: attempt timed out after {limit:?}"),
                    in_progress: false,
                })
            })?,
            None => exchange.await?,
        };
        answer(status, &body)
    }

    async fn signed(&self, body: &bytes::Bytes) -> Result<HttpRequest, Failure> {
        let final_failure = |message: String| Failure { kind: FailureKind::Final, message, in_progress: false };
        let identity = self.identity().await.map_err(final_failure)?;
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "DynamoDB_20120810.TransactWriteItems"),
            ("host", self.host.as_str()),
        ];
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("dynamodb")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| final_failure(format!("signing: {e}")))?
            .into();
        let signable = SignableRequest::new("POST", &self.url, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| final_failure(format!("signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| final_failure(format!("signing: {e}")))?.into_parts();
        let mut request = http::Request::builder().method("POST").uri(&self.url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut request = request
            .header("content-length", body.len())
            .header("user-agent", concat!("flash-sale/", env!("CARGO_PKG_VERSION")))
            .body(SdkBody::from(body.clone()))
            .map_err(|e| final_failure(format!("request: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        HttpRequest::try_from(request).map_err(|e| final_failure(format!("request: {e}")))
    }

    /// The client's credentials as a signing identity, fetched again near their expiry.
    async fn identity(&self) -> Result<Identity, String> {
        let fresh =
            |identity: &Identity| identity.expiration().is_none_or(|at| at > SystemTime::now() + CREDENTIALS_MARGIN);
        if let Some(identity) = self.identity.lock().unwrap_or_else(|p| p.into_inner()).as_ref().filter(|i| fresh(i)) {
            return Ok(identity.clone());
        }
        let bag = ConfigBag::base();
        let identity =
            self.resolver.resolve_identity(&self.components, &bag).await.map_err(|e| format!("credentials: {e}"))?;
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = Some(identity.clone());
        Ok(identity)
    }
}

impl Failure {
    fn into_error(self) -> StoreError {
        match self.kind {
            FailureKind::Throttling => StoreError::Throttled(self.message),
            _ => StoreError::Unavailable(self.message),
        }
    }
}

fn bytes_body(body: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from(body)
}

/// Reads DynamoDB's answer: 200 is a commit; a 400 carries an error whose code decides.
fn answer(status: u16, body: &[u8]) -> Result<TxAnswer, Failure> {
    if status == 200 {
        return Ok(TxAnswer::Committed);
    }
    let error: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = error.kind.as_deref().map(|t| t.rsplit('#').next().unwrap_or(t)).unwrap_or_default();
    let message = error.message.as_deref().unwrap_or_default();
    if code == "TransactionCanceledException" {
        let reasons =
            error.reasons.into_iter().map(WireReason::into_sdk).collect::<Result<_, _>>().map_err(|e| Failure {
                kind: FailureKind::Final,
                message: format!("TransactionCanceledException with an unreadable item: {e}"),
                in_progress: false,
            })?;
        return Ok(TxAnswer::Cancelled(reasons));
    }
    let kind = if THROTTLING_ERRORS.contains(&code) {
        FailureKind::Throttling
    } else if TRANSIENT_ERRORS.contains(&code) || TRANSIENT_STATUS.contains(&status) {
        FailureKind::Transient
    } else {
        FailureKind::Final
    };
    Err(Failure {
        kind,
        message: format!("TransactWriteItems: HTTP {status} {code}: {message}"),
        in_progress: code == "TransactionInProgressException",
    })
}

/// What the SDK resolves for a call of this client: its endpoint and its SigV4 identity resolver.
struct Seen {
    uri: String,
    resolver: SharedIdentityResolver,
    components: RuntimeComponents,
}

/// Learns what the SDK would resolve for this client's calls without sending anything: a
/// `ListTables` is built and signed, and stopped before transmission.
async fn resolved(client: &Client) -> Result<Seen, String> {
    let seen = Arc::new(Mutex::new(None));
    let _stopped = client.list_tables().limit(1).customize().interceptor(StopBeforeSend(seen.clone())).send().await;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
    seen.ok_or_else(|| "the SDK resolved no DynamoDB endpoint or SigV4 credentials for this client".to_owned())
}

#[derive(Debug)]
struct StopBeforeSend(Arc<Mutex<Option<Seen>>>);

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen").field("uri", &self.uri).finish_non_exhaustive()
    }
}

impl Intercept for StopBeforeSend {
    fn name(&self) -> &'static str {
        "StopBeforeSend"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        components: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let uri = context.request().uri();
        let uri = uri.split('?').next().unwrap_or(uri).to_owned();
        let resolver = components.identity_resolver(AuthSchemeId::new("sigv4"));
        if let Some(resolver) = resolver {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Seen { uri, resolver, components: components.clone() });
        }
        Err("endpoint and credentials read; the request is not sent".into())
    }
}

/// The components an HTTP connector reads (its sleep and time sources for the connect timeout);
/// the rest are required fillers for a client that never resolves identities or endpoints.
fn connector_components(config: &aws_sdk_dynamodb::Config) -> Result<RuntimeComponents, String> {
    use aws_smithy_runtime::client::auth::no_auth::{NO_AUTH_SCHEME_ID, NoAuthScheme};
    use aws_smithy_runtime::client::identity::IdentityCache;
    use aws_smithy_runtime::client::identity::no_auth::NoAuthIdentityResolver;
    use aws_smithy_runtime::client::orchestrator::endpoints::StaticUriEndpointResolver;
    use aws_smithy_runtime::client::retries::strategy::NeverRetryStrategy;
    use aws_smithy_runtime_api::client::auth::static_resolver::StaticAuthSchemeOptionResolver;
    RuntimeComponentsBuilder::new("flash-sale-direct")
        .with_auth_scheme_option_resolver(Some(StaticAuthSchemeOptionResolver::new(vec![NO_AUTH_SCHEME_ID])))
        .with_auth_scheme(NoAuthScheme::new())
        .with_identity_cache(Some(IdentityCache::no_cache()))
        .with_identity_resolver(NO_AUTH_SCHEME_ID, NoAuthIdentityResolver::new())
        .with_endpoint_resolver(Some(StaticUriEndpointResolver::uri("http://127.0.0.1")))
        .with_retry_strategy(Some(NeverRetryStrategy::new()))
        .with_sleep_impl(config.sleep_impl())
        .with_time_source(config.time_source())
        .build()
        .map_err(|e| format!("HTTP connector components: {e}"))
}

// ---- The request and answer on the wire (DynamoDB's JSON protocol, `x-amz-json-1.0`) ----

/// `TransactWriteItems`'s request.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TransactWrite<'a> {
    pub transact_items: Vec<TxItem<'a>>,
    pub client_request_token: &'a str,
}

#[derive(Serialize)]
pub(super) enum TxItem<'a> {
    Update(Write<'a>),
    Put(Write<'a>),
}

/// An `Update` (with `key` and `update_expression`) or a `Put` (with `item`).
#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Write<'a> {
    pub table_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "wire_item")]
    pub key: Option<&'a HashMap<String, AttributeValue>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "wire_item")]
    pub item: Option<&'a HashMap<String, AttributeValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_expression: Option<&'a str>,
    pub condition_expression: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "pairs")]
    pub expression_attribute_names: &'a [(&'a str, &'a str)],
    #[serde(serialize_with = "wire_values")]
    pub expression_attribute_values: &'a [(&'a str, AttributeValue)],
    /// `ALL_OLD`: a failed condition returns the item as it was.
    pub return_values_on_condition_check_failure: &'static str,
}

fn wire_item<S: Serializer>(item: &Option<&HashMap<String, AttributeValue>>, s: S) -> Result<S::Ok, S::Error> {
    let item = item.expect("skipped when absent");
    let mut map = s.serialize_map(Some(item.len()))?;
    for (name, value) in item {
        map.serialize_entry(name, &Wire(value))?;
    }
    map.end()
}

fn wire_values<S: Serializer>(values: &&[(&str, AttributeValue)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(values.len()))?;
    for (name, value) in values.iter() {
        map.serialize_entry(name, &Wire(value))?;
    }
    map.end()
}

fn pairs<S: Serializer>(pairs: &&[(&str, &str)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (name, value) in pairs.iter() {
        map.serialize_entry(name, value)?;
    }
    map.end()
}

/// An attribute value in DynamoDB's JSON form (`{"S": "..."}`, `{"N": "1"}`, ...).
struct Wire<'a>(&'a AttributeValue);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b64 = |b: &aws_smithy_types::Blob| base64::engine::general_purpose::STANDARD.encode(b.as_ref());
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            AttributeValue::S(v) => map.serialize_entry("S", v)?,
            AttributeValue::N(v) => map.serialize_entry("N", v)?,
            AttributeValue::Bool(v) => map.serialize_entry("BOOL", v)?,
            AttributeValue::Null(v) => map.serialize_entry("NULL", v)?,
            AttributeValue::B(v) => map.serialize_entry("B", &b64(v))?,
            AttributeValue::Ss(v) => map.serialize_entry("SS", v)?,
            AttributeValue::Ns(v) => map.serialize_entry("NS", v)?,
            AttributeValue::Bs(v) => map.serialize_entry("BS", &v.iter().map(b64).collect::<Vec<_>>())?,
            AttributeValue::L(v) => map.serialize_entry("L", &WireList(v))?,
            AttributeValue::M(v) => map.serialize_entry("M", &WireMap(v))?,
            other => return Err(serde::ser::Error::custom(format!("attribute value {other:?} has no wire form here"))),
        }
        map.end()
    }
}

struct WireList<'a>(&'a [AttributeValue]);

impl Serialize for WireList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&Wire(v))?;
        }
        seq.end()
    }
}

struct WireMap<'a>(&'a HashMap<String, AttributeValue>);

impl Serialize for WireMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire_item(&Some(self.0), s)
    }
}

/// An error answer: `__type` (`com.amazonaws.dynamodb.v20120810#Code`), the message, and for a
/// cancelled transaction its reasons.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
    #[serde(rename = "CancellationReasons", default)]
    reasons: Vec<WireReason>,
}

#[derive(Deserialize)]
struct WireReason {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "Item")]
    item: Option<HashMap<String, WireValue>>,
}

impl WireReason {
    fn into_sdk(self) -> Result<CancellationReason, String> {
        let item = self
            .item
            .map(|item| {
                item.into_iter().map(|(k, v)| Ok((k, v.into_sdk()?))).collect::<Result<HashMap<_, _>, String>>()
            })
            .transpose()?;
        Ok(CancellationReason::builder().set_code(self.code).set_message(self.message).set_item(item).build())
    }
}

/// An attribute value as DynamoDB sends it.
#[derive(Deserialize)]
enum WireValue {
    S(String),
    N(String),
    #[serde(rename = "BOOL")]
    Bool(bool),
    #[serde(rename = "NULL")]
    Null(bool),
    B(String),
    #[serde(rename = "SS")]
    Ss(Vec<String>),
    #[serde(rename = "NS")]
    Ns(Vec<String>),
    #[serde(rename = "BS")]
    Bs(Vec<String>),
    L(Vec<WireValue>),
    M(HashMap<String, WireValue>),
}

impl WireValue {
    fn into_sdk(self) -> Result<AttributeValue, String> {
        let blob = |b: String| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(aws_smithy_types::Blob::new)
                .map_err(|e| format!("binary attribute: {e}"))
        };
        Ok(match self {
            WireValue::S(v) => AttributeValue::S(v),
            WireValue::N(v) => AttributeValue::N(v),
            WireValue::Bool(v) => AttributeValue::Bool(v),
            WireValue::Null(v) => AttributeValue::Null(v),
            WireValue::B(v) => AttributeValue::B(blob(v)?),
            WireValue::Ss(v) => AttributeValue::Ss(v),
            WireValue::Ns(v) => AttributeValue::Ns(v),
            WireValue::Bs(v) => AttributeValue::Bs(v.into_iter().map(blob).collect::<Result<_, _>>()?),
            WireValue::L(v) => AttributeValue::L(v.into_iter().map(WireValue::into_sdk).collect::<Result<_, _>>()?),
            WireValue::M(v) => {
                AttributeValue::M(v.into_iter().map(|(k, v)| Ok((k, v.into_sdk()?))).collect::<Result<_, String>>()?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorFuture, SharedHttpClient};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_runtime_api::shared::IntoShared;
    use serde_json::{Value, json};

    use super::*;

    /// A stand-in for DynamoDB's HTTP answers, for what DynamoDB Local cannot be made to answer
    /// on cue (the fault proxy covers the same faults against the real thing in `tests/faults.rs`).
    /// Answers from a script (`None`: never answers) and keeps every request it was sent.
    #[derive(Debug, Clone, Default)]
    struct FakeDynamoDbAnswers {
        script: Arc<Mutex<VecDeque<Option<Answer>>>>,
        sent: Arc<Mutex<Vec<Sent>>>,
    }

    /// A status and a body.
    type Answer = (u16, String);

    /// A request as sent: its URI, headers and JSON body.
    type Sent = (String, Vec<(String, String)>, Value);

    impl FakeDynamoDbAnswers {
        fn new(script: impl IntoIterator<Item = Option<(u16, &'static str)>>) -> Self {
            let script = script.into_iter().map(|a| a.map(|(s, b)| (s, b.to_owned()))).collect();
            Self { script: Arc::new(Mutex::new(script)), sent: Default::default() }
        }

        fn sent(&self) -> Vec<Sent> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl HttpConnector for FakeDynamoDbAnswers {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let headers = request.headers().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            let body = serde_json::from_slice(request.body().bytes().unwrap_or_default()).unwrap_or(Value::Null);
            self.sent.lock().unwrap().push((request.uri().to_owned(), headers, body));
            let next = self.script.lock().unwrap().pop_front().expect("the script has an answer for every request");
            match next {
                Some((status, body)) => {
                    let mut response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
                    response.headers_mut().insert("content-type", "application/x-amz-json-1.0");
                    HttpConnectorFuture::ready(Ok(response))
                }
                None => HttpConnectorFuture::new(std::future::pending()),
            }
        }
    }

    impl HttpClient for FakeDynamoDbAnswers {
        fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
            self.clone().into_shared()
        }
    }

    /// A client configured like the deployed one (region, session credentials, no endpoint URL)
    /// or like a local one (`endpoint`), answered by `fake`, with millisecond backoffs.
    fn client(fake: &FakeDynamoDbAnswers, endpoint: Option<&str>) -> Client {
        let http: SharedHttpClient = fake.clone().into_shared();
        let mut config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", Some("SESSION".into()), None, "test"))
            .http_client(http)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1))
                    .with_max_backoff(Duration::from_millis(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(100))
                    .operation_timeout(Duration::from_secs(5))
                    .build(),
            );
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint);
        }
        Client::from_conf(config.build())
    }

    fn key() -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".into(), AttributeValue::S("SALE#s#STOCK#0".into())),
            ("sk".into(), AttributeValue::S("STOCK".into())),
        ])
    }

    async fn send(client: &Client) -> Result<TxAnswer, StoreError> {
        let direct = Direct::from_client(client).await.expect("sender");
        let key = key();
        let values = [(":one", AttributeValue::N("1".into()))];
        let request = TransactWrite {
            transact_items: vec![TxItem::Update(Write {
                table_name: "t",
                key: Some(&key),
                update_expression: Some("SET remaining = remaining - :one"),
                condition_expression: "remaining > :one",
                expression_attribute_values: &values,
                return_values_on_condition_check_failure: "ALL_OLD",
                ..Write::default()
            })],
            client_request_token: "token-1",
        };
        direct.transact_write_items(&request).await
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or_default()
    }

    #[tokio::test]
    async fn the_transaction_goes_signed_to_the_endpoint_the_sdk_resolves_for_the_client() {
        let fake = FakeDynamoDbAnswers::new([Some((200, "{}"))]);
        assert!(matches!(send(&client(&fake, None)).await, Ok(TxAnswer::Committed)));
        let sent = fake.sent();
        assert_eq!(sent.len(), 1, "one request, and nothing sent while the endpoint was resolved");
        let (uri, headers, body) = &sent[0];
        assert_eq!(uri, "https://dynamodb.eu-west-1.amazonaws.com/");
        assert_eq!(header(headers, "x-amz-target"), "DynamoDB_20120810.TransactWriteItems");
        assert_eq!(header(headers, "content-type"), "application/x-amz-json-1.0");
        assert_eq!(header(headers, "x-amz-security-token"), "SESSION");
        let auth = header(headers, "authorization");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/"), "{auth}");
        assert!(auth.contains("/eu-west-1/dynamodb/aws4_request"), "{auth}");
        assert!(auth.contains("x-amz-security-token") && auth.contains("x-amz-target"), "{auth}");
        assert_eq!(
            body,
            &json!({
                "TransactItems": [{"Update": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "SALE#s#STOCK#0"}, "sk": {"S": "STOCK"}},
                    "UpdateExpression": "SET remaining = remaining - :one",
                    "ConditionExpression": "remaining > :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
                }}],
                "ClientRequestToken": "token-1"
            })
        );

        let local = FakeDynamoDbAnswers::new([Some((200, "{}"))]);
        assert!(matches!(send(&client(&local, Some("http://127.0.0.1:8000"))).await, Ok(TxAnswer::Committed)));
        assert_eq!(local.sent()[0].0, "http://127.0.0.1:8000/");
    }

    #[tokio::test]
    async fn transient_failures_are_retried_with_the_same_request_until_an_answer() {
        let fake = FakeDynamoDbAnswers::new([
            Some((500, r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"x"}"#)),
            None,
            Some((200, "{}")),
        ]);
        assert!(matches!(send(&client(&fake, None)).await, Ok(TxAnswer::Committed)));
        let sent = fake.sent();
        assert_eq!(sent.len(), 3, "a 500 and an attempt that timed out were retried");
        assert!(sent.iter().all(|(_, _, body)| body == &sent[0].2), "every attempt carries the same token");
    }

    #[tokio::test]
    async fn the_attempts_are_bounded_and_the_last_failure_decides() {
        let throttled = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#;
        let fake = FakeDynamoDbAnswers::new([Some((400, throttled)); 3]);
        assert!(matches!(send(&client(&fake, None)).await, Err(StoreError::Throttled(_))));
        assert_eq!(fake.sent().len(), 3);

        let busy = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionInProgressException","Message":"busy"}"#;
        let fake = FakeDynamoDbAnswers::new([Some((400, busy)); 3]);
        assert!(matches!(send(&client(&fake, None)).await, Ok(TxAnswer::InProgress)));
        assert_eq!(fake.sent().len(), 3);

        let silent = FakeDynamoDbAnswers::new([None, None, None]);
        let err = send(&client(&silent, None)).await.unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("timed out")), "{err}");
        assert_eq!(silent.sent().len(), 3);

        for (status, body) in [
            (400, r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad"}"#),
            (403, r#"{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"no"}"#),
            (400, "<html>not json</html>"),
        ] {
            let fake = FakeDynamoDbAnswers::new([Some((status, body))]);
            let err = send(&client(&fake, None)).await.unwrap_err();
            assert!(matches!(&err, StoreError::Unavailable(_)), "{err}");
            assert_eq!(fake.sent().len(), 1, "{body} is not retried");
        }
    }

    #[tokio::test]
    async fn a_cancelled_transaction_carries_its_reasons_and_old_items_in_order() {
        let cancelled = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None]",
            "CancellationReasons":[
                {"Code":"ConditionalCheckFailed","Message":"The conditional request failed",
                 "Item":{"pk":{"S":"SALE#s#STOCK#0"},"remaining":{"N":"0"},"open":{"BOOL":true}}},
                {"Code":"None"}]}"#;
        let fake = FakeDynamoDbAnswers::new([Some((400, cancelled))]);
        let Ok(TxAnswer::Cancelled(reasons)) = send(&client(&fake, None)).await else { panic!("not cancelled") };
        assert_eq!(fake.sent().len(), 1, "a cancellation is an answer, not retried");
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons[0].code(), Some("ConditionalCheckFailed"));
        let item = reasons[0].item().expect("old item");
        assert_eq!(item.get("remaining"), Some(&AttributeValue::N("0".into())));
        assert_eq!(item.get("open"), Some(&AttributeValue::Bool(true)));
        assert_eq!(reasons[1].code(), Some("None"));
        assert!(reasons[1].item().is_none());
    }

    #[test]
    fn every_attribute_value_kind_survives_the_wire_both_ways() {
        let blob = |b: &[u8]| aws_smithy_types::Blob::new(b.to_vec());
        let values = [
            AttributeValue::S("é\"x".into()),
            AttributeValue::N("-1.5".into()),
            AttributeValue::Bool(false),
            AttributeValue::Null(true),
            AttributeValue::B(blob(b"\0\xffbytes")),
            AttributeValue::Ss(vec!["a".into(), "b".into()]),
            AttributeValue::Ns(vec!["1".into(), "2".into()]),
            AttributeValue::Bs(vec![blob(b"x"), blob(b"")]),
            AttributeValue::L(vec![AttributeValue::S("in".into()), AttributeValue::N("3".into())]),
            AttributeValue::M(HashMap::from([("k".into(), AttributeValue::L(vec![AttributeValue::Bool(true)]))])),
        ];
        for value in values {
            let json = serde_json::to_string(&Wire(&value)).unwrap();
            let back: WireValue = serde_json::from_str(&json).unwrap();
            assert_eq!(back.into_sdk().unwrap(), value, "{json}");
        }
        assert_eq!(serde_json::to_string(&Wire(&AttributeValue::S("x".into()))).unwrap(), r#"{"S":"x"}"#);
        assert_eq!(serde_json::to_string(&Wire(&AttributeValue::Null(true))).unwrap(), r#"{"NULL":true}"#);
    }
}
