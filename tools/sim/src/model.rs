//! The discrete-event model: one crowd, one run per path, an event queue in microseconds.
//!
//! Time 0 is the opening; the pre-opening crowd arrives at negative times. Both paths share the
//! purchase machinery (API Gateway's token bucket, Lambda's concurrency with per-container
//! sold-out hints, DynamoDB's stock shards with conflicts); the room adds joins, polls and the
//! admitted range in front of it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use fastrand::Rng;

use crate::params::{Arrivals, Params, PlacePolls, TokenCheck};

/// Microseconds since opening.
pub type Micros = i64;

pub fn us(seconds: f64) -> Micros {
    (seconds * 1e6).round() as Micros
}

pub fn ms(millis: f64) -> Micros {
    (millis * 1e3).round() as Micros
}

/// Which path a run models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Everyone presses Buy on the purchase route, as the code does today.
    Direct,
    /// Everyone joins the waiting room; only admitted identities buy.
    Room,
}

/// One identity of the crowd.
#[derive(Debug, Clone)]
pub struct Client {
    pub script: bool,
    /// Arrival, microseconds since opening (negative: before opening).
    pub arrival: Micros,
    /// Whether this identity buys once admitted (the room's `p_buy`; scripts always do).
    pub wants: bool,
    /// Items it asks for in its purchase (1..=`max_per_customer`).
    pub quantity: u32,
}

impl Client {
    pub fn pre_opening(&self) -> bool {
        self.arrival < 0
    }
}

/// The crowd, the same for both paths of one seed.
pub fn crowd(p: &Params) -> Vec<Client> {
    let mut rng = Rng::with_seed(p.seed);
    let n = p.clients as usize;
    let scripts = ((f64::from(p.clients) * p.scripts).round() as usize).min(n);
    let mut script_flags: Vec<bool> = (0..n).map(|i| i < scripts).collect();
    rng.shuffle(&mut script_flags);
    script_flags
        .into_iter()
        .map(|script| {
            let arrival = if rng.f64() < p.pre_share {
                -us(rng.f64() * p.pre_window_s).max(1)
            } else {
                us(after_opening(&mut rng, p.arrivals, p.open_window_s))
            };
            let wants = script || rng.f64() < p.p_buy;
            // Drawn only when there is a choice, so a run with one item per customer is the
            // same crowd as before quantities were modelled.
            let quantity = match p.max_per_customer {
                1 => 1,
                max if script || rng.f64() < p.p_max_quantity => max,
                _ => 1,
            };
            Client { script, arrival, wants, quantity }
        })
        .collect()
}

/// Seconds after opening, within `window`.
fn after_opening(rng: &mut Rng, shape: Arrivals, window: f64) -> f64 {
    let u = rng.f64();
    match shape {
        Arrivals::Uniform => u * window,
        Arrivals::Burst => window * (1.0 - (1.0 - u).sqrt()),
        Arrivals::Exp => {
            let mean = window / 4.0;
            -mean * (1.0 - u * (1.0 - (-window / mean).exp())).ln()
        }
    }
}

/// What an identity ended with.
#[derive(Debug, Clone, Default)]
pub struct ClientOutcome {
    /// When its purchase committed, if it got an item.
    pub item_at: Option<Micros>,
    /// Items it holds (the model's check that no identity gets more than `max_per_customer`).
    pub items: u32,
    /// Sent at least one purchase request (past the edge).
    pub pressed: bool,
    /// Room: learned of its admission.
    pub admitted: bool,
    /// Room: admitted, chose not to buy.
    pub declined: bool,
    /// A human who ran out of retries without an item or a sold_out.
    pub gave_up: bool,
    /// Heard sold_out (an answer, or the room's news).
    pub told_sold_out: bool,
    /// 429s and 503s this identity received.
    pub refusals: u32,
}

