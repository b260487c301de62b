//! Integration tests of the flash sale against a real DynamoDB Local (see `support`).

mod concurrency;
mod events;
mod jwt;
mod malformed;
mod purchase;
mod window;
