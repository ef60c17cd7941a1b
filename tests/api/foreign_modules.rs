//! Modules not written with the Rust SDK: one in AssemblyScript, built from source with
//! the compiler from npm, and one that implements only the original EERP's contract
//! (memory, migrate, migrate_len, _start) and loads as a schema-only module. Both are
//! uploaded at runtime through the admin API.

use std::process::Command;

use eerp_e2e::{SEED_WASM, spawn_app, status_and_json};
use reqwest::Method;
use serde_json::{Value, json};

/// Builds `tests/guests/assemblyscript` with its pinned compiler and returns the module.
fn build_assemblyscript_module() -> Vec<u8> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/guests/assemblyscript/build.sh"
    );
    let output = Command::new("bash")
        .arg(script)
        .output()
        .expect("bash runs the AssemblyScript build (it needs node >= 20 and npm)");
    assert!(
        output.status.success(),
        "the AssemblyScript module builds: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn an_assemblyscript_module_is_uploaded_enabled_and_served() {
    let wasm = build_assemblyscript_module();
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    let (status, stored) = app.upload_module(wasm).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["name"], "asnotes");
    let (status, body) = app
        .admin(Method::PUT, "/tenants/acme/modules/asnotes", None)
        .await;
    assert_eq!(status, 200, "{body}");

    let call = async |method: Method, path: &str, body: Option<Value>| {
        let response = app
            .send(
                method,
                &format!("/api/v1/asnotes{path}"),
                Some(&token),
                body.as_ref(),
            )
            .await;
        let (status, _, body) = status_and_json(response).await;
        (status, body)
    };
    let (status, hello) = call(Method::GET, "/hello", None).await;
    assert_eq!(status, 200, "{hello}");
    assert_eq!(hello["hello"], "from AssemblyScript");
    let (status, note) = call(Method::POST, "/notes", Some(json!({"text": "buy milk"}))).await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["text"], "buy milk", "the data API stored it: {note}");
    let (status, count) = call(Method::GET, "/notes/count", None).await;
    assert_eq!(status, 200, "{count}");
    assert_eq!(count["count"], 1);
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__asnotes.notes WHERE text = 'buy milk'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_module_of_the_original_contract_loads_as_a_schema_only_module() {
    let wasm = std::fs::read(SEED_WASM).unwrap();
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;

    let (status, problem) = app.upload_module(wasm.clone()).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("schema-only"),
        "the refusal says how to upload it: {problem}"
    );
    let (status, problem) = app
        .upload_module_as("?name=vente_particulier", wasm.clone(), "application/wasm")
        .await;
    assert_eq!(status, 400, "{problem}");

    let (status, stored) = app
        .upload_module_as(
            "?name=vente_particulier&version=1.0.0",
            wasm,
            "application/wasm",
        )
        .await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["routes"], 0);
    assert_eq!(stored["capabilities"], json!([]));
    assert_eq!(
        stored["migration_version"], 2,
        "`_start` ran before `migrate`"
    );
    let (status, body) = app
        .admin(Method::PUT, "/tenants/acme/modules/vente_particulier", None)
        .await;
    assert_eq!(status, 200, "{body}");

    // Its migrations, in the original format, made its table in the tenant's schema.
    let columns = app
        .scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = \
             't_acme__vente_particulier' AND table_name = 'vente' \
             AND column_name IN ('type_client', 'montant')",
        )
        .await;
    assert_eq!(columns, 2);
    let hash_index = app
        .scalar(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 't_acme__vente_particulier' \
             AND indexdef LIKE '%USING hash (type_client)%'",
        )
        .await;
    assert_eq!(hash_index, 1);
    // It has no routes.
    let response = app
        .send(
            Method::GET,
            "/api/v1/vente_particulier/vente",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(response.status(), 404);
}
