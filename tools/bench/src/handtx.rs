//! What the SDK's orchestrator costs on the one hot call: the purchase transaction sent through
//! the SDK (`rawtx::purchase`) against the same transaction signed and sent by hand (SigV4 with
//! `aws-sigv4`, the JSON body with `serde_json`, HTTP/1.1 with `hyper-util`'s client), one after
//! another on one current-thread runtime like a function's, against DynamoDB Local over real
//! loopback HTTP, and the same hand-signed request sent through the SDK's own HTTP connector
//! (its TLS, pool and timeouts) instead of `hyper-util`, which is how the shipped sender
//! (`flash_sale::store`'s `direct` module) sends it. The hand paths have no retries, timeouts or
//! error parsing beyond the status code: they price the lever and the choice of HTTP client.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use flash_sale::clock::now_ms;
use flash_sale::keys;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::{local, rawtx, stats};

pub struct Args {
    pub endpoint: Option<String>,
    pub calls: usize,
    pub batches: usize,
}

struct Hand {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    sdk_http: aws_smithy_runtime_api::client::http::SharedHttpConnector,
    url: String,
    host: String,
    identity: aws_smithy_runtime_api::client::identity::Identity,
}

impl Hand {
    fn new(endpoint: &str, sdk: &aws_sdk_dynamodb::Client) -> Result<Self> {
        let uri: hyper::Uri = endpoint.parse().context("endpoint")?;
        let host = uri.authority().ok_or_else(|| anyhow!("endpoint without host"))?.to_string();
        let credentials = Credentials::new("local", "local", None, None, "bench");
        Ok(Self {
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
            sdk_http: sdk_connector(sdk.config())?,
            url: format!("{}/", endpoint.trim_end_matches('/')),
            host,
            identity: credentials.into(),
        })
    }

    /// One purchase transaction: the same items, expressions and options as `rawtx::items`.
    async fn purchase(&self, table: &str, sale: &str, user: &str, now: i64, via_sdk_http: bool) -> Result<()> {
        let order_id = ulid::Ulid::new().to_string();
        let body = json!({
            "TransactItems": [
                {"Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": keys::shard_pk(sale, 0)}, "sk": {"S": keys::SHARD_SK}},
                    "UpdateExpression": "SET remaining = remaining - :one",
                    "ConditionExpression": "remaining > :zero AND startsAt <= :now AND endsAt > :now",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}, ":now": {"N": now.to_string()}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
                }},
                {"Put": {
                    "TableName": table,
                    "Item": {
                        "pk": {"S": keys::purchase_pk(sale, user)}, "sk": {"S": keys::PURCHASE_SK},
                        "saleId": {"S": sale}, "userId": {"S": user}, "orderId": {"S": &order_id},
                        "purchasedAt": {"N": now.to_string()}, "shard": {"N": "0"}
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
                }}
            ],
            "ClientRequestToken": format!("{order_id}-0-0")
        });
        let body = serde_json::to_vec(&body)?;
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "DynamoDB_20120810.TransactWriteItems"),
            ("host", self.host.as_str()),
        ];
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region("us-east-1")
            .name("dynamodb")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let signable = SignableRequest::new("POST", &self.url, headers.into_iter(), SignableBody::Bytes(&body))?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        let mut req = http::Request::builder().method("POST").uri(&self.url);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if via_sdk_http {
            let mut req = req.body(aws_smithy_types::body::SdkBody::from(body))?;
            instructions.apply_to_request_http1x(&mut req);
            let req = aws_smithy_runtime_api::client::orchestrator::HttpRequest::try_from(req)?;
            use aws_smithy_runtime_api::client::http::HttpConnector as _;
            let resp = self.sdk_http.call(req).await.map_err(|e| anyhow!("{e:?}"))?;
            let status = resp.status().as_u16();
            let answer = resp.into_body().collect().await.map_err(|e| anyhow!("{e}"))?.to_bytes();
            if status != 200 {
                bail!(
                    "hand-signed TransactWriteItems via the SDK's HTTP client: {status} {}",
                    String::from_utf8_lossy(&answer)
                );
            }
            return Ok(());
        }
        let mut req = req.body(Full::new(Bytes::from(body)))?;
        instructions.apply_to_request_http1x(&mut req);
        let resp = self.http.request(req).await?;
        let status = resp.status();
        let answer = resp.into_body().collect().await?.to_bytes();
        if status != 200 {
            bail!("hand-signed TransactWriteItems: {status} {}", String::from_utf8_lossy(&answer));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Sdk,
    Hand,
    HandSdkHttp,
}

