//! The waiting-room use cases: join the room, see one's place, the admission check on the
//! purchase path, and keeping the admitted range moving (rules in [`crate::room`], items in
//! `store::room`).
//!
//! Words: the *room* is the sale's waiting room; a person in it has a *place* (drawn for the
//! pre-queue, by arrival after opening: the pre-queue's size plus their *place after opening*).
//! The API keeps its published names (the `/queue` routes, `position`, `not_in_line`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::admission_key::KeyRing;
use crate::beacon::{self, BeaconRef, BeaconSource};
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::Config;
use crate::draw_check::{BeaconView, InclusionProof};
use crate::error::AppError;
use crate::ids::{SaleId, UserId};
use crate::merkle::MerkleTree;
use crate::room::{self, PlaceState, RoomConfig, RoomState, TokenError};
use crate::sale::Sale;
use crate::store::{DrawLease, Joined, Marker, RoomEntry, Store, StoreError, logged};
use crate::time_fmt::rfc3339_ms;

/// How long a container trusts its copy of a room's state and the stock behind it.
const SNAPSHOT_TTL_MS: i64 = 1_000;
/// Longest a block of places after opening is handed out by one container: later arrivals never
/// get an earlier place than someone who arrived more than this before them.
const PLACE_BLOCK_LIFE_MS: i64 = 2_500;
/// Largest block: the places a container holds unused when its joins stop (each one an admission
/// nobody takes) stay few.
const MAX_PLACE_BLOCK: i64 = 250;

/// How old a copy of a room's state may be answered from while another request of the same
/// container refreshes it.
const STALE_SNAPSHOT_MS: i64 = 5_000;

/// A draw's lease: its writer renews it after every checkpoint; a writer that died is replaced
/// this long after its last one.
const DRAW_LEASE_MS: i64 = 30_000;
/// Places written between two stored checkpoints of a draw.
const DRAW_CHECKPOINT: usize = 2_000;
/// Time a request spends drawing at most (a pre-queue no larger than `request_draw_limit`); the
/// scheduled function's is `Tuning::draw_budget`.
const REQUEST_DRAW_BUDGET: Duration = Duration::from_secs(3);

/// Marks a room's refresh as in flight in this container; the mark goes when the guard does.
struct RefreshGuard<'a> {
    set: &'a Mutex<HashSet<SaleId>>,
    sale: Option<SaleId>,
}

impl<'a> RefreshGuard<'a> {
    /// The refresh of `sale`, unless one is in flight already.
    fn take(set: &'a Mutex<HashSet<SaleId>>, sale: &SaleId) -> Option<Self> {
        let mut refreshing = set.lock().unwrap_or_else(|p| p.into_inner());
        refreshing.insert(sale.clone()).then(|| Self { set, sale: Some(sale.clone()) })
    }

    /// A second refresh beside one in flight (there is no copy to answer from): marks nothing.
    fn shared(set: &'a Mutex<HashSet<SaleId>>, _sale: &SaleId) -> Self {
        Self { set, sale: None }
    }
}

impl Drop for RefreshGuard<'_> {
    fn drop(&mut self) {
        if let Some(sale) = self.sale.take() {
            self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&sale);
        }
    }
}

/// A room as a container last saw it.
#[derive(Debug, Clone)]
struct RoomSnapshot {
    state: RoomState,
    remaining: i64,
    /// When it was read, on the app's clock (so tests that move the clock move the cache too).
    fetched_at_ms: i64,
}

/// The room-snapshot cache of one container: each room's last copy, the rooms a request is
/// refreshing right now, and the purchase path's copy of each admitted range.
#[derive(Default)]
struct RoomSnapshots {
    rooms: Mutex<HashMap<SaleId, RoomSnapshot>>,
    refreshing: Mutex<HashSet<SaleId>>,
    /// (read at, admitted through), on the app's clock.
    admitted_seen: Mutex<HashMap<SaleId, (i64, i64)>>,
}

impl RoomSnapshots {
    /// The copy of `sale`'s room if it was read less than `max_age_ms` before `now`.
    fn get(&self, sale: &SaleId, now: i64, max_age_ms: i64) -> Option<RoomSnapshot> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(sale).filter(|s| (0..max_age_ms).contains(&(now - s.fetched_at_ms))).cloned()
    }

    fn put(&self, sale: &SaleId, snapshot: RoomSnapshot) {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).insert(sale.clone(), snapshot);
    }

    /// The admitted range the purchase path read less than `max_age_ms` before `now`.
    fn admitted(&self, sale: &SaleId, now: i64, max_age_ms: i64) -> Option<i64> {
        let mut seen = self.admitted_seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(sale) {
            Some(&(at, admitted)) if (0..max_age_ms).contains(&(now - at)) => Some(admitted),
            _ => {
                seen.remove(sale);
                None
            }
        }
    }

    fn saw_admitted(&self, sale: &SaleId, now: i64, admitted: i64) {
        self.admitted_seen.lock().unwrap_or_else(|p| p.into_inner()).insert(sale.clone(), (now, admitted));
    }
}

/// The place-block cache of one container: per sale, the places after opening it hands out.
#[derive(Default)]
struct PlaceBlocks(Mutex<HashMap<SaleId, Arc<PlaceSlot>>>);

