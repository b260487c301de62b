//! The one wiring point of a Lambda binary: cold start (logs, configuration, DynamoDB client,
//! [`App`], metrics recorder), then the runtime loop that turns each invocation into an
//! [`ApiRequest`] and flushes the invocation's metrics after the answer.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::App;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::{ApiEvent, ApiRequest, ApiResponse};
use crate::store::Store;
use crate::telemetry;

/// Longest time budget believed from the Runtime API (Lambda's own maximum is 15 minutes).
const MAX_BUDGET: Duration = Duration::from_secs(15 * 60);

/// Builds the [`App`] once, then serves invocations with `handler`. A missing or bad setting
/// stops start-up with a message that names the variable.
pub async fn run<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(&'static App, ApiRequest) -> Fut + Copy,
    Fut: Future<Output = ApiResponse> + Send,
{
    serve(handler, false).await
}

/// [`run`] for a function that signs or checks waiting-room admission tokens: it does not start
/// without its key.
pub async fn run_with_admission_key<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(&'static App, ApiRequest) -> Fut + Copy,
    Fut: Future<Output = ApiResponse> + Send,
{
    serve(handler, true).await
}

async fn serve<F, Fut>(handler: F, needs_admission_key: bool) -> Result<(), Error>
where
    F: Fn(&'static App, ApiRequest) -> Fut + Copy,
    Fut: Future<Output = ApiResponse> + Send,
{
    let (app, metrics) = start(needs_admission_key).await?;
    let served = lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiEvent>| {
        let (event, context) = event.into_parts();
        let deadline = deadline_from(context.deadline, SystemClock.now_ms());
        let request = ApiRequest { event, request_id: context.request_id, deadline };
        let request_id = request.request_id.clone();
        // Boxed: one allocation per invocation keeps the runtime's future type shallow.
        let response = Box::pin(handler(app, request));
        async move {
            // A rotated admission key reaches the container within minutes (a no-op otherwise).
            app.admission_keys().refresh_if_older_than(crate::admission_key::REFRESH_EVERY).await;
            let response = response.await;
            metrics.set_property("requestId", request_id);
            flush(metrics);
            Ok::<_, Error>(response)
        }
    }))
    .await;
    quiet_when_runtime_went_away(served)
}

/// Writes the invocation's metrics as EMF lines on stdout, all of them in one write: the
/// collector writes each line in many small pieces, which stdout's line buffer would copy and
/// scan one by one.
fn flush(metrics: &metrics_cloudwatch_embedded::Collector) {
    let mut lines = Vec::with_capacity(EMF_LINE_CAPACITY);
    let written = metrics.flush(&mut lines).and_then(|()| std::io::stdout().lock().write_all(&lines));
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not write metrics");
    }
}

/// Room for one invocation's EMF line (a purchase's is about 330 bytes).
const EMF_LINE_CAPACITY: usize = 512;

/// The runtime loop's end. When the Runtime API closed the connection the environment is being
/// shut down (a local emulator stopping, in practice): nothing failed; say so quietly.
fn quiet_when_runtime_went_away(served: Result<(), Error>) -> Result<(), Error> {
    match served {
        Err(e) if runtime_went_away(&format!("{e:?} {e}")) => {
            tracing::info!(error = %e, "the Lambda Runtime API went away; stopping");
            Ok(())
        }
        other => other,
    }
}

/// Cold start: logs, configuration, DynamoDB client, the admission keys (read from their secret
/// when the function has one), the container's [`App`], the EMF recorder.
async fn start(
    needs_admission_key: bool,
) -> Result<(&'static App, &'static metrics_cloudwatch_embedded::Collector), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let client =
        crate::aws::client_for(config.dynamodb_endpoint.as_deref()).map_err(|e| format!("configuration: {e}"))?;
    let store = Store::new(client, config.table_name.clone());
    let app = App::cold_start(store, Arc::new(SystemClock), config).await.map_err(|e| format!("configuration: {e}"))?;
    if needs_admission_key && app.admission_keys().current().is_none() {
        return Err("configuration: ADMISSION_KEY_SECRET_ARN (deployed) or ADMISSION_KEY (local: hex, at least 32 \
                    bytes) must be set: this function signs or checks waiting-room admission tokens"
            .into());
    }
    // One App per container for its whole life.
    let app: &'static App = Box::leak(Box::new(app));
    let metrics = telemetry::metrics_builder().init()?;
    telemetry::describe_metrics();
    Ok((app, metrics))
}

/// Serves a function that is not behind the HTTP API (a schedule's invocations): `task` gets the
/// [`App`] and the event as JSON (whatever it is) and answers JSON; an error fails the invocation.
pub async fn run_task<F, Fut>(task: F) -> Result<(), Error>
where
    F: Fn(&'static App, serde_json::Value) -> Fut + Copy,
    Fut: Future<Output = Result<serde_json::Value, Error>> + Send,
{
    let (app, metrics) = start(false).await?;
    let served = lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let result = Box::pin(task(app, event.payload));
        async move {
            let result = result.await;
            flush(metrics);
            result
        }
    }))
    .await;
    quiet_when_runtime_went_away(served)
}

fn runtime_went_away(error: &str) -> bool {
    error.contains("IncompleteMessage") || error.contains("Connection refused") || error.contains("connection closed")
}

/// The invocation's deadline (epoch milliseconds from the Runtime API) as an `Instant`; `None`
/// when the runtime sent none that makes sense.
fn deadline_from(deadline_ms: u64, now_ms: i64) -> Option<Instant> {
    let left = i64::try_from(deadline_ms).ok()?.checked_sub(now_ms)?;
    let left = Duration::from_millis(u64::try_from(left).ok()?);
    (!left.is_zero() && left <= MAX_BUDGET).then(|| Instant::now() + left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_runtime_api_connection_counts_as_shutdown() {
        assert!(runtime_went_away("hyper_util::client::legacy::Error(SendRequest, hyper::Error(IncompleteMessage))"));
        assert!(runtime_went_away("client error (Connect): tcp connect error: Connection refused (os error 111)"));
        assert!(!runtime_went_away("configuration: TABLE_NAME must be set"));
    }

    #[test]
    fn a_deadline_is_believed_only_when_it_makes_sense() {
        assert!(deadline_from(10_000, 1_000).is_some());
        assert!(deadline_from(1_000, 1_000).is_none(), "already due");
        assert!(deadline_from(500, 1_000).is_none(), "in the past");
        assert!(deadline_from(0, 1_000).is_none(), "none sent");
        assert!(deadline_from(u64::MAX, 1_000).is_none(), "nonsense");
    }
}
