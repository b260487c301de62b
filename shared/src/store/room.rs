//! The waiting room's items (key formats in [`crate::keys`]):
//!
//! - `SALE#{id}` / `ROOM`: [`RoomState`], advanced about once a second by whichever request finds
//!   it stale (a conditional write, so two containers never both advance it);
//! - `SALE#{id}` / `DRAW`: the secret draw seed (shown by the status once the draw is complete),
//!   and the draw's lease and progress (one writer draws; a later run continues where it stopped);
//! - `SALE#{id}#PRE#{lane}` / `U#{userId}`: one marker per pre-queue entrant, spread over lanes,
//!   written with the entrant's own entry (a transaction of the joiner's own two items: no item
//!   is written by two joins' transactions). A marker is written `pending`; the joiner confirms it
//!   once it has read its lane unsealed, or withdraws it when it finds the lane sealed; the draw
//!   withdraws the markers still pending when it reads them. Only confirmed markers (and markers
//!   written before markers had states, by a transaction that checked the seal) are entrants;
//! - `SALE#{id}#PRE#{lane}` / `COUNT`: the lane's seal (set by the draw) and a count of its joins,
//!   a hint only (added outside the join's transaction: it may miss or repeat a join; it decides
//!   whether a request may draw the pre-queue, never a place);
//! - `SALE#{id}#PLACES` / `PLACES`: the counter of places issued after opening, taken in blocks
//!   (one write per block of up to `MAX_PLACE_BLOCK` joins of a container, not one per join);
//! - `SALE#{id}#QUEUE#{userId}` / `QUEUE`: one person's place, the proof that joining again is
//!   idempotent.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

use super::{Store, StoreError, applied, key};
use crate::ids::{SaleId, UserId};
use crate::keys::{
    DRAW_SK, ENTRANTS_PER_PAGE, LANE_COUNT_SK, PLACES_SK, QUEUE_SK, ROOM_SK, entrant_page_sk, entrants_pk,
    lane_entrant_sk, lane_pk, places_pk, queue_pk, sale_pk,
};
use crate::room::RoomState;
use crate::sale::Sale;

/// One person's entry in a sale's waiting room, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomEntry {
    pub pk: String,
    pub sk: String,
    pub sale_id: String,
    pub user_id: String,
    pub joined_at: i64,
    /// Joined before `startsAt`: placed by the draw.
    pub prequeue: bool,
    /// The place, once known: set by the draw for the pre-queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<i64>,
    /// After opening: the place among those who joined after opening (place = pre-queue size +
    /// this). Stored as `ticket`, its name in items written before.
    #[serde(rename = "ticket", default, skip_serializing_if = "Option::is_none")]
    pub place_after_opening: Option<i64>,
    /// A pre-queue drawn with a public beacon: the proof that this entrant's id is in the sealed
    /// list (written by the draw with the places).
    #[serde(rename = "entrantProof", default, skip_serializing_if = "Option::is_none")]
    pub entrant_proof: Option<crate::draw_check::InclusionProof>,
    /// The pre-queue lane of the entrant's marker (entries written before markers had states
    /// have none: their marker was written by a transaction that checked the seal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<u32>,
}

impl RoomEntry {
    fn new(sale: &SaleId, user: &UserId, joined_at: i64, prequeue: bool, place_after_opening: Option<i64>) -> Self {
        Self {
            pk: queue_pk(sale.as_str(), user.as_str()),
            sk: QUEUE_SK.into(),
            sale_id: sale.to_string(),
            user_id: user.to_string(),
            joined_at,
            prequeue,
            place: None,
            place_after_opening,
            entrant_proof: None,
            lane: None,
        }
    }

    /// A pre-queue entry whose entrant has not been placed by a draw and who may still have to
    /// settle where they stand (confirm their marker, or leave for a place after opening).
    pub(crate) fn unsettled_lane(&self) -> Option<u32> {
        self.lane.filter(|_| self.prequeue && self.place.is_none() && self.place_after_opening.is_none())
    }

