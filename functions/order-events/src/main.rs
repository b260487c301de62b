//! `order-events` Lambda function, on the table's DynamoDB stream: see the `order_events` crate.
//! Answers with the partial batch response (`ReportBatchItemFailures`), so a failed delivery is
//! retried from its record, and after the event source mapping's retries lands in the
//! dead-letter queue. It answers before the invocation's deadline (less [`MARGIN`]): what is not
//! published by then is returned as the batch item failure, never a function timeout.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent, service_fn};

/// Time kept back from the invocation's deadline to answer.
const MARGIN: Duration = Duration::from_secs(3);

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    flash_sale::telemetry::init();
    let bus: &'static order_events::Bus = Box::leak(Box::new(order_events::Bus::from_env()?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let left = Duration::from_millis(
            u64::try_from(u128::from(event.context.deadline).saturating_sub(now_ms)).unwrap_or(u64::MAX),
        );
        let deadline = tokio::time::Instant::now() + left.saturating_sub(MARGIN);
        Ok::<_, Error>(order_events::publish_until(bus, &event.payload, Some(deadline)).await.response)
    }))
    .await
}
