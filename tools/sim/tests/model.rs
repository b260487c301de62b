//! Checks of the model's logic: seeded and deterministic, never timing.

use std::sync::OnceLock;

use sim::model::{Path, crowd, run};
use sim::{Comparison, Params, report, simulate, sweep};

fn params(args: &[&str]) -> Params {
    let p = sim::Cli::parse_params(args.iter().copied()).expect("arguments parse");
    p.validate().expect("arguments are valid");
    p
}

/// A smaller crowd than the defaults, for tests that look at invariants rather than at goals.
fn small(extra: &[&str]) -> Params {
    let mut args = vec!["--clients", "20000", "--stock", "200"];
    args.extend_from_slice(extra);
    params(&args)
}

fn both(p: &Params) -> Comparison {
    simulate(p)
}

/// The defaults, simulated once for the tests that read them.
fn defaults() -> &'static Comparison {
    static DEFAULTS: OnceLock<Comparison> = OnceLock::new();
    DEFAULTS.get_or_init(|| simulate(&Params::default()))
}

#[test]
fn never_sells_more_than_stock_nor_two_items_to_one_identity() {
    let cases: [&[&str]; 6] = [
        &[],
        &["--shards", "1"],
        &["--shards", "64", "--stock", "10"],
        &["--scripts", "0.2", "--sold-out-hint-ms", "0"],
        &["--token-check", "lambda", "--overbook", "3"],
        &["--stock", "50000", "--horizon-s", "30"],
    ];
    for extra in cases {
        let p = small(extra);
        let clients = crowd(&p);
        for path in [Path::Direct, Path::Room] {
            let r = run(&p, &clients, path);
            let items: u64 = r.outcomes.iter().map(|o| u64::from(o.items)).sum();
            let with_item = r.outcomes.iter().filter(|o| o.item_at.is_some()).count() as u64;
            assert!(r.counters.sold <= u64::from(p.stock), "{extra:?} {path:?}: sold {} > stock", r.counters.sold);
            assert_eq!(items, r.counters.sold, "{extra:?} {path:?}: items held = items sold");
            assert_eq!(with_item, r.counters.sold, "{extra:?} {path:?}");
            assert!(r.outcomes.iter().all(|o| o.items <= 1), "{extra:?} {path:?}: an identity with two items");
        }
    }
}

