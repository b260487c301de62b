//! The `flash-sale-admin` interface that scripts rely on, run as a process against DynamoDB Local.

use std::process::{Command, Output};

use flash_sale::clock::ManualClock;
use flash_sale::ids::{SaleId, UserId};
use flash_sale_testkit::{TestApp, endpoint, unique};
use serde_json::Value;

struct Cli {
    table: String,
}

impl Cli {
    fn new() -> Self {
        Self { table: unique("cli") }
    }

    /// Runs the CLI with the global flags after the subcommand.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flash-sale-admin"));
        cmd.args(args).args(["--table", &self.table, "--endpoint-url", &endpoint()]);
        cmd.output().expect("run flash-sale-admin")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should have been refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `create-sale` of a sneaker at 129 EUR, with `extra` flags after the common ones.
    fn create_sale(&self, id: &str, stock: &str, shards: &str, starts: &str, ends: &str, extra: &[&str]) -> Output {
        let common = [
            "create-sale",
            "--sale-id",
            id,
            "--name",
            "Limited sneaker",
            "--price-cents",
            "12900",
            "--currency",
            "EUR",
            "--stock",
            stock,
            "--shards",
            shards,
            "--starts-at",
            starts,
            "--ends-at",
            ends,
        ];
        self.run(&[&common[..], extra].concat())
    }

    fn store(&self) -> flash_sale::store::Store {
        flash_sale::store::Store::new(flash_sale::aws::local_client(&endpoint()).unwrap(), self.table.clone())
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

const OPEN: &str = "2020-01-01T00:00:00Z";
const CLOSE: &str = "2099-01-01T00:00:00Z";

#[test]
fn create_table_is_idempotent_and_global_flags_go_before_or_after() {
    let cli = Cli::new();
    assert!(cli.ok(&["create-table"]).contains("created"));
    // Flags before the subcommand this time.
    let out = Command::new(env!("CARGO_BIN_EXE_flash-sale-admin"))
        .args(["--table", &cli.table, "--endpoint-url", &endpoint(), "create-table"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already exists"));
}

#[test]
fn create_sale_refuses_duplicates_and_nonsense_and_stores_nothing_for_them() {
    let cli = Cli::new();
    cli.ok(&["create-table"]);
    let out = cli.create_sale("drop-1", "100", "4", OPEN, CLOSE, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((created["saleId"].as_str(), created["totalStock"].as_i64()), (Some("drop-1"), Some(100)));

    let dup = cli.create_sale("drop-1", "5", "1", OPEN, CLOSE, &[]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    for (why, id, stock, shards, starts, ends) in [
        ("zero stock", "z1", "0", "1", OPEN, CLOSE),
        ("negative stock", "z2", "-5", "1", OPEN, CLOSE),
        ("end before start", "z3", "10", "1", CLOSE, OPEN),
        ("end equals start", "z4", "10", "1", OPEN, OPEN),
        ("more shards than stock", "z5", "3", "4", OPEN, CLOSE),
        ("zero shards", "z6", "3", "0", OPEN, CLOSE),
        ("bad timestamp", "z7", "3", "1", "tomorrow", CLOSE),
        ("bad sale id", "bad#id", "3", "1", OPEN, CLOSE),
    ] {
        let out = cli.create_sale(id, stock, shards, starts, ends, &[]);
        assert!(!out.status.success(), "{why} was accepted");
    }
    let listed = lines(&cli.ok(&["list-sales"]));
    assert_eq!(listed.len(), 1, "only the valid sale exists: {listed:?}");
    assert_eq!(listed[0]["saleId"], "drop-1");
    assert_eq!(listed[0]["remainingStock"], 100, "the duplicate did not touch the stock");
}

#[test]
fn buyers_come_out_in_purchase_order_and_reset_restores_the_sale() {
    let cli = Cli::new();
    cli.ok(&["create-table"]);
    assert!(cli.create_sale("drop-2", "10", "2", OPEN, CLOSE, &[]).status.success());

    // Buy through the purchase path at known, increasing times, in non-alphabetical order.
    let clock = ManualClock::at(1_900_000_000_000);
    let app = TestApp::on(&cli.store()).clocked(&clock);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sale = SaleId::parse("drop-2").unwrap();
    for user in ["carol", "alice", "bob, \"the builder\""] {
        assert!(rt.block_on(app.purchase(&sale, &UserId::parse(user).unwrap(), None)).result.is_ok());
        clock.advance(1);
    }

    let buyers = lines(&cli.ok(&["buyers", "--sale-id", "drop-2"]));
    let users: Vec<&str> = buyers.iter().map(|b| b["userId"].as_str().unwrap()).collect();
    assert_eq!(users, ["carol", "alice", "bob, \"the builder\""]);
    assert_eq!(buyers[0]["purchasedAt"], "2030-03-17T17:46:40.000Z");
    let csv = cli.ok(&["buyers", "--sale-id", "drop-2", "--format", "csv"]);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "purchasedAt,orderId,userId,shard,status,holdExpiresAt,variantId,quantity");
    assert!(rows[1].ends_with(",confirmed,,default,1"), "{}", rows[1]);
    assert!(rows[1].contains(",carol,"));
    assert!(rows[3].contains(",\"bob, \"\"the builder\"\"\","), "CSV quoting: {}", rows[3]);

    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "drop-2"])).unwrap();
    assert_eq!((shown["purchases"].as_i64(), shown["sale"]["remainingStock"].as_i64()), (Some(3), Some(7)));

    assert!(cli.refused(&["reset-sale", "--sale-id", "drop-2"]).contains("--yes"));
    assert_eq!(lines(&cli.ok(&["buyers", "--sale-id", "drop-2"])).len(), 3, "nothing deleted without --yes");
    // Paid orders: refused, nothing deleted, unless asked for by name.
    let refused = cli.refused(&["reset-sale", "--sale-id", "drop-2", "--yes"]);
    assert!(refused.contains("3 confirmed") && refused.contains("--include-confirmed"), "{refused}");
    assert_eq!(lines(&cli.ok(&["buyers", "--sale-id", "drop-2"])).len(), 3, "nothing deleted without the flag");
    let args = ["reset-sale", "--sale-id", "drop-2", "--yes", "--include-confirmed"];
    assert!(cli.ok(&args).contains("3 purchases deleted"));
    assert!(cli.ok(&["buyers", "--sale-id", "drop-2"]).is_empty());
    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "drop-2"])).unwrap();
    assert_eq!(shown["shards"], serde_json::json!([5, 5]));
    assert_eq!(shown["purchases"], 0);
    assert!(cli.refused(&["show-sale", "--sale-id", "no-such"]).contains("does not exist"));
}

