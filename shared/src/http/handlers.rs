//! The three functions' handlers. Each never fails: every error becomes a problem response.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::{NO_STORE, json, problem, purchase_body, require_method, sale_id, user_id_param};
use crate::App;
use crate::error::ApiError;
use crate::identity;
use crate::ids::{SaleId, UserId};
use crate::telemetry::{RequestLog, purchase_outcome, record_purchase, record_stock};

/// Status may be cached for a second at the edge: a crowd polling a sale page costs the
/// function one request per second per edge location, not one per shopper.
const STATUS_CACHE: &str = "public, max-age=1";

fn finish(log: &RequestLog, result: Result<Response<Body>, ApiError>) -> Response<Body> {
    match result {
        Ok(resp) => {
            log.finish(resp.status().as_u16(), "ok");
            resp
        }
        Err(err) => {
            log.finish(err.status(), err.code());
            problem::render(&err)
        }
    }
}

/// Everything a purchase needs from the request, checked before any I/O.
fn parse_purchase(app: &App, req: &Request) -> Result<(SaleId, UserId), ApiError> {
    require_method(req, Method::POST, "POST")?;
    let body = purchase_body(req)?;
    let sale = sale_id(req)?;
    let user = identity::purchaser(app.auth, req, body.user_id.as_deref())?;
    Ok((sale, user))
}

/// `POST /sales/{saleId}/purchases`
pub async fn purchase(app: &App, req: Request) -> Response<Body> {
    let mut log = RequestLog::start("purchase", &req);
    let result = match parse_purchase(app, &req) {
        Err(err) => Err(err),
        Ok((sale, user)) => {
            log.sale_id = Some(sale.to_string());
            log.user_id = Some(user.to_string());
            let report = app.purchase(&sale, &user).await;
            log.shard = report.shard;
            log.retries = report.retries;
            log.transactions = report.transactions;
            report.result
        }
    };
    let outcome = purchase_outcome(&result);
    let (status, resp) = match &result {
        Ok(p) => (201, json(201, p, NO_STORE)),
        Err(err) => (err.status(), problem::render(err)),
    };
    log.finish(status, outcome);
    record_purchase(outcome, log.latency_ms(), log.retries);
    resp
}

/// `GET /sales`, `GET /sales/{saleId}` and `GET /health`.
pub async fn status(app: &App, req: Request) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let has_sale = super::path_param(&req, "saleId").is_some();
    if !has_sale && path.ends_with("/health") {
        let log = RequestLog::start("health", &req);
        let result = async {
            require_method(&req, Method::GET, "GET")?;
            app.healthy().await?;
            Ok(json(200, &json!({"status": "ok"}), NO_STORE))
        };
        return finish(&log, result.await);
    }
    if !has_sale && path.ends_with("/sales") {
        let log = RequestLog::start("list_sales", &req);
        let result = async {
            require_method(&req, Method::GET, "GET")?;
            let sales = app.list().await?;
            Ok(json(200, &json!({ "sales": sales }), STATUS_CACHE))
        };
        return finish(&log, result.await);
    }
    let mut log = RequestLog::start("sale_status", &req);
    let result = async {
        require_method(&req, Method::GET, "GET")?;
        let sale = sale_id(&req)?;
        log.sale_id = Some(sale.to_string());
        let status = app.status(&sale).await?;
        record_stock(sale.as_str(), status.remaining_stock);
        Ok(json(200, &status, STATUS_CACHE))
    }
    .await;
    finish(&log, result)
}

/// `GET /sales/{saleId}/purchases/{userId}`
pub async fn user_lookup(app: &App, req: Request) -> Response<Body> {
    let mut log = RequestLog::start("user_lookup", &req);
    let result = async {
        require_method(&req, Method::GET, "GET")?;
        let sale = sale_id(&req)?;
        let user = user_id_param(&req)?;
        log.sale_id = Some(sale.to_string());
        log.user_id = Some(user.to_string());
        identity::may_view(app.auth, &req, &user)?;
        let purchase = app.lookup(&sale, &user).await?;
        Ok(json(200, &purchase, NO_STORE))
    }
    .await;
    finish(&log, result)
}
