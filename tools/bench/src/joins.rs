//! `inprocess --mode joins`: waiting-room join throughput (the `queue` handler called directly
//! from N tasks, joins after opening) beside DynamoDB Local's raw throughput of the calls a join
//! cannot do without: one conditional `PutItem` of the person's entry, and that put after a
//! consistent `GetItem` (the read that keeps a person who joins again from burning a place). Same
//! run, alternating, each side on a fresh table.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use flash_sale::clock::now_ms;
use flash_sale::config::Tuning;
use flash_sale::http::queue_function;
use flash_sale_testkit::{TestApp, req};

use crate::inprocess::{Args, split};
use crate::local::{self, Dynamo};
use crate::stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    RawPut,
    RawGetPut,
    Handler,
}

async fn run_side(endpoint: &str, side: Side, tasks: usize, joins: usize, limit: Duration) -> Result<f64> {
    let store = local::fresh_store(endpoint).await?;
    let start = now_ms() - 3_600_000;
    let spec = flash_sale_testkit::SaleSpec::new().stock(100).shards(4).window(start, start + 86_400_000);
    let (sale, _) = spec.room().create_in(&store, start).await;
    let sale_id = sale.id.to_string();
    let deadline = Instant::now() + limit;
    // The handler as deployed: the functions' default tuning (a sale's configuration cached for
    // 5 s), not the tests' (which read it on every request).
    let app: &'static TestApp = Box::leak(Box::new(TestApp::on(&store).tune(|t| *t = Tuning::default()).admission()));
    if side == Side::Handler {
        // The draw (an empty pre-queue) and the first admission step happen before the clock.
        queue_function(app, req::join(&sale_id, "{\"userId\":\"warm\"}", None)).await;
    }
    let client = local::client(endpoint)?;
    let table = store.table().to_owned();
    let mut handles = Vec::with_capacity(tasks);
    let mut prepared = Vec::new();
    for (t, count) in split(joins, tasks).into_iter().enumerate() {
        let reqs: Vec<_> = (0..count)
            .map(|i| {
                let user = format!("u{t}-{i}");
                let body = format!("{{\"userId\":\"{user}\"}}");
                (user.clone(), req::join(&sale_id, &body, None))
            })
            .collect();
        prepared.push(reqs);
    }
    let started = Instant::now();
    for reqs in prepared {
        let (client, table, sale_id) = (client.clone(), table.clone(), sale_id.clone());
        handles.push(tokio::spawn(async move {
            let mut failed = 0usize;
            for (user, req) in reqs {
                if Instant::now() > deadline {
                    break;
                }
                let ok = match side {
                    Side::Handler => queue_function(app, req).await.status_code == 200,
                    Side::RawPut | Side::RawGetPut => {
                        let pk = flash_sale::keys::queue_pk(&sale_id, &user);
                        if side == Side::RawGetPut {
                            let got = client
                                .get_item()
                                .table_name(&table)
                                .key("pk", AttributeValue::S(pk.clone()))
                                .key("sk", AttributeValue::S(flash_sale::keys::QUEUE_SK.into()))
                                .consistent_read(true)
                                .send()
                                .await;
                            if got.is_err() {
                                failed += 1;
                                continue;
                            }
                        }
                        let item = HashMap::from([
                            ("pk".to_owned(), AttributeValue::S(pk)),
                            ("sk".to_owned(), AttributeValue::S(flash_sale::keys::QUEUE_SK.into())),
                            ("saleId".to_owned(), AttributeValue::S(sale_id.clone())),
                            ("userId".to_owned(), AttributeValue::S(user)),
                            ("joinedAt".to_owned(), AttributeValue::N(now_ms().to_string())),
                            ("prequeue".to_owned(), AttributeValue::Bool(false)),
                            ("ticket".to_owned(), AttributeValue::N("1".into())),
                        ]);
                        client
                            .put_item()
                            .table_name(&table)
                            .set_item(Some(item))
                            .condition_expression("attribute_not_exists(pk)")
                            .send()
                            .await
                            .is_ok()
                    }
                };
                if !ok {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for h in handles {
        failed += h.await.map_err(|e| anyhow!("task failed: {e}"))?;
    }
    let secs = started.elapsed().as_secs_f64();
    if Instant::now() > deadline {
        bail!("{side:?} side hit the {} s limit", limit.as_secs());
    }
    if failed > 0 {
        bail!("{side:?}: {failed} of {joins} joins failed (every one should succeed)");
    }
    Ok(joins as f64 / secs)
}

pub(crate) async fn run(args: &Args) -> Result<()> {
    let dynamo = Dynamo::get(args.endpoint.as_deref()).await?;
    let limit = Duration::from_secs(args.max_seconds);
    println!(
        "inprocess (joins): {} tasks, {} joins per side per round, {} rounds, DynamoDB Local at {}",
        args.tasks, args.attempts, args.rounds, dynamo.endpoint
    );
    let warm = (args.attempts / 5).max(args.tasks);
    for side in [Side::RawPut, Side::RawGetPut, Side::Handler] {
        run_side(&dynamo.endpoint, side, args.tasks, warm, limit).await?;
    }
    let (mut put, mut get_put, mut handler) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let mut order = [Side::RawPut, Side::RawGetPut, Side::Handler];
        order.rotate_left(round % 3);
        for side in order {
            let per_sec = run_side(&dynamo.endpoint, side, args.tasks, args.attempts, limit).await?;
            match side {
                Side::RawPut => put.push(per_sec),
                Side::RawGetPut => get_put.push(per_sec),
                Side::Handler => handler.push(per_sec),
            }
        }
        println!(
            "  round {}: raw PutItem {:.0}/s · raw GetItem+PutItem {:.0}/s · join handler {:.0}/s",
            round + 1,
            put[round],
            get_put[round],
            handler[round]
        );
    }
    let ratio = |a: &[f64], b: &[f64]| stats::median(&a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>());
    println!("raw PutItem joins/s:          {}", stats::summary(&put, 0));
    println!("raw GetItem+PutItem joins/s:  {}", stats::summary(&get_put, 0));
    println!("join handler joins/s:         {}", stats::summary(&handler, 0));
    let vs_put = ratio(&handler, &put);
    println!(
        "ratio handler/raw PutItem (median over rounds): {vs_put:.3} — goal >= 0.9: {}; handler/raw GetItem+PutItem: {:.3}",
        if vs_put >= 0.9 { "met" } else { "not met" },
        ratio(&handler, &get_put)
    );
    drop(dynamo);
    Ok(())
}
