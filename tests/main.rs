//! Integration tests of the flash sale against a real DynamoDB Local (see `support`).

mod concurrency;
mod events;
mod faults;
mod hostile;
mod jwt;
mod malformed;
mod purchase;
mod restart;
mod window;
