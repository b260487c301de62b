//! Plain-text report: the assumptions, the side-by-side table, the goals, and sweep rows.

use std::fmt::Write;

use clap::{Args, Command};

use crate::metrics::Metrics;
use crate::params::Params;
use crate::{Comparison, SweepRow};

pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{:.2}%", 100.0 * v))
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
}

fn count(v: f64) -> String {
    let s = format!("{:.0}", v.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

fn int(v: u64) -> String {
    count(v as f64)
}

/// Every assumption with its value and meaning, in command-line spelling.
pub fn assumptions(p: &Params) -> String {
    let values = serde_json::to_value(p).unwrap_or_default();
    let cmd = Params::augment_args(Command::new("sim"));
    let mut out = String::from("Assumptions (every one is a flag; defaults unless changed):\n");
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let value = match values.get(id) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "(unset)".into(),
            Some(v) => v.to_string(),
        };
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let _ = writeln!(out, "  --{:<22} {:>9}  {}", id.replace('_', "-"), value, help);
    }
    let _ = writeln!(
        out,
        "  Admission rule: admit_per_second = {} = {}\n    (each shard item is held {} ms per transaction, so one shard takes at most {:.0} transactions/s;\n    --admit-per-shard {} keeps each shard at {:.0}% of that ceiling)",
        match p.admit_per_second {
            Some(_) => "--admit-per-second".to_owned(),
            None => format!("shards {} x admit_per_shard {}", p.shards, p.admit_per_shard),
        },
        p.admit_rate(),
        p.tx_hold_ms,
        1e3 / p.tx_hold_ms,
        p.admit_per_shard,
        100.0 * p.admit_per_shard * p.tx_hold_ms / 1e3,
    );
    out
}