/// Everything a run counted.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Purchase requests sent (including those refused at the edge).
    pub requests: u64,
    pub r429_api: u64,
    pub r429_lambda: u64,
    pub r503: u64,
    pub r403: u64,
    /// Room: `sold_out` answered to a purchase whose token was within its claim window (the
    /// set-aside promise says never, with `overbook` 1).
    pub sold_out_to_admitted: u64,
    /// 429/503 on purchases carrying an admission token (room only).
    pub refusals_admitted: u64,
    /// Of those, the ones answered after the last item was sold.
    pub refusals_admitted_after_sell_out: u64,
    pub invocations: u64,
    pub transactions: u64,
    pub conflicts: u64,
    /// Conflicts while stock remained.
    pub conflicts_before_sell_out: u64,
    pub conflict_retries: u64,
    pub hint_sold_out: u64,
    pub sold: u64,
    pub wcu: f64,
    pub rcu: f64,
    pub joins: u64,
    pub polls_db: u64,
    pub polls_cdn: u64,
    /// Of `polls_db`, those sent by scripts.
    pub script_polls: u64,
    /// Requests of humans' pages that reached the origin (API Gateway, Lambda) after opening, per
    /// second since opening: joins and reads of the own place. The status's origin fetches are
    /// added in the metrics (one per `status_cache_s` while anyone polls).
    pub page_origin_by_s: Vec<u32>,
    /// The same for scripts: joins and their place polls.
    pub script_origin_by_s: Vec<u32>,
    /// The last poll of a waiting human (the end of the wait).
    pub last_poll: Option<Micros>,
    pub admitted: u64,
    pub sold_out_at: Option<Micros>,
    /// Room: when the last waiting identity learned sold_out.
    pub last_told_sold_out: Option<Micros>,
    pub containers: u64,
    pub end: Micros,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Run {
    pub path: Path,
    pub counters: Counters,
    pub outcomes: Vec<ClientOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Open the room's admission: the first admission step.
    Admit,
    /// A post-opening identity joins the room.
    Join(u32),
    /// A human in the room asks for news.
    Poll(u32),
    /// A script in the room: a poll and, without a token, a purchase attempt that gets 403.
    Cycle(u32),
    /// An identity sends a purchase request.
    Press(u32),
    /// A request's next transaction.
    Tx(u32),
    /// A request's answer reaches its identity.
    Done(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Item,
    SoldOut,
    AlreadyPurchased,
    Throttled,
    Busy,
    NotYetAdmitted,
}

#[derive(Debug, Clone, Default)]
struct Hint {
    empty: u64,
    since: Option<Micros>,
}

#[derive(Debug, Clone)]
struct Req {
    client: u32,
    container: u32,
    start: Micros,
    order: Vec<u32>,
    idx: usize,
    attempt: u32,
    busy: bool,
    tokened: bool,
    answer: Answer,
}

struct Sim<'a> {
    p: &'a Params,
    path: Path,
    clients: &'a [Client],
    rng: Rng,
    heap: BinaryHeap<Reverse<(Micros, u64, Ev)>>,
    seq: u64,
    out: Vec<ClientOutcome>,
    c: Counters,
    // API Gateway.
    tokens: f64,
    tokens_at: Micros,
    // Lambda.
    inflight: u32,
    hints: Vec<Hint>,
    idle: Vec<u32>,
    // DynamoDB.
    remaining: Vec<u32>,
    total_remaining: u64,
    held_until: Vec<Micros>,
    reqs: Vec<Req>,
    free_reqs: Vec<u32>,
    // Room.
    pos: Vec<u32>,
    by_pos: Vec<u32>,
    admit_time: Vec<Micros>,
    carry: f64,
    closed: bool,
    expiry: VecDeque<(Micros, u64, u64)>,
    /// Places admitted before the current claim window began.
    admitted_before_window: u64,
    token_at: Vec<Option<Micros>>,
    first_at: Vec<Option<Micros>>,
    /// Room, `--place-polls horizon`: the page knows its place (joined after opening, or read its drawn place).
    known: Vec<bool>,
    /// ... when its next safety ask is due since its last ask (a random share of `safety_poll_s` after the last, from half of it to all).
    safety_due: Vec<Micros>,
    /// ... the admitted range the status showed at that moment.
    seen_at_read: Vec<u64>,
    /// ... a pre-queue page reads its drawn place at its first status poll from this moment on.
    draw_read_at: Vec<Micros>,
}

