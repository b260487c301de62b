//! The purchase transaction goes through the AWS SDK's standard retry, quota included: under a
//! throttling storm a container stops retrying once the quota is spent, instead of making three
//! attempts per purchase forever and multiplying the load on a table that is already throttling.
//! DynamoDB's throttling comes from the fault proxy; the SDK and DynamoDB Local are real.

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use flash_sale_testkit::proxy::{Fault, Proxy, upstream};
use flash_sale_testkit::{SaleSpec, TestApp};

/// Transactions the proxy has seen so far.
fn transactions(proxy: &Proxy) -> usize {
    proxy.counts().iter().filter(|((op, _), _)| op == "TransactWriteItems").map(|(_, n)| n).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttling_storm_spends_the_retry_quota_and_then_each_purchase_makes_one_attempt() {
    // Arrange: a container whose every purchase transaction is throttled. Its client is the
    // functions' (standard retry, 3 attempts, a quota of its own as every container has) with a
    // 1 ms backoff base, so that about a hundred retries take no minutes.
    let app = TestApp::fresh().await.tune(|t| t.sale_cache = Duration::from_secs(60));
    let sale = SaleSpec::new().stock(20).create(&app).await;
    let proxy = Proxy::start(
        upstream(),
        Box::new(|op: &str, _: &str| if op == "TransactWriteItems" { Fault::Throttle } else { Fault::Pass }),
    )
    .await;
    let client = proxy.client();
    let retry = RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1));
    let client = aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().retry_config(retry).build());
    let throttled = app.container().via(client);

    // Act: 120 purchases, one after the other.
    let purchases = 120;
    let mut last_attempts = Vec::new();
    for i in 0..purchases {
        let before = transactions(&proxy);
        let (status, body) = throttled.buy(&sale, &format!("u{i}")).await;
        assert_eq!(status, 503, "a throttled purchase is busy: {body}");
        if i >= purchases - 20 {
            last_attempts.push(transactions(&proxy) - before);
        }
    }

    // Assert: without a quota, 3 attempts each (360). The SDK's standard quota (500 tokens, 5 per
    // retry after throttling) allows about 100 retries in all, then one attempt per purchase.
    let sent = transactions(&proxy);
    assert!(sent < 2 * purchases, "{sent} transactions for {purchases} throttled purchases: the retries never stopped");
    assert!(sent > purchases, "{sent} transactions: the SDK did not retry at all before its quota was spent");
    assert_eq!(last_attempts, vec![1; 20], "once the quota is spent, every purchase makes one attempt");
    let (stock, records) = app.stored(&sale).await;
    assert_eq!((stock.iter().sum::<i64>(), records.len()), (20, 0), "nothing was sold or lost");
}