impl PlaceBlocks {
    fn slot(&self, sale: &SaleId) -> Arc<PlaceSlot> {
        Arc::clone(self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(sale.clone()).or_default())
    }

    fn existing(&self, sale: &SaleId) -> Option<Arc<PlaceSlot>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(sale).cloned()
    }
}

/// A sale's places after opening in this container: the block being handed out, a spare taken
/// before it runs out, and a lock held by the one request that takes a block while others wait
/// for it.
#[derive(Debug, Default)]
struct PlaceSlot {
    blocks: Mutex<BlockPair>,
    taking: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct BlockPair {
    current: Option<PlaceBlock>,
    spare: Option<PlaceBlock>,
}

/// Places after opening this container may hand out (`next..=last` of `first..=last`), taken
/// from the sale's counter in blocks sized to what the container hands out in about two seconds.
#[derive(Debug, Clone)]
struct PlaceBlock {
    first: i64,
    next: i64,
    last: i64,
    /// When it was taken, on the app's clock (tests that hold the clock still hold it live).
    taken_at_ms: i64,
}

/// A block is sized to last this long at the rate its predecessor was handed out.
const PLACE_BLOCK_TARGET_MS: f64 = 1_800.0;
/// The next block is taken when the current one would run out within this, at its rate.
const PLACE_BLOCK_LEAD_MS: f64 = 400.0;
/// A rate is measured over at least this much of the clock (a clock held still measures none).
const PLACE_RATE_MIN_MS: i64 = 100;

impl PlaceBlock {
    fn new(first: i64, last: i64, taken_at_ms: i64) -> Self {
        Self { first, next: first, last, taken_at_ms }
    }

    fn live(&self, now_ms: i64) -> bool {
        (0..PLACE_BLOCK_LIFE_MS).contains(&(now_ms - self.taken_at_ms))
    }

    fn left(&self) -> i64 {
        (self.last - self.next + 1).max(0)
    }

    /// Places handed out per millisecond since it was taken, once that is long enough to tell.
    fn rate_per_ms(&self, now_ms: i64) -> Option<f64> {
        let age = now_ms - self.taken_at_ms;
        (age >= PLACE_RATE_MIN_MS).then(|| (self.next - self.first) as f64 / age as f64)
    }

    /// The size of the block after this one: about `PLACE_BLOCK_TARGET_MS` at this one's rate;
    /// without a rate yet, twice this one's size.
    fn next_size(&self, now_ms: i64) -> i64 {
        let size = match self.rate_per_ms(now_ms) {
            Some(rate) => (rate * PLACE_BLOCK_TARGET_MS).ceil() as i64,
            None => 2 * (self.last - self.first + 1),
        };
        size.clamp(1, MAX_PLACE_BLOCK)
    }

    /// Whether the next block should be taken now: this one runs out within
    /// `PLACE_BLOCK_LEAD_MS` at its rate (without a rate yet: once half of it is handed out).
    fn runs_out_soon(&self, now_ms: i64) -> bool {
        match self.rate_per_ms(now_ms) {
            Some(rate) => self.left() as f64 <= rate * PLACE_BLOCK_LEAD_MS,
            None => 2 * self.left() < self.last - self.first + 1,
        }
    }
}

/// What a request found in its sale's place blocks.
enum Found {
    /// A place after opening; `Some(size)`: this request should take the spare block, of that size.
    Place(i64, Option<i64>),
    /// No place left: a block of this size is needed.
    Empty(i64),
}

impl BlockPair {
    fn take(&mut self, now_ms: i64) -> Found {
        if !self.current.as_ref().is_some_and(|b| b.left() > 0 && b.live(now_ms))
            && let Some(spare) = self.spare.take().filter(|b| b.live(now_ms))
        {
            self.current = Some(spare);
        }
        match self.current.as_mut() {
            Some(b) if b.left() > 0 && b.live(now_ms) => {
                b.next += 1;
                // Take the next block before this one runs out, so nobody waits for it.
                let prefetch = (self.spare.is_none() && b.runs_out_soon(now_ms)).then(|| b.next_size(now_ms));
                Found::Place(b.next - 1, prefetch)
            }
            // Used up, or ended with places left: sized to the rate it was handed out at.
            Some(b) => Found::Empty(b.next_size(now_ms)),
            None => Found::Empty(1),
        }
    }
}

/// What settling a pre-queue entrant came to.
enum Settled {
    /// In the pre-queue (confirmed, or settled before): the draw places them.
    Stayed(RoomEntry),
    /// Left the pre-queue now, with the place after opening given or taken.
    Left(RoomEntry),
    /// Left it before, with a place after opening of their own (the place given is not used).
    Had(RoomEntry),
}

/// The sealed list's Merkle root (hex) and each entrant's inclusion proof, by user id.
fn entrant_proofs(entrants: &[String]) -> (String, Vec<(String, InclusionProof)>) {
    let mut sorted: Vec<([u8; 32], &String)> = entrants.iter().map(|u| (beacon::entrant_id(u), u)).collect();
    sorted.sort_unstable();
    let ids: Vec<[u8; 32]> = sorted.iter().map(|(id, _)| *id).collect();
    let tree = MerkleTree::new(&ids);
    let size = ids.len() as u64;
    let proofs = sorted
        .iter()
        .enumerate()
        .map(|(index, (id, user))| {
            let path = tree.proof(index).unwrap_or_default().iter().map(hex::encode).collect();
            ((*user).clone(), InclusionProof { id: hex::encode(id), index: index as u64, size, path })
        })
        .collect();
    (hex::encode(tree.root()), proofs)
}

/// Where a person stands: the answer of `POST /sales/{saleId}/queue` and
/// `GET /sales/{saleId}/queue/{userId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceView {
    pub sale_id: String,
    pub user_id: String,
    pub state: PlaceState,
    /// The place in the room; `null` for the pre-queue until the draw at opening.
    pub position: Option<i64>,
    pub ahead_of_you: Option<i64>,
    pub estimated_wait_seconds: Option<i64>,
    /// Present when admitted: send it as `admissionToken` with the purchase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_expires_at: Option<String>,
    /// Present when admitted: until then an item is set aside for this admission (the claim
    /// window); the token buys until the same moment (`admissionExpiresAt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_aside_until: Option<String>,
    /// Once a pre-queue with a public beacon is drawn: the proof that this person's id
    /// (SHA-256 of the user id) is in the sealed entrant list whose root the status shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrant_proof: Option<InclusionProof>,
}

