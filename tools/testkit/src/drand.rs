//! A drand relay fixture server on 127.0.0.1: answers `GET /{chain hash}/public/{round}` from
//! recorded quicknet rounds, as `api.drand.sh` does, so the sweeper's real HTTP fetch and the
//! draw's real BLS check run in tests without the internet. It is a stand-in for what no local
//! component produces (a drand network); the rounds it serves are real, published ones unless a
//! test alters them on purpose.

use flash_sale::beacon::QUICKNET_CHAIN_HASH;

use crate::fixture_http::FixtureHttpServer;

/// Real quicknet rounds as published (round, signature hex): round 123 is `drand-verify`'s own
/// test vector (`https://api3.drand.sh/52db…e971/public/123`).
pub const QUICKNET_ROUNDS: &[(u64, &str)] = &[
    (123, "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92"),
    (657_413, "b713718a38ae728dfd477991af2822e08d2f305e47718cef9f7848ce4050e7be41076862b98fad56e91a6b85b89cd97b"),
];

/// The recorded signature of `round`, hex.
pub fn quicknet_signature(round: u64) -> &'static str {
    QUICKNET_ROUNDS.iter().find(|(r, _)| *r == round).map(|(_, s)| *s).expect("a recorded quicknet round")
}

/// The fixture relay; stops when dropped.
pub struct DrandFixtureServer {
    server: FixtureHttpServer,
}

impl DrandFixtureServer {
    /// Serves every recorded round of [`QUICKNET_ROUNDS`].
    pub async fn start() -> Self {
        Self::serving(QUICKNET_ROUNDS.iter().map(|(r, s)| (*r, (*s).to_owned())).collect()).await
    }

    /// Serves exactly `rounds` (round, signature hex): a test may put an altered signature here.
    pub async fn serving(rounds: Vec<(u64, String)>) -> Self {
        // A relay also sends `randomness`; the draw derives it from the signature.
        let files = rounds
            .into_iter()
            .map(|(round, sig)| {
                (
                    format!("/{QUICKNET_CHAIN_HASH}/public/{round}"),
                    format!(r#"{{"round":{round},"signature":"{sig}"}}"#),
                )
            })
            .collect();
        Self { server: FixtureHttpServer::serving(files).await }
    }

    /// `http://127.0.0.1:{port}`: the relay URL to configure.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.server.requests()
    }
}