#[test]
fn a_sized_drop_is_created_shown_and_listed_per_variant() {
    let cli = Cli::new();
    cli.ok(&["create-table"]);
    let sale = |id: &str, sizes: &[&str]| {
        let common = ["create-sale", "--sale-id", id, "--name", "Runner", "--price-cents", "9900", "--currency", "EUR"];
        cli.run(&[&common[..], &["--starts-at", OPEN, "--ends-at", CLOSE], sizes].concat())
    };
    let out = sale("sizes", &["--variant", "eu41:EU 41:3", "--variant", "eu42:EU 42:5:2", "--max-per-customer", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!sale("bad", &["--variant", "eu41:EU 41"]).status.success(), "a variant without its stock");

    let clock = ManualClock::at(1_900_000_000_000);
    let app = TestApp::on(&cli.store()).clocked(&clock);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (user, variant, quantity) in [("ann", "eu42", 2), ("ben", "eu41", 1)] {
        let body = serde_json::json!({"userId": user, "variantId": variant, "quantity": quantity}).to_string();
        let (status, order) = rt.block_on(app.post_purchase("sizes", &body));
        assert_eq!(status, 201, "{order}");
    }
    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "sizes"])).unwrap();
    assert_eq!(shown["liveItemsByVariant"], serde_json::json!({"eu41": 1, "eu42": 2}), "{shown}");
    let variants = shown["sale"]["variants"].as_array().expect("per-variant stock");
    let left: Vec<(&str, i64)> =
        variants.iter().map(|v| (v["variantId"].as_str().unwrap(), v["remainingStock"].as_i64().unwrap())).collect();
    assert_eq!(left, [("eu41", 2), ("eu42", 3)]);
    let buyers = lines(&cli.ok(&["buyers", "--sale-id", "sizes"]));
    let mut bought: Vec<(String, String, u64)> = buyers
        .iter()
        .map(|b| {
            (
                b["userId"].as_str().unwrap().into(),
                b["variantId"].as_str().unwrap().into(),
                b["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    bought.sort();
    assert_eq!(bought, [("ann".into(), "eu42".into(), 2), ("ben".into(), "eu41".into(), 1)]);

    // With a waiting room: each admission sets two items aside; the room admits at the rate all
    // the variants' shards sustain (3 × 50).
    let sizes = ["--variant", "eu41:EU 41:3", "--variant", "eu42:EU 42:5:2", "--max-per-customer", "2"];
    let out = sale("sizes-room", &[&sizes[..], &["--waiting-room"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "sizes-room"])).unwrap();
    assert_eq!(shown["waitingRoom"]["settings"]["admitPerSecond"], 150, "{shown}");
    assert_eq!(shown["sale"]["maxPerCustomer"], 2, "{shown}");
    let refused = sale("greedy-room", &["--variant", "eu41:EU 41:3", "--max-per-customer", "4", "--waiting-room"]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && why.contains("max per customer (4)"), "{why}");
}

#[test]
fn support_staff_confirm_release_and_sweep_holds_and_a_reset_gives_back_only_live_orders() {
    let cli = Cli::new();
    cli.ok(&["create-table"]);
    let mut args = vec!["create-sale", "--sale-id", "held", "--name", "Console", "--price-cents", "100"];
    args.extend(["--currency", "EUR", "--stock", "4", "--shards", "1", "--starts-at", OPEN, "--ends-at", CLOSE]);
    args.extend(["--hold-seconds", "60"]);
    let created: Value = serde_json::from_str(&cli.ok(&args)).unwrap();
    assert_eq!(created["holdSeconds"], 60);
    assert!(cli.refused(&[&args[..args.len() - 1], &["86401"]].concat()).contains("hold seconds"));

    // Three holds at a known time.
    let clock = ManualClock::at(1_900_000_000_000);
    let app = TestApp::on(&cli.store()).clocked(&clock);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sale = SaleId::parse("held").unwrap();
    let mut orders = Vec::new();
    for user in ["ann", "ben", "cy"] {
        let p = rt.block_on(app.purchase(&sale, &UserId::parse(user).unwrap(), None)).result.unwrap();
        orders.push(p.order_id);
    }
    let buyers = lines(&cli.ok(&["buyers", "--sale-id", "held"]));
    assert!(buyers.iter().all(|b| b["status"] == "reserved" && b["holdExpiresAt"] == "2030-03-17T17:47:40.000Z"));

    // Confirm ann's (the holds end in 2030: still running by the wall clock), release ben's.
    let confirmed: Value =
        serde_json::from_str(&cli.ok(&["confirm", "--sale-id", "held", "--order-id", &orders[0]])).unwrap();
    assert_eq!(confirmed["status"], "confirmed");
    let released: Value = serde_json::from_str(&cli.ok(&["release", "--sale-id", "held", "--user-id", "ben"])).unwrap();
    assert_eq!(released["status"], "cancelled");
    assert!(cli.refused(&["release", "--sale-id", "held", "--user-id", "ann"]).contains("confirmed"));
    assert!(cli.refused(&["confirm", "--sale-id", "held", "--order-id", &orders[1]]).contains("cancelled"));
    let swept: Value = serde_json::from_str(&cli.ok(&["sweep"])).unwrap();
    assert_eq!(swept["released"], 0, "no hold has ended by the wall clock");

    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "held"])).unwrap();
    assert_eq!(shown["orders"], serde_json::json!({"cancelled": 1, "confirmed": 1, "reserved": 1}));
    assert_eq!((shown["purchases"].as_i64(), shown["shards"][0].as_i64()), (Some(2), Some(2)));
    // A reset gives back the two live orders only: the cancelled one gave its item back already.
    assert!(cli.refused(&["reset-sale", "--sale-id", "held", "--yes"]).contains("1 confirmed"));
    assert!(
        cli.ok(&["reset-sale", "--sale-id", "held", "--yes", "--include-confirmed"]).contains("2 purchases deleted")
    );
    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "held"])).unwrap();
    assert_eq!(shown["shards"], serde_json::json!([4]));
}