/// Where a room is, as everyone sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomPhase {
    /// Before the pre-queue opens.
    NotOpen,
    /// Joins are drawn at `startsAt`.
    Prequeue,
    /// The sale has opened and the pre-queue is not drawn yet.
    Drawing,
    Admitting,
    /// The operator paused admissions.
    Paused,
    SoldOut,
    Closed,
}

/// A room in the sale's public view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub state: RoomPhase,
    /// Places issued and not yet admitted: the people waiting, plus places a container reserved
    /// and has not handed out yet (at most about a second of its joins).
    pub length: i64,
    pub admitted_through: i64,
    pub admit_per_second: u32,
    pub prequeue_opens_at: String,
    /// SHA-256 (hex) of the draw seed, published from creation on.
    pub draw_commitment: String,
    /// The draw seed (hex), revealed once the pre-queue is drawn: recompute its order with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draw_seed: Option<String>,
    /// The public beacon round the draw mixes in, shown from creation; its signature and
    /// randomness once the draw used it. Absent for rooms drawn with the operator's seed alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beacon: Option<BeaconView>,
    /// Merkle root (hex) of the sealed entrant list (SHA-256 ids, sorted), once drawn with a beacon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrants_root: Option<String>,
    /// How many entrants the sealed list holds, once drawn with a beacon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrant_count: Option<i64>,
}

/// The waiting-room use cases of one container, with its room-snapshot and place-block caches.
pub(crate) struct WaitingRoom {
    store: Store,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    keys: Arc<KeyRing>,
    snapshots: RoomSnapshots,
    places: PlaceBlocks,
    /// This container's offset past the second after which it steps a stale room
    /// (`Tuning::room_step_spread`).
    step_offset_ms: i64,
}

