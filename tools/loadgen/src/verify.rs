//! The invariants of a flash sale, checked over what the clients were told and what the table
//! holds afterwards.
//!
//! From the replies alone ([`check_replies`]): no more buyers than stock, no user told twice that
//! they bought, every 201 well formed with an order id of its own, and an `already_purchased`
//! that names the order the user was sold.
//!
//! Against the table ([`check_store`]): no more purchases than stock; the run sold exactly
//! min(stock left, distinct users) (a shortfall is allowed only where users' replies were all
//! lost, i.e. 5xx / timeouts); every shard ≥ 0 and their sum = stock − purchases; no user twice;
//! every 201 has a stored purchase with the same order id; every purchase stored by the run
//! belongs to a user who got a 201 or whose reply was lost (reported apart: a 503 that committed
//! is not a lie, but a client must look it up); every `already_purchased` matches a stored
//! purchase.
//!
//! A sale with variants or several items per customer ([`check_sized_store`],
//! [`check_sized_replies`]): per variant, its shards' stock + the items its live orders hold =
//! its total; per shard, what it gave = what the live orders took from it; the items of all live
//! orders = the items the shards gave; no customer holds more than `maxPerCustomer` live items, and
//! each customer's stored live count and order set are their live orders'; every 201 names a stored
//! order of the variant and quantity asked for; every order stored by the run was answered 201 to
//! its buyer or had its reply lost.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::attempt::{Attempt, Meaning, Reply};

/// A purchase as read back from the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPurchase {
    pub user_id: String,
    pub order_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Violation {
    /// More users were told "bought" than there was stock left at the start.
    SuccessesExceedStock {
        buyers: u64,
        stock_left: i64,
    },
    /// A user got more than one 201.
    UserWonTwice {
        user: String,
        successes: u64,
    },
    /// A 201 without an order id, or naming another user.
    MalformedSuccess {
        user: String,
        detail: String,
    },
    /// Two users' 201s carry the same order id.
    SharedOrderId {
        order_id: String,
        users: Vec<String>,
    },
    /// `already_purchased` named another order than the one the user's 201 carried.
    AlreadyPurchasedOtherOrder {
        user: String,
        replied: String,
        won: String,
    },
    /// More purchases stored than the sale's stock.
    Oversold {
        purchases: u64,
        stock: i64,
    },
    /// The run stored more purchases than min(stock left, users who attempted).
    SoldTooMany {
        sold: u64,
        at_most: u64,
    },
    /// The run stored fewer purchases than min(stock left, users with a definite reply).
    SoldTooFew {
        sold: u64,
        at_least: u64,
    },
    NegativeShard {
        shard: usize,
        remaining: i64,
    },
    /// The shards do not add up to stock − purchases.
    ShardSumMismatch {
        sum: i64,
        expected: i64,
    },
    UserStoredTwice {
        user: String,
        records: u64,
    },
    /// A 201 whose purchase is not in the table.
    SuccessWithoutRecord {
        user: String,
        order_id: String,
    },
    /// A 201 whose order id differs from the stored one.
    SuccessOrderMismatch {
        user: String,
        replied: String,
        stored: String,
    },
    /// A purchase stored by the run for a user who was only ever refused.
    RecordWithoutSuccess {
        user: String,
        order_id: String,
    },
    /// `already_purchased` for a user with no stored purchase.
    AlreadyPurchasedWithoutRecord {
        user: String,
    },
    /// `already_purchased` naming another order than the stored one.
    AlreadyPurchasedOrderMismatch {
        user: String,
        replied: String,
        stored: String,
    },
    /// A purchase stored during the run by a user this run never sent.
    ForeignRecord {
        user: String,
        order_id: String,
    },
    /// `--require-clean-answers`: answers with a status other than 201, 409 and 503.
    UnexpectedStatus {
        status: u16,
        count: u64,
    },
    /// `--require-clean-answers`: 503s without a `Retry-After` header.
    UnavailableWithoutRetryAfter {
        count: u64,
    },
    /// `--require-clean-answers`: requests that timed out or whose connection broke.
    LostReplies {
        timeouts: u64,
        transport_errors: u64,
    },
    /// Sized sale: the 201s promised more items than the stock left at the start.
    ItemsExceedStock {
        items: u64,
        stock_left: i64,
    },
    /// Sized sale: a variant's shards and its live orders' items do not add up to its total.
    VariantStockMismatch {
        variant: String,
        remaining: i64,
        live_items: i64,
        total: i64,
    },
    /// Sized sale: a shard gave (`initial − remaining`) another number of items than the live
    /// orders took from it.
    ShardTakenMismatch {
        shard: u32,
        gave: i64,
        live_taken: i64,
    },
    /// Sized sale: the live orders hold another number of items than the shards gave in all.
    ItemsTakenMismatch {
        live_items: i64,
        taken: i64,
    },
    /// Sized sale: an order took other than its quantity, or from a shard of another variant.
    OrderTakesWrong {
        order_id: String,
        detail: String,
    },
    /// Sized sale: a customer holds more live items than `maxPerCustomer`.
    CustomerOverLimit {
        user: String,
        live_items: i64,
        max: u32,
    },
    /// Sized sale: a customer's stored live count or order set is not what their live orders hold.
    CustomerCountMismatch {
        user: String,
        stored_live: i64,
        live_items: i64,
        detail: String,
    },
    /// Sized sale: a 201's stored order is not of the variant or quantity asked for.
    OrderNotAsAsked {
        user: String,
        order_id: String,
        asked: String,
        stored: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Violation::*;
        match self {
            SuccessesExceedStock { buyers, stock_left } => {
                write!(f, "oversold in replies: {buyers} users got 201 but only {stock_left} items were left")
            }
            UserWonTwice { user, successes } => write!(f, "user {user} got {successes} × 201"),
            MalformedSuccess { user, detail } => write!(f, "malformed 201 for {user}: {detail}"),
            SharedOrderId { order_id, users } => {
                write!(f, "order id {order_id} was given to several users: {}", users.join(", "))
            }
            AlreadyPurchasedOtherOrder { user, replied, won } => {
                write!(f, "user {user}: already_purchased names order {replied}, but the 201 said {won}")
            }
            Oversold { purchases, stock } => write!(f, "OVERSOLD: {purchases} purchases stored for a stock of {stock}"),
            SoldTooMany { sold, at_most } => {
                write!(f, "the run stored {sold} purchases, more than the {at_most} possible")
            }
            SoldTooFew { sold, at_least } => {
                write!(
                    f,
                    "the run stored {sold} purchases, fewer than the {at_least} owed (stock left and buyers remained)"
                )
            }
            NegativeShard { shard, remaining } => {
                write!(f, "shard {shard} is below zero: {remaining}")
            }
            ShardSumMismatch { sum, expected } => {
                write!(f, "shards add up to {sum}, expected stock − purchases = {expected}")
            }
            UserStoredTwice { user, records } => {
                write!(f, "user {user} has {records} stored purchases")
            }
            SuccessWithoutRecord { user, order_id } => {
                write!(f, "user {user} got 201 (order {order_id}) but nothing is stored")
            }
            SuccessOrderMismatch { user, replied, stored } => {
                write!(f, "user {user} got 201 with order {replied} but order {stored} is stored")
            }
            RecordWithoutSuccess { user, order_id } => {
                write!(f, "order {order_id} is stored for {user}, who was only ever refused")
            }
            AlreadyPurchasedWithoutRecord { user } => {
                write!(f, "user {user} was told already_purchased but has no stored purchase")
            }
            AlreadyPurchasedOrderMismatch { user, replied, stored } => {
                write!(f, "user {user}: already_purchased names order {replied} but order {stored} is stored")
            }
            ForeignRecord { user, order_id } => {
                write!(f, "order {order_id} for {user} was stored during the run by someone else")
            }
            UnexpectedStatus { status, count } => {
                write!(f, "{count} answers were {status}; only 201, 409 and 503 with Retry-After are clean")
            }
            UnavailableWithoutRetryAfter { count } => {
                write!(f, "{count} answers were 503 without Retry-After")
            }
            LostReplies { timeouts, transport_errors } => write!(
                f,
                "{timeouts} requests timed out and {transport_errors} connections failed or broke (hangs / resets)"
            ),
            ItemsExceedStock { items, stock_left } => {
                write!(f, "oversold in replies: 201s for {items} items but only {stock_left} were left")
            }
            VariantStockMismatch { variant, remaining, live_items, total } => write!(
                f,
                "variant {variant}: stock {remaining} + live items {live_items} = {} ≠ total {total}",
                remaining + live_items
            ),
            ShardTakenMismatch { shard, gave, live_taken } => {
                write!(f, "shard {shard} gave {gave} items but live orders took {live_taken} from it")
            }
            ItemsTakenMismatch { live_items, taken } => {
                write!(f, "live orders hold {live_items} items but the shards gave {taken}")
            }
            OrderTakesWrong { order_id, detail } => write!(f, "order {order_id}: {detail}"),
            CustomerOverLimit { user, live_items, max } => {
                write!(f, "customer {user} holds {live_items} live items, above maxPerCustomer {max}")
            }
            CustomerCountMismatch { user, stored_live, live_items, detail } => {
                write!(f, "customer {user}: stored live count {stored_live}, live orders hold {live_items}{detail}")
            }
            OrderNotAsAsked { user, order_id, asked, stored } => {
                write!(f, "user {user}: 201 for {asked} but order {order_id} is stored as {stored}")
            }
        }
    }
}