type Row = (&'static str, fn(&Metrics) -> String);

fn rows() -> Vec<Row> {
    vec![
        ("items sold", |m| int(m.sold)),
        ("  of which to scripts", |m| int(m.sold_to_scripts)),
        ("scripts' share of the stock", |m| pct(m.scripts_share_of_stock)),
        ("scripts' share of the crowd", |m| pct(Some(m.scripts_share_of_crowd))),
        ("FIFO fidelity, humans after opening", |m| pct(m.fifo_after_opening)),
        ("  pairs compared", |m| int(m.fifo_pairs_after_opening)),
        ("FIFO fidelity, pre-queue counted at opening", |m| pct(m.fifo_with_prequeue)),
        ("  pairs compared", |m| int(m.fifo_pairs_with_prequeue)),
        ("pre-queue: corr(arrival time, got item)", |m| num(m.prequeue_arrival_item_correlation, 4)),
        ("pre-queue: item rate, earlier half", |m| pct(m.prequeue_item_rate_earlier_half)),
        ("pre-queue: item rate, later half", |m| pct(m.prequeue_item_rate_later_half)),
        ("first k humans by arrival with an item", |m| pct(m.first_k_humans_item_share)),
        ("first k humans after opening with an item", |m| pct(m.first_k_after_opening_item_share)),
        ("identities that sent a purchase", |m| int(m.buyers)),
        ("429 (API Gateway + Lambda)", |m| {
            format!("{} ({} + {})", int(m.r429), int(m.r429_api_gateway), int(m.r429_lambda))
        }),
        ("503", |m| int(m.r503)),
        ("429+503 per identity that sent a purchase", |m| num(m.refusals_per_buyer, 3)),
        ("429/503 to admitted buyers", |m| m.refusals_to_admitted.map_or_else(|| "-".into(), int)),
        ("  of which after sell-out", |m| m.refusals_to_admitted_after_sell_out.map_or_else(|| "-".into(), int)),
        ("403 not_yet_admitted", |m| int(m.r403_not_yet_admitted)),
        ("sold_out to admitted buyers in their window", |m| m.sold_out_to_admitted.map_or_else(|| "-".into(), int)),
        ("items per identity with an item", |m| num(m.items_per_buyer, 2)),
        ("humans with an item", |m| int(m.humans_with_item)),
        ("humans who gave up after retries", |m| int(m.humans_gave_up)),
        ("humans told sold_out", |m| int(m.humans_told_sold_out)),
        ("scripts that stopped without an answer", |m| int(m.scripts_stopped)),
        ("time to sell out (s after opening)", |m| num(m.sell_out_s, 3)),
        ("time to sell 95% of the stock (s)", |m| num(m.sold_95_s, 3)),
        ("purchase requests", |m| int(m.requests)),
        ("Lambda invocations (purchase)", |m| int(m.lambda_invocations)),
        ("containers used", |m| int(m.containers)),
        ("sold_out answered from the hint", |m| int(m.hinted_sold_out)),
        ("DynamoDB transactions", |m| int(m.transactions)),
        ("DynamoDB transaction conflicts", |m| int(m.conflicts)),
        ("  of which while stock remained", |m| int(m.conflicts_before_sell_out)),
        ("  conflicts per transaction", |m| pct(m.conflict_rate)),
        ("WCU", |m| count(m.wcu)),
        ("RCU", |m| count(m.rcu)),
        ("room joins", |m| int(m.joins)),
        ("room polls read from DynamoDB / from the CDN", |m| format!("{} / {}", int(m.polls_db), int(m.polls_cdn))),
        ("wait: opening to the last human poll (s)", |m| num(m.wait_s, 1)),
        ("wait: pages' requests to API Gateway", |m| m.wait_origin_requests.map_or_else(|| "-".into(), int)),
        ("  per second, mean / busiest second", |m| match (m.wait_origin_rps_mean, m.wait_origin_rps_peak) {
            (Some(a), Some(b)) => format!("{} / {}", count(a), int(b)),
            _ => "-".into(),
        }),
        ("  busiest second after the joins and draw reads", |m| {
            m.wait_origin_rps_steady_peak.map_or_else(|| "-".into(), int)
        }),
        ("scripts' joins and polls, busiest second", |m| m.script_origin_rps_peak.map_or_else(|| "-".into(), int)),
        ("room places admitted / declined", |m| format!("{} / {}", int(m.admitted), int(m.declined))),
        ("last waiting identity told sold_out (s)", |m| num(m.last_told_sold_out_s, 1)),
        ("max items per identity", |m| m.max_items_per_identity.to_string()),
        ("last event (s after opening)", |m| num(Some(m.end_s), 1)),
    ]
}

/// The side-by-side table.
pub fn table(c: &Comparison) -> String {
    let rows: Vec<(&str, String, String)> =
        rows().into_iter().map(|(label, f)| (label, f(&c.direct), f(&c.room))).collect();
    let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(14);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(14);
    let mut out = String::new();
    let _ = writeln!(out, "| {:<w0$} | {:>w1$} | {:>w2$} |", "metric", "direct (today)", "waiting room");
    let _ = writeln!(out, "|{}|{}:|{}:|", "-".repeat(w0 + 2), "-".repeat(w1 + 1), "-".repeat(w2 + 1));
    for (label, d, r) in rows {
        let _ = writeln!(out, "| {label:<w0$} | {d:>w1$} | {r:>w2$} |");
    }
    out
}

pub fn goals(c: &Comparison) -> String {
    let mut out = String::from("Goals (waiting room, these assumptions):\n");
    for g in &c.goals {
        let _ = writeln!(out, "  [{}] {}: {}", if g.met { "met" } else { "NOT MET" }, g.goal, g.value);
    }
    out
}

/// The whole text report of one comparison.
pub fn text(c: &Comparison) -> String {
    format!(
        "Crowd simulation of a flash-sale drop - a model, not a measurement.\n\n{}\n{}\n{}",
        assumptions(&c.assumptions),
        table(c),
        goals(c)
    )
}

/// One row per swept value: the headline metrics of both paths.
pub fn sweep_table(rows: &[SweepRow]) -> String {
    let name = rows.first().map_or("value", |r| r.name.as_str());
    let header = [
        name,
        "D scripts%",
        "D FIFO",
        "D 429+503/buyer",
        "D sell-out s",
        "D conflicts",
        "D WCU",
        "R scripts%",
        "R FIFO",
        "R 429/503 admitted",
        "R sell-out s",
        "R 95% sold s",
        "R conflicts",
        "R WCU",
        "R RCU",
        "R wait req/s mean",
        "R wait req/s peak",
        "R wait req/s steady peak",
    ];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let (d, m) = (&r.comparison.direct, &r.comparison.room);
            vec![
                r.value.clone(),
                pct(d.scripts_share_of_stock),
                pct(d.fifo_with_prequeue),
                num(d.refusals_per_buyer, 3),
                num(d.sell_out_s, 2),
                int(d.conflicts),
                count(d.wcu),
                pct(m.scripts_share_of_stock),
                pct(m.fifo_with_prequeue),
                m.refusals_to_admitted.map_or_else(|| "-".into(), int),
                num(m.sell_out_s, 2),
                num(m.sold_95_s, 2),
                int(m.conflicts),
                count(m.wcu),
                count(m.rcu),
                num(m.wait_origin_rps_mean, 0),
                m.wait_origin_rps_peak.map_or_else(|| "-".into(), int),
                m.wait_origin_rps_steady_peak.map_or_else(|| "-".into(), int),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| body.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}")).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    out.push_str(&line(header.iter().map(|h| (*h).to_owned()).collect()));
    out.push_str(&format!(
        "|{}|\n",
        widths.iter().map(|w| format!("{}:", "-".repeat(w + 1))).collect::<Vec<_>>().join("|")
    ));
    for r in body {
        out.push_str(&line(r));
    }
    out.push_str("D = direct path (today), R = waiting room; FIFO = fidelity with the pre-queue counted at opening;\nwait req/s = humans' pages' requests to API Gateway during the wait (joins, own-place reads, status origin fetches);\nsteady peak = the busiest second from open_window_s + 10 s on.\n");
    out
}
