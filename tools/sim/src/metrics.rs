//! What a run came to, in the terms of issue 10: who got the stock, in which order, what was
//! refused, how long it took and what DynamoDB was asked for.

use serde::Serialize;

use crate::model::{Client, Micros, Path, Run};
use crate::params::Params;

/// The metrics of one path.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub path: &'static str,
    pub sold: u64,
    pub sold_to_scripts: u64,
    /// Items bought by scripts / items sold.
    pub scripts_share_of_stock: Option<f64>,
    /// Scripts / identities.
    pub scripts_share_of_crowd: f64,
    /// First-come-first-served among humans who arrived after opening: of the pairs arriving at
    /// least `fifo_gap_s` apart of whom exactly one got an item, the share where it was the earlier.
    pub fifo_after_opening: Option<f64>,
    pub fifo_pairs_after_opening: u64,
    /// The same with the pre-opening humans counted as arriving at opening (ahead of everyone later).
    pub fifo_with_prequeue: Option<f64>,
    pub fifo_pairs_with_prequeue: u64,
    /// Pre-opening humans: Pearson correlation of arrival time with getting an item (0 = arrival does not matter).
    pub prequeue_arrival_item_correlation: Option<f64>,
    /// Pre-opening humans: share with an item among the earlier and the later half by arrival.
    pub prequeue_item_rate_earlier_half: Option<f64>,
    pub prequeue_item_rate_later_half: Option<f64>,
    /// Share of the first `first_k` humans by arrival who got an item.
    pub first_k_humans_item_share: Option<f64>,
    /// Share of the first `first_k` humans arriving after opening who got an item.
    pub first_k_after_opening_item_share: Option<f64>,
    /// Identities that sent at least one purchase request (room: with an admission token).
    pub buyers: u64,
    pub r429: u64,
    pub r429_api_gateway: u64,
    pub r429_lambda: u64,
    pub r503: u64,
    pub r403_not_yet_admitted: u64,
    /// Room: `sold_out` answered to a token holder inside their claim window (the set-aside
    /// promise: 0 with `overbook` 1).
    pub sold_out_to_admitted: Option<u64>,
    /// Items bought per identity that got any.
    pub items_per_buyer: Option<f64>,
    /// (429 + 503) / buyers; in the room only those answered to token holders.
    pub refusals_per_buyer: Option<f64>,
    /// 429/503 answered to purchases carrying an admission token (room only).
    pub refusals_to_admitted: Option<u64>,
    /// Of those, the ones answered after the last item was sold.
    pub refusals_to_admitted_after_sell_out: Option<u64>,
    /// Scripts that stopped after `script_max_s` without an item or a sold_out.
    pub scripts_stopped: u64,
    pub sell_out_s: Option<f64>,
    /// When 95 % of the stock had been sold (the bulk of the sale, without its tail).
    pub sold_95_s: Option<f64>,
    pub wcu: f64,
    pub rcu: f64,
    pub transactions: u64,
    pub conflicts: u64,
    /// Conflicts while stock remained.
    pub conflicts_before_sell_out: u64,
    /// Conflicts / transactions.
    pub conflict_rate: Option<f64>,
    pub requests: u64,
    pub lambda_invocations: u64,
    pub containers: u64,
    pub hinted_sold_out: u64,
    pub humans_with_item: u64,
    pub humans_gave_up: u64,
    pub humans_told_sold_out: u64,
    pub max_items_per_identity: u32,
    pub joins: u64,
    pub polls_db: u64,
    pub polls_cdn: u64,
    /// Room: seconds from opening to the last poll of a waiting human (the wait).
    pub wait_s: Option<f64>,
    /// Room: requests of humans' pages that reached API Gateway (and Lambda) during the wait:
    /// joins after opening, reads of the own place, and the status's origin fetches (one per
    /// `status_cache_s`).
    pub wait_origin_requests: Option<u64>,
    /// ... per second, averaged over the wait.
    pub wait_origin_rps_mean: Option<f64>,
    /// ... in the busiest second of the wait.
    pub wait_origin_rps_peak: Option<u64>,
    /// ... in the busiest second from `open_window_s` + 10 s on (after the joins and the draw reads).
    pub wait_origin_rps_steady_peak: Option<u64>,
    /// Room: the scripts' joins and place polls in their busiest second (not bound by the page's rule).
    pub script_origin_rps_peak: Option<u64>,
    pub admitted: u64,
    pub declined: u64,
    /// Room: when the last waiting identity learned sold_out.
    pub last_told_sold_out_s: Option<f64>,
    pub end_s: f64,
}