    /// The place, given the room's state (post-opening places need the pre-queue size).
    pub(crate) fn place_in(&self, state: &RoomState) -> Option<i64> {
        self.place.or_else(|| self.place_after_opening.and_then(|n| state.place_after_opening(n)))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    state: RoomState,
}

#[derive(Serialize, Deserialize)]
struct DrawItem {
    pk: String,
    sk: String,
    seed: String,
    /// The pre-queue's size once every place is written (the draw is complete).
    #[serde(rename = "drawnSize", default, skip_serializing_if = "Option::is_none")]
    drawn_size: Option<i64>,
    /// Every lane is sealed: no pre-queue join can commit any more.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    sealed: bool,
    /// Places written so far, in the draw's order (places 1..=written).
    #[serde(default)]
    written: i64,
    /// The beacon round's signature (hex) the draw used, for a room with a public beacon.
    #[serde(rename = "beaconSignature", default, skip_serializing_if = "Option::is_none")]
    beacon_signature: Option<String>,
    /// The Merkle root (hex) of the sealed entrant list.
    #[serde(rename = "entrantsRoot", default, skip_serializing_if = "Option::is_none")]
    entrants_root: Option<String>,
    #[serde(rename = "entrantCount", default, skip_serializing_if = "Option::is_none")]
    entrant_count: Option<i64>,
}

/// The draw's item as stored: the operator's secret seed and, once the draw with a public beacon
/// ran, what it used and sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawRecord {
    pub seed: Vec<u8>,
    pub beacon_signature: Option<Vec<u8>>,
    pub entrants_root: Option<String>,
    pub entrant_count: Option<i64>,
}

/// How far a pre-queue's draw has come, as its lease holder found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DrawProgress {
    pub(crate) sealed: bool,
    pub(crate) written: i64,
}

/// What asking for the draw's lease came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DrawLease {
    /// This caller draws (or continues the draw) until the lease ends.
    Taken(DrawProgress),
    /// Another writer holds the lease.
    Held,
    /// The draw is complete: the pre-queue's size.
    Done(i64),
}

/// What a join came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// A new place.
    New(RoomEntry),
    /// This person was in line already.
    Existing(RoomEntry),
}

/// Where a pre-queue marker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// An entrant: the draw places them.
    Confirmed,
    /// Not an entrant (withdrawn by its joiner, who found the lane sealed, or by the draw, which
    /// found it still pending): the person joins after opening.
    Withdrawn,
}

type Item = HashMap<String, AttributeValue>;

/// Lanes sealed or read at once by the draw.
const LANES_AT_ONCE: usize = 32;
/// Place writes in flight at once during a draw.
pub(crate) const PLACE_WRITES_AT_ONCE: usize = 64;

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(pk: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{pk}: {e}"))
}

fn entry_of(item: Item) -> Result<RoomEntry, StoreError> {
    let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    from_item(item).map_err(|e| corrupt(&pk, e))
}

impl Store {
    /// The items a sale with a room needs besides its configuration: the initial room state and the
    /// secret seed. Created in the sale's own transaction.
    pub(crate) fn room_items(&self, sale: &Sale, seed: &[u8]) -> Result<Vec<Item>, StoreError> {
        let Some(config) = &sale.room else { return Ok(Vec::new()) };
        let room = RoomItem {
            pk: sale_pk(sale.id.as_str()),
            sk: ROOM_SK.into(),
            state: RoomState::new(config, sale.starts_at_ms),
        };
        let draw = DrawItem {
            pk: sale_pk(sale.id.as_str()),
            sk: DRAW_SK.into(),
            seed: hex::encode(seed),
            drawn_size: None,
            sealed: false,
            written: 0,
            beacon_signature: None,
            entrants_root: None,
            entrant_count: None,
        };
        Ok(vec![to_item(&room)?, to_item(&draw)?])
    }

