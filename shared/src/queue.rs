//! The waiting-room use cases: join the line, see where one stands, the admission check on the
//! purchase path, and keeping the admitted range moving (rules in [`crate::room`], items in
//! `store::room`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::app::{App, logged};
use crate::error::AppError;
use crate::ids::{SaleId, UserId};
use crate::room::{self, LineState, RoomConfig, RoomState, TokenError};
use crate::sale::Sale;
use crate::store::{Joined, QueueEntry};
use crate::time_fmt::rfc3339_ms;

/// How long a container trusts its copy of a room's state and the stock behind it.
const SNAPSHOT_TTL_MS: i64 = 1_000;
/// Longest a block of post-opening tickets is handed out by one container: later arrivals never
/// get an earlier place than someone who arrived more than this before them.
const TICKET_BLOCK_LIFE: Duration = Duration::from_secs(1);
const MAX_TICKET_BLOCK: i64 = 100;

/// How old a copy of a room's state may be answered from while another request of the same
/// container refreshes it.
const STALE_SNAPSHOT_MS: i64 = 5_000;

/// Marks a room's refresh as in flight in this container; the mark goes when the guard does.
struct RefreshGuard<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<SaleId>>,
    sale: Option<SaleId>,
}

impl<'a> RefreshGuard<'a> {
    /// The refresh of `sale`, unless one is in flight already.
    fn take(set: &'a std::sync::Mutex<std::collections::HashSet<SaleId>>, sale: &SaleId) -> Option<Self> {
        let mut refreshing = set.lock().unwrap_or_else(|p| p.into_inner());
        refreshing.insert(sale.clone()).then(|| Self { set, sale: Some(sale.clone()) })
    }

    /// A second refresh beside one in flight (there is no copy to answer from): marks nothing.
    fn shared(set: &'a std::sync::Mutex<std::collections::HashSet<SaleId>>, _sale: &SaleId) -> Self {
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
pub(crate) struct RoomSnapshot {
    pub(crate) state: RoomState,
    pub(crate) remaining: i64,
    /// When it was read, on the app's clock (so tests that move the clock move the cache too).
    fetched_at_ms: i64,
}

/// A sale's tickets in this container: the block being handed out, a spare taken before it runs
/// out, and a lock held by the one request that takes a block while others wait for it.
#[derive(Debug, Default)]
pub(crate) struct TicketSlot {
    blocks: std::sync::Mutex<TicketBlocks>,
    taking: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct TicketBlocks {
    current: Option<TicketBlock>,
    spare: Option<TicketBlock>,
}

/// Post-opening tickets this container may hand out (`next..=last`), taken from the sale's
/// counter in blocks sized to what the container hands out in about a second.
#[derive(Debug, Clone)]
struct TicketBlock {
    next: i64,
    last: i64,
    size: i64,
    taken: Instant,
}

impl TicketBlock {
    fn live(&self) -> bool {
        self.taken.elapsed() < TICKET_BLOCK_LIFE
    }
}

/// What a request found in its sale's tickets.
enum Found {
    /// A ticket; `Some(size)`: this request should take the spare block, of that size.
    Ticket(i64, Option<i64>),
    /// No ticket left: a block of this size is needed.
    Empty(i64),
}

impl TicketBlocks {
    fn take(&mut self) -> Found {
        if !self.current.as_ref().is_some_and(|b| b.next <= b.last && b.live())
            && let Some(spare) = self.spare.take().filter(TicketBlock::live)
        {
            self.current = Some(spare);
        }
        match self.current.as_mut() {
            Some(b) if b.next <= b.last && b.live() => {
                b.next += 1;
                // Half used within its life: take the next block now, twice as large, so nobody
                // waits for it when this one runs out.
                let prefetch = (self.spare.is_none() && 2 * (b.last - b.next + 1) < b.size)
                    .then(|| (b.size * 2).min(MAX_TICKET_BLOCK));
                Found::Ticket(b.next - 1, prefetch)
            }
            // Used up within its life: twice as large; expired unused: half.
            Some(b) if b.next > b.last => Found::Empty((b.size * 2).min(MAX_TICKET_BLOCK)),
            Some(b) => Found::Empty((b.size / 2).max(1)),
            None => Found::Empty(1),
        }
    }
}

/// Where a person stands: the answer of `POST /sales/{saleId}/queue` and
/// `GET /sales/{saleId}/queue/{userId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    pub sale_id: String,
    pub user_id: String,
    pub state: LineState,
    /// The place in line; `null` for the pre-queue until the draw at opening.
    pub position: Option<i64>,
    pub ahead_of_you: Option<i64>,
    pub estimated_wait_seconds: Option<i64>,
    /// Present when admitted: send it as `admissionToken` with the purchase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_expires_at: Option<String>,
    /// Present when admitted: until then an item is set aside for this admission (the claim
    /// window); after it the token still buys while stock lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_aside_until: Option<String>,
}

/// A room in the sale's public view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    /// `not_open` (before the pre-queue), `prequeue`, `drawing`, `admitting`, `paused`,
    /// `sold_out` or `closed`.
    pub state: &'static str,
    /// Places issued and not yet admitted: the people waiting, plus places a container reserved
    /// and has not handed out yet (at most about a second of its joins).
    pub length: i64,
    pub admitted_through: i64,
    pub admit_per_second: u32,
    pub prequeue_opens_at: String,
    /// SHA-256 (hex) of the draw seed, published from creation on.
    pub draw_commitment: String,
    /// The draw seed (hex), revealed from `startsAt` on: recompute the pre-queue order with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draw_seed: Option<String>,
}

impl App {
    /// The room's state and the stock behind it, from this container's copy while it is fresh;
    /// otherwise read, advanced if it is a second old (the draw first, once it is due), and stored.
    pub(crate) async fn room_snapshot(&self, sale: &Sale, config: &RoomConfig) -> Result<RoomSnapshot, AppError> {
        self.room_snapshot_drawing(sale, config, false).await
    }

