//! `sweeper` Lambda function, on a schedule (every minute): gives the items of ended holds back
//! to stock (`reserved` → `expired`, one transaction per hold), and draws every waiting room's
//! pre-queue that is due and too large for a request to draw (`REQUEST_DRAW_LIMIT`). The event is
//! ignored: every run looks at every sale, up to a bounded number of holds.

/// Most holds one run releases; the next run continues (a buyer who finds no stock releases
/// some too).
const LIMIT: usize = 5_000;
/// Time a run spends releasing holds at most: well inside the function's 120 s timeout, after
/// the draws.
const BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The drand relays (`DRAND_RELAYS`) for rooms drawn with a public beacon.
    let relays: &'static sweeper::Relays = Box::leak(Box::new(sweeper::Relays::from_env()?));
    flash_sale::lambda::run_task(move |app, _event| async move {
        // The draws first: people wait for them, and a hold's item can wait a minute.
        let drawn = app.draw_due_rooms_with(relays).await.map_err(|e| format!("draw failed: {e}"))?;
        let report = app.sweep(LIMIT, BUDGET).await.map_err(|e| format!("sweep failed: {e}"))?;
        tracing::info!(sales = report.sales, released = report.released, skipped = report.skipped, drawn = ?drawn, "sweep");
        let mut answer = serde_json::to_value(report)?;
        answer["drawn"] = serde_json::json!(drawn);
        Ok(answer)
    })
    .await
}
