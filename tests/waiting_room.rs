//! The waiting room against DynamoDB Local: idempotent joins, unique places, first in first out
//! after opening, a pre-queue draw anyone can recompute, admission tokens on the purchase path,
//! admission held to the stock, and a room that closes when the stock is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flash_sale::App;
use flash_sale::clock::ManualClock;
use flash_sale::config::AuthMode;
use flash_sale::sale::Sale;
use flash_sale::store::Store;
use integration_tests::{
    TestBody, admission_keys, fresh_store, now_ms, purchase_request, read, request, room_app, room_sale, stored_state,
    user_body,
};
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000;

pub(crate) async fn join(app: &App, sale: &str, user: &str) -> (u16, Value) {
    let req =
        request("POST", &format!("/sales/{sale}/queue"), &[("saleId", sale)], TestBody::Text(&user_body(user)), None);
    read(&flash_sale::http::queue_function(app, req).await)
}

async fn poll(app: &App, sale: &str, user: &str) -> (u16, Value) {
    let path = format!("/sales/{sale}/queue/{user}");
    read(
        &flash_sale::http::queue_function(
            app,
            request("GET", &path, &[("saleId", sale), ("userId", user)], TestBody::None, None),
        )
        .await,
    )
}

async fn status(app: &App, sale: &str) -> Value {
    let req = request("GET", &format!("/sales/{sale}"), &[("saleId", sale)], TestBody::None, None);
    let (code, body) = read(&flash_sale::http::status_function(app, req).await);
    assert_eq!(code, 200, "{body}");
    body
}

async fn buy(app: &App, sale: &str, user: &str, token: Option<&str>) -> (u16, Value) {
    let mut body = json!({ "userId": user });
    if let Some(t) = token {
        body["admissionToken"] = json!(t);
    }
    read(&flash_sale::http::purchase_function(app, purchase_request(sale, &body.to_string())).await)
}

/// A room sale that opened an hour ago (the draw is due at once), with a clock at `now`.
async fn open_room(store: &Store, stock: i64, shards: u32) -> (Sale, ManualClock, App) {
    let start = now_ms() - HOUR;
    let (sale, _) = room_sale(store, stock, shards, start, start + 2 * HOUR).await;
    let clock = ManualClock::at(start + HOUR);
    let app = room_app(store, Arc::new(clock.clone()), AuthMode::Body);
    (sale, clock, app)
}