/// Attempts whose outcome the client could not know (5xx, timeout, broken connection).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnknownOutcomes {
    pub attempts: u64,
    pub users: u64,
    /// Users without any 201 whose purchase is nevertheless stored: it committed behind a lost
    /// reply. `None` when the table was not read.
    pub committed_users: Option<Vec<String>>,
    /// Users with an unknown reply and no stored purchase.
    pub not_committed_users: Option<u64>,
}

/// What the run should have sold and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoldCount {
    pub stock: i64,
    pub stock_left_at_start: i64,
    pub purchases_before: u64,
    pub purchases_after: u64,
    pub sold_in_run: u64,
    pub users_attempted: u64,
    pub users_with_definite_reply: u64,
    pub at_most: u64,
    pub at_least: u64,
    pub shards: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreReport {
    pub sold: SoldCount,
    pub unknown: UnknownOutcomes,
    pub violations: Vec<Violation>,
}

/// The table after the run, and what it held before.
pub struct StoreFacts<'a> {
    pub stock: i64,
    pub before: &'a [StoredPurchase],
    pub after: &'a [StoredPurchase],
    pub shards: &'a [i64],
}

fn by_user(attempts: &[Attempt]) -> BTreeMap<&str, Vec<&Attempt>> {
    let mut users: BTreeMap<&str, Vec<&Attempt>> = BTreeMap::new();
    for a in attempts {
        users.entry(a.user.as_str()).or_default().push(a);
    }
    users
}

/// The checks that need only the replies. `stock_left` is the stock at the start of the run.
pub fn check_replies(attempts: &[Attempt], stock_left: i64) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut buyers = 0u64;
    let mut owners: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (user, tries) in by_user(attempts) {
        let wins: Vec<&Attempt> = tries.iter().copied().filter(|a| a.reply.meaning() == Meaning::Bought).collect();
        if wins.is_empty() {
            continue;
        }
        buyers += 1;
        if wins.len() > 1 {
            violations.push(Violation::UserWonTwice { user: user.to_owned(), successes: wins.len() as u64 });
        }
        for win in &wins {
            match (&win.reply, win.reply.order_id()) {
                (_, None) => {
                    violations.push(Violation::MalformedSuccess { user: user.into(), detail: "no orderId".into() })
                }
                (crate::attempt::Reply::Http { user_id: Some(u), .. }, Some(_)) if u != user => violations
                    .push(Violation::MalformedSuccess { user: user.into(), detail: format!("body names user {u}") }),
                (_, Some(order)) => owners.entry(order).or_default().push(user.to_owned()),
            }
        }
        let won = wins.iter().find_map(|a| a.reply.order_id());
        for told in tries.iter().filter(|a| a.reply.is_already_purchased()) {
            if let (Some(replied), Some(won)) = (told.reply.order_id(), won)
                && replied != won
            {
                violations.push(Violation::AlreadyPurchasedOtherOrder {
                    user: user.into(),
                    replied: replied.into(),
                    won: won.into(),
                });
            }
        }
    }
    for (order, mut users) in owners {
        users.dedup();
        if users.len() > 1 {
            violations.push(Violation::SharedOrderId { order_id: order.to_owned(), users });
        }
    }
    if i64::try_from(buyers).unwrap_or(i64::MAX) > stock_left.max(0) {
        violations.insert(0, Violation::SuccessesExceedStock { buyers, stock_left });
    }
    violations
}

