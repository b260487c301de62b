//! Every `cpu` scenario against the canned answers, each request checked for the status it
//! expects, so the canned DynamoDB stays in step with what the store sends and reads. Its own
//! binary: the telemetry phase installs the process-wide log subscriber and metrics recorder.

#[test]
fn every_cpu_scenario_answers_as_expected() {
    // A sale with three variants first: its run installs no telemetry, the plain sale's run does.
    bench::cpu::run(bench::cpu::Args { iterations: 100, batches: 1, only: None, variants: 3 }).unwrap();
    bench::cpu::run(bench::cpu::Args { iterations: 100, batches: 1, only: None, variants: 1 }).unwrap();
}