#[tokio::test]
async fn joins_are_idempotent_places_unique_and_first_in_first_out_after_opening() {
    let store = fresh_store().await;
    let (sale, clock, app) = open_room(&store, 10, 2).await;
    let id = sale.id.to_string();
    let mut places = Vec::new();
    for n in 0..30 {
        let (code, body) = join(&app, &id, &format!("seq-{n}")).await;
        assert_eq!(code, 200, "{body}");
        places.push(body["position"].as_i64().expect("a place"));
    }
    assert!(places.windows(2).all(|w| w[0] < w[1]), "in arrival order: {places:?}");
    let (_, again) = join(&app, &id, "seq-3").await;
    assert_eq!(again["position"].as_i64(), Some(places[3]), "joining again keeps the place");

    // Concurrent joins from many tasks, each joining twice.
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (app, id) = (app.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for n in 0..8 {
                let user = format!("c-{t}-{n}");
                let (_, first) = join(&app, &id, &user).await;
                let (_, second) = join(&app, &id, &user).await;
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
    let stored = store.room_entries(&sale.id).await.unwrap();
    assert_eq!(stored.len(), 30 + 256, "one entry per person");
    // Places issued from the sale's counter (the admitted and the waiting, with the tickets this
    // container holds in its blocks): the tickets handed out, at most one per join, and at most
    // two blocks (100 each) besides. Requests that each took a block of their own ran far ahead.
    clock.advance(2_000);
    let view = status(&app, &id).await;
    let issued = view["queue"]["length"].as_i64().unwrap() + view["queue"]["admittedThrough"].as_i64().unwrap();
    assert!(issued <= 30 + 2 * 256 + 200, "{issued} places issued for {} joins", 30 + 2 * 256);
}

#[tokio::test]
async fn the_prequeue_order_is_the_draw_recomputed_from_the_revealed_seed() {
    let store = fresh_store().await;
    let start = now_ms() + HOUR;
    let (sale, seed) = room_sale(&store, 100, 2, start, start + HOUR).await;
    let id = sale.id.to_string();
    let clock = ManualClock::at(start - 10 * 60_000);
    let app = room_app(&store, Arc::new(clock.clone()), AuthMode::Body);
    let view = status(&app, &id).await;
    let commitment = view["queue"]["drawCommitment"].as_str().unwrap().to_owned();
    assert_eq!(view["queue"]["state"], "prequeue");
    assert!(view["queue"].get("drawSeed").is_none(), "the seed stays secret before opening: {view}");
    let users: Vec<String> = (0..60).map(|n| format!("early-{n}")).collect();
    for u in &users {
        let (code, body) = join(&app, &id, u).await;
        assert_eq!((code, body["state"].as_str(), &body["position"]), (200, Some("waiting"), &Value::Null), "{body}");
    }
    clock.set(start + flash_sale::room::DRAW_GRACE_MS);
    let view = status(&app, &id).await;
    let revealed = hex_decode(view["queue"]["drawSeed"].as_str().expect("revealed at opening"));
    assert_eq!(revealed, seed);
    assert_eq!(flash_sale::room::commitment(&revealed), commitment, "the seed is the one committed to");
    let expected: BTreeMap<String, i64> = flash_sale::room::draw(&revealed, &users).into_iter().collect();
    for u in &users {
        let (_, body) = poll(&app, &id, u).await;
        assert_eq!(body["position"].as_i64(), Some(expected[u]), "{u}: {body}");
    }
    let order: Vec<i64> = users.iter().map(|u| expected[u]).collect();
    assert_ne!(order, (1..=60).collect::<Vec<_>>(), "arrival order did not decide");
    // After opening, joiners queue behind the whole pre-queue, first in first out.
    let (_, late) = join(&app, &id, "late-1").await;
    let (_, later) = join(&app, &id, "late-2").await;
    assert_eq!((late["position"].as_i64(), later["position"].as_i64()), (Some(61), Some(62)));
    // Joining again, from the pre-queue or after opening, keeps one's place and leaves no hole.
    for again in [users[0].as_str(), "late-1", "late-2", "late-1"] {
        let (status, body) = join(&app, &id, again).await;
        assert_eq!(status, 200);
        let (_, polled) = poll(&app, &id, again).await;
        assert_eq!(body["position"], polled["position"], "{again}");
    }
    let (_, next) = join(&app, &id, "late-3").await;
    assert_eq!(next["position"].as_i64(), Some(63), "the next joiner follows directly: {next}");
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

#[tokio::test]
async fn purchases_need_a_valid_admitted_token_and_refusals_change_nothing() {
    let store = fresh_store().await;
    let (sale, clock, app) = open_room(&store, 5, 1).await;
    let id = sale.id.to_string();
    let (_, first) = join(&app, &id, "alice").await;
    assert_eq!(first["state"], "admitted", "an empty line admits at once: {first}");
    clock.advance(2_000);
    let (_, admitted) = poll(&app, &id, "alice").await;
    assert_eq!(admitted["state"], "admitted", "{admitted}");
    let token = admitted["admissionToken"].as_str().expect("a token").to_owned();

    let keys = admission_keys();
    let alice = flash_sale::ids::UserId::parse("alice").unwrap();
    let now = clock_now(&clock);
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
        let (status, body) = buy(&app, &id, user, t).await;
        assert_eq!((status, body["code"].as_str()), (403, Some(code)), "{user} {t:?}: {body}");
    }
    assert_eq!(stored_state(&store, &sale).await, (vec![5], vec![]), "nothing stored changed");
    let (status, body) = buy(&app, &id, "alice", Some(&token)).await;
    assert_eq!(status, 201, "{body}");
}

fn clock_now(clock: &ManualClock) -> i64 {
    use flash_sale::clock::Clock;
    clock.now_ms()
}

#[tokio::test]
async fn admission_is_held_to_the_stock_and_the_room_closes_when_it_is_gone() {
    let store = fresh_store().await;
    let (sale, clock, app) = open_room(&store, 4, 1).await;
    let id = sale.id.to_string();
    for n in 0..40 {
        join(&app, &id, &format!("u{n}")).await;
    }
    // 50 per second would admit everyone in a second; the stock holds it to one admission per item.
    clock.advance(3_000);
    let view = status(&app, &id).await;
    assert_eq!(view["queue"]["admittedThrough"], 4, "{view}");
    // Places not yet admitted: the 36 people waiting, plus places a container reserved in a block
    // and had not handed out yet (never more than about a second of its joins).
    let length = view["queue"]["length"].as_i64().unwrap();
    assert!((36..=36 + 64).contains(&length), "{length}");
    let mut tokens = Vec::new();
    for n in 0..4 {
        let (_, line) = poll(&app, &id, &format!("u{n}")).await;
        assert_eq!(line["state"], "admitted", "u{n}: {line}");
        tokens.push(line["admissionToken"].as_str().unwrap().to_owned());
        // The item is set aside for the claim window (60 s); the token lives 5 minutes.
        let at = |field: &str| flash_sale::time_fmt::parse_rfc3339_ms(line[field].as_str().unwrap()).unwrap();
        assert_eq!(at("admissionExpiresAt") - at("setAsideUntil"), 4 * 60_000, "{line}");
    }
    for (n, token) in tokens.iter().enumerate().take(2) {
        let (code, body) = buy(&app, &id, &format!("u{n}"), Some(token)).await;
        assert_eq!(code, 201, "{body}");
    }
    // u2 and u3 have not bought: within their claim window the 2 items left are theirs.
    clock.advance(30_000);
    let view = status(&app, &id).await;
    assert_eq!(view["queue"]["admittedThrough"], 4, "nobody races an admitted buyer for an item: {view}");
    // Their window is over: their items go to the next two in line.
    clock.advance(40_000);
    let view = status(&app, &id).await;
    assert_eq!(view["queue"]["admittedThrough"], 6, "{view}");
    for n in 4..6 {
        let (_, line) = poll(&app, &id, &format!("u{n}")).await;
        assert_eq!(line["state"], "admitted", "u{n}: {line}");
        let (code, body) = buy(&app, &id, &format!("u{n}"), line["admissionToken"].as_str()).await;
        assert_eq!(code, 201, "{body}");
    }
    clock.advance(2_000);
    let view = status(&app, &id).await;
    assert_eq!((view["state"].as_str(), view["queue"]["state"].as_str()), (Some("sold_out"), Some("sold_out")));
    assert_eq!(view["queue"]["admittedThrough"], 6, "nobody more was admitted for stock that is gone");
    for n in 6..40 {
        let (_, line) = poll(&app, &id, &format!("u{n}")).await;
        assert_eq!(line["state"], "sold_out", "u{n} learns it on the next poll: {line}");
    }
    // A token outlives its claim window, but not the stock.
    let (code, body) = buy(&app, &id, "u2", Some(&tokens[2])).await;
    assert_eq!((code, body["code"].as_str()), (409, Some("sold_out")), "{body}");
    let (stock, purchases) = stored_state(&store, &sale).await;
    assert_eq!((stock, purchases.len()), (vec![0], 4));
}

#[tokio::test]
async fn the_line_refuses_what_it_should_with_problem_codes() {
    let store = fresh_store().await;
    let start = now_ms() + 2 * HOUR;
    let (sale, _) = room_sale(&store, 5, 1, start, start + HOUR).await;
    let id = sale.id.to_string();
    let clock = ManualClock::at(start - HOUR);
    let app = room_app(&store, Arc::new(clock.clone()), AuthMode::Body);
    let (code, body) = join(&app, &id, "eager").await;
    assert_eq!((code, body["code"].as_str()), (403, Some("queue_not_open")), "{body}");
    assert!(body["opensAt"].is_string());
    let (code, body) = poll(&app, &id, "nobody").await;
    assert_eq!((code, body["code"].as_str()), (404, Some("not_in_line")));
    let plain = integration_tests::active_sale(&store, 5, 1).await;
    let (code, body) = join(&app, plain.id.as_str(), "x").await;
    assert_eq!((code, body["code"].as_str()), (404, Some("no_waiting_room")));
    let req = request("GET", &format!("/sales/{id}/queue"), &[("saleId", id.as_str())], TestBody::None, None);
    assert_eq!(flash_sale::http::queue_function(&app, req).await.status_code, 405);
    clock.set(start + 2 * HOUR);
    let (code, body) = join(&app, &id, "too-late").await;
    assert_eq!((code, body["state"].as_str()), (200, Some("closed")), "{body}");
    assert!(store.room_entries(&sale.id).await.unwrap().is_empty(), "nobody was put in line");
}

#[tokio::test]
async fn a_prequeue_too_large_for_a_request_is_drawn_by_the_scheduled_function() {
    let store = fresh_store().await;
    let start = now_ms() + HOUR;
    let (sale, seed) = room_sale(&store, 100, 2, start, start + HOUR).await;
    let id = sale.id.to_string();
    let clock = ManualClock::at(start - 60_000);
    let mut config = flash_sale::config::Config::for_table(store.table(), AuthMode::Body);
    config.tuning = flash_sale::config::Tuning { request_draw_limit: 10, ..integration_tests::tuning() };
    config.admission_keys = Some(admission_keys());
    let app = App::new(store.clone(), Arc::new(clock.clone()), config);
    let users: Vec<String> = (0..25).map(|n| format!("early-{n}")).collect();
    for u in &users {
        assert_eq!(join(&app, &id, u).await.0, 200);
    }
    clock.set(start + flash_sale::room::DRAW_GRACE_MS + 1_000);
    // Requests leave 25 people to the scheduled function: the line says it is drawing.
    for _ in 0..3 {
        assert_eq!(status(&app, &id).await["queue"]["state"], "drawing");
        let (_, body) = poll(&app, &id, &users[0]).await;
        assert_eq!((body["state"].as_str(), &body["position"]), (Some("waiting"), &Value::Null), "{body}");
        clock.advance(1_000);
    }
    assert_eq!(app.draw_due_rooms().await.unwrap(), vec![id.clone()]);
    assert!(app.draw_due_rooms().await.unwrap().is_empty(), "drawn once");
    clock.advance(1_000);
    assert_eq!(status(&app, &id).await["queue"]["state"], "admitting");
    let expected: BTreeMap<String, i64> = flash_sale::room::draw(&seed, &users).into_iter().collect();
    for u in &users {
        assert_eq!(poll(&app, &id, u).await.1["position"].as_i64(), Some(expected[u]), "{u}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_requests_in_one_container_refreshes_the_room_once() {
    let store = fresh_store().await;
    let start = now_ms() - HOUR;
    let (sale, _) = room_sale(&store, 100, 2, start, start + 2 * HOUR).await;
    let id = sale.id.to_string();
    let proxy = integration_tests::proxy::Proxy::start(crate::faults::upstream(), crate::faults::pass()).await;
    let client = integration_tests::container_client(&proxy.endpoint, flash_sale::aws::local_timeouts());
    let clock = ManualClock::at(start + HOUR);
    let mut config = flash_sale::config::Config::for_table(store.table(), AuthMode::Body);
    config.tuning =
        flash_sale::config::Tuning { sale_cache: std::time::Duration::from_secs(600), ..integration_tests::tuning() };
    config.admission_keys = Some(admission_keys());
    let app = Arc::new(App::new(Store::new(client, store.table()), Arc::new(clock.clone()), config));
    assert_eq!(join(&app, &id, "first").await.0, 200, "the room is read and drawn once");
    clock.advance(1_500);
    let reads =
        |p: &integration_tests::proxy::Proxy| p.counts().get(&("GetItem".to_owned(), "pass")).copied().unwrap_or(0);
    let before = reads(&proxy);
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let (app, id) = (app.clone(), id.clone());
            tokio::spawn(async move { join(&app, &id, &format!("burst-{n}")).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().0, 200);
    }
    // One refresh reads the room and the place counter (two GetItems), not one per request.
    let refreshes = reads(&proxy) - before;
    assert!(refreshes <= 4, "{refreshes} GetItems for 32 joins on a stale room");
}