/// Runs one path over `clients` (from [`crowd`]).
pub fn run(p: &Params, clients: &[Client], path: Path) -> Run {
    let salt = match path {
        Path::Direct => 0x5eed_d1ec,
        Path::Room => 0x5eed_700f,
    };
    let shards = p.shards as usize;
    let remaining: Vec<u32> = (0..p.shards).map(|s| p.stock / p.shards + u32::from(s < p.stock % p.shards)).collect();
    let mut sim = Sim {
        p,
        path,
        clients,
        rng: Rng::with_seed(p.seed ^ salt),
        heap: BinaryHeap::new(),
        seq: 0,
        out: vec![ClientOutcome::default(); clients.len()],
        c: Counters::default(),
        tokens: p.api_burst,
        tokens_at: Micros::MIN,
        inflight: 0,
        hints: Vec::new(),
        idle: Vec::new(),
        total_remaining: u64::from(p.stock),
        remaining,
        held_until: vec![Micros::MIN; shards],
        reqs: Vec::new(),
        free_reqs: Vec::new(),
        pos: vec![u32::MAX; clients.len()],
        by_pos: Vec::with_capacity(clients.len()),
        admit_time: Vec::new(),
        carry: 0.0,
        closed: p.stock == 0,
        expiry: VecDeque::new(),
        admitted_before_window: 0,
        token_at: vec![None; clients.len()],
        first_at: vec![None; clients.len()],
        known: vec![false; clients.len()],
        safety_due: vec![Micros::MAX; clients.len()],
        draw_read_at: vec![0; clients.len()],
        seen_at_read: vec![0; clients.len()],
    };
    match path {
        Path::Direct => sim.start_direct(),
        Path::Room => sim.start_room(),
    }
    sim.event_loop();
    sim.c.containers = sim.hints.len() as u64;
    Run { path, counters: sim.c, outcomes: sim.out }
}

