//! Integration tests of the flash sale against a real DynamoDB Local (see `support`).

mod concurrency;
mod contract;
mod events;
mod faults;
mod hardening;
mod hostile;
mod hot_keys;
mod iam_calls;
mod jwt;
mod malformed;
mod order_events;
mod orders;
mod process;
mod public_draw;
mod purchase;
mod refusal;
mod restart;
mod retry_quota;
mod room_variants;
mod store_errors;
mod sweeper;
mod variants;
mod waiting_room;
mod window;
