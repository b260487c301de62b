//! The attempt plan: which user makes each attempt, in plan order.
//!
//! Of N attempts, `round(N × duplicate_share)` repeat a user who appeared earlier in the plan and
//! the rest are first attempts of new users, as long as there are U users to go round. With fewer
//! users than first attempts, every user attempts and the surplus becomes duplicates, so the
//! realised share can exceed the requested one; [`Plan::duplicate_share`] says what it is.
//! Duplicates are spread at random over the plan and name a uniformly chosen earlier user, so
//! some race their own first attempt and some arrive long after it. Same spec, same plan.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanSpec {
    pub users: u32,
    pub attempts: u32,
    /// Fraction of attempts that repeat an earlier user, in `[0, 1)`.
    pub duplicate_share: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("--users must be at least 1")]
    NoUsers,
    #[error("--attempts must be at least 1")]
    NoAttempts,
    #[error("--duplicate-share must be at least 0 and below 1")]
    BadShare,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The user index of each attempt, in plan order. Users are numbered 0.. in order of their
    /// first attempt.
    pub users: Vec<u32>,
    /// Distinct users in the plan.
    pub distinct_users: u32,
    /// Attempts that repeat an earlier user.
    pub duplicates: u32,
}

impl Plan {
    pub fn new(spec: PlanSpec) -> Result<Self, PlanError> {
        if spec.users == 0 {
            return Err(PlanError::NoUsers);
        }
        if spec.attempts == 0 {
            return Err(PlanError::NoAttempts);
        }
        if !(0.0..1.0).contains(&spec.duplicate_share) {
            return Err(PlanError::BadShare);
        }
        let n = spec.attempts;
        let wanted_dups = ((f64::from(n) * spec.duplicate_share).round() as u32).min(n - 1);
        let fresh = (n - wanted_dups).min(spec.users);
        let duplicates = n - fresh;

        let mut rng = fastrand::Rng::with_seed(spec.seed);
        let mut is_dup: Vec<bool> = (0..n).map(|i| i < duplicates).collect();
        rng.shuffle(&mut is_dup);
        // The first attempt cannot repeat anyone.
        if let Some(first_fresh) = is_dup.iter().position(|d| !d) {
            is_dup.swap(0, first_fresh);
        }
        let mut introduced = 0u32;
        let users = is_dup
            .into_iter()
            .map(|dup| {
                if dup {
                    rng.u32(0..introduced)
                } else {
                    introduced += 1;
                    introduced - 1
                }
            })
            .collect();
        Ok(Self { users, distinct_users: fresh, duplicates })
    }

    pub fn attempts(&self) -> usize {
        self.users.len()
    }

    /// The realised duplicate share.
    pub fn duplicate_share(&self) -> f64 {
        f64::from(self.duplicates) / self.users.len().max(1) as f64
    }
}

/// What each of `attempts` attempts asks for: a variant drawn uniformly from `variants` (none
/// named when `variants` is empty) and a quantity drawn uniformly from `1..=max_quantity` (none
/// sent when `max_quantity` ≤ 1). Empty when neither is drawn: every attempt sends the user only,
/// as for a sale without variants. Same seed, same choices (independent of the user plan's
/// draws).
pub fn choices(seed: u64, attempts: usize, variants: &[String], max_quantity: u32) -> Vec<crate::verify::Choice> {
    if variants.is_empty() && max_quantity <= 1 {
        return Vec::new();
    }
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed_c401_ce00_0001);
    (0..attempts)
        .map(|_| crate::verify::Choice {
            variant_id: (!variants.is_empty()).then(|| variants[rng.usize(0..variants.len())].clone()),
            quantity: (max_quantity > 1).then(|| rng.u32(1..=max_quantity)),
        })
        .collect()
}

