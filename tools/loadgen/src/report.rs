//! What a run measured and found: counts, latency percentiles, throughput, fairness, the
//! invariant checks. Rendered as a human summary and as one JSON document.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

use crate::attempt::{Attempt, Reply};
use crate::fairness::Fairness;
use crate::ramp::{self, Stage};
use crate::verify::{SizedReport, StoreReport, UnknownOutcomes, Violation};

/// Percentiles in milliseconds, from an HDR histogram of microseconds (3 significant digits).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    pub fn from_micros(values: impl IntoIterator<Item = u64>) -> Option<Self> {
        // 1 µs to one hour at 3 significant digits; anything longer is recorded as an hour.
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok()?;
        for v in values {
            h.saturating_record(v.max(1));
        }
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1_000.0;
        Some(Self {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1_000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        })
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.1} ms  p90 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (mean {:.1} ms, n={})",
            self.p50_ms, self.p90_ms, self.p95_ms, self.p99_ms, self.max_ms, self.mean_ms, self.count
        )
    }
}

/// How attempts were paced.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    /// A fixed number of connections, each sending its next attempt when the last one is answered.
    Closed { concurrency: u32 },
    /// A fixed arrival rate, whatever the answers; `max_in_flight` caps open requests.
    Open { rate_per_sec: f64, max_in_flight: u32 },
    /// Closed-loop users whose number follows the stages (k6's `ramping-vus`).
    Ramp { stages: Vec<Stage> },
}

impl Mode {
    /// The most connections the mode opens at once.
    pub fn connections(&self) -> u32 {
        match self {
            Mode::Closed { concurrency } => *concurrency,
            Mode::Open { max_in_flight, .. } => *max_in_flight,
            Mode::Ramp { stages } => ramp::peak(stages),
        }
    }
}

/// How the answers split: the share of 201, 409, 503 and the rest, 503s with and without
/// `Retry-After`, and requests that got no answer (timeouts, broken connections).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answers {
    /// Percent of sent attempts per class: `201`, `409`, `503`, `other` (any other status, and no
    /// answer at all).
    pub share_percent: BTreeMap<String, f64>,
    pub unavailable_with_retry_after: u64,
    pub unavailable_without_retry_after: u64,
    pub timeouts: u64,
    pub transport_errors: u64,
}

impl Answers {
    pub fn of(attempts: &[Attempt]) -> Self {
        let mut counts: BTreeMap<String, u64> =
            ["201", "409", "503", "other"].into_iter().map(|k| (k.to_owned(), 0)).collect();
        let (mut with, mut without, mut timeouts, mut transport_errors) = (0, 0, 0, 0);
        for a in attempts {
            let class = match &a.reply {
                Reply::Http { status: 201, .. } => "201",
                Reply::Http { status: 409, .. } => "409",
                Reply::Http { status: 503, retry_after_secs, .. } => {
                    if retry_after_secs.is_some() {
                        with += 1;
                    } else {
                        without += 1;
                    }
                    "503"
                }
                Reply::Http { .. } => "other",
                Reply::Timeout => {
                    timeouts += 1;
                    "other"
                }
                Reply::Transport { .. } => {
                    transport_errors += 1;
                    "other"
                }
            };
            *counts.entry(class.to_owned()).or_insert(0) += 1;
        }
        let total = attempts.len().max(1) as f64;
        Self {
            share_percent: counts.into_iter().map(|(k, n)| (k, n as f64 * 100.0 / total)).collect(),
            unavailable_with_retry_after: with,
            unavailable_without_retry_after: without,
            timeouts,
            transport_errors,
        }
    }
}

/// The run's setup, echoed in the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    pub started_at: String,
    pub base_url: String,
    pub sale_id: String,
    pub mode: Mode,
    pub users: u32,
    pub planned_attempts: u32,
    pub planned_distinct_users: u32,
    pub planned_duplicates: u32,
    pub duplicate_share: f64,
    pub seed: u64,
    pub user_prefix: String,
    pub duration_limit_secs: f64,
    pub timeout_secs: f64,
    /// Planned attempts that were not sent because the duration ran out.
    pub not_sent: u32,
    /// The most users (connections) that were sending at once.
    pub peak_users: u32,
    /// Users waited for `Retry-After` after a 503.
    pub honor_retry_after: bool,
    /// The sale's stock and what was left when the run started.
    pub stock: i64,
    pub stock_left_at_start: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throughput {
    /// From the first send to the last reply.
    pub elapsed_secs: f64,
    pub sent: u64,
    pub responses: u64,
    pub responses_per_sec: f64,
    pub attempts_per_sec: f64,
}