/// The SDK's own HTTP connector for this client's configuration (its TLS, pool and timeouts),
/// outside the orchestrator.
fn sdk_connector(
    config: &aws_sdk_dynamodb::Config,
) -> Result<aws_smithy_runtime_api::client::http::SharedHttpConnector> {
    use aws_smithy_runtime::client::auth::no_auth::{NO_AUTH_SCHEME_ID, NoAuthScheme};
    use aws_smithy_runtime::client::identity::IdentityCache;
    use aws_smithy_runtime::client::identity::no_auth::NoAuthIdentityResolver;
    use aws_smithy_runtime::client::orchestrator::endpoints::StaticUriEndpointResolver;
    use aws_smithy_runtime::client::retries::strategy::NeverRetryStrategy;
    use aws_smithy_runtime_api::client::auth::static_resolver::StaticAuthSchemeOptionResolver;
    use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings};
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    // `flash_sale::aws::local_config` sets the HTTP client on every local client.
    let http = config.http_client().ok_or_else(|| anyhow!("the client has no HTTP client"))?;
    let components = RuntimeComponentsBuilder::new("hand")
        .with_auth_scheme_option_resolver(Some(StaticAuthSchemeOptionResolver::new(vec![NO_AUTH_SCHEME_ID])))
        .with_auth_scheme(NoAuthScheme::new())
        .with_identity_cache(Some(IdentityCache::no_cache()))
        .with_identity_resolver(NO_AUTH_SCHEME_ID, NoAuthIdentityResolver::new())
        .with_endpoint_resolver(Some(StaticUriEndpointResolver::uri("http://127.0.0.1")))
        .with_retry_strategy(Some(NeverRetryStrategy::new()))
        .with_sleep_impl(config.sleep_impl())
        .with_time_source(config.time_source())
        .build()?;
    let mut settings = HttpConnectorSettings::builder();
    settings.set_connect_timeout(config.timeout_config().and_then(|t| t.connect_timeout()));
    let settings = settings.build();
    Ok(http.http_connector(&settings, &components))
}

pub async fn run(args: Args) -> Result<()> {
    let dynamo = local::Dynamo::get(args.endpoint.as_deref()).await?;
    let store = local::fresh_store(&dynamo.endpoint).await?;
    let sale = local::active_sale(&store, 10_000_000, 1).await?;
    let (table, sale_id) = (store.table().to_owned(), sale.id.to_string());
    let sdk = local::client(&dynamo.endpoint)?;
    let hand = Hand::new(&dynamo.endpoint, &sdk)?;
    println!(
        "hand-tx: {} purchase transactions per batch, {} batches per side, alternating, one at a time, DynamoDB Local at {}",
        args.calls, args.batches, dynamo.endpoint
    );
    let mut cpu = [Vec::new(), Vec::new(), Vec::new()];
    let mut wall = [Vec::new(), Vec::new(), Vec::new()];
    let deadline = Instant::now() + Duration::from_secs(600);
    // One warm-up batch per side (connections, caches), then the measured ones.
    for batch in 0..=args.batches {
        for side in if batch % 2 == 0 {
            [Side::Sdk, Side::Hand, Side::HandSdkHttp]
        } else {
            [Side::HandSdkHttp, Side::Hand, Side::Sdk]
        } {
            if Instant::now() > deadline {
                bail!("hand-tx: over 600 s");
            }
            let (c0, t0) = (stats::process_cpu(), Instant::now());
            for i in 0..args.calls {
                let user = format!("{side:?}-{batch}-{i}");
                let now = now_ms();
                match side {
                    Side::Sdk => {
                        rawtx::purchase(&sdk, &table, &sale_id, 0, &user, now, false)
                            .await
                            .map_err(|e| anyhow!("SDK TransactWriteItems: {e:?}"))?;
                    }
                    Side::Hand => hand.purchase(&table, &sale_id, &user, now, false).await?,
                    Side::HandSdkHttp => hand.purchase(&table, &sale_id, &user, now, true).await?,
                }
            }
            if batch > 0 {
                let n = args.calls as f64;
                cpu[side as usize].push((stats::process_cpu() - c0).as_secs_f64() * 1e6 / n);
                wall[side as usize].push(t0.elapsed().as_secs_f64() * 1e6 / n);
            }
        }
    }
    for (side, name) in [
        (Side::Sdk, "SDK `TransactWriteItems`"),
        (Side::Hand, "hand-signed, same transaction"),
        (Side::HandSdkHttp, "hand-signed, SDK's HTTP client"),
    ] {
        println!(
            "  {name:<32} client CPU µs/call {} · wall µs/call {}",
            stats::summary(&cpu[side as usize], 1),
            stats::summary(&wall[side as usize], 0)
        );
    }
    let (s, h) = (stats::median(&cpu[0]), stats::median(&cpu[1]));
    println!(
        "client CPU per call saved by signing and sending by hand: {:.1} µs ({:.0}% of the SDK's)",
        s - h,
        (s - h) / s * 100.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand path really commits the transaction, so the comparison prices equal work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hand_signed_transaction_commits_like_the_sdk_one() {
        let Some(endpoint) = local::test_endpoint() else { return };
        let store = local::fresh_store(&endpoint).await.unwrap();
        let sale = local::active_sale(&store, 100, 1).await.unwrap();
        let hand = Hand::new(&endpoint, store.client()).unwrap();
        for i in 0..5 {
            hand.purchase(store.table(), sale.id.as_str(), &format!("h{i}"), now_ms(), i % 2 == 0).await.unwrap();
        }
        let again = hand.purchase(store.table(), sale.id.as_str(), "h0", now_ms(), false).await;
        assert!(again.is_err(), "the purchase's condition refuses a second one");
        assert_eq!(store.shard_stock(&[&sale]).await.unwrap()[0], vec![95]);
    }
}
