//! The public half of the waiting room's draw: a drand beacon round (League of Entropy,
//! `quicknet`) fixed at the sale's creation, whose value nobody knows until after the pre-queue
//! is sealed. Pure rules: which round, how its signature is checked (the `drand-verify` crate, no
//! BLS of our own), how the operator's seed and the beacon make the draw's seed, and how the
//! order follows from the published entrant list alone.
//!
//! - **Round.** The first quicknet round published strictly after the seal time (`startsAt` +
//!   [`crate::room::DRAW_GRACE_MS`]): [`round_after`].
//! - **Effective seed.** SHA-256(operator seed ‖ beacon randomness), where the randomness is
//!   SHA-256(signature) as drand defines it.
//! - **Entrant id.** SHA-256(user id), published as hex instead of the id.
//! - **Order.** Place = rank of SHA-256(effective seed ‖ entrant id), ties (never seen) by the id:
//!   the published list of entrant ids is all it takes to recompute it.
//!
//! The fetch is not here: [`BeaconSource`] is implemented where only the scheduled function links
//! it (`functions/sweeper`), so the request functions carry no HTTP client of their own.

use std::future::Future;
use std::pin::Pin;

use drand_verify::{G2PubkeyRfc, Pubkey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// quicknet's chain hash (`https://api.drand.sh/52db…e971/info`).
pub const QUICKNET_CHAIN_HASH: &str = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971";
/// quicknet's group public key (a G2 point; scheme `bls-unchained-g1-rfc9380`), as in the
/// `drand-verify` crate's own quicknet test.
pub const QUICKNET_PUBLIC_KEY: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
/// quicknet's genesis (round 1), epoch ms.
pub const QUICKNET_GENESIS_MS: i64 = 1_692_803_367_000;
/// One quicknet round every 3 s.
pub const QUICKNET_PERIOD_MS: i64 = 3_000;
/// The relay shown to people who want to fetch the round themselves.
pub const DEFAULT_RELAY: &str = "https://api.drand.sh";

/// The beacon round a sale's draw uses, fixed at creation and public from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeaconRef {
    pub chain_hash: String,
    pub round: u64,
}

/// Why a beacon is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("unknown beacon chain {0} (only quicknet is accepted)")]
    UnknownChain(String),
    #[error("the beacon signature does not verify for round {0} of quicknet")]
    BadSignature(u64),
    #[error("the relay's answer is not a beacon for round {round}: {why}")]
    BadAnswer { round: u64, why: String },
}

impl BeaconRef {
    /// The first quicknet round published strictly after `seal_ms`.
    pub fn quicknet_after(seal_ms: i64) -> Self {
        Self { chain_hash: QUICKNET_CHAIN_HASH.to_owned(), round: round_after(seal_ms) }
    }

    /// When the round is published (epoch ms).
    pub fn published_at_ms(&self) -> i64 {
        round_time_ms(self.round)
    }

    /// Where a relay serves the round: `{relay}/{chain hash}/public/{round}`.
    pub fn url(&self, relay: &str) -> String {
        format!("{}/{}/public/{}", relay.trim_end_matches('/'), self.chain_hash, self.round)
    }

    /// Checks `signature` for this round and chain; returns the round's randomness
    /// (SHA-256 of the signature).
    pub fn verify(&self, signature: &[u8]) -> Result<[u8; 32], BeaconError> {
        if self.chain_hash != QUICKNET_CHAIN_HASH {
            return Err(BeaconError::UnknownChain(self.chain_hash.clone()));
        }
        verify_with_key(QUICKNET_PUBLIC_KEY, self.round, signature)
    }
}

/// Checks an unchained (RFC 9380, signature on G1) beacon against the public key `key_hex`.
fn verify_with_key(key_hex: &str, round: u64, signature: &[u8]) -> Result<[u8; 32], BeaconError> {
    let key: [u8; 96] =
        hex::decode(key_hex).ok().and_then(|k| k.try_into().ok()).ok_or(BeaconError::BadSignature(round))?;
    let key = G2PubkeyRfc::from_fixed(key).map_err(|_| BeaconError::BadSignature(round))?;
    match key.verify(round, b"", signature) {
        Ok(true) => Ok(drand_verify::derive_randomness(signature)),
        _ => Err(BeaconError::BadSignature(round)),
    }
}

