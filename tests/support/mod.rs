//! What only the tests of this package share: the deployment (`infra/*.yaml`, docs, Cargo.toml)
//! read as data. Everything else a test needs (a fresh table, sales, the functions called as API
//! Gateway calls them, the fault and recording proxies) is the `flash-sale-testkit` crate.

pub mod openapi;
pub mod template;