fn secs(t: Micros) -> f64 {
    t as f64 / 1e6
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Of pairs `gap` apart with exactly one winner, the share where the winner arrived first.
/// `entries` are (arrival seconds, got an item).
pub fn fifo(entries: &[(f64, bool)], gap: f64) -> (Option<f64>, u64) {
    let mut losers: Vec<f64> = entries.iter().filter(|e| !e.1).map(|e| e.0).collect();
    losers.sort_by(f64::total_cmp);
    let (mut in_order, mut out_of_order) = (0u64, 0u64);
    for &(w, _) in entries.iter().filter(|e| e.1) {
        in_order += (losers.len() - losers.partition_point(|&l| l < w + gap)) as u64;
        out_of_order += losers.partition_point(|&l| l <= w - gap) as u64;
    }
    let pairs = in_order + out_of_order;
    (ratio(in_order, pairs), pairs)
}

/// Pearson correlation; `None` when either side does not vary.
pub fn correlation(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return None;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// When `share` of `stock` had been sold, if it was.
fn sold_share_at(run: &Run, stock: u64, share: f64) -> Option<f64> {
    let mut sales: Vec<(Micros, u64)> =
        run.outcomes.iter().filter_map(|o| o.item_at.map(|t| (t, u64::from(o.items)))).collect();
    sales.sort_unstable();
    let n = ((stock as f64 * share).ceil() as u64).max(1);
    let mut sold = 0;
    sales
        .into_iter()
        .find(|&(_, items)| {
            sold += items;
            sold >= n
        })
        .map(|(t, _)| secs(t))
}

pub fn metrics(p: &Params, clients: &[Client], run: &Run) -> Metrics {
    let c = &run.counters;
    let room = run.path == Path::Room;
    let got = |i: usize| run.outcomes[i].item_at.is_some();
    let scripts = clients.iter().filter(|c| c.script).count() as u64;
    let sold_to_scripts: u64 =
        (0..clients.len()).filter(|&i| clients[i].script).map(|i| u64::from(run.outcomes[i].items)).sum();

    // Humans who wanted an item: in the room, those who declined once admitted had their chance.
    let humans: Vec<usize> = (0..clients.len()).filter(|&i| !clients[i].script).collect();
    let wanting: Vec<usize> = humans.iter().copied().filter(|&i| !run.outcomes[i].declined).collect();
    let after: Vec<(f64, bool)> =
        wanting.iter().filter(|&&i| !clients[i].pre_opening()).map(|&i| (secs(clients[i].arrival), got(i))).collect();
    let all: Vec<(f64, bool)> = wanting.iter().map(|&i| (secs(clients[i].arrival.max(0)), got(i))).collect();
    let (fifo_after, pairs_after) = fifo(&after, p.fifo_gap_s);
    let (fifo_all, pairs_all) = fifo(&all, p.fifo_gap_s);

    let mut pre: Vec<usize> = wanting.iter().copied().filter(|&i| clients[i].pre_opening()).collect();
    pre.sort_by_key(|&i| clients[i].arrival);
    let xs: Vec<f64> = pre.iter().map(|&i| secs(clients[i].arrival)).collect();
    let ys: Vec<f64> = pre.iter().map(|&i| f64::from(u8::from(got(i)))).collect();
    let half = pre.len() / 2;
    let rate = |set: &[usize]| ratio(set.iter().filter(|&&i| got(i)).count() as u64, set.len() as u64);

    let mut by_arrival = humans.clone();
    by_arrival.sort_by_key(|&i| (clients[i].arrival, i));
    let k = p.first_k as usize;
    let first_k: Vec<usize> = by_arrival.iter().copied().take(k).collect();
    let first_k_after: Vec<usize> = by_arrival.iter().copied().filter(|&i| !clients[i].pre_opening()).take(k).collect();

    // The wait: opening to the last human poll; the status reaches the origin once per cache period.
    let wait = c.last_poll.map(|t| secs(t).max(p.status_cache_s));
    let wait_secs = wait.map_or(0, |w| w.ceil() as usize);
    let per_s_status = (1.0 / p.status_cache_s).ceil() as u64;
    let page_by_s = |s: usize| u64::from(c.page_origin_by_s.get(s).copied().unwrap_or(0));
    let status_fetches = wait.map_or(0, |w| (w / p.status_cache_s).ceil() as u64);
    let wait_origin = (0..wait_secs).map(page_by_s).sum::<u64>() + status_fetches;
    let wait_peak = (0..wait_secs).map(|s| page_by_s(s) + per_s_status).max();
    let steady_from = (p.open_window_s + 10.0).ceil() as usize;
    let steady_peak = (steady_from..wait_secs).map(|s| page_by_s(s) + per_s_status).max();

    let buyers = run.outcomes.iter().filter(|o| o.pressed).count() as u64;
    let r429 = c.r429_api + c.r429_lambda;
    Metrics {
        path: if room { "room" } else { "direct" },
        sold: c.sold,
        sold_to_scripts,
        scripts_share_of_stock: ratio(sold_to_scripts, c.sold),
        scripts_share_of_crowd: scripts as f64 / clients.len() as f64,
        fifo_after_opening: fifo_after,
        fifo_pairs_after_opening: pairs_after,
        fifo_with_prequeue: fifo_all,
        fifo_pairs_with_prequeue: pairs_all,
        prequeue_arrival_item_correlation: correlation(&xs, &ys),
        prequeue_item_rate_earlier_half: rate(&pre[..half]),
        prequeue_item_rate_later_half: rate(&pre[half..]),
        first_k_humans_item_share: rate(&first_k),
        first_k_after_opening_item_share: rate(&first_k_after),
        buyers,
        r429,
        r429_api_gateway: c.r429_api,
        r429_lambda: c.r429_lambda,
        r503: c.r503,
        r403_not_yet_admitted: c.r403,
        sold_out_to_admitted: room.then_some(c.sold_out_to_admitted),
        items_per_buyer: ratio(c.sold, run.outcomes.iter().filter(|o| o.item_at.is_some()).count() as u64),
        // In the room only token holders buy; refusals of tokenless attempts are not a buyer's.
        refusals_per_buyer: ratio(if room { c.refusals_admitted } else { r429 + c.r503 }, buyers),
        refusals_to_admitted: room.then_some(c.refusals_admitted),
        refusals_to_admitted_after_sell_out: room.then_some(c.refusals_admitted_after_sell_out),
        scripts_stopped: (0..clients.len()).filter(|&i| clients[i].script && run.outcomes[i].gave_up).count() as u64,
        sell_out_s: c.sold_out_at.map(secs),
        sold_95_s: sold_share_at(run, u64::from(p.stock), 0.95),
        wcu: c.wcu,
        rcu: c.rcu,
        transactions: c.transactions,
        conflicts: c.conflicts,
        conflicts_before_sell_out: c.conflicts_before_sell_out,
        conflict_rate: ratio(c.conflicts, c.transactions),
        requests: c.requests,
        lambda_invocations: c.invocations,
        containers: c.containers,
        hinted_sold_out: c.hint_sold_out,
        humans_with_item: humans.iter().filter(|&&i| got(i)).count() as u64,
        humans_gave_up: humans.iter().filter(|&&i| run.outcomes[i].gave_up).count() as u64,
        humans_told_sold_out: humans.iter().filter(|&&i| run.outcomes[i].told_sold_out).count() as u64,
        max_items_per_identity: run.outcomes.iter().map(|o| o.items).max().unwrap_or(0),
        joins: c.joins,
        polls_db: c.polls_db,
        polls_cdn: c.polls_cdn,
        wait_s: wait.filter(|_| room),
        wait_origin_requests: room.then_some(wait_origin),
        wait_origin_rps_mean: wait.filter(|_| room).map(|w| wait_origin as f64 / w),
        wait_origin_rps_peak: wait_peak.filter(|_| room),
        wait_origin_rps_steady_peak: steady_peak.filter(|_| room),
        script_origin_rps_peak: room.then(|| c.script_origin_by_s.iter().copied().max().map_or(0, u64::from)),
        admitted: c.admitted,
        declined: run.outcomes.iter().filter(|o| o.declined).count() as u64,
        last_told_sold_out_s: c.last_told_sold_out.map(secs),
        end_s: secs(c.end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_counts_pairs_with_one_winner_far_enough_apart() {
        // Winner at 0: loser at 0.5 too close, loser at 2 in order. Winner at 3: losers at 2 and
        // 0.5 both arrived at least 1 s earlier, so both pairs are out of order.
        let e = [(0.0, true), (0.5, false), (2.0, false), (3.0, true)];
        let (f, pairs) = fifo(&e, 1.0);
        assert_eq!(pairs, 3);
        assert_eq!(f, Some(1.0 / 3.0));
        assert_eq!(fifo(&[(0.0, false), (5.0, false)], 1.0), (None, 0));
    }

    #[test]
    fn correlation_of_a_line_is_one_and_of_a_constant_is_none() {
        assert!((correlation(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(correlation(&[1.0, 2.0], &[1.0, 1.0]), None);
    }
}
