//! The flash-sale domain shared by the seven functions (`purchase`, `status`, `user-lookup`,
//! `queue`, `orders` behind the HTTP API; `sweeper` on a schedule; `order-events` on the table's
//! stream) and the `flash-sale-admin` CLI.
//!
//! One layer line, each layer using only those above it (no import cycles; a test keeps it so):
//! 1. Rules, pure: [`ids`], [`clock`], [`time_fmt`], [`keys`] (key formats and index names),
//!    [`order`], [`beacon`] (the draw's public drand round), [`merkle`] (the entrant list's
//!    root), [`sale`] (window, state, public view), [`room`] (the waiting room's rules,
//!    admission tokens, the draw), [`draw_check`] (the draw checked from public data),
//!    [`error`] ([`AppError`], what a use case answers besides success).
//! 2. [`store`]: the DynamoDB table: items, the purchase transaction and the reading of its
//!    cancellation reasons, the room's and the orders' items, operator actions.
//! 3. Use cases, each owning the per-container cache it needs: `catalog` (sale configuration),
//!    `stock_hint` (the sold-out hint), `waiting_room` (room snapshots, place blocks, the admission
//!    check), `orders` (confirm, cancel, hold releases; the hold horizon), `checkout` (the
//!    purchase). [`telemetry`] records their metrics.
//! 4. [`App`]: assembles the use cases for one container and composes the sale status.
//! 5. Edges: [`http`] (API Gateway events in, JSON and problem+json out; the only place that
//!    decides HTTP statuses), [`lambda`] (the one wiring point of a function binary), [`config`],
//!    [`aws`] and [`admission_key`] (what it wires: settings, clients, the admission keys read
//!    from their secret).
//!
//! Words: a sale's *waiting room* (`room`) gives each person one *place*; the API keeps its
//! published names (`/queue` routes, `position`, `not_in_line`).

#![deny(unreachable_pub)]

pub mod admission_key;
mod app;
pub mod aws;
pub mod beacon;
mod catalog;
mod checkout;
pub mod clock;
pub mod config;
pub mod draw_check;
pub mod error;
pub mod http;
pub mod ids;
pub mod keys;
pub mod lambda;
pub mod merkle;
pub mod order;
mod orders;
pub mod room;
pub mod sale;
mod stock_hint;
pub mod store;
pub mod telemetry;
pub mod time_fmt;
mod waiting_room;

pub use app::{App, SaleStatus, ScheduledReport};
pub use checkout::PurchaseReport;
pub use error::AppError;
pub use orders::{FAILED_SWEEPS_BEFORE_ASIDE, SweepReport};
pub use store::EPOCH_LEASE;
pub use waiting_room::{PlaceView, RoomPhase, RoomView};
