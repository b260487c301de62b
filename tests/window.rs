//! The sale window: open from `startsAt` (inclusive) to `endsAt` (exclusive), enforced by the
//! stored condition, not just by the handler.

use flash_sale::store::{Attempt, PurchaseRecord};
use flash_sale_testkit::{
    TestApp, TestBody, fresh_store, now_ms, purchase_request, read, request, sale, stored_state, unique, user_body,
};

const HOUR: i64 = 3_600_000;

#[tokio::test]
async fn a_purchase_one_millisecond_before_the_start_is_refused_and_at_the_start_accepted() {
    let store = fresh_store().await;
    let start = now_ms() + HOUR;
    let s = sale(&unique("w"), 5, 1, start, start + HOUR);
    store.create_sale(&s, now_ms()).await.unwrap();
    let app = TestApp::on(&store).at(start - 1);
    let clock = app.clock();

    let (status, body) = app.buy(&s, "early").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("sale_not_started")));
    clock.set(start);
    let (status, _) = app.buy(&s, "early").await;
    assert_eq!(status, 201);
    let (stock, purchases) = stored_state(&store, &s).await;
    assert_eq!((stock, purchases.len()), (vec![4], 1));
}

#[tokio::test]
async fn a_purchase_at_the_end_is_refused_and_one_millisecond_before_accepted() {
    let store = fresh_store().await;
    let start = now_ms() - HOUR;
    let end = start + 2 * HOUR;
    let s = sale(&unique("w"), 5, 1, start, end);
    store.create_sale(&s, now_ms()).await.unwrap();
    let app = TestApp::on(&store).at(end - 1);
    let clock = app.clock();

    let (status, _) = app.buy(&s, "last").await;
    assert_eq!(status, 201);
    clock.set(end);
    let (status, body) = app.buy(&s, "late").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("sale_ended")));
    let (stock, purchases) = stored_state(&store, &s).await;
    assert_eq!((stock, purchases.len()), (vec![4], 1));
}

#[tokio::test]
async fn the_stored_condition_refuses_outside_the_window_whatever_the_caller_believes() {
    let store = fresh_store().await;
    let start = now_ms();
    let end = start + HOUR;
    let s = sale(&unique("w"), 3, 1, start, end);
    store.create_sale(&s, start).await.unwrap();
    let record =
        PurchaseRecord::new(&s.id, &flash_sale::ids::UserId::parse("u").unwrap(), "01TESTORDER".into(), start, 0, None);

    for (now, expected) in [(start - 1, Attempt::NotStarted), (end, Attempt::Ended), (end + HOUR, Attempt::Ended)] {
        let token = unique("tok");
        assert_eq!(store.transact_purchase(&s, 0, &record, now, &token).await.unwrap(), expected, "at {now}");
    }
    let (stock, purchases) = stored_state(&store, &s).await;
    assert_eq!((stock, purchases.len()), (vec![3], 0), "nothing changed");
}

#[tokio::test]
async fn the_state_in_status_follows_the_clock() {
    let store = fresh_store().await;
    let start = now_ms() + HOUR;
    let end = start + HOUR;
    let s = sale(&unique("w"), 1, 1, start, end);
    store.create_sale(&s, now_ms()).await.unwrap();
    let app = TestApp::on(&store).at(start - 1);
    let clock = app.clock();
    let id = s.id.to_string();
    let state = || async {
        let req = request("GET", &format!("/sales/{id}"), &[("saleId", id.as_str())], TestBody::None, None);
        let (status, body) = read(&flash_sale::http::status_function(&app, req).await);
        assert_eq!(status, 200);
        (
            body["state"].as_str().unwrap().to_owned(),
            body["remainingStock"].as_i64().unwrap(),
            body["serverTime"].as_str().unwrap().to_owned(),
        )
    };

    let (st, remaining, server_time) = state().await;
    assert_eq!((st.as_str(), remaining), ("upcoming", 1));
    assert_eq!(server_time, flash_sale::time_fmt::rfc3339_ms(start - 1), "serverTime is the clock's");
    clock.set(start);
    assert_eq!(state().await.0, "active");
    let (status, _) =
        read(&flash_sale::http::purchase_function(&app, purchase_request(&id, &user_body("buyer"))).await);
    assert_eq!(status, 201);
    let (st, remaining, _) = state().await;
    assert_eq!((st.as_str(), remaining), ("sold_out", 0));
    clock.set(end);
    assert_eq!(state().await.0, "ended");
}