/// When quicknet publishes `round` (epoch ms).
pub fn round_time_ms(round: u64) -> i64 {
    let r = i64::try_from(round).unwrap_or(i64::MAX);
    QUICKNET_GENESIS_MS.saturating_add(r.saturating_sub(1).saturating_mul(QUICKNET_PERIOD_MS))
}

/// The first quicknet round published strictly after `ms`.
pub fn round_after(ms: i64) -> u64 {
    let since = (ms - QUICKNET_GENESIS_MS).max(-1);
    if since < 0 {
        return 1;
    }
    u64::try_from(since / QUICKNET_PERIOD_MS + 2).unwrap_or(u64::MAX)
}

/// Reads a relay's answer (`{"round": …, "signature": "<hex>", …}`) for `round`; the signature
/// still has to be verified.
pub fn parse_relay_answer(body: &[u8], round: u64) -> Result<Vec<u8>, BeaconError> {
    #[derive(Deserialize)]
    struct Answer {
        round: u64,
        signature: String,
    }
    let bad = |why: String| BeaconError::BadAnswer { round, why };
    let answer: Answer = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    if answer.round != round {
        return Err(bad(format!("it is round {}", answer.round)));
    }
    hex::decode(answer.signature.trim()).map_err(|e| bad(e.to_string()))
}

/// The draw's seed: SHA-256(operator seed ‖ beacon randomness).
pub fn effective_seed(operator_seed: &[u8], randomness: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(operator_seed);
    h.update(randomness);
    h.finalize().into()
}

/// An entrant's public identifier: SHA-256(user id).
pub fn entrant_id(user: &str) -> [u8; 32] {
    Sha256::digest(user.as_bytes()).into()
}

/// The draw value of an entrant: SHA-256(effective seed ‖ entrant id). Lower values come first.
fn draw_value(seed: &[u8; 32], id: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(id);
    h.finalize().into()
}

/// The pre-queue order from the entrant ids alone: the ids in place order (place = index + 1).
pub fn order(seed: &[u8; 32], ids: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut keyed: Vec<([u8; 32], [u8; 32])> = ids.iter().map(|id| (draw_value(seed, id), *id)).collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, id)| id).collect()
}