impl Throughput {
    pub fn of(attempts: &[Attempt]) -> Self {
        let first = attempts.iter().map(|a| a.sent_us).min().unwrap_or(0);
        let last = attempts.iter().map(|a| a.sent_us + a.latency_us).max().unwrap_or(0);
        let elapsed_secs = last.saturating_sub(first) as f64 / 1e6;
        let responses = attempts.iter().filter(|a| a.reply.status().is_some()).count() as u64;
        let sent = attempts.len() as u64;
        let per_sec = |n: u64| {
            if elapsed_secs > 0.0 { n as f64 / elapsed_secs } else { 0.0 }
        };
        Self { elapsed_secs, sent, responses, responses_per_sec: per_sec(responses), attempts_per_sec: per_sec(sent) }
    }
}

/// Replies per HTTP status (`timeout` and `transport_error` for no status) and per problem `code`.
pub fn count_replies(attempts: &[Attempt]) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let mut statuses = BTreeMap::new();
    let mut codes = BTreeMap::new();
    for a in attempts {
        *statuses.entry(a.reply.status_label()).or_insert(0) += 1;
        if let Some(code) = a.reply.code() {
            *codes.entry(code.to_owned()).or_insert(0) += 1;
        }
    }
    (statuses, codes)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub run: RunInfo,
    pub throughput: Throughput,
    /// Send to last byte of the reply, for every attempt that got an HTTP reply.
    pub latency: Option<LatencySummary>,
    /// Open loop only: from the time the attempt was due, so generator back-pressure shows.
    pub latency_from_due: Option<LatencySummary>,
    pub per_status: BTreeMap<String, u64>,
    pub per_code: BTreeMap<String, u64>,
    pub answers: Answers,
    pub fairness: Fairness,
    pub unknown_outcomes: UnknownOutcomes,
    pub reply_violations: Vec<Violation>,
    /// `None` when the table was not read (`--no-verify`) or the sale has variants or several
    /// items per customer (then `sized`).
    pub store: Option<StoreReport>,
    /// The checks of a sale with variants or several items per customer against the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sized: Option<SizedReport>,
}

impl Report {
    pub fn build(
        run: RunInfo,
        attempts: &[Attempt],
        fairness: Fairness,
        reply_violations: Vec<Violation>,
        store: Option<StoreReport>,
        unknown_without_store: UnknownOutcomes,
    ) -> Self {
        let answered = || attempts.iter().filter(|a| a.reply.status().is_some());
        let latency = LatencySummary::from_micros(answered().map(|a| a.latency_us));
        let latency_from_due = match run.mode {
            Mode::Open { .. } => LatencySummary::from_micros(answered().map(Attempt::latency_from_due_us)),
            Mode::Closed { .. } | Mode::Ramp { .. } => None,
        };
        let (per_status, per_code) = count_replies(attempts);
        let unknown_outcomes = store.as_ref().map(|s| s.unknown.clone()).unwrap_or(unknown_without_store);
        Self {
            run,
            throughput: Throughput::of(attempts),
            latency,
            latency_from_due,
            per_status,
            per_code,
            answers: Answers::of(attempts),
            fairness,
            unknown_outcomes,
            reply_violations,
            store,
            sized: None,
        }
    }

