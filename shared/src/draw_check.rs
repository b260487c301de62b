//! The draw as the public sees it, and its check from public data alone: the sale's status
//! (`GET /sales/{saleId}`) and the published entrant list, without access to the table.
//! `flash-sale-admin verify-draw --public` runs [`verify_public`].
//!
//! What is checked, in order:
//! 1. the operator's seed (`queue.drawSeed`) against its commitment (`queue.drawCommitment`,
//!    published at creation);
//! 2. the beacon: quicknet's chain, the round fixed by the sale's start (the first round after
//!    `startsAt` + [`crate::room::DRAW_GRACE_MS`]), and its BLS signature (`drand-verify`);
//! 3. the entrant list against `queue.entrantsRoot` (a Merkle root, see [`crate::merkle`]) and
//!    `queue.entrantCount`;
//! 4. every place of the list against the order recomputed from the effective seed.

use serde::{Deserialize, Serialize};

use crate::beacon::{self, BeaconRef};
use crate::merkle;
use crate::room;
use crate::time_fmt::parse_rfc3339_ms;

/// The sale status's `queue.beacon`: which round the draw uses (from creation), and once drawn,
/// the round's signature and randomness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeaconView {
    pub chain_hash: String,
    pub round: u64,
    /// When the round is published (RFC 3339).
    pub published_at: String,
    /// Where a relay serves it: fetch and check it yourself.
    pub url: String,
    /// The round's BLS signature (hex), once the draw used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// SHA-256 of the signature (hex), once the draw used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub randomness: Option<String>,
}

impl BeaconView {
    pub fn new(beacon: &BeaconRef, signature: Option<&[u8]>) -> Self {
        Self {
            chain_hash: beacon.chain_hash.clone(),
            round: beacon.round,
            published_at: crate::time_fmt::rfc3339_ms(beacon.published_at_ms()),
            url: beacon.url(beacon::DEFAULT_RELAY),
            signature: signature.map(hex::encode),
            randomness: signature.map(|s| hex::encode(drand_verify::derive_randomness(s))),
        }
    }
}

/// One published entrant: the SHA-256 of their user id (hex) and their place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedEntrant {
    pub place: i64,
    pub id: String,
}

/// The sealed pre-queue as published (`flash-sale-admin export-entrants`), in place order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntrantList {
    pub sale_id: String,
    pub entrants_root: String,
    pub entrants: Vec<PublishedEntrant>,
}

impl EntrantList {
    /// The list of `places` (user id, place) of `sale_id`.
    pub fn new(sale_id: &str, places: &[(String, i64)]) -> Self {
        let mut entrants: Vec<PublishedEntrant> = places
            .iter()
            .map(|(user, place)| PublishedEntrant { place: *place, id: hex::encode(beacon::entrant_id(user)) })
            .collect();
        entrants.sort_by_key(|e| e.place);
        let ids: Vec<merkle::Hash> = places.iter().map(|(u, _)| beacon::entrant_id(u)).collect();
        Self { sale_id: sale_id.to_owned(), entrants_root: hex::encode(merkle::root(&ids)), entrants }
    }
}

/// One page of a drawn pre-queue's published list (`GET /sales/{saleId}/entrants/{page}`):
/// the SHA-256 ids (hex) of places `firstPlace`, `firstPlace` + 1, … in place order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntrantPage {
    pub sale_id: String,
    pub page: u32,
    pub pages: u32,
    pub entrant_count: i64,
    pub entrants_root: String,
    pub first_place: i64,
    pub entrants: Vec<String>,
}

impl EntrantList {
    /// The whole list from every page of it, in order; refuses pages that do not fit together
    /// (another sale or root, a page missing or repeated, places that do not follow on).
    pub fn from_pages(pages: &[EntrantPage]) -> Result<Self, String> {
        let first = pages.first().ok_or("no page")?;
        if usize::try_from(first.pages).ok() != Some(pages.len()) {
            return Err(format!("{} pages given; the list has {}", pages.len(), first.pages));
        }
        let mut entrants = Vec::new();
        for (n, page) in (0u32..).zip(pages) {
            let same = page.sale_id == first.sale_id
                && page.entrants_root == first.entrants_root
                && page.pages == first.pages
                && page.entrant_count == first.entrant_count;
            if !same || page.page != n {
                return Err(format!("page {} does not belong at {n} of this list", page.page));
            }
            if page.first_place != i64::try_from(entrants.len()).unwrap_or(i64::MAX) + 1 {
                return Err(format!("page {n} starts at place {}, not {}", page.first_place, entrants.len() + 1));
            }
            entrants.extend(
                page.entrants
                    .iter()
                    .zip(page.first_place..)
                    .map(|(id, place)| PublishedEntrant { place, id: id.clone() }),
            );
        }
        if i64::try_from(entrants.len()).ok() != Some(first.entrant_count) {
            return Err(format!("the pages hold {} entrants; they say {}", entrants.len(), first.entrant_count));
        }
        Ok(Self { sale_id: first.sale_id.clone(), entrants_root: first.entrants_root.clone(), entrants })
    }
}