    /// The room's state (strongly consistent: it is read about once a second per container).
    pub async fn room_state(&self, sale: &SaleId) -> Result<Option<RoomState>, StoreError> {
        let pk = sale_pk(sale.as_str());
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), ROOM_SK)))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(|i| from_item::<RoomItem>(i).map(|r| r.state).map_err(|e| corrupt(&pk, e))).transpose()
    }

    /// Replaces the room's state if nobody advanced it since `prev` was read. `false`: someone did.
    pub(crate) async fn advance_room(
        &self,
        sale: &SaleId,
        prev: &RoomState,
        next: &RoomState,
    ) -> Result<bool, StoreError> {
        let item = to_item(&RoomItem { pk: sale_pk(sale.as_str()), sk: ROOM_SK.into(), state: next.clone() })?;
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Also unchanged controls: an operator's pause or new rate is never overwritten.
            .condition_expression(
                "updatedAtMs = :prev AND admittedThrough = :admitted AND paused = :paused AND admitPerSecond = :rate",
            )
            .expression_attribute_values(":prev", AttributeValue::N(prev.updated_at_ms.to_string()))
            .expression_attribute_values(":admitted", AttributeValue::N(prev.admitted_through.to_string()))
            .expression_attribute_values(":paused", AttributeValue::Bool(prev.paused))
            .expression_attribute_values(":rate", AttributeValue::N(prev.admit_per_second.to_string()))
            .send()
            .await;
        applied(sent)
    }

    /// Operator controls: pause or resume admission, change its rate.
    pub async fn control_room(&self, sale: &SaleId, paused: Option<bool>, rate: Option<u32>) -> Result<(), StoreError> {
        let mut sets = Vec::new();
        let mut update =
            self.client.update_item().table_name(&self.table).set_key(Some(key(sale_pk(sale.as_str()), ROOM_SK)));
        if let Some(p) = paused {
            sets.push("paused = :p");
            update = update.expression_attribute_values(":p", AttributeValue::Bool(p));
        }
        if let Some(r) = rate {
            sets.push("admitPerSecond = :r");
            update = update.expression_attribute_values(":r", AttributeValue::N(r.to_string()));
        }
        if sets.is_empty() {
            return Ok(());
        }
        let sent = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::NoSuchSale(format!("{sale} (no waiting room)")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The draw seed (hex-decoded).
    pub async fn draw_seed(&self, sale: &SaleId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.draw_record(sale).await?.map(|d| d.seed))
    }

    /// The draw's item: the seed, and what a draw with a public beacon used and sealed.
    pub async fn draw_record(&self, sale: &SaleId) -> Result<Option<DrawRecord>, StoreError> {
        let pk = sale_pk(sale.as_str());
        let out = self.client.get_item().table_name(&self.table).set_key(Some(key(pk.clone(), DRAW_SK))).send().await?;
        let Some(item) = out.item else { return Ok(None) };
        let draw: DrawItem = from_item(item).map_err(|e| corrupt(&pk, e))?;
        let unhex = |h: &str| hex::decode(h).map_err(|e| corrupt(&pk, e));
        Ok(Some(DrawRecord {
            seed: unhex(&draw.seed)?,
            beacon_signature: draw.beacon_signature.as_deref().map(unhex).transpose()?,
            entrants_root: draw.entrants_root,
            entrant_count: draw.entrant_count,
        }))
    }

    /// Records what a draw with a public beacon used: the round's signature, the sealed entrant
    /// list's Merkle root and size. Written before the places (the status shows them only once
    /// the places are written); a draw run again writes the same values.
    pub(crate) async fn record_draw_outcome(
        &self,
        sale: &SaleId,
        signature: &[u8],
        entrants_root: &str,
        entrant_count: i64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(sale_pk(sale.as_str()), DRAW_SK)))
            .update_expression("SET beaconSignature = :s, entrantsRoot = :r, entrantCount = :n")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":s", AttributeValue::S(hex::encode(signature)))
            .expression_attribute_values(":r", AttributeValue::S(entrants_root.to_owned()))
            .expression_attribute_values(":n", AttributeValue::N(entrant_count.to_string()))
            .send()
            .await?;
        Ok(())
    }

    /// A person's place in the line (strongly consistent: a join is visible at once).
    pub(crate) async fn room_entry(&self, sale: &SaleId, user: &UserId) -> Result<Option<RoomEntry>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(queue_pk(sale.as_str(), user.as_str()), QUEUE_SK)))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(entry_of).transpose()
    }

    /// A pre-queue join: the person's entry and a pending marker in `lane`, in one transaction of
    /// the joiner's own two items (no item another join writes). `Existing`: the person joined
    /// before (the entry's failed condition returns it).
    pub(crate) async fn join_prequeue(
        &self,
        sale: &Sale,
        user: &UserId,
        lane: u32,
        now_ms: i64,
    ) -> Result<Joined, StoreError> {
        let entry = RoomEntry { lane: Some(lane), ..RoomEntry::new(&sale.id, user, now_ms, true, None) };
        let put_entry = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&entry)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        let marker = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(lane_pk(sale.id.as_str(), lane))),
            ("sk".to_owned(), AttributeValue::S(lane_entrant_sk(user.as_str()))),
            ("userId".to_owned(), AttributeValue::S(user.to_string())),
            ("pending".to_owned(), AttributeValue::Bool(true)),
        ]);
        let put_marker = Put::builder().table_name(&self.table).set_item(Some(marker)).build().map_err(build_err)?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_entry).build())
            .transact_items(TransactWriteItem::builder().put(put_marker).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Joined::New(entry)),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    let reasons = e.cancellation_reasons();
                    if reasons.first().and_then(|r| r.code()) == Some("ConditionalCheckFailed") {
                        let old = reasons[0].item().cloned().unwrap_or_default();
                        return Ok(Joined::Existing(entry_of(old)?));
                    }
                    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
                    Err(super::unexplained_cancellation("pre-queue join", &codes))
                }
                _ => Err(err.into()),
            },
        }
    }

    /// Counts a pre-queue join on its lane's count: a hint, outside the join's transaction (a
    /// single-item `ADD`, each lane's item taking 1/lanes of the joins).
    pub(crate) async fn count_prequeue_join(&self, sale: &SaleId, lane: u32) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(lane_pk(sale.as_str(), lane), LANE_COUNT_SK)))
            .update_expression("ADD entrants :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await?;
        Ok(())
    }

    /// Whether the draw has sealed `lane` (a strongly consistent read of the lane's own item).
    pub(crate) async fn lane_sealed(&self, sale: &SaleId, lane: u32) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(lane_pk(sale.as_str(), lane), LANE_COUNT_SK)))
            .projection_expression("sealed")
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item.and_then(|i| i.get("sealed").and_then(|v| v.as_bool().ok()).copied()).unwrap_or(false))
    }

    /// Settles a pending marker: confirms it (`confirm`: its joiner read the lane unsealed after
    /// writing it) or withdraws it. Whoever comes first decides (a conditional write on the
    /// marker alone); the answer is the marker's final state.
    pub(crate) async fn settle_marker(
        &self,
        sale: &SaleId,
        lane: u32,
        user: &str,
        confirm: bool,
    ) -> Result<Marker, StoreError> {
        let update = if confirm { "REMOVE pending" } else { "SET withdrawn = :t REMOVE pending" };
        let mut call = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(lane_pk(sale.as_str(), lane), &lane_entrant_sk(user))))
            .update_expression(update)
            .condition_expression("attribute_exists(pending)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !confirm {
            call = call.expression_attribute_values(":t", AttributeValue::Bool(true));
        }
        match call.send().await {
            Ok(_) => Ok(if confirm { Marker::Confirmed } else { Marker::Withdrawn }),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => Ok(match e.item() {
                    // Settled before: by this person's other request, or by the draw.
                    Some(old) if !old.contains_key("withdrawn") => Marker::Confirmed,
                    // Withdrawn, or no marker at all: not an entrant.
                    _ => Marker::Withdrawn,
                }),
                _ => Err(err.into()),
            },
        }
    }

    /// A pre-queue entrant whose marker was withdrawn joins after opening, with
    /// `place_after_opening`: the entry becomes a post-opening one, unless it already is (this
    /// request's own write whose answer was lost comes back as `New`, another's as `Existing`) or
    /// the draw placed it.
    pub(crate) async fn leave_prequeue(
        &self,
        sale: &SaleId,
        user: &UserId,
        place_after_opening: i64,
    ) -> Result<Joined, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(queue_pk(sale.as_str(), user.as_str()), QUEUE_SK)))
            .update_expression("SET prequeue = :f, ticket = :n")
            .condition_expression("prequeue = :t AND attribute_not_exists(place) AND attribute_not_exists(ticket)")
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":n", AttributeValue::N(place_after_opening.to_string()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Joined::New(entry_of(out.attributes.unwrap_or_default())?)),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                    let found = entry_of(e.item().cloned().unwrap_or_default())?;
                    if !found.prequeue && found.place_after_opening == Some(place_after_opening) {
                        Ok(Joined::New(found))
                    } else {
                        Ok(Joined::Existing(found))
                    }
                }
                _ => Err(err.into()),
            },
        }
    }

    /// Reserves `count` places after opening for a container's joiners; returns the first and last.
    pub(crate) async fn take_places_after_opening(&self, sale: &SaleId, count: i64) -> Result<(i64, i64), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(places_pk(sale.as_str()), PLACES_SK)))
            .update_expression("ADD issued :n")
            .expression_attribute_values(":n", AttributeValue::N(count.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await?;
        let last = out
            .attributes
            .and_then(|a| a.get("issued").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok()))
            .ok_or_else(|| corrupt(&places_pk(sale.as_str()), "no issued count"))?;
        Ok((last - count + 1, last))
    }

    /// Places after opening issued so far.
    pub(crate) async fn places_issued_after_opening(&self, sale: &SaleId) -> Result<i64, StoreError> {
        let pk = places_pk(sale.as_str());
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), PLACES_SK)))
            .consistent_read(true)
            .send()
            .await?;
        let issued = out.item.and_then(|i| i.get("issued").and_then(|v| v.as_n().ok()).map(|n| n.parse::<i64>()));
        issued.transpose().map(|n| n.unwrap_or(0)).map_err(|e| corrupt(&pk, e))
    }

    /// A join after opening with its place after opening: the entry, unless the person is in the
    /// room already.
    pub(crate) async fn join_after_opening(
        &self,
        sale: &SaleId,
        user: &UserId,
        place_after_opening: i64,
        now_ms: i64,
    ) -> Result<Joined, StoreError> {
        let entry = RoomEntry::new(sale, user, now_ms, false, Some(place_after_opening));
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&entry)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Joined::New(entry)),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let found = entry_of(e.item().cloned().unwrap_or_default())?;
                    // Each place after opening is handed to one request only: an entry holding
                    // this one is this request's own put, committed by an attempt whose answer
                    // was lost (the SDK retried it).
                    if !found.prequeue && found.place_after_opening == Some(place_after_opening) {
                        Ok(Joined::New(found))
                    } else {
                        Ok(Joined::Existing(found))
                    }
                }
                _ => Err(err.into()),
            },
        }
    }

    /// About how many people joined the pre-queue so far: the lanes' counts (a hint: counted
    /// outside the joins' transactions), in one `BatchGetItem` per 100 lanes.
    pub(crate) async fn prequeue_count(&self, sale: &SaleId, lanes: u32) -> Result<i64, StoreError> {
        let keys = (0..lanes).map(|l| key(lane_pk(sale.as_str(), l), LANE_COUNT_SK)).collect();
        let mut total = 0;
        for item in self.batch_get(keys, true).await? {
            let n = item.get("entrants").and_then(|v| v.as_n().ok()).map_or(Ok(0), |n| n.parse::<i64>());
            total += n.map_err(|e| corrupt(&lane_pk(sale.as_str(), 0), e))?;
        }
        Ok(total)
    }

    /// Takes the lease on a pre-queue's draw for `owner` until `until_ms` (or renews it), unless
    /// another writer holds it or the draw is complete. One conditional write on the draw item.
    pub(crate) async fn take_draw_lease(
        &self,
        sale: &SaleId,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<DrawLease, StoreError> {
        let pk = sale_pk(sale.as_str());
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), DRAW_SK)))
            .update_expression("SET leaseOwner = :o, leaseUntil = :u")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(drawnSize) \
                 AND (attribute_not_exists(leaseUntil) OR leaseUntil <= :now OR leaseOwner = :o)",
            )
            .expression_attribute_values(":o", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":u", AttributeValue::N(until_ms.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let draw_of = |item: Item| from_item::<DrawItem>(item).map_err(|e| corrupt(&pk, e));
        match sent {
            Ok(out) => {
                let draw = draw_of(out.attributes.unwrap_or_default())?;
                Ok(DrawLease::Taken(DrawProgress { sealed: draw.sealed, written: draw.written }))
            }
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => match e.item().cloned() {
                    None => Err(StoreError::NoSuchSale(format!("{sale} (no draw item)"))),
                    Some(item) => Ok(draw_of(item)?.drawn_size.map_or(DrawLease::Held, DrawLease::Done)),
                },
                _ => Err(err.into()),
            },
        }
    }

    /// Stores the draw's progress and renews (or, with `until_ms` = now, gives up) the lease, if
    /// `owner` still holds it. `false`: another writer took it over.
    pub(crate) async fn save_draw_progress(
        &self,
        sale: &SaleId,
        owner: &str,
        progress: DrawProgress,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(sale_pk(sale.as_str()), DRAW_SK)))
            .update_expression("SET sealed = :s, written = :w, leaseUntil = :u")
            .condition_expression("leaseOwner = :o AND attribute_not_exists(drawnSize)")
            .expression_attribute_values(":o", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":s", AttributeValue::Bool(progress.sealed))
            .expression_attribute_values(":w", AttributeValue::N(progress.written.to_string()))
            .expression_attribute_values(":u", AttributeValue::N(until_ms.to_string()))
            .send()
            .await;
        applied(sent)
    }

    /// Marks the draw complete with the pre-queue's `size` and ends the lease, if `owner` still
    /// holds it. `false`: another writer took it over.
    pub(crate) async fn finish_draw(&self, sale: &SaleId, owner: &str, size: i64) -> Result<bool, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(sale_pk(sale.as_str()), DRAW_SK)))
            .update_expression("SET drawnSize = :n, written = :n REMOVE leaseOwner, leaseUntil")
            .condition_expression("leaseOwner = :o AND attribute_not_exists(drawnSize)")
            .expression_attribute_values(":o", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":n", AttributeValue::N(size.to_string()))
            .send()
            .await;
        applied(sent)
    }

    /// Closes the pre-queue: seals every lane, so that no joiner confirms a marker any more (a
    /// joiner confirms only after reading its lane unsealed). Sealing a sealed lane again changes
    /// nothing.
    pub(crate) async fn seal_prequeue(&self, sale: &SaleId, lanes: u32) -> Result<(), StoreError> {
        // Every lane sealed before any is read: a join commits before its lane's seal or not at
        // all. Lanes in parallel, a bounded number at a time.
        let all: Vec<u32> = (0..lanes).collect();
        for chunk in all.chunks(LANES_AT_ONCE) {
            let seals = chunk.iter().map(|&lane| {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(lane_pk(sale.as_str(), lane), LANE_COUNT_SK)))
                    .update_expression("SET sealed = :t")
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .send()
            });
            for handle in seals.map(tokio::spawn).collect::<Vec<_>>() {
                handle.await.map_err(|e| StoreError::Unavailable(format!("a lane seal did not finish: {e}")))??;
            }
        }
        Ok(())
    }

    /// Every entrant of a sealed pre-queue (each lane's confirmed markers, consistent reads): the
    /// draw's exact list, and its size the pre-queue's.
    pub(crate) async fn prequeue_entrants(&self, sale: &SaleId, lanes: u32) -> Result<Vec<String>, StoreError> {
        let all: Vec<u32> = (0..lanes).collect();
        let mut users = Vec::new();
        for chunk in all.chunks(LANES_AT_ONCE) {
            let reads = chunk.iter().map(|&lane| {
                let (store, sale) = (self.clone(), sale.clone());
                tokio::spawn(async move { store.lane_entrants(&sale, lane).await })
            });
            for handle in reads.collect::<Vec<_>>() {
                users.extend(
                    handle.await.map_err(|e| StoreError::Unavailable(format!("a lane read did not finish: {e}")))??,
                );
            }
        }
        Ok(users)
    }

    /// The entrants of one sealed lane (consistent reads, every page): its confirmed markers. A
    /// marker still pending is settled here, withdrawn unless its joiner confirms it first; once
    /// a lane is sealed nobody confirms a marker any more, so every later read finds the same
    /// entrants (a draw that continues draws the same list).
    async fn lane_entrants(&self, sale: &SaleId, lane: u32) -> Result<Vec<String>, StoreError> {
        let pk = lane_pk(sale.as_str(), lane);
        let mut users = Vec::new();
        let mut pending = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :u)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":u", AttributeValue::S("U#".into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in out.items.unwrap_or_default() {
                let Some(AttributeValue::S(u)) = item.get("userId") else { continue };
                if item.contains_key("withdrawn") {
                    continue;
                }
                if item.contains_key("pending") {
                    pending.push(u.clone());
                } else {
                    users.push(u.clone());
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        for user in pending {
            if self.settle_marker(sale, lane, &user, false).await? == Marker::Confirmed {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// Writes the draw's places onto the pre-queue entries, `PLACE_WRITES_AT_ONCE` at a time, each
    /// with its inclusion proof in a public draw (one write per entrant; idempotent: writing a place
    /// again changes nothing).
    pub(crate) async fn set_places(
        &self,
        sale: &SaleId,
        places: &[(String, i64)],
        proofs: &std::collections::HashMap<String, crate::draw_check::InclusionProof>,
    ) -> Result<(), StoreError> {
        for chunk in places.chunks(PLACE_WRITES_AT_ONCE) {
            let mut writes = Vec::with_capacity(chunk.len());
            for (user, place) in chunk {
                let write = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(queue_pk(sale.as_str(), user), QUEUE_SK)))
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":p", AttributeValue::N(place.to_string()));
                // A public draw's place carries its proof in the same write.
                let write = match proofs.get(user) {
                    Some(proof) => {
                        write.update_expression("SET place = :p, entrantProof = :x").expression_attribute_values(
                            ":x",
                            serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(proof)?,
                        )
                    }
                    None => write.update_expression("SET place = :p"),
                };
                writes.push(tokio::spawn(write.send()));
            }
            // A write that did not finish (its task panicked or was cancelled) fails the draw too:
            // a place silently missing would leave that person waiting for ever.
            for handle in writes {
                handle.await.map_err(|e| StoreError::Unavailable(format!("a place write did not finish: {e}")))??;
            }
        }
        Ok(())
    }

    /// Every entry of a sale's line (a scan: for the operator's `verify-draw`, never on a request path).
    pub async fn room_entries(&self, sale: &SaleId) -> Result<Vec<RoomEntry>, StoreError> {
        self.scan_kind(&queue_pk(sale.as_str(), ""), QUEUE_SK).await?.into_iter().map(entry_of).collect()
    }

    /// The sealed pre-queue as it is published: each placed entrant's SHA-256 id and place, with
    /// the list's Merkle root (an operator read: it scans the entries).
    pub async fn entrant_list(&self, sale: &SaleId) -> Result<crate::draw_check::EntrantList, StoreError> {
        let places: Vec<(String, i64)> = self
            .room_entries(sale)
            .await?
            .into_iter()
            .filter(|e| e.prequeue)
            .filter_map(|e| e.place.map(|p| (e.user_id, p)))
            .collect();
        Ok(crate::draw_check::EntrantList::new(sale.as_str(), &places))
    }

    /// Publishes a drawn pre-queue's entrant ids (SHA-256 of each user id), in place order, as
    /// pages of [`ENTRANTS_PER_PAGE`] (idempotent: a draw that continues writes the same pages).
    pub(crate) async fn put_entrant_pages(&self, sale: &SaleId, ids: &[[u8; 32]]) -> Result<(), StoreError> {
        // An empty draw still publishes its (empty) first page.
        let mut pages: Vec<&[[u8; 32]]> = ids.chunks(ENTRANTS_PER_PAGE).collect();
        if pages.is_empty() {
            pages.push(&[]);
        }
        let count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
        let writes = pages.iter().zip(0u32..).map(|(page, n)| {
            let blob: Vec<u8> = page.iter().flatten().copied().collect();
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(entrants_pk(sale.as_str())))
                .item("sk", AttributeValue::S(entrant_page_sk(n)))
                .item("pages", AttributeValue::N(count.to_string()))
                .item("entrants", AttributeValue::N(ids.len().to_string()))
                .item("ids", AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(blob)))
                .send()
        });
        for handle in writes.map(tokio::spawn).collect::<Vec<_>>() {
            handle.await.map_err(|e| StoreError::Unavailable(format!("a page write did not finish: {e}")))??;
        }
        Ok(())
    }

    /// Page `page` of a published entrant list: (ids in place order, pages, entrants), or `None`.
    pub(crate) async fn entrant_page(
        &self,
        sale: &SaleId,
        page: u32,
    ) -> Result<Option<(Vec<[u8; 32]>, u32, i64)>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(entrants_pk(sale.as_str()), &entrant_page_sk(page))))
            .send()
            .await?
            .item;
        let Some(item) = item else { return Ok(None) };
        let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
        let (Some(pages), Some(entrants), Some(AttributeValue::B(blob))) =
            (number("pages"), number("entrants"), item.get("ids"))
        else {
            return Err(StoreError::Corrupt(format!("entrant page {page} of {sale}")));
        };
        let ids = blob.as_ref().chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect();
        Ok(Some((ids, u32::try_from(pages).unwrap_or(0), entrants)))
    }
}
