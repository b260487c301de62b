//! The scheduled function's outside reads: drand relays for the draw's beacon round (the only
//! HTTP client besides the AWS SDK's, linked only here and by the operator CLI).

mod relay;

pub use relay::{DEFAULT_RELAYS, Relays};

/// Largest public document read (a status, an entrant list of a few hundred thousand ids).
const MAX_PUBLIC_BYTES: usize = 256 * 1024 * 1024;

/// `GET url` for the operator CLI's public checks: the body of a 200 answer, within a minute.
pub async fn fetch_public(url: &str) -> Result<Vec<u8>, String> {
    Relays::new(vec![url.to_owned()], std::time::Duration::from_secs(60))?.get(url, MAX_PUBLIC_BYTES).await
}
