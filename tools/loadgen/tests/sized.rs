//! The load generator against a sale with variants and several items per customer, as a process,
//! through a loopback front door to the real handlers on DynamoDB Local: a real run passes its
//! checks, and a stored state that breaks either guarantee is reported (and fails the run).

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use flash_sale::ids::SaleId;
use flash_sale::keys::{PURCHASE_SK, order_pk, purchase_pk, shard_pk};
use flash_sale::sale::{Sale, Variant};
use flash_sale::store::Store;
use flash_sale_testkit::{Route, TestApp, endpoint, fresh_store, req, unique};
use loadgen::table::read_sized;
use loadgen::verify::check_sized_store;
use serde_json::Value;

/// A loopback HTTP/1.1 front door (one request per connection) that hands `POST
/// /sales/{id}/purchases` and `GET /sales/{id}` to the purchase and status handlers on `table`, as
/// API Gateway does; a thread of its own with a current-thread runtime, for the life of the test.
fn front_door(table: &str) -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the front door");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let table = table.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let store = Store::new(flash_sale::aws::local_client(&endpoint()).expect("client"), table);
            let app: &'static TestApp = Box::leak(Box::new(TestApp::on(&store)));
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            while let Ok((conn, _)) = listener.accept().await {
                tokio::task::spawn_local(async move {
                    let Ok(conn) = conn.into_std() else { return };
                    let _ = conn.set_nonblocking(false);
                    // Read the request on a blocking thread, answer here, write it back there.
                    let Ok(Some((conn, method, path, body))) =
                        tokio::task::spawn_blocking(move || read_request(conn)).await
                    else {
                        return;
                    };
                    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                    let resp = match (method.as_str(), parts.as_slice()) {
                        ("POST", ["sales", sale, "purchases"]) => {
                            Some(Route::Purchase.call(app, req::purchase(sale, &body)).await)
                        }
                        ("GET", ["sales", sale]) => Some(Route::Status.call(app, req::status(sale)).await),
                        _ => None,
                    };
                    let answer = match resp {
                        Some(r) => {
                            let mut head = format!("HTTP/1.1 {} X\r\n", r.status_code);
                            for (k, v) in &r.headers {
                                head.push_str(&format!("{k}: {v}\r\n"));
                            }
                            format!("{head}content-length: {}\r\nconnection: close\r\n\r\n{}", r.body.len(), r.body)
                        }
                        None => "HTTP/1.1 404 X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                    };
                    let _ = tokio::task::spawn_blocking(move || {
                        let mut conn = conn;
                        let _ = conn.write_all(answer.as_bytes());
                        let _ = conn.shutdown(std::net::Shutdown::Both);
                    })
                    .await;
                });
            }
        });
    });
    url
}

/// One request: method, path, body (by `content-length`, at most 64 KiB), within 10 s.
fn read_request(mut conn: TcpStream) -> Option<(TcpStream, String, String, String)> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if data.len() > 64 * 1024 {
            return None;
        }
        let n = conn.read(&mut buf).ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(64 * 1024);
    while data.len() < head_end + length {
        let n = conn.read(&mut buf).ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    }
    let mut line = head.lines().next()?.split(' ');
    let (method, path) = (line.next()?.to_owned(), line.next()?.to_owned());
    let body = String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned();
    Some((conn, method, path, body))
}

/// Runs the load generator against `base` and the table, with `args` after the common ones.
fn loadgen(base: &str, table: &str, json: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--base-url", base, "--dynamodb-endpoint", &endpoint(), "--table", table])
        .args(["--timeout-secs", "30", "--duration-secs", "120", "--settle-secs", "0.2"])
        .arg("--json-out")
        .arg(json)
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run loadgen")
}

fn kinds(report: &Value) -> Vec<String> {
    report["violations"].as_array().expect("violations").iter().map(|v| v["kind"].as_str().unwrap().into()).collect()
}