    /// [`App::room_snapshot`]; `any_size`: draw a due pre-queue whatever its size (the scheduled
    /// function), rather than only one a request can draw within its time
    /// (`Tuning::request_draw_limit`).
    async fn room_snapshot_drawing(
        &self,
        sale: &Sale,
        config: &RoomConfig,
        any_size: bool,
    ) -> Result<RoomSnapshot, AppError> {
        let now = self.clock.now_ms();
        let cached = {
            let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms.get(&sale.id).filter(|s| (0..STALE_SNAPSHOT_MS).contains(&(now - s.fetched_at_ms))).cloned()
        };
        let fresh = cached.as_ref().filter(|s| now - s.fetched_at_ms < SNAPSHOT_TTL_MS);
        if let Some(snapshot) = fresh.filter(|s| !any_size || s.state.prequeue_size.is_some()) {
            return Ok(snapshot.clone());
        }
        // One refresh per room at a time in a container: requests that find it stale while
        // another refreshes answer from the copy a moment older instead of all reading it again
        // (a container serving several invocations at once, or many tasks of one process).
        let _refresh = match RefreshGuard::take(&self.room_refreshing, &sale.id) {
            Some(guard) => guard,
            None => match cached.filter(|_| !any_size) {
                Some(stale) => return Ok(stale),
                None => RefreshGuard::shared(&self.room_refreshing, &sale.id),
            },
        };
        let mut state = self.store.room_state(&sale.id).await.map_err(logged)?.ok_or_else(|| {
            tracing::error!(sale = %sale.id, "a sale with a waiting room has no room state");
            AppError::Internal
        })?;
        let stock = self.store.shard_stock(&[sale]).await.map_err(logged)?;
        let remaining: i64 = stock[0].iter().map(|r| (*r).max(0)).sum();
        let sold = sale.total_stock - remaining;
        if now - state.updated_at_ms >= 1_000
            || (state.prequeue_size.is_none() && now >= sale.starts_at_ms + room::DRAW_GRACE_MS)
        {
            let mut next = state.clone();
            if next.prequeue_size.is_none() && now >= sale.starts_at_ms + room::DRAW_GRACE_MS {
                let small = || async {
                    let n = self.store.prequeue_count(&sale.id, config.lanes).await.map_err(logged)?;
                    Ok::<_, AppError>(n <= self.tuning().request_draw_limit)
                };
                if any_size || small().await? {
                    next.prequeue_size = Some(self.draw(sale, config).await?);
                }
            }
            next.issued_after_opening = self.store.tickets_issued(&sale.id).await.map_err(logged)?;
            let next = next.advanced(config, now, sold, remaining);
            state = if self.store.advance_room(&sale.id, &state, &next).await.map_err(logged)? {
                let length = next.places_issued().map_or(0, |n| (n - next.admitted_through).max(0));
                crate::telemetry::record_admission_step(
                    sale.id.as_str(),
                    next.admitted_through - state.admitted_through,
                    length,
                    (next.admitted_through - sold).max(0),
                );
                next
            } else {
                // Another container advanced it first: take theirs.
                self.store.room_state(&sale.id).await.map_err(logged)?.unwrap_or(next)
            };
        }
        let snapshot = RoomSnapshot { state, remaining, fetched_at_ms: now };
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).insert(sale.id.clone(), snapshot.clone());
        Ok(snapshot)
    }

