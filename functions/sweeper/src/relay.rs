//! Fetches a beacon round from drand relays: `GET {relay}/{chain hash}/public/{round}` with a
//! timeout, relay after relay until one answers with a signature that verifies. What it returns is
//! verified again by the draw; a relay is trusted for availability only.

use std::time::Duration;

use flash_sale::beacon::{self, BeaconRef, BeaconSource, BoxFuture};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The relays used when `DRAND_RELAYS` is not set: the League of Entropy's own and Cloudflare's.
pub const DEFAULT_RELAYS: &str = "https://api.drand.sh,https://drand.cloudflare.com";
/// How long one request to one relay may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read (a beacon is about 300 bytes).
const MAX_BEACON_BYTES: usize = 16 * 1024;

/// drand relays over HTTPS (and plain HTTP, for a fixture server on the loopback in tests).
#[derive(Clone)]
pub struct Relays {
    urls: Vec<String>,
    timeout: Duration,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl std::fmt::Debug for Relays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relays").field("urls", &self.urls).field("timeout", &self.timeout).finish()
    }
}

impl Relays {
    /// Relays at `urls` (`http://` or `https://`), each asked with `timeout`.
    pub fn new(urls: Vec<String>, timeout: Duration) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("no drand relay configured".into());
        }
        if let Some(bad) = urls.iter().find(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
            return Err(format!("a drand relay must be an http(s) URL: {bad}"));
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("no trusted roots for the drand relays: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { urls, timeout, client })
    }

    /// The relays of `DRAND_RELAYS` (comma-separated URLs; default [`DEFAULT_RELAYS`]).
    pub fn from_env() -> Result<Self, String> {
        let list = std::env::var("DRAND_RELAYS").unwrap_or_else(|_| DEFAULT_RELAYS.to_owned());
        let urls = list.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
        Self::new(urls, DEFAULT_TIMEOUT)
    }

    /// `GET url`: the body of a 200 answer, at most `max_bytes`, within the timeout.
    pub async fn get(&self, url: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let fetch = async {
            let answer = self.client.get(uri).await.map_err(|e| format!("{url}: {e}"))?;
            if answer.status() != hyper::StatusCode::OK {
                return Err(format!("{url}: HTTP {}", answer.status()));
            }
            let body = Limited::new(answer.into_body(), max_bytes).collect().await;
            body.map(|b| b.to_bytes().to_vec()).map_err(|e| format!("{url}: {e}"))
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| format!("{url}: no answer within {:?}", self.timeout))?
    }

    async fn fetch(&self, wanted: &BeaconRef) -> Result<Vec<u8>, String> {
        let mut failures = Vec::new();
        for relay in &self.urls {
            let url = wanted.url(relay);
            let signature = match self.get(&url, MAX_BEACON_BYTES).await {
                Ok(body) => beacon::parse_relay_answer(&body, wanted.round).map_err(|e| format!("{url}: {e}")),
                Err(e) => Err(e),
            };
            match signature.and_then(|s| wanted.verify(&s).map(|_| s).map_err(|e| format!("{url}: {e}"))) {
                Ok(signature) => return Ok(signature),
                Err(e) => failures.push(e),
            }
        }
        Err(failures.join("; "))
    }
}

impl BeaconSource for Relays {
    fn signature<'a>(&'a self, beacon: &'a BeaconRef) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(self.fetch(beacon))
    }
}