/// The checks against the table. `attempts` are the attempts that were sent.
pub fn check_store(attempts: &[Attempt], facts: &StoreFacts<'_>) -> StoreReport {
    let mut violations = Vec::new();
    let before_users: HashSet<&str> = facts.before.iter().map(|p| p.user_id.as_str()).collect();
    let users = by_user(attempts);

    // Stored state on its own.
    let purchases_after = facts.after.len() as u64;
    if i64::try_from(purchases_after).unwrap_or(i64::MAX) > facts.stock {
        violations.push(Violation::Oversold { purchases: purchases_after, stock: facts.stock });
    }
    let mut stored: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in facts.after {
        stored.entry(p.user_id.as_str()).or_default().push(p.order_id.as_str());
    }
    let mut twice: Vec<_> = stored.iter().filter(|(_, o)| o.len() > 1).collect();
    twice.sort();
    for (user, orders) in twice {
        violations.push(Violation::UserStoredTwice { user: (*user).to_owned(), records: orders.len() as u64 });
    }
    for (shard, &remaining) in facts.shards.iter().enumerate() {
        if remaining < 0 {
            violations.push(Violation::NegativeShard { shard, remaining });
        }
    }
    let sum: i64 = facts.shards.iter().sum();
    let expected_sum = facts.stock - i64::try_from(purchases_after).unwrap_or(i64::MAX);
    if sum != expected_sum {
        violations.push(Violation::ShardSumMismatch { sum, expected: expected_sum });
    }

    // How many the run should have sold.
    let stock_left = (facts.stock - facts.before.len() as i64).max(0);
    let run_users: Vec<(&str, &Vec<&Attempt>)> =
        users.iter().filter(|(u, _)| !before_users.contains(*u)).map(|(u, a)| (*u, a)).collect();
    let attempted = run_users.len() as u64;
    let definite =
        run_users.iter().filter(|(_, a)| a.iter().any(|t| t.reply.meaning() != Meaning::Unknown)).count() as u64;
    let new_records: Vec<&StoredPurchase> =
        facts.after.iter().filter(|p| !before_users.contains(p.user_id.as_str())).collect();
    // Strangers' purchases are flagged below; the count is about this run's users.
    let sold = new_records.iter().filter(|p| users.contains_key(p.user_id.as_str())).count() as u64;
    let at_most = attempted.min(stock_left as u64);
    let at_least = definite.min(stock_left as u64);
    if sold > at_most {
        violations.push(Violation::SoldTooMany { sold, at_most });
    } else if sold < at_least {
        violations.push(Violation::SoldTooFew { sold, at_least });
    }

    // Replies against records.
    let mut unknown =
        UnknownOutcomes { committed_users: Some(Vec::new()), not_committed_users: Some(0), ..Default::default() };
    for (user, tries) in &users {
        let record = stored.get(user).and_then(|o| o.first().copied());
        let unknown_tries = tries.iter().filter(|a| a.reply.meaning() == Meaning::Unknown).count() as u64;
        unknown.attempts += unknown_tries;
        let mut won = false;
        for win in tries.iter().filter(|a| a.reply.meaning() == Meaning::Bought) {
            won = true;
            let replied = win.reply.order_id().unwrap_or("(none)");
            match record {
                None => {
                    violations.push(Violation::SuccessWithoutRecord { user: (*user).into(), order_id: replied.into() })
                }
                Some(stored) if stored != replied => violations.push(Violation::SuccessOrderMismatch {
                    user: (*user).into(),
                    replied: replied.into(),
                    stored: stored.into(),
                }),
                Some(_) => {}
            }
        }
        for told in tries.iter().filter(|a| a.reply.is_already_purchased()) {
            match (record, told.reply.order_id()) {
                (None, _) => violations.push(Violation::AlreadyPurchasedWithoutRecord { user: (*user).into() }),
                (Some(stored), Some(replied)) if stored != replied && !won => {
                    violations.push(Violation::AlreadyPurchasedOrderMismatch {
                        user: (*user).into(),
                        replied: replied.into(),
                        stored: stored.into(),
                    })
                }
                _ => {}
            }
        }
        if unknown_tries > 0 {
            unknown.users += 1;
        }
        if unknown_tries > 0 && record.is_none() {
            *unknown.not_committed_users.get_or_insert_default() += 1;
        }
        match (record.filter(|_| !before_users.contains(user)), won, unknown_tries > 0) {
            (Some(_), false, true) => unknown.committed_users.get_or_insert_default().push((*user).into()),
            (Some(order), false, false) => {
                violations.push(Violation::RecordWithoutSuccess { user: (*user).into(), order_id: order.into() })
            }
            _ => {}
        }
    }
    for p in &new_records {
        if !users.contains_key(p.user_id.as_str()) {
            violations.push(Violation::ForeignRecord { user: p.user_id.clone(), order_id: p.order_id.clone() });
        }
    }

    let sold_count = SoldCount {
        stock: facts.stock,
        stock_left_at_start: stock_left,
        purchases_before: facts.before.len() as u64,
        purchases_after,
        sold_in_run: sold,
        users_attempted: attempted,
        users_with_definite_reply: definite,
        at_most,
        at_least,
        shards: facts.shards.to_vec(),
    };
    StoreReport { sold: sold_count, unknown, violations }
}

