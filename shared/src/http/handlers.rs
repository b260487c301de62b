//! The HTTP functions' handlers. Each never fails: every error becomes a problem response.

use serde_json::json;

use super::event::{ApiRequest, ApiResponse};
use super::problem::{self, HttpError};
use super::{
    NO_STORE, idempotency_key, identity, json, one_of_methods, order_id_param, order_id_query, path_param,
    purchase_body, require_method, sale_id, user_id_param, within_deadline,
};
use crate::App;
use crate::error::AppError;
use crate::ids::{SaleId, UserId};
use crate::telemetry::{RequestLog, record_purchase, record_stock};

/// A sale's public view may be cached for a second at the edge: a crowd polling a sale page
/// costs the function one request per second per edge location, not one per shopper.
const SALE_VIEW_CACHE: &str = "public, max-age=1";
/// A drawn pre-queue's published list: it never changes once served.
const PUBLISHED_FOR_GOOD: &str = "public, max-age=31536000, immutable";

fn finish(log: &RequestLog, result: Result<ApiResponse, HttpError>) -> ApiResponse {
    match result {
        Ok(resp) => {
            log.finish(resp.status_code, "ok");
            resp
        }
        Err(err) => {
            log.finish(err.status_and_code().0, err.status_and_code().1);
            problem::render(&err)
        }
    }
}

/// The purchase outcome as the dashboard counts it: one of `telemetry::PURCHASE_OUTCOMES`.
fn purchase_outcome<T>(result: &Result<T, HttpError>) -> &'static str {
    match result {
        Ok(_) => "succeeded",
        Err(HttpError::App(AppError::SoldOut)) => "sold_out",
        Err(HttpError::App(AppError::AlreadyPurchased(_))) => "already_purchased",
        Err(HttpError::App(AppError::SaleNotStarted { .. } | AppError::SaleEnded)) => "not_active",
        Err(e) if e.status_and_code().0 < 500 => "rejected",
        Err(_) => "error",
    }
}

/// Everything a purchase needs from the request, checked before any I/O.
#[allow(clippy::type_complexity)]
fn parse_purchase(
    app: &App,
    req: &ApiRequest,
) -> Result<(SaleId, UserId, Option<String>, Option<String>, crate::checkout::Choice), HttpError> {
    require_method(req, "POST")?;
    let body = purchase_body(req)?;
    let sale = sale_id(req, app.config.path_params)?;
    let user = identity::purchaser(app.config.auth_mode, req, body.user_id.as_deref())?;
    let key = idempotency_key(req)?;
    // 0 is never a valid quantity: the checkout refuses it with the sale's limit in the answer.
    let choice = crate::checkout::Choice { variant: body.variant_id.clone(), quantity: body.quantity().unwrap_or(0) };
    Ok((sale, user, key, body.admission_token, choice))
}

/// The `purchase` function: `POST /sales/{saleId}/purchases`.
pub async fn purchase_function(app: &App, req: ApiRequest) -> ApiResponse {
    let mut log = RequestLog::start("purchase", &req.request_id);
    let result = match parse_purchase(app, &req) {
        Err(err) => Err(err),
        Ok((sale, user, key, token, choice)) => {
            log.sale_id = Some(sale.to_string());
            log.user_id = Some(user.to_string());
            let work = async {
                let report = app.purchase_admitted(&sale, &user, key.as_deref(), token.as_deref(), choice).await;
                log.shard = report.shard;
                log.retries = report.retries;
                log.transactions = report.transactions;
                report.result.map_err(HttpError::from)
            };
            within_deadline(&req, app.tuning().deadline_margin, work).await
        }
    };
    let outcome = purchase_outcome(&result);
    if let Err(HttpError::App(
        e @ (AppError::AdmissionRequired | AppError::AdmissionInvalid(_) | AppError::NotYetAdmitted),
    )) = &result
    {
        crate::telemetry::record_admission_refusal(HttpError::App(e.clone()).status_and_code().1);
    }
    let (status, resp) = match &result {
        Ok(p) => (201, json(201, p, NO_STORE)),
        Err(err) => (err.status_and_code().0, problem::render(err)),
    };
    log.finish(status, outcome);
    record_purchase(outcome, log.latency_ms(), log.retries);
    resp
}

