//! DynamoDB capacity per outcome, two ways:
//!
//! 1. The purchase transaction replicated here with `ReturnConsumedCapacity=TOTAL` (and the
//!    reads the functions make), one call per outcome.
//! 2. The application's own calls (`App::purchase`, `App::sale_view`, `App::lookup`) through a
//!    client with a metering interceptor: it counts every request DynamoDB receives, adds
//!    `"ReturnConsumedCapacity":"TOTAL"` to the request body before signing, and reads
//!    `ConsumedCapacity` from each response. This proves the call counts (0 while the sold-out
//!    hint holds) on the code that ships.

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnConsumedCapacity};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use flash_sale::clock::now_ms;
use flash_sale::config::Tuning;
use flash_sale::ids::UserId;
use flash_sale::store::Store;
use flash_sale::{AppError, PurchaseReport, keys};
use serde_json::Value;

use crate::local::{self, Dynamo};
use crate::rawtx;

/// One DynamoDB call as the metering interceptor saw it.
#[derive(Debug, Clone)]
struct Call {
    op: String,
    status: u16,
    capacity: Option<String>,
}

#[derive(Debug, Default)]
struct Meter {
    calls: Mutex<Vec<Call>>,
}

const WITH_CAPACITY: &[&str] =
    &["GetItem", "BatchGetItem", "TransactWriteItems", "PutItem", "UpdateItem", "Query", "Scan"];

fn op_of(target: Option<&str>) -> String {
    target.and_then(|t| t.rsplit('.').next()).unwrap_or("?").to_owned()
}