#[test]
fn a_non_loopback_endpoint_is_refused_before_any_call() {
    let out = Command::new(env!("CARGO_BIN_EXE_flash-sale-admin"))
        .args(["list-sales", "--endpoint-url", "http://10.1.2.3:8000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));
}

#[test]
fn a_waiting_room_is_created_operated_and_its_draw_verified_from_public_data() {
    let cli = Cli::new();
    cli.ok(&["create-table"]);
    let now = flash_sale::clock::now_ms();
    let starts = flash_sale::time_fmt::rfc3339_ms(now + 2_000);
    let room = ["--waiting-room", "--admit-per-second", "7", "--queue-lanes", "8"];
    let out = cli.create_sale("room-1", "10", "2", &starts, CLOSE, &room);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cli.refused(&["verify-draw", "--sale-id", "room-1"]).contains("still secret"), "no seed before opening");
    let refused = cli.create_sale("r2", "1", "1", OPEN, CLOSE, &["--admit-per-second", "5"]);
    assert!(!refused.status.success(), "room settings need --waiting-room");

    // Twelve people join the pre-queue, then the sale opens and the first status read draws.
    let app = TestApp::on(&cli.store()).admission();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sale = SaleId::parse("room-1").unwrap();
    for n in 0..12 {
        rt.block_on(app.join(&sale, &UserId::parse(&format!("fan-{n}")).unwrap())).expect("join");
    }
    std::thread::sleep(std::time::Duration::from_millis(
        u64::try_from(now + 2_000 + flash_sale::room::DRAW_GRACE_MS - flash_sale::clock::now_ms() + 200).unwrap_or(0),
    ));
    let view = rt.block_on(app.sale_view(&sale)).expect("status");
    assert!(view.queue.as_ref().and_then(|q| q.draw_seed.as_ref()).is_some(), "the seed is public now");

    let verified: Value = serde_json::from_str(&cli.ok(&["verify-draw", "--sale-id", "room-1"])).unwrap();
    assert_eq!((verified["prequeueEntrants"].as_i64(), verified["placesMatching"].as_i64()), (Some(12), Some(12)));
    // A place that is not the draw's is caught.
    let store = cli.store();
    let entries = rt.block_on(store.room_entries(&sale)).unwrap();
    let victim = entries.iter().find(|e| e.place == Some(1)).expect("someone is first");
    let other = entries.iter().find(|e| e.place == Some(2)).expect("someone is second");
    for (entry, place) in [(victim, 2), (other, 1)] {
        rt.block_on(
            store
                .client()
                .update_item()
                .table_name(store.table())
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(entry.pk.clone()))
                .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(entry.sk.clone()))
                .update_expression("SET place = :p")
                .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::N(place.to_string()))
                .send(),
        )
        .unwrap();
    }
    assert!(cli.refused(&["verify-draw", "--sale-id", "room-1"]).contains("differ from the draw"));

    cli.ok(&["pause-admission", "--sale-id", "room-1"]);
    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "room-1"])).unwrap();
    assert_eq!(shown["waitingRoom"]["state"]["paused"], true);
    assert_eq!(shown["waitingRoom"]["settings"]["admitPerSecond"], 7);
    assert_eq!(shown["waitingRoom"]["settings"]["lanes"], 8);
    cli.ok(&["resume-admission", "--sale-id", "room-1"]);
    cli.ok(&["set-admit-rate", "--sale-id", "room-1", "--per-second", "3"]);
    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "room-1"])).unwrap();
    assert_eq!(
        (shown["waitingRoom"]["state"]["paused"].as_bool(), shown["waitingRoom"]["state"]["admitPerSecond"].as_i64()),
        (Some(false), Some(3))
    );
    assert!(cli.refused(&["pause-admission", "--sale-id", "drop-none"]).contains("does not exist"));

    let watched = cli.ok(&["watch", "--sale-id", "room-1", "--for-seconds", "1", "--every-ms", "300"]);
    let first = watched.lines().next().expect("at least one line");
    assert!(first.contains("0/10 sold") && first.contains("admitted through") && first.contains("3/s"), "{watched}");
    assert!(watched.lines().count() <= 5, "it stops: {watched}");
}

