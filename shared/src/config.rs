//! Configuration, read once at cold start. A missing or bad value stops start-up with a message
//! that names the variable.

use std::time::Duration;

/// Who the buyer is: the JWT authorizer's `sub` (deployed default) or the body's `userId`
/// (local development and load tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Jwt,
    Body,
}

/// How path parameters arrive: decoded (API Gateway) or percent-encoded (`cargo lambda watch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathParams {
    #[default]
    Decoded,
    PercentEncoded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TABLE_NAME` (required).
    pub table_name: String,
    /// `AUTH_MODE`: `jwt` (default) or `body`.
    pub auth_mode: AuthMode,
    /// `DYNAMODB_ENDPOINT`: set only for local development against DynamoDB Local (loopback only).
    pub dynamodb_endpoint: Option<String>,
    /// `PATH_PARAMETERS`: `decoded` (default, API Gateway) or `percent-encoded` (local emulator).
    pub path_params: PathParams,
    /// `ADMISSION_KEY` (hex, at least 32 bytes) and `ADMISSION_KEY_PREVIOUS` (during a rotation):
    /// sign and check waiting-room admission tokens. Local only: deployed functions read the key
    /// from its secret (`admission_key_secret`), never from their configuration.
    pub admission_keys: Option<crate::room::AdmissionKeys>,
    /// `ADMISSION_KEY_SECRET_ARN`: the Secrets Manager secret holding the admission key (hex),
    /// read at cold start and again every few minutes ([`crate::admission_key`]).
    pub admission_key_secret: Option<String>,
    /// `SECRETS_MANAGER_ENDPOINT`: a loopback Secrets Manager for tests (a fake: there is no local
    /// emulator of the service).
    pub secrets_endpoint: Option<String>,
    pub tuning: Tuning,
}

impl Config {
    /// A configuration for `table_name` with every other setting at its default.
    pub fn for_table(table_name: impl Into<String>, auth_mode: AuthMode) -> Self {
        Self {
            table_name: table_name.into(),
            auth_mode,
            dynamodb_endpoint: None,
            path_params: PathParams::Decoded,
            admission_keys: None,
            admission_key_secret: None,
            secrets_endpoint: None,
            tuning: Tuning::default(),
        }
    }
}

/// Knobs of the purchase path. Defaults suit a flash sale; tests shorten or disable the hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// `SALE_CACHE_MS`: how long a warm container trusts its copy of a sale's configuration.
    pub sale_cache: Duration,
    /// `SOLD_OUT_HINT_MS`: how long a container answers `sold_out` without asking DynamoDB after
    /// it has seen every shard empty. 0 disables the hint.
    pub sold_out_hint: Duration,
    /// `CONFLICT_RETRIES`: extra attempts on one shard after a `TransactionConflict`.
    pub conflict_retries: u32,
    /// Full-jitter backoff between conflict retries: random in `0..min(cap, base * 2^attempt)`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// `DEADLINE_MARGIN_MS`: a request answers 503 this long before the invocation's deadline
    /// rather than let the invocation time out.
    pub deadline_margin: Duration,
    /// Largest pre-queue a request draws itself at opening (`REQUEST_DRAW_LIMIT`); a larger one
    /// is drawn by the scheduled `sweeper` function, which has the time for it.
    pub request_draw_limit: i64,
    /// `DRAW_BUDGET_MS`: time the scheduled function spends on one room's draw per run (its
    /// timeout is 120 s, and the hold sweep follows); a larger pre-queue continues on the next
    /// run, from its last stored checkpoint.
    pub draw_budget: Duration,
    /// Each container steps a room only once its state is a second plus an offset of its own old,
    /// the offset drawn once in `0..room_step_spread`: of the containers that read a stale room
    /// at one moment, one steps it, rather than all sending the same conditional write.
    pub room_step_spread: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            sale_cache: Duration::from_secs(5),
            sold_out_hint: Duration::from_secs(1),
            conflict_retries: 3,
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(100),
            deadline_margin: Duration::from_millis(500),
            request_draw_limit: 5_000,
            draw_budget: Duration::from_secs(45),
            room_step_spread: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {var} {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table_name = get("TABLE_NAME")
            .filter(|t| !t.trim().is_empty())
            .ok_or(ConfigError { var: "TABLE_NAME", problem: "must be set to the DynamoDB table name".into() })?;
        let auth_mode = match get("AUTH_MODE").as_deref() {
            None | Some("jwt") => AuthMode::Jwt,
            Some("body") => AuthMode::Body,
            Some(other) => {
                return Err(ConfigError {
                    var: "AUTH_MODE",
                    problem: format!("must be `jwt` or `body`, not `{other}`"),
                });
            }
        };
        let ms = |var: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().map(Duration::from_millis).map_err(|_| ConfigError {
                    var,
                    problem: format!("must be a whole number of milliseconds, not `{v}`"),
                }),
            }
        };
        let d = Tuning::default();
        let conflict_retries = match get("CONFLICT_RETRIES") {
            None => d.conflict_retries,
            Some(v) => v.parse::<u32>().ok().filter(|n| *n <= 9).ok_or(ConfigError {
                var: "CONFLICT_RETRIES",
                problem: format!("must be a number from 0 to 9, not `{v}`"),
            })?,
        };
        let request_draw_limit = match get("REQUEST_DRAW_LIMIT") {
            None => d.request_draw_limit,
            Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or(ConfigError {
                var: "REQUEST_DRAW_LIMIT",
                problem: format!("must be a whole number of people, not `{v}`"),
            })?,
        };
        let path_params = match get("PATH_PARAMETERS").as_deref() {
            None | Some("decoded") => PathParams::Decoded,
            Some("percent-encoded") => PathParams::PercentEncoded,
            Some(other) => {
                return Err(ConfigError {
                    var: "PATH_PARAMETERS",
                    problem: format!("must be `decoded` or `percent-encoded`, not `{other}`"),
                });
            }
        };
        let admission_keys = match get("ADMISSION_KEY") {
            None => None,
            Some(key) => Some(
                crate::room::AdmissionKeys::from_hex(&key, get("ADMISSION_KEY_PREVIOUS").as_deref())
                    .map_err(|problem| ConfigError { var: "ADMISSION_KEY", problem })?,
            ),
        };
        Ok(Self {
            table_name,
            auth_mode,
            path_params,
            admission_keys,
            admission_key_secret: get("ADMISSION_KEY_SECRET_ARN").filter(|e| !e.trim().is_empty()),
            secrets_endpoint: get("SECRETS_MANAGER_ENDPOINT").filter(|e| !e.is_empty()),
            dynamodb_endpoint: get("DYNAMODB_ENDPOINT").filter(|e| !e.is_empty()),
            tuning: Tuning {
                sale_cache: ms("SALE_CACHE_MS", d.sale_cache)?,
                sold_out_hint: ms("SOLD_OUT_HINT_MS", d.sold_out_hint)?,
                conflict_retries,
                request_draw_limit,
                deadline_margin: ms("DEADLINE_MARGIN_MS", d.deadline_margin)?,
                draw_budget: ms("DRAW_BUDGET_MS", d.draw_budget)?,
                ..d
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn table_name_is_required_and_jwt_is_the_default() {
        assert_eq!(cfg(&[]).unwrap_err().var, "TABLE_NAME");
        let c = cfg(&[("TABLE_NAME", "t")]).unwrap();
        assert_eq!(c.auth_mode, AuthMode::Jwt);
        assert_eq!(c.tuning, Tuning::default());
        assert_eq!(c.dynamodb_endpoint, None);
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(cfg(&[("TABLE_NAME", "t"), ("AUTH_MODE", "none")]).unwrap_err().var, "AUTH_MODE");
        assert_eq!(cfg(&[("TABLE_NAME", "t"), ("SOLD_OUT_HINT_MS", "1s")]).unwrap_err().var, "SOLD_OUT_HINT_MS");
        assert_eq!(cfg(&[("TABLE_NAME", "t"), ("CONFLICT_RETRIES", "50")]).unwrap_err().var, "CONFLICT_RETRIES");
        assert_eq!(cfg(&[("TABLE_NAME", "t"), ("PATH_PARAMETERS", "raw")]).unwrap_err().var, "PATH_PARAMETERS");
        let local = cfg(&[("TABLE_NAME", "t"), ("PATH_PARAMETERS", "percent-encoded")]).unwrap();
        assert_eq!(local.path_params, PathParams::PercentEncoded);
        let c = cfg(&[("TABLE_NAME", "t"), ("AUTH_MODE", "body"), ("SOLD_OUT_HINT_MS", "0")]).unwrap();
        assert_eq!(c.auth_mode, AuthMode::Body);
        assert_eq!(c.tuning.sold_out_hint, Duration::ZERO);
    }
}
