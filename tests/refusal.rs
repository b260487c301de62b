//! Remembered refusals, against DynamoDB Local: once a sale without holds is sold out for good, a
//! container answers a buyer it has read once from memory (no DynamoDB call), and nothing that
//! gives items back (a reset; a hold cancelled or ended in another container) leaves a
//! remembered answer that the stored state contradicts. Several containers (one `TestApp` each)
//! on one store, as Lambda runs them.

use std::time::Duration;

use flash_sale::config::Tuning;
use flash_sale::ids::UserId;
use flash_sale::store::Reset;
use flash_sale_testkit::proxy::{Recording, pass};
use flash_sale_testkit::{SaleSpec, TestApp};
use serde_json::Value;

const T0: i64 = 1_800_000_000_000;

/// The product's hints (1 s sold-out hint, 5 s sale cache), quick retries.
fn hints() -> Tuning {
    Tuning { backoff_base: Duration::from_millis(1), backoff_cap: Duration::from_millis(5), ..Tuning::default() }
}

/// The product's hints, with a sold-out hint that outlives the test: a container keeps believing
/// the shelf empty whatever happens elsewhere, so every refusal it gives goes through the
/// buyer's record (read or remembered).
fn long_hint() -> Tuning {
    Tuning { sold_out_hint: Duration::from_secs(600), ..hints() }
}

fn code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["code"].as_str())
}

/// A sale of 4 items on 2 shards, sold to `winner-0` … `winner-3`: the sale and their orders.
async fn sold_to_four_winners(app: &TestApp) -> (flash_sale::sale::Sale, Vec<Value>) {
    let sale = SaleSpec::new().stock(4).shards(2).create(app).await;
    let mut orders = Vec::new();
    for n in 0..4 {
        let (status, order) = app.buy(&sale, &format!("winner-{n}")).await;
        assert_eq!(status, 201);
        orders.push(order);
    }
    (sale, orders)
}

/// The answer to `user`, the `n`th of a crowd whose first four are the winners: their stored order
/// as `already_purchased`, and `sold_out` for anyone else.
fn assert_refused(answer: &(u16, Value), n: usize, user: &str, orders: &[Value]) {
    if n < 4 {
        assert_eq!(code(answer), (409, Some("already_purchased")), "{user}: {}", answer.1);
        assert_eq!(answer.1["purchase"], orders[n], "{user}: the stored order");
    } else {
        assert_eq!(code(answer), (409, Some("sold_out")), "{user}: {}", answer.1);
    }
}

#[tokio::test]
async fn a_crowd_repeating_after_a_sell_out_for_good_costs_under_a_tenth_of_a_call_per_attempt() {
    let app = TestApp::fresh().await.tune(|t| *t = hints());
    let (sale, orders) = sold_to_four_winners(&app).await;
    let recording = Recording::start(pass()).await;
    let container = app.container().via(recording.proxy.patient_client());
    let users: Vec<String> =
        (0..4).map(|n| format!("winner-{n}")).chain((0..16).map(|n| format!("late-{n}"))).collect();
    let mut attempts = 0;
    for _ in 0..20 {
        for (n, user) in users.iter().enumerate() {
            let answer = container.buy(&sale, user).await;
            attempts += 1;
            assert_refused(&answer, n, user, &orders);
        }
    }
    let calls = recording.take();
    let mut ops = std::collections::BTreeMap::new();
    for (op, _) in &calls {
        *ops.entry(op.as_str()).or_insert(0) += 1;
    }
    let per_attempt = calls.len() as f64 / f64::from(attempts);
    eprintln!("{attempts} attempts, {} DynamoDB calls ({per_attempt:.3} per attempt)", calls.len());
    assert!(per_attempt <= 0.1, "{} calls for {attempts} attempts: {ops:?}", calls.len());
    let reads_of_buyers = calls.iter().filter(|(op, body)| op == "GetItem" && body.contains("#USER#")).count();
    assert!(reads_of_buyers <= users.len() + 2, "each buyer read about once: {reads_of_buyers}");
    let (stock, purchases) = app.stored(&sale).await;
    assert_eq!((stock, purchases.len()), (vec![0, 0], 4), "nothing sold or changed");
}