/// A person's proof that their id is in the sealed list (`GET /sales/{saleId}/queue/{userId}`
/// after the draw): an RFC 9162 audit path of the leaf at `index` of `size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    /// SHA-256 of the user id (hex).
    pub id: String,
    /// The id's index in the list sorted by id.
    pub index: u64,
    pub size: u64,
    pub path: Vec<String>,
}

impl InclusionProof {
    /// Checks the proof against `root` (hex).
    pub fn verify(&self, root: &str) -> bool {
        let hash = |h: &str| hex::decode(h).ok().and_then(|b| <merkle::Hash>::try_from(b).ok());
        let (Some(id), Some(root)) = (hash(&self.id), hash(root)) else { return false };
        let Some(path) = self.path.iter().map(|p| hash(p)).collect::<Option<Vec<_>>>() else { return false };
        merkle::verify_inclusion(&id, self.index, self.size, &path, &root)
    }
}

/// What [`verify_public`] checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicDrawReport {
    pub sale_id: String,
    pub commitment: String,
    pub round: u64,
    pub randomness: String,
    pub effective_seed: String,
    pub entrants_root: String,
    pub entrants: usize,
    pub places_matching: usize,
}

/// The parts of the sale status the check reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    sale_id: String,
    starts_at: String,
    queue: Option<Queue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Queue {
    draw_commitment: String,
    draw_seed: Option<String>,
    beacon: Option<BeaconView>,
    entrants_root: Option<String>,
    entrant_count: Option<u64>,
}

fn bytes32(what: &str, text: &str) -> Result<[u8; 32], String> {
    hex::decode(text).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| format!("{what} is not 32 bytes of hex"))
}

