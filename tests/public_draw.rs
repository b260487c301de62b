//! A waiting room drawn with a public drand beacon: the scheduled function fetches the round
//! fixed at creation from a relay (the fixture server of recorded, real quicknet rounds), refuses
//! one whose signature does not verify, and the draw is then checked from the sale's status and
//! its published entrant list alone.

use std::time::Duration;

use flash_sale::beacon::{QUICKNET_CHAIN_HASH, entrant_id, round_time_ms};
use flash_sale::draw_check::{EntrantList, EntrantPage, InclusionProof, verify_public};
use flash_sale::room::DRAW_GRACE_MS;
use flash_sale_testkit::drand::{DrandFixtureServer, quicknet_signature};
use flash_sale_testkit::{SaleSpec, TestApp, read};
use serde_json::Value;

const HOUR: i64 = 3_600_000;
/// A recorded quicknet round; the sales below start so that it is the round due at their seal.
const ROUND: u64 = 123;

/// A room sale whose beacon round is [`ROUND`], on a clock before it opens, with `people` joined.
async fn beacon_room(people: usize) -> (TestApp, String, Vec<String>) {
    let start = round_time_ms(ROUND) - DRAW_GRACE_MS - 1_000;
    let app = TestApp::fresh().await.at(start - 60_000).admission();
    let (sale, _) = SaleSpec::new().stock(5).window(start, start + HOUR).public_beacon().create_room(&app).await;
    let id = sale.id.to_string();
    let beacon = &app.view(&id).await["queue"]["beacon"];
    assert_eq!((beacon["round"].as_u64(), beacon["chainHash"].as_str()), (Some(ROUND), Some(QUICKNET_CHAIN_HASH)));
    assert!(beacon.get("signature").is_none(), "no signature before the draw: {beacon}");
    let users: Vec<String> = (0..people).map(|n| format!("early-{n}")).collect();
    for u in &users {
        assert_eq!(app.post_queue(&id, u).await.0, 200);
    }
    (app, id, users)
}

fn relays(server: &DrandFixtureServer) -> sweeper::Relays {
    sweeper::Relays::new(vec![server.url().to_owned()], Duration::from_secs(5)).expect("relays")
}

#[tokio::test]
async fn a_beacon_draw_is_checked_from_the_status_and_the_published_list_alone() {
    let (app, id, users) = beacon_room(12).await;
    let server = DrandFixtureServer::start().await;
    let sweeper = app.container();
    // Sealed, but the round is not published yet: nothing is fetched, the room is drawing.
    app.clock().set(round_time_ms(ROUND) - 500);
    assert_eq!(app.view(&id).await["queue"]["state"], "drawing");
    assert!(sweeper.draw_due_rooms_with(&relays(&server)).await.unwrap().is_empty());
    assert_eq!(server.requests(), 0);
    // Published: requests still leave the draw to the scheduled function, which fetches it.
    app.clock().set(round_time_ms(ROUND) + 1_000);
    assert_eq!(app.view(&id).await["queue"]["state"], "drawing");
    assert_eq!(sweeper.draw_due_rooms_with(&relays(&server)).await.unwrap(), vec![id.clone()]);
    assert_eq!(server.requests(), 1);
    app.clock().advance(1_000);
    let status = app.view(&id).await;
    assert_eq!(status["queue"]["state"], "admitting", "{status}");
    assert_eq!(status["queue"]["beacon"]["signature"].as_str(), Some(quicknet_signature(ROUND)));
    assert_eq!(status["queue"]["entrantCount"], 12);

    let list = app.store().entrant_list(&flash_sale::ids::SaleId::parse(&id).unwrap()).await.unwrap();
    let report = verify_public(&status, &list).unwrap_or_else(|e| panic!("{e}\n{status}"));
    assert_eq!((report.entrants, report.places_matching), (12, 12));
    let published = serde_json::to_string(&list).unwrap();
    for u in &users {
        assert!(!published.contains(u.as_str()), "the list never holds a user id");
        // Everyone's place is the one the published list gives their id, with a proof of it.
        let (_, me) = app.get_queue(&id, u).await;
        let mine = list.entrants.iter().find(|e| e.id == hex(&entrant_id(u))).expect("listed");
        assert_eq!(me["position"].as_i64(), Some(mine.place), "{u}: {me}");
        let proof: InclusionProof = serde_json::from_value(me["entrantProof"].clone()).expect("a proof");
        assert!(proof.verify(status["queue"]["entrantsRoot"].as_str().unwrap()), "{u}");
    }

    // One published entrant id changed: the list no longer hashes to the root.
    let mut altered: EntrantList = list.clone();
    let first = altered.entrants[0].id.remove(0);
    altered.entrants[0].id.insert(0, if first == '0' { '1' } else { '0' });
    assert!(verify_public(&status, &altered).unwrap_err().contains("Merkle root"));
    // One place changed (two people swapped): the recomputed order disagrees.
    let mut swapped = list.clone();
    swapped.entrants.swap(0, 1);
    (swapped.entrants[0].place, swapped.entrants[1].place) = (1, 2);
    assert!(verify_public(&status, &swapped).unwrap_err().contains("places differ"));
    // Another round's signature in the status is refused.
    let mut forged: Value = status.clone();
    forged["queue"]["beacon"]["signature"] = Value::from(quicknet_signature(657_413));
    assert!(verify_public(&forged, &list).unwrap_err().contains("does not verify"));
}

