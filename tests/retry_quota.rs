//! The purchase transaction goes through the AWS SDK's standard retry, quota included: under a
//! throttling storm a container stops retrying once the quota is spent, instead of making three
//! attempts per purchase forever and multiplying the load on a table that is already throttling.
//! DynamoDB's throttling comes from the fault proxy (`support::proxy`); the SDK and DynamoDB Local
//! are real.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::{RetryConfig, RetryPartition};
use flash_sale::clock::SystemClock;
use flash_sale::config::{AuthMode, Tuning};
use flash_sale::store::Store;
use integration_tests::proxy::{Fault, Proxy};
use integration_tests::{active_sale, fresh_store, purchase_request, read, stored_state, tuning, unique, user_body};

use crate::faults::{timeouts, upstream};

/// Transactions the proxy has seen so far.
fn transactions(proxy: &Proxy) -> usize {
    proxy.counts().iter().filter(|((op, _), _)| op == "TransactWriteItems").map(|(_, n)| n).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttling_storm_spends_the_retry_quota_and_then_each_purchase_makes_one_attempt() {
    let store = fresh_store().await;
    let sale = active_sale(&store, 20, 1).await;
    let proxy = Proxy::start(
        upstream(),
        Box::new(|op: &str, _: &str| if op == "TransactWriteItems" { Fault::Throttle } else { Fault::Pass }),
    )
    .await;
    // The functions' client (standard retry, 3 attempts), with two changes for the test alone: a
    // retry partition of its own, so that the quota is this test's and not shared with the other
    // tests of the process, and a 1 ms backoff base, so that 100 retries take no minutes.
    let client = flash_sale::aws::local_client_with_timeouts(&proxy.endpoint, timeouts()).expect("client");
    let config = client
        .config()
        .to_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1)))
        .retry_partition(RetryPartition::new(unique("quota")))
        .build();
    let faulty = Store::new(aws_sdk_dynamodb::Client::from_conf(config), store.table());
    let app = integration_tests::app_with(
        &faulty,
        Arc::new(SystemClock),
        AuthMode::Body,
        Tuning { sale_cache: Duration::from_secs(60), ..tuning() },
    );

    let purchases = 120;
    let mut last_attempts = Vec::new();
    for i in 0..purchases {
        let before = transactions(&proxy);
        let resp =
            flash_sale::http::purchase_function(&app, purchase_request(sale.id.as_str(), &user_body(&format!("u{i}"))))
                .await;
        let (status, body) = read(&resp);
        assert_eq!(status, 503, "a throttled purchase is busy: {body}");
        if i >= purchases - 20 {
            last_attempts.push(transactions(&proxy) - before);
        }
    }

    let sent = transactions(&proxy);
    // Without a quota: 3 attempts each, 360. The SDK's standard quota (500 tokens, 5 per retry
    // after throttling) allows about 100 retries in all.
    assert!(sent < 2 * purchases, "{sent} transactions for {purchases} throttled purchases: the retries never stopped");
    assert!(sent > purchases, "{sent} transactions: the SDK did not retry at all before its quota was spent");
    assert_eq!(last_attempts, vec![1; 20], "once the quota is spent, every purchase makes one attempt");
    let (stock, records) = stored_state(&store, &sale).await;
    assert_eq!((stock.iter().sum::<i64>(), records.len()), (20, 0), "nothing was sold or lost");
}
