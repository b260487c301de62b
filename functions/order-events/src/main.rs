//! `order-events` Lambda function, on the table's DynamoDB stream: see the `order_events` crate.
//! Answers with the partial batch response (`ReportBatchItemFailures`), so a failed delivery is
//! retried from its record, and after the event source mapping's retries lands in the
//! dead-letter queue.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    flash_sale::telemetry::init();
    let bus: &'static order_events::Bus = Box::leak(Box::new(order_events::Bus::from_env()?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, Error>(order_events::publish(bus, &event.payload).await)
    }))
    .await
}
