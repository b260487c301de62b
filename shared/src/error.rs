//! The one error type of the API. [`crate::http::problem`] turns it into problem+json; nothing
//! else decides a status code.

use crate::purchase::Purchase;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("a verified identity is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("no route for this path")]
    NotFound,
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("no sale with this id")]
    SaleNotFound,
    #[error("this user has no purchase in this sale")]
    PurchaseNotFound,
    #[error("the sale has not started yet")]
    SaleNotStarted { starts_at: String },
    #[error("the sale has ended")]
    SaleEnded,
    #[error("the sale is sold out")]
    SoldOut,
    #[error("this user already bought an item in this sale")]
    AlreadyPurchased(Box<Purchase>),
    #[error("the service is busy; retry shortly")]
    Unavailable { retry_after_secs: u32 },
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable, machine-readable `code` of the problem body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::SaleNotFound => "sale_not_found",
            Self::PurchaseNotFound => "purchase_not_found",
            Self::SaleNotStarted { .. } => "sale_not_started",
            Self::SaleEnded => "sale_ended",
            Self::SoldOut => "sold_out",
            Self::AlreadyPurchased(_) => "already_purchased",
            Self::Unavailable { .. } => "temporarily_unavailable",
            Self::Internal => "internal_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest(_) => 400,
            Self::Unauthorized => 401,
            Self::Forbidden(_) | Self::SaleNotStarted { .. } | Self::SaleEnded => 403,
            Self::NotFound | Self::SaleNotFound | Self::PurchaseNotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::SoldOut | Self::AlreadyPurchased(_) => 409,
            Self::PayloadTooLarge { .. } => 413,
            Self::Internal => 500,
            Self::Unavailable { .. } => 503,
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidRequest(detail.into())
    }

    pub fn unavailable() -> Self {
        Self::Unavailable { retry_after_secs: 1 }
    }
}
