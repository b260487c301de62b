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
