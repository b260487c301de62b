//! The Lambda runtime loop shared by the three function binaries.

use std::future::Future;

use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};

use crate::App;
use crate::telemetry;

/// Builds the [`App`] once (cold start), installs the EMF metrics recorder, then serves
/// invocations with `handler`, flushing the invocation's metrics to stdout after each one.
pub async fn run<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(&'static App, Request) -> Fut + Copy,
    Fut: Future<Output = Response<Body>> + Send,
{
    let app = App::from_env().await?;
    let metrics = telemetry::metrics_builder().init()?;
    telemetry::describe_metrics();
    lambda_http::run(service_fn(move |req: Request| {
        let request_id = req.lambda_context_ref().map(|c| c.request_id.clone());
        let response = handler(app, req);
        async move {
            let response = response.await;
            if let Some(id) = request_id {
                metrics.set_property("requestId", id);
            }
            if let Err(e) = metrics.flush(std::io::stdout().lock()) {
                tracing::warn!(error = %e, "could not write metrics");
            }
            Ok::<_, Error>(response)
        }
    }))
    .await
}
