//! The waiting room against DynamoDB Local: idempotent joins, unique places, first in first out
//! after opening, a pre-queue draw anyone can recompute, admission tokens on the purchase path,
//! admission held to the stock, and a room that closes when the stock is gone. People join, poll
//! and buy through different containers (one `TestApp` each, one store and clock), as Lambda
//! serves them: a place, a draw or a token must not depend on which container answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flash_sale::clock::Clock;
use flash_sale::sale::Sale;
use flash_sale_testkit::proxy::{Proxy, pass, upstream};
use flash_sale_testkit::{Route, SaleSpec, TestApp, admission_keys, now_ms, req};
use serde_json::Value;

const HOUR: i64 = 3_600_000;

/// A room sale that opened an hour ago (the draw is due at once), and a container on a manual
/// clock at that time.
async fn open_room(stock: i64, shards: u32) -> (Sale, TestApp) {
    let start = now_ms() - HOUR;
    let app = TestApp::fresh().await.at(start + HOUR).admission();
    let (sale, _) = SaleSpec::new().stock(stock).shards(shards).window(start, start + 2 * HOUR).create_room(&app).await;
    (sale, app)
}

/// A room sale opening at `start`, and a container on a manual clock at `now`.
async fn room_at(stock: i64, shards: u32, start: i64, now: i64) -> (Sale, Vec<u8>, TestApp) {
    let app = TestApp::fresh().await.at(now).admission();
    let (sale, seed) = SaleSpec::new().stock(stock).shards(shards).window(start, start + HOUR).create_room(&app).await;
    (sale, seed, app)
}

#[tokio::test]
async fn joins_are_idempotent_places_unique_and_first_in_first_out_after_opening() {
    let (sale, app) = open_room(10, 2).await;
    let id = sale.id.to_string();
    let mut places = Vec::new();
    for n in 0..30 {
        let (code, body) = app.post_queue(&id, &format!("seq-{n}")).await;
        assert_eq!(code, 200, "{body}");
        places.push(body["position"].as_i64().expect("a place"));
    }
    assert!(places.windows(2).all(|w| w[0] < w[1]), "in arrival order: {places:?}");
    let (_, again) = app.container().post_queue(&id, "seq-3").await;
    assert_eq!(again["position"].as_i64(), Some(places[3]), "joining again, anywhere, keeps the place");

    // Concurrent joins from many tasks over two containers, each person joining once in each.
    let containers: Arc<[TestApp; 2]> = Arc::new(app.containers());
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (containers, id) = (containers.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for n in 0..8 {
                let user = format!("c-{t}-{n}");
                let (first, second) = if (t + n) % 2 == 0 { (0, 1) } else { (1, 0) };
                let (_, first) = containers[first].post_queue(&id, &user).await;
                let (_, second) = containers[second].post_queue(&id, &user).await;
                assert_eq!(first["position"], second["position"], "{user}");
                mine.push((user, first["position"].as_i64().expect("place")));
            }
            mine
        }));
    }
    let mut all: BTreeMap<String, i64> = BTreeMap::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<i64> = all.values().chain(places.iter()).copied().collect();
    assert_eq!(unique.len(), 30 + 256, "every place is someone's alone");
    let stored = app.store().room_entries(&sale.id).await.unwrap();
    assert_eq!(stored.len(), 30 + 256, "one entry per person");
    // Places issued from the sale's counter (the admitted and the waiting, with the tickets the
    // containers hold in their blocks): the tickets handed out, at most one per join, and at most
    // two blocks per container besides (four containers joined; with the clock held still a
    // block is twice the one before it). Requests that each took a block of their own, or that
    // sized theirs after blocks that others had used meanwhile, ran far ahead.
    app.clock().advance(2_000);
    let view = app.view(&id).await;
    let issued = view["queue"]["length"].as_i64().unwrap() + view["queue"]["admittedThrough"].as_i64().unwrap();
    assert!(issued <= 30 + 2 * 256 + 4 * 200, "{issued} places issued for {} joins", 30 + 2 * 256);
}