/// The buyers each shard lists (its roster), as stored; `None`: the shard keeps no roster.
async fn roster(app: &TestApp, sale: &flash_sale::sale::Sale, shard: u32) -> Option<Vec<String>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = app
        .store()
        .client()
        .get_item()
        .table_name(app.store().table())
        .key("pk", AttributeValue::S(flash_sale::keys::shard_pk(sale.id.as_str(), shard)))
        .key("sk", AttributeValue::S(flash_sale::keys::SHARD_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.get("roster")?;
    let mut buyers = match item.get("buyers") {
        Some(AttributeValue::Ss(set)) => set.clone(),
        _ => Vec::new(),
    };
    buyers.sort();
    Some(buyers)
}

/// A crowd of buyers each trying once after the sell-out (the usual shape: most never come back
/// within a container's memory): the shards' rosters, read once with the stock, name every owner,
/// so nobody else's refusal reads anything; an owner is read once and told `already_purchased`.
/// On shards that keep no roster (written before rosters) every new buyer costs a read.
#[tokio::test]
async fn first_time_refusals_after_a_sell_out_for_good_read_nothing_but_the_owners() {
    let app = TestApp::fresh().await.tune(|t| *t = hints());
    let (sale, orders) = sold_to_four_winners(&app).await;
    let mut listed: Vec<String> = Vec::new();
    for shard in 0..2 {
        listed.extend(roster(&app, &sale, shard).await.expect("a holdless sale's shards keep a roster"));
    }
    listed.sort();
    assert_eq!(
        listed,
        (0..4).map(|n| format!("winner-{n}")).collect::<Vec<_>>(),
        "each buyer on the shard it bought from"
    );

    let crowd = |tag: &'static str| (0..200).map(move |n| format!("{tag}-{n}"));
    let once = |tag: &'static str| {
        let app = &app;
        let sale = &sale;
        let orders = &orders;
        async move {
            let recording = Recording::start(pass()).await;
            let container = app.container().via(recording.proxy.patient_client());
            let mut attempts = 0u32;
            for (n, user) in (0..4).map(|n| format!("winner-{n}")).chain(crowd(tag)).enumerate() {
                let answer = container.buy(sale, &user).await;
                attempts += 1;
                assert_refused(&answer, n, &user, orders);
            }
            let calls = recording.take();
            let buyer_reads = calls.iter().filter(|(op, body)| op == "GetItem" && body.contains("#USER#")).count();
            (calls.len() as f64 / f64::from(attempts), buyer_reads)
        }
    };
    let (per_attempt, buyer_reads) = once("first").await;
    eprintln!("with rosters: {per_attempt:.3} calls per attempt, {buyer_reads} buyer reads");
    assert!(per_attempt <= 0.1, "{per_attempt:.3} calls per attempt");
    // (The owners come first, before the container knows the sale sold out for good: their
    // transactions answer them, with the record the cancellation reports.)
    assert!(buyer_reads <= 4, "only owners may be read: {buyer_reads}");

    // Shards written before rosters: the same crowd is read buyer by buyer.
    for shard in 0..2 {
        app.store()
            .client()
            .update_item()
            .table_name(app.store().table())
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(flash_sale::keys::shard_pk(sale.id.as_str(), shard)))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(flash_sale::keys::SHARD_SK.into()))
            .update_expression("REMOVE roster, buyers")
            .send()
            .await
            .unwrap();
    }
    let (per_attempt, buyer_reads) = once("second").await;
    eprintln!("without rosters: {per_attempt:.3} calls per attempt, {buyer_reads} buyer reads");
    assert!(per_attempt >= 0.9 && buyer_reads >= 190, "each new buyer is read: {buyer_reads}");

    // A reset takes the buyers off the rosters with their records.
    let sale_with_rosters = SaleSpec::new().stock(2).shards(1).create(&app).await;
    for user in ["ann", "bob"] {
        assert_eq!(app.buy(&sale_with_rosters, user).await.0, 201);
    }
    assert_eq!(roster(&app, &sale_with_rosters, 0).await, Some(vec!["ann".to_owned(), "bob".to_owned()]));
    assert!(matches!(app.store().reset_sale(&sale_with_rosters, true).await.unwrap(), Reset::Done { .. }));
    assert_eq!(roster(&app, &sale_with_rosters, 0).await, Some(Vec::new()));
    // A sale with holds keeps none: its items come back through cancels and expiry.
    let held = SaleSpec::new().stock(1).holds(60).create(&app).await;
    assert_eq!(app.buy(&held, "cy").await.0, 201);
    assert_eq!(roster(&app, &held, 0).await, None);
}