/// Which of the status function's routes a request is for.
enum StatusRoute {
    Health,
    ListSales,
    Sale,
    Entrants,
}

fn status_route(req: &ApiRequest) -> Result<StatusRoute, HttpError> {
    if req.path_param("page").is_some() {
        return Ok(StatusRoute::Entrants);
    }
    if req.path_param("saleId").is_some() {
        return Ok(StatusRoute::Sale);
    }
    let path = req.path().trim_end_matches('/');
    if path.ends_with("/health") {
        Ok(StatusRoute::Health)
    } else if path.ends_with("/sales") {
        Ok(StatusRoute::ListSales)
    } else {
        Err(HttpError::NotFound)
    }
}

/// The `status` function: `GET /sales`, `GET /sales/{saleId}`, `GET /sales/{saleId}/entrants/{page}`
/// and `GET /health`.
pub async fn status_function(app: &App, req: ApiRequest) -> ApiResponse {
    let margin = app.tuning().deadline_margin;
    let route = match status_route(&req) {
        Ok(route) => route,
        Err(err) => return finish(&RequestLog::start("status", &req.request_id), Err(err)),
    };
    match route {
        StatusRoute::Health => {
            let log = RequestLog::start("health", &req.request_id);
            let work = async {
                require_method(&req, "GET")?;
                app.healthy().await?;
                Ok(json(200, &json!({"status": "ok"}), NO_STORE))
            };
            finish(&log, within_deadline(&req, margin, work).await)
        }
        StatusRoute::ListSales => {
            let log = RequestLog::start("list_sales", &req.request_id);
            let work = async {
                require_method(&req, "GET")?;
                let sales = app.list().await?;
                Ok(json(200, &json!({ "sales": sales }), SALE_VIEW_CACHE))
            };
            finish(&log, within_deadline(&req, margin, work).await)
        }
        StatusRoute::Sale => {
            let mut log = RequestLog::start("sale_view", &req.request_id);
            let work = async {
                require_method(&req, "GET")?;
                let sale = sale_id(&req, app.config.path_params)?;
                log.sale_id = Some(sale.to_string());
                let view = app.sale_view(&sale).await?;
                record_stock(sale.as_str(), view.sale.remaining_stock);
                Ok(json(200, &view, SALE_VIEW_CACHE))
            };
            let result = within_deadline(&req, margin, work).await;
            finish(&log, result)
        }
        StatusRoute::Entrants => {
            let mut log = RequestLog::start("entrants", &req.request_id);
            let work = async {
                require_method(&req, "GET")?;
                let sale = sale_id(&req, app.config.path_params)?;
                log.sale_id = Some(sale.to_string());
                let page = path_param(&req, app.config.path_params, "page")?;
                let page = match page.parse::<u32>() {
                    Ok(n) if page.len() <= 6 && page.bytes().all(|b| b.is_ascii_digit()) => n,
                    _ => return Err(HttpError::invalid("page must be a page number: 0, 1, 2, …")),
                };
                let view = app.entrant_page(&sale, page).await?;
                // A complete draw's list never changes: every cache may keep it.
                Ok(json(200, &view, PUBLISHED_FOR_GOOD))
            };
            let result = within_deadline(&req, margin, work).await;
            finish(&log, result)
        }
    }
}

/// The `user-lookup` function: `GET /sales/{saleId}/purchases/{userId}`.
pub async fn user_lookup_function(app: &App, req: ApiRequest) -> ApiResponse {
    let cancelling = req.method().eq_ignore_ascii_case("DELETE");
    let mut log = RequestLog::start(if cancelling { "cancel" } else { "user_lookup" }, &req.request_id);
    let work = async {
        let method = one_of_methods(&req, &["GET", "DELETE"], "GET, DELETE")?;
        let sale = sale_id(&req, app.config.path_params)?;
        let user = user_id_param(&req, app.config.path_params)?;
        log.sale_id = Some(sale.to_string());
        log.user_id = Some(user.to_string());
        identity::may_view(app.config.auth_mode, &req, &user)?;
        let order_id = order_id_query(&req)?;
        if method == "DELETE" {
            let order = match &order_id {
                Some(id) => app.cancel_order(&sale, &user, id).await?,
                None => app.cancel(&sale, &user).await?,
            };
            Ok(json(200, &order, NO_STORE))
        } else {
            Ok(json(200, &app.lookup_orders(&sale, &user, order_id.as_deref()).await?, NO_STORE))
        }
    };
    let result = within_deadline(&req, app.tuning().deadline_margin, work).await;
    finish(&log, result)
}

