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

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    flash_sale::lambda::run_task(|app, _event| async move {
        // Draws and sweep are independent, and so is each sale and each hold in them: a failure
        // is logged with its key and counted in `Errors`, and the run goes on (the report says
        // what failed).
        let report = app.scheduled_run_with(LIMIT, BUDGET, relays()).await;
        tracing::info!(
            sales = report.sweep.sales,
            released = report.sweep.released,
            skipped = report.sweep.skipped,
            failed = report.sweep.failed,
            set_aside = report.sweep.set_aside,
            drawn = ?report.drawn,
            draws_failed = ?report.draws_failed,
            "sweep"
        );
        Ok(serde_json::to_value(report)?)
    })
    .await
}

/// The drand relays (`DRAND_RELAYS`) for rooms drawn with a public beacon, set up once. Without
/// them (a bad setting) the holds are still released and the other rooms drawn; rooms with a
/// beacon stay `drawing`, and every run says so at error level.
fn relays() -> Option<&'static dyn flash_sale::beacon::BeaconSource> {
    static RELAYS: std::sync::OnceLock<Result<sweeper::Relays, String>> = std::sync::OnceLock::new();
    match RELAYS.get_or_init(sweeper::Relays::from_env) {
        Ok(relays) => Some(relays),
        Err(e) => {
            tracing::error!(error = %e, "no drand relays: rooms with a public beacon stay drawing");
            flash_sale::telemetry::record_error("draw");
            None
        }
    }
}
