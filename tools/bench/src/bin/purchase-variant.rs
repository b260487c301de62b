//! A local copy of the `purchase` function binary for pricing ideas before anyone changes
//! `shared/`: same handler (`flash_sale::http::purchase`), same runtime loop as
//! `flash_sale::lambda::run`, with two knobs read from the environment:
//!
//! - `BENCH_HTTP=default|plain`: `flash_sale::aws::local_client` as shipped, or a copy of it whose
//!   config gets a plain-HTTP client (no TLS stack, no system certificate store at start-up).
//! - `BENCH_TELEMETRY=full|one-line|off`: the shipped JSON log line + EMF flush per invocation;
//!   one hand-written line per invocation that is both the EMF record and the request log; or none.
//!
//! Local only: it requires `DYNAMODB_ENDPOINT` (loopback).

/// Built with `--features mimalloc` only, to price the allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../client_copy.rs"]
mod client_copy;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use flash_sale::App;
use flash_sale::clock::SystemClock;
use flash_sale::config::Config;
use flash_sale::store::Store;
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let http = std::env::var("BENCH_HTTP").unwrap_or_else(|_| "default".into());
    let telemetry = std::env::var("BENCH_TELEMETRY").unwrap_or_else(|_| "full".into());
    if telemetry == "full" {
        flash_sale::telemetry::init();
    }
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let endpoint = config.dynamodb_endpoint.clone().ok_or("purchase-variant needs DYNAMODB_ENDPOINT")?;
    let client = match http.as_str() {
        "plain" => client_copy::local_client_with_http(&endpoint, aws_smithy_http_client::Builder::new().build_http())?,
        _ => flash_sale::aws::local_client(&endpoint)?,
    };
    let app: &'static App = Box::leak(Box::new(App::new(
        Store::new(client, config.table_name),
        Arc::new(SystemClock),
        config.auth_mode,
        config.tuning,
    )));
    match telemetry.as_str() {
        "full" => {
            let metrics = flash_sale::telemetry::metrics_builder().init()?;
            flash_sale::telemetry::describe_metrics();
            lambda_http::run(service_fn(move |req: Request| {
                let request_id = req.lambda_context_ref().map(|c| c.request_id.clone());
                let response = flash_sale::http::purchase(app, req);
                async move {
                    let response = response.await;
                    if let Some(id) = request_id {
                        metrics.set_property("requestId", id);
                    }
                    let _ = metrics.flush(std::io::stdout().lock());
                    Ok::<_, Error>(response)
                }
            }))
            .await
        }
        "one-line" => {
            lambda_http::run(service_fn(move |req: Request| {
                let request_id = req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default();
                let started = Instant::now();
                let response = flash_sale::http::purchase(app, req);
                async move {
                    let response: Response<Body> = response.await;
                    let status = response.status().as_u16();
                    let latency = started.elapsed().as_secs_f64() * 1e3;
                    let outcome = match status {
                        201 => "succeeded",
                        409 => "rejected",
                        _ => "other",
                    };
                    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
                    let line = format!(
                        "{{\"_aws\":{{\"Timestamp\":{ts},\"CloudWatchMetrics\":[{{\"Namespace\":\"FlashSale\",\"Dimensions\":[[\"outcome\"]],\"Metrics\":[{{\"Name\":\"Purchases\",\"Unit\":\"Count\"}},{{\"Name\":\"PurchaseLatency\",\"Unit\":\"Milliseconds\"}},{{\"Name\":\"PurchaseRetries\",\"Unit\":\"Count\"}}]}}]}},\"outcome\":\"{outcome}\",\"Purchases\":1,\"PurchaseLatency\":{latency:.3},\"PurchaseRetries\":0,\"level\":\"INFO\",\"message\":\"request\",\"requestId\":{},\"route\":\"purchase\",\"status\":{status}}}\n",
                        serde_json::to_string(&request_id).unwrap_or_default()
                    );
                    let _ = std::io::stdout().lock().write_all(line.as_bytes());
                    Ok::<_, Error>(response)
                }
            }))
            .await
        }
        _ => lambda_http::run(service_fn(move |req: Request| async move { Ok::<_, Error>(flash_sale::http::purchase(app, req).await) })).await,
    }
}