impl WaitingRoom {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        keys: Arc<KeyRing>,
    ) -> Self {
        let spread = i64::try_from(config.tuning.room_step_spread.as_millis()).unwrap_or(i64::MAX);
        Self {
            store,
            clock,
            config,
            catalog,
            keys,
            snapshots: RoomSnapshots::default(),
            places: PlaceBlocks::default(),
            step_offset_ms: if spread > 0 { fastrand::i64(0..spread) } else { 0 },
        }
    }

    /// The room's state and the stock behind it, from this container's copy while it is fresh;
    /// otherwise read, advanced if it is a second old (the draw first, once it is due), and stored.
    async fn room_snapshot(&self, sale: &Sale, config: &RoomConfig) -> Result<RoomSnapshot, AppError> {
        self.room_snapshot_drawing(sale, config, false, None).await
    }

    /// [`WaitingRoom::room_snapshot`]; `any_size`: draw a due pre-queue whatever its size (the scheduled
    /// function), rather than only one a request can draw within its time
    /// (`Tuning::request_draw_limit`). `beacons`: where a room with a public beacon gets its
    /// round (only the scheduled function has them: without, such a room stays `drawing`).
    async fn room_snapshot_drawing(
        &self,
        sale: &Sale,
        config: &RoomConfig,
        any_size: bool,
        beacons: Option<&dyn BeaconSource>,
    ) -> Result<RoomSnapshot, AppError> {
        let now = self.clock.now_ms();
        let cached = self.snapshots.get(&sale.id, now, STALE_SNAPSHOT_MS);
        let fresh = cached.as_ref().filter(|s| now - s.fetched_at_ms < SNAPSHOT_TTL_MS);
        if let Some(snapshot) = fresh.filter(|s| !any_size || s.state.prequeue_size.is_some()) {
            return Ok(snapshot.clone());
        }
        // One refresh per room at a time in a container: requests that find it stale while
        // another refreshes answer from the copy a moment older instead of all reading it again
        // (a container serving several invocations at once, or many tasks of one process).
        let _refresh = match RefreshGuard::take(&self.snapshots.refreshing, &sale.id) {
            Some(guard) => guard,
            None => match cached.filter(|_| !any_size) {
                Some(stale) => return Ok(stale),
                None => RefreshGuard::shared(&self.snapshots.refreshing, &sale.id),
            },
        };
        let mut state = self.store.room_state(&sale.id).await.map_err(logged)?.ok_or_else(|| {
            tracing::error!(sale = %sale.id, "a sale with a waiting room has no room state");
            AppError::Internal
        })?;
        // Strongly consistent: the admission cap is judged on the stock as it is now.
        let stock = self.store.shard_stock_now(sale).await.map_err(logged)?;
        let remaining: i64 = stock.iter().map(|r| (*r).max(0)).sum();
        let sold = sale.total_stock - remaining;
        // The draw is due at once; a step once the state is a second (plus this container's
        // offset) old.
        if now - state.updated_at_ms >= 1_000 + self.step_offset_ms
            || (state.prequeue_size.is_none() && now >= sale.starts_at_ms + room::DRAW_GRACE_MS)
        {
            let mut next = state.clone();
            if next.prequeue_size.is_none() && now >= sale.starts_at_ms + room::DRAW_GRACE_MS {
                let small = || async {
                    let n = self.store.prequeue_count(&sale.id, config.lanes).await.map_err(logged)?;
                    Ok::<_, AppError>(n <= self.config.tuning.request_draw_limit)
                };
                let can_draw = config.beacon.is_none() || beacons.is_some();
                if can_draw && (any_size || small().await?) {
                    let budget = if any_size { self.config.tuning.draw_budget } else { REQUEST_DRAW_BUDGET };
                    // Boxed: the draw's state is large and rare; every room read carries this future.
                    next.prequeue_size = Box::pin(self.draw(sale, config, budget, beacons)).await?;
                }
            }
            next.issued_after_opening = self.store.places_issued_after_opening(&sale.id).await.map_err(logged)?;
            let next = next.advanced(config, now, sold, remaining, sale.max_per_customer);
            state = if self.store.advance_room(&sale.id, &state, &next).await.map_err(logged)? {
                let length = next.places_issued().map_or(0, |n| (n - next.admitted_through).max(0));
                crate::telemetry::record_admission_step(
                    sale.id.as_str(),
                    next.admitted_through - state.admitted_through,
                    length,
                    // Items: each admitted place has `maxPerCustomer` set aside.
                    (next.admitted_through * i64::from(sale.max_per_customer) - sold).max(0),
                );
                next
            } else {
                // Another container advanced it first: take theirs.
                self.store.room_state(&sale.id).await.map_err(logged)?.unwrap_or(next)
            };
        }
        let snapshot = RoomSnapshot { state, remaining, fetched_at_ms: now };
        self.snapshots.put(&sale.id, snapshot.clone());
        Ok(snapshot)
    }

    /// Closes the pre-queue and places everyone in it by the draw, if this container holds the
    /// draw's lease: one writer at a time, however many containers find the draw due. Returns the
    /// pre-queue's size once the draw is complete (here or by another writer), `None` while it is
    /// under way. Progress is stored after every `DRAW_CHECKPOINT` places: a writer that stops
    /// (its time `budget` is spent, or it died and its lease ran out) is continued by the next,
    /// which writes the same places (the order is deterministic) from where it stopped. A room
    /// with a public beacon is drawn only with its round, verified ([`Self::beacon_round`]):
    /// without it nothing is sealed and the lease goes at once.
    async fn draw(
        &self,
        sale: &Sale,
        config: &RoomConfig,
        budget: Duration,
        beacons: Option<&dyn BeaconSource>,
    ) -> Result<Option<i64>, AppError> {
        let started = Instant::now();
        if config.beacon.as_ref().is_some_and(|b| self.clock.now_ms() < b.published_at_ms()) {
            return Ok(None);
        }
        let owner = format!("{:016x}", fastrand::u64(..));
        let lease_until = |now: i64| now + DRAW_LEASE_MS;
        let now = self.clock.now_ms();
        let mut progress =
            match self.store.take_draw_lease(&sale.id, &owner, now, lease_until(now)).await.map_err(logged)? {
                DrawLease::Done(size) => return Ok(Some(size)),
                DrawLease::Held => return Ok(None),
                DrawLease::Taken(progress) => progress,
            };
        let record = self.store.draw_record(&sale.id).await.map_err(logged)?.ok_or(AppError::Internal)?;
        let seed = record.seed;
        let drawn = match &config.beacon {
            None => None,
            Some(beacon) => match self.beacon_round(sale, beacon, record.beacon_signature, beacons).await {
                Some(round) => Some(round),
                None => {
                    let now = self.clock.now_ms();
                    self.store.save_draw_progress(&sale.id, &owner, progress, now).await.map_err(logged)?;
                    return Ok(None);
                }
            },
        };
        if !progress.sealed {
            self.store.seal_prequeue(&sale.id, config.lanes).await.map_err(logged)?;
            progress.sealed = true;
            let now = self.clock.now_ms();
            if !self.store.save_draw_progress(&sale.id, &owner, progress, lease_until(now)).await.map_err(logged)? {
                return Ok(None);
            }
        }
        let entrants = self.store.prequeue_entrants(&sale.id, config.lanes).await.map_err(logged)?;
        let mut proofs = std::collections::HashMap::new();
        let drawn_with_beacon = drawn.is_some();
        let places = match drawn {
            None => room::draw(&seed, &entrants),
            Some((signature, randomness)) => {
                let (root, by_user) = entrant_proofs(&entrants);
                let n = i64::try_from(entrants.len()).unwrap_or(i64::MAX);
                self.store.record_draw_outcome(&sale.id, &signature, &root, n).await.map_err(logged)?;
                proofs.extend(by_user);
                beacon::draw(&beacon::effective_seed(&seed, &randomness), &entrants)
            }
        };
        let size = i64::try_from(places.len()).unwrap_or(i64::MAX);
        let from = usize::try_from(progress.written).unwrap_or(0).min(places.len());
        if drawn_with_beacon && from == 0 {
            // The published list (GET /sales/{saleId}/entrants/{page}) goes out before the first
            // place: a person who sees a place can always find it in the list.
            let ids: Vec<[u8; 32]> = places.iter().map(|(u, _)| beacon::entrant_id(u)).collect();
            self.store.put_entrant_pages(&sale.id, &ids).await.map_err(logged)?;
        }
        for chunk in places[from..].chunks(DRAW_CHECKPOINT) {
            // A beacon draw's proofs go with their places, in the same writes.
            self.store.set_places(&sale.id, chunk, &proofs).await.map_err(logged)?;
            progress.written += i64::try_from(chunk.len()).unwrap_or(0);
            let now = self.clock.now_ms();
            // Out of time (each run writes at least one checkpoint): the lease goes now, and the
            // next writer continues from here.
            let done = progress.written >= size;
            let out_of_time = !done && started.elapsed() >= budget;
            let until = if out_of_time { now } else { lease_until(now) };
            if !self.store.save_draw_progress(&sale.id, &owner, progress, until).await.map_err(logged)? {
                return Ok(None);
            }
            if out_of_time {
                tracing::info!(sale = %sale.id, written = progress.written, entrants = size, "pre-queue draw continues later");
                return Ok(None);
            }
        }
        if !self.store.finish_draw(&sale.id, &owner, size).await.map_err(logged)? {
            return Ok(None);
        }
        tracing::info!(sale = %sale.id, entrants = size, "pre-queue drawn");
        Ok(Some(size))
    }

    /// The room's beacon round, verified: (signature, randomness); the one a run before stored
    /// (a draw that continues) or else one from `source`. `None` before the round is published,
    /// without a source, and when no signature that verifies was had (logged and counted: the
    /// room stays `drawing` and the next run tries again; there is no draw without it).
    async fn beacon_round(
        &self,
        sale: &Sale,
        beacon: &BeaconRef,
        stored: Option<Vec<u8>>,
        source: Option<&dyn BeaconSource>,
    ) -> Option<(Vec<u8>, [u8; 32])> {
        let fetched = match (stored, source) {
            (Some(signature), _) => Ok(signature),
            _ if self.clock.now_ms() < beacon.published_at_ms() => return None,
            (None, Some(source)) => source.signature(beacon).await,
            (None, None) => return None,
        };
        let verified = fetched.and_then(|sig| beacon.verify(&sig).map(|r| (sig, r)).map_err(|e| e.to_string()));
        match verified {
            Ok(round) => Some(round),
            Err(e) => {
                tracing::error!(sale = %sale.id, round = beacon.round, error = %e, "no verified beacon round: the room stays drawing");
                crate::telemetry::record_error("draw");
                None
            }
        }
    }

    /// The scheduled function's part: draws every pre-queue that is due and was too large for a
    /// request to draw. Returns the sales drawn and those whose draw failed: one sale's failure
    /// (logged with its id, counted in `Errors`, kind `draw`) does not keep the others from
    /// being drawn.
    pub(crate) async fn draw_due_rooms(
        &self,
        beacons: Option<&dyn BeaconSource>,
    ) -> Result<(Vec<String>, Vec<String>), AppError> {
        let now = self.clock.now_ms();
        let (mut drawn, mut failed) = (Vec::new(), Vec::new());
        for sale in self.store.list_sales().await.map_err(logged)? {
            let Some(config) = &sale.room else { continue };
            if now < sale.starts_at_ms + room::DRAW_GRACE_MS || now >= sale.ends_at_ms {
                continue;
            }
            let due = match self.store.room_state(&sale.id).await.map_err(logged) {
                Ok(before) => before.is_some_and(|s| s.prequeue_size.is_none()),
                Err(e) => {
                    tracing::error!(sale = %sale.id, error = %e, "the room state could not be read for the draw");
                    crate::telemetry::record_error("draw");
                    failed.push(sale.id.to_string());
                    continue;
                }
            };
            if !due {
                continue;
            }
            match self.room_snapshot_drawing(&sale, config, true, beacons).await {
                // Drawn when complete; a draw under way elsewhere, or to be continued, is neither.
                Ok(snapshot) if snapshot.state.prequeue_size.is_some() => drawn.push(sale.id.to_string()),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(sale = %sale.id, error = %e, "the pre-queue could not be drawn");
                    crate::telemetry::record_error("draw");
                    failed.push(sale.id.to_string());
                }
            }
        }
        Ok((drawn, failed))
    }

    async fn room_of(&self, sale_id: &SaleId) -> Result<(Arc<Sale>, RoomConfig), AppError> {
        let sale = self.catalog.sale(sale_id).await?;
        let config = sale.room.clone().ok_or(AppError::NoWaitingRoom)?;
        Ok((sale, config))
    }

    /// A join path's store call, tried again after a transient failure (a `TransactionConflict`,
    /// throttling, a timeout): `conflict_retries` more times at most, after a full-jitter pause.
    /// Every call retried here is idempotent (a conditional write that returns what an earlier
    /// attempt wrote), so a retry never answers 503 while the join can still succeed.
    async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<T, AppError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let t = &self.config.tuning;
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if e.is_transient() && attempt < t.conflict_retries => {
                    tracing::info!(error = %e, attempt, "join path: transient store failure, retrying");
                    let cap = t.backoff_cap.min(t.backoff_base.saturating_mul(1 << attempt.min(16)));
                    let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=ms))).await;
                    attempt += 1;
                }
                other => return other.map_err(logged),
            }
        }
    }

    /// Joins `user` to the room of `sale_id`: idempotent, one place per person however often
    /// they join.
    pub(crate) async fn join(&self, sale_id: &SaleId, user: &UserId) -> Result<PlaceView, AppError> {
        let (sale, config) = self.room_of(sale_id).await?;
        let now = self.clock.now_ms();
        if now < config.prequeue_opens_at_ms {
            return Err(AppError::QueueNotOpen { opens_at_ms: config.prequeue_opens_at_ms });
        }
        if now >= sale.ends_at_ms {
            crate::telemetry::record_join("closed");
            return self.view(&sale, &config, user, None).await;
        }
        // Before opening: the joiner's own entry and marker (the entry's condition returns an
        // earlier join, so no read comes first), then the marker is settled against the seal.
        if now < sale.starts_at_ms {
            let lane = fastrand::u32(0..config.lanes.max(1));
            let (outcome, entry) = match self.retrying(|| self.store.join_prequeue(&sale, user, lane, now)).await? {
                Joined::New(entry) => {
                    // The lane's count is a hint: a count lost here changes no place.
                    if let Err(e) = self.store.count_prequeue_join(&sale.id, lane).await {
                        tracing::warn!(error = %e, "a pre-queue join was not counted (a hint)");
                    }
                    ("new", entry)
                }
                Joined::Existing(entry) => ("existing", entry),
            };
            let (outcome, entry) = match self.settle(&sale.id, user, entry, None).await? {
                Settled::Stayed(entry) | Settled::Left(entry) => (outcome, entry),
                Settled::Had(entry) => ("existing", entry),
            };
            crate::telemetry::record_join(outcome);
            return self.view(&sale, &config, user, Some(entry)).await;
        }
        // After opening: a place from this container's block, then the entry's conditional put,
        // which returns an earlier join instead (and the place goes back to the block, so joining
        // again leaves no hole in the room).
        let place = self.next_place(sale_id).await?;
        let now = self.clock.now_ms();
        let (used, entry) = match self.retrying(|| self.store.join_after_opening(sale_id, user, place, now)).await? {
            Joined::New(entry) => (true, entry),
            // A pre-queue entrant not yet placed: settled now, with this place if they leave.
            Joined::Existing(entry) if entry.unsettled_lane().is_some() => {
                match self.settle(sale_id, user, entry, Some(place)).await? {
                    Settled::Left(entry) => (true, entry),
                    Settled::Stayed(entry) | Settled::Had(entry) => (false, entry),
                }
            }
            Joined::Existing(entry) => (false, entry),
        };
        if !used {
            self.return_place(sale_id, place);
        }
        crate::telemetry::record_join(if used { "new" } else { "existing" });
        self.view(&sale, &config, user, Some(entry)).await
    }

    /// Settles a pre-queue entrant's marker, unless the entry is settled already: confirmed if
    /// the lane is unsealed when read (the draw seals before it reads, so it will read this
    /// marker), withdrawn if sealed (the draw may not have read it); a marker the draw found still
    /// pending it withdrew. Whoever settles first decides, on the marker alone. A withdrawn
    /// entrant joins after opening, behind everyone drawn, with `place` (a place after opening
    /// the caller took) or one taken here.
    async fn settle(
        &self,
        sale: &SaleId,
        user: &UserId,
        entry: RoomEntry,
        place: Option<i64>,
    ) -> Result<Settled, AppError> {
        let Some(lane) = entry.unsettled_lane() else { return Ok(Settled::Stayed(entry)) };
        let sealed = self.retrying(|| self.store.lane_sealed(sale, lane)).await?;
        let marker = self.retrying(|| self.store.settle_marker(sale, lane, user.as_str(), !sealed)).await?;
        if marker == Marker::Confirmed {
            return Ok(Settled::Stayed(entry));
        }
        let (place, own) = match place {
            Some(place) => (place, false),
            None => (self.next_place(sale).await?, true),
        };
        match self.retrying(|| self.store.leave_prequeue(sale, user, place)).await? {
            Joined::New(entry) => Ok(Settled::Left(entry)),
            Joined::Existing(entry) => {
                if own {
                    self.return_place(sale, place);
                }
                Ok(Settled::Had(entry))
            }
        }
    }

    /// Where `user` stands in the room of `sale_id`.
    pub(crate) async fn place(&self, sale_id: &SaleId, user: &UserId) -> Result<PlaceView, AppError> {
        let (sale, config) = self.room_of(sale_id).await?;
        let mut entry = self.store.room_entry(sale_id, user).await.map_err(logged)?.ok_or(AppError::NotInLine)?;
        // Drawn, and not placed: the draw found this entrant's marker pending (their join never
        // confirmed it) and withdrew it. They join after opening now.
        if entry.unsettled_lane().is_some() && self.room_snapshot(&sale, &config).await?.state.prequeue_size.is_some() {
            // Read again: the draw may have placed them since (this request may have drawn).
            entry = self.store.room_entry(sale_id, user).await.map_err(logged)?.ok_or(AppError::NotInLine)?;
            if entry.unsettled_lane().is_some() {
                entry = match self.settle(sale_id, user, entry, None).await? {
                    Settled::Stayed(entry) | Settled::Left(entry) | Settled::Had(entry) => entry,
                };
            }
        }
        self.view(&sale, &config, user, Some(entry)).await
    }

    /// The next place after opening this container hands out. Blocks are taken one request at a
    /// time (the others wait for it, in arrival order, rather than each taking a block of its own),
    /// and the next one is taken when half of the current one is handed out, so joins seldom wait.
    async fn next_place(&self, sale_id: &SaleId) -> Result<i64, AppError> {
        let slot = self.places.slot(sale_id);
        let lock = |slot: &PlaceSlot| slot.blocks.lock().unwrap_or_else(|p| p.into_inner()).take(self.clock.now_ms());
        match lock(&slot) {
            Found::Place(place, None) => return Ok(place),
            Found::Place(place, Some(size)) => {
                // This request has its place: a failure to take the next block (logged) only
                // means it is taken when the current one runs out.
                if let Ok(_taking) = slot.taking.try_lock()
                    && let Ok((first, last)) = self.store.take_places_after_opening(sale_id, size).await.map_err(logged)
                {
                    let spare = PlaceBlock::new(first, last, self.clock.now_ms());
                    slot.blocks.lock().unwrap_or_else(|p| p.into_inner()).spare = Some(spare);
                }
                return Ok(place);
            }
            Found::Empty(_) => {}
        }
        let _taking = slot.taking.lock().await;
        // Another request may have taken a block while this one waited (then the next one is
        // sized after it, not after the block this request found empty).
        let size = match lock(&slot) {
            Found::Place(place, _) => return Ok(place),
            Found::Empty(size) => size,
        };
        let (first, last) = self.retrying(|| self.store.take_places_after_opening(sale_id, size)).await?;
        let mut blocks = slot.blocks.lock().unwrap_or_else(|p| p.into_inner());
        let mut block = PlaceBlock::new(first, last, self.clock.now_ms());
        block.next += 1;
        blocks.current = Some(block);
        Ok(first)
    }

    /// Gives back the place just handed out when it was not used (the person was in the room
    /// already): the next joiner here gets it. A place another request took meanwhile stays a
    /// hole (a place nobody holds; admitting it costs one admission slot).
    fn return_place(&self, sale_id: &SaleId, place: i64) {
        if let Some(slot) = self.places.existing(sale_id) {
            let mut blocks = slot.blocks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(b) = blocks.current.as_mut()
                && b.next == place + 1
            {
                b.next = place;
            }
        }
    }

    async fn view(
        &self,
        sale: &Sale,
        config: &RoomConfig,
        user: &UserId,
        entry: Option<RoomEntry>,
    ) -> Result<PlaceView, AppError> {
        let now = self.clock.now_ms();
        let snapshot = self.room_snapshot(sale, config).await?;
        let state = &snapshot.state;
        let place = entry.as_ref().and_then(|e| e.place_in(state));
        let mut place_state =
            room::place_state(state, place, snapshot.remaining, now >= sale.ends_at_ms || entry.is_none());
        let mut token = None;
        let mut expires = None;
        let mut set_aside = None;
        if let (PlaceState::Admitted, Some(place)) = (place_state, place) {
            // Admitted when the range first covered this place; the token buys for the claim
            // window from then on, while its item is set aside.
            match state.history.iter().find(|t| t.admitted >= place) {
                Some(tick) if tick.at_ms + config.claim_window_ms() > now => {
                    let exp = tick.at_ms + config.claim_window_ms();
                    let keys = self.keys.current().ok_or(AppError::Internal)?;
                    token = Some(keys.sign(&sale.id, user, place, exp));
                    expires = Some(rfc3339_ms(exp));
                    set_aside = expires.clone();
                }
                // The admission's lifetime is over.
                _ => place_state = PlaceState::Closed,
            }
        }
        let waiting = place_state == PlaceState::Waiting;
        Ok(PlaceView {
            sale_id: sale.id.to_string(),
            user_id: user.to_string(),
            state: place_state,
            position: place,
            ahead_of_you: place.filter(|_| waiting).map(|p| (p - state.admitted_through - 1).max(0)),
            estimated_wait_seconds: place.filter(|_| waiting).map(|p| room::estimated_wait_seconds(state, p)),
            admission_token: token,
            admission_expires_at: expires,
            set_aside_until: set_aside,
            entrant_proof: entry.and_then(|e| e.entrant_proof).filter(|_| place.is_some()),
        })
    }

    /// The purchase path's gate for a sale with a room: a valid token for this sale and buyer,
    /// checked without a DynamoDB call, whose place the admitted range has reached.
    pub(crate) async fn check_admission(
        &self,
        sale: &Sale,
        user: &UserId,
        token: Option<&str>,
    ) -> Result<(), AppError> {
        if sale.room.is_none() {
            return Ok(());
        }
        let token = token.ok_or(AppError::AdmissionRequired)?;
        let keys = self.keys.current().ok_or(AppError::Internal)?;
        let mut verified = keys.verify(token, &sale.id, user, self.clock.now_ms());
        if verified == Err(TokenError::Invalid) && Box::pin(self.keys.refresh_for_unknown_token()).await {
            // Signed with a key this container has not read yet (a rotation another container
            // saw first): the secret, read again, decides.
            let keys = self.keys.current().ok_or(AppError::Internal)?;
            verified = keys.verify(token, &sale.id, user, self.clock.now_ms());
        }
        let place = verified.map_err(|e| match e {
            TokenError::Invalid => {
                AppError::AdmissionInvalid("the admission token is not valid for this sale and buyer")
            }
            TokenError::Expired => AppError::AdmissionInvalid("the admission token has expired"),
        })?;
        if place <= self.admitted_through(sale).await? {
            return Ok(());
        }
        // Tokens are signed only for admitted places: this container's copy may be older than
        // the admission. The room as stored decides (one read, only for such a token).
        let now = self.clock.now_ms();
        let state = self.store.room_state(&sale.id).await.map_err(logged)?.ok_or(AppError::Internal)?;
        self.snapshots.saw_admitted(&sale.id, now, state.admitted_through);
        if let Some(mut copy) = self.snapshots.get(&sale.id, now, STALE_SNAPSHOT_MS)
            && copy.state.admitted_through < state.admitted_through
        {
            copy.state = state.clone();
            self.snapshots.put(&sale.id, copy);
        }
        if place > state.admitted_through {
            return Err(AppError::NotYetAdmitted);
        }
        Ok(())
    }

    /// The admitted range as stored, from this container's copy while it is a second fresh. The
    /// purchase path only reads the room; the queue and status functions advance it.
    async fn admitted_through(&self, sale: &Sale) -> Result<i64, AppError> {
        let now = self.clock.now_ms();
        let cached = self.snapshots.get(&sale.id, now, SNAPSHOT_TTL_MS).map(|s| s.state.admitted_through);
        if let Some(admitted) = cached.or_else(|| self.snapshots.admitted(&sale.id, now, SNAPSHOT_TTL_MS)) {
            return Ok(admitted);
        }
        let state = self.store.room_state(&sale.id).await.map_err(logged)?.ok_or(AppError::Internal)?;
        self.snapshots.saw_admitted(&sale.id, now, state.admitted_through);
        Ok(state.admitted_through)
    }

    /// The room's part of the sale's public view.
    pub(crate) async fn room_view(&self, sale: &Sale) -> Result<Option<RoomView>, AppError> {
        let Some(config) = &sale.room else { return Ok(None) };
        let now = self.clock.now_ms();
        let snapshot = self.room_snapshot(sale, config).await?;
        let s = &snapshot.state;
        let phase = if now >= sale.ends_at_ms {
            RoomPhase::Closed
        } else if snapshot.remaining <= 0 {
            RoomPhase::SoldOut
        } else if now < config.prequeue_opens_at_ms {
            RoomPhase::NotOpen
        } else if now < sale.starts_at_ms {
            RoomPhase::Prequeue
        } else if s.prequeue_size.is_none() {
            RoomPhase::Drawing
        } else if s.paused {
            RoomPhase::Paused
        } else {
            RoomPhase::Admitting
        };
        // Revealed once the draw is complete, never while it could still be run or rerun.
        let drawn = if s.prequeue_size.is_some() && now >= sale.starts_at_ms {
            self.store.draw_record(&sale.id).await.map_err(logged)?
        } else {
            None
        };
        let draw_seed = drawn.as_ref().map(|d| hex::encode(&d.seed));
        let beacon = config
            .beacon
            .as_ref()
            .map(|b| BeaconView::new(b, drawn.as_ref().and_then(|d| d.beacon_signature.as_deref())));
        Ok(Some(RoomView {
            state: phase,
            length: s.places_issued().map_or(0, |n| (n - s.admitted_through).max(0)),
            admitted_through: s.admitted_through,
            admit_per_second: s.admit_per_second,
            prequeue_opens_at: rfc3339_ms(config.prequeue_opens_at_ms),
            draw_commitment: config.draw_commitment.clone(),
            draw_seed,
            beacon,
            entrants_root: drawn.as_ref().and_then(|d| d.entrants_root.clone()),
            entrant_count: drawn.as_ref().and_then(|d| d.entrant_count),
        }))
    }
}
