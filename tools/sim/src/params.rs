//! The model's assumptions: every one is a command-line option with a default, printed in the
//! report, and changeable one at a time by `--sweep NAME=V1,V2,…`.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// How the arrivals after opening spread over the opening window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Evenly over the window.
    Uniform,
    /// Density falling linearly from opening to the end of the window (half arrive in the first 29%).
    Burst,
    /// Exponential with mean window/4, cut at the window's end.
    Exp,
}

/// Where a purchase without a valid admission token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenCheck {
    /// At the CDN (a function checks the token's signature) before API Gateway: costs nothing here.
    Edge,
    /// In the purchase function: the request takes an API Gateway token and a Lambda execution.
    Lambda,
}

/// How a waiting page learns of its admission after opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacePolls {
    /// Every poll asks for the user's own place (uncached: API Gateway, Lambda, a DynamoDB read).
    Every,
    /// Every poll reads the shared sale status (cached by the CDN); the page asks for its own place
    /// once after the draw, when its place is within `--place-horizon-polls` status polls of the
    /// admitted range, when the status says it is admitted, and every `--safety-poll-s`.
    Horizon,
}

/// The assumptions. Field names are the `--sweep` names (`admit_per_shard` or `admit-per-shard`).
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct Params {
    /// Seed of the random number generator: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    // Crowd.
    /// Identities pressing Buy (humans and scripts together).
    #[arg(long, default_value_t = 100_000)]
    pub clients: u32,
    /// Share of the identities that are scripts.
    #[arg(long, default_value_t = 0.02)]
    pub scripts: f64,
    /// Share of the identities that arrive before opening (the ones who wait).
    #[arg(long, default_value_t = 0.5)]
    pub pre_share: f64,
    /// The pre-opening crowd arrives uniformly over this many seconds before opening.
    #[arg(long, default_value_t = 900.0)]
    pub pre_window_s: f64,
    /// The others arrive within this many seconds after opening.
    #[arg(long, default_value_t = 2.0)]
    pub open_window_s: f64,
    /// Shape of the arrivals after opening.
    #[arg(long, value_enum, default_value_t = Arrivals::Uniform)]
    pub arrivals: Arrivals,
    /// Direct path: a human waiting before opening presses Buy uniformly within this many seconds after opening.
    #[arg(long, default_value_t = 1.0)]
    pub reaction_s: f64,
    /// A human refused with 429/503 presses again at most this many times.
    #[arg(long, default_value_t = 2)]
    pub human_retries: u32,
    /// A human's retry comes this many seconds after the refusal, at the earliest.
    #[arg(long, default_value_t = 1.0)]
    pub human_retry_min_s: f64,
    /// ... and at the latest.
    #[arg(long, default_value_t = 3.0)]
    pub human_retry_max_s: f64,
    /// A script sends its next request this many ms after each answer, until it has an item or hears sold_out.
    #[arg(long, default_value_t = 100.0)]
    pub script_interval_ms: f64,
    /// A script stops this many seconds after its first request if it has neither an item nor a sold_out.
    #[arg(long, default_value_t = 60.0)]
    pub script_max_s: f64,

    // Stock and DynamoDB.
    /// Items for sale.
    #[arg(long, default_value_t = 1_000)]
    pub stock: u32,
    /// Stock shards (1..=64), stock split evenly.
    #[arg(long, default_value_t = 32)]
    pub shards: u32,
    /// A transaction holds its stock-shard item this long; one arriving meanwhile is cancelled (conflict). Also its latency.
    #[arg(long, default_value_t = 8.0)]
    pub tx_hold_ms: f64,
    /// A transaction whose condition fails (empty shard) holds the item this long (it is in flight like any other).
    #[arg(long, default_value_t = 8.0)]
    pub cancelled_hold_ms: f64,
    /// Extra attempts on one shard after a conflict, before falling through to the next shard.
    #[arg(long, default_value_t = 3)]
    pub conflict_retries: u32,
    /// Full-jitter backoff after a conflict: random in 0..min(cap, base * 2^attempt) ms.
    #[arg(long, default_value_t = 10.0)]
    pub backoff_base_ms: f64,
    /// Cap of that backoff.
    #[arg(long, default_value_t = 100.0)]
    pub backoff_cap_ms: f64,
    /// A container answers sold_out without DynamoDB this long after it saw every shard empty (0 = off).
    #[arg(long, default_value_t = 1000.0)]
    pub sold_out_hint_ms: f64,
    /// Latency of the strongly consistent read of the buyer's record behind a hinted sold_out.
    #[arg(long, default_value_t = 4.0)]
    pub read_ms: f64,
    /// RCU of that read.
    #[arg(long, default_value_t = 1.0)]
    pub owned_read_rcu: f64,
    /// A purchase whose shards were left unreached through conflicts reads the shards (strongly
    /// consistent, 1 RCU each, `read_ms`) before answering: none left is `sold_out`, any left 503.
    /// `--busy-without-stock-read` models the path without that read (every such purchase a 503).
    #[arg(long = "busy-without-stock-read", action = clap::ArgAction::SetFalse, default_value_t = true)]
    pub stock_read_on_busy: bool,
    /// WCU per item of a transaction, committed or cancelled (2 items per purchase transaction).
    #[arg(long, default_value_t = 2.0)]
    pub wcu_per_item: f64,

    // API Gateway and Lambda.
    /// API Gateway throttle: steady requests per second on the purchase route.
    #[arg(long, default_value_t = 2_000.0)]
    pub api_rate: f64,
    /// API Gateway throttle: token-bucket size.
    #[arg(long, default_value_t = 5_000.0)]
    pub api_burst: f64,
    /// Concurrent executions of the purchase function; above it requests get 429.
    #[arg(long, default_value_t = 1_000)]
    pub lambda_concurrency: u32,
    /// Time a purchase spends in the function outside DynamoDB.
    #[arg(long, default_value_t = 15.0)]
    pub service_ms: f64,
    /// The function answers 503 when this much time has passed before its next transaction.
    #[arg(long, default_value_t = 9_500.0)]
    pub time_budget_ms: f64,

    // Waiting room.
    /// Admission rate per stock shard; the room admits shards * this per second unless --admit-per-second is set.
    #[arg(long, default_value_t = 50.0)]
    pub admit_per_shard: f64,
    /// Admission rate, overriding the per-shard rule.
    #[arg(long)]
    pub admit_per_second: Option<f64>,
    /// The admitted range advances in steps this many ms apart.
    #[arg(long, default_value_t = 100.0)]
    pub admit_tick_ms: f64,
    /// Places admitted within the claim window and not bought never exceed this factor times the
    /// remaining stock (1.0: every admission has an item set aside).
    #[arg(long, default_value_t = 1.0)]
    pub overbook: f64,
    /// An admitted person's token buys for this long (seconds) after admission, with an item set
    /// aside all that time; after it the place is used up.
    #[arg(long, default_value_t = 60.0)]
    pub claim_s: f64,
    /// An admission counts against the stock this much longer than its claim window (seconds):
    /// the product's `PURCHASE_GRACE_MS`, the time a purchase checked in time may still commit.
    #[arg(long, default_value_t = 10.0)]
    pub grace_s: f64,
    /// A waiting user asks for news this often (seconds); a script as often as it retries.
    #[arg(long, default_value_t = 2.0)]
    pub poll_interval_s: f64,
    /// RCU of a poll after opening (a read of the user's place).
    #[arg(long, default_value_t = 0.5)]
    pub poll_rcu: f64,
    /// What a waiting human's poll after opening asks: its own place every time (`every`, the
    /// storefront before the shared-status rule) or the CDN-cached status, its own place only near
    /// its turn (`horizon`).
    #[arg(long, value_enum, default_value_t = PlacePolls::Horizon)]
    pub place_polls: PlacePolls,
    /// With `--place-polls horizon`: the CDN keeps the sale status this many seconds, so the status
    /// reaches the origin once per this many seconds per sale (one edge cache; Origin Shield).
    #[arg(long, default_value_t = 1.0)]
    pub status_cache_s: f64,
    /// With `--place-polls horizon`: a page asks for its own place at a status poll whose admitted
    /// range moved since its last ask and is within admit_per_second x poll_interval_s x this of its place.
    #[arg(long, default_value_t = 2.0)]
    pub place_horizon_polls: f64,
    /// With `--place-polls horizon`: a page asks for its own place anyway when this long has passed
    /// since its last ask (seconds; each time a random share of it, from half to all, so asks spread out).
    #[arg(long, default_value_t = 60.0)]
    pub safety_poll_s: f64,
    /// With `--place-polls horizon`: after the draw, the pre-queue's reads of their drawn places
    /// spread over pre-queue / this many seconds (at most --draw-read-max-s): the page waits a random share of it.
    #[arg(long, default_value_t = 10_000.0)]
    pub draw_read_rate: f64,
    /// ... at most this many seconds (keep it well under the claim window: the first places drawn
    /// are admitted at once and learn it only when they read their place).
    #[arg(long, default_value_t = 5.0)]
    pub draw_read_max_s: f64,
    /// RCU of a poll before opening (the same answer for everyone, cached by the CDN).
    #[arg(long, default_value_t = 0.0)]
    pub pre_open_poll_rcu: f64,
    /// WCU of a join (the place, plus the counter).
    #[arg(long, default_value_t = 2.0)]
    pub join_wcu: f64,
    /// The sale's `maxPerCustomer`: the most items one identity may buy, and the items each
    /// admission sets aside (the room counts admitted people × this against the stock).
    #[arg(long, default_value_t = 1)]
    pub max_per_customer: u32,
    /// Buyers' quantities (an assumption): a human buyer wants `--max-per-customer` items with this
    /// probability, else 1; scripts always want `--max-per-customer`. A purchase asks for what is
    /// wanted, and at the end takes what is left when fewer remain.
    #[arg(long, default_value_t = 0.5)]
    pub p_max_quantity: f64,
    /// Probability that an admitted human buys (scripts always do).
    #[arg(long, default_value_t = 0.8)]
    pub p_buy: f64,
    /// An admitted human presses Buy this many seconds after learning of admission, at the earliest.
    #[arg(long, default_value_t = 1.0)]
    pub think_min_s: f64,
    /// ... and at the latest.
    #[arg(long, default_value_t = 5.0)]
    pub think_max_s: f64,
    /// Where a purchase without a valid token is refused (403 not_yet_admitted).
    #[arg(long, value_enum, default_value_t = TokenCheck::Edge)]
    pub token_check: TokenCheck,
    /// Once the room has closed (stock gone), the purchase function answers sold_out to a token holder
    /// without DynamoDB (true), or runs the current shard walk (false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub closed_check: bool,
    /// With --token-check lambda: time the function spends refusing a purchase without a token.
    #[arg(long, default_value_t = 2.0)]
    pub reject_ms: f64,

    // Report.
    /// "First k humans" for the share of early arrivals who got an item.
    #[arg(long, default_value_t = 1_000)]
    pub first_k: u32,
    /// Two arrivals count as ordered for first-come-first-served when at least this many seconds apart.
    #[arg(long, default_value_t = 1.0)]
    pub fifo_gap_s: f64,
    /// The simulation stops this many seconds after opening.
    #[arg(long, default_value_t = 900.0)]
    pub horizon_s: f64,
}