#[test]
fn holds_the_sweeper_set_aside_are_listed_retried_and_returned() {
    // Arrange: an ended hold whose shard item is gone (kept aside to restore later), set aside
    // by a sweep.
    let cli = Cli::new();
    cli.ok(&["create-table"]);
    let mut args = vec!["create-sale", "--sale-id", "stuck", "--name", "Console", "--price-cents", "100"];
    args.extend(["--currency", "EUR", "--stock", "1", "--shards", "1", "--starts-at", OPEN, "--ends-at", CLOSE]);
    args.extend(["--hold-seconds", "60"]);
    cli.ok(&args);
    let clock = ManualClock::at(flash_sale::clock::now_ms() - 120_000);
    let store = cli.store();
    let app = TestApp::on(&store).clocked(&clock);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sale = SaleId::parse("stuck").unwrap();
    rt.block_on(app.purchase(&sale, &UserId::parse("ann").unwrap(), None)).result.unwrap();
    let shard_key = |pk: &str| {
        std::collections::HashMap::from([
            ("pk".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned())),
            ("sk".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S("STOCK".into())),
        ])
    };
    let pk = flash_sale::keys::shard_pk("stuck", 0);
    let delete = store
        .client()
        .delete_item()
        .table_name(store.table())
        .set_key(Some(shard_key(&pk)))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .send();
    let shard = rt.block_on(delete).expect("delete the shard").attributes.expect("the shard item");
    clock.advance(60_000);
    let report = rt.block_on(app.scheduled_run(100, std::time::Duration::from_secs(60)));
    assert_eq!((report.sweep.failed, report.sweep.set_aside), (1, 1), "{report:?}");

    // Listed, with the error; counted by show-sale.
    let stuck = lines(&cli.ok(&["stuck-holds", "--sale-id", "stuck"]));
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!((stuck[0]["userId"].as_str(), stuck[0]["status"].as_str()), (Some("ann"), Some("reserved")));
    assert!(stuck[0]["lastError"].as_str().is_some_and(|e| e.contains("missing")), "{stuck:?}");
    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "stuck"])).unwrap();
    assert_eq!(shown["stuckHolds"], 1);

    // A retry while the shard is still gone fails and changes nothing.
    cli.refused(&["stuck-holds", "--sale-id", "stuck", "--retry-user", "ann"]);
    assert_eq!(lines(&cli.ok(&["stuck-holds", "--sale-id", "stuck"])).len(), 1);

    // Returned: the next sweep tries it again (and sets it aside again).
    let returned = cli.ok(&["stuck-holds", "--sale-id", "stuck", "--return-user", "ann"]);
    assert!(returned.contains("ann"), "{returned}");
    assert!(cli.ok(&["stuck-holds", "--sale-id", "stuck"]).is_empty());
    cli.refused(&["stuck-holds", "--sale-id", "stuck", "--return-user", "ann"]);
    let report = rt.block_on(app.scheduled_run(100, std::time::Duration::from_secs(60)));
    assert_eq!(report.sweep.set_aside, 1, "{report:?}");

    // Once the shard is back, a retry releases it: expired, the item back, nothing set aside.
    let put = store.client().put_item().table_name(store.table()).set_item(Some(shard));
    rt.block_on(put.send()).expect("restore the shard");
    let released: Value =
        serde_json::from_str(&cli.ok(&["stuck-holds", "--sale-id", "stuck", "--retry-user", "ann"])).unwrap();
    assert_eq!(released["status"], "expired");
    assert!(cli.ok(&["stuck-holds", "--sale-id", "stuck"]).is_empty());
    let shown: Value = serde_json::from_str(&cli.ok(&["show-sale", "--sale-id", "stuck"])).unwrap();
    assert_eq!((shown["shards"][0].as_i64(), shown["stuckHolds"].as_i64()), (Some(1), Some(0)));
}