#[tokio::test]
async fn the_api_publishes_the_drawn_list_once_the_draw_is_complete_and_it_checks_alone() {
    let (app, id, users) = beacon_room(7).await;
    let sweeper = app.container();
    // Before the draw: nothing published, and the answer is not kept by any cache.
    let early = app.get_entrants(&id, "0").await;
    assert_eq!((early.status_code, read(&early).1["code"].as_str()), (404, Some("not_found")), "{}", early.body);
    assert_eq!(early.header("cache-control"), Some("no-store"));
    app.clock().set(round_time_ms(ROUND) + 1_000);
    let server = DrandFixtureServer::start().await;
    assert_eq!(sweeper.draw_due_rooms_with(&relays(&server)).await.unwrap(), vec![id.clone()]);
    app.clock().advance(1_000);

    // Drawn: one page (7 < 10,000), every entrant's id at its place, kept for good by caches.
    let answer = app.get_entrants(&id, "0").await;
    assert_eq!(answer.status_code, 200, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("public, max-age=31536000, immutable"));
    let page: EntrantPage = serde_json::from_str(&answer.body).unwrap();
    assert_eq!((page.page, page.pages, page.entrant_count, page.first_place), (0, 1, 7, 1));
    assert!(!answer.body.contains("early-"), "ids only, never a user id");
    for u in &users {
        let (_, me) = app.get_queue(&id, u).await;
        let at = page.entrants.iter().position(|e| *e == hex(&entrant_id(u))).expect("listed");
        assert_eq!(me["position"].as_i64(), Some(page.first_place + at as i64), "{u}");
    }
    // The published list alone (no table) checks against the status, and it is the operator's export.
    let status = app.view(&id).await;
    let list = EntrantList::from_pages(std::slice::from_ref(&page)).unwrap();
    let report = verify_public(&status, &list).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.entrants, report.places_matching), (7, 7));
    let exported = app.store().entrant_list(&flash_sale::ids::SaleId::parse(&id).unwrap()).await.unwrap();
    assert_eq!(list, exported);

    // No such page; not a page number; a room without a public beacon; no such sale.
    assert_eq!(read(&app.get_entrants(&id, "1").await).1["code"], "not_found");
    for bad in ["x", "-1", "1e3", "0000001", "99999999999"] {
        let got = app.get_entrants(&id, bad).await;
        assert_eq!((got.status_code, read(&got).1["code"].as_str()), (400, Some("invalid_request")), "{bad}");
    }
    let (plain, _) = SaleSpec::new().stock(1).create_room(&app).await;
    assert_eq!(read(&app.get_entrants(&plain, "0").await).1["code"], "no_public_draw");
    assert_eq!(read(&app.get_entrants("nope", "0").await).1["code"], "sale_not_found");
}

