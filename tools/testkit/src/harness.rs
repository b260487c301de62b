//! [`TestApp`]: the functions as API Gateway calls them, one per simulated container; and
//! [`SaleSpec`], the one way a test makes a sale.

use std::ops::Deref;
use std::sync::Arc;

use flash_sale::App;
use flash_sale::clock::{Clock, ManualClock, SystemClock};
use flash_sale::config::{AuthMode, Config, PathParams, Tuning};
use flash_sale::http::{ApiRequest, ApiResponse};
use flash_sale::ids::SaleId;
use flash_sale::sale::Sale;
use flash_sale::store::{PurchaseRecord, Store};
use serde_json::{Value, json};

use crate::{TestBody, admission_keys, fresh_store, fresh_store_with_stream, now_ms, read, req, tuning, unique};

const HOUR: i64 = 3_600_000;

/// The function a request goes to (the routes of `infra/template.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /sales/{saleId}/purchases`.
    Purchase,
    /// `GET /health`, `GET /sales`, `GET /sales/{saleId}`, `GET /sales/{saleId}/entrants/{page}`.
    Status,
    /// `GET | DELETE /sales/{saleId}/purchases/{userId}`.
    Lookup,
    /// `POST /sales/{saleId}/orders/{orderId}/confirm`.
    Orders,
    /// `POST /sales/{saleId}/queue`, `GET /sales/{saleId}/queue/{userId}`.
    Queue,
}

impl Route {
    pub const ALL: [Route; 5] = [Route::Purchase, Route::Status, Route::Lookup, Route::Orders, Route::Queue];

    /// The function's handler on `app`. Boxed: the handlers' futures stay off the test's future.
    pub async fn call(self, app: &App, req: ApiRequest) -> ApiResponse {
        match self {
            Route::Purchase => Box::pin(flash_sale::http::purchase_function(app, req)).await,
            Route::Status => Box::pin(flash_sale::http::status_function(app, req)).await,
            Route::Lookup => Box::pin(flash_sale::http::user_lookup_function(app, req)).await,
            Route::Orders => Box::pin(flash_sale::http::orders_function(app, req)).await,
            Route::Queue => Box::pin(flash_sale::http::queue_function(app, req)).await,
        }
    }
}

/// Anything that names a sale: its id as text, a [`SaleId`] or the [`Sale`] itself.
pub trait SaleRef {
    fn sale_id(&self) -> &str;
}

impl SaleRef for str {
    fn sale_id(&self) -> &str {
        self
    }
}

impl SaleRef for String {
    fn sale_id(&self) -> &str {
        self
    }
}

impl SaleRef for SaleId {
    fn sale_id(&self) -> &str {
        self.as_str()
    }
}

impl SaleRef for Sale {
    fn sale_id(&self) -> &str {
        self.id.as_str()
    }
}

impl<T: SaleRef + ?Sized> SaleRef for &T {
    fn sale_id(&self) -> &str {
        (**self).sale_id()
    }
}

/// One simulated container of the functions: an [`App`] (its own caches, blocks of places, sale
/// configuration) on a table of DynamoDB Local, with the wall clock or a manual one. Several
/// containers on one store ([`TestApp::containers`]) share the table and the clock, nothing else,
/// as Lambda's execution environments do.
///
/// Every route has a method named after it (`post_purchase`, `get_purchase`, `delete_purchase`,
/// `post_confirm`, `get_sale`, `get_sales`, `post_queue`, `get_queue`, and `buy` in short) answering
/// `(status, JSON body)` through [`read`] (which checks the content type and the problem shape);
/// [`TestApp::call`] answers the raw [`ApiResponse`]. The [`App`]'s own methods (the use cases
/// without HTTP) are there too, through `Deref`.
pub struct TestApp {
    store: Store,
    clock: Option<ManualClock>,
    config: Config,
    app: App,
}

impl TestApp {
    /// A container on a new table of its own (no stream): the wall clock, buyers named in the
    /// body, the tests' tuning ([`tuning`]), no admission key.
    pub async fn fresh() -> Self {
        Self::on(&fresh_store().await)
    }

