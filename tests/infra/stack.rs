//! The table and the functions' runtime settings.

use flash_sale::keys::{PURCHASE_SK, SHARD_SK, purchase_pk, shard_pk};
use flash_sale::order::OrderStatus;
use flash_sale::store::Store;
use integration_tests::template::{functions, template};
use serde_json::{Value, json};

use crate::common::{obj, toml_file};
use crate::fake_dynamodb::FakeDynamoDb;

/// Sorted by name, so the comparison ignores order.
fn sorted(v: &Value, key: &str) -> Vec<Value> {
    let mut items = v.as_array().cloned().unwrap_or_default();
    items.sort_by_key(|i| i[key].as_str().unwrap_or_default().to_owned());
    items
}

#[tokio::test]
async fn the_template_creates_the_table_the_code_creates_locally() {
    // What `flash-sale-admin create-table` (Store::create_table) asks DynamoDB for.
    let fake = FakeDynamoDb::start().await;
    assert!(Store::new(fake.client(), "t").create_table().await.expect("create the table on the fake"));
    let created = fake.calls("CreateTable");
    assert_eq!(created.len(), 1, "{created:?}");
    let local = &created[0].body;

    let t = template();
    let table = &t["Resources"]["Table"]["Properties"];
    assert_eq!(
        sorted(&table["AttributeDefinitions"], "AttributeName"),
        sorted(&local["AttributeDefinitions"], "AttributeName"),
        "attribute definitions: template (left), code (right)"
    );
    assert_eq!(table["KeySchema"], local["KeySchema"], "key schema: template (left), code (right)");
    let strip = |gsis: &Value| -> Vec<Value> {
        sorted(gsis, "IndexName")
            .into_iter()
            .map(|g| json!({"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}))
            .collect()
    };
    assert_eq!(
        strip(&table["GlobalSecondaryIndexes"]),
        strip(&local["GlobalSecondaryIndexes"]),
        "indexes: template (left), code (right)"
    );
    assert_eq!(table["BillingMode"], local["BillingMode"], "billing mode");
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    // The stream the order events come from: CloudFormation has no StreamEnabled, a view type is it.
    assert_eq!(local["StreamSpecification"]["StreamEnabled"], true, "the code creates the table with a stream");
    assert_eq!(
        table["StreamSpecification"],
        json!({"StreamViewType": local["StreamSpecification"]["StreamViewType"]}),
        "stream: template (left), code (right)"
    );
    assert_eq!(table["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES", "events compare old and new");

    // Cloud-only settings.
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
    assert_eq!(table["TimeToLiveSpecification"], json!({"AttributeName": "expiresAt", "Enabled": true}));
    assert_eq!(table["DeletionProtectionEnabled"], json!({"Fn::If": ["ProtectTable", true, false]}));
}

#[test]
fn each_function_builds_its_binary_for_arm64_with_its_own_log_group() {
    let t = template();
    // CodeUri is relative to infra/: it must be the workspace root, whose members build the binaries.
    let globals = &t["Globals"]["Function"];
    assert!(toml_file("infra/../Cargo.toml")["workspace"].is_object(), "infra/.. is not the workspace root");
    for (binary, (id, res)) in functions(&t) {
        assert_eq!(res["Metadata"]["BuildMethod"], "rust-cargolambda", "{id}: BuildMethod");
        let props = &res["Properties"];
        let prop = |k: &str| {
            if props[k].is_null() { globals[k].clone() } else { props[k].clone() }
        };
        assert_eq!(props["CodeUri"], "..", "{id}: CodeUri must be the workspace root, relative to infra/");
        assert_eq!(prop("Runtime"), "provided.al2023", "{id}");
        assert_eq!(prop("Architectures"), json!(["arm64"]), "{id}");
        assert_eq!(prop("Handler"), "bootstrap", "{id}");
        assert_eq!(prop("Tracing"), "Active", "{id}");
        assert_eq!(props["LoggingConfig"]["LogFormat"], "JSON", "{id}");
        let group =
            props["LoggingConfig"]["LogGroup"]["Ref"].as_str().unwrap_or_else(|| panic!("{id}: no own log group"));
        assert_eq!(
            t["Resources"][group]["Properties"]["RetentionInDays"],
            json!({"Ref": "LogRetentionInDays"}),
            "{group}"
        );
        let package = toml_file(&format!("functions/{binary}/Cargo.toml"));
        let bins: Vec<&str> = package["bin"]
            .as_array()
            .map(|b| b.iter().filter_map(|b| b["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            package["package"]["name"] == binary.as_str() || bins.contains(&binary.as_str()),
            "{id} builds the binary {binary}, which functions/{binary} does not define"
        );
    }
}

/// A function's own environment variable (`None` when the template does not set it).
fn env_var<'t>(res: &'t Value, name: &str) -> Option<&'t Value> {
    res["Properties"]["Environment"]["Variables"].get(name)
}

#[test]
fn the_admission_key_comes_from_a_generated_hex_secret_to_the_functions_that_need_it() {
    let t = template();
    let secret_id = "AdmissionKeySecret";
    let secret = &t["Resources"][secret_id];
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");

    // What Secrets Manager may generate: its four character classes, minus the exclusions.
    let generator = &secret["Properties"]["GenerateSecretString"];
    assert!(generator["SecretStringTemplate"].is_null(), "the secret is the bare key, not JSON");
    let mut alphabet: Vec<char> = Vec::new();
    if generator["ExcludeLowercase"] != true {
        alphabet.extend('a'..='z');
    }
    if generator["ExcludeUppercase"] != true {
        alphabet.extend('A'..='Z');
    }
    if generator["ExcludeNumbers"] != true {
        alphabet.extend('0'..='9');
    }
    if generator["ExcludePunctuation"] != true {
        alphabet.extend("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".chars());
    }
    if generator["IncludeSpace"] == true {
        alphabet.push(' ');
    }
    let excluded = generator["ExcludeCharacters"].as_str().unwrap_or_default();
    alphabet.retain(|c| !excluded.contains(*c));
    assert_eq!(alphabet.iter().collect::<String>(), "abcdef0123456789", "the generated key must be hex");
    let length = generator["PasswordLength"].as_u64().expect("PasswordLength") as usize;
    assert!(length >= 64 && length.is_multiple_of(2), "{length} hex characters: at least 32 whole bytes");
    // The code takes such a key (and refuses a shorter one), the way the function reads it.
    let sample: String = (0..length).map(|i| alphabet[(i * 7) % alphabet.len()]).collect();
    let config = |key: &str| {
        flash_sale::config::Config::from_lookup(|k| match k {
            "TABLE_NAME" => Some("t".into()),
            "ADMISSION_KEY" => Some(key.to_owned()),
            _ => None,
        })
    };
    assert!(config(&sample).expect("the generated key configures the function").admission_keys.is_some());
    assert!(config(&sample[..length / 2]).is_err(), "a key of half the length must be refused");

    // Never in a function's configuration (anyone allowed lambda:GetFunctionConfiguration could
    // read it there): no dynamic reference resolves a secret into a function; the functions that
    // sign (queue) or check (purchase) tokens get the secret's ARN and may read that secret
    // alone, with GetSecretValue; no other function gets either.
    for (binary, (id, res)) in functions(&t) {
        assert!(!res.to_string().contains("resolve:secretsmanager"), "{id} ({binary}): a dynamic reference");
        let needs = binary == "queue" || binary == "purchase";
        let arn = json!({"Ref": secret_id});
        assert_eq!(env_var(res, "ADMISSION_KEY_SECRET_ARN"), needs.then_some(&arn), "{id}: ADMISSION_KEY_SECRET_ARN");
        for var in ["ADMISSION_KEY", "ADMISSION_KEY_PREVIOUS"] {
            assert!(env_var(res, var).is_none(), "{id}: {var} in the configuration");
        }
        let reads: Vec<&Value> = res["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["Statement"].as_array().into_iter().flatten())
            .filter(|st| st.to_string().contains("secretsmanager"))
            .collect();
        if needs {
            assert_eq!(reads.len(), 1, "{id}: one statement reads the secret");
            assert_eq!(reads[0]["Action"], json!(["secretsmanager:GetSecretValue"]), "{id}");
            assert_eq!(reads[0]["Resource"], json!([arn]), "{id}: that secret alone");
        } else {
            assert!(reads.is_empty(), "{id}: secretsmanager access");
        }
    }
    assert!(t["Globals"]["Function"]["Environment"]["Variables"].get("ADMISSION_KEY").is_none());
    // A deployed function reads the key the way this configuration names it.
    let deployed = flash_sale::config::Config::from_lookup(|k| match k {
        "TABLE_NAME" => Some("t".into()),
        "ADMISSION_KEY_SECRET_ARN" => Some("arn:aws:secretsmanager:eu-west-1:1:secret:k".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(deployed.admission_key_secret.as_deref(), Some("arn:aws:secretsmanager:eu-west-1:1:secret:k"));
    assert!(deployed.admission_keys.is_none());
    // In a rotation, purchase containers take the new key before queue containers sign with it.
    let fns = functions(&t);
    let (purchase_id, _) = &fns["purchase"];
    let (_, queue) = &fns["queue"];
    assert_eq!(queue["DependsOn"], json!(purchase_id), "the queue function is updated after the purchase function");
}

/// Whether a Lambda event filter pattern (the subset the template uses: nested objects ending in
/// lists of exact values) matches a record.
fn filter_matches(pattern: &Value, record: &Value) -> bool {
    obj(pattern, "filter pattern").iter().all(|(key, want)| match want {
        Value::Array(values) => record.get(key).is_some_and(|v| values.contains(v)),
        Value::Object(_) => record.get(key).is_some_and(|v| filter_matches(want, v)),
        other => panic!("filter pattern: unexpected {other}"),
    })
}

/// A stream record of an item (NEW_AND_OLD_IMAGES) as DynamoDB Streams hands it to Lambda.
fn stream_record(pk: &str, sk: &str, new: Option<Value>) -> Value {
    let mut dynamodb = json!({"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}, "SequenceNumber": "1", "StreamViewType": "NEW_AND_OLD_IMAGES"});
    if let Some(image) = new {
        dynamodb["NewImage"] = image;
    }
    json!({"eventName": "INSERT", "eventSource": "aws:dynamodb", "dynamodb": dynamodb})
}

/// The order events: the table's stream into the function, whose failures go to an encrypted
/// dead-letter queue with an alarm on it; events onto the stack's bus, archived.
#[test]
fn order_events_come_from_the_stream_and_what_they_cannot_publish_is_kept_and_alarmed() {
    let t = template();
    let fns = functions(&t);
    let (id, res) = &fns["order-events"];
    let events = obj(&res["Properties"]["Events"], "Events");
    assert_eq!(events.len(), 1, "{id}: one event source");
    let (name, source) = events.iter().next().unwrap();
    assert_eq!(source["Type"], "DynamoDB", "{id}.{name}");
    let p = &source["Properties"];
    assert_eq!(p["Stream"], json!({"Fn::GetAtt": ["Table", "StreamArn"]}), "{id}.{name}: the table's stream");
    assert!(["TRIM_HORIZON", "LATEST"].contains(&p["StartingPosition"].as_str().unwrap_or_default()));
    assert_eq!(p["FunctionResponseTypes"], json!(["ReportBatchItemFailures"]), "the function answers partial batches");
    assert_eq!(p["BisectBatchOnFunctionError"], true);
    let batch = p["BatchSize"].as_u64().expect("BatchSize");
    assert!((1..=1000).contains(&batch), "BatchSize {batch}");
    let retries = p["MaximumRetryAttempts"].as_i64().expect("MaximumRetryAttempts");
    assert!(
        (0..=20).contains(&retries),
        "a record that keeps failing goes to the dead-letter queue after a few retries, not after hours: {retries}"
    );
    assert!(p["DestinationConfig"]["OnFailure"]["Destination"].is_object(), "the dead-letter queue");
    let age = p["MaximumRecordAgeInSeconds"].as_i64().expect("MaximumRecordAgeInSeconds");
    assert!(
        (60..24 * 3600).contains(&age),
        "records go to the dead-letter queue while the stream (24 h) still has them"
    );
    assert!(p["ParallelizationFactor"].is_null() || p["ParallelizationFactor"] == 1, "one order's changes in order");
    // Long enough for a batch: up to BatchSize / 10 PutEvents calls.
    let timeout = res["Properties"]["Timeout"].as_u64().expect("Timeout");
    assert!(timeout >= 30, "{id}: Timeout {timeout}");

    // What gets through the filter: purchase records, whatever their change; nothing whose record
    // would announce an event is filtered out.
    let filters = p["FilterCriteria"]["Filters"].as_array().expect("FilterCriteria.Filters");
    let patterns: Vec<Value> =
        filters.iter().map(|f| serde_json::from_str(f["Pattern"].as_str().expect("Pattern")).expect("JSON")).collect();
    let passes = |record: &Value| patterns.iter().any(|pattern| filter_matches(pattern, record));
    let order = |status: OrderStatus| {
        json!({"pk": {"S": purchase_pk("demo", "alice")}, "sk": {"S": PURCHASE_SK}, "saleId": {"S": "demo"},
               "userId": {"S": "alice"}, "orderId": {"S": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "status": {"S": status.as_str()},
               "version": {"N": "1"}, "purchasedAt": {"N": "1000"}, "shard": {"N": "0"}})
    };
    for status in OrderStatus::ALL {
        let record = stream_record(&purchase_pk("demo", "alice"), PURCHASE_SK, Some(order(status)));
        assert!(order_events::event_of(&record).is_some(), "a {status:?} order is an event");
        assert!(passes(&record), "the filter drops a {status:?} purchase record");
    }
    // A reset's deletion of a live order (only its old image): its cancellation.
    let mut removed = stream_record(&purchase_pk("demo", "alice"), PURCHASE_SK, None);
    removed["eventName"] = json!("REMOVE");
    removed["dynamodb"]["OldImage"] = order(OrderStatus::Confirmed);
    assert_eq!(order_events::event_of(&removed).map(|e| e.detail_type()), Some("OrderCancelled"));
    assert!(passes(&removed), "the filter drops a reset's deletion of an order");
    let shard = stream_record(&shard_pk("demo", 0), SHARD_SK, Some(json!({"remaining": {"N": "3"}})));
    assert!(!passes(&shard), "stock shards (every purchase writes one) must not invoke the function");
    for (pk, sk) in [("SALE#demo", "META"), ("SALE#demo", "ROOM"), ("SALE#demo#QUEUE#alice", "QUEUE")] {
        assert!(!passes(&stream_record(pk, sk, None)), "{pk}/{sk} must not invoke the function");
    }

    // Failures: an SQS queue, encrypted, named by ARN with Type SQS so SAM grants SendMessage.
    let on_failure = &p["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"], "SQS");
    let queue_id = on_failure["Destination"]["Fn::GetAtt"][0].as_str().expect("Destination: Fn::GetAtt [Queue, Arn]");
    assert_eq!(on_failure["Destination"]["Fn::GetAtt"][1], "Arn");
    let queue = &t["Resources"][queue_id];
    assert_eq!(queue["Type"], "AWS::SQS::Queue", "{queue_id}");
    let q = &queue["Properties"];
    assert!(q["SqsManagedSseEnabled"] == true || q["KmsMasterKeyId"].is_string(), "{queue_id} must be encrypted");
    assert_eq!(q["MessageRetentionPeriod"], 1_209_600, "{queue_id}: kept as long as SQS allows");
    let alarms: Vec<&Value> = obj(&t["Resources"], "Resources")
        .values()
        .filter(|r| {
            r["Type"] == "AWS::CloudWatch::Alarm"
                && r["Properties"]["Namespace"] == "AWS/SQS"
                && r["Properties"]["Dimensions"]
                    == json!([{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}])
        })
        .collect();
    assert_eq!(alarms.len(), 1, "one alarm on {queue_id}");
    let a = &alarms[0]["Properties"];
    assert_eq!(a["MetricName"], "ApproximateNumberOfMessagesVisible");
    assert_eq!((a["Threshold"].as_f64(), a["ComparisonOperator"].as_str()), (Some(0.0), Some("GreaterThanThreshold")));
    for output in ["OrderEventsDeadLetterQueueUrl", "OrderEventsDeadLetterQueueArn"] {
        assert!(t["Outputs"][output]["Value"].to_string().contains(queue_id), "output {output}");
    }

    // The bus, and its archive of every order event (the audit trail).
    let bus = &t["Resources"]["OrderEventBus"];
    assert_eq!(bus["Type"], "AWS::Events::EventBus");
    let archives: Vec<&Value> =
        obj(&t["Resources"], "Resources").values().filter(|r| r["Type"] == "AWS::Events::Archive").collect();
    assert_eq!(archives.len(), 1, "one archive");
    let archive = &archives[0]["Properties"];
    assert_eq!(archive["SourceArn"], json!({"Fn::GetAtt": ["OrderEventBus", "Arn"]}));
    assert_eq!(archive["EventPattern"], json!({"source": [order_events::SOURCE]}), "the archive keeps order events");
    assert_eq!(t["Outputs"]["OrderEventBusName"]["Value"], json!({"Fn::GetAtt": ["OrderEventBus", "Name"]}));
    assert_eq!(t["Outputs"]["OrderEventBusArn"]["Value"], json!({"Fn::GetAtt": ["OrderEventBus", "Arn"]}));
}

/// The sweeper: every minute, with time for a whole sweep, and never retried on top of the next run.
#[test]
fn the_sweeper_runs_every_minute_with_time_for_a_sweep_and_no_retries() {
    let t = template();
    let fns = functions(&t);
    let (id, res) = &fns["sweeper"];
    let events = obj(&res["Properties"]["Events"], "Events");
    assert_eq!(events.len(), 1, "{id}: one schedule");
    let schedule = events.values().next().unwrap();
    let p = &schedule["Properties"];
    match schedule["Type"].as_str() {
        Some("Schedule") => assert_eq!(p["Schedule"], "rate(1 minute)", "{id}"),
        Some("ScheduleV2") => assert_eq!(p["ScheduleExpression"], "rate(1 minute)", "{id}"),
        other => panic!("{id}: a schedule, found {other:?}"),
    }
    assert!(p["Enabled"].is_null() || p["Enabled"] == true, "{id}: the schedule is on");
    assert_eq!(p["RetryPolicy"]["MaximumRetryAttempts"], 0, "{id}: the next run is the retry");
    assert_eq!(res["Properties"]["EventInvokeConfig"]["MaximumRetryAttempts"], 0, "{id}: no asynchronous retries");
    let timeout = res["Properties"]["Timeout"].as_u64().expect("Timeout");
    assert!((60..=900).contains(&timeout), "{id}: Timeout {timeout}");
}

#[test]
fn the_sweeper_asks_the_drand_relays_the_operator_lists_by_default_those_the_code_knows() {
    let t = template();
    let (id, res) = &functions(&t)["sweeper"];
    assert_eq!(env_var(res, "DRAND_RELAYS"), Some(&serde_json::json!({"Ref": "DrandRelays"})), "{id}");
    let param = &t["Parameters"]["DrandRelays"];
    assert_eq!(param["Default"], sweeper::DEFAULT_RELAYS, "the template's default is the code's");
    let pattern = regex_lite::Regex::new(param["AllowedPattern"].as_str().unwrap()).unwrap();
    assert!(pattern.is_match(sweeper::DEFAULT_RELAYS));
    for bad in ["http://api.drand.sh", "https://a.example,", "", "https://a b"] {
        assert!(!pattern.is_match(bad), "{bad:?} is refused at deploy");
    }
    // Only the sweeper fetches beacons.
    for (name, (_, other)) in functions(&t) {
        assert!(name == "sweeper" || env_var(other, "DRAND_RELAYS").is_none(), "{name}");
    }
}

#[test]
fn a_purchase_commits_within_the_rooms_grace_after_its_token_was_checked() {
    // The waiting room counts an admission against the stock for its claim window plus
    // PURCHASE_GRACE_MS: a purchase whose token was checked in time must end within that grace.
    let t = template();
    let functions = functions(&t);
    let (id, res) = &functions["purchase"];
    let timeout = res["Properties"]["Timeout"]
        .as_i64()
        .or_else(|| t["Globals"]["Function"]["Timeout"].as_i64())
        .expect("the purchase function has a timeout");
    assert!(timeout * 1_000 <= flash_sale::room::PURCHASE_GRACE_MS, "{id}: Timeout {timeout} s");
}
