//! An HTTP client that answers every request from a function, without a network: the SDK runs
//! signing, retries, timeouts, endpoint resolution and (de)serialization as against DynamoDB,
//! and the function says what DynamoDB would have answered.
//!
//! Written on the SDK's public client traits (`HttpClient`, `HttpConnector`) rather than taken
//! from `aws-smithy-http-client`'s `test-util` feature: Cargo unifies features across one build,
//! and that feature would change the SDK the functions are linked against whenever the bench is
//! built or tested with them (`cargo test --workspace`).

use std::fmt;
use std::sync::Arc;

use aws_sdk_dynamodb::config::http::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;

type Answer = dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync;

/// The client: every connector it hands out calls the same function.
#[derive(Clone)]
struct Canned(Arc<Answer>);

impl fmt::Debug for Canned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Canned")
    }
}

impl HttpConnector for Canned {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::ready(Ok((self.0)(&request)))
    }
}

impl HttpClient for Canned {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        self.clone().into_shared()
    }
}

/// An HTTP client whose every response is `answer(&request)`; never fails, never waits.
pub fn client(answer: impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static) -> SharedHttpClient {
    Canned(Arc::new(answer)).into_shared()
}

/// A DynamoDB JSON response (`application/x-amz-json-1.0`) with this status and body.
pub fn dynamodb_response(status: u16, body: impl Into<SdkBody>) -> HttpResponse {
    let status = StatusCode::try_from(status).expect("a valid HTTP status");
    let mut response = HttpResponse::new(status, body.into());
    response.headers_mut().insert("content-type", "application/x-amz-json-1.0");
    response.headers_mut().insert("x-amzn-requestid", "BENCH0000000000000000000000000000000000000000000000");
    response
}

/// The DynamoDB operation a request calls (`GetItem`, `TransactWriteItems`, ...): the last part
/// of its `x-amz-target` header.
pub fn operation(request: &HttpRequest) -> &str {
    let target = request.headers().get("x-amz-target").unwrap_or_default();
    target.rsplit('.').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client really stands in for the network: the SDK sends its request to the function
    /// and parses what it answers.
    #[tokio::test(flavor = "current_thread")]
    async fn the_sdk_gets_its_answers_from_the_function() {
        let http = client(|req| match operation(req) {
            "ListTables" => dynamodb_response(200, r#"{"TableNames":["canned"]}"#),
            _ => dynamodb_response(400, r#"{"__type":"com.amazon.coral.validate#ValidationException","Message":"no"}"#),
        });
        let config = flash_sale::aws::local_config("http://127.0.0.1:9", flash_sale::aws::local_timeouts()).unwrap();
        let ddb = aws_sdk_dynamodb::Client::from_conf(config.http_client(http).build());
        let tables = ddb.list_tables().send().await.unwrap();
        assert_eq!(tables.table_names(), ["canned"]);
        let err = ddb.describe_table().table_name("t").send().await.unwrap_err();
        assert_eq!(aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&err), Some("ValidationException"));
    }
}