#[tokio::test]
async fn after_a_reset_no_remembered_answer_outlives_the_items_given_back() {
    let app = TestApp::fresh().await.tune(|t| *t = hints());
    let sale = SaleSpec::new().stock(3).shards(3).create(&app).await;
    // `remembers` answers the crowd; `sells` is another container, without the hint, so that it
    // sells the moment the items are back.
    let remembers = app.container();
    let sells = app.container().tune(|t| t.sold_out_hint = Duration::ZERO);
    for user in ["alice", "bob", "erin"] {
        assert_eq!(sells.buy(&sale, user).await.0, 201);
    }
    let user = |u: &str| UserId::parse(u).unwrap();
    for u in ["carol", "dave", "alice"] {
        remembers.purchase(&sale.id, &user(u), None).await;
    }
    let report = remembers.purchase(&sale.id, &user("dave"), None).await;
    assert!(report.remembered && matches!(report.result, Err(flash_sale::AppError::SoldOut)), "{report:?}");
    let report = remembers.purchase(&sale.id, &user("alice"), None).await;
    assert!(report.remembered && matches!(report.result, Err(flash_sale::AppError::AlreadyPurchased(_))));

    // Its lease as fresh as can be when the reset starts: wait it out, and one refusal renews it.
    tokio::time::sleep(flash_sale::EPOCH_LEASE + Duration::from_millis(100)).await;
    assert_eq!(code(&remembers.buy(&sale, "carol").await), (409, Some("sold_out")));
    assert_eq!(app.store().reset_sale(&sale, true).await.unwrap(), Reset::Done { returned: 3, kept_confirmed: 0 });

    // Dave buys in the other container at once; the remembering one must not answer him from
    // what it remembered before the reset (had the reset not waited out its lease, it would).
    let (status, bought) = sells.buy(&sale, "dave").await;
    assert_eq!(status, 201, "{bought}");
    let answer = remembers.buy(&sale, "dave").await;
    assert_eq!(code(&answer), (409, Some("already_purchased")), "not the remembered sold_out: {}", answer.1);
    assert_eq!(answer.1["purchase"], bought);

    // Carol, refused before, buys through the container that remembered her; Alice, whose order
    // the reset deleted, is no longer told she owns one.
    assert_eq!(remembers.buy(&sale, "carol").await.0, 201, "carol is not refused from memory");
    assert_eq!(remembers.buy(&sale, "alice").await.0, 201, "alice's deleted order is not remembered");
    let (stock, purchases) = app.stored(&sale).await;
    let mut buyers: Vec<&str> = purchases.iter().map(|p| p.user_id.as_str()).collect();
    buyers.sort_unstable();
    assert_eq!((stock, buyers), (vec![0, 0, 0], vec!["alice", "carol", "dave"]));
}