/// The `orders` function: `POST /sales/{saleId}/orders/{orderId}/confirm`, for the shop's payment
/// backend (IAM-authorized in the cloud; see docs/orders.md).
pub async fn orders_function(app: &App, req: ApiRequest) -> ApiResponse {
    let mut log = RequestLog::start("confirm", &req.request_id);
    let work = async {
        require_method(&req, "POST")?;
        let sale = sale_id(&req, app.config.path_params)?;
        log.sale_id = Some(sale.to_string());
        let order = order_id_param(&req, app.config.path_params)?;
        let body = req.body_bytes().ok_or_else(|| HttpError::invalid("the body is marked base64 but is not"))?;
        // Empty, or a JSON object without members (`{}` however it is spaced).
        let empty = body.iter().all(u8::is_ascii_whitespace)
            || serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body).is_ok_and(|m| m.is_empty());
        if !empty {
            return Err(HttpError::invalid("confirming takes no body (or an empty JSON object)"));
        }
        let confirmed = app.confirm(&sale, &order).await?;
        log.user_id = Some(confirmed.user_id.clone());
        Ok(json(200, &confirmed, NO_STORE))
    };
    let result = within_deadline(&req, app.tuning().deadline_margin, work).await;
    finish(&log, result)
}

/// The `queue` function: `POST /sales/{saleId}/queue` (join) and `GET /sales/{saleId}/queue/{userId}`.
pub async fn queue_function(app: &App, req: ApiRequest) -> ApiResponse {
    let joining = req.path_param("userId").is_none();
    let mut log = RequestLog::start(if joining { "queue_join" } else { "queue_position" }, &req.request_id);
    let work = async {
        let sale = sale_id(&req, app.config.path_params)?;
        log.sale_id = Some(sale.to_string());
        let view = if joining {
            require_method(&req, "POST")?;
            let body = purchase_body(&req)?;
            if body.admission_token.is_some() {
                return Err(HttpError::invalid("joining the line takes no admissionToken"));
            }
            let user = identity::purchaser(app.config.auth_mode, &req, body.user_id.as_deref())?;
            log.user_id = Some(user.to_string());
            app.join(&sale, &user).await?
        } else {
            require_method(&req, "GET")?;
            let user = user_id_param(&req, app.config.path_params)?;
            log.user_id = Some(user.to_string());
            identity::may_view(app.config.auth_mode, &req, &user)?;
            app.place(&sale, &user).await?
        };
        Ok(json(200, &view, NO_STORE))
    };
    let result = within_deadline(&req, app.tuning().deadline_margin, work).await;
    finish(&log, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::CODES;

    #[test]
    fn admission_refusal_reasons_are_the_problem_codes_the_dashboard_charts() {
        for e in [AppError::AdmissionRequired, AppError::AdmissionInvalid("x"), AppError::NotYetAdmitted] {
            let code = HttpError::App(e).status_and_code().1;
            assert!(crate::telemetry::ADMISSION_REFUSALS.contains(&code), "{code}");
        }
    }

    #[test]
    fn every_purchase_outcome_is_one_the_dashboard_charts() {
        let ok: Result<(), HttpError> = Ok(());
        assert!(crate::telemetry::PURCHASE_OUTCOMES.contains(&purchase_outcome(&ok)));
        for &(status, _) in CODES {
            let err = if status == 503 { AppError::Busy.into() } else { HttpError::invalid("x") };
            assert!(crate::telemetry::PURCHASE_OUTCOMES.contains(&purchase_outcome(&Err::<(), _>(err))));
        }
        for e in
            [AppError::SoldOut, AppError::SaleEnded, AppError::SaleNotStarted { starts_at_ms: 0 }, AppError::Internal]
        {
            assert!(crate::telemetry::PURCHASE_OUTCOMES.contains(&purchase_outcome(&Err::<(), _>(e.into()))));
        }
    }
}