/// `ConsumedCapacity` of a response body, compact: "table: 4 (W 4)" per entry.
fn capacity_of(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let cc = v.get("ConsumedCapacity")?;
    let entries: Vec<&Value> = match cc {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    if entries.is_empty() {
        return None;
    }
    Some(
        entries
            .iter()
            .map(|e| {
                let f = |k: &str| e.get(k).and_then(Value::as_f64).map(|x| format!("{x}"));
                let mut s = format!("{} CU", f("CapacityUnits").unwrap_or_else(|| "?".into()));
                if let Some(w) = f("WriteCapacityUnits") {
                    s.push_str(&format!(", {w} WCU"));
                }
                if let Some(r) = f("ReadCapacityUnits") {
                    s.push_str(&format!(", {r} RCU"));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[derive(Debug)]
struct MeterInterceptor(Arc<Meter>);

/// The operation of the call in flight (the request itself is gone by the time the response is
/// deserialized).
#[derive(Debug, Clone)]
struct OpName(String);

impl Storable for OpName {
    type Storer = StoreReplace<Self>;
}

impl Intercept for MeterInterceptor {
    fn name(&self) -> &'static str {
        "BenchCapacityMeter"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request_mut();
        let op = op_of(req.headers().get("x-amz-target"));
        cfg.interceptor_state().store_put(OpName(op.clone()));
        if !WITH_CAPACITY.contains(&op.as_str()) {
            return Ok(());
        }
        let Some(bytes) = req.body().bytes() else { return Ok(()) };
        let mut v: Value = serde_json::from_slice(bytes)?;
        if let Some(obj) = v.as_object_mut() {
            obj.entry("ReturnConsumedCapacity").or_insert_with(|| Value::from("TOTAL"));
        }
        let text = v.to_string();
        req.headers_mut().insert("content-length", text.len().to_string());
        *req.body_mut() = SdkBody::from(text);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<OpName>().map(|o| o.0.clone()).unwrap_or_else(|| "?".into());
        let resp = context.response();
        let capacity = resp.body().bytes().and_then(capacity_of);
        self.0.calls.lock().unwrap_or_else(|p| p.into_inner()).push(Call {
            op,
            status: resp.status().as_u16(),
            capacity,
        });
        Ok(())
    }
}

impl Meter {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn describe(calls: &[Call]) -> String {
    if calls.is_empty() {
        return "0 calls".into();
    }
    let parts: Vec<String> = calls
        .iter()
        .map(|c| {
            format!(
                "{} {} [{}]",
                c.op,
                c.status,
                c.capacity.clone().unwrap_or_else(|| "no ConsumedCapacity returned".into())
            )
        })
        .collect();
    format!("{} call(s): {}", calls.len(), parts.join(" + "))
}

/// Size of an item by DynamoDB's rule of thumb: attribute name bytes + value bytes (numbers:
/// about one byte per two digits + 1).
fn item_size(item: &rawtx::Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
                    _ => 8,
                }
        })
        .sum()
}

type TxResult = Result<
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput,
    aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>,
>;

fn raw_capacity(result: &TxResult) -> String {
    match result {
        Ok(out) => match out.consumed_capacity() {
            [] => "committed; no ConsumedCapacity returned".into(),
            cc => format!(
                "committed; {}",
                cc.iter()
                    .map(|c| format!(
                        "{} CU (W {:?}, R {:?})",
                        c.capacity_units().unwrap_or(f64::NAN),
                        c.write_capacity_units(),
                        c.read_capacity_units()
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        },
        Err(e) => {
            use aws_sdk_dynamodb::error::ProvideErrorMetadata;
            let body_cc = e.raw_response().and_then(|r| r.body().bytes()).and_then(capacity_of);
            format!(
                "{}; {}",
                e.code().unwrap_or("error"),
                body_cc.unwrap_or_else(|| "no ConsumedCapacity in the error response".into())
            )
        }
    }
}

/// The capacity units DynamoDB reports for one `GetItem` of `key`.
async fn read_capacity(client: &Client, table: &str, key: rawtx::Item, consistent: bool) -> Result<Option<f64>> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(consistent)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await?;
    Ok(out.consumed_capacity().and_then(|c| c.capacity_units()))
}

pub async fn run(endpoint: Option<&str>) -> Result<()> {
    let dynamo = Dynamo::get(endpoint).await?;
    let ep = &dynamo.endpoint;
    let store = local::fresh_store(ep).await?;
    let table = store.table().to_owned();
    let client: Client = local::client(ep)?;
    let now = now_ms();
    println!("capacity: DynamoDB Local at {ep}, table {table}");

    // ---- 1. Replicated calls with ReturnConsumedCapacity=TOTAL ----
    println!("1. replicated calls (bench code, ReturnConsumedCapacity=TOTAL):");
    let plenty = local::active_sale(&store, 100, 1).await?;
    let one = local::active_sale(&store, 1, 1).await?;
    let upcoming = local::sale(&local::unique("up"), 10, 1, now + 3_600_000, now + 7_200_000);
    store.create_sale(&upcoming, now).await.map_err(|e| anyhow!("{e}"))?;
    let (p, o, u) = (plenty.id.to_string(), one.id.to_string(), upcoming.id.to_string());
    let item = rawtx::purchase_item(&p, "alice", &ulid::Ulid::new().to_string(), now, 0);
    println!("   purchase item ≈ {} bytes (≤ 1 KB → 1 write unit per transactional half)", item_size(&item));
    let ok = rawtx::purchase(&client, &table, &p, 0, "alice", now_ms(), true).await;
    println!("   success             : {}", raw_capacity(&ok));
    let dup = rawtx::purchase(&client, &table, &p, 0, "alice", now_ms(), true).await;
    println!("   duplicate           : {}", raw_capacity(&dup));
    let first = rawtx::purchase(&client, &table, &o, 0, "bob", now_ms(), true).await;
    let sold = rawtx::purchase(&client, &table, &o, 0, "carol", now_ms(), true).await;
    println!("   (last item)         : {}", raw_capacity(&first));
    println!("   sold out            : {}", raw_capacity(&sold));
    let early = rawtx::purchase(&client, &table, &u, 0, "dave", now_ms(), true).await;
    println!("   not active (tx)     : {}", raw_capacity(&early));
    for shards in [1u32, 4, 10] {
        let s = local::active_sale(&store, 100, shards).await?;
        let shard_keys = (0..shards).map(|n| rawtx::key(keys::shard_pk(s.id.as_str(), n), keys::SHARD_SK)).collect();
        let out = client
            .batch_get_item()
            .request_items(&table, KeysAndAttributes::builder().set_keys(Some(shard_keys)).build()?)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await?;
        let cc = out
            .consumed_capacity()
            .iter()
            .map(|c| format!("{:?} CU", c.capacity_units()))
            .collect::<Vec<_>>()
            .join("; ");
        println!(
            "   status read {shards:>2} shard(s) (BatchGetItem, eventually consistent): {}",
            if cc.is_empty() { "no ConsumedCapacity returned".into() } else { cc }
        );
    }
    let lookup = read_capacity(&client, &table, rawtx::key(keys::purchase_pk(&p, "alice"), keys::PURCHASE_SK), true);
    println!("   user lookup (GetItem, strongly consistent): {:?}", lookup.await?);
    let meta = read_capacity(&client, &table, rawtx::key(keys::sale_pk(&p), keys::SALE_SK), false);
    println!("   sale config (GetItem, eventually consistent): {:?}", meta.await?);

    // ---- 2. The application's own calls, metered ----
    println!("2. the application's calls (App::purchase / sale_view / lookup, metering interceptor):");
    let meter = Arc::new(Meter::default());
    let metered = Client::from_conf(client.config().to_builder().interceptor(MeterInterceptor(meter.clone())).build());
    let app = local::app(&Store::new(metered, &table), Tuning::default());
    let sale = local::active_sale(&store, 2, 1).await?;
    let later = local::sale(&local::unique("up"), 10, 1, now + 3_600_000, now + 7_200_000);
    store.create_sale(&later, now).await.map_err(|e| anyhow!("{e}"))?;
    let user = |s: &str| UserId::parse(s).map_err(|e| anyhow!("{e}"));
    let line = |label: &str, report: Option<&PurchaseReport>| {
        let calls = meter.take();
        let extra = report
            .map(|r| {
                let outcome = match &r.result {
                    Ok(_) => "succeeded".to_owned(),
                    Err(e) => e.to_string(),
                };
                format!(" · outcome: {outcome} · transactions {} · from_hint {}", r.transactions, r.from_hint)
            })
            .unwrap_or_default();
        println!("   {label:<44}: {}{extra}", describe(&calls));
        calls.len()
    };
    let r = app.purchase(&sale.id, &user("u1")?, None).await;
    line("success, sale config not cached", Some(&r));
    let r = app.purchase(&sale.id, &user("u2")?, None).await;
    line("success, sale config cached", Some(&r));
    let r = app.purchase(&sale.id, &user("u1")?, None).await;
    line("duplicate (already_purchased)", Some(&r));
    let r = app.purchase(&sale.id, &user("u3")?, None).await;
    line("sold out, found by the transaction", Some(&r));
    let mut hint_calls = 0;
    let mut hint_hits = 0;
    let hint_n = 100;
    for i in 0..hint_n {
        let r = app.purchase(&sale.id, &user(&format!("late-{i}"))?, None).await;
        hint_hits += usize::from(r.from_hint && r.transactions == 0 && matches!(r.result, Err(AppError::SoldOut)));
        hint_calls += meter.take().len();
    }
    println!(
        "   {:<44}: {hint_calls} DynamoDB calls for {hint_n} rejections; {hint_hits}/{hint_n} answered from the hint with 0 transactions",
        "sold out while the hint holds (1 s)"
    );
    let r = app.purchase(&later.id, &user("u4")?, None).await;
    line("not active (upcoming), config not cached", Some(&r));
    let r = app.purchase(&later.id, &user("u5")?, None).await;
    line("not active (upcoming), config cached", Some(&r));
    app.sale_view(&sale.id).await.map_err(|e| anyhow!("status: {e:?}"))?;
    line("status of a 1-shard sale (config cached)", None);
    app.lookup(&sale.id, &user("u1")?).await.map_err(|e| anyhow!("lookup: {e:?}"))?;
    line("user lookup", None);
    drop(dynamo);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replicated calls and the application's metered calls against DynamoDB Local.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn meters_every_outcome() {
        let Some(endpoint) = local::test_endpoint() else { return };
        run(Some(&endpoint)).await.unwrap();
    }

    #[test]
    fn reads_consumed_capacity_in_both_shapes() {
        let one = br#"{"ConsumedCapacity":{"TableName":"t","CapacityUnits":1.0}}"#;
        assert_eq!(capacity_of(one).as_deref(), Some("1 CU"));
        let many = br#"{"ConsumedCapacity":[{"TableName":"t","CapacityUnits":4.0,"WriteCapacityUnits":4.0}]}"#;
        assert_eq!(capacity_of(many).as_deref(), Some("4 CU, 4 WCU"));
        assert_eq!(capacity_of(b"{}"), None);
        assert_eq!(op_of(Some("DynamoDB_20120810.TransactWriteItems")), "TransactWriteItems");
    }
}
