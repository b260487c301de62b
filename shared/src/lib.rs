//! The flash-sale domain shared by the `purchase`, `status` and `user-lookup` functions and the
//! `flash-sale-admin` CLI.
//!
//! - [`sale`], [`ids`], [`purchase`], [`clock`]: pure rules (sale window and state, identifiers,
//!   what a cancelled transaction means). No I/O.
//! - [`store`]: the single DynamoDB table: items, the purchase transaction, admin operations.
//! - [`app`]: the use cases (purchase, status, lookup) with their per-container hints.
//! - [`http`]: API Gateway requests in, JSON / problem+json responses out; the one place where
//!   errors become HTTP.
//! - [`config`], [`aws`], [`telemetry`]: start-up wiring for the Lambda binaries.

pub mod app;
pub mod aws;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod identity;
pub mod lambda;
pub mod ids;
pub mod keys;
pub mod purchase;
pub mod sale;
pub mod store;
pub mod telemetry;
pub mod time_fmt;

pub use app::App;
pub use error::ApiError;
