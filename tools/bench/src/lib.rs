//! The benchmarks behind BENCHMARKS.md, as a library for the `bench`
//! binary. Run as `cargo run --release -p bench -- <subcommand>`.
//!
//! Everything here talks to 127.0.0.1 only: DynamoDB Local (given with `--endpoint`, or started
//! through `dynamodb-local` on a free port and stopped again), the function binaries and the
//! bench's own Lambda Runtime API. Every AWS client is `flash_sale::aws::local_client`, or its
//! configuration with only the HTTP client changed. Every loop is bounded in count and time.

pub mod canned;
pub mod capacity;
pub mod cpu;
pub mod first_response;
pub mod functions;
pub mod inprocess;
pub mod joins;
pub mod local;
pub mod rawtx;
/// The Lambda Runtime API the function binaries are run against (shared with the process tests).
pub use local_lambda as runtime_api;
pub mod stats;
pub mod tls;