/// The user id sent for user `index`: `{prefix}{index:06}`.
pub fn user_id(prefix: &str, index: u32) -> String {
    format!("{prefix}{index:06}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn spec(users: u32, attempts: u32, share: f64) -> PlanSpec {
        PlanSpec { users, attempts, duplicate_share: share, seed: 7 }
    }

    #[test]
    fn the_requested_duplicate_share_is_met_exactly_when_users_suffice() {
        let plan = Plan::new(spec(4_000, 5_000, 0.2)).unwrap();
        assert_eq!(plan.attempts(), 5_000);
        assert_eq!(plan.duplicates, 1_000);
        assert_eq!(plan.distinct_users, 4_000);
        assert_eq!(plan.users.iter().collect::<HashSet<_>>().len(), 4_000);
        assert!((plan.duplicate_share() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn every_duplicate_repeats_a_user_seen_earlier_in_the_plan() {
        let plan = Plan::new(spec(300, 1_000, 0.5)).unwrap();
        let mut seen = HashSet::new();
        let mut next_new = 0;
        for (i, &u) in plan.users.iter().enumerate() {
            if seen.insert(u) {
                assert_eq!(u, next_new, "attempt {i} introduces users out of order");
                next_new += 1;
            }
        }
        assert_eq!(plan.users[0], 0);
        assert_eq!(seen.len() as u32 + plan.duplicates, 1_000);
    }

    #[test]
    fn too_few_users_turn_the_surplus_into_duplicates() {
        let plan = Plan::new(spec(10, 100, 0.0)).unwrap();
        assert_eq!(plan.distinct_users, 10);
        assert_eq!(plan.duplicates, 90);
        assert!(plan.duplicate_share() > 0.89);
    }

    #[test]
    fn no_duplicates_means_one_attempt_per_user() {
        let plan = Plan::new(spec(1_000, 500, 0.0)).unwrap();
        assert_eq!(plan.users, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn duplicates_are_spread_over_the_plan_not_bunched_at_the_end() {
        let plan = Plan::new(spec(4_000, 5_000, 0.2)).unwrap();
        let first_half_dups =
            plan.users[..2_500].iter().enumerate().filter(|&(i, &u)| plan.users[..i].contains(&u)).count();
        assert!((300..700).contains(&first_half_dups), "{first_half_dups} duplicates in the first half");
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let a = Plan::new(spec(100, 400, 0.3)).unwrap();
        assert_eq!(a, Plan::new(spec(100, 400, 0.3)).unwrap());
        assert_ne!(a, Plan::new(PlanSpec { seed: 8, ..spec(100, 400, 0.3) }).unwrap());
    }

    #[test]
    fn nonsense_specs_are_refused() {
        assert_eq!(Plan::new(spec(0, 10, 0.1)), Err(PlanError::NoUsers));
        assert_eq!(Plan::new(spec(10, 0, 0.1)), Err(PlanError::NoAttempts));
        assert_eq!(Plan::new(spec(10, 10, 1.0)), Err(PlanError::BadShare));
        assert_eq!(Plan::new(spec(10, 10, -0.1)), Err(PlanError::BadShare));
        assert_eq!(Plan::new(spec(10, 10, f64::NAN)), Err(PlanError::BadShare));
        assert_eq!(Plan::new(spec(1, 1, 0.9)).unwrap().users, vec![0]);
    }

    #[test]
    fn choices_cover_every_variant_and_quantity_and_repeat_with_the_seed() {
        let sizes = ["s".to_owned(), "m".to_owned(), "l".to_owned()];
        let c = choices(7, 600, &sizes, 3);
        assert_eq!(c.len(), 600);
        for size in &sizes {
            let n = c.iter().filter(|c| c.variant_id.as_ref() == Some(size)).count();
            assert!((120..280).contains(&n), "{size}: {n} of 600");
        }
        for q in 1..=3 {
            let n = c.iter().filter(|c| c.quantity == Some(q)).count();
            assert!((120..280).contains(&n), "quantity {q}: {n} of 600");
        }
        assert_eq!(c, choices(7, 600, &sizes, 3));
        assert_ne!(c, choices(8, 600, &sizes, 3));
        assert!(choices(7, 10, &[], 1).is_empty(), "a plain sale: the user only");
        let only_quantities = choices(7, 10, &[], 2);
        assert!(only_quantities.iter().all(|c| c.variant_id.is_none() && c.quantity.is_some()));
    }

    #[test]
    fn user_ids_are_valid_and_distinct() {
        assert_eq!(user_id("lg-1-", 42), "lg-1-000042");
        assert_ne!(user_id("p", 1), user_id("p", 10));
    }
}