#[test]
fn pages_fit_together_only_in_their_order_and_all_of_them() {
    let page = |n: u32, first: i64, ids: &[&str]| EntrantPage {
        sale_id: "s".into(),
        page: n,
        pages: 2,
        entrant_count: 3,
        entrants_root: "r".into(),
        first_place: first,
        entrants: ids.iter().map(|s| (*s).to_owned()).collect(),
    };
    let (a, b) = (page(0, 1, &["a", "b"]), page(1, 3, &["c"]));
    let list = EntrantList::from_pages(&[a.clone(), b.clone()]).unwrap();
    let places: Vec<(i64, &str)> = list.entrants.iter().map(|e| (e.place, e.id.as_str())).collect();
    assert_eq!(places, [(1, "a"), (2, "b"), (3, "c")]);
    assert!(EntrantList::from_pages(&[b.clone(), a.clone()]).is_err(), "out of order");
    assert!(EntrantList::from_pages(std::slice::from_ref(&a)).is_err(), "a page missing");
    assert!(EntrantList::from_pages(&[a.clone(), page(1, 4, &["c"])]).is_err(), "a gap in the places");
    let mut other = b.clone();
    other.entrants_root = "q".into();
    assert!(EntrantList::from_pages(&[a.clone(), other]).is_err(), "another list's page");
    assert!(EntrantList::from_pages(&[a, page(1, 3, &["c", "d"])]).is_err(), "more entrants than the count");
}

#[tokio::test]
async fn a_beacon_that_does_not_verify_or_does_not_come_leaves_the_room_drawing() {
    let (app, id, users) = beacon_room(3).await;
    app.clock().set(round_time_ms(ROUND) + 1_000);
    let sweeper = app.container();
    // A relay answering the round with one byte of the real signature changed.
    let mut sig = quicknet_signature(ROUND).to_owned();
    let last = sig.pop().unwrap();
    sig.push(if last == '0' { '1' } else { '0' });
    let tampered = DrandFixtureServer::serving(vec![(ROUND, sig)]).await;
    assert!(sweeper.draw_due_rooms_with(&relays(&tampered)).await.unwrap().is_empty());
    assert_eq!(tampered.requests(), 1);
    // A relay that does not know the round, and one that is not there.
    let empty = DrandFixtureServer::serving(Vec::new()).await;
    assert!(sweeper.draw_due_rooms_with(&relays(&empty)).await.unwrap().is_empty());
    let gone = format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let nowhere = sweeper::Relays::new(vec![gone], Duration::from_secs(2)).unwrap();
    assert!(sweeper.draw_due_rooms_with(&nowhere).await.unwrap().is_empty());
    app.clock().advance(1_000);
    let status = app.view(&id).await;
    assert_eq!(status["queue"]["state"], "drawing", "never a draw without the beacon: {status}");
    assert!(status["queue"].get("drawSeed").is_none());
    assert_eq!(app.get_queue(&id, &users[0]).await.1["position"], Value::Null);
    // Once a relay serves the true round, the draw happens.
    let good = DrandFixtureServer::start().await;
    let both =
        sweeper::Relays::new(vec![empty.url().to_owned(), good.url().to_owned()], Duration::from_secs(5)).unwrap();
    assert_eq!(sweeper.draw_due_rooms_with(&both).await.unwrap(), vec![id.clone()]);
    app.clock().advance(1_000);
    assert_eq!(app.view(&id).await["queue"]["state"], "admitting");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The storefront checks a buyer's `entrantProof` in the browser (web/src/draw.ts) against the
/// proofs this crate makes: web/src/fixtures/entrant-proofs.json is this tree, kept equal here
/// (`UPDATE_FIXTURES=1` rewrites it).
#[test]
fn the_storefronts_proof_vectors_are_the_crates() {
    use flash_sale::merkle::MerkleTree;
    let users = ["ann", "bo", "cy", "dee", "eve", "fay", "gus"];
    let mut ids: Vec<([u8; 32], &str)> = users.iter().map(|u| (entrant_id(u), *u)).collect();
    ids.sort_unstable();
    let tree = MerkleTree::new(&ids.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    let root = hex(&tree.root());
    let entrants: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(index, (id, user))| {
            let proof = InclusionProof {
                id: hex(id),
                index: index as u64,
                size: users.len() as u64,
                path: tree.proof(index).unwrap().iter().map(|h| hex(h)).collect(),
            };
            assert!(proof.verify(&root), "{user}");
            serde_json::json!({ "userId": user, "proof": proof })
        })
        .collect();
    let vector =
        serde_json::to_string_pretty(&serde_json::json!({ "root": root, "entrants": entrants })).unwrap() + "\n";
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/src/fixtures/entrant-proofs.json");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&file, &vector).unwrap();
    }
    let stored = std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(stored, vector, "{} differs from the crate's proofs: rerun with UPDATE_FIXTURES=1", file.display());
}