    /// The same report with the checks of a sale with variants or several items per customer
    /// (their unknown outcomes replace those from the replies alone).
    pub fn with_sized(mut self, sized: SizedReport) -> Self {
        self.unknown_outcomes = sized.unknown.clone();
        self.sized = Some(sized);
        self
    }

    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.reply_violations
            .iter()
            .chain(self.store.iter().flat_map(|s| s.violations.iter()))
            .chain(self.sized.iter().flat_map(|s| s.violations.iter()))
    }

    pub fn ok(&self) -> bool {
        self.violations().next().is_none()
    }

    /// The human summary: a few aligned lines, then every violation kind (up to 10 of each).
    pub fn summary(&self) -> String {
        let r = &self.run;
        let t = &self.throughput;
        let mut s = String::new();
        let mode = match &r.mode {
            Mode::Closed { concurrency } => format!("closed loop, {concurrency} connections"),
            Mode::Open { rate_per_sec, max_in_flight } => {
                format!("open loop, {rate_per_sec} attempts/s (at most {max_in_flight} in flight)")
            }
            Mode::Ramp { stages } => {
                format!("ramping users {}, peak {} reached", ramp::Display(stages), r.peak_users)
            }
        };
        let pauses = if r.honor_retry_after { ", users wait Retry-After after a 503" } else { "" };
        let _ = writeln!(s, "loadgen: sale {} at {} ({mode}{pauses})", r.sale_id, r.base_url);
        let _ = writeln!(
            s,
            "  plan        {} attempts by {} users ({} duplicates, share {:.3}), seed {}, users {}NNNNNN",
            r.planned_attempts,
            r.planned_distinct_users,
            r.planned_duplicates,
            r.duplicate_share,
            r.seed,
            r.user_prefix
        );
        let not_sent =
            if r.not_sent > 0 { format!(" ({} not sent: the run's time ran out)", r.not_sent) } else { String::new() };
        let _ = writeln!(s, "  sent        {} in {:.2} s{not_sent}; {} responses", t.sent, t.elapsed_secs, t.responses);
        let _ =
            writeln!(s, "  throughput  {:.1} responses/s ({:.1} attempts/s)", t.responses_per_sec, t.attempts_per_sec);
        match &self.latency {
            Some(l) => {
                let _ = writeln!(s, "  latency     {}", l.line());
            }
            None => {
                let _ = writeln!(s, "  latency     (no responses)");
            }
        }
        if let Some(l) = &self.latency_from_due {
            let _ = writeln!(s, "  from due    {}", l.line());
        }
        let join =
            |m: &BTreeMap<String, u64>| m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("  ");
        let _ = writeln!(s, "  status      {}", join(&self.per_status));
        let _ =
            writeln!(s, "  codes       {}", if self.per_code.is_empty() { "-".into() } else { join(&self.per_code) });
        let a = &self.answers;
        let share = a.share_percent.iter().map(|(k, v)| format!("{k} {v:.1}%")).collect::<Vec<_>>().join("  ");
        let _ = writeln!(s, "  share       {share}");
        let _ = writeln!(
            s,
            "  503s        {} with Retry-After, {} without",
            a.unavailable_with_retry_after, a.unavailable_without_retry_after
        );
        let _ = writeln!(
            s,
            "  no answer   {} timeouts (hangs), {} transport errors (refused / reset connections)",
            a.timeouts, a.transport_errors
        );
        let f = &self.fairness;
        let considered = f.k.min(f.arrivals);
        let last = f.last_winner_rank.map(|r| format!("; last winner was arrival #{r}")).unwrap_or_default();
        let unknown = if f.first_k_unknown > 0 { format!(", {} unknown", f.first_k_unknown) } else { String::new() };
        let _ = writeln!(
            s,
            "  fairness    of the first {considered} arrivals that could have won (stock left {}), {} did ({:.1}%){unknown}; \
             {} arrivals, {} winners{last}",
            f.k,
            f.first_k_won,
            f.share() * 100.0,
            f.arrivals,
            f.winners
        );
        let u = &self.unknown_outcomes;
        let mut unknown = format!(
            "  unknown     {} attempts by {} users had no definite reply (5xx, timeout, broken connection)",
            u.attempts, u.users
        );
        if let (Some(c), Some(n)) = (&u.committed_users, u.not_committed_users) {
            let _ = write!(unknown, "; of those users {} bought anyway, {n} did not", c.len());
        }
        let _ = writeln!(s, "{unknown}");
        match (&self.store, &self.sized) {
            (_, Some(sized)) => {
                let c = &sized.sold;
                let _ = writeln!(
                    s,
                    "  stored      {} orders ({} before the run), {} live holding {} items; {} customers, the most held {} (max {})",
                    c.orders_after,
                    c.orders_before,
                    c.live_orders,
                    c.live_items,
                    c.customers,
                    c.most_held,
                    c.max_per_customer
                );
                for v in &c.variants {
                    let _ = writeln!(
                        s,
                        "  variant     {:<12} stock {:>6} + live {:>6} = {:>6} (total {}); {} attempts, {} items sold in the run",
                        v.variant_id,
                        v.remaining,
                        v.live_items,
                        v.remaining + v.live_items,
                        v.total,
                        v.asked,
                        v.sold_in_run
                    );
                }
            }
            (Some(store), None) => {
                let c = &store.sold;
                let exact = if c.at_least == c.at_most {
                    format!("exactly {}", c.at_most)
                } else {
                    format!("{}..={}", c.at_least, c.at_most)
                };
                let _ = writeln!(
                    s,
                    "  stored      {} purchases by this run (owed {exact} = min(stock left {}, users {})); {} in all for stock {}",
                    c.sold_in_run, c.stock_left_at_start, c.users_attempted, c.purchases_after, c.stock
                );
                let sum: i64 = c.shards.iter().sum();
                let _ = writeln!(
                    s,
                    "  shards      {:?} sum {sum} (stock − purchases = {})",
                    c.shards,
                    c.stock - c.purchases_after as i64
                );
            }
            (None, None) => {
                let _ = writeln!(s, "  stored      not checked (--no-verify): only the replies were checked");
            }
        }
        let violations: Vec<&Violation> = self.violations().collect();
        if violations.is_empty() {
            let _ = writeln!(s, "  result      OK: no invariant violated");
        } else {
            let plural = if violations.len() == 1 { "" } else { "s" };
            let _ = writeln!(s, "  result      FAILED: {} invariant violation{plural}", violations.len());
            let mut shown: BTreeMap<String, usize> = BTreeMap::new();
            for v in violations {
                let kind = serde_json::to_value(v)
                    .ok()
                    .and_then(|j| j["kind"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let n = shown.entry(kind).or_insert(0);
                *n += 1;
                if *n <= 10 {
                    let _ = writeln!(s, "    - {v}");
                } else if *n == 11 {
                    let _ = writeln!(s, "    - … more of the same kind in the JSON report");
                }
            }
        }
        s
    }

    /// The report as JSON, with every attempt (send order, user, timing, reply).
    pub fn to_json(&self, attempts: &[Attempt]) -> Value {
        let mut doc = serde_json::to_value(self).unwrap_or(Value::Null);
        doc["ok"] = json!(self.ok());
        doc["violations"] = json!(self.violations().collect::<Vec<_>>());
        doc["attempts"] = json!(attempts);
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::Reply;

    fn attempt(seq: u32, sent_us: u64, latency_us: u64, reply: Reply) -> Attempt {
        Attempt { seq, user: format!("u{seq}"), due_us: None, sent_us, latency_us, reply }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let l = LatencySummary::from_micros((1..=1_000).map(|ms| ms * 1_000)).unwrap();
        assert_eq!(l.count, 1_000);
        assert!((l.p50_ms - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99_ms - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max_ms - 1_000.0).abs() < 1.0, "{l:?}");
        assert!(LatencySummary::from_micros([]).is_none());
    }

    #[test]
    fn throughput_runs_from_first_send_to_last_reply() {
        let ok = || Reply::Http { status: 201, code: None, order_id: None, user_id: None, retry_after_secs: None };
        let a =
            [attempt(0, 0, 500_000, ok()), attempt(1, 500_000, 1_500_000, ok()), attempt(2, 100, 10, Reply::Timeout)];
        let t = Throughput::of(&a);
        assert_eq!(t.elapsed_secs, 2.0);
        assert_eq!((t.sent, t.responses), (3, 2));
        assert_eq!(t.responses_per_sec, 1.0);
    }

    #[test]
    fn answers_split_into_shares_and_lost_replies() {
        let r = |s: u16, after: Option<&str>| Reply::from_http(s, b"{}").with_retry_after(after);
        let a = [
            attempt(0, 0, 1, r(201, None)),
            attempt(1, 0, 1, r(409, None)),
            attempt(2, 0, 1, r(503, Some("1"))),
            attempt(3, 0, 1, r(503, None)),
            attempt(4, 0, 1, r(500, None)),
            attempt(5, 0, 1, Reply::Timeout),
            attempt(6, 0, 1, Reply::Transport { error: "reset".into() }),
            attempt(7, 0, 1, r(201, None)),
        ];
        let answers = Answers::of(&a);
        assert_eq!(answers.share_percent["201"], 25.0);
        assert_eq!(answers.share_percent["409"], 12.5);
        assert_eq!(answers.share_percent["503"], 25.0);
        assert_eq!(answers.share_percent["other"], 37.5);
        assert_eq!((answers.unavailable_with_retry_after, answers.unavailable_without_retry_after), (1, 1));
        assert_eq!((answers.timeouts, answers.transport_errors), (1, 1));
    }

    #[test]
    fn replies_are_counted_per_status_and_code() {
        let r = |s, c: Option<&str>| Reply::Http {
            status: s,
            code: c.map(Into::into),
            order_id: None,
            user_id: None,
            retry_after_secs: None,
        };
        let a = [
            attempt(0, 0, 1, r(201, None)),
            attempt(1, 0, 1, r(409, Some("sold_out"))),
            attempt(2, 0, 1, r(409, Some("already_purchased"))),
            attempt(3, 0, 1, Reply::Timeout),
        ];
        let (statuses, codes) = count_replies(&a);
        assert_eq!(statuses, BTreeMap::from([("201".into(), 1), ("409".into(), 2), ("timeout".into(), 1)]));
        assert_eq!(codes, BTreeMap::from([("already_purchased".into(), 1), ("sold_out".into(), 1)]));
    }
}