#[test]
fn a_run_of_random_sizes_and_quantities_passes_its_checks_and_the_table_agrees() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = rt.block_on(fresh_store());
    let base = front_door(store.table());
    let json = std::env::temp_dir().join(format!("{}.json", unique("loadgen-sized")));
    let out = loadgen(
        &base,
        store.table(),
        &json,
        &[
            "--create-sale",
            "--sale-id",
            "sizes-run",
            "--variant",
            "s:S:20",
            "--variant",
            "m:M:30:2",
            "--variant",
            "l:L:10",
            "--max-per-customer",
            "3",
            "--max-quantity",
            "3",
            "--users",
            "40",
            "--attempts",
            "300",
            "--duplicate-share",
            "0.6",
            "--concurrency",
            "8",
            "--seed",
            "11",
            "--require-clean-answers",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).ok();
    assert_eq!((report["ok"].as_bool(), kinds(&report).len()), (Some(true), 0), "{stdout}");
    let sized = &report["sized"];
    assert_eq!(sized["sold"]["variants"].as_array().map(Vec::len), Some(3), "{sized}");

    // The table on its own: every variant adds up, nobody above 3, and the items held are the
    // items the 201s promised (no reply was lost: clean answers were required).
    let sale = rt.block_on(store.get_sale(&SaleId::parse("sizes-run").unwrap())).unwrap().unwrap();
    let state = rt.block_on(read_sized(&store, &sale)).unwrap();
    let live = state.live_items_by_variant();
    for v in &state.variants {
        let left: i64 = (v.first..v.first + v.shards).map(|n| state.shards[n as usize]).sum();
        assert_eq!(left + live[v.variant_id.as_str()], v.total, "variant {}", v.variant_id);
    }
    let mut held: BTreeMap<&str, i64> = BTreeMap::new();
    for o in state.orders.iter().filter(|o| o.live) {
        *held.entry(o.user_id.as_str()).or_default() += i64::from(o.quantity);
    }
    assert!(held.values().all(|h| *h <= 3), "{held:?}");
    let promised: u64 = report["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["reply"]["status"] == 201)
        .map(|a| a["quantity"].as_u64().unwrap())
        .sum();
    assert_eq!(i64::try_from(promised).unwrap(), live.values().sum::<i64>());
    assert!(promised > 0 && held.len() > 1, "the run sold: {stdout}");
    let asked: HashSet<&str> =
        report["attempts"].as_array().unwrap().iter().filter_map(|a| a["variantId"].as_str()).collect();
    assert_eq!(asked, HashSet::from(["s", "m", "l"]), "every variant was asked for");
    assert!(
        report["attempts"].as_array().unwrap().iter().any(|a| a["quantity"] == 3),
        "quantities up to 3 were asked for"
    );
}

/// A sized sale with a few orders, then its stored state broken in each way the checks know.
#[test]
fn a_stored_state_that_breaks_the_guarantees_is_reported_and_fails_the_run() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = rt.block_on(fresh_store());
    let now = flash_sale::clock::now_ms();
    let variant =
        |id: &str, stock, shards| Variant { variant_id: id.into(), label: id.into(), sku: None, stock, shards };
    let mut sale: Sale = flash_sale_testkit::sale("planted", 1, 1, now - 60_000, now + 3_600_000);
    sale.set_variants(vec![variant("s", 4, 1), variant("m", 6, 2)]);
    sale.max_per_customer = 3;
    rt.block_on(store.create_sale(&sale, now)).unwrap();
    let app = TestApp::on(&store);
    let buy = |user: &str, variant: &str, quantity: u32| -> String {
        let body = serde_json::json!({"userId": user, "variantId": variant, "quantity": quantity}).to_string();
        let (status, order) = rt.block_on(app.post_purchase("planted", &body));
        assert_eq!(status, 201, "{order}");
        order["orderId"].as_str().unwrap().to_owned()
    };
    let _ann = buy("ann", "m", 3);
    let ben = buy("ben", "s", 1);
    buy("ben", "m", 1);

    // As bought, the state passes.
    let bought = rt.block_on(read_sized(&store, &sale)).unwrap();
    let all: HashSet<String> = bought.orders.iter().map(|o| o.order_id.clone()).collect();
    let clean = check_sized_store(&[], &[], &all, &bought);
    assert_eq!(clean.violations, vec![], "{clean:?}");

    // Planted: an item of m back on its shard while its order is live; a live order of s for ann
    // (4 items held) that no shard gave and her customer item does not count; ben's count off.
    let client = store.client();
    let table = store.table();
    let send = |update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder| {
        rt.block_on(update.send()).expect("plant");
    };
    let key = |pk: String, sk: &str| {
        std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk)),
            ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
        ])
    };
    send(
        client
            .update_item()
            .table_name(table)
            .set_key(Some(key(shard_pk("planted", 1), "STOCK")))
            .update_expression("SET remaining = remaining + :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into())),
    );
    let ben_order = rt
        .block_on(
            client
                .get_item()
                .table_name(table)
                .set_key(Some(key(order_pk("planted", "ben", &ben), PURCHASE_SK)))
                .send(),
        )
        .unwrap()
        .item
        .expect("ben's order of s");
    let mut planted = ben_order;
    let fake = "01JZZZZZZZZZZZZZZZZZZZZZZZ";
    planted.insert("pk".into(), AttributeValue::S(order_pk("planted", "ann", fake)));
    planted.insert("userId".into(), AttributeValue::S("ann".into()));
    planted.insert("orderId".into(), AttributeValue::S(fake.into()));
    rt.block_on(client.put_item().table_name(table).set_item(Some(planted)).send()).expect("plant an order");
    send(
        client
            .update_item()
            .table_name(table)
            .set_key(Some(key(purchase_pk("planted", "ben"), "CUSTOMER")))
            .update_expression("SET live = :n")
            .expression_attribute_values(":n", AttributeValue::N("5".into())),
    );

    // The verifier over the stored state.
    let report = check_sized_store(&[], &[], &all, &rt.block_on(read_sized(&store, &sale)).unwrap());
    let found: HashSet<String> = report
        .violations
        .iter()
        .map(|v| serde_json::to_value(v).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "variant_stock_mismatch",
        "shard_taken_mismatch",
        "items_taken_mismatch",
        "customer_over_limit",
        "customer_count_mismatch",
    ] {
        assert!(found.contains(kind), "{kind} not reported: {:?}", report.violations);
    }
    assert!(
        report.violations.contains(&loadgen::verify::Violation::CustomerOverLimit {
            user: "ann".into(),
            live_items: 4,
            max: 3
        }),
        "{:?}",
        report.violations
    );

    // And the load generator's own run on that sale fails, naming them.
    let base = front_door(table);
    let json = std::env::temp_dir().join(format!("{}.json", unique("loadgen-planted")));
    let out = loadgen(
        &base,
        table,
        &json,
        &["--sale-id", "planted", "--users", "3", "--attempts", "3", "--concurrency", "1"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("customer ann holds 4 live items, above maxPerCustomer 3"), "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).ok();
    let kinds = kinds(&report);
    assert!(
        kinds.contains(&"variant_stock_mismatch".to_owned()) && kinds.contains(&"customer_count_mismatch".to_owned())
    );
}