/// The places of `users` by the beacon draw: `(user, place)`.
pub fn draw(seed: &[u8; 32], users: &[String]) -> Vec<(String, i64)> {
    let mut keyed: Vec<([u8; 32], [u8; 32], &String)> = users
        .iter()
        .map(|u| {
            let id = entrant_id(u);
            (draw_value(seed, &id), id, u)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().zip(1..).map(|((_, _, u), place)| (u.clone(), place)).collect()
}

/// A boxed future, for the dyn-compatible [`BeaconSource`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the draw gets a beacon round's signature from (relays over HTTPS in the scheduled
/// function; a fixture server in tests). What it returns is verified before it is used, so a
/// source is trusted for availability only.
pub trait BeaconSource: Send + Sync {
    /// The signature of `beacon`'s round, or why none was had.
    fn signature<'a>(&'a self, beacon: &'a BeaconRef) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real quicknet rounds: `drand-verify`'s own test (round 123) and a published round.
    pub(crate) const FIXTURES: &[(u64, &str)] = &[
        (123, "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92"),
        (657_413, "b713718a38ae728dfd477991af2822e08d2f305e47718cef9f7848ce4050e7be41076862b98fad56e91a6b85b89cd97b"),
    ];

    fn quicknet(round: u64) -> BeaconRef {
        BeaconRef { chain_hash: QUICKNET_CHAIN_HASH.into(), round }
    }

    #[test]
    fn published_quicknet_rounds_verify() {
        for (round, sig) in FIXTURES {
            let sig = hex::decode(sig).unwrap();
            let randomness = quicknet(*round).verify(&sig).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(randomness, <[u8; 32]>::from(Sha256::digest(&sig)), "randomness is SHA-256(signature)");
        }
    }

    #[test]
    fn a_changed_byte_a_wrong_round_a_wrong_chain_or_key_is_refused() {
        let (round, sig) = FIXTURES[0];
        let sig = hex::decode(sig).unwrap();
        for i in [0, 17, 47] {
            let mut changed = sig.clone();
            changed[i] ^= 0x01;
            assert!(quicknet(round).verify(&changed).is_err(), "byte {i} changed");
        }
        assert_eq!(quicknet(round + 1).verify(&sig), Err(BeaconError::BadSignature(round + 1)));
        assert_eq!(quicknet(round - 1).verify(&sig), Err(BeaconError::BadSignature(round - 1)));
        let other_chain = BeaconRef { chain_hash: "00".repeat(32), round };
        assert!(matches!(other_chain.verify(&sig), Err(BeaconError::UnknownChain(_))));
        // Another network's key (the G2 key of drand-verify's RFC 9380 test vectors) refuses it,
        // and accepts its own round 3.
        let other_key = "a1ee12542360bf75742bcade13d6134e7d5283d9eb782887c47d3d9725f05805d37b0106b7f744395bf82c175dd7434a169e998f188a657a030d588892c0cd2c01f996aaf331c4d8bc5b9734bbe261d09e7d2d39ef88b635077f262bd7bbb30f";
        assert_eq!(verify_with_key(other_key, round, &sig), Err(BeaconError::BadSignature(round)));
        let own = hex::decode(
            "b98dae74f6a9d2ec79d75ba273dcfda86a45d589412860eb4c0fd056b00654dbf667c1b6884987c9aee0d43f8ba9db52",
        )
        .unwrap();
        assert!(verify_with_key(other_key, 3, &own).is_ok(), "the key itself works");
        let (_, second) = FIXTURES[1];
        assert!(quicknet(round).verify(&hex::decode(second).unwrap()).is_err(), "another round's signature");
        assert!(quicknet(round).verify(&[]).is_err());
    }

    #[test]
    fn the_round_is_the_first_published_strictly_after_the_seal() {
        assert_eq!(round_after(QUICKNET_GENESIS_MS), 2);
        assert_eq!(round_after(QUICKNET_GENESIS_MS + 1), 2);
        assert_eq!(round_after(QUICKNET_GENESIS_MS + 2_999), 2);
        assert_eq!(round_after(QUICKNET_GENESIS_MS + 3_000), 3);
        assert_eq!(round_after(0), 1);
        for ms in [QUICKNET_GENESIS_MS + 1_234_567, 1_800_000_000_000, 1_800_000_000_001] {
            let r = round_after(ms);
            assert!(round_time_ms(r) > ms && round_time_ms(r - 1) <= ms, "{ms}");
        }
        assert_eq!(round_time_ms(123), (1_692_803_367 + 122 * 3) * 1_000);
        assert_eq!(
            quicknet(5).url("https://api.drand.sh/"),
            format!("https://api.drand.sh/{QUICKNET_CHAIN_HASH}/public/5")
        );
    }

    #[test]
    fn relay_answers_are_read_for_their_round_only() {
        let body = br#"{"round":123,"randomness":"ab","signature":"b75c"}"#;
        assert_eq!(parse_relay_answer(body, 123).unwrap(), vec![0xb7, 0x5c]);
        assert!(parse_relay_answer(body, 124).is_err());
        assert!(parse_relay_answer(b"<html>", 123).is_err());
        assert!(parse_relay_answer(br#"{"round":123,"signature":"zz"}"#, 123).is_err());
    }

    #[test]
    fn once_the_beacon_is_fixed_the_order_follows_from_public_ids_and_no_operator_seed_chosen_before_it_decides_it() {
        let users: Vec<String> = (0..40).map(|n| format!("user-{n}")).collect();
        let ids: Vec<[u8; 32]> = users.iter().map(|u| entrant_id(u)).collect();
        let operator_seed = [7u8; 32];
        let [a, b] = [FIXTURES[0].1, FIXTURES[1].1].map(|s| drand_verify::derive_randomness(&hex::decode(s).unwrap()));
        let seed_a = effective_seed(&operator_seed, &a);
        // The same operator seed (committed at creation, before any beacon is known) with two
        // beacon values: two different orders. The beacon decides; the operator cannot aim.
        let order_a = order(&seed_a, &ids);
        assert_ne!(order_a, order(&effective_seed(&operator_seed, &b), &ids));
        // The order from the public ids equals the places written from the user ids.
        let places = draw(&seed_a, &users);
        for (user, place) in &places {
            assert_eq!(order_a[usize::try_from(*place - 1).unwrap()], entrant_id(user), "{user}");
        }
        // Arrival order does not matter.
        let mut reversed = ids.clone();
        reversed.reverse();
        assert_eq!(order(&seed_a, &reversed), order_a);
    }
}
