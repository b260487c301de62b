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
//! - the endpoint, the merged timeout and retry configuration and the credentials, resolved once
//!   by the SDK itself: a `ListTables` is built and signed, and stopped before it is sent;
//! - credentials through the client's own identity cache (one fetch shared with the SDK's calls);
//! - the attempt and operation timeouts;
//! - the standard retry rule: at most `max_attempts` attempts for transient failures (timeouts,
//!   I/O errors, a kept-alive connection closed under the request, HTTP 500/502/503/504, the
//!   SDK's throttling and transient error codes), with exponential backoff and full jitter, the
//!   throttling base for throttling errors and the non-throttling base for the others. Every
//!   attempt carries the same `ClientRequestToken`, so a transaction whose answer was lost is not
//!   applied twice;
//! - a connection that answered with a transient error is closed, not reused (as the SDK's
//!   connection poisoning does under the same retry configuration);
//! - the X-Ray trace header from `_X_AMZN_TRACE_ID` inside Lambda.
//!
//! Not kept: the SDK's client-wide retry quota (a token bucket that stops retries when many fail),
//! `x-amz-retry-after`, and clock-skew correction. A Lambda environment serves one invocation at a
//! time and its clock is synchronised, and the operation timeout still bounds every call.

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
use aws_smithy_runtime_api::client::connection::CaptureSmithyConnection;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::ResolveCachedIdentity;
use aws_smithy_runtime_api::client::identity::{Identity, SharedIdentityResolver};
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::GetIdentityResolver;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::{ErrorKind, ReconnectMode, RetryConfig, RetrySpec};
use aws_smithy_types::timeout::TimeoutConfig;
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
    /// was found in, with the client's identity cache, as the SDK would call them.
    resolver: SharedIdentityResolver,
    components: RuntimeComponents,
    /// Close a connection that answered with a transient error (the SDK's connection poisoning).
    poison_on_transient: bool,
    /// Inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set): every request carries the invocation's trace.
    in_lambda: bool,
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

impl Failure {
    fn transient(message: String) -> Self {
        Self { kind: FailureKind::Transient, message, in_progress: false }
    }

