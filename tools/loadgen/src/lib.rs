//! The flash-sale load generator as a library, so that everything but the wiring is testable.
//!
//! - [`target`]: which base URLs may receive load (loopback or explicit https, else refused).
//! - [`plan`]: who attempts in which order: U users, N attempts, a duplicate share, a seed.
//! - [`attempt`]: one attempt as sent and answered, and what its reply means.
//! - [`fairness`]: of the first K arrivals that could have won, how many did.
//! - [`ramp`]: stages of ramping virtual users (`10s:100,20s:1000,10s:0`), users wanted at a time.
//! - [`room`]: what a waiting-room run shows (FIFO fidelity, tokens, admission order).
//! - [`verify`]: the invariants over replies, stored purchases and shard stock, and those of a
//!   sale with variants or several items per customer.
//! - [`table`]: the stored state of such a sale, read back (I/O).
//! - [`report`]: counts, latency percentiles, the human summary and the JSON document.
//! - [`load`]: the HTTP side: client, warm-up, closed loop, open loop and ramp drivers (the only
//!   I/O here).
//!
//! All but [`load`] and [`table`] are pure and synchronous.

pub mod attempt;
pub mod fairness;
pub mod load;
pub mod plan;
pub mod ramp;
pub mod report;
pub mod room;
pub mod table;
pub mod target;
pub mod verify;