#[test]
fn with_no_scripts_scripts_take_nothing() {
    let c = both(&small(&["--scripts", "0"]));
    for m in [&c.direct, &c.room] {
        assert_eq!(m.sold_to_scripts, 0);
        assert_eq!(m.scripts_share_of_stock, Some(0.0));
        assert_eq!(m.scripts_share_of_crowd, 0.0);
    }
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_another() {
    let p = small(&[]);
    let a = serde_json::to_string(&simulate(&p)).unwrap();
    let b = serde_json::to_string(&simulate(&p)).unwrap();
    assert_eq!(a, b);
    let c = serde_json::to_string(&simulate(&p.with("seed", "2").unwrap())).unwrap();
    assert_ne!(a, c);
}

#[test]
fn with_defaults_the_room_serves_humans_in_order_and_draws_the_prequeue_uniformly() {
    let c = defaults();
    let room = &c.room;
    assert_eq!(room.sold, 1_000);
    assert!(room.fifo_with_prequeue.unwrap() >= 0.99, "{:?}", room.fifo_with_prequeue);
    assert!(room.fifo_after_opening.is_none_or(|f| f >= 0.99));
    assert!(c.goals[1].met, "{:?}", c.goals[1]);
    // Arriving earlier before opening does not help: no correlation, and the earlier and later
    // halves of the pre-queue get items at rates within a point of each other.
    assert!(room.prequeue_arrival_item_correlation.unwrap().abs() < 0.02);
    let (early, late) = (room.prequeue_item_rate_earlier_half.unwrap(), room.prequeue_item_rate_later_half.unwrap());
    assert!((early - late).abs() < 0.01, "{early} vs {late}");
    // Nobody waiting before opening is overtaken by someone arriving after it.
    assert_eq!(room.first_k_after_opening_item_share, Some(0.0));
    // No 429 at all behind the room; a purchase without a token is refused at the edge.
    assert_eq!(room.r429, 0);
    assert!(room.r403_not_yet_admitted > 0);
}

#[test]
fn with_defaults_the_room_meets_every_goal_and_scripts_get_no_more_than_their_share() {
    // Every admission has an item set aside for its claim window (overbook 1.0), so nobody admitted
    // races anyone for an item: scripts, admitted in the same random or arrival order as everyone,
    // get their share, not the spoils of being fastest. Buyers whose request was in flight when the
    // last item sold hit conflicts on emptied shards, and the stock read after them answers
    // sold_out, not 503.
    let c = defaults();
    let (d, r) = (&c.direct, &c.room);
    let (ds, rs) = (d.scripts_share_of_stock.unwrap(), r.scripts_share_of_stock.unwrap());
    assert!(ds > 0.05, "direct: scripts take {ds}");
    for g in &c.goals {
        assert!(g.met, "{g:?}");
    }
    assert!(rs <= r.scripts_share_of_crowd + 0.01, "room: scripts take {rs}");
    assert_eq!(r.refusals_to_admitted, Some(0));
    assert_eq!(r.sold, 1_000);
    for seed in ["2", "3", "4"] {
        let other = simulate(&params(&["--seed", seed]));
        assert!(other.goals[0].met, "seed {seed}: {:?}", other.goals[0]);
    }
    // Without that read (the path before it), those buyers get 503s, all after the sell-out.
    let old = simulate(&params(&["--busy-without-stock-read", "--overbook", "2"]));
    let refused = old.room.refusals_to_admitted.unwrap();
    assert!(refused > 0);
    assert_eq!(old.room.refusals_to_admitted_after_sell_out, Some(refused), "every refusal comes after the sell-out");
    assert!(!old.goals[2].met);
    assert!(r.refusals_per_buyer.unwrap() < d.refusals_per_buyer.unwrap() / 100.0);
    assert!(r.conflicts_before_sell_out < d.conflicts_before_sell_out);
    assert!(r.wcu < d.wcu);
}

#[test]
fn overbooking_sells_out_sooner_but_scripts_win_the_race_for_the_last_items() {
    let fair = defaults();
    let over = simulate(&params(&["--overbook", "2"]));
    let (f, o) = (&fair.room, &over.room);
    assert!(o.sell_out_s.unwrap() < f.sell_out_s.unwrap() / 10.0, "{:?} vs {:?}", o.sell_out_s, f.sell_out_s);
    assert!(o.sold_95_s.unwrap() < f.sold_95_s.unwrap());
    assert!(!over.goals[0].met, "{:?}", over.goals[0]);
    assert!(o.scripts_share_of_stock.unwrap() > f.scripts_share_of_stock.unwrap());
}

#[test]
fn a_shorter_claim_window_shortens_the_tail_of_declined_admissions() {
    let short = simulate(&params(&["--claim-s", "15"]));
    let fair = defaults();
    assert!(short.room.sell_out_s.unwrap() < fair.room.sell_out_s.unwrap() / 2.0);
    assert!(short.room.sold_95_s.unwrap() < fair.room.sold_95_s.unwrap());
    assert!(short.goals[0].met, "{:?}", short.goals[0]);
}

#[test]
fn a_sweep_prints_one_row_per_value() {
    let rows = sweep(&small(&[]), "shards=1,8,32").unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().map(|r| r.comparison.assumptions.shards).collect::<Vec<_>>(), [1, 8, 32]);
    let table = report::sweep_table(&rows);
    let data: Vec<&str> = table.lines().filter(|l| l.starts_with('|')).skip(2).collect();
    assert_eq!(data.len(), 3, "{table}");
    for (line, v) in data.iter().zip(["1", "8", "32"]) {
        assert!(line.trim_start_matches('|').trim_start().starts_with(v), "{line}");
    }
    assert!(sweep(&small(&[]), "no_such_thing=1").is_err());
    assert!(sweep(&small(&[]), "shards=0").is_err());
    assert_eq!(sweep(&small(&[]), "arrivals=burst").unwrap()[0].comparison.assumptions.arrivals, sim::Arrivals::Burst);
}

#[test]
fn more_shards_mean_fewer_conflicts_while_stock_remains_and_a_faster_sell_out_on_the_direct_path() {
    let rows = sweep(&small(&[]), "shards=1,8,32").unwrap();
    let direct: Vec<_> = rows.iter().map(|r| &r.comparison.direct).collect();
    for pair in direct.windows(2) {
        assert!(pair[1].conflicts_before_sell_out < pair[0].conflicts_before_sell_out);
        assert!(pair[1].sell_out_s.unwrap() < pair[0].sell_out_s.unwrap());
    }
}

#[test]
fn changing_an_assumption_changes_the_outcome() {
    let base = both(&small(&[]));
    // More scripts take more of the stock on the direct path.
    let scripts = both(&small(&["--scripts", "0.1"]));
    assert!(scripts.direct.scripts_share_of_stock > base.direct.scripts_share_of_stock);
    // Refusing tokenless purchases in the function puts them through API Gateway's throttle, where
    // they crowd out admitted buyers.
    let lambda = both(&small(&["--token-check", "lambda"]));
    assert!(lambda.room.refusals_to_admitted > base.room.refusals_to_admitted);
    // Without the sold-out hint every answer after the sell-out walks the shards.
    let no_hint = both(&small(&["--sold-out-hint-ms", "0", "--cancelled-hold-ms", "0"]));
    let hint = both(&small(&["--cancelled-hold-ms", "0"]));
    assert_eq!(no_hint.direct.hinted_sold_out, 0);
    assert!(hint.direct.hinted_sold_out > 0);
    assert!(no_hint.direct.transactions > hint.direct.transactions);
}