    fn last(message: String) -> Self {
        Self { kind: FailureKind::Final, message, in_progress: false }
    }
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
        let mut settings = HttpConnectorSettings::builder();
        settings.set_connect_timeout(seen.timeouts.connect_timeout());
        settings.set_read_timeout(seen.timeouts.read_timeout());
        // The settings and components of the SDK's own calls: the HTTP client hands out the same
        // cached connector, so both share one connection pool and one TLS configuration.
        let http = seen.components.http_client().ok_or("the DynamoDB client has no HTTP client")?;
        let connector = http.http_connector(&settings.build(), &seen.components);
        let retry = seen.retry;
        let throttling_backoff = retry.initial_backoff();
        let spec_2_1 = retry.retry_spec().is_some_and(|s| s.is_at_least(RetrySpec::V2_1));
        Ok(Self {
            connector,
            url,
            host,
            region,
            resolver: seen.resolver,
            components: seen.components,
            poison_on_transient: !spec_2_1 && retry.reconnect_mode() == ReconnectMode::ReconnectOnTransientError,
            in_lambda: std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
            max_attempts: retry.max_attempts().max(1),
            throttling_backoff,
            transient_backoff: retry.retry_spec().map_or(throttling_backoff, |s| s.non_throttling_initial_backoff()),
            max_backoff: retry.max_backoff(),
            attempt_timeout: seen.timeouts.operation_attempt_timeout(),
            operation_timeout: seen.timeouts.operation_timeout(),
        })
    }

    /// Sends one `TransactWriteItems` with the standard retry rule, within the operation timeout.
    pub(super) async fn transact_write_items(&self, request: &TransactWrite<'_>) -> Result<TxAnswer, StoreError> {
        let body =
            serde_json::to_vec(request).map_err(|e| StoreError::Unavailable(format!("TransactWriteItems: {e}")))?;
        let body = bytes::Bytes::from(body);
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
        let mut request = self.signed(body).await?;
        let connection = CaptureSmithyConnection::new();
        request.add_extension(connection.clone());
        let exchange = async {
            let response = self.connector.call(request).await.map_err(|e| Failure {
                // As the SDK's classifiers: timeouts, I/O errors and errors the HTTP client marks
                // with a kind (a kept-alive connection closed under the request) are retried.
                kind: match e.as_other() {
                    Some(ErrorKind::ThrottlingError) => FailureKind::Throttling,
                    Some(_) => FailureKind::Transient,
                    None if e.is_timeout() || e.is_io() => FailureKind::Transient,
                    None => FailureKind::Final,
                },
                message: format!("TransactWriteItems: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)),
                in_progress: false,
            })?;
            let status = response.status().as_u16();
            let error_type = response.headers().get("x-amzn-errortype").map(str::to_owned);
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .map_err(|e| Failure::transient(format!("TransactWriteItems: reading the answer: {e}")))?
                .to_bytes();
            Ok((status, error_type, body))
        };
        let (status, error_type, body) = match self.attempt_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange).await.unwrap_or_else(|_| {
                Err(Failure::transient(format!("TransactWriteItems: attempt timed out after {limit:?}")))
            })?,
            None => exchange.await?,
        };
        let answer = answer(status, error_type.as_deref(), &body);
        if let Err(Failure { kind: FailureKind::Transient, .. }) = &answer
            && self.poison_on_transient
            && let Some(connection) = connection.get()
        {
            connection.poison();
        }
        answer
    }

    async fn signed(&self, body: &bytes::Bytes) -> Result<HttpRequest, Failure> {
        let identity = self.identity().await.map_err(Failure::last)?;
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
            .map_err(|e| Failure::last(format!("signing: {e}")))?
            .into();
        let signable = SignableRequest::new("POST", &self.url, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| Failure::last(format!("signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| Failure::last(format!("signing: {e}")))?.into_parts();
        let mut request = http::Request::builder().method("POST").uri(&self.url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        // As the SDK's recursion-detection interceptor: inside Lambda the invocation's X-Ray trace.
        if self.in_lambda
            && let Some(trace) =
                std::env::var("_X_AMZN_TRACE_ID").ok().filter(|t| http::HeaderValue::from_str(t).is_ok())
        {
            request = request.header("x-amzn-trace-id", trace);
        }
        let mut request = request
            .header("content-length", body.len())
            .header("user-agent", concat!("flash-sale/", env!("CARGO_PKG_VERSION")))
            .body(SdkBody::from(body.clone()))
            .map_err(|e| Failure::last(format!("request: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        HttpRequest::try_from(request).map_err(|e| Failure::last(format!("request: {e}")))
    }

    /// The client's credentials as a signing identity, through the client's identity cache.
    async fn identity(&self) -> Result<Identity, String> {
        let bag = ConfigBag::base();
        let cache = self.components.identity_cache();
        let identity = cache.resolve_cached_identity(self.resolver.clone(), &self.components, &bag).await;
        identity.map_err(|e| format!("credentials: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&*e)))
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

/// Reads DynamoDB's answer: 200 is a commit; an error's code (the `x-amzn-errortype` header, else
/// the body's `__type` or `code`, read as leniently as the SDK reads them) decides the rest.
fn answer(status: u16, error_type: Option<&str>, body: &[u8]) -> Result<TxAnswer, Failure> {
    if status == 200 {
        return Ok(TxAnswer::Committed);
    }
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |names: &[&str]| names.iter().find_map(|n| json.get(*n).and_then(|v| v.as_str()));
    let code = error_type.or_else(|| field(&["__type", "code"])).unwrap_or_default();
    // `com.amazonaws.dynamodb.v20120810#Code` or `Code:http://...`: the code alone.
    let code = code.split(':').next().unwrap_or(code);
    let code = code.rsplit('#').next().unwrap_or(code);
    let message = field(&["message", "Message", "errorMessage"]).unwrap_or_default();
    if code == "TransactionCanceledException" {
        let reasons = json.get("CancellationReasons").cloned().unwrap_or_default();
        let reasons: Vec<WireReason> = if reasons.is_null() {
            Vec::new()
        } else {
            serde_json::from_value(reasons)
                .map_err(|e| Failure::last(format!("unreadable CancellationReasons: {e}")))?
        };
        let reasons = reasons
            .into_iter()
            .map(WireReason::into_sdk)
            .collect::<Result<_, _>>()
            .map_err(|e| Failure::last(format!("TransactionCanceledException with an unreadable item: {e}")))?;
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

/// What the SDK resolves for a call of this client: its endpoint, its SigV4 identity resolver and
/// runtime components, and the merged timeout and retry configuration.
struct Seen {
    uri: String,
    resolver: SharedIdentityResolver,
    components: RuntimeComponents,
    timeouts: TimeoutConfig,
    retry: RetryConfig,
}

/// Learns what the SDK would resolve for this client's calls without sending anything: a
/// `ListTables` is built and signed, and stopped before transmission.
async fn resolved(client: &Client) -> Result<Seen, String> {
    let seen = Arc::new(Mutex::new(None));
    let stopped = client.list_tables().limit(1).customize().interceptor(StopBeforeSend(seen.clone())).send().await;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
    seen.ok_or_else(|| {
        let why = stopped.err().map(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string());
        format!("the SDK resolved no endpoint or SigV4 credentials for this client: {}", why.unwrap_or_default())
    })
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
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let uri = context.request().uri();
        let uri = uri.split('?').next().unwrap_or(uri).to_owned();
        let resolver = components.identity_resolver(AuthSchemeId::new("sigv4"));
        if let Some(resolver) = resolver {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Seen {
                uri,
                resolver,
                components: components.clone(),
                // The merged configuration of this call: the client's over the SDK's defaults.
                timeouts: cfg.load::<TimeoutConfig>().cloned().unwrap_or_else(TimeoutConfig::disabled),
                retry: cfg.load::<RetryConfig>().cloned().unwrap_or_else(RetryConfig::standard),
            });
        }
        Err("endpoint and credentials read; the request is not sent".into())
    }
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
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "wire_values")]
    pub expression_attribute_values: &'a [(&'a str, AttributeValue)],
    /// `ALL_OLD`: a failed condition returns the item as it was.
    #[serde(skip_serializing_if = "str::is_empty")]
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
    /// Answers from a script and keeps every request it was sent.
    #[derive(Debug, Clone, Default)]
    struct FakeDynamoDbAnswers {
        script: Arc<Mutex<VecDeque<Reply>>>,
        sent: Arc<Mutex<Vec<Sent>>>,
    }

    #[derive(Debug, Clone)]
    enum Reply {
        /// A status and a body.
        Answer(u16, &'static str),
        /// A status, an `x-amzn-errortype` header and a body.
        Typed(u16, &'static str, &'static str),
        /// Never answers.
        Silent,
        /// The connection closes under the request (how the HTTP client reports a kept-alive
        /// connection that the other side closed).
        Closed,
    }

    /// A request as sent: its URI, headers and JSON body.
    type Sent = (String, Vec<(String, String)>, Value);

    impl FakeDynamoDbAnswers {
        fn new(script: impl IntoIterator<Item = Reply>) -> Self {
            Self { script: Arc::new(Mutex::new(script.into_iter().collect())), sent: Default::default() }
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
            let respond = |status: u16, error_type: Option<&'static str>, body: &'static str| {
                let mut response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
                response.headers_mut().insert("content-type", "application/x-amz-json-1.0");
                if let Some(error_type) = error_type {
                    response.headers_mut().insert("x-amzn-errortype", error_type);
                }
                HttpConnectorFuture::ready(Ok(response))
            };
            match next {
                Reply::Answer(status, body) => respond(status, None, body),
                Reply::Typed(status, error_type, body) => respond(status, Some(error_type), body),
                Reply::Silent => HttpConnectorFuture::new(std::future::pending()),
                Reply::Closed => {
                    HttpConnectorFuture::ready(Err(aws_smithy_runtime_api::client::result::ConnectorError::other(
                        "connection closed before message completed".into(),
                        Some(ErrorKind::TransientError),
                    )))
                }
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
        let fake = FakeDynamoDbAnswers::new([Reply::Answer(200, "{}")]);
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

        let local = FakeDynamoDbAnswers::new([Reply::Answer(200, "{}")]);
        assert!(matches!(send(&client(&local, Some("http://127.0.0.1:8000"))).await, Ok(TxAnswer::Committed)));
        assert_eq!(local.sent()[0].0, "http://127.0.0.1:8000/");
    }

    #[tokio::test]
    async fn transient_failures_are_retried_with_the_same_request_until_an_answer() {
        let fake = FakeDynamoDbAnswers::new([
            Reply::Answer(500, r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"x"}"#),
            Reply::Silent,
            Reply::Answer(200, "{}"),
        ]);
        assert!(matches!(send(&client(&fake, None)).await, Ok(TxAnswer::Committed)));
        let sent = fake.sent();
        assert_eq!(sent.len(), 3, "a 500 and an attempt that timed out were retried");
        assert!(sent.iter().all(|(_, _, body)| body == &sent[0].2), "every attempt carries the same token");

        let fake = FakeDynamoDbAnswers::new([Reply::Closed, Reply::Answer(200, "{}")]);
        assert!(matches!(send(&client(&fake, None)).await, Ok(TxAnswer::Committed)));
        assert_eq!(fake.sent().len(), 2, "a connection closed under the request was retried");
    }

    #[tokio::test]
    async fn the_attempts_are_bounded_and_the_last_failure_decides() {
        let throttled = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#;
        let fake = FakeDynamoDbAnswers::new(vec![Reply::Answer(400, throttled); 3]);
        assert!(matches!(send(&client(&fake, None)).await, Err(StoreError::Throttled(_))));
        assert_eq!(fake.sent().len(), 3);

        let busy = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionInProgressException","Message":"busy"}"#;
        let fake = FakeDynamoDbAnswers::new(vec![Reply::Answer(400, busy); 3]);
        assert!(matches!(send(&client(&fake, None)).await, Ok(TxAnswer::InProgress)));
        assert_eq!(fake.sent().len(), 3);

        let silent = FakeDynamoDbAnswers::new(vec![Reply::Silent; 3]);
        let err = send(&client(&silent, None)).await.unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("timed out")), "{err}");
        assert_eq!(silent.sent().len(), 3);

        for (status, body) in [
            (400, r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad"}"#),
            (403, r#"{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"no"}"#),
            (400, "<html>not json</html>"),
        ] {
            let fake = FakeDynamoDbAnswers::new([Reply::Answer(status, body)]);
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
        let fake = FakeDynamoDbAnswers::new([Reply::Answer(400, cancelled)]);
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

    #[tokio::test]
    async fn an_error_is_read_from_its_header_or_any_body_field_the_sdk_reads() {
        // The code only in the header, a body that is not JSON: still throttling, retried.
        let typed = Reply::Typed(400, "ThrottlingException:http://internal", "<html/>");
        let fake = FakeDynamoDbAnswers::new(vec![typed; 3]);
        assert!(matches!(send(&client(&fake, None)).await, Err(StoreError::Throttled(_))));
        assert_eq!(fake.sent().len(), 3);
        // Both spellings of the message and no reasons: still a cancellation, not an unknown error.
        let both = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "message":"a","Message":"b","CancellationReasons":null}"#;
        let fake = FakeDynamoDbAnswers::new([Reply::Answer(400, both)]);
        assert!(matches!(send(&client(&fake, None)).await, Ok(TxAnswer::Cancelled(r)) if r.is_empty()));
        // `code` instead of `__type`.
        let fake = FakeDynamoDbAnswers::new(vec![Reply::Answer(400, r#"{"code":"RequestLimitExceeded"}"#); 3]);
        assert!(matches!(send(&client(&fake, None)).await, Err(StoreError::Throttled(_))));
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
