//! The waiting room in front of a sale with sizes (variants) and up to 2 items per customer,
//! against DynamoDB Local: each admission sets 2 items of the whole sale aside, so an admitted
//! person inside their window is never told `sold_out` and always gets their 2 items, of the
//! sizes that still have stock, whatever the people admitted before or after them do. People
//! join, poll and buy through different containers (one `TestApp` each, one store and clock);
//! every check reads the stored state.

use std::collections::BTreeMap;
use std::sync::Arc;

use flash_sale::sale::{Sale, Variant};
use flash_sale_testkit::{TestApp, now_ms};
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000;
const MAX: u32 = 2;

/// The set-aside span: the claim window plus the purchase grace.
fn span() -> i64 {
    flash_sale::room::DEFAULT_CLAIM_MS + flash_sale::room::PURCHASE_GRACE_MS
}

/// A room sale with these sizes (`id`, stock, shards) and `MAX` per customer that opened an hour
/// ago (the draw is due at once), and a container on a manual clock at that time.
async fn sized_room(sizes: &[(&str, i64, u32)]) -> (Sale, TestApp) {
    let start = now_ms() - HOUR;
    let app = TestApp::fresh().await.at(start + HOUR).admission();
    let mut sale = flash_sale_testkit::sale(&flash_sale_testkit::unique("rv"), 1, 1, start, start + 2 * HOUR);
    sale.set_variants(
        sizes
            .iter()
            .map(|&(id, stock, shards)| Variant {
                variant_id: id.into(),
                label: id.to_uppercase(),
                sku: None,
                stock,
                shards,
            })
            .collect(),
    );
    sale.max_per_customer = MAX;
    let seed = flash_sale::room::new_seed().expect("seed");
    sale.room = Some(flash_sale::room::RoomConfig::new(sale.shards, start, &seed));
    app.store().create_sale_with_room(&sale, &seed, start - HOUR).await.expect("a room with sizes is created");
    (sale, app)
}

/// `user`'s admission token, read from `container`; checks the set-aside shows.
async fn token(container: &TestApp, sale: &str, user: &str) -> String {
    let (_, line) = container.get_queue(sale, user).await;
    assert_eq!(line["state"], "admitted", "{user}: {line}");
    assert_eq!(line["admissionExpiresAt"], line["setAsideUntil"], "{line}");
    line["admissionToken"].as_str().expect("a token").to_owned()
}

async fn buy(container: &TestApp, sale: &str, user: &str, token: &str, size: &str, quantity: u32) -> (u16, Value) {
    let body = json!({"userId": user, "admissionToken": token, "variantId": size, "quantity": quantity});
    container.post_purchase(sale, &body.to_string()).await
}

/// Each `(user, token, seed)` buys up to its share ([`buy_share`]), all at once, through
/// `containers` in turn; none of them is ever told `sold_out`.
async fn buy_shares_at_once(containers: &[TestApp], sale: &str, buyers: Vec<(String, String, u64)>) {
    let attempts = buyers.iter().enumerate().map(|(i, (user, token, seed))| {
        let container = &containers[i % containers.len()];
        async move { (user, buy_share(container, sale, user, token, MAX, *seed).await) }
    });
    for (user, answers) in futures::future::join_all(attempts).await {
        for (status, body) in &answers {
            assert_ne!(body["code"], "sold_out", "{user}: {body}");
            assert!(matches!(status, 201 | 409 | 503), "{user}: {status} {body}");
        }
    }
}

/// An admitted person buying `want` items as a shopper would: a random size, 2 at once or one
/// at a time; another size when theirs is gone (`variant_sold_out` names the sizes left), fewer
/// when the size has fewer (`not_enough_stock`). Returns every answer; bounded.
async fn buy_share(
    container: &TestApp,
    sale: &str,
    user: &str,
    token: &str,
    want: u32,
    seed: u64,
) -> Vec<(u16, Value)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut sizes: Vec<String> = Vec::new();
    let mut answers = Vec::new();
    let mut got = 0;
    let mut size_hint: Option<String> = None;
    let mut at_most = want;
    for _ in 0..12 {
        if got >= want {
            break;
        }
        let size = match size_hint.take() {
            Some(s) => s,
            None if sizes.is_empty() => ["s", "m", "l"][rng.usize(..3)].to_owned(),
            None => sizes[rng.usize(..sizes.len())].clone(),
        };
        let quantity = if want - got >= 2 && at_most >= 2 && rng.bool() { 2 } else { 1 };
        let (status, body) = buy(container, sale, user, token, &size, quantity).await;
        match (status, body["code"].as_str()) {
            (201, _) => got += body["quantity"].as_u64().unwrap_or(1) as u32,
            (409, Some("variant_sold_out")) => {
                sizes = body["available"]
                    .as_array()
                    .expect("the sizes left")
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
            }
            (409, Some("not_enough_stock")) => {
                at_most = 1;
                size_hint = Some(size);
            }
            (503, _) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            _ => {
                answers.push((status, body));
                break;
            }
        }
        answers.push((status, body));
    }
    answers
}

