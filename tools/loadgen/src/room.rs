//! What a waiting-room run shows: the people who joined (in the order their joins were sent),
//! the places the line gave them, who was admitted and who bought. Pure: the binary
//! `loadgen-room` collects the facts, this module judges them.

use serde::Serialize;

/// One person of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub user: String,
    /// When the join was sent, in ms since the run began.
    pub joined_at_ms: i64,
    /// The place the line gave (after opening: first in, first out).
    pub place: i64,
    /// The token this person bought with, if admitted and bought.
    pub bought_with_token: bool,
    /// Set when the purchase answered 201.
    pub bought: bool,
}

/// A stored purchase with the place of its buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBuy {
    pub user: String,
    pub purchased_at_ms: i64,
    pub order_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomVerdict {
    pub people: usize,
    pub places_unique: bool,
    /// Share of pairs of people whose joins were sent at least `gap_ms` apart that got places in
    /// that order.
    pub fifo_fidelity: f64,
    pub fifo_pairs: u64,
    pub stored_purchases: usize,
    pub stock: i64,
    pub exactly_stock_sold: bool,
    /// Every stored purchase is by someone who bought with an admission token in this run.
    pub every_buyer_held_a_token: bool,
    /// Share of pairs of buyers whose purchases were stored in the order of their places.
    pub purchase_order_follows_admission: f64,
}

/// Share of ordered pairs `(a, b)` with `key(a) + gap <= key(b)` for which `rank(a) < rank(b)`,
/// over at most `max_pairs` pairs taken in a fixed stride (so large runs stay quick).
fn ordered_share(items: &[(i64, i64)], gap: i64, max_pairs: u64) -> (f64, u64) {
    let mut sorted = items.to_vec();
    sorted.sort();
    let n = sorted.len();
    let total = (n as u64) * (n as u64).saturating_sub(1) / 2;
    let stride = (total / max_pairs.max(1)).max(1);
    let (mut good, mut counted, mut k) = (0u64, 0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            k += 1;
            if k % stride != 0 {
                continue;
            }
            let ((ka, ra), (kb, rb)) = (sorted[i], sorted[j]);
            if ka + gap > kb {
                continue;
            }
            counted += 1;
            if ra < rb {
                good += 1;
            }
        }
    }
    (if counted == 0 { 1.0 } else { good as f64 / counted as f64 }, counted)
}

/// Judges a run: places unique, FIFO fidelity (joins sent `gap_ms` apart), exactly the stock sold
/// when demand exceeded it, every buyer held a token, purchases in admission order.
pub fn judge(people: &[Person], stored: &[StoredBuy], stock: i64, gap_ms: i64) -> RoomVerdict {
    let mut places: Vec<i64> = people.iter().map(|p| p.place).collect();
    places.sort_unstable();
    places.dedup();
    let joins: Vec<(i64, i64)> = people.iter().map(|p| (p.joined_at_ms, p.place)).collect();
    let (fifo_fidelity, fifo_pairs) = ordered_share(&joins, gap_ms, 2_000_000);
    let with_token: std::collections::HashSet<&str> =
        people.iter().filter(|p| p.bought_with_token).map(|p| p.user.as_str()).collect();
    let place_of: std::collections::HashMap<&str, i64> = people.iter().map(|p| (p.user.as_str(), p.place)).collect();
    let buys: Vec<(i64, i64)> =
        stored.iter().filter_map(|b| place_of.get(b.user.as_str()).map(|place| (b.purchased_at_ms, *place))).collect();
    let (purchase_order, _) = ordered_share(&buys, 1, 2_000_000);
    RoomVerdict {
        people: people.len(),
        places_unique: places.len() == people.len(),
        fifo_fidelity,
        fifo_pairs,
        stored_purchases: stored.len(),
        stock,
        exactly_stock_sold: stored.len() as i64 == stock,
        every_buyer_held_a_token: stored.iter().all(|b| with_token.contains(b.user.as_str())),
        purchase_order_follows_admission: purchase_order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(user: &str, joined: i64, place: i64, bought: bool) -> Person {
        Person { user: user.into(), joined_at_ms: joined, place, bought_with_token: bought, bought }
    }

    fn buy(user: &str, at: i64) -> StoredBuy {
        StoredBuy { user: user.into(), purchased_at_ms: at, order_id: format!("o-{user}") }
    }

    #[test]
    fn a_clean_run_passes_every_check() {
        let people: Vec<Person> = (0..50).map(|n| person(&format!("u{n}"), n * 10, n + 1, n < 5)).collect();
        let stored: Vec<StoredBuy> = (0..5).map(|n| buy(&format!("u{n}"), 1_000 + n)).collect();
        let v = judge(&people, &stored, 5, 5);
        assert!(v.places_unique && v.exactly_stock_sold && v.every_buyer_held_a_token);
        assert_eq!((v.fifo_fidelity, v.purchase_order_follows_admission), (1.0, 1.0));
    }

    #[test]
    fn every_violation_is_seen() {
        let people = vec![person("a", 0, 2, true), person("b", 100, 1, false), person("c", 200, 2, false)];
        let stored = vec![buy("a", 10), buy("b", 20), buy("stranger", 5)];
        let v = judge(&people, &stored, 2, 50);
        assert!(!v.places_unique, "two people at place 2");
        assert!(v.fifo_fidelity < 1.0, "b joined after a but got an earlier place");
        assert!(!v.exactly_stock_sold);
        assert!(!v.every_buyer_held_a_token, "b and the stranger bought without a token");
        assert!(v.purchase_order_follows_admission < 1.0);
    }

    #[test]
    fn pairs_closer_than_the_gap_do_not_count() {
        let (share, pairs) = ordered_share(&[(0, 2), (5, 1), (100, 3)], 50, 100);
        assert_eq!((share, pairs), (1.0, 2));
    }
}