#[tokio::test]
async fn a_hold_cancelled_in_another_container_leaves_no_remembered_sold_out() {
    let app = TestApp::fresh().await.tune(|t| *t = long_hint());
    let sale = SaleSpec::new().stock(1).holds(300).create(&app).await;
    let (crowd, other) = (app.container(), app.container());
    assert_eq!(other.buy(&sale, "alice").await.0, 201);
    // The crowd's container learns the shelf is empty, then refuses Bob from its hint (twice: a
    // memory would have been filled by the first).
    for _ in 0..3 {
        assert_eq!(code(&crowd.buy(&sale, "bob").await), (409, Some("sold_out")));
    }
    assert_eq!(other.delete_purchase(&sale, "alice").await.0, 200, "alice cancels: her item goes back");
    let (status, order) = other.buy(&sale, "bob").await;
    assert_eq!(status, 201);
    let answer = crowd.buy(&sale, "bob").await;
    assert_eq!(code(&answer), (409, Some("already_purchased")), "not a remembered sold_out: {}", answer.1);
    assert_eq!(answer.1["purchase"], order);
}

#[tokio::test]
async fn a_hold_that_ended_and_was_released_elsewhere_leaves_no_remembered_sold_out() {
    let app = TestApp::fresh().await.at(T0).tune(|t| *t = long_hint());
    let sale = SaleSpec::new().stock(1).holds(60).window(T0 - 1_000, T0 + 3_600_000).create(&app).await;
    let (crowd, other) = (app.container(), app.container());
    assert_eq!(other.buy(&sale, "alice").await.0, 201);
    for _ in 0..3 {
        assert_eq!(code(&crowd.buy(&sale, "bob").await), (409, Some("sold_out")));
    }
    // Alice's hold ends; the other container releases it on Bob's purchase and sells to him.
    app.clock().advance(61_000);
    let (status, order) = other.buy(&sale, "bob").await;
    assert_eq!(status, 201, "{order}");
    let answer = crowd.buy(&sale, "bob").await;
    assert_eq!(code(&answer), (409, Some("already_purchased")), "not a remembered sold_out: {}", answer.1);
    assert_eq!(answer.1["purchase"], order);
    let (stock, purchases) = app.stored(&sale).await;
    assert_eq!((stock, purchases.len()), (vec![0], 2), "alice's expired record and bob's order");
}

#[tokio::test]
async fn a_reset_left_half_done_remembers_nothing_until_a_reset_completes() {
    let app = TestApp::fresh().await.tune(|t| *t = long_hint());
    let sale = SaleSpec::new().stock(1).create(&app).await;
    let crowd = app.container();
    assert_eq!(app.buy(&sale, "alice").await.0, 201);
    // A reset that stopped after announcing itself (its epoch odd), before giving anything back.
    let pk = flash_sale::keys::sale_pk(sale.id.as_str());
    let key = |pk: &str, sk: &str| {
        [("pk", pk), ("sk", sk)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned())))
            .collect::<std::collections::HashMap<_, _>>()
    };
    app.store()
        .client()
        .update_item()
        .table_name(app.store().table())
        .set_key(Some(key(&pk, flash_sale::keys::SALE_SK)))
        .update_expression("SET resetEpoch = :odd")
        .expression_attribute_values(":odd", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await
        .expect("epoch");
    let user = UserId::parse("bob").unwrap();
    for _ in 0..4 {
        let report = crowd.purchase(&sale.id, &user, None).await;
        assert!(matches!(report.result, Err(flash_sale::AppError::SoldOut)));
        assert!(!report.remembered, "nothing is remembered while a reset is under way");
    }
    // The reset is run again and completes: remembered refusals come back, under the new epoch.
    assert_eq!(app.store().reset_sale(&sale, true).await.unwrap(), Reset::Done { returned: 1, kept_confirmed: 0 });
    assert_eq!(app.buy(&sale, "carol").await.0, 201);
    let mut remembered = false;
    for _ in 0..4 {
        let report = crowd.purchase(&sale.id, &user, None).await;
        assert!(matches!(report.result, Err(flash_sale::AppError::SoldOut)));
        remembered |= report.remembered;
    }
    assert!(remembered, "a completed reset ends the pause");
}
