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
//! - `BENCH_SEED=init`: fill one byte from aws-lc's generator (what rustls draws its ClientHello
//!   random from) before anything else, and report how long that took on stderr as
//!   `bench-timing seed_ms=…`: the generator's first seeding, moved out of the first request.
//! - `BENCH_ROOTS=amazon`: the HTTPS client trusts only the four Amazon Trust Services roots (read
//!   from the system's `Amazon_Root_CA_{1..4}.pem`; a shipped version would embed them) plus the
//!   CA in `DYNAMODB_CA_BUNDLE`, instead of the whole system store: the certificate-store cut.
//! - `BENCH_SDK=lean`: the shipped client configuration with the SDK's stalled-stream protection
//!   off (a per-request timer and body wrapper; the operation timeouts already bound a stalled
//!   response).
//! - `BENCH_RUNTIME=concurrent` (only in a build with `--features concurrency`):
//!   `lambda_runtime::run_concurrent`, which polls `AWS_LAMBDA_MAX_CONCURRENCY` invocations at
//!   once (Lambda Managed Instances). `BENCH_RT=multi` runs on a multi-thread tokio runtime
//!   (one worker per CPU) instead of the binaries' current-thread one.
//!
//! With all knobs at their defaults (or only `BENCH_SEED` set) it runs
//! `flash_sale::lambda::run(purchase_function)`, exactly what the `purchase` binary runs; otherwise
//! a copy of that runtime loop with the knob applied. Local only: it requires `DYNAMODB_ENDPOINT`
//! (loopback).

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

fn main() -> Result<(), Error> {
    if std::env::var("BENCH_SEED").is_ok_and(|v| v == "init") {
        let t0 = Instant::now();
        let mut byte = [0u8; 1];
        rustls::crypto::aws_lc_rs::default_provider().secure_random.fill(&mut byte).map_err(|e| format!("{e:?}"))?;
        eprintln!("bench-timing seed_ms={:.3}", t0.elapsed().as_secs_f64() * 1e3);
    }
    let rt = if std::env::var("BENCH_RT").is_ok_and(|v| v == "multi") {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    };
    rt.block_on(serve())
}

async fn serve() -> Result<(), Error> {
    let plain_http = std::env::var("BENCH_HTTP").is_ok_and(|v| v == "plain");
    let amazon_roots = std::env::var("BENCH_ROOTS").is_ok_and(|v| v == "amazon");
    let concurrent = std::env::var("BENCH_RUNTIME").is_ok_and(|v| v == "concurrent");
    let lean_sdk = std::env::var("BENCH_SDK").is_ok_and(|v| v == "lean");
    if concurrent && !cfg!(feature = "concurrency") {
        return Err("BENCH_RUNTIME=concurrent needs a build with --features concurrency".into());
    }
    let telemetry = match std::env::var("BENCH_TELEMETRY").as_deref() {
        Ok("one-line") => Telemetry::OneLine,
        Ok("off") => Telemetry::Off,
        _ => Telemetry::Full,
    };
    if !plain_http && !amazon_roots && !concurrent && !lean_sdk && telemetry == Telemetry::Full {
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
    } else if lean_sdk {
        use aws_sdk_dynamodb::config::StalledStreamProtectionConfig;
        let config = flash_sale::aws::local_config(&endpoint, flash_sale::aws::local_timeouts())?
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        aws_sdk_dynamodb::Client::from_conf(config.build())
    } else if amazon_roots {
        local_client_with_http(&endpoint, amazon_roots_client()?).map_err(|e| e.to_string())?
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
    let handler = service_fn(move |event: LambdaEvent<ApiEvent>| {
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
    });
    #[cfg(feature = "concurrency")]
    if concurrent {
        return lambda_runtime::run_concurrent(handler).await;
    }
    lambda_runtime::run(handler).await
}

/// The Amazon Trust Services roots (what DynamoDB's certificates chain to) plus the CA of
/// `DYNAMODB_CA_BUNDLE` (the bench's throwaway CA), no system store.
fn amazon_roots_client() -> Result<aws_sdk_dynamodb::config::SharedHttpClient, Error> {
    use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let mut store = TrustStore::empty().with_native_roots(false);
    for n in 1..=4 {
        store = store.with_pem_certificate(std::fs::read(format!("/etc/ssl/certs/Amazon_Root_CA_{n}.pem"))?);
    }
    if let Ok(ca) = std::env::var(flash_sale::aws::CA_BUNDLE_VAR) {
        store = store.with_pem_certificate(std::fs::read(ca)?);
    }
    let tls = TlsContext::builder().with_trust_store(store).build()?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https())
}