    /// [`TestApp::fresh`] on a table with its stream, as `flash-sale-admin create-table` makes it.
    pub async fn fresh_with_stream() -> Self {
        Self::on(&fresh_store_with_stream().await)
    }

    /// A container on `store`.
    pub fn on(store: &Store) -> Self {
        let mut config = Config::for_table(store.table(), AuthMode::Body);
        config.tuning = tuning();
        Self::build(store.clone(), None, config)
    }

    /// Every container, as every Lambda process, has a retry quota of its own ([`own_retry_quota`]).
    fn build(store: Store, clock: Option<ManualClock>, config: Config) -> Self {
        let store = Store::new(crate::own_retry_quota(store.client()), store.table());
        let shared: Arc<dyn Clock> = match &clock {
            Some(c) => Arc::new(c.clone()),
            None => Arc::new(SystemClock),
        };
        let app = App::new(store.clone(), shared, config.clone());
        Self { store, clock, config, app }
    }

    fn with(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.config;
        change(&mut config);
        Self::build(self.store, self.clock, config)
    }

    /// On a manual clock at `ms` (shared with every container made from this one).
    pub fn at(self, ms: i64) -> Self {
        Self::build(self.store, Some(ManualClock::at(ms)), self.config)
    }

    /// On `clock` (shared with whoever else holds it).
    pub fn clocked(self, clock: &ManualClock) -> Self {
        Self::build(self.store, Some(clock.clone()), self.config)
    }

    pub fn auth(self, mode: AuthMode) -> Self {
        self.with(|c| c.auth_mode = mode)
    }

    pub fn path_params(self, params: PathParams) -> Self {
        self.with(|c| c.path_params = params)
    }

    /// Changes the tests' tuning (e.g. a sale cache, a lower request draw limit).
    pub fn tune(self, change: impl FnOnce(&mut Tuning)) -> Self {
        self.with(|c| change(&mut c.tuning))
    }

    /// Signs and checks admission tokens with [`crate::ADMISSION_KEY_HEX`] (the waiting room).
    pub fn admission(self) -> Self {
        self.with(|c| c.admission_keys = Some(admission_keys()))
    }

    /// The same table reached through another client (e.g. one whose endpoint is a proxy).
    pub fn via(self, client: aws_sdk_dynamodb::Client) -> Self {
        let store = Store::new(client, self.store.table());
        Self::build(store, self.clock, self.config)
    }

    /// Reads its admission keys from `secret` (a [`crate::secrets::FakeSecretsManager`]) at each
    /// container's cold start, as a deployed function does; see [`TestApp::cold_start`].
    pub fn admission_secret(self, secret: &crate::secrets::FakeSecretsManager) -> Self {
        self.with(|c| {
            c.admission_keys = None;
            c.admission_key_secret = Some(secret.secret_id.clone());
            c.secrets_endpoint = Some(secret.endpoint.clone());
        })
    }

    /// Another container started as a function starts (`App::cold_start`: its admission keys read
    /// from their secret when it has one).
    pub async fn cold_start(&self) -> Self {
        let store = Store::new(crate::own_retry_quota(self.store.client()), self.store.table());
        let shared: Arc<dyn Clock> = match &self.clock {
            Some(c) => Arc::new(c.clone()),
            None => Arc::new(SystemClock),
        };
        let app = App::cold_start(store.clone(), shared, self.config.clone()).await.expect("cold start");
        Self { store, clock: self.clock.clone(), config: self.config.clone(), app }
    }

    /// Another container: the same table, clock and configuration, caches of its own.
    pub fn container(&self) -> Self {
        Self::build(self.store.clone(), self.clock.clone(), self.config.clone())
    }