    /// Closes the pre-queue and places everyone in it by the draw. Deterministic: two containers
    /// that both run it write the same places.
    async fn draw(&self, sale: &Sale, config: &RoomConfig) -> Result<i64, AppError> {
        let seed = self.store.draw_seed(&sale.id).await.map_err(logged)?.ok_or(AppError::Internal)?;
        let entrants = self.store.seal_prequeue(&sale.id, config.lanes).await.map_err(logged)?;
        let places = room::draw(&seed, &entrants);
        self.store.set_places(&sale.id, &places).await.map_err(logged)?;
        tracing::info!(sale = %sale.id, entrants = places.len(), "pre-queue drawn");
        Ok(i64::try_from(places.len()).unwrap_or(i64::MAX))
    }

    /// The scheduled function's part: draws every pre-queue that is due and was too large for a
    /// request to draw. Returns the sales drawn.
    pub async fn draw_due_rooms(&self) -> Result<Vec<String>, AppError> {
        let now = self.clock.now_ms();
        let mut drawn = Vec::new();
        for sale in self.store.list_sales().await.map_err(logged)? {
            let Some(config) = &sale.room else { continue };
            if now < sale.starts_at_ms + room::DRAW_GRACE_MS || now >= sale.ends_at_ms {
                continue;
            }
            let before = self.store.room_state(&sale.id).await.map_err(logged)?;
            if before.is_some_and(|s| s.prequeue_size.is_none()) {
                self.room_snapshot_drawing(&sale, config, true).await?;
                drawn.push(sale.id.to_string());
            }
        }
        Ok(drawn)
    }

    async fn room_of(&self, sale_id: &SaleId) -> Result<(Arc<Sale>, RoomConfig), AppError> {
        let sale = self.sale(sale_id).await?;
        let config = sale.room.clone().ok_or(AppError::NoWaitingRoom)?;
        Ok((sale, config))
    }

    /// Joins `user` to the line of `sale_id`: idempotent, one place per person however often
    /// they join.
    pub async fn join(&self, sale_id: &SaleId, user: &UserId) -> Result<LineView, AppError> {
        let (sale, config) = self.room_of(sale_id).await?;
        let now = self.clock.now_ms();
        if now < config.prequeue_opens_at_ms {
            return Err(AppError::QueueNotOpen { opens_at_ms: config.prequeue_opens_at_ms });
        }
        if now >= sale.ends_at_ms {
            crate::telemetry::record_join("closed");
            return self.view(&sale, &config, user, None).await;
        }
        // Before opening, the join's own transaction finds an earlier join (its entry's condition
        // returns it), so no read comes first.
        if now < sale.starts_at_ms {
            let lane = fastrand::u32(0..config.lanes.max(1));
            match self.store.join_prequeue(&sale, user, lane, now).await.map_err(logged)? {
                Joined::New(entry) => {
                    crate::telemetry::record_join("new");
                    return self.view(&sale, &config, user, Some(entry)).await;
                }
                Joined::Existing(entry) => {
                    crate::telemetry::record_join("existing");
                    return self.view(&sale, &config, user, Some(entry)).await;
                }
                Joined::PrequeueClosed => {}
            }
        }
        // After opening: a ticket from this container's block, then the entry's conditional put,
        // which returns an earlier join instead (and the ticket goes back to the block, so joining
        // again leaves no hole in the line).
        let ticket = self.next_ticket(sale_id).await?;
        match self.store.join_after_opening(sale_id, user, ticket, self.clock.now_ms()).await.map_err(logged)? {
            Joined::New(entry) => {
                crate::telemetry::record_join("new");
                self.view(&sale, &config, user, Some(entry)).await
            }
            Joined::Existing(entry) => {
                self.return_ticket(sale_id, ticket);
                crate::telemetry::record_join("existing");
                self.view(&sale, &config, user, Some(entry)).await
            }
            Joined::PrequeueClosed => Err(AppError::Internal),
        }
    }