impl Default for Params {
    fn default() -> Self {
        crate::Cli::parse_params(std::iter::empty::<String>()).expect("the defaults parse")
    }
}

impl Params {
    /// The admission rate: `--admit-per-second` if given, else `shards * admit_per_shard`.
    pub fn admit_rate(&self) -> f64 {
        self.admit_per_second.unwrap_or(f64::from(self.shards) * self.admit_per_shard)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let share = |v: f64, name: &str| {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { bail!("--{name} must be within 0..=1, not {v}") }
        };
        share(self.scripts, "scripts")?;
        share(self.pre_share, "pre-share")?;
        share(self.p_buy, "p-buy")?;
        share(self.p_max_quantity, "p-max-quantity")?;
        if !(1..=10).contains(&self.max_per_customer) {
            bail!("--max-per-customer must be within 1..=10 (the product's bound), not {}", self.max_per_customer);
        }
        if !(1..=64).contains(&self.shards) {
            bail!("--shards must be within 1..=64, not {}", self.shards);
        }
        if self.clients == 0 {
            bail!("--clients must be at least 1");
        }
        let positive = [
            ("pre-window-s", self.pre_window_s),
            ("open-window-s", self.open_window_s),
            ("script-interval-ms", self.script_interval_ms),
            ("tx-hold-ms", self.tx_hold_ms),
            ("api-rate", self.api_rate),
            ("api-burst", self.api_burst),
            ("admit-tick-ms", self.admit_tick_ms),
            ("poll-interval-s", self.poll_interval_s),
            ("status-cache-s", self.status_cache_s),
            ("safety-poll-s", self.safety_poll_s),
            ("draw-read-rate", self.draw_read_rate),
            ("horizon-s", self.horizon_s),
            ("admit-rate", self.admit_rate()),
        ];
        for (name, v) in positive {
            if !(v > 0.0 && v.is_finite()) {
                bail!("--{name} must be a positive number, not {v}");
            }
        }
        let ordered = [
            ("human-retry", self.human_retry_min_s, self.human_retry_max_s),
            ("think", self.think_min_s, self.think_max_s),
        ];
        for (name, lo, hi) in ordered {
            if !(0.0 <= lo && lo <= hi) {
                bail!("--{name}-min-s must be within 0..=--{name}-max-s");
            }
        }
        let non_negative = [
            self.reaction_s,
            self.backoff_base_ms,
            self.backoff_cap_ms,
            self.sold_out_hint_ms,
            self.read_ms,
            self.service_ms,
            self.time_budget_ms,
            self.overbook,
            self.claim_s,
            self.grace_s,
            self.reject_ms,
            self.cancelled_hold_ms,
            self.script_max_s,
            self.fifo_gap_s,
            self.place_horizon_polls,
            self.draw_read_max_s,
        ];
        if non_negative.iter().any(|v| !(*v >= 0.0 && v.is_finite())) {
            bail!("durations, costs and factors must be non-negative numbers");
        }
        Ok(())
    }

    /// A copy with one assumption changed: `name` is a field name (dashes or underscores), `value`
    /// as on the command line.
    pub fn with(&self, name: &str, value: &str) -> anyhow::Result<Params> {
        let key = name.trim().trim_start_matches("--").replace('-', "_");
        let mut fields = serde_json::to_value(self)?;
        let map = fields.as_object_mut().context("parameters serialize to an object")?;
        if !map.contains_key(&key) {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            bail!("no assumption named `{name}`; known: {}", known.join(", "));
        }
        let value = value.trim();
        let v = if let Ok(b) = value.parse::<bool>() {
            serde_json::Value::from(b)
        } else if let Ok(i) = value.parse::<i64>() {
            serde_json::Value::from(i)
        } else if let Ok(f) = value.parse::<f64>() {
            serde_json::Value::from(f)
        } else {
            serde_json::Value::from(value.to_ascii_lowercase())
        };
        map.insert(key.clone(), v);
        let p: Params =
            serde_json::from_value(fields).with_context(|| format!("`{value}` is not a value for {key}"))?;
        p.validate()?;
        Ok(p)
    }
}
