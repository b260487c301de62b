//! The table and the functions' runtime settings.

use flash_sale::store::Store;
use integration_tests::template::{functions, template};
use serde_json::{Value, json};

use crate::common::toml_file;
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

    let current = json!({"Fn::If": [
        "PinAdmissionKeyVersion",
        {"Fn::Sub": format!("{{{{resolve:secretsmanager:${{{secret_id}}}:SecretString:::${{AdmissionKeyVersion}}}}}}")},
        {"Fn::Sub": format!("{{{{resolve:secretsmanager:${{{secret_id}}}:SecretString}}}}")},
    ]});
    let previous = json!({"Fn::If": [
        "RotatingAdmissionKey",
        {"Fn::Sub": format!("{{{{resolve:secretsmanager:${{{secret_id}}}:SecretString:::${{AdmissionKeyPreviousVersion}}}}}}")},
        {"Ref": "AWS::NoValue"},
    ]});
    for (binary, (id, res)) in functions(&t) {
        // The functions that sign (queue) or check (purchase) tokens get the key; no other does.
        let needs = binary == "queue" || binary == "purchase";
        assert_eq!(env_var(res, "ADMISSION_KEY"), needs.then_some(&current), "{id}: ADMISSION_KEY");
        assert_eq!(env_var(res, "ADMISSION_KEY_PREVIOUS"), needs.then_some(&previous), "{id}: ADMISSION_KEY_PREVIOUS");
        // Delivered at deploy time: no function reads Secrets Manager itself.
        assert!(!res["Properties"]["Policies"].to_string().contains("secretsmanager"), "{id}: secretsmanager access");
    }
    assert!(t["Globals"]["Function"]["Environment"]["Variables"].get("ADMISSION_KEY").is_none());
    for p in ["AdmissionKeyVersion", "AdmissionKeyPreviousVersion"] {
        assert_eq!(t["Parameters"][p]["Default"], "", "{p}: no rotation unless asked for");
    }
    assert_eq!(
        t["Conditions"]["RotatingAdmissionKey"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AdmissionKeyPreviousVersion"}, ""]}]})
    );
    assert_eq!(
        t["Conditions"]["PinAdmissionKeyVersion"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AdmissionKeyVersion"}, ""]}]})
    );
    assert!(t["Rules"]["AdmissionKeyRotationNamesBothVersions"].is_object(), "a rotation names both versions");
    // In a rotation, purchase containers take the new key before queue containers sign with it.
    let fns = functions(&t);
    let (purchase_id, _) = &fns["purchase"];
    let (_, queue) = &fns["queue"];
    assert_eq!(queue["DependsOn"], json!(purchase_id), "the queue function is updated after the purchase function");
}