/// The checks of `--require-clean-answers`: every attempt was answered 201, 409, or 503 with a
/// `Retry-After` header (a stack that sheds load tells clients when to come back), and none timed
/// out or lost its connection.
pub fn check_answers(attempts: &[Attempt]) -> Vec<Violation> {
    let mut unexpected: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut no_retry_after, mut timeouts, mut transport_errors) = (0, 0, 0);
    for a in attempts {
        match &a.reply {
            Reply::Http { status: 201 | 409, .. } => {}
            Reply::Http { status: 503, retry_after_secs, .. } => {
                no_retry_after += u64::from(retry_after_secs.is_none())
            }
            Reply::Http { status, .. } => *unexpected.entry(*status).or_insert(0) += 1,
            Reply::Timeout => timeouts += 1,
            Reply::Transport { .. } => transport_errors += 1,
        }
    }
    let mut violations: Vec<Violation> =
        unexpected.into_iter().map(|(status, count)| Violation::UnexpectedStatus { status, count }).collect();
    if no_retry_after > 0 {
        violations.push(Violation::UnavailableWithoutRetryAfter { count: no_retry_after });
    }
    if timeouts + transport_errors > 0 {
        violations.push(Violation::LostReplies { timeouts, transport_errors });
    }
    violations
}

/// Unknown outcomes from the replies alone (the table was not read).
pub fn unknown_from_replies(attempts: &[Attempt]) -> UnknownOutcomes {
    let unknown: Vec<&Attempt> = attempts.iter().filter(|a| a.reply.meaning() == Meaning::Unknown).collect();
    let users: HashSet<&str> = unknown.iter().map(|a| a.user.as_str()).collect();
    UnknownOutcomes {
        attempts: unknown.len() as u64,
        users: users.len() as u64,
        committed_users: None,
        not_committed_users: None,
    }
}

/// What one attempt asked for on a sale with variants or several items per customer: the
/// variant named (`None`: none named) and the quantity (`None`: none sent, i.e. 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Choice {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
}

impl Choice {
    pub fn items(&self) -> u32 {
        self.quantity.unwrap_or(1)
    }
}

/// An order as read back from the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredOrder {
    pub user_id: String,
    pub order_id: String,
    pub variant_id: String,
    pub quantity: u32,
    /// Reserved or confirmed as stored (a hold that ended but is not released yet still holds
    /// its items).
    pub live: bool,
    /// What it took, per shard: `(shard, items)`.
    pub takes: Vec<(u32, i64)>,
}

/// A variant as the sale defines it: its total and its shards `first..first + shards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredVariant {
    pub variant_id: String,
    pub total: i64,
    pub first: u32,
    pub shards: u32,
}

/// A customer's item (`CUSTOMER`, sales with `maxPerCustomer` > 1): live items and live orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCustomer {
    pub user_id: String,
    pub live: i64,
    pub orders: Vec<String>,
}

/// The stored state of a sale with variants or several items per customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizedState {
    pub max_per_customer: u32,
    pub variants: Vec<StoredVariant>,
    /// What each shard started with (numbered across the sale).
    pub initial: Vec<i64>,
    /// What each shard holds now.
    pub shards: Vec<i64>,
    pub orders: Vec<StoredOrder>,
    /// The customers' items; `None` for a sale with one item per customer (it has none).
    pub customers: Option<Vec<StoredCustomer>>,
}

impl SizedState {
    /// Items held by live orders, per variant.
    pub fn live_items_by_variant(&self) -> BTreeMap<&str, i64> {
        let mut live: BTreeMap<&str, i64> = self.variants.iter().map(|v| (v.variant_id.as_str(), 0)).collect();
        for o in self.orders.iter().filter(|o| o.live) {
            *live.entry(o.variant_id.as_str()).or_default() += i64::from(o.quantity);
        }
        live
    }
}

/// One variant after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantCount {
    pub variant_id: String,
    pub total: i64,
    pub remaining: i64,
    pub live_items: i64,
    /// Attempts that named this variant.
    pub asked: u64,
    /// Items the run's 201s gave of it.
    pub sold_in_run: u64,
}

/// What the run sold of a sale with variants or several items per customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizedCount {
    pub max_per_customer: u32,
    pub variants: Vec<VariantCount>,
    pub orders_before: u64,
    pub orders_after: u64,
    pub live_orders: u64,
    pub live_items: i64,
    /// Customers holding live items, and the most one holds.
    pub customers: u64,
    pub most_held: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizedReport {
    pub sold: SizedCount,
    pub unknown: UnknownOutcomes,
    pub violations: Vec<Violation>,
}

fn describe(variant: Option<&str>, quantity: u32) -> String {
    format!("{} × {quantity}", variant.unwrap_or("(the sale's one variant)"))
}

/// The checks of a sale with variants or several items per customer that need only the replies:
/// the 201s promise at most the stock left at the start (`stock_left`), order ids are not shared
/// between users, and, when no items can come back during the run (`no_returns`: no holds) and the
/// user held nothing before it, no user was promised more than `max_per_customer` items.
/// `choices[seq]` is what attempt `seq` asked for.
pub fn check_sized_replies(
    attempts: &[Attempt],
    choices: &[Choice],
    stock_left: i64,
    max_per_customer: u32,
    no_returns: bool,
    held_before: &HashSet<String>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut items = 0u64;
    let mut per_user: BTreeMap<&str, u64> = BTreeMap::new();
    let mut owners: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in attempts.iter().filter(|a| a.reply.meaning() == Meaning::Bought) {
        let q = u64::from(choices.get(a.seq as usize).map_or(1, Choice::items));
        items += q;
        *per_user.entry(a.user.as_str()).or_default() += q;
        match a.reply.order_id() {
            Some(order) => {
                owners.entry(order).or_default().insert(a.user.as_str());
            }
            None => violations.push(Violation::MalformedSuccess { user: a.user.clone(), detail: "no orderId".into() }),
        }
    }
    for (order, users) in owners {
        if users.len() > 1 {
            violations.push(Violation::SharedOrderId {
                order_id: order.to_owned(),
                users: users.into_iter().map(str::to_owned).collect(),
            });
        }
    }
    if no_returns {
        for (user, held) in per_user {
            if held > u64::from(max_per_customer) && !held_before.contains(user) {
                violations.push(Violation::CustomerOverLimit {
                    user: user.to_owned(),
                    live_items: i64::try_from(held).unwrap_or(i64::MAX),
                    max: max_per_customer,
                });
            }
        }
    }
    if i64::try_from(items).unwrap_or(i64::MAX) > stock_left.max(0) {
        violations.insert(0, Violation::ItemsExceedStock { items, stock_left });
    }
    violations
}