    /// `N` containers like this one, on one store and one clock.
    pub fn containers<const N: usize>(&self) -> [Self; N] {
        std::array::from_fn(|_| self.container())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The manual clock (panics on the wall clock: see [`TestApp::at`]).
    pub fn clock(&self) -> &ManualClock {
        self.clock.as_ref().expect("this TestApp runs on the wall clock; make it with .at(ms)")
    }

    /// The time the functions see.
    pub fn now(&self) -> i64 {
        self.clock.as_ref().map_or_else(now_ms, |c| c.now_ms())
    }

    /// The stock left per shard and the sale's purchase records, as stored.
    pub async fn stored(&self, sale: &Sale) -> (Vec<i64>, Vec<PurchaseRecord>) {
        crate::stored_state(&self.store, sale).await
    }

    /// The raw answer of `route`'s function to `req`.
    pub async fn call(&self, route: Route, req: ApiRequest) -> ApiResponse {
        route.call(&self.app, req).await
    }

    /// Status and JSON body of `route`'s answer to `req` (see [`read`]).
    pub async fn send(&self, route: Route, req: ApiRequest) -> (u16, Value) {
        read(&self.call(route, req).await)
    }

    /// `POST /sales/{sale}/purchases` with this body.
    pub async fn post_purchase(&self, sale: &(impl SaleRef + ?Sized), body: &str) -> (u16, Value) {
        self.send(Route::Purchase, req::purchase(sale.sale_id(), body)).await
    }

    /// A purchase by `user` (named in the body).
    pub async fn buy(&self, sale: &(impl SaleRef + ?Sized), user: &str) -> (u16, Value) {
        self.post_purchase(sale, &crate::user_body(user)).await
    }

    /// A purchase by `user` sent with this `Idempotency-Key` (none: `None`).
    pub async fn buy_keyed(&self, sale: &(impl SaleRef + ?Sized), user: &str, key: Option<&str>) -> (u16, Value) {
        self.send(Route::Purchase, req::purchase_keyed(sale.sale_id(), user, key)).await
    }

    /// A purchase by `user` carrying this admission token (none: `None`).
    pub async fn buy_admitted(&self, sale: &(impl SaleRef + ?Sized), user: &str, token: Option<&str>) -> (u16, Value) {
        let mut body = json!({ "userId": user });
        if let Some(t) = token {
            body["admissionToken"] = json!(t);
        }
        self.post_purchase(sale, &body.to_string()).await
    }

    /// `GET /sales/{sale}/purchases/{user}`.
    pub async fn get_purchase(&self, sale: &(impl SaleRef + ?Sized), user: &str) -> (u16, Value) {
        self.send(Route::Lookup, req::lookup("GET", sale.sale_id(), user, None)).await
    }

    /// `DELETE /sales/{sale}/purchases/{user}`: the buyer cancels a held order.
    pub async fn delete_purchase(&self, sale: &(impl SaleRef + ?Sized), user: &str) -> (u16, Value) {
        self.send(Route::Lookup, req::lookup("DELETE", sale.sale_id(), user, None)).await
    }

    /// `POST /sales/{sale}/orders/{order}/confirm`: the payment backend confirms.
    pub async fn post_confirm(&self, sale: &(impl SaleRef + ?Sized), order: &str) -> (u16, Value) {
        self.send(Route::Orders, req::confirm("POST", sale.sale_id(), order, TestBody::None)).await
    }

    /// `GET /sales/{sale}`.
    pub async fn get_sale(&self, sale: &(impl SaleRef + ?Sized)) -> (u16, Value) {
        self.send(Route::Status, req::status(sale.sale_id())).await
    }

    /// `GET /sales/{sale}` that must answer 200: the sale as buyers see it.
    pub async fn view(&self, sale: &(impl SaleRef + ?Sized)) -> Value {
        let (code, body) = self.get_sale(sale).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// `GET /sales/{sale}/entrants/{page}`: a page of a drawn pre-queue's published list (the
    /// raw answer, headers included).
    pub async fn get_entrants(&self, sale: &(impl SaleRef + ?Sized), page: &str) -> ApiResponse {
        let sale = sale.sale_id();
        let path = format!("/sales/{sale}/entrants/{page}");
        self.call(Route::Status, req::get(&path, &[("saleId", sale), ("page", page)])).await
    }

    /// `GET /sales`.
    pub async fn get_sales(&self) -> (u16, Value) {
        self.send(Route::Status, req::get("/sales", &[])).await
    }

    /// `POST /sales/{sale}/queue` by `user`.
    pub async fn post_queue(&self, sale: &(impl SaleRef + ?Sized), user: &str) -> (u16, Value) {
        self.send(Route::Queue, req::join(sale.sale_id(), &crate::user_body(user), None)).await
    }

    /// `GET /sales/{sale}/queue/{user}`: the place in line (and the admission token once admitted).
    pub async fn get_queue(&self, sale: &(impl SaleRef + ?Sized), user: &str) -> (u16, Value) {
        self.send(Route::Queue, req::position(sale.sale_id(), user, None)).await
    }
}

impl Deref for TestApp {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

/// A sale to store: `SaleSpec::new().stock(4).shards(2).holds(120).room()`. By default 10 items
/// on one shard, no holds, no waiting room, started a minute before and ending an hour after the
/// time of the [`TestApp`] it is made for.
#[derive(Debug, Clone)]
pub struct SaleSpec {
    prefix: &'static str,
    stock: i64,
    shards: u32,
    holds: i64,
    window: Option<(i64, i64)>,
    room: bool,
    beacon: bool,
}

impl Default for SaleSpec {
    fn default() -> Self {
        Self::new()
    }
}

impl SaleSpec {
    pub fn new() -> Self {
        Self { prefix: "s", stock: 10, shards: 1, holds: 0, window: None, room: false, beacon: false }
    }

    pub fn stock(mut self, stock: i64) -> Self {
        self.stock = stock;
        self
    }

    pub fn shards(mut self, shards: u32) -> Self {
        self.shards = shards;
        self
    }

    /// Orders are held this many seconds until the payment backend confirms them (0: confirmed at once).
    pub fn holds(mut self, seconds: i64) -> Self {
        self.holds = seconds;
        self
    }

    /// Starts and ends at these times (epoch ms).
    pub fn window(mut self, starts_at_ms: i64, ends_at_ms: i64) -> Self {
        self.window = Some((starts_at_ms, ends_at_ms));
        self
    }

    /// With a waiting room (and a fresh draw seed).
    pub fn room(mut self) -> Self {
        self.room = true;
        self
    }

    /// With a waiting room whose draw mixes in the public beacon round due at its start (the
    /// first quicknet round after `startsAt` + 5 s): pick a window whose round the
    /// [`crate::drand::DrandFixtureServer`] serves.
    pub fn public_beacon(mut self) -> Self {
        self.room = true;
        self.beacon = true;
        self
    }

    /// The start of the sale's id (a unique suffix follows).
    pub fn named(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }

    /// The sale, not stored; `now` places the default window.
    pub fn build(&self, now: i64) -> Sale {
        let (start, end) = self.window.unwrap_or((now - 60_000, now + HOUR));
        let prefix = if self.room && self.prefix == "s" { "room" } else { self.prefix };
        let mut s = crate::sale(&unique(prefix), self.stock, self.shards, start, end);
        s.hold_seconds = self.holds;
        s
    }

    /// Stores the sale for `app` (at its time); a room sale's seed is kept secret: see
    /// [`SaleSpec::create_room`].
    pub async fn create(self, app: &TestApp) -> Sale {
        self.create_in(app.store(), app.now()).await.0
    }

    /// Stores a sale with a waiting room; returns it with its draw seed.
    pub async fn create_room(self, app: &TestApp) -> (Sale, Vec<u8>) {
        self.room().create_in(app.store(), app.now()).await
    }

    /// Stores the sale in `store`, created at `now` (a room sale: an hour before it starts);
    /// returns it and its draw seed (empty without a room).
    pub async fn create_in(self, store: &Store, now: i64) -> (Sale, Vec<u8>) {
        let mut s = self.build(now);
        if !self.room {
            store.create_sale(&s, now).await.expect("create sale");
            return (s, Vec::new());
        }
        let seed = flash_sale::room::new_seed().expect("seed").to_vec();
        let mut config = flash_sale::room::RoomConfig::new(s.shards, s.starts_at_ms, &seed);
        if self.beacon {
            config = config.with_public_beacon(s.starts_at_ms);
        }
        s.room = Some(config);
        store.create_sale_with_room(&s, &seed, s.starts_at_ms - HOUR).await.expect("create sale with room");
        (s, seed)
    }
}