impl Sim<'_> {
    fn at(&mut self, t: Micros, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, ev)));
    }

    fn uniform(&mut self, lo: Micros, hi: Micros) -> Micros {
        if hi <= lo { lo } else { self.rng.i64(lo..=hi) }
    }

    fn start_direct(&mut self) {
        for (i, cl) in self.clients.iter().enumerate() {
            let i = i as u32;
            let t = if !cl.pre_opening() {
                cl.arrival
            } else if cl.script {
                // Scripts are clock-synchronised: they fire at opening, within one retry interval.
                self.rng.i64(0..ms(self.p.script_interval_ms).max(1))
            } else {
                self.rng.i64(0..=us(self.p.reaction_s))
            };
            self.at(t, Ev::Press(i));
        }
    }

    fn start_room(&mut self) {
        let p = self.p;
        // The draw at opening: a uniform permutation of everyone who joined before.
        let mut pre: Vec<u32> =
            (0..self.clients.len() as u32).filter(|&i| self.clients[i as usize].pre_opening()).collect();
        self.rng.shuffle(&mut pre);
        let interval = us(p.poll_interval_s);
        // The pre-queue's reads of their drawn places spread over pre-queue / draw_read_rate (≤ draw_read_max_s).
        let spread = us((pre.len() as f64 / p.draw_read_rate).min(p.draw_read_max_s));
        for &i in &pre {
            self.place(i, 0);
            self.c.joins += 1;
            self.c.wcu += p.join_wcu;
            let cl = &self.clients[i as usize];
            if cl.script {
                // Polls every retry interval before opening (cached), then cycles from opening.
                let polls = (-cl.arrival) / ms(p.script_interval_ms).max(1);
                self.pre_open_polls(polls as u64);
                let t = self.rng.i64(0..ms(p.script_interval_ms).max(1));
                self.at(t, Ev::Cycle(i));
            } else {
                // Polls keep their phase: the first one at or after opening.
                let k = (-cl.arrival + interval - 1) / interval;
                self.pre_open_polls((k - 1).max(0) as u64);
                if p.place_polls == PlacePolls::Horizon {
                    self.draw_read_at[i as usize] = self.uniform(0, spread);
                }
                self.at(cl.arrival + k * interval, Ev::Poll(i));
            }
        }
        let mut post: Vec<u32> =
            (0..self.clients.len() as u32).filter(|&i| !self.clients[i as usize].pre_opening()).collect();
        post.sort_by_key(|&i| (self.clients[i as usize].arrival, i));
        for i in post {
            self.at(self.clients[i as usize].arrival, Ev::Join(i));
        }
        self.at(0, Ev::Admit);
    }

    fn pre_open_polls(&mut self, n: u64) {
        self.c.polls_cdn += n;
        self.c.rcu += n as f64 * self.p.pre_open_poll_rcu;
    }

    fn place(&mut self, i: u32, _t: Micros) {
        self.pos[i as usize] = self.by_pos.len() as u32;
        self.by_pos.push(i);
    }

    fn event_loop(&mut self) {
        let horizon = us(self.p.horizon_s);
        while let Some(Reverse((t, _, ev))) = self.heap.pop() {
            if t > horizon {
                break;
            }
            self.c.end = t;
            match ev {
                Ev::Admit => self.admit(t),
                Ev::Join(i) => self.join(i, t),
                Ev::Poll(i) => self.poll(i, t),
                Ev::Cycle(i) => self.cycle(i, t),
                Ev::Press(i) => self.press(i, t),
                Ev::Tx(r) => self.tx(r, t),
                Ev::Done(r) => self.done(r, t),
            }
        }
    }

    // Room.

    fn admit(&mut self, t: Micros) {
        if self.closed {
            return;
        }
        let p = self.p;
        // The product's rule (`RoomState::cap`): places admitted before the set-aside span's start
        // (claim window plus grace) no longer hold items back: their tokens no longer buy. They
        // hold at most m items each; every other item sold was bought by people admitted since.
        // So what the people admitted within the span may still buy stays within `overbook` ×
        // remaining as long as m × admitted ≤ max(m × admitted before the span, sold) +
        // overbook × remaining.
        while let Some(&(exp, _, b)) = self.expiry.front() {
            if exp > t {
                break;
            }
            self.admitted_before_window = b;
            self.expiry.pop_front();
        }
        // In items: each admission sets `max_per_customer` aside; those admitted before the span
        // hold at most that many each. The sale's last items (fewer than one share) go to one
        // person once every admission's span is over.
        let m = u64::from(p.max_per_customer.max(1));
        let allowance = (p.overbook * self.total_remaining as f64).ceil() as u64;
        let mut cap = ((self.admitted_before_window * m).max(self.c.sold) + allowance) / m;
        if cap <= self.c.admitted && allowance > 0 && self.admitted_before_window >= self.c.admitted {
            cap = self.c.admitted + 1;
        }
        let room_for = cap.saturating_sub(self.c.admitted);
        let step = p.admit_rate() * p.admit_tick_ms / 1e3;
        self.carry = (self.carry + step).min(step.max(1.0));
        let waiting = self.by_pos.len() as u64 - self.c.admitted;
        let n = (self.carry.floor() as u64).min(room_for).min(waiting);
        if n > 0 {
            let a = self.c.admitted;
            self.c.admitted += n;
            self.carry -= n as f64;
            self.admit_time.extend(std::iter::repeat_n(t, n as usize));
            self.expiry.push_back((t + us(p.claim_s + p.grace_s), a, a + n));
        }
        if (self.c.admitted as usize) < self.clients.len() || !self.expiry.is_empty() {
            self.at(t + ms(p.admit_tick_ms).max(1), Ev::Admit);
        }
    }

    fn join(&mut self, i: u32, t: Micros) {
        self.place(i, t);
        self.origin(i, t);
        if self.p.place_polls == PlacePolls::Horizon && !self.clients[i as usize].script {
            self.known[i as usize] = true;
            self.safety_due[i as usize] = t + self.uniform(us(self.p.safety_poll_s / 2.0), us(self.p.safety_poll_s));
            self.seen_at_read[i as usize] = self.status_admitted(t);
        }
        self.c.joins += 1;
        self.c.wcu += self.p.join_wcu;
        if self.clients[i as usize].script {
            self.cycle(i, t);
        } else {
            // The join's answer carries the same news as a poll.
            self.news(i, t);
        }
    }

    /// A request of identity `i` reaches API Gateway at `t` (counted per second after opening).
    fn origin(&mut self, i: u32, t: Micros) {
        if t < 0 {
            return;
        }
        let s = (t / 1_000_000) as usize;
        let v =
            if self.clients[i as usize].script { &mut self.c.script_origin_by_s } else { &mut self.c.page_origin_by_s };
        if v.len() <= s {
            v.resize(s + 1, 0);
        }
        v[s] += 1;
    }

    /// A read of `i`'s own place: API Gateway, Lambda, DynamoDB.
    fn read_place(&mut self, i: u32, t: Micros) {
        self.c.polls_db += 1;
        self.c.rcu += self.p.poll_rcu;
        self.origin(i, t);
        if self.p.place_polls == PlacePolls::Horizon {
            self.safety_due[i as usize] = t + self.uniform(us(self.p.safety_poll_s / 2.0), us(self.p.safety_poll_s));
            self.known[i as usize] = true;
            self.seen_at_read[i as usize] = self.status_admitted(t);
        }
    }

    /// Places admitted as the CDN-cached status says at `t` (fetched at the start of its cache period).
    fn status_admitted(&self, t: Micros) -> u64 {
        let cache = us(self.p.status_cache_s).max(1);
        let fetched = t.div_euclid(cache) * cache;
        self.admit_time.partition_point(|&a| a <= fetched) as u64
    }

    fn poll(&mut self, i: u32, t: Micros) {
        self.c.last_poll = Some(t);
        let p = self.p;
        if p.place_polls == PlacePolls::Every {
            self.read_place(i, t);
            self.news(i, t);
            return;
        }
        // The shared status, from the CDN: sold out needs no read of the own place.
        self.c.polls_cdn += 1;
        let idx = i as usize;
        let read = !self.closed
            && if self.known[idx] {
                // Near its turn, and the admitted range moved since the last ask; or admitted; or the safety poll.
                let horizon = (p.admit_rate() * p.poll_interval_s * p.place_horizon_polls).ceil() as u64;
                let seen = self.status_admitted(t);
                let pos = u64::from(self.pos[idx]);
                pos < seen || (pos < seen + horizon && seen > self.seen_at_read[idx]) || t >= self.safety_due[idx]
            } else {
                t >= self.draw_read_at[idx]
            };
        if read {
            self.read_place(i, t);
            self.news(i, t);
        } else if self.closed {
            self.news(i, t);
        } else {
            self.at(t + us(p.poll_interval_s), Ev::Poll(i));
        }
    }

    /// A human learns what the room says now.
    fn news(&mut self, i: u32, t: Micros) {
        if self.closed {
            self.c.last_told_sold_out = Some(t);
            self.out[i as usize].told_sold_out = true;
            return;
        }
        if u64::from(self.pos[i as usize]) < self.c.admitted {
            self.token_at[i as usize] = Some(t);
            self.out[i as usize].admitted = true;
            if self.clients[i as usize].wants {
                let think = self.uniform(us(self.p.think_min_s), us(self.p.think_max_s));
                self.at(t + think, Ev::Press(i));
            } else {
                self.out[i as usize].declined = true;
            }
            return;
        }
        self.at(t + us(self.p.poll_interval_s), Ev::Poll(i));
    }

    fn cycle(&mut self, i: u32, t: Micros) {
        let o = &self.out[i as usize];
        if o.items > 0 || self.token_at[i as usize].is_some() || self.script_tired(i, t) {
            return;
        }
        self.c.polls_db += 1;
        self.c.script_polls += 1;
        self.c.rcu += self.p.poll_rcu;
        self.origin(i, t);
        if self.closed {
            self.c.last_told_sold_out = Some(t);
            self.out[i as usize].told_sold_out = true;
            return;
        }
        if u64::from(self.pos[i as usize]) < self.c.admitted {
            self.token_at[i as usize] = Some(t);
            self.out[i as usize].admitted = true;
            self.press(i, t);
            return;
        }
        self.press(i, t);
        self.at(t + ms(self.p.script_interval_ms).max(1), Ev::Cycle(i));
    }

    /// A script past `script_max_s` since its first request stops.
    fn script_tired(&mut self, i: u32, t: Micros) -> bool {
        let first = *self.first_at[i as usize].get_or_insert(t);
        let tired = t - first >= us(self.p.script_max_s);
        if tired {
            self.out[i as usize].gave_up = true;
        }
        tired
    }

    // The purchase path.

    fn press(&mut self, i: u32, t: Micros) {
        let p = self.p;
        let tokened = self.path == Path::Room && self.token_at[i as usize].is_some();
        if self.path == Path::Room {
            match self.token_at[i as usize] {
                Some(_) if t >= self.admit_time[self.pos[i as usize] as usize] + us(p.claim_s) => {
                    // The token lapsed: refused like a purchase without one.
                    self.c.r403 += 1;
                    self.out[i as usize].gave_up = true;
                    return;
                }
                Some(_) => {}
                None if p.token_check == TokenCheck::Edge => {
                    self.c.requests += 1;
                    self.c.r403 += 1;
                    return;
                }
                None => {}
            }
        }
        self.c.requests += 1;
        self.out[i as usize].pressed |= tokened || self.path == Path::Direct;
        self.first_at[i as usize].get_or_insert(t);

        // API Gateway: a token bucket.
        if self.tokens_at != Micros::MIN {
            let dt = (t - self.tokens_at) as f64 / 1e6;
            self.tokens = (self.tokens + dt * p.api_rate).min(p.api_burst);
        }
        self.tokens_at = t;
        if self.tokens < 1.0 {
            self.c.r429_api += 1;
            self.answer(i, Answer::Throttled, tokened, t);
            return;
        }
        self.tokens -= 1.0;

        // Lambda: concurrency.
        if self.inflight >= p.lambda_concurrency {
            self.c.r429_lambda += 1;
            self.answer(i, Answer::Throttled, tokened, t);
            return;
        }
        self.inflight += 1;
        self.c.invocations += 1;
        let container = self.idle.pop().unwrap_or_else(|| {
            self.hints.push(Hint::default());
            self.hints.len() as u32 - 1
        });
        let order = if self.path == Path::Room && !tokened { Vec::new() } else { self.shard_order(container, t) };
        let r = self.new_req(Req {
            client: i,
            container,
            start: t,
            order,
            idx: 0,
            attempt: 0,
            busy: false,
            tokened,
            answer: Answer::Busy,
        });
        if self.path == Path::Room && !tokened {
            self.c.r403 += 1;
            self.finish(r, Answer::NotYetAdmitted, t + ms(p.reject_ms));
        } else if tokened && self.closed && p.closed_check {
            // The room has closed: its state, read with the token, says sold_out.
            self.finish(r, Answer::SoldOut, t + ms(p.service_ms));
        } else if self.reqs[r as usize].order.is_empty() {
            // The sold-out hint, checked against the buyer's record (one strongly consistent read).
            self.c.hint_sold_out += 1;
            self.c.rcu += p.owned_read_rcu;
            let answer = if self.out[i as usize].items > 0 { Answer::AlreadyPurchased } else { Answer::SoldOut };
            self.finish(r, answer, t + ms(p.service_ms) + ms(p.read_ms));
        } else {
            self.at(t + ms(p.service_ms), Ev::Tx(r));
        }
    }

    fn new_req(&mut self, req: Req) -> u32 {
        match self.free_reqs.pop() {
            Some(r) => {
                self.reqs[r as usize] = req;
                r
            }
            None => {
                self.reqs.push(req);
                self.reqs.len() as u32 - 1
            }
        }
    }

    /// As the code does: the shards not hinted empty, in a random order per request.
    fn shard_order(&mut self, container: u32, t: Micros) -> Vec<u32> {
        let ttl = ms(self.p.sold_out_hint_ms);
        let h = &mut self.hints[container as usize];
        let empty = match h.since {
            Some(since) if t - since < ttl => h.empty,
            _ => {
                h.empty = 0;
                h.since = None;
                0
            }
        };
        let mut order: Vec<u32> = (0..self.p.shards).filter(|s| empty & (1u64 << s) == 0).collect();
        self.rng.shuffle(&mut order);
        order
    }

    fn tx(&mut self, r: u32, t: Micros) {
        let p = self.p;
        let hold = ms(p.tx_hold_ms);
        let (client, container, start, shard, attempt) = {
            let q = &self.reqs[r as usize];
            (q.client, q.container, q.start, q.order[q.idx], q.attempt)
        };
        if t - start > ms(p.time_budget_ms) {
            self.finish(r, Answer::Busy, t);
            return;
        }
        self.c.transactions += 1;
        // Both items are checked, committed or not.
        self.c.wcu += 2.0 * p.wcu_per_item;
        let s = shard as usize;
        if self.held_until[s] > t {
            self.c.conflicts += 1;
            if self.c.sold_out_at.is_none() {
                self.c.conflicts_before_sell_out += 1;
            }
            if attempt < p.conflict_retries {
                let cap = ms(p.backoff_cap_ms).min(ms(p.backoff_base_ms).saturating_mul(1 << attempt.min(16)));
                let pause = self.uniform(0, cap);
                self.reqs[r as usize].attempt += 1;
                self.c.conflict_retries += 1;
                self.at(t + hold + pause, Ev::Tx(r));
            } else {
                self.reqs[r as usize].busy = true;
                self.next_shard(r, t + hold);
            }
            return;
        }
        let o = &mut self.out[client as usize];
        let commits = o.items == 0 && self.remaining[s] > 0;
        self.held_until[s] = t + if commits { hold } else { ms(p.cancelled_hold_ms) };
        if o.items > 0 {
            self.finish(r, Answer::AlreadyPurchased, t + hold);
        } else if commits {
            // Its quantity, or what is left: from this shard first, the rest from the fullest
            // others in the same transaction (the product plans them from one consistent read;
            // the model counts the conflicts of the first shard only).
            let mut want = u64::from(self.clients[client as usize].quantity.max(1)).min(self.total_remaining) as u32;
            let took = want;
            let mut shard = s;
            while want > 0 {
                let n = want.min(self.remaining[shard]);
                self.remaining[shard] -= n;
                want -= n;
                if want > 0 {
                    shard = (0..self.remaining.len()).max_by_key(|&k| self.remaining[k]).expect("a shard");
                }
            }
            let o = &mut self.out[client as usize];
            self.total_remaining -= u64::from(took);
            self.c.sold += u64::from(took);
            o.items += took;
            o.item_at = Some(t + hold);
            if self.total_remaining == 0 {
                self.c.sold_out_at = Some(t + hold);
                self.closed = true;
            }
            self.finish(r, Answer::Item, t + hold);
        } else {
            let h = &mut self.hints[container as usize];
            h.empty |= 1u64 << shard;
            h.since.get_or_insert(t + hold);
            self.next_shard(r, t + hold);
        }
    }

    fn next_shard(&mut self, r: u32, t: Micros) {
        let q = &mut self.reqs[r as usize];
        q.idx += 1;
        q.attempt = 0;
        if q.idx < q.order.len() {
            self.at(t, Ev::Tx(r));
        } else {
            if q.busy && self.p.stock_read_on_busy {
                // The product reads the shards (consistently) before it answers 503.
                self.c.rcu += f64::from(self.p.shards);
                let answer = if self.total_remaining == 0 { Answer::SoldOut } else { Answer::Busy };
                self.finish(r, answer, t + ms(self.p.read_ms));
                return;
            }
            let answer = if q.busy { Answer::Busy } else { Answer::SoldOut };
            self.finish(r, answer, t);
        }
    }

    fn finish(&mut self, r: u32, answer: Answer, t: Micros) {
        self.reqs[r as usize].answer = answer;
        self.at(t, Ev::Done(r));
    }

    fn done(&mut self, r: u32, t: Micros) {
        let q = &self.reqs[r as usize];
        let (client, answer, tokened) = (q.client, q.answer, q.tokened);
        self.inflight -= 1;
        self.idle.push(q.container);
        self.free_reqs.push(r);
        if answer == Answer::Busy {
            self.c.r503 += 1;
        }
        self.answer(client, answer, tokened, t);
    }

    /// An identity hears `answer` at `t` and decides what to do next.
    fn answer(&mut self, i: u32, answer: Answer, tokened: bool, t: Micros) {
        let p = self.p;
        let refused = matches!(answer, Answer::Throttled | Answer::Busy);
        if answer == Answer::SoldOut {
            self.out[i as usize].told_sold_out = true;
            if tokened && self.token_at[i as usize].is_some() {
                self.c.sold_out_to_admitted += 1;
            }
        }
        if refused {
            self.out[i as usize].refusals += 1;
            if tokened {
                self.c.refusals_admitted += 1;
                if self.c.sold_out_at.is_some_and(|s| s <= t) {
                    self.c.refusals_admitted_after_sell_out += 1;
                }
            }
        }
        if self.path == Path::Room && !tokened {
            // A script without a token: its cycle goes on by itself.
            return;
        }
        if !refused {
            // Item, sold_out, already_purchased: done. (403 only happens without a token.)
            return;
        }
        if self.clients[i as usize].script {
            if !self.script_tired(i, t) {
                self.at(t + ms(p.script_interval_ms).max(1), Ev::Press(i));
            }
            return;
        }
        let o = &mut self.out[i as usize];
        if o.refusals <= p.human_retries {
            let wait = self.uniform(us(p.human_retry_min_s), us(p.human_retry_max_s));
            self.at(t + wait, Ev::Press(i));
        } else {
            o.gave_up = true;
        }
    }
}
