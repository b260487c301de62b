//! The flash-sale domain shared by the `purchase`, `status` and `user-lookup` functions and the
//! `flash-sale-admin` CLI.
//!
//! Layout, from the rules inward to the edges:
//! - [`sale`], [`ids`], [`order`], [`clock`]: what a sale, an identifier and a purchase are; the
//!   sale window. Pure.
//! - `checkout`: the purchase use case (shard order, hints, conflict retries, refusals checked
//!   against the buyer's record), as [`App::purchase`].
//! - `app`: [`App`], what a function holds for its life, and the read use cases.
//! - [`error`]: [`AppError`], what a use case answers besides success.
//! - [`store`]: the DynamoDB table: items, the purchase transaction (sent outside the SDK's
//!   orchestrator) and the reading of its cancellation reasons, operator actions. [`keys`] spells
//!   the key formats.
//! - [`http`]: API Gateway events in, JSON and problem+json out; the only place that decides
//!   HTTP statuses.
//! - [`lambda`]: the one wiring point of a function binary. [`config`], [`aws`], [`telemetry`]:
//!   what it wires.

mod app;
pub mod aws;
mod checkout;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod ids;
pub mod keys;
pub mod lambda;
pub mod order;
mod orders;
pub mod queue;
pub mod room;
pub mod sale;
pub mod store;
pub mod telemetry;
pub mod time_fmt;

pub use app::App;
pub use checkout::PurchaseReport;
pub use error::AppError;
pub use orders::SweepReport;