/// The checks of the stored state of a sale with variants or several items per customer, and of
/// the replies against it. `before` are the order ids stored before the run; `choices[seq]` is
/// what attempt `seq` asked for.
pub fn check_sized_store(
    attempts: &[Attempt],
    choices: &[Choice],
    before: &HashSet<String>,
    state: &SizedState,
) -> SizedReport {
    let mut violations = Vec::new();

    // The stored state on its own.
    for (shard, &remaining) in state.shards.iter().enumerate() {
        if remaining < 0 {
            violations.push(Violation::NegativeShard { shard, remaining });
        }
    }
    let mut live_taken = vec![0i64; state.shards.len().max(state.initial.len())];
    for o in state.orders.iter().filter(|o| o.live) {
        let range = state.variants.iter().find(|v| v.variant_id == o.variant_id).map(|v| v.first..v.first + v.shards);
        let mut took = 0;
        for &(shard, n) in &o.takes {
            took += n;
            match live_taken.get_mut(shard as usize) {
                Some(t) => *t += n,
                None => violations.push(Violation::OrderTakesWrong {
                    order_id: o.order_id.clone(),
                    detail: format!("took from shard {shard}, which the sale does not have"),
                }),
            }
            if range.as_ref().is_some_and(|r| !r.contains(&shard)) {
                violations.push(Violation::OrderTakesWrong {
                    order_id: o.order_id.clone(),
                    detail: format!("of variant {} took from shard {shard} of another variant", o.variant_id),
                });
            }
        }
        if range.is_none() {
            violations.push(Violation::OrderTakesWrong {
                order_id: o.order_id.clone(),
                detail: format!("variant {} is not a variant of the sale", o.variant_id),
            });
        }
        if took != i64::from(o.quantity) {
            violations.push(Violation::OrderTakesWrong {
                order_id: o.order_id.clone(),
                detail: format!("quantity {} but took {took}", o.quantity),
            });
        }
    }
    let live_by_variant = state.live_items_by_variant();
    for v in &state.variants {
        let remaining: i64 = (v.first..v.first + v.shards).filter_map(|n| state.shards.get(n as usize)).sum();
        let live_items = live_by_variant.get(v.variant_id.as_str()).copied().unwrap_or(0);
        if remaining + live_items != v.total {
            violations.push(Violation::VariantStockMismatch {
                variant: v.variant_id.clone(),
                remaining,
                live_items,
                total: v.total,
            });
        }
    }
    for (n, (start, now)) in state.initial.iter().zip(&state.shards).enumerate() {
        let taken = live_taken.get(n).copied().unwrap_or(0);
        if start - now != taken {
            violations.push(Violation::ShardTakenMismatch {
                shard: u32::try_from(n).unwrap_or(u32::MAX),
                gave: start - now,
                live_taken: taken,
            });
        }
    }
    let live_items: i64 = live_by_variant.values().sum();
    let taken: i64 = state.initial.iter().sum::<i64>() - state.shards.iter().sum::<i64>();
    if live_items != taken {
        violations.push(Violation::ItemsTakenMismatch { live_items, taken });
    }
    let mut held: BTreeMap<&str, (i64, BTreeSet<&str>)> = BTreeMap::new();
    for o in state.orders.iter().filter(|o| o.live) {
        let h = held.entry(o.user_id.as_str()).or_default();
        h.0 += i64::from(o.quantity);
        h.1.insert(o.order_id.as_str());
    }
    for (user, (items, _)) in &held {
        if *items > i64::from(state.max_per_customer) {
            violations.push(Violation::CustomerOverLimit {
                user: (*user).to_owned(),
                live_items: *items,
                max: state.max_per_customer,
            });
        }
    }
    if let Some(customers) = &state.customers {
        let stored: BTreeMap<&str, &StoredCustomer> = customers.iter().map(|c| (c.user_id.as_str(), c)).collect();
        let users: BTreeSet<&str> = stored.keys().chain(held.keys()).copied().collect();
        let nothing = (0, BTreeSet::new());
        for user in users {
            let (items, orders) = held.get(user).unwrap_or(&nothing);
            let (stored_live, stored_orders) = stored
                .get(user)
                .map_or((0, BTreeSet::new()), |c| (c.live, c.orders.iter().map(String::as_str).collect()));
            if stored_live != *items || &stored_orders != orders {
                let detail = if &stored_orders == orders {
                    String::new()
                } else {
                    format!("; stored orders {stored_orders:?}, live orders {orders:?}")
                };
                violations.push(Violation::CustomerCountMismatch {
                    user: user.to_owned(),
                    stored_live,
                    live_items: *items,
                    detail,
                });
            }
        }
    }

    // Replies against the stored orders.
    let by_id: HashMap<&str, &StoredOrder> = state.orders.iter().map(|o| (o.order_id.as_str(), o)).collect();
    let users = by_user(attempts);
    let mut answered: HashSet<&str> = HashSet::new();
    for a in attempts.iter().filter(|a| a.reply.meaning() == Meaning::Bought) {
        let Some(replied) = a.reply.order_id() else { continue };
        answered.insert(replied);
        let choice = choices.get(a.seq as usize).cloned().unwrap_or_default();
        match by_id.get(replied) {
            None => {
                violations.push(Violation::SuccessWithoutRecord { user: a.user.clone(), order_id: replied.to_owned() })
            }
            Some(o) if o.user_id != a.user => violations.push(Violation::MalformedSuccess {
                user: a.user.clone(),
                detail: format!("order {replied} is stored for {}", o.user_id),
            }),
            Some(o) => {
                let variant_ok = choice.variant_id.as_deref().is_none_or(|v| v == o.variant_id);
                if !variant_ok || o.quantity != choice.items() {
                    violations.push(Violation::OrderNotAsAsked {
                        user: a.user.clone(),
                        order_id: replied.to_owned(),
                        asked: describe(choice.variant_id.as_deref(), choice.items()),
                        stored: describe(Some(&o.variant_id), o.quantity),
                    });
                }
            }
        }
    }
    let mut unknown =
        UnknownOutcomes { committed_users: Some(Vec::new()), not_committed_users: Some(0), ..Default::default() };
    let mut committed: BTreeSet<&str> = BTreeSet::new();
    for o in state.orders.iter().filter(|o| !before.contains(&o.order_id) && !answered.contains(o.order_id.as_str())) {
        match users.get(o.user_id.as_str()) {
            None => violations.push(Violation::ForeignRecord { user: o.user_id.clone(), order_id: o.order_id.clone() }),
            Some(tries) if tries.iter().any(|t| t.reply.meaning() == Meaning::Unknown) => {
                committed.insert(o.user_id.as_str());
            }
            Some(_) => violations
                .push(Violation::RecordWithoutSuccess { user: o.user_id.clone(), order_id: o.order_id.clone() }),
        }
    }
    for (user, tries) in &users {
        let lost = tries.iter().filter(|t| t.reply.meaning() == Meaning::Unknown).count() as u64;
        unknown.attempts += lost;
        if lost > 0 {
            unknown.users += 1;
            if !committed.contains(user) {
                *unknown.not_committed_users.get_or_insert_default() += 1;
            }
        }
    }
    unknown.committed_users = Some(committed.iter().map(|u| (*u).to_owned()).collect());

    let mut asked: BTreeMap<&str, u64> = BTreeMap::new();
    let mut sold: BTreeMap<&str, u64> = BTreeMap::new();
    for a in attempts {
        let choice = choices.get(a.seq as usize);
        let variant = choice.and_then(|c| c.variant_id.as_deref()).or(match state.variants.as_slice() {
            [only] => Some(only.variant_id.as_str()),
            _ => None,
        });
        let Some(variant) = variant else { continue };
        *asked.entry(variant).or_default() += 1;
        if a.reply.meaning() == Meaning::Bought {
            *sold.entry(variant).or_default() += u64::from(choice.map_or(1, Choice::items));
        }
    }
    let variants = state
        .variants
        .iter()
        .map(|v| VariantCount {
            variant_id: v.variant_id.clone(),
            total: v.total,
            remaining: (v.first..v.first + v.shards).filter_map(|n| state.shards.get(n as usize)).sum(),
            live_items: live_by_variant.get(v.variant_id.as_str()).copied().unwrap_or(0),
            asked: asked.get(v.variant_id.as_str()).copied().unwrap_or(0),
            sold_in_run: sold.get(v.variant_id.as_str()).copied().unwrap_or(0),
        })
        .collect();
    let sold = SizedCount {
        max_per_customer: state.max_per_customer,
        variants,
        orders_before: before.len() as u64,
        orders_after: state.orders.len() as u64,
        live_orders: state.orders.iter().filter(|o| o.live).count() as u64,
        live_items,
        customers: held.len() as u64,
        most_held: held.values().map(|h| h.0).max().unwrap_or(0),
    };
    SizedReport { sold, unknown, violations }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, code: Option<&str>, order: Option<&str>) -> Reply {
        Reply::Http {
            status,
            code: code.map(Into::into),
            order_id: order.map(Into::into),
            user_id: None,
            retry_after_secs: None,
        }
    }
    fn won(order: &str) -> Reply {
        http(201, None, Some(order))
    }
    fn sold_out() -> Reply {
        http(409, Some("sold_out"), None)
    }
    fn already(order: &str) -> Reply {
        http(409, Some("already_purchased"), Some(order))
    }
    fn unavailable() -> Reply {
        http(503, Some("temporarily_unavailable"), None)
    }

    fn attempts(spec: Vec<(&str, Reply)>) -> Vec<Attempt> {
        spec.into_iter()
            .enumerate()
            .map(|(i, (user, reply))| Attempt {
                seq: i as u32,
                user: user.into(),
                due_us: None,
                sent_us: i as u64,
                latency_us: 1,
                reply,
            })
            .collect()
    }

    fn rec(user: &str, order: &str) -> StoredPurchase {
        StoredPurchase { user_id: user.into(), order_id: order.into() }
    }

    fn store(attempts: &[Attempt], stock: i64, after: &[StoredPurchase], shards: &[i64]) -> StoreReport {
        check_store(attempts, &StoreFacts { stock, before: &[], after, shards })
    }

    fn kinds(v: &[Violation]) -> Vec<String> {
        v.iter().map(|v| serde_json::to_value(v).unwrap()["kind"].as_str().unwrap().to_owned()).collect()
    }

    /// Stock 2, users a, b, c; a also retries.
    fn clean_run() -> (Vec<Attempt>, Vec<StoredPurchase>) {
        let a = attempts(vec![("a", won("o1")), ("b", won("o2")), ("a", already("o1")), ("c", sold_out())]);
        (a, vec![rec("a", "o1"), rec("b", "o2")])
    }

    #[test]
    fn a_clean_run_has_no_violations() {
        let (a, after) = clean_run();
        assert_eq!(check_replies(&a, 2), vec![]);
        let report = store(&a, 2, &after, &[0]);
        assert_eq!(report.violations, vec![]);
        assert_eq!((report.sold.sold_in_run, report.sold.at_most, report.sold.at_least), (2, 2, 2));
    }

    #[test]
    fn an_oversell_is_flagged_in_replies_and_in_the_table() {
        let a = attempts(vec![("a", won("o1")), ("b", won("o2")), ("c", won("o3"))]);
        assert_eq!(kinds(&check_replies(&a, 2)), ["successes_exceed_stock"]);
        let after = [rec("a", "o1"), rec("b", "o2"), rec("c", "o3")];
        let v = store(&a, 2, &after, &[-1]).violations;
        assert!(v.contains(&Violation::Oversold { purchases: 3, stock: 2 }), "{v:?}");
        assert!(v.contains(&Violation::NegativeShard { shard: 0, remaining: -1 }));
        assert!(v.contains(&Violation::SoldTooMany { sold: 3, at_most: 2 }));
    }

    #[test]
    fn a_user_stored_twice_is_flagged() {
        let a = attempts(vec![("a", won("o1")), ("a", won("o2"))]);
        assert_eq!(kinds(&check_replies(&a, 5)), ["user_won_twice"]);
        let v = store(&a, 5, &[rec("a", "o1"), rec("a", "o2")], &[3]).violations;
        assert!(v.contains(&Violation::UserStoredTwice { user: "a".into(), records: 2 }), "{v:?}");
    }

    #[test]
    fn a_201_without_a_record_is_flagged() {
        let (a, _) = clean_run();
        let v = store(&a, 2, &[rec("a", "o1")], &[1]).violations;
        assert!(v.contains(&Violation::SuccessWithoutRecord { user: "b".into(), order_id: "o2".into() }), "{v:?}");
        assert!(v.contains(&Violation::SoldTooFew { sold: 1, at_least: 2 }));
    }

    #[test]
    fn a_201_with_another_stored_order_is_flagged() {
        let (a, _) = clean_run();
        let v = store(&a, 2, &[rec("a", "o1"), rec("b", "o9")], &[0]).violations;
        assert_eq!(
            v,
            vec![Violation::SuccessOrderMismatch { user: "b".into(), replied: "o2".into(), stored: "o9".into() }]
        );
    }

    #[test]
    fn a_record_for_a_refused_user_is_a_false_refusal() {
        let a = attempts(vec![("a", won("o1")), ("c", sold_out())]);
        let v = store(&a, 2, &[rec("a", "o1"), rec("c", "o3")], &[0]).violations;
        assert_eq!(v, vec![Violation::RecordWithoutSuccess { user: "c".into(), order_id: "o3".into() }]);
    }

    #[test]
    fn a_record_behind_a_lost_reply_is_reported_not_flagged() {
        let a = attempts(vec![("a", won("o1")), ("b", unavailable()), ("c", Reply::Timeout), ("d", sold_out())]);
        let report = store(&a, 2, &[rec("a", "o1"), rec("b", "o2")], &[0]);
        assert_eq!(report.violations, vec![]);
        assert_eq!(report.unknown.attempts, 2);
        assert_eq!(report.unknown.committed_users, Some(vec!["b".to_owned()]));
        assert_eq!(report.unknown.not_committed_users, Some(1));
    }

    #[test]
    fn undersold_while_buyers_remained_is_flagged_unless_their_replies_were_lost() {
        // Stock 3, three users, one sale: b and c were refused with stock left.
        let a = attempts(vec![("a", won("o1")), ("b", sold_out()), ("c", sold_out())]);
        let v = store(&a, 3, &[rec("a", "o1")], &[2]).violations;
        assert_eq!(v, vec![Violation::SoldTooFew { sold: 1, at_least: 3 }]);
        // Same, but b and c only ever got 503: nothing committed, and that is allowed.
        let a = attempts(vec![("a", won("o1")), ("b", unavailable()), ("c", Reply::Timeout)]);
        assert_eq!(store(&a, 3, &[rec("a", "o1")], &[2]).violations, vec![]);
    }

    #[test]
    fn shards_must_add_up_to_stock_minus_purchases() {
        let (a, after) = clean_run();
        assert_eq!(store(&a, 2, &after, &[1]).violations, vec![Violation::ShardSumMismatch { sum: 1, expected: 0 }]);
        assert_eq!(store(&a[..3], 4, &after, &[1, 1]).violations, vec![], "a, b bought; 2 of 4 left over two shards");
    }

    #[test]
    fn already_purchased_must_match_the_stored_purchase() {
        let a = attempts(vec![("a", already("o1"))]);
        let v = store(&a, 2, &[], &[2]).violations;
        assert!(v.contains(&Violation::AlreadyPurchasedWithoutRecord { user: "a".into() }), "{v:?}");
        let a = attempts(vec![("a", Reply::Timeout), ("a", already("o7"))]);
        let v = store(&a, 2, &[rec("a", "o1")], &[1]).violations;
        assert_eq!(
            v,
            vec![Violation::AlreadyPurchasedOrderMismatch {
                user: "a".into(),
                replied: "o7".into(),
                stored: "o1".into()
            }]
        );
        let a = attempts(vec![("a", won("o1")), ("a", already("o7"))]);
        assert_eq!(kinds(&check_replies(&a, 2)), ["already_purchased_other_order"]);
    }

    #[test]
    fn malformed_and_shared_order_ids_are_flagged() {
        let mut a = attempts(vec![("a", http(201, None, None)), ("b", won("o1")), ("c", won("o1"))]);
        assert_eq!(kinds(&check_replies(&a, 5)), ["malformed_success", "shared_order_id"]);
        a[1].reply = Reply::Http {
            status: 201,
            code: None,
            order_id: Some("o2".into()),
            user_id: Some("zz".into()),
            retry_after_secs: None,
        };
        assert_eq!(kinds(&check_replies(&a[..2], 5)), ["malformed_success", "malformed_success"]);
    }

    #[test]
    fn purchases_from_before_the_run_and_from_strangers_are_told_apart() {
        let a = attempts(vec![("a", won("o1")), ("old", already("o0"))]);
        let before = [rec("old", "o0")];
        let after = [rec("old", "o0"), rec("a", "o1"), rec("x", "o9")];
        let report = check_store(&a, &StoreFacts { stock: 3, before: &before, after: &after, shards: &[0] });
        assert_eq!(report.sold.stock_left_at_start, 2);
        assert_eq!(report.violations, vec![Violation::ForeignRecord { user: "x".into(), order_id: "o9".into() }]);
    }

    #[test]
    fn clean_answers_are_201_409_and_503_with_retry_after_and_nothing_lost() {
        let busy = |after: Option<&str>| unavailable().with_retry_after(after);
        let clean = attempts(vec![("a", won("o1")), ("b", sold_out()), ("c", busy(Some("1")))]);
        assert_eq!(check_answers(&clean), vec![]);
        let dirty = attempts(vec![
            ("a", won("o1")),
            ("b", busy(None)),
            ("c", http(500, None, None)),
            ("d", http(500, None, None)),
            ("e", http(400, Some("invalid_request"), None)),
            ("f", Reply::Timeout),
            ("g", Reply::Transport { error: "connection reset".into() }),
        ]);
        assert_eq!(
            check_answers(&dirty),
            vec![
                Violation::UnexpectedStatus { status: 400, count: 1 },
                Violation::UnexpectedStatus { status: 500, count: 2 },
                Violation::UnavailableWithoutRetryAfter { count: 1 },
                Violation::LostReplies { timeouts: 1, transport_errors: 1 },
            ]
        );
    }

    #[test]
    fn unknown_outcomes_are_counted_without_the_table() {
        let a = attempts(vec![("a", unavailable()), ("a", Reply::Timeout), ("b", won("o1"))]);
        let u = unknown_from_replies(&a);
        assert_eq!((u.attempts, u.users, u.committed_users), (2, 1, None));
    }

    // A sized sale: s (2 items, shard 0), m (4 items, shards 1 and 2), up to 3 per customer.
    fn sized_state(orders: Vec<StoredOrder>, shards: &[i64], customers: Vec<StoredCustomer>) -> SizedState {
        let variant = |id: &str, total, first, shards| StoredVariant { variant_id: id.into(), total, first, shards };
        SizedState {
            max_per_customer: 3,
            variants: vec![variant("s", 2, 0, 1), variant("m", 4, 1, 2)],
            initial: vec![2, 2, 2],
            shards: shards.to_vec(),
            orders,
            customers: Some(customers),
        }
    }
    fn ord(user: &str, order: &str, variant: &str, takes: &[(u32, i64)]) -> StoredOrder {
        StoredOrder {
            user_id: user.into(),
            order_id: order.into(),
            variant_id: variant.into(),
            quantity: takes.iter().map(|t| t.1 as u32).sum(),
            live: true,
            takes: takes.to_vec(),
        }
    }
    fn cust(user: &str, live: i64, orders: &[&str]) -> StoredCustomer {
        StoredCustomer { user_id: user.into(), live, orders: orders.iter().map(|o| (*o).to_owned()).collect() }
    }
    fn asked(variant: &str, quantity: u32) -> Choice {
        Choice { variant_id: Some(variant.into()), quantity: Some(quantity) }
    }

    /// a: m × 3 over both m shards, then s × 1 refused by the limit; b: s × 2 lost (committed).
    fn sized_run() -> (Vec<Attempt>, Vec<Choice>, SizedState) {
        let a = attempts(vec![
            ("a", won("o1")),
            ("a", http(409, Some("limit_reached"), None)),
            ("b", Reply::Timeout),
            ("c", http(409, Some("variant_sold_out"), None)),
        ]);
        let choices = vec![asked("m", 3), asked("s", 1), asked("s", 2), asked("s", 1)];
        let state = sized_state(
            vec![ord("a", "o1", "m", &[(1, 2), (2, 1)]), ord("b", "o2", "s", &[(0, 2)])],
            &[0, 0, 1],
            vec![cust("a", 3, &["o1"]), cust("b", 2, &["o2"])],
        );
        (a, choices, state)
    }

    #[test]
    fn a_clean_sized_run_has_no_violations() {
        let (a, choices, state) = sized_run();
        assert_eq!(check_sized_replies(&a, &choices, 6, 3, true, &HashSet::new()), vec![]);
        let report = check_sized_store(&a, &choices, &HashSet::new(), &state);
        assert_eq!(report.violations, vec![]);
        assert_eq!(report.unknown.committed_users, Some(vec!["b".to_owned()]));
        let m = &report.sold.variants[1];
        assert_eq!((m.remaining, m.live_items, m.asked, m.sold_in_run), (1, 3, 1, 3));
        assert_eq!((report.sold.live_items, report.sold.most_held), (5, 3));
    }

    #[test]
    fn a_variant_whose_stock_and_live_items_miss_its_total_is_flagged() {
        let (a, choices, mut state) = sized_run();
        state.shards[2] = 2; // an item of m came back while its order is still live
        let v = check_sized_store(&a, &choices, &HashSet::new(), &state).violations;
        assert_eq!(kinds(&v), ["variant_stock_mismatch", "shard_taken_mismatch", "items_taken_mismatch"], "{v:?}");
        assert_eq!(
            v[0],
            Violation::VariantStockMismatch { variant: "m".into(), remaining: 2, live_items: 3, total: 4 }
        );
    }

    #[test]
    fn a_customer_above_the_limit_or_with_a_wrong_count_is_flagged() {
        let (a, choices, mut state) = sized_run();
        // A third live order for a: 4 items held; its customer item still says 3.
        state.orders.push(ord("a", "o9", "s", &[(0, 1)]));
        state.shards[0] = -1;
        let v = check_sized_store(&a, &choices, &HashSet::new(), &state).violations;
        assert!(v.contains(&Violation::CustomerOverLimit { user: "a".into(), live_items: 4, max: 3 }), "{v:?}");
        assert!(v.contains(&Violation::NegativeShard { shard: 0, remaining: -1 }), "{v:?}");
        assert!(kinds(&v).contains(&"customer_count_mismatch".to_owned()), "{v:?}");
        assert!(kinds(&v).contains(&"record_without_success".to_owned()), "a was never answered o9: {v:?}");
        // The customer item alone off by one.
        let (a, choices, mut state) = sized_run();
        state.customers.as_mut().unwrap()[1].live = 1;
        let v = check_sized_store(&a, &choices, &HashSet::new(), &state).violations;
        assert_eq!(kinds(&v), ["customer_count_mismatch"], "{v:?}");
    }

    #[test]
    fn orders_that_took_wrongly_or_are_not_what_was_asked_are_flagged() {
        let (a, choices, mut state) = sized_run();
        state.orders[0].takes = vec![(0, 1), (2, 2)]; // m's order took from s's shard, and 3 from shard 2
        let v = check_sized_store(&a, &choices, &HashSet::new(), &state).violations;
        assert!(kinds(&v).contains(&"order_takes_wrong".to_owned()), "{v:?}");
        let (a, mut choices, state) = sized_run();
        choices[0] = asked("s", 3);
        let v = check_sized_store(&a, &choices, &HashSet::new(), &state).violations;
        assert_eq!(kinds(&v), ["order_not_as_asked"], "{v:?}");
    }

    #[test]
    fn sized_replies_are_held_to_the_stock_and_the_limit() {
        let a = attempts(vec![("a", won("o1")), ("a", won("o2")), ("b", won("o3")), ("c", won("o3"))]);
        let choices = vec![asked("m", 2), asked("s", 2), asked("s", 1), asked("m", 1)];
        let v = check_sized_replies(&a, &choices, 5, 3, true, &HashSet::new());
        assert_eq!(kinds(&v), ["items_exceed_stock", "shared_order_id", "customer_over_limit"], "{v:?}");
        // With holds, items may come back during the run: the limit is judged from the table only.
        let v = check_sized_replies(&a, &choices, 6, 3, false, &HashSet::new());
        assert_eq!(kinds(&v), ["shared_order_id"], "{v:?}");
    }
}