/// Per size, stock left + items held live = its stock; nobody holds more than `MAX`, and the
/// customer's stored count is what their live orders hold. Returns the items held per customer.
async fn check_stored(app: &TestApp, sale: &Sale) -> BTreeMap<String, i64> {
    let stock = app.store().shard_stock(&[sale]).await.expect("stock").remove(0);
    let orders = app.store().purchases_of(&sale.id).await.expect("orders");
    let live: Vec<_> = orders.iter().filter(|o| o.status.is_live()).collect();
    for v in sale.spans() {
        let left: i64 = v.shard_range().map(|n| stock[n as usize]).sum();
        let held: i64 = live.iter().filter(|o| o.variant() == v.id).map(|o| i64::from(o.items())).sum();
        assert!(v.shard_range().all(|n| stock[n as usize] >= 0), "a shard below zero: {stock:?}");
        assert_eq!(left + held, v.stock, "size {}: stock + live = total", v.id);
    }
    let mut per_customer: BTreeMap<String, i64> = BTreeMap::new();
    for o in &live {
        *per_customer.entry(o.user_id.clone()).or_default() += i64::from(o.items());
    }
    for (user, held) in &per_customer {
        assert!(*held <= i64::from(MAX), "{user} holds {held}");
        let uid = flash_sale::ids::UserId::parse(user).unwrap();
        let counted = app.store().customer(&sale.id, &uid).await.expect("customer").map_or(0, |c| c.live);
        assert_eq!(counted, *held, "{user}'s live count");
    }
    per_customer
}

fn remaining(view: &Value) -> i64 {
    view["remainingStock"].as_i64().expect("remainingStock")
}

/// 31 items in three sizes, 2 per customer: the room admits 15 people (2 items each; the 31st is
/// nobody's yet). All 15 buy at once, through four containers, random sizes: each gets 2, none
/// is told `sold_out`. The last item goes to one more person once the others' windows are over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admitted_people_each_get_their_two_items_of_some_size_and_none_is_told_sold_out() {
    let (sale, app) = sized_room(&[("s", 11, 1), ("m", 10, 2), ("l", 10, 1)]).await;
    let id = sale.id.to_string();
    let clock = app.clock();
    let containers: Vec<Arc<TestApp>> = (0..4).map(|_| Arc::new(app.container())).collect();
    for n in 0..40 {
        app.post_queue(&id, &format!("u{n}")).await;
    }
    clock.advance(1_000);
    let view = app.view(&id).await;
    assert_eq!(view["queue"]["admittedThrough"], 15, "two items set aside per admission: {view}");
    assert_eq!(view["maxPerCustomer"], MAX);
    let mut tokens = Vec::new();
    for n in 0..15 {
        tokens.push(token(&containers[n % 4], &id, &format!("u{n}")).await);
    }
    let mut tasks = Vec::new();
    for (n, token) in tokens.into_iter().enumerate() {
        let container = containers[(n + 1) % 4].clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("u{n}");
            (user.clone(), buy_share(&container, &id, &user, &token, MAX, n as u64).await)
        }));
    }
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        let (user, answers) = t.await.expect("buyer");
        for (status, body) in &answers {
            *codes.entry(format!("{status} {}", body["code"].as_str().unwrap_or(""))).or_default() += 1;
            assert_ne!(body["code"], "sold_out", "{user} was told sold_out inside their window: {body}");
            assert!(matches!(status, 201 | 409 | 503), "{user}: {status} {body}");
        }
    }
    eprintln!("answers: {codes:?}");
    let held = check_stored(&app, &sale).await;
    assert_eq!(held.len(), 15, "{held:?}");
    assert!(held.values().all(|h| *h == 2), "everyone admitted has their 2: {held:?}");
    assert_eq!(remaining(&app.view(&id).await), 1);

    // Everyone admitted holds 2, but any of them could cancel and buy again within their window:
    // the last item waits for their windows to end, then goes to one more person alone.
    clock.advance(span() - 2_000);
    assert_eq!(app.view(&id).await["queue"]["admittedThrough"], 15);
    clock.advance(3_000);
    assert_eq!(containers[1].view(&id).await["queue"]["admittedThrough"], 16);
    let last = token(&containers[2], &id, "u15").await;
    let (status, body) = buy(&containers[3], &id, "u15", &last, "s", 2).await;
    assert_eq!(status, 409, "{body}");
    match body["code"].as_str() {
        // One item left: in this size, or in another one.
        Some("not_enough_stock") => assert_eq!(body["remaining"], 1, "{body}"),
        Some("variant_sold_out") => assert_eq!(body["available"].as_array().map(Vec::len), Some(1), "{body}"),
        _ => panic!("not a size refusal: {body}"),
    }
    let answers = buy_share(&containers[0], &id, "u15", &last, 1, 99).await;
    assert_eq!(answers.last().map(|a| a.0), Some(201), "{answers:?}");
    let held = check_stored(&app, &sale).await;
    assert_eq!((held.len(), held.get("u15")), (16, Some(&1)));
    clock.advance(2_000);
    let view = app.view(&id).await;
    assert_eq!((view["state"].as_str(), view["queue"]["state"].as_str()), (Some("sold_out"), Some("sold_out")));
    assert_eq!(view["queue"]["admittedThrough"], 16, "nobody more was admitted for stock that is gone");
    let (_, line) = app.get_queue(&id, "u30").await;
    assert_eq!(line["state"], "sold_out", "{line}");
}