#[test]
fn a_beacon_draw_is_exported_and_verified_from_public_files_alone() {
    use flash_sale::beacon::round_time_ms;
    use flash_sale_testkit::drand::DrandFixtureServer;
    let cli = Cli::new();
    cli.ok(&["create-table"]);
    // A recorded quicknet round (123) is the one due at this sale's seal.
    let start = round_time_ms(123) - flash_sale::room::DRAW_GRACE_MS - 1_000;
    let rfc = flash_sale::time_fmt::rfc3339_ms;
    let room = ["--waiting-room", "--queue-lanes", "4", "--public-beacon"];
    let out = cli.create_sale("beacon-1", "10", "1", &rfc(start), &rfc(start + 3_600_000), &room);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let app = TestApp::on(&cli.store()).at(start - 60_000).admission();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sale = SaleId::parse("beacon-1").unwrap();
    for n in 0..6 {
        rt.block_on(app.join(&sale, &UserId::parse(&format!("fan-{n}")).unwrap())).expect("join");
    }
    assert!(cli.refused(&["export-entrants", "--sale-id", "beacon-1"]).contains("not drawn"));
    app.clock().set(round_time_ms(123) + 1_000);
    let server = rt.block_on(DrandFixtureServer::start());
    let relays = sweeper::Relays::new(vec![server.url().to_owned()], std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(rt.block_on(app.draw_due_rooms_with(&relays)).unwrap(), vec!["beacon-1".to_owned()]);
    app.clock().advance(1_000);
    let status = serde_json::to_value(rt.block_on(app.sale_view(&sale)).unwrap()).unwrap();

    let dir = std::env::temp_dir().join(unique("public-draw"));
    std::fs::create_dir_all(&dir).unwrap();
    let (status_file, list_file) = (dir.join("status.json"), dir.join("entrants.json"));
    std::fs::write(&status_file, status.to_string()).unwrap();
    cli.ok(&["export-entrants", "--sale-id", "beacon-1", "--out", list_file.to_str().unwrap()]);
    let public = ["verify-draw", "--public", status_file.to_str().unwrap(), "--entrants", list_file.to_str().unwrap()];
    // No table flags are needed, but they do no harm: the check reads only the two files.
    let report: Value = serde_json::from_str(&cli.ok(&public)).unwrap();
    assert_eq!((report["entrants"].as_i64(), report["placesMatching"].as_i64()), (Some(6), Some(6)), "{report}");
    let stored: Value = serde_json::from_str(&cli.ok(&["verify-draw", "--sale-id", "beacon-1"])).unwrap();
    assert_eq!((stored["beaconRound"].as_u64(), stored["placesMatching"].as_i64()), (Some(123), Some(6)));

    // One published id changed: refused.
    let mut list: Value = serde_json::from_str(&std::fs::read_to_string(&list_file).unwrap()).unwrap();
    let id = list["entrants"][2]["id"].as_str().unwrap().to_owned();
    let changed = format!("{}{}", if id.starts_with('0') { '1' } else { '0' }, &id[1..]);
    list["entrants"][2]["id"] = Value::from(changed);
    std::fs::write(&list_file, list.to_string()).unwrap();
    assert!(cli.refused(&public).contains("Merkle root"));
    std::fs::remove_dir_all(&dir).ok();

    // The list the API publishes, read from beside the status URL with no file at all: the
    // status and page answers of the status function, as an edge cache would serve them.
    let served = |path: &str, params: &[(&str, &str)]| {
        let resp = rt.block_on(flash_sale::http::status_function(&app, flash_sale_testkit::req::get(path, params)));
        assert_eq!(resp.status_code, 200, "{path}: {}", resp.body);
        (path.to_owned(), resp.body)
    };
    let status_path = "/sales/beacon-1";
    let mut files: std::collections::HashMap<String, String> = [
        served(status_path, &[("saleId", "beacon-1")]),
        served("/sales/beacon-1/entrants/0", &[("saleId", "beacon-1"), ("page", "0")]),
    ]
    .into();
    // The edge runs on a runtime of its own, so it answers while this thread waits for the CLI.
    let edge_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let edge = edge_rt.block_on(flash_sale_testkit::fixture_http::FixtureHttpServer::serving(files.clone()));
    let url = format!("{}{status_path}", edge.url());
    let report: Value = serde_json::from_str(&cli.ok(&["verify-draw", "--public", &url])).unwrap();
    assert_eq!((report["entrants"].as_i64(), report["placesMatching"].as_i64()), (Some(6), Some(6)), "{report}");
    // Two entrants' places swapped on the served page: the order no longer matches the draw.
    let page = files.get_mut("/sales/beacon-1/entrants/0").unwrap();
    let mut swapped: Value = serde_json::from_str(page).unwrap();
    swapped["entrants"].as_array_mut().unwrap().swap(0, 5);
    *page = swapped.to_string();
    let edge = edge_rt.block_on(flash_sale_testkit::fixture_http::FixtureHttpServer::serving(files));
    let refused = cli.refused(&["verify-draw", "--public", &format!("{}{status_path}", edge.url())]);
    assert!(refused.contains("differ from the draw"), "{refused}");
}

/// `create-sale` of a sized runner (eu41: 4 items on 1 shard, eu42: 6 on 2), up to 3 per customer,
/// with `extra` flags.
fn create_sized(cli: &Cli, id: &str, extra: &[&str]) {
    let common = ["create-sale", "--sale-id", id, "--name", "Runner", "--price-cents", "9900", "--currency", "EUR"];
    let sizes = ["--variant", "eu41:EU 41:4", "--variant", "eu42:EU 42:6:2", "--max-per-customer", "3"];
    let out = cli.run(&[&common[..], &["--starts-at", OPEN, "--ends-at", CLOSE], &sizes, extra].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Buys `quantity` of `variant` for `user` through the purchase handler; the order as answered.
fn order(app: &TestApp, rt: &tokio::runtime::Runtime, sale: &str, user: &str, variant: &str, quantity: u32) -> Value {
    let body = serde_json::json!({"userId": user, "variantId": variant, "quantity": quantity}).to_string();
    let (status, order) = rt.block_on(app.post_purchase(sale, &body));
    assert_eq!(status, 201, "{order}");
    order
}

#[test]
fn watch_shows_each_variant_of_a_sized_sale_and_a_plain_sale_as_before() {
    let cli = Cli::new();
    cli.ok(&["create-table"]);
    create_sized(&cli, "sizes-w", &[]);
    assert!(cli.create_sale("plain-w", "10", "2", OPEN, CLOSE, &[]).status.success());
    let app = TestApp::on(&cli.store());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    order(&app, &rt, "sizes-w", "ann", "eu42", 3);
    order(&app, &rt, "sizes-w", "ben", "eu41", 1);
    order(&app, &rt, "sizes-w", "ben", "eu42", 1);

    let watched = cli.ok(&["watch", "--sale-id", "sizes-w", "--for-seconds", "1", "--every-ms", "300"]);
    let first = watched.lines().next().expect("at least one line");
    assert!(first.contains(" 5/10 sold"), "{watched}");
    assert!(first.contains("| eu41 3/4 left, 1 live  | eu42 2/6 left, 4 live"), "{watched}");
    assert!(watched.lines().count() <= 5, "it stops: {watched}");
    // Without the scan of live orders, the stock alone.
    let stock_only = cli.ok(&["watch", "--sale-id", "sizes-w", "--for-seconds", "1", "--live-every", "0"]);
    assert!(stock_only.lines().next().unwrap().ends_with("| eu41 3/4 left  | eu42 2/6 left"), "{stock_only}");

    rt.block_on(app.buy("plain-w", "cy"));
    let plain = cli.ok(&["watch", "--sale-id", "plain-w", "--for-seconds", "1"]);
    let line = plain.lines().next().unwrap();
    assert!(line.contains("[##..................]       1/10 sold") && line.ends_with("0.0/s"), "{plain}");
    assert!(!line.contains('|'), "no variant columns for a sale without variants: {plain}");
}

#[test]
fn a_variant_reset_gives_back_exactly_that_variants_orders_and_leaves_the_rest() {
    let cli = Cli::new();
    cli.ok(&["create-table"]);
    create_sized(&cli, "sizes-r", &["--hold-seconds", "600"]);
    let store = cli.store();
    let app = TestApp::on(&store);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // ann holds 3 over both variants; ben 3 in eu42 (one order over both its shards' worth);
    // cy 1 in eu41, paid.
    let ann41 = order(&app, &rt, "sizes-r", "ann", "eu41", 2);
    let ann42 = order(&app, &rt, "sizes-r", "ann", "eu42", 1);
    let ben42 = order(&app, &rt, "sizes-r", "ben", "eu42", 3);
    let cy41 = order(&app, &rt, "sizes-r", "cy", "eu41", 1);
    let id = |o: &Value| o["orderId"].as_str().unwrap().to_owned();
    cli.ok(&["confirm", "--sale-id", "sizes-r", "--order-id", &id(&ben42)]);
    cli.ok(&["confirm", "--sale-id", "sizes-r", "--order-id", &id(&cy41)]);
    let sale_id = SaleId::parse("sizes-r").unwrap();
    let sale = rt.block_on(store.get_sale(&sale_id)).unwrap().unwrap();
    let before = rt.block_on(store.purchases_of(&sale_id)).unwrap();

    // Refused: an unknown variant, no --yes, a paid order in the variant without the flag.
    let reset = |extra: &[&'static str]| -> Vec<&'static str> {
        [&["reset-sale", "--sale-id", "sizes-r", "--variant", "eu41"][..], extra].concat()
    };
    assert!(cli.refused(&["reset-sale", "--sale-id", "sizes-r", "--variant", "eu43", "--yes"]).contains("no variant"));
    assert!(cli.refused(&reset(&[])).contains("--yes"));
    let refused = cli.refused(&reset(&["--yes"]));
    assert!(refused.contains("variant eu41 has 1 confirmed"), "{refused}");
    assert_eq!(rt.block_on(store.purchases_of(&sale_id)).unwrap(), before, "nothing changed");

    assert!(cli.ok(&reset(&["--yes", "--include-confirmed"])).contains("variant eu41 reset: 2 purchases deleted"));

    // Stored state: eu41 all back on its shard; eu42's orders as they were, and per shard its
    // stock + what its live orders took = what it started with.
    let after = rt.block_on(store.purchases_of(&sale_id)).unwrap();
    let kept: Vec<&flash_sale::store::PurchaseRecord> = before.iter().filter(|r| r.variant() == "eu42").collect();
    assert_eq!(after.iter().collect::<Vec<_>>(), kept, "the other variant's orders are untouched");
    let ids: Vec<String> = after.iter().map(|r| r.order_id.clone()).collect();
    assert_eq!(ids, [id(&ann42), id(&ben42)]);
    let shards = rt.block_on(store.shard_stock(&[&sale])).unwrap().remove(0);
    let initial = sale.shard_stock();
    let mut taken = vec![0i64; initial.len()];
    for r in after.iter().filter(|r| r.status.is_live()) {
        for t in r.taken() {
            taken[t.shard as usize] += t.n;
        }
    }
    for (n, start) in initial.iter().enumerate() {
        assert_eq!(shards[n] + taken[n], *start, "shard {n}: stock {shards:?}, taken {taken:?}");
    }
    assert_eq!((shards[0], taken[1] + taken[2]), (4, 4), "eu41 is whole again; eu42 still has 4 taken");
    // Customers: live counts and order sets lose exactly the reset orders.
    let customer = |user: &str| rt.block_on(store.customer(&sale_id, &UserId::parse(user).unwrap())).unwrap().unwrap();
    let (ann, ben, cy) = (customer("ann"), customer("ben"), customer("cy"));
    assert_eq!((ann.live, ann.orders), (1, vec![id(&ann42)]));
    assert_eq!((ben.live, ben.orders), (3, vec![id(&ben42)]));
    assert_eq!((cy.live, cy.orders.len()), (0, 0));
    // ann may buy 2 more again; the limit still holds across variants.
    order(&app, &rt, "sizes-r", "ann", "eu41", 2);
    let body = serde_json::json!({"userId": "ann", "variantId": "eu42", "quantity": 1}).to_string();
    let (status, refusal) = rt.block_on(app.post_purchase("sizes-r", &body));
    assert_eq!((status, refusal["code"].as_str()), (409, Some("limit_reached")), "{refusal}");

    // What the whole-sale reset emits, for exactly the reset orders: OrderCancelled, reason reset,
    // with their variant and quantity.
    let records = rt.block_on(flash_sale_testkit::streams::stream_records(&endpoint(), store.table()));
    let bus = rt.block_on(flash_sale_testkit::streams::FakeEventBridge::start());
    let published = rt.block_on(order_events::publish(&bus.bus("b"), &serde_json::json!({ "Records": records })));
    assert!(published.batch_item_failures.is_empty());
    let mut cancelled: Vec<(String, String, String, u64)> = bus
        .accepted()
        .iter()
        .filter(|(t, _, _, _)| t == "OrderCancelled")
        .map(|(_, d, _, _)| {
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (text("orderId"), text("reason"), text("variantId"), d["quantity"].as_u64().unwrap_or(0))
        })
        .collect();
    cancelled.sort();
    let mut expected =
        vec![(id(&ann41), "reset".into(), "eu41".into(), 2), (id(&cy41), "reset".into(), "eu41".into(), 1)];
    expected.sort();
    assert_eq!(cancelled, expected);
}
