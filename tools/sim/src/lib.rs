//! Crowd simulation of a flash-sale drop (issue 10): the current direct purchase path and the
//! waiting room, side by side, on the same seeded crowd. A model of the cloud, not a measurement.

pub mod metrics;
pub mod model;
pub mod params;
pub mod report;

use clap::{Args, Command, FromArgMatches, Parser};
use serde::Serialize;

pub use metrics::Metrics;
pub use model::{Path, crowd, run};
pub use params::{Arrivals, Params, PlacePolls, TokenCheck};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "sim",
    about = "Crowd simulation of a flash-sale drop: the direct purchase path and the waiting room side by side (a model, not a measurement)",
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub params: Params,
    /// Run once per value of one assumption and print one row per value, e.g. `shards=1,8,32`.
    #[arg(long, value_name = "NAME=V1,V2,...")]
    pub sweep: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// The assumptions from command-line style arguments (without the program name).
    pub fn parse_params<I, T>(args: I) -> anyhow::Result<Params>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let cmd = Params::augment_args(Command::new("sim").args_override_self(true));
        let argv = std::iter::once("sim".to_owned()).chain(args.into_iter().map(Into::into));
        let matches = cmd.try_get_matches_from(argv)?;
        Ok(Params::from_arg_matches(&matches)?)
    }
}

/// One seed's crowd through both paths.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub assumptions: Params,
    /// The admission rate the room used (`admit_per_second`, or `shards * admit_per_shard`).
    pub admit_rate_per_s: f64,
    pub direct: Metrics,
    pub room: Metrics,
    pub goals: Vec<Goal>,
}

/// A goal of issue 10, checked on the room's metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub goal: String,
    pub met: bool,
    pub value: String,
}

pub fn simulate(p: &Params) -> Comparison {
    let clients = crowd(p);
    let direct = metrics::metrics(p, &clients, &run(p, &clients, Path::Direct));
    let room = metrics::metrics(p, &clients, &run(p, &clients, Path::Room));
    let goals = goals(&room);
    Comparison { assumptions: p.clone(), admit_rate_per_s: p.admit_rate(), direct, room, goals }
}

/// The goals: scripts get no more than their share of the crowd (±1 point), first-come-first-served
/// fidelity ≥ 99%, no 429/503 to admitted buyers.
pub fn goals(room: &Metrics) -> Vec<Goal> {
    let share = room.scripts_share_of_stock.unwrap_or(0.0);
    let excess = share - room.scripts_share_of_crowd;
    let fifo = [room.fifo_after_opening, room.fifo_with_prequeue];
    let fifo_ok = fifo.iter().all(|f| f.is_none_or(|f| f >= 0.99)) && fifo.iter().any(Option::is_some);
    let refusals = room.refusals_to_admitted.unwrap_or(0);
    vec![
        Goal {
            goal: "scripts' share of the stock within 1 point of their share of the crowd".into(),
            met: excess.abs() <= 0.01 + 1e-12,
            value: format!("{:.2}% of stock vs {:.2}% of crowd", 100.0 * share, 100.0 * room.scripts_share_of_crowd),
        },
        Goal {
            goal: "first-come-first-served fidelity for humans >= 99%".into(),
            met: fifo_ok,
            value: format!(
                "after opening {}, with the pre-queue {}",
                report::pct(room.fifo_after_opening),
                report::pct(room.fifo_with_prequeue)
            ),
        },
        Goal {
            goal: "no 429/503 on the purchase path for admitted buyers".into(),
            met: refusals == 0,
            value: format!("{refusals}"),
        },
    ]
}

/// One row of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    pub name: String,
    pub value: String,
    pub comparison: Comparison,
}

/// Runs `base` once per value of the assumption `spec` names (`NAME=V1,V2,...`).
pub fn sweep(base: &Params, spec: &str) -> anyhow::Result<Vec<SweepRow>> {
    let (name, values) = spec.split_once('=').ok_or_else(|| anyhow::anyhow!("--sweep wants NAME=V1,V2,..."))?;
    let values: Vec<&str> = values.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        anyhow::bail!("--sweep {name}= has no values");
    }
    let params: Vec<Params> = values.iter().map(|v| base.with(name, v)).collect::<anyhow::Result<_>>()?;
    Ok(values
        .iter()
        .zip(params)
        .map(|(v, p)| SweepRow { name: name.trim().to_owned(), value: (*v).to_owned(), comparison: simulate(&p) })
        .collect())
}