#[test]
fn the_text_report_lists_every_assumption_and_both_paths() {
    let c = both(&small(&[]));
    let text = report::text(&c);
    for flag in ["--clients", "--scripts", "--shards", "--api-burst", "--overbook", "--p-buy", "--token-check"] {
        assert!(text.contains(flag), "{flag} missing");
    }
    assert!(text.contains("direct (today)") && text.contains("waiting room"));
    assert!(text.contains("Admission rule"));
}

/// Requests of humans' pages at the origin in second `s` after opening, status fetches included.
fn page_origin(r: &sim::model::Run, p: &Params, s: usize) -> u64 {
    u64::from(r.counters.page_origin_by_s.get(s).copied().unwrap_or(0)) + (1.0 / p.status_cache_s).ceil() as u64
}

#[test]
fn while_waiting_the_pages_reach_the_origin_at_a_rate_bound_by_admission_not_by_the_crowd() {
    // Bound per second, after the joins and the drawn places' reads: the places within the horizon
    // (admit rate x horizon) ask once per status poll while admission moves, and the admitted once
    // more: 3 x admit rate with a horizon of 2 polls; the safety asks, each a random 30..60 s
    // after the last, at most 2 x crowd / 60 per second; and the status's fetch.
    let p = small(&["--stock", "1000"]);
    let clients = crowd(&p);
    let humans = clients.iter().filter(|c| !c.script).count() as f64;
    let bound = 3.0 * p.admit_rate() + 2.0 * humans / p.safety_poll_s + 1.0 / p.status_cache_s;
    let from = (p.open_window_s + 10.0).ceil() as usize;
    let new = run(&p, &clients, Path::Room);
    let end = (new.counters.last_poll.expect("humans polled") as f64 / 1e6) as usize;
    assert!(end > from + 60, "the wait outlasts a safety period: {end} s");
    for s in from..end {
        let n = page_origin(&new, &p, s);
        assert!((n as f64) <= bound, "second {s}: {n} requests > bound {bound}");
    }
    // Every waiting human still learns its admission or the sell-out, and sells the same stock.
    let c = simulate(&p);
    let old_p = p.with("place_polls", "every").unwrap();
    let old = simulate(&old_p);
    assert_eq!(c.room.sold, old.room.sold);
    assert!(c.goals.iter().all(|g| g.met), "{:?}", c.goals);
    assert_eq!(c.room.humans_told_sold_out, old.room.humans_told_sold_out);
    // The storefront's former rule (every poll asks for the own place) breaks the same bound: its
    // rate follows the crowd (20,000 humans / 2 s).
    let before = run(&old_p, &clients, Path::Room);
    let over = (from..end).filter(|&s| page_origin(&before, &old_p, s) as f64 > bound).count();
    assert!(over > (end - from) / 2, "{over} of {} seconds over the bound", end - from);
    let (m_new, m_old) = (c.room.wait_origin_rps_mean.unwrap(), old.room.wait_origin_rps_mean.unwrap());
    assert!(m_new * 4.0 < m_old, "mean {m_new} vs {m_old}");
    assert!(c.room.rcu < old.room.rcu);
}

#[test]
fn with_several_items_per_customer_the_room_sets_a_share_aside_per_admission_and_keeps_its_promise() {
    let cases: [&[&str]; 4] = [
        &["--max-per-customer", "2"],
        &["--max-per-customer", "2", "--p-max-quantity", "1"],
        &["--max-per-customer", "3", "--stock", "201", "--shards", "4"],
        &["--max-per-customer", "2", "--claim-s", "15", "--think-max-s", "30"],
    ];
    for extra in cases {
        let p = small(extra);
        let clients = crowd(&p);
        let max = p.max_per_customer;
        for path in [Path::Direct, Path::Room] {
            let r = run(&p, &clients, path);
            let items: u64 = r.outcomes.iter().map(|o| u64::from(o.items)).sum();
            assert!(r.counters.sold <= u64::from(p.stock), "{extra:?} {path:?}: sold {} > stock", r.counters.sold);
            assert_eq!(items, r.counters.sold, "{extra:?} {path:?}: items held = items sold");
            assert!(r.outcomes.iter().all(|o| o.items <= max), "{extra:?} {path:?}: above the limit");
            assert!(r.outcomes.iter().any(|o| o.items == max), "{extra:?} {path:?}: nobody bought {max}");
        }
        let room = run(&p, &clients, Path::Room);
        assert_eq!(room.counters.sold_out_to_admitted, 0, "{extra:?}: an admitted buyer told sold_out in their window");
        assert_eq!(room.counters.sold, u64::from(p.stock), "{extra:?}: the room sells its last items too");
    }
    // The same crowd, one item per customer vs two: the same stock goes to fewer people, and each
    // admission sets two items aside, so the room admits fewer people.
    let one = simulate(&small(&[]));
    let two = simulate(&small(&["--max-per-customer", "2"]));
    assert_eq!(one.room.items_per_buyer, Some(1.0));
    assert!(two.room.items_per_buyer.is_some_and(|q| q > 1.2), "{:?}", two.room.items_per_buyer);
    assert!(two.room.admitted < one.room.admitted, "{} vs {}", two.room.admitted, one.room.admitted);
    assert_eq!(one.room.sold_out_to_admitted, Some(0));
}
