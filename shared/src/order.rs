//! A purchase as the API shows it.

use serde::{Deserialize, Serialize};

/// A committed purchase (`POST /sales/{saleId}/purchases`, `GET …/purchases/{userId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purchase {
    pub sale_id: String,
    pub user_id: String,
    pub order_id: String,
    /// RFC 3339 UTC.
    pub purchased_at: String,
}