#[tokio::test]
async fn the_prequeue_order_is_the_draw_recomputed_from_the_revealed_seed() {
    let start = now_ms() + HOUR;
    let (sale, seed, app) = room_at(100, 2, start, start - 10 * 60_000).await;
    let id = sale.id.to_string();
    let other = app.container();
    let view = app.view(&id).await;
    let commitment = view["queue"]["drawCommitment"].as_str().unwrap().to_owned();
    assert_eq!(view["queue"]["state"], "prequeue");
    assert!(view["queue"].get("drawSeed").is_none(), "the seed stays secret before opening: {view}");
    let users: Vec<String> = (0..60).map(|n| format!("early-{n}")).collect();
    for (n, u) in users.iter().enumerate() {
        // The pre-queue fills from both containers.
        let (code, body) = if n % 2 == 0 { app.post_queue(&id, u).await } else { other.post_queue(&id, u).await };
        assert_eq!((code, body["state"].as_str(), &body["position"]), (200, Some("waiting"), &Value::Null), "{body}");
    }
    app.clock().set(start + flash_sale::room::DRAW_GRACE_MS);
    let view = app.view(&id).await;
    let revealed = hex_decode(view["queue"]["drawSeed"].as_str().expect("revealed at opening"));
    assert_eq!(revealed, seed);
    assert_eq!(flash_sale::room::commitment(&revealed), commitment, "the seed is the one committed to");
    let expected: BTreeMap<String, i64> = flash_sale::room::draw(&revealed, &users).into_iter().collect();
    for u in &users {
        // The other container learns the draw from the store, not from having drawn.
        let (_, body) = other.get_queue(&id, u).await;
        assert_eq!(body["position"].as_i64(), Some(expected[u]), "{u}: {body}");
    }
    let order: Vec<i64> = users.iter().map(|u| expected[u]).collect();
    assert_ne!(order, (1..=60).collect::<Vec<_>>(), "arrival order did not decide");
    // After opening, joiners queue behind the whole pre-queue, first in first out.
    let (_, late) = app.post_queue(&id, "late-1").await;
    let (_, later) = app.post_queue(&id, "late-2").await;
    assert_eq!((late["position"].as_i64(), later["position"].as_i64()), (Some(61), Some(62)));
    // Joining again, from the pre-queue or after opening, keeps one's place and leaves no hole.
    for again in [users[0].as_str(), "late-1", "late-2", "late-1"] {
        let (status, body) = app.post_queue(&id, again).await;
        assert_eq!(status, 200);
        let (_, polled) = other.get_queue(&id, again).await;
        assert_eq!(body["position"], polled["position"], "{again}");
    }
    let (_, next) = app.post_queue(&id, "late-3").await;
    assert_eq!(next["position"].as_i64(), Some(63), "the next joiner follows directly: {next}");
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

#[tokio::test]
async fn purchases_need_a_valid_admitted_token_and_refusals_change_nothing() {
    let (sale, app) = open_room(5, 1).await;
    let id = sale.id.to_string();
    // Alice joins in one container, polls in a second and buys in a third.
    let [queue, poll, purchase] = app.containers();
    let (_, first) = queue.post_queue(&id, "alice").await;
    assert_eq!(first["state"], "admitted", "an empty line admits at once: {first}");
    app.clock().advance(2_000);
    let (_, admitted) = poll.get_queue(&id, "alice").await;
    assert_eq!(admitted["state"], "admitted", "{admitted}");
    let token = admitted["admissionToken"].as_str().expect("a token").to_owned();

    let keys = admission_keys();
    let alice = flash_sale::ids::UserId::parse("alice").unwrap();
    let now = app.clock().now_ms();
    let expired = keys.sign(&sale.id, &alice, 1, now - 1);
    let elsewhere = keys.sign(&flash_sale::ids::SaleId::parse("other-sale").unwrap(), &alice, 1, now + 60_000);
    let ahead = keys.sign(&sale.id, &alice, 10_000, now + 60_000);
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("alice", None, "admission_required"),
        ("alice", Some("forged.token"), "admission_invalid"),
        ("alice", Some(&expired), "admission_invalid"),
        ("mallory", Some(&token), "admission_invalid"),
        ("alice", Some(&elsewhere), "admission_invalid"),
        ("alice", Some(&ahead), "not_yet_admitted"),
    ];
    for (user, t, code) in cases {
        let (status, body) = purchase.buy_admitted(&id, user, t).await;
        assert_eq!((status, body["code"].as_str()), (403, Some(code)), "{user} {t:?}: {body}");
    }
    assert_eq!(app.stored(&sale).await, (vec![5], vec![]), "nothing stored changed");
    let (status, body) = purchase.buy_admitted(&id, "alice", Some(&token)).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn admission_is_held_to_the_stock_and_the_room_closes_when_it_is_gone() {
    let (sale, app) = open_room(4, 1).await;
    let clock = app.clock();
    let id = sale.id.to_string();
    // Everyone joins through one container; the line is read and bought from another.
    let other = app.container();
    for n in 0..40 {
        app.post_queue(&id, &format!("u{n}")).await;
    }
    // 50 per second would admit everyone in a second; the stock holds it to one admission per item.
    clock.advance(3_000);
    let view = other.view(&id).await;
    assert_eq!(view["queue"]["admittedThrough"], 4, "{view}");
    // Places not yet admitted: the 36 people waiting, plus places a container reserved in a block
    // and had not handed out yet (never more than about a second of its joins).
    let length = view["queue"]["length"].as_i64().unwrap();
    assert!((36..=36 + 64).contains(&length), "{length}");
    let mut tokens = Vec::new();
    for n in 0..4 {
        let (_, line) = other.get_queue(&id, &format!("u{n}")).await;
        assert_eq!(line["state"], "admitted", "u{n}: {line}");
        tokens.push(line["admissionToken"].as_str().unwrap().to_owned());
        // The item is set aside for the claim window (60 s), and the token buys for exactly as long.
        assert_eq!(line["admissionExpiresAt"], line["setAsideUntil"], "{line}");
    }
    for (n, token) in tokens.iter().enumerate().take(2) {
        let (code, body) = other.buy_admitted(&id, &format!("u{n}"), Some(token)).await;
        assert_eq!(code, 201, "{body}");
    }
    // u2 and u3 have not bought: within their claim window the 2 items left are theirs.
    clock.advance(30_000);
    let view = app.view(&id).await;
    assert_eq!(view["queue"]["admittedThrough"], 4, "nobody races an admitted buyer for an item: {view}");
    // Their window is over: their items go to the next two in line.
    clock.advance(40_000);
    let view = other.view(&id).await;
    assert_eq!(view["queue"]["admittedThrough"], 6, "{view}");
    for n in 4..6 {
        let (_, line) = app.get_queue(&id, &format!("u{n}")).await;
        assert_eq!(line["state"], "admitted", "u{n}: {line}");
        let (code, body) = other.buy_admitted(&id, &format!("u{n}"), line["admissionToken"].as_str()).await;
        assert_eq!(code, 201, "{body}");
    }
    clock.advance(2_000);
    let view = app.view(&id).await;
    assert_eq!((view["state"].as_str(), view["queue"]["state"].as_str()), (Some("sold_out"), Some("sold_out")));
    assert_eq!(view["queue"]["admittedThrough"], 6, "nobody more was admitted for stock that is gone");
    for n in 6..40 {
        let (_, line) = other.get_queue(&id, &format!("u{n}")).await;
        assert_eq!(line["state"], "sold_out", "u{n} learns it on the next poll: {line}");
    }
    // A token does not outlive its claim window.
    let (code, body) = app.buy_admitted(&id, "u2", Some(&tokens[2])).await;
    assert_eq!((code, body["code"].as_str()), (403, Some("admission_invalid")), "{body}");
    let (stock, purchases) = app.stored(&sale).await;
    assert_eq!((stock, purchases.len()), (vec![0], 4));
}

#[tokio::test]
async fn the_line_refuses_what_it_should_with_problem_codes() {
    let start = now_ms() + 2 * HOUR;
    let (sale, _, app) = room_at(5, 1, start, start - HOUR).await;
    let id = sale.id.to_string();
    let (code, body) = app.post_queue(&id, "eager").await;
    assert_eq!((code, body["code"].as_str()), (403, Some("queue_not_open")), "{body}");
    assert!(body["opensAt"].is_string());
    let (code, body) = app.get_queue(&id, "nobody").await;
    assert_eq!((code, body["code"].as_str()), (404, Some("not_in_line")));
    let plain = SaleSpec::new().stock(5).create(&app).await;
    let (code, body) = app.post_queue(&plain, "x").await;
    assert_eq!((code, body["code"].as_str()), (404, Some("no_waiting_room")));
    let wrong_method = req::get(&format!("/sales/{id}/queue"), &[("saleId", id.as_str())]);
    assert_eq!(app.call(Route::Queue, wrong_method).await.status_code, 405);
    app.clock().set(start + 2 * HOUR);
    let (code, body) = app.post_queue(&id, "too-late").await;
    assert_eq!((code, body["state"].as_str()), (200, Some("closed")), "{body}");
    assert!(app.store().room_entries(&sale.id).await.unwrap().is_empty(), "nobody was put in line");
}

#[tokio::test]
async fn a_prequeue_too_large_for_a_request_is_drawn_by_the_scheduled_function() {
    let start = now_ms() + HOUR;
    let (sale, seed, app) = room_at(100, 2, start, start - 60_000).await;
    let app = app.tune(|t| t.request_draw_limit = 10);
    let clock = app.clock();
    let id = sale.id.to_string();
    let sweeper = app.container();
    let users: Vec<String> = (0..25).map(|n| format!("early-{n}")).collect();
    for u in &users {
        assert_eq!(app.post_queue(&id, u).await.0, 200);
    }
    clock.set(start + flash_sale::room::DRAW_GRACE_MS + 1_000);
    // Requests leave 25 people to the scheduled function: the line says it is drawing.
    for _ in 0..3 {
        assert_eq!(app.view(&id).await["queue"]["state"], "drawing");
        let (_, body) = app.get_queue(&id, &users[0]).await;
        assert_eq!((body["state"].as_str(), &body["position"]), (Some("waiting"), &Value::Null), "{body}");
        clock.advance(1_000);
    }
    // The sweeper function's container draws, once.
    assert_eq!(sweeper.draw_due_rooms().await.unwrap(), vec![id.clone()]);
    assert!(sweeper.container().draw_due_rooms().await.unwrap().is_empty(), "drawn once");
    clock.advance(1_000);
    assert_eq!(app.view(&id).await["queue"]["state"], "admitting");
    let expected: BTreeMap<String, i64> = flash_sale::room::draw(&seed, &users).into_iter().collect();
    for u in &users {
        assert_eq!(app.get_queue(&id, u).await.1["position"].as_i64(), Some(expected[u]), "{u}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_requests_in_one_container_refreshes_the_room_once() {
    let start = now_ms() - HOUR;
    let proxy = Proxy::start(upstream(), pass()).await;
    let direct = TestApp::fresh().await.at(start + HOUR).admission();
    let (sale, _) = SaleSpec::new().stock(100).shards(2).window(start, start + 2 * HOUR).create_room(&direct).await;
    let id = sale.id.to_string();
    let client = flash_sale_testkit::own_retry_quota(&flash_sale::aws::local_client(&proxy.endpoint).expect("client"));
    let app = Arc::new(direct.via(client).tune(|t| t.sale_cache = std::time::Duration::from_secs(600)));
    assert_eq!(app.post_queue(&id, "first").await.0, 200, "the room is read and drawn once");
    app.clock().advance(1_500);
    let reads = |p: &Proxy| p.counts().get(&("GetItem".to_owned(), "pass")).copied().unwrap_or(0);
    let before = reads(&proxy);
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let (app, id) = (app.clone(), id.clone());
            tokio::spawn(async move { app.post_queue(&id, &format!("burst-{n}")).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().0, 200);
    }
    // One refresh reads the room and the place counter (two GetItems), not one per request.
    let refreshes = reads(&proxy) - before;
    assert!(refreshes <= 4, "{refreshes} GetItems for 32 joins on a stale room");
}

/// The seed is revealed once the pre-queue is drawn, not at `startsAt`: while a draw is due and
/// not done, nobody can read the seed and the entrants together before the places are written.
#[tokio::test]
async fn the_seed_is_revealed_only_once_the_draw_is_complete() {
    let start = now_ms() + HOUR;
    let (sale, seed, app) = room_at(100, 1, start, start - 60_000).await;
    let app = app.tune(|t| t.request_draw_limit = 2);
    let id = sale.id.to_string();
    for n in 0..5 {
        assert_eq!(app.post_queue(&id, &format!("early-{n}")).await.0, 200);
    }
    app.clock().set(start + flash_sale::room::DRAW_GRACE_MS + 1_000);
    let view = app.view(&id).await;
    assert_eq!(view["queue"]["state"], "drawing", "{view}");
    assert!(view["queue"].get("drawSeed").is_none(), "no seed before the draw is complete: {view}");
    assert_eq!(app.container().draw_due_rooms().await.unwrap(), vec![id.clone()]);
    app.clock().advance(1_000);
    let view = app.view(&id).await;
    assert_eq!(view["queue"]["drawSeed"].as_str().map(hex_decode), Some(seed), "{view}");
}

/// The room's admission step reads the stock with a strongly consistent read: the cap never
/// admits against a stock an eventually consistent read still showed.
#[tokio::test]
async fn the_admission_cap_reads_the_stock_strongly_consistently() {
    let (sale, app) = open_room(5, 2).await;
    let recording = flash_sale_testkit::proxy::Recording::start(pass()).await;
    let watched = app.container().via(recording.proxy.client());
    // A join answers from the room's step (the sale view would add its own, eventually consistent,
    // public stock read).
    assert_eq!(watched.post_queue(&sale.id.to_string(), "bob").await.0, 200);
    let reads: Vec<String> =
        recording.take().into_iter().filter(|(op, _)| op == "BatchGetItem").map(|(_, body)| body).collect();
    assert!(!reads.is_empty(), "the room's step reads the shards");
    for body in &reads {
        let request: Value = serde_json::from_str(body).unwrap();
        let consistent = request["RequestItems"].as_object().unwrap().values().all(|k| k["ConsistentRead"] == true);
        assert!(consistent, "an eventually consistent stock read: {body}");
    }
}

/// A purchase retried with its Idempotency-Key after its admission token expired is answered
/// with the order it committed, not refused.
#[tokio::test]
async fn a_keyed_retry_after_the_token_expired_gets_the_committed_order() {
    let (sale, app) = open_room(5, 1).await;
    let id = sale.id.to_string();
    let (_, joined) = app.post_queue(&id, "alice").await;
    let token = joined["admissionToken"].as_str().expect("admitted at once").to_owned();
    let keyed = |key: &str| {
        let mut r = req::purchase_keyed(&id, "alice", Some(key));
        r.event.body = Some(serde_json::json!({ "userId": "alice", "admissionToken": token }).to_string());
        r
    };
    async fn send(container: &TestApp, r: flash_sale::http::ApiRequest) -> (u16, Value) {
        let resp = container.call(Route::Purchase, r).await;
        (resp.status_code, serde_json::from_str::<Value>(&resp.body).unwrap())
    }
    let (status, first) = send(&app, keyed("order-1")).await;
    assert_eq!(status, 201, "{first}");
    let expires = flash_sale::time_fmt::parse_rfc3339_ms(joined["admissionExpiresAt"].as_str().unwrap()).unwrap();
    app.clock().set(expires + 1);
    // The retry reaches another container, after the token's end.
    let other = app.container();
    let (status, again) = send(&other, keyed("order-1")).await;
    assert_eq!((status, &again["orderId"]), (201, &first["orderId"]), "{again}");
    let (status, refused) = send(&other, keyed("order-2")).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("already_purchased")), "another key: {refused}");
    assert_eq!(app.stored(&sale).await.1.len(), 1, "one order");
}

/// One sale whose room cannot be read does not fail the list of every sale.
#[tokio::test]
async fn an_unreadable_room_leaves_the_other_sales_listed() {
    let (broken, app) = open_room(5, 1).await;
    let fine = SaleSpec::new().create(&app).await;
    let room = SaleSpec::new().create_room(&app).await.0;
    flash_sale_testkit::spoil(
        app.store(),
        &flash_sale::keys::sale_pk(broken.id.as_str()),
        flash_sale::keys::ROOM_SK,
        "admittedThrough",
    )
    .await;
    let (status, body) = app.get_sales().await;
    assert_eq!(status, 200, "{body}");
    let listed: BTreeSet<&str> =
        body["sales"].as_array().unwrap().iter().filter_map(|s| s["saleId"].as_str()).collect();
    assert!(listed.contains(fine.id.as_str()) && listed.contains(room.id.as_str()), "{body}");
    assert!(!listed.contains(broken.id.as_str()), "the unreadable one is left out, not shown without its room");
}

/// An admitted person whose `setAsideUntil` has not passed is never refused `sold_out`, whatever
/// people admitted earlier do: an earlier cohort's tokens stop buying when their window ends, and
/// the next cohort is admitted only after that window (plus the purchase grace) has passed.
#[tokio::test]
async fn an_item_set_aside_is_not_taken_by_an_earlier_cohort() {
    let (sale, app) = open_room(10, 1).await;
    let clock = app.clock();
    let id = sale.id.to_string();
    let other = app.container();
    for n in 0..20 {
        app.post_queue(&id, &format!("u{n}")).await;
    }
    clock.advance(1_000);
    assert_eq!(other.view(&id).await["queue"]["admittedThrough"], 10);
    let mut first = Vec::new();
    for n in 0..10 {
        let (_, line) = other.get_queue(&id, &format!("u{n}")).await;
        assert_eq!(line["state"], "admitted", "u{n}: {line}");
        first.push(line["admissionToken"].as_str().unwrap().to_owned());
    }
    // The first cohort does not buy. Their window passes; the next ten are admitted once it
    // (and the grace a purchase checked in time may still take) is over.
    let window = flash_sale::room::DEFAULT_CLAIM_MS + flash_sale::room::PURCHASE_GRACE_MS;
    clock.advance(window - 2_000);
    assert_eq!(app.view(&id).await["queue"]["admittedThrough"], 10, "the first ten still hold the stock");
    clock.advance(3_000);
    assert_eq!(other.view(&id).await["queue"]["admittedThrough"], 20);
    let mut second = Vec::new();
    for n in 10..20 {
        let (_, line) = app.get_queue(&id, &format!("u{n}")).await;
        assert_eq!(line["state"], "admitted", "u{n}: {line}");
        let until = flash_sale::time_fmt::parse_rfc3339_ms(line["setAsideUntil"].as_str().unwrap()).unwrap();
        assert!(until > clock.now_ms() + 50_000, "{line}");
        second.push(line["admissionToken"].as_str().unwrap().to_owned());
    }
    // The first cohort now tries to buy everything, at once, through several containers.
    clock.advance(1_000);
    let buyers: Vec<TestApp> = (0..3).map(|_| app.container()).collect();
    let id = id.as_str();
    let late = first.iter().enumerate().map(|(n, token)| {
        let container = &buyers[n % 3];
        async move { container.buy_admitted(id, &format!("u{n}"), Some(token)).await }
    });
    for (code, body) in futures::future::join_all(late).await {
        assert_eq!((code, body["code"].as_str()), (403, Some("admission_invalid")), "{body}");
    }
    assert_eq!(app.stored(&sale).await, (vec![10], vec![]), "nothing was taken");
    // Everyone of the second cohort buys within their window.
    clock.advance(8_000);
    let on_time = second.iter().enumerate().map(|(n, token)| {
        let container = &buyers[n % 3];
        async move { container.buy_admitted(id, &format!("u{}", n + 10), Some(token)).await }
    });
    for (code, body) in futures::future::join_all(on_time).await {
        assert_eq!(code, 201, "{body}");
    }
    let (stock, purchases) = app.stored(&sale).await;
    assert_eq!((stock, purchases.len()), (vec![0], 10));
}

/// A token just issued by one container is honoured by a purchase container whose copy of the
/// room is a second old: the room as stored decides before a refusal.
#[tokio::test]
async fn a_fresh_token_is_not_refused_by_a_container_with_an_older_copy_of_the_room() {
    let (sale, app) = open_room(500, 2).await;
    let clock = app.clock();
    let id = sale.id.to_string();
    for n in 0..300 {
        app.post_queue(&id, &format!("u{n}")).await;
    }
    clock.advance(1_000);
    let first = app.view(&id).await["queue"]["admittedThrough"].as_i64().unwrap();
    assert!(first > 0);
    // The purchase container reads the room just after that step and keeps its copy a second.
    clock.advance(1);
    let purchase = app.container();
    assert_eq!(purchase.view(&id).await["queue"]["admittedThrough"], first);
    // The queue container advances the room a moment later and issues a token for a new place.
    clock.advance(999);
    let now = app.view(&id).await["queue"]["admittedThrough"].as_i64().unwrap();
    assert!(now > first, "{now} > {first}");
    let mut newest = None;
    for n in 0..300 {
        let (_, line) = app.get_queue(&id, &format!("u{n}")).await;
        if line["position"].as_i64() == Some(now) {
            newest = Some((format!("u{n}"), line["admissionToken"].as_str().unwrap().to_owned()));
            break;
        }
    }
    let (user, token) = newest.expect("someone holds the last admitted place");
    let (code, body) = purchase.buy_admitted(&id, &user, Some(&token)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(app.stored(&sale).await.1.len(), 1);
}

/// A join after opening whose put committed but whose answer was lost is retried by the SDK; the
/// retry finds the request's own entry. That place is the joiner's: it does not go back to the
/// container's block, so the next joiner gets another one, and the admitted range never admits
/// two people on one place.
#[tokio::test]
async fn places_stay_unique_when_a_joins_answer_is_lost() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (sale, app) = open_room(50, 1).await;
    let id = sale.id.to_string();
    app.view(&id).await; // the (empty) pre-queue is drawn: every join from now is after opening
    let lose = Arc::new(AtomicBool::new(true));
    let once = lose.clone();
    let plan = Box::new(move |op: &str, body: &str| {
        // The entry's put after opening carries its place after opening (`ticket`).
        if op == "PutItem" && body.contains("\"ticket\"") && once.swap(false, Ordering::SeqCst) {
            flash_sale_testkit::proxy::Fault::CommitThenDrop
        } else {
            flash_sale_testkit::proxy::Fault::Pass
        }
    });
    let proxy = Proxy::start(upstream(), plan).await;
    let joiner = app.container().via(proxy.client());
    let (status, alice) = joiner.post_queue(&id, "alice").await;
    assert_eq!(status, 200, "{alice}");
    assert!(!lose.load(Ordering::SeqCst), "the first answer was lost");
    let (status, bob) = joiner.post_queue(&id, "bob").await;
    assert_eq!(status, 200, "{bob}");
    assert_ne!(alice["position"], bob["position"], "{alice} {bob}");
    let entries = app.store().room_entries(&sale.id).await.unwrap();
    let places: BTreeSet<Option<i64>> = entries.iter().map(|e| e.place_after_opening).collect();
    assert_eq!((entries.len(), places.len()), (2, 2), "{entries:?}");
    // Both are admitted, each on a place of their own, and both buy.
    app.clock().advance(1_000);
    for user in ["alice", "bob"] {
        let (_, line) = app.get_queue(&id, user).await;
        assert_eq!(line["state"], "admitted", "{user}: {line}");
        let (code, body) = app.buy_admitted(&id, user, line["admissionToken"].as_str()).await;
        assert_eq!(code, 201, "{user}: {body}");
    }
    assert_eq!(app.stored(&sale).await.1.len(), 2);
}

/// However many containers find the draw due at once, one of them draws: the place writes number
/// the entrants, not containers × entrants, and everyone's place is the same whichever container
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_draw_however_many_containers_find_it_due() {
    const ENTRANTS: usize = 2_000;
    let start = now_ms() + HOUR;
    let (sale, seed, app) = room_at(100, 2, start, start - 60_000).await;
    let id = sale.id.to_string();
    let users: Vec<String> = (0..ENTRANTS).map(|n| format!("e{n}")).collect();
    for chunk in users.chunks(100) {
        let joins = chunk.iter().map(|u| app.post_queue(&id, u));
        for (status, body) in futures::future::join_all(joins).await {
            assert_eq!(status, 200, "{body}");
        }
    }
    app.clock().set(start + flash_sale::room::DRAW_GRACE_MS);
    let recording = flash_sale_testkit::proxy::Recording::start(pass()).await;
    let containers: Vec<TestApp> = (0..8).map(|_| app.container().via(recording.proxy.patient_client())).collect();
    // Everyone asks at once, then again until every container answers with a place (bounded).
    let mut answers: Vec<Value> = Vec::new();
    let sale_id = id.as_str();
    for round in 0..40 {
        let asks = containers.iter().enumerate().map(|(n, c)| {
            let user = users[n * 7].clone();
            async move { c.get_queue(sale_id, &user).await.1 }
        });
        answers = futures::future::join_all(asks).await;
        if answers.iter().all(|a| a["position"].is_i64()) {
            break;
        }
        assert!(round < 39, "the draw did not complete: {answers:?}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let place_writes =
        recording.take().iter().filter(|(op, body)| op == "UpdateItem" && body.contains("SET place = :p")).count();
    assert_eq!(place_writes, ENTRANTS, "one writer drew");
    let expected: BTreeMap<String, i64> = flash_sale::room::draw(&seed, &users).into_iter().collect();
    for (n, answer) in answers.iter().enumerate() {
        assert_eq!(answer["position"].as_i64(), Some(expected[&users[n * 7]]), "{answer}");
    }
    // Every container gives every sampled person the same place.
    for user in users.iter().step_by(97) {
        for c in &containers {
            assert_eq!(c.get_queue(&id, user).await.1["position"].as_i64(), Some(expected[user]), "{user}");
        }
    }
}

/// A draw that stops part-way (its writer's time ran out) is continued by the next writer from
/// where it stopped, not restarted. Each run writes at least one checkpoint (2,000 places).
#[tokio::test]
async fn a_draw_that_stops_part_way_is_continued_not_restarted() {
    const ENTRANTS: usize = 4_500;
    let start = now_ms() + HOUR;
    let (sale, seed, app) = room_at(100, 2, start, start - 60_000).await;
    let app = app.tune(|t| t.request_draw_limit = 10); // requests leave the draw to the scheduled function
    let id = sale.id.to_string();
    let users: Vec<String> = (0..ENTRANTS).map(|n| format!("r{n}")).collect();
    for chunk in users.chunks(100) {
        let joins = chunk.iter().map(|u| app.post_queue(&id, u));
        futures::future::join_all(joins).await;
    }
    app.clock().set(start + flash_sale::room::DRAW_GRACE_MS);
    let recording = flash_sale_testkit::proxy::Recording::start(pass()).await;
    let place_writes =
        || recording.take().iter().filter(|(op, b)| op == "UpdateItem" && b.contains("SET place = :p")).count();
    // Writers with no time left: each writes one checkpoint, stores it, and stops.
    for _ in 0..2 {
        let hurried =
            app.container().via(recording.proxy.patient_client()).tune(|t| t.draw_budget = std::time::Duration::ZERO);
        assert!(hurried.draw_due_rooms().await.unwrap().is_empty(), "not complete yet");
        assert_eq!(place_writes(), 2_000);
        assert_eq!(app.view(&id).await["queue"]["state"], "drawing");
    }
    // The next run completes it, writing only the rest.
    let sweeper = app.container().via(recording.proxy.patient_client());
    assert_eq!(sweeper.draw_due_rooms().await.unwrap(), vec![id.clone()]);
    assert_eq!(place_writes(), ENTRANTS - 4_000);
    let expected: BTreeMap<String, i64> = flash_sale::room::draw(&seed, &users).into_iter().collect();
    let entries = app.store().room_entries(&sale.id).await.unwrap();
    assert_eq!(entries.len(), ENTRANTS);
    for e in &entries {
        assert_eq!(e.place, Some(expected[&e.user_id]), "{e:?}");
    }
}

/// Deployed, the admission key is read from its secret at cold start (its current version only:
/// one read), never from the function's configuration; a rotation reaches every container without
/// a redeploy: a token signed with the new key by a container that read it is honoured by one that
/// had not, and tokens signed before the rotation stay valid (the previous version), also in a
/// container started after it. Secrets Manager is a fake here (`FakeSecretsManager`): no local
/// emulator of the service exists.
#[tokio::test]
async fn the_admission_key_comes_from_its_secret_and_a_rotation_needs_no_redeploy() {
    use flash_sale_testkit::secrets::FakeSecretsManager;
    let old_key = "11".repeat(32);
    let new_key = "22".repeat(32);
    let secret = FakeSecretsManager::start(&old_key).await;
    let (sale, app) = open_room(10, 1).await;
    let id = sale.id.to_string();
    let deployed = app.container().admission_secret(&secret);
    let queue = deployed.cold_start().await;
    let purchase = deployed.cold_start().await;
    assert_eq!(secret.reads(), 2, "each cold start reads AWSCURRENT alone");
    for user in ["before", "after", "late"] {
        queue.post_queue(&id, user).await;
    }
    let (_, before) = queue.get_queue(&id, "before").await;
    let old_token = before["admissionToken"].as_str().expect("admitted").to_owned();
    assert_eq!(purchase.buy_admitted(&id, "before", Some(&old_token)).await.0, 201);
    queue.clock().advance(1_000);
    let (_, late) = queue.get_queue(&id, "late").await;
    let late_token = late["admissionToken"].as_str().expect("admitted").to_owned();

    // The key is rotated in the secret; the queue container reads it again (a new cold start),
    // the purchase container has not yet.
    secret.rotate(&new_key);
    let queue = deployed.cold_start().await;
    queue.clock().advance(1_000);
    let (_, after) = queue.get_queue(&id, "after").await;
    let new_token = after["admissionToken"].as_str().expect("admitted").to_owned();
    let signed_by = |hex: &str, token: &str| {
        let keys = flash_sale::room::AdmissionKeys::from_hex(hex, None).unwrap();
        let sale_id = flash_sale::ids::SaleId::parse(&id).unwrap();
        let user = flash_sale::ids::UserId::parse("after").unwrap();
        let expires = flash_sale::time_fmt::parse_rfc3339_ms(after["admissionExpiresAt"].as_str().unwrap()).unwrap();
        keys.sign(&sale_id, &user, after["position"].as_i64().unwrap(), expires) == token
    };
    assert!(signed_by(&new_key, &new_token) && !signed_by(&old_key, &new_token), "signed with the new key");
    let reads = secret.reads();
    let (status, body) = purchase.buy_admitted(&id, "after", Some(&new_token)).await;
    assert_eq!(status, 201, "{body}");
    assert!(secret.reads() > reads, "the purchase container read the secret again to check it");
    // A forged token does not make a container read the secret more than once per interval.
    let reads = secret.reads();
    for _ in 0..5 {
        let (status, _) = purchase.buy_admitted(&id, "after", Some("v1.x.y.1.2.forged")).await;
        assert_eq!(status, 403);
    }
    assert_eq!(secret.reads(), reads, "read again at most every REFETCH_AT_MOST_EVERY");
    // A container started after the rotation holds the new key alone; a token signed before it
    // makes it read the previous version, and it is honoured.
    let fresh = deployed.cold_start().await;
    let reads = secret.reads();
    let (status, body) = fresh.buy_admitted(&id, "late", Some(&late_token)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(secret.reads(), reads + 2, "AWSCURRENT and AWSPREVIOUS read for the old token");
    assert_eq!(app.stored(&sale).await.1.len(), 3);
}

/// Conflicts on the join paths are retried (bounded, with jitter), never answered 503 while the
/// join can still succeed: pre-queue joins whose transaction meets `TransactionConflict` twice,
/// and one whose answer is lost after it committed, are all in the pre-queue and drawn there (not
/// behind it); a join after opening whose put meets an item conflict twice gets the next place.
#[tokio::test]
async fn conflicts_on_a_join_are_retried_and_the_joiner_keeps_their_place_in_the_prequeue() {
    use flash_sale_testkit::proxy::Fault;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let start = now_ms() + HOUR;
    let (sale, seed, app) = room_at(100, 2, start, start - 60_000).await;
    let id = sale.id.to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    // Of every three requests that write a join (the pre-queue transaction, the entry's put after
    // opening), the first two meet a conflict; the very first transaction commits and its answer
    // is lost instead.
    let plan = Box::new(move |op: &str, body: &str| {
        let join_write = op == "TransactWriteItems" || (op == "PutItem" && body.contains("\"ticket\""));
        if !join_write {
            return Fault::Pass;
        }
        match count.fetch_add(1, Ordering::SeqCst) {
            0 => Fault::CommitThenDrop,
            n if n % 3 == 2 => Fault::Pass,
            _ if op == "PutItem" => Fault::ItemConflict,
            _ => Fault::Conflict,
        }
    });
    let proxy = Proxy::start(upstream(), plan).await;
    let joiner = app.container().via(proxy.client());
    let users: Vec<String> = (0..10).map(|n| format!("early-{n}")).collect();
    for u in &users {
        let (status, body) = joiner.post_queue(&id, u).await;
        assert_eq!((status, body["state"].as_str()), (200, Some("waiting")), "{u}: {body}");
    }
    let conflicts = |p: &Proxy| {
        p.counts()
            .iter()
            .filter(|((_, f), _)| matches!(*f, "conflict" | "item_conflict"))
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    assert!(conflicts(&proxy) >= 18, "{:?}", proxy.counts());
    assert_eq!(app.store().room_entries(&sale.id).await.unwrap().len(), 10, "one entry each");
    app.clock().set(start + flash_sale::room::DRAW_GRACE_MS);
    let expected: BTreeMap<String, i64> = flash_sale::room::draw(&seed, &users).into_iter().collect();
    for u in &users {
        let (_, body) = app.get_queue(&id, u).await;
        assert_eq!(body["position"].as_i64(), Some(expected[u]), "{u}: {body}");
    }
    let before = conflicts(&proxy);
    let (status, late) = joiner.post_queue(&id, "late").await;
    assert_eq!((status, late["position"].as_i64()), (200, Some(11)), "{late}");
    assert!(conflicts(&proxy) > before, "{:?}", proxy.counts());
}

/// The pre-queue as sealed: a join that commits once the draw has sealed its lane (a container
/// whose clock lags), and one whose joiner never confirmed its entry (its requests after the
/// commit all failed), are not in the draw, and each gets a place after every drawn place.
#[tokio::test]
async fn joins_the_seal_left_out_go_after_the_drawn_places() {
    use flash_sale_testkit::proxy::Fault;
    let start = now_ms() + HOUR;
    let (sale, seed, app) = room_at(100, 2, start, start - 60_000).await;
    let id = sale.id.to_string();
    let users: Vec<String> = (0..20).map(|n| format!("early-{n}")).collect();
    for u in &users {
        assert_eq!(app.post_queue(&id, u).await.0, 200);
    }
    // A joiner whose settling step never reaches the table: the entry is written, the marker
    // stays pending, the answer is a 503.
    let cut = Proxy::start(
        upstream(),
        Box::new(
            |op: &str, body: &str| {
                if op == "UpdateItem" && body.contains("REMOVE pending") { Fault::Reset } else { Fault::Pass }
            },
        ),
    )
    .await;
    let (status, _) = app.container().via(cut.client()).post_queue(&id, "unconfirmed").await;
    assert_eq!(status, 503);
    app.clock().set(start + flash_sale::room::DRAW_GRACE_MS);
    let view = app.view(&id).await;
    assert_eq!(view["queue"]["state"], "admitting", "{view}");
    let expected: BTreeMap<String, i64> = flash_sale::room::draw(&seed, &users).into_iter().collect();
    for u in &users {
        assert_eq!(app.get_queue(&id, u).await.1["position"].as_i64(), Some(expected[u]), "{u}");
    }
    // A container whose clock still says the pre-queue is open joins after the seal.
    let lagging = TestApp::on(app.store()).at(start - 1_000).admission();
    let (status, body) = lagging.post_queue(&id, "lagging").await;
    assert_eq!(status, 200, "{body}");
    let (_, unconfirmed) = app.get_queue(&id, "unconfirmed").await;
    let (_, lagging) = app.get_queue(&id, "lagging").await;
    let mut after: Vec<i64> =
        [&unconfirmed, &lagging].iter().map(|b| b["position"].as_i64().expect("a place")).collect();
    after.sort();
    assert_eq!(after, vec![21, 22], "{unconfirmed} {lagging}");
    let entries = app.store().room_entries(&sale.id).await.unwrap();
    assert_eq!(entries.len(), 22);
    assert_eq!(entries.iter().filter(|e| e.place.is_some()).count(), 20, "the draw placed the 20 it sealed");
}
