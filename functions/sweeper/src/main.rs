//! `sweeper` Lambda function, on a schedule (every minute): gives the items of ended holds back
//! to stock (`reserved` → `expired`, one transaction per hold). The event is ignored: every run
//! sweeps every sale with holds, up to a bounded number of holds.

/// Most holds one run releases; the next run continues (a buyer who finds no stock releases
/// some too).
const LIMIT: usize = 5_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    flash_sale::lambda::run_task(|app, _event| async move {
        let report = app.sweep(LIMIT).await.map_err(|e| format!("sweep failed: {e}"))?;
        tracing::info!(sales = report.sales, released = report.released, skipped = report.skipped, "sweep");
        Ok(serde_json::to_value(report)?)
    })
    .await
}