/// Checks a drawn sale from its public status (the JSON of `GET /sales/{saleId}`) and its
/// published entrant list. `Err` says what does not hold.
pub fn verify_public(status: &serde_json::Value, list: &EntrantList) -> Result<PublicDrawReport, String> {
    let status: Status = serde_json::from_value(status.clone()).map_err(|e| format!("not a sale status: {e}"))?;
    let queue = status.queue.ok_or("this sale has no waiting room")?;
    // 1. The operator's seed, committed to at creation.
    let seed = queue.draw_seed.ok_or("the draw seed is not revealed yet: the pre-queue is not drawn")?;
    let seed = hex::decode(&seed).map_err(|_| "the draw seed is not hex")?;
    if room::commitment(&seed) != queue.draw_commitment {
        return Err(format!("the revealed seed does not match the published commitment {}", queue.draw_commitment));
    }
    // 2. The beacon: the round the sale's start fixed, signed by quicknet.
    let view = queue.beacon.ok_or("this sale's draw has no public beacon: only `verify-draw --sale-id` checks it")?;
    let starts_at = parse_rfc3339_ms(&status.starts_at)?;
    let due = BeaconRef::quicknet_after(starts_at + room::DRAW_GRACE_MS);
    if view.chain_hash != due.chain_hash || view.round != due.round {
        return Err(format!(
            "the beacon is round {} of chain {}; a sale starting at {} draws with round {} of quicknet",
            view.round, view.chain_hash, status.starts_at, due.round
        ));
    }
    let signature = view.signature.ok_or("the beacon's signature is not published yet")?;
    let signature = hex::decode(&signature).map_err(|_| "the beacon signature is not hex")?;
    let randomness = due.verify(&signature).map_err(|e| e.to_string())?;
    if view.randomness.as_deref().is_some_and(|r| r != hex::encode(randomness)) {
        return Err("the published randomness is not SHA-256 of the signature".into());
    }
    let effective = beacon::effective_seed(&seed, &randomness);
    // 3. The list against the root the status published.
    if list.sale_id != status.sale_id {
        return Err(format!("the entrant list is for sale {}, not {}", list.sale_id, status.sale_id));
    }
    let published_root = queue.entrants_root.ok_or("the status publishes no entrants root yet")?;
    let ids = list.entrants.iter().map(|e| bytes32("an entrant id", &e.id)).collect::<Result<Vec<_>, _>>()?;
    let root = hex::encode(merkle::root(&ids));
    if root != published_root || list.entrants_root != published_root {
        return Err(format!("the entrant list's Merkle root is {root}; the status publishes {published_root}"));
    }
    if queue.entrant_count.is_some_and(|n| usize::try_from(n).ok() != Some(ids.len())) {
        return Err(format!("the list has {} entrants; the status says {:?}", ids.len(), queue.entrant_count));
    }
    // 4. Every place, recomputed.
    let places: std::collections::HashMap<merkle::Hash, i64> =
        beacon::order(&effective, &ids).into_iter().zip(1..).collect();
    let wrong: Vec<&PublishedEntrant> =
        list.entrants.iter().zip(&ids).filter(|(e, id)| places.get(*id) != Some(&e.place)).map(|(e, _)| e).collect();
    if let Some(first) = wrong.first() {
        return Err(format!(
            "{} published places differ from the draw, e.g. {} at place {}",
            wrong.len(),
            first.id,
            first.place
        ));
    }
    Ok(PublicDrawReport {
        sale_id: status.sale_id,
        commitment: queue.draw_commitment,
        round: due.round,
        randomness: hex::encode(randomness),
        effective_seed: hex::encode(effective),
        entrants_root: root,
        entrants: ids.len(),
        places_matching: list.entrants.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time_fmt::rfc3339_ms;

    /// quicknet round 123 as published (`drand-verify`'s own test vector).
    const ROUND: u64 = 123;
    const SIGNATURE: &str =
        "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92";

    fn drawn() -> (serde_json::Value, EntrantList) {
        let seed = [3u8; 32];
        let starts_at = beacon::round_time_ms(ROUND) - room::DRAW_GRACE_MS - 1_000;
        let due = BeaconRef::quicknet_after(starts_at + room::DRAW_GRACE_MS);
        assert_eq!(due.round, ROUND);
        let signature = hex::decode(SIGNATURE).unwrap();
        let effective = beacon::effective_seed(&seed, &due.verify(&signature).unwrap());
        let users: Vec<String> = (0..25).map(|n| format!("person-{n}")).collect();
        let list = EntrantList::new("drop", &beacon::draw(&effective, &users));
        let status = serde_json::json!({
            "saleId": "drop", "startsAt": rfc3339_ms(starts_at),
            "queue": { "drawCommitment": room::commitment(&seed), "drawSeed": hex::encode(seed),
                       "beacon": BeaconView::new(&due, Some(&signature)),
                       "entrantsRoot": list.entrants_root, "entrantCount": 25 }
        });
        (status, list)
    }

    #[test]
    fn a_true_draw_verifies_from_public_data_and_any_altered_part_does_not() {
        let (status, list) = drawn();
        let report = verify_public(&status, &list).unwrap();
        assert_eq!((report.entrants, report.places_matching, report.round), (25, 25, ROUND));

        let mut altered = list.clone();
        let replacement = if altered.entrants[4].id.starts_with("00") { "01" } else { "00" };
        altered.entrants[4].id.replace_range(0..2, replacement);
        assert!(verify_public(&status, &altered).unwrap_err().contains("Merkle root"));

        let mut swapped = list.clone();
        swapped.entrants[0].place = 2;
        swapped.entrants[1].place = 1;
        assert!(verify_public(&status, &swapped).unwrap_err().contains("places differ"));

        let mut other_seed = status.clone();
        other_seed["queue"]["drawSeed"] = serde_json::json!(hex::encode([4u8; 32]));
        assert!(verify_public(&other_seed, &list).unwrap_err().contains("commitment"));

        let mut later_round = status.clone();
        later_round["queue"]["beacon"]["round"] = serde_json::json!(ROUND + 1);
        assert!(verify_public(&later_round, &list).unwrap_err().contains("draws with round 123"));

        let mut forged = status.clone();
        let mut sig = hex::decode(SIGNATURE).unwrap();
        sig[10] ^= 1;
        forged["queue"]["beacon"]["signature"] = serde_json::json!(hex::encode(sig));
        assert!(verify_public(&forged, &list).unwrap_err().contains("does not verify"));
    }

    #[test]
    fn a_persons_proof_checks_against_the_published_root() {
        let users: Vec<String> = (0..11).map(|n| format!("person-{n}")).collect();
        let ids: Vec<merkle::Hash> = users.iter().map(|u| beacon::entrant_id(u)).collect();
        let tree = merkle::MerkleTree::new(&ids);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        let index = sorted.iter().position(|x| *x == beacon::entrant_id("person-7")).unwrap();
        let proof = InclusionProof {
            id: hex::encode(beacon::entrant_id("person-7")),
            index: index as u64,
            size: 11,
            path: tree.proof(index).unwrap().iter().map(hex::encode).collect(),
        };
        assert!(proof.verify(&hex::encode(tree.root())));
        assert!(!proof.verify(&hex::encode([0u8; 32])));
        let stranger = InclusionProof { id: hex::encode(beacon::entrant_id("mallory")), ..proof };
        assert!(!stranger.verify(&hex::encode(tree.root())));
    }
}
