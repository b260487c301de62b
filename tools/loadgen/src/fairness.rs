//! Fairness: of the first K arrivals that could have won, how many did.
//!
//! An *arrival* is an attempt, in send order, by a user who had not bought yet: every attempt of
//! a user up to and including the one that won, and every attempt of a user who never won.
//! Attempts sent after a user's winning attempt cannot win and are not arrivals. K is the stock
//! that was left when the run started. A first-come-first-served system sells to exactly the first
//! K arrivals; concurrency blurs that (the first C attempts leave together), so the figure is a
//! measure, not an invariant.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::attempt::{Attempt, Meaning};

/// How an attempt ended, once the stored state is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Won,
    Lost,
    /// The reply was lost and the store was not read.
    Unknown,
}

/// The outcome of each attempt (same order as `attempts`, which must be in send order).
///
/// A 201 won and a 4xx lost. An unknown reply (5xx, timeout, broken connection) is settled with
/// the stored purchases when they are known (`stored`: user → order id): it won if it is the
/// user's first unknown attempt, the user has a stored purchase, and none of the user's replies
/// was a 201; otherwise it lost.
pub fn resolve_outcomes(attempts: &[Attempt], stored: Option<&HashMap<String, String>>) -> Vec<Outcome> {
    let users_with_201: HashSet<&str> =
        attempts.iter().filter(|a| a.reply.meaning() == Meaning::Bought).map(|a| a.user.as_str()).collect();
    let mut credited: HashSet<&str> = HashSet::new();
    attempts
        .iter()
        .map(|a| match a.reply.meaning() {
            Meaning::Bought => Outcome::Won,
            Meaning::Refused => Outcome::Lost,
            Meaning::Unknown => match stored {
                None => Outcome::Unknown,
                Some(records) => {
                    let user = a.user.as_str();
                    if records.contains_key(user) && !users_with_201.contains(user) && credited.insert(user) {
                        Outcome::Won
                    } else {
                        Outcome::Lost
                    }
                }
            },
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fairness {
    /// Stock left when the run started.
    pub k: u64,
    /// Arrivals in the run (attempts that could have won).
    pub arrivals: u64,
    /// How many of the first `min(k, arrivals)` arrivals won.
    pub first_k_won: u64,
    /// How many of the first `min(k, arrivals)` arrivals have an unknown outcome.
    pub first_k_unknown: u64,
    /// All winners in the run.
    pub winners: u64,
    /// Arrival rank (1-based) of the last winner: K for a perfectly fair run.
    pub last_winner_rank: Option<u64>,
}

impl Fairness {
    /// `first_k_won / min(k, arrivals)`, or 1 when there was nothing to win.
    pub fn share(&self) -> f64 {
        let considered = self.k.min(self.arrivals);
        if considered == 0 { 1.0 } else { self.first_k_won as f64 / considered as f64 }
    }
}

/// Computes [`Fairness`] over attempts in send order with their outcomes. Users in
/// `bought_before` had bought before the run and make no arrivals.
pub fn fairness(attempts: &[Attempt], outcomes: &[Outcome], k: u64, bought_before: &HashSet<String>) -> Fairness {
    let mut bought: HashSet<&str> = HashSet::new();
    let mut f = Fairness { k, arrivals: 0, first_k_won: 0, first_k_unknown: 0, winners: 0, last_winner_rank: None };
    for (attempt, outcome) in attempts.iter().zip(outcomes) {
        let user = attempt.user.as_str();
        if bought_before.contains(user) || bought.contains(user) {
            continue;
        }
        f.arrivals += 1;
        let rank = f.arrivals;
        match outcome {
            Outcome::Won => {
                bought.insert(user);
                f.winners += 1;
                f.last_winner_rank = Some(rank);
                if rank <= k {
                    f.first_k_won += 1;
                }
            }
            Outcome::Unknown if rank <= k => f.first_k_unknown += 1,
            _ => {}
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::Reply;

    fn attempt(seq: u32, user: &str, status: Option<u16>) -> Attempt {
        let reply = match status {
            Some(s) => Reply::Http { status: s, code: None, order_id: None, user_id: None, retry_after_secs: None },
            None => Reply::Timeout,
        };
        Attempt { seq, user: user.into(), due_us: None, sent_us: u64::from(seq), latency_us: 1, reply }
    }

    fn run(spec: &[(&str, Option<u16>)]) -> Vec<Attempt> {
        spec.iter().enumerate().map(|(i, (u, s))| attempt(i as u32, u, *s)).collect()
    }

    fn fair(attempts: &[Attempt], k: u64) -> Fairness {
        fairness(attempts, &resolve_outcomes(attempts, None), k, &HashSet::new())
    }

    #[test]
    fn first_come_first_served_wins_all_of_the_first_k() {
        let a = run(&[("a", Some(201)), ("b", Some(201)), ("c", Some(409)), ("d", Some(409))]);
        let f = fair(&a, 2);
        assert_eq!((f.first_k_won, f.arrivals, f.winners, f.last_winner_rank), (2, 4, 2, Some(2)));
        assert_eq!(f.share(), 1.0);
    }

    #[test]
    fn a_late_arrival_winning_counts_against_fairness() {
        let a = run(&[("a", Some(201)), ("b", Some(409)), ("c", Some(409)), ("d", Some(201))]);
        let f = fair(&a, 2);
        assert_eq!(f.first_k_won, 1);
        assert_eq!(f.last_winner_rank, Some(4));
        assert_eq!(f.share(), 0.5);
    }

    #[test]
    fn attempts_after_a_users_win_are_not_arrivals() {
        // a wins, then a's duplicate (refused) must not take an arrival slot before b.
        let a = run(&[("a", Some(201)), ("a", Some(409)), ("b", Some(201)), ("c", Some(409))]);
        let f = fair(&a, 2);
        assert_eq!(f.arrivals, 3);
        assert_eq!(f.first_k_won, 2);
    }

    #[test]
    fn a_duplicate_sent_before_the_win_is_an_arrival_that_lost() {
        let a = run(&[("a", Some(409)), ("a", Some(201)), ("b", Some(201))]);
        let f = fair(&a, 2);
        assert_eq!(f.arrivals, 3);
        assert_eq!(f.first_k_won, 1, "a's losing first attempt occupies an early slot");
    }

    #[test]
    fn buyers_from_before_the_run_make_no_arrivals() {
        let a = run(&[("old", Some(409)), ("b", Some(201))]);
        let f = fairness(&a, &resolve_outcomes(&a, None), 1, &HashSet::from(["old".to_owned()]));
        assert_eq!((f.arrivals, f.first_k_won), (1, 1));
    }

    #[test]
    fn unknown_replies_are_settled_by_the_stored_purchases() {
        let a = run(&[("a", None), ("a", None), ("b", None), ("c", Some(201))]);
        assert_eq!(
            resolve_outcomes(&a, None),
            vec![Outcome::Unknown; 3].into_iter().chain([Outcome::Won]).collect::<Vec<_>>()
        );
        let stored = HashMap::from([("a".to_owned(), "o1".to_owned()), ("c".to_owned(), "o2".to_owned())]);
        assert_eq!(resolve_outcomes(&a, Some(&stored)), vec![Outcome::Won, Outcome::Lost, Outcome::Lost, Outcome::Won]);
        let f = fair(&a, 2);
        assert_eq!(f.first_k_unknown, 2);
    }

    #[test]
    fn fewer_arrivals_than_stock_are_judged_on_what_arrived() {
        let a = run(&[("a", Some(201))]);
        let f = fair(&a, 100);
        assert_eq!(f.share(), 1.0);
        assert_eq!(fair(&[], 5).share(), 1.0);
    }
}