    /// Where `user` stands in the line of `sale_id`.
    pub(crate) async fn line_position(&self, sale_id: &SaleId, user: &UserId) -> Result<LineView, AppError> {
        let (sale, config) = self.room_of(sale_id).await?;
        let entry = self.store.queue_entry(sale_id, user).await.map_err(logged)?.ok_or(AppError::NotInLine)?;
        self.view(&sale, &config, user, Some(entry)).await
    }

    /// The next post-opening ticket this container hands out. Blocks are taken one request at a
    /// time (the others wait for it, in arrival order, rather than each taking a block of its own),
    /// and the next one is taken when half of the current one is handed out, so joins seldom wait.
    async fn next_ticket(&self, sale_id: &SaleId) -> Result<i64, AppError> {
        let slot = {
            let mut slots = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(slots.entry(sale_id.clone()).or_default())
        };
        let lock = |slot: &TicketSlot| slot.blocks.lock().unwrap_or_else(|p| p.into_inner()).take();
        let size = match lock(&slot) {
            Found::Ticket(ticket, None) => return Ok(ticket),
            Found::Ticket(ticket, Some(size)) => {
                // This request has its ticket: a failure to take the next block (logged) only
                // means it is taken when the current one runs out.
                if let Ok(_taking) = slot.taking.try_lock()
                    && let Ok((first, last)) = self.store.take_tickets(sale_id, size).await.map_err(logged)
                {
                    let spare = TicketBlock { next: first, last, size, taken: Instant::now() };
                    slot.blocks.lock().unwrap_or_else(|p| p.into_inner()).spare = Some(spare);
                }
                return Ok(ticket);
            }
            Found::Empty(size) => size,
        };
        let _taking = slot.taking.lock().await;
        // Another request may have taken a block while this one waited.
        let size = match lock(&slot) {
            Found::Ticket(ticket, _) => return Ok(ticket),
            Found::Empty(_) => size,
        };
        let (first, last) = self.store.take_tickets(sale_id, size).await.map_err(logged)?;
        let mut blocks = slot.blocks.lock().unwrap_or_else(|p| p.into_inner());
        blocks.current = Some(TicketBlock { next: first + 1, last, size, taken: Instant::now() });
        Ok(first)
    }

    /// Gives back the ticket just handed out when it was not used (the person was in line
    /// already): the next joiner here gets it. A ticket another request took meanwhile stays a
    /// hole (a place nobody holds; admitting it costs one admission slot).
    fn return_ticket(&self, sale_id: &SaleId, ticket: i64) {
        let slot = self.tickets.lock().unwrap_or_else(|p| p.into_inner()).get(sale_id).cloned();
        if let Some(slot) = slot {
            let mut blocks = slot.blocks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(b) = blocks.current.as_mut()
                && b.next == ticket + 1
            {
                b.next = ticket;
            }
        }
    }