/// As `an_item_set_aside_is_not_taken_by_an_earlier_cohort`, with 2 per customer: the first five
/// admitted (10 items, 2 each) do not buy; the next five are admitted once their window and grace
/// are over; then the first five try to buy everything at once and take nothing, and the second
/// five each get their 2.
#[tokio::test]
async fn a_share_set_aside_is_not_taken_by_an_earlier_cohort_buying_late() {
    let (sale, app) = sized_room(&[("s", 3, 1), ("m", 4, 1), ("l", 3, 1)]).await;
    let clock = app.clock();
    let id = sale.id.to_string();
    let other = app.container();
    for n in 0..20 {
        app.post_queue(&id, &format!("u{n}")).await;
    }
    clock.advance(1_000);
    assert_eq!(other.view(&id).await["queue"]["admittedThrough"], 5, "10 items, 2 set aside each");
    let mut first = Vec::new();
    for n in 0..5 {
        first.push(token(&other, &id, &format!("u{n}")).await);
    }
    clock.advance(span() - 2_000);
    assert_eq!(app.view(&id).await["queue"]["admittedThrough"], 5, "the first five still hold the stock");
    clock.advance(3_000);
    assert_eq!(other.view(&id).await["queue"]["admittedThrough"], 10);
    let mut second = Vec::new();
    for n in 5..10 {
        second.push(token(&app, &id, &format!("u{n}")).await);
    }
    clock.advance(1_000);
    let buyers: Vec<TestApp> = (0..3).map(|_| app.container()).collect();
    let id = id.as_str();
    let late = first.iter().enumerate().map(|(n, token)| {
        let container = &buyers[n % 3];
        async move { buy(container, id, &format!("u{n}"), token, ["s", "m", "l"][n % 3], 2).await }
    });
    for (code, body) in futures::future::join_all(late).await {
        assert_eq!((code, body["code"].as_str()), (403, Some("admission_invalid")), "{body}");
    }
    assert!(check_stored(&app, &sale).await.is_empty(), "nothing was taken");
    clock.advance(8_000);
    let on_time = second.iter().enumerate().map(|(n, token)| (format!("u{}", n + 5), token.clone(), 10 + n as u64));
    buy_shares_at_once(&buyers, id, on_time.collect()).await;
    let held = check_stored(&app, &sale).await;
    let expected: BTreeMap<String, i64> = (5..10).map(|n| (format!("u{n}"), 2)).collect();
    assert_eq!(held, expected, "the second five hold 2 each, the first five nothing");
    assert_eq!(remaining(&app.view(id).await), 0);
}

/// The other side of the promise: people admitted *later* do not take the share of someone
/// admitted earlier who buys late in their window. Three of the first five buy their 2 at once;
/// the four items left are the other two's, so nobody more is admitted for them, and the two
/// get their 2 each a second before their window ends.
#[tokio::test]
async fn a_share_set_aside_is_not_taken_by_people_admitted_later() {
    let (sale, app) = sized_room(&[("s", 2, 1), ("m", 5, 1), ("l", 3, 1)]).await;
    let clock = app.clock();
    let id = sale.id.to_string();
    let other = app.container();
    for n in 0..20 {
        app.post_queue(&id, &format!("u{n}")).await;
    }
    clock.advance(1_000);
    assert_eq!(other.view(&id).await["queue"]["admittedThrough"], 5);
    let mut tokens = Vec::new();
    for n in 0..5 {
        tokens.push(token(&other, &id, &format!("u{n}")).await);
    }
    for (n, token) in tokens.iter().enumerate().take(3) {
        let answers = buy_share(&app, &id, &format!("u{n}"), token, MAX, 20 + n as u64).await;
        assert_eq!(answers.last().map(|a| a.0), Some(201), "u{n}: {answers:?}");
    }
    assert_eq!(remaining(&app.view(&id).await), 4);
    for step in [2_000, 20_000, 30_000] {
        clock.advance(step);
        let view = other.view(&id).await;
        assert_eq!(view["queue"]["admittedThrough"], 5, "the 4 items left are u3's and u4's: {view}");
    }
    // A second before their window ends, both buy their 2, at once, through two containers.
    let until =
        flash_sale::time_fmt::parse_rfc3339_ms(other.get_queue(&id, "u3").await.1["setAsideUntil"].as_str().unwrap())
            .unwrap();
    clock.set(until - 1_000);
    let buyers = [app.container(), app.container()];
    let late = (3..5).map(|n| (format!("u{n}"), tokens[n].clone(), 30 + n as u64));
    buy_shares_at_once(&buyers, &id, late.collect()).await;
    let held = check_stored(&app, &sale).await;
    let expected: BTreeMap<String, i64> = (0..5).map(|n| (format!("u{n}"), 2)).collect();
    assert_eq!(held, expected, "the first five hold their 2 each");
}
