//! Local copies of changes being priced before anyone makes them in `shared/` (used by `cpu`,
//! `client-init` and the `purchase-variant` binary).

use std::fmt::Write as _;

use anyhow::{Result, anyhow};
use flash_sale::clock::now_ms;

/// `flash_sale::aws::local_client` with one change: the HTTP client is set on the config, so the
/// SDK never builds its default HTTPS client (and never loads the system certificate store).
pub fn local_client_with_http(
    endpoint: &str,
    http: aws_sdk_dynamodb::config::SharedHttpClient,
) -> Result<aws_sdk_dynamodb::Client> {
    let config = flash_sale::aws::local_config(endpoint, flash_sale::aws::local_timeouts()).map_err(|m| anyhow!(m))?;
    Ok(aws_sdk_dynamodb::Client::from_conf(config.http_client(http).build()))
}

/// What one purchase request came to, for [`one_line`].
#[derive(Debug, Clone, Copy)]
pub struct PurchaseLine<'a> {
    pub request_id: &'a str,
    pub sale_id: &'a str,
    pub user_id: &'a str,
    pub status: u16,
    /// The dashboard outcome (`succeeded`, `sold_out`, ...).
    pub outcome: &'a str,
    pub latency_ms: f64,
    pub shard: i64,
    pub retries: u32,
    pub transactions: u32,
}

/// The idea priced in BENCHMARKS.md (recommendation 3): one line per purchase that is both the
/// EMF record (namespace `flash_sale::telemetry::NAMESPACE`; `Purchases`, `PurchaseLatency`,
/// `PurchaseRetries`, dimension `outcome`, as `flash_sale::telemetry::record_purchase` records
/// them) and the request log line (the fields of `flash_sale::telemetry::RequestLog`), written
/// with `write!` and the ids escaped. Ends with a newline.
pub fn one_line(p: &PurchaseLine<'_>) -> String {
    let esc = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
    let mut line = String::with_capacity(640);
    let _ = write!(
        line,
        r#"{{"_aws":{{"Timestamp":{ts},"CloudWatchMetrics":[{{"Namespace":{ns},"Dimensions":[["outcome"]],"Metrics":[{{"Name":"Purchases","Unit":"Count"}},{{"Name":"PurchaseLatency","Unit":"Milliseconds"}},{{"Name":"PurchaseRetries","Unit":"Count"}}]}}]}},"outcome":{outcome},"Purchases":1,"PurchaseLatency":{latency:.3},"PurchaseRetries":{retries},"level":"INFO","message":"request","requestId":{id},"route":"purchase","saleId":{sale},"userId":{user},"status":{status},"shard":{shard},"retries":{retries},"transactions":{tx}}}"#,
        ts = now_ms(),
        ns = esc(flash_sale::telemetry::NAMESPACE),
        outcome = esc(p.outcome),
        latency = p.latency_ms,
        retries = p.retries,
        id = esc(p.request_id),
        sale = esc(p.sale_id),
        user = esc(p.user_id),
        status = p.status,
        shard = p.shard,
        tx = p.transactions,
    );
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_line_is_an_emf_record_and_a_log_line() {
        let line = one_line(&PurchaseLine {
            request_id: "r\"1",
            sale_id: "s",
            user_id: "u",
            status: 409,
            outcome: "sold_out",
            latency_ms: 1.5,
            shard: -1,
            retries: 0,
            transactions: 0,
        });
        assert!(line.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let emf = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(emf["Namespace"], flash_sale::telemetry::NAMESPACE);
        assert_eq!(emf["Dimensions"], serde_json::json!([["outcome"]]));
        assert_eq!((v["outcome"].as_str(), v["Purchases"].as_i64()), (Some("sold_out"), Some(1)));
        assert_eq!((v["requestId"].as_str(), v["status"].as_i64()), (Some("r\"1"), Some(409)));
    }
}