    async fn view(
        &self,
        sale: &Sale,
        config: &RoomConfig,
        user: &UserId,
        entry: Option<QueueEntry>,
    ) -> Result<LineView, AppError> {
        let now = self.clock.now_ms();
        let snapshot = self.room_snapshot(sale, config).await?;
        let state = &snapshot.state;
        let place = entry.as_ref().and_then(|e| e.place_in(state));
        let mut line = room::line_state(state, place, snapshot.remaining, now >= sale.ends_at_ms || entry.is_none());
        let mut token = None;
        let mut expires = None;
        let mut set_aside = None;
        if let (LineState::Admitted, Some(place)) = (line, place) {
            // Admitted when the range first covered this place; the token lives from then on.
            match state.history.iter().find(|t| t.admitted >= place) {
                Some(tick) if tick.at_ms + config.token_ttl_ms > now => {
                    let exp = tick.at_ms + config.token_ttl_ms;
                    let keys = self.config.admission_keys.as_ref().ok_or(AppError::Internal)?;
                    token = Some(keys.sign(&sale.id, user, place, exp));
                    expires = Some(rfc3339_ms(exp));
                    set_aside = Some(rfc3339_ms(tick.at_ms + config.claim_window_ms()));
                }
                // The admission's lifetime is over.
                _ => line = LineState::Closed,
            }
        }
        let waiting = line == LineState::Waiting;
        Ok(LineView {
            sale_id: sale.id.to_string(),
            user_id: user.to_string(),
            state: line,
            position: place,
            ahead_of_you: place.filter(|_| waiting).map(|p| (p - state.admitted_through - 1).max(0)),
            estimated_wait_seconds: place.filter(|_| waiting).map(|p| room::estimated_wait_seconds(state, p)),
            admission_token: token,
            admission_expires_at: expires,
            set_aside_until: set_aside,
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
        let Some(config) = &sale.room else { return Ok(()) };
        let token = token.ok_or(AppError::AdmissionRequired)?;
        let keys = self.config.admission_keys.as_ref().ok_or(AppError::Internal)?;
        let place = keys.verify(token, &sale.id, user, self.clock.now_ms()).map_err(|e| match e {
            TokenError::Invalid => {
                AppError::AdmissionInvalid("the admission token is not valid for this sale and buyer")
            }
            TokenError::Expired => AppError::AdmissionInvalid("the admission token has expired"),
        })?;
        let _ = config;
        if place > self.admitted_through(sale).await? {
            return Err(AppError::NotYetAdmitted);
        }
        Ok(())
    }

    /// The admitted range as stored, from this container's copy while it is a second fresh. The
    /// purchase path only reads the room; the queue and status functions advance it.
    async fn admitted_through(&self, sale: &Sale) -> Result<i64, AppError> {
        let now = self.clock.now_ms();
        let cached = {
            let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms
                .get(&sale.id)
                .filter(|s| (0..SNAPSHOT_TTL_MS).contains(&(now - s.fetched_at_ms)))
                .map(|s| s.state.admitted_through)
        };
        if let Some(admitted) = cached {
            return Ok(admitted);
        }
        let admitted = {
            let mut seen = self.admitted_seen.lock().unwrap_or_else(|p| p.into_inner());
            match seen.get(&sale.id) {
                Some(&(at, admitted)) if (0..SNAPSHOT_TTL_MS).contains(&(now - at)) => Some(admitted),
                _ => {
                    seen.remove(&sale.id);
                    None
                }
            }
        };
        if let Some(admitted) = admitted {
            return Ok(admitted);
        }
        let state = self.store.room_state(&sale.id).await.map_err(logged)?.ok_or(AppError::Internal)?;
        self.admitted_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sale.id.clone(), (now, state.admitted_through));
        Ok(state.admitted_through)
    }

    /// The room's part of the sale's public view.
    pub(crate) async fn room_view(&self, sale: &Sale) -> Result<Option<RoomView>, AppError> {
        let Some(config) = &sale.room else { return Ok(None) };
        let now = self.clock.now_ms();
        let snapshot = self.room_snapshot(sale, config).await?;
        let s = &snapshot.state;
        let phase = if now >= sale.ends_at_ms {
            "closed"
        } else if snapshot.remaining <= 0 {
            "sold_out"
        } else if now < config.prequeue_opens_at_ms {
            "not_open"
        } else if now < sale.starts_at_ms {
            "prequeue"
        } else if s.prequeue_size.is_none() {
            "drawing"
        } else if s.paused {
            "paused"
        } else {
            "admitting"
        };
        let draw_seed = if now >= sale.starts_at_ms {
            self.store.draw_seed(&sale.id).await.map_err(logged)?.map(hex::encode)
        } else {
            None
        };
        Ok(Some(RoomView {
            state: phase,
            length: s.places_issued().map_or(0, |n| (n - s.admitted_through).max(0)),
            admitted_through: s.admitted_through,
            admit_per_second: s.admit_per_second,
            prequeue_opens_at: rfc3339_ms(config.prequeue_opens_at_ms),
            draw_commitment: config.draw_commitment.clone(),
            draw_seed,
        }))
    }
}
