//! Ramping virtual users, like k6's `ramping-vus`: stages of `duration:target`, and between the
//! end of one stage and the next the number of users moves in a straight line from the last target
//! (0 at the start) to the next.
//!
//! `--stages 10s:100,20s:1000,10s:0` ramps to 100 users in 10 s, on to 1,000 in 20 s, and back to 0
//! in 10 s. A stage with the same target as the one before holds it. Durations take `ms`, `s`, `m`
//! (a bare number is seconds); targets are whole users.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Most users a ramp may ask for.
pub const MAX_USERS: u32 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub duration_secs: f64,
    pub target: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    #[error("--stages is empty; give stages like 10s:100,20s:1000,10s:0")]
    Empty,
    #[error("stage `{0}` is not duration:target (e.g. 20s:1000)")]
    Shape(String),
    #[error("stage `{0}`: the duration must be a positive number of ms, s or m (at most a day)")]
    Duration(String),
    #[error("stage `{0}`: the target must be a whole number of users from 0 to {MAX_USERS}")]
    Target(String),
}

fn parse_duration(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let secs = number.trim().parse::<f64>().ok()? * scale;
    (secs.is_finite() && secs > 0.0 && secs <= 86_400.0).then_some(secs)
}

/// Parses `10s:100,20s:1000,10s:0`.
pub fn parse_stages(text: &str) -> Result<Vec<Stage>, StageError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(StageError::Empty);
    }
    text.split(',')
        .map(|raw| {
            let raw = raw.trim();
            let (d, t) = raw.split_once(':').ok_or_else(|| StageError::Shape(raw.into()))?;
            let duration_secs = parse_duration(d).ok_or_else(|| StageError::Duration(raw.into()))?;
            let target = t.trim().parse::<u32>().ok().filter(|&t| t <= MAX_USERS);
            let target = target.ok_or_else(|| StageError::Target(raw.into()))?;
            Ok(Stage { duration_secs, target })
        })
        .collect()
}

/// The whole ramp, in seconds.
pub fn total_secs(stages: &[Stage]) -> f64 {
    stages.iter().map(|s| s.duration_secs).sum()
}

/// The most users at any time.
pub fn peak(stages: &[Stage]) -> u32 {
    stages.iter().map(|s| s.target).max().unwrap_or(0)
}

/// Users wanted `t` seconds into the ramp (rounded down while ramping up, up while ramping down,
/// so a target is reached exactly at its stage's end). 0 after the last stage.
pub fn users_at(stages: &[Stage], t: f64) -> u32 {
    let mut from = 0u32;
    let mut start = 0.0;
    for s in stages {
        let end = start + s.duration_secs;
        if t < end {
            let progress = ((t - start) / s.duration_secs).clamp(0.0, 1.0);
            let exact = f64::from(from) + (f64::from(s.target) - f64::from(from)) * progress;
            return if s.target >= from { exact.floor() as u32 } else { exact.ceil() as u32 };
        }
        from = s.target;
        start = end;
    }
    0
}

/// `10s:100,20s:1000` again.
pub struct Display<'a>(pub &'a [Stage]);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}s:{}", s.duration_secs, s.target)?;
        }
        Ok(())
    }
}

/// How long a ramp needs, for reports.
pub fn duration(stages: &[Stage]) -> Duration {
    Duration::from_secs_f64(total_secs(stages))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(d: f64, t: u32) -> Stage {
        Stage { duration_secs: d, target: t }
    }

    #[test]
    fn stages_parse_like_k6() {
        assert_eq!(parse_stages("10s:100,20s:1000,10s:0").unwrap(), vec![st(10.0, 100), st(20.0, 1000), st(10.0, 0)]);
        assert_eq!(parse_stages(" 500ms:5, 2m:7 ,3:1").unwrap(), vec![st(0.5, 5), st(120.0, 7), st(3.0, 1)]);
        assert_eq!(Display(&parse_stages("1s:1000,5s:1000").unwrap()).to_string(), "1s:1000,5s:1000");
    }

    #[test]
    fn nonsense_stages_are_refused() {
        assert_eq!(parse_stages(""), Err(StageError::Empty));
        assert!(matches!(parse_stages("10s"), Err(StageError::Shape(_))));
        assert!(matches!(parse_stages("0s:10"), Err(StageError::Duration(_))));
        assert!(matches!(parse_stages("-1s:10"), Err(StageError::Duration(_))));
        assert!(matches!(parse_stages("xs:10"), Err(StageError::Duration(_))));
        assert!(matches!(parse_stages("2d:10"), Err(StageError::Duration(_))));
        assert!(matches!(parse_stages("1s:-5"), Err(StageError::Target(_))));
        assert!(matches!(parse_stages("1s:1.5"), Err(StageError::Target(_))));
        assert!(matches!(parse_stages("1s:100001"), Err(StageError::Target(_))));
    }

    #[test]
    fn users_ramp_linearly_between_targets_and_hold_flat_stages() {
        let s = parse_stages("10s:100,20s:1000,10s:0").unwrap();
        assert_eq!(users_at(&s, 0.0), 0);
        assert_eq!(users_at(&s, 5.0), 50);
        assert_eq!(users_at(&s, 9.999), 99);
        assert_eq!(users_at(&s, 10.0), 100);
        assert_eq!(users_at(&s, 20.0), 550);
        assert_eq!(users_at(&s, 30.0), 1000);
        assert_eq!(users_at(&s, 35.0), 500);
        assert_eq!(users_at(&s, 39.99), 1);
        assert_eq!(users_at(&s, 40.0), 0);
        assert_eq!((total_secs(&s), peak(&s)), (40.0, 1000));
        let hold = parse_stages("1s:1000,5s:1000").unwrap();
        assert_eq!(users_at(&hold, 0.5), 500);
        assert!((1..60).all(|i| users_at(&hold, 1.0 + f64::from(i) * 0.08) == 1000));
        assert_eq!(users_at(&hold, 6.0), 0);
    }
}
