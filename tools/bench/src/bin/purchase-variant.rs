//! A copy of the `purchase` function binary for pricing ideas before anyone changes `shared/`:
//! the same handler (`flash_sale::http::purchase_function`), with two knobs read from the
//! environment:
//!
//! - `BENCH_HTTP=default|plain`: `flash_sale::aws::local_client` as shipped, or its configuration
//!   with a plain-HTTP client (`bench::variants::local_client_with_http`: no TLS stack, no system
//!   certificate store at start-up).
//! - `BENCH_TELEMETRY=full|one-line|off`: the shipped JSON log line + EMF flush per invocation;
//!   one hand-written line per invocation that is both the EMF record and the request log
//!   (`bench::variants::one_line`); or none.
//!
//! With both knobs at their defaults it runs `flash_sale::lambda::run(purchase_function)`, exactly
//! what the `purchase` binary runs; otherwise a copy of that runtime loop with the knob applied.
//! Local only: it requires `DYNAMODB_ENDPOINT` (loopback).

/// Built with `--features mimalloc` only, to price the allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::variants::{PurchaseLine, local_client_with_http, one_line};
use flash_sale::App;
use flash_sale::clock::{SystemClock, now_ms};
use flash_sale::config::Config;
use flash_sale::http::{ApiEvent, ApiRequest, purchase_function};
use flash_sale::store::Store;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telemetry {
    Full,
    OneLine,
    Off,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let plain_http = std::env::var("BENCH_HTTP").is_ok_and(|v| v == "plain");
    let telemetry = match std::env::var("BENCH_TELEMETRY").as_deref() {
        Ok("one-line") => Telemetry::OneLine,
        Ok("off") => Telemetry::Off,
        _ => Telemetry::Full,
    };
    if !plain_http && telemetry == Telemetry::Full {
        return flash_sale::lambda::run(purchase_function).await;
    }

    if telemetry == Telemetry::Full {
        flash_sale::telemetry::init();
    }
    let config = Config::from_env()?;
    let endpoint = config.dynamodb_endpoint.clone().ok_or("purchase-variant needs DYNAMODB_ENDPOINT")?;
    let client = if plain_http {
        let http = aws_smithy_http_client::Builder::new().build_http();
        local_client_with_http(&endpoint, http).map_err(|e| e.to_string())?
    } else {
        flash_sale::aws::local_client(&endpoint)?
    };
    let store = Store::new(client, config.table_name.clone());
    let app: &'static App = Box::leak(Box::new(App::new(store, Arc::new(SystemClock), config)));
    let metrics = match telemetry {
        Telemetry::Full => {
            let metrics = flash_sale::telemetry::metrics_builder().init()?;
            flash_sale::telemetry::describe_metrics();
            Some(metrics)
        }
        _ => None,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiEvent>| {
        let (event, context) = event.into_parts();
        let left = i64::try_from(context.deadline).unwrap_or(0).saturating_sub(now_ms());
        let deadline =
            u64::try_from(left).ok().filter(|ms| *ms > 0).map(|ms| Instant::now() + Duration::from_millis(ms));
        let request = ApiRequest { event, request_id: context.request_id, deadline };
        let request_id = request.request_id.clone();
        let sale_id = request.path_param("saleId").unwrap_or_default().to_owned();
        let started = Instant::now();
        let response = Box::pin(purchase_function(app, request));
        async move {
            let response = response.await;
            if let Some(metrics) = metrics {
                metrics.set_property("requestId", request_id);
                let _ = metrics.flush(std::io::stdout().lock());
            } else if telemetry == Telemetry::OneLine {
                let status = response.status_code;
                let line = one_line(&PurchaseLine {
                    request_id: &request_id,
                    sale_id: &sale_id,
                    user_id: "",
                    status,
                    outcome: match status {
                        201 => "succeeded",
                        409 => "rejected",
                        _ => "other",
                    },
                    latency_ms: started.elapsed().as_secs_f64() * 1e3,
                    shard: -1,
                    retries: 0,
                    transactions: 0,
                });
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
            Ok::<_, Error>(response)
        }
    }))
    .await
}
