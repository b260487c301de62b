//! The deployment checked against the code, with neither AWS nor DynamoDB: facts come from the
//! crate (its key functions, its handlers' answers, the requests its store sends to a fake
//! DynamoDB, the metrics it records), not from reading its source text.
//!
//! - `routes`: the template's routes are the local router's and docs/api.md's; user routes sit
//!   behind the JWT authorizer.
//! - `openapi`: docs/openapi.yaml has the same routes and documents every problem code.
//! - `iam`: each function's IAM statements, evaluated like IAM does against the table's keys.
//! - `stack`: the table and the functions' runtime settings.
//! - `cdn`: CloudFront serves the page from a private bucket, never caches purchases or lookups
//!   and caches status for about a second.
//! - `edge`: the WAF web ACL and the way CloudFront becomes the only way into the API.
//! - `dashboard`, `samconfig`, `lint`: metrics charted, deploy configuration, cfn-lint.
//! - `runbook`: every alarm has an entry in docs/operations.md saying what to do.
//! - `features`: the functions in the test build have the features they ship with.

mod cdn;
mod common;
mod dashboard;
mod edge;
mod fake_dynamodb;
mod features;
mod iam;
mod lint;
mod openapi;
mod routes;
mod runbook;
mod samconfig;
mod stack;
