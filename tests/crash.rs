//! Provisioning survives a crash half-way: a replica is killed (SIGKILL) while creating a
//! tenant, after its first module's schema is migrated and before its second; the tenant
//! is not served in that state, and running the same creation again finishes it.

use std::time::{Duration, Instant};

use eerp_e2e::probe::Probe;
use eerp_e2e::{
    Replica, TestOptions, create_database, server_url, spawn_app_with, test_issuer, wait_until,
    with_database,
};
use eerp_tenancy::DevSigner;
use reqwest::Method;
use serde_json::json;
use tokio_postgres::NoTls;

async fn scalar(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect("query runs").get(0)
}

/// `metrics` count `compiled` and `catalog` module loads.
fn assert_loads(metrics: &str, compiled: u64, catalog: u64) {
    for expected in [
        format!("eerp_module_loads_total{{code=\"compiled\"}} {compiled}"),
        format!("eerp_module_loads_total{{code=\"catalog\"}} {catalog}"),
    ] {
        assert!(
            metrics.lines().any(|line| line == expected),
            "the replica process's metrics lack `{expected}`"
        );
    }
}

#[tokio::test]
async fn a_creation_killed_half_way_is_finished_by_running_it_again() {
    let server = server_url();
    let database = format!("eerp_test_{}", uuid::Uuid::new_v4().simple());
    create_database(&server, &database).await;
    let url = with_database(&server, &database);

    let mut replica = Replica::start(env!("CARGO_BIN_EXE_eerp-test-replica"), &url).await;
    let address = replica.address.clone();

    // Hold the migration lock of the second module (modules are provisioned in name
    // order: crm, then hostile), so creation stops right after crm.
    let (blocker, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    blocker
        .batch_execute(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('eerp.migrate:t_victim__hostile', 0))",
        )
        .await
        .expect("lock taken");

    let operator = DevSigner::new(&test_issuer())
        .expect("HS256 issuer")
        .operator_token("test-operator", 600)
        .expect("token");
    let create = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{address}/admin/v1/tenants"))
            .bearer_auth(&operator)
            .json(&json!({"slug": "victim", "modules": ["crm", "hostile"]}))
            .send(),
    );
    let waiting = Instant::now();
    while scalar(
        &blocker,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
    )
    .await
        == 0
    {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the replica never reached the second module"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replica.child.kill().await.expect("SIGKILL");
    assert!(
        create.await.expect("joined").is_err(),
        "the creation died with the replica"
    );
    blocker
        .batch_execute("ROLLBACK")
        .await
        .expect("lock released");

    // Half-way: recorded as provisioning, crm complete, hostile never started.
    let status: String = blocker
        .query_one("SELECT status FROM eerp.tenants WHERE slug = 'victim'", &[])
        .await
        .expect("the tenant row exists")
        .get(0);
    assert_eq!(status, "provisioning");
    let history = "SELECT count(*) FROM eerp.migration_history h JOIN eerp.tenants t ON t.id = h.tenant_id WHERE t.slug = 'victim' AND h.module =";
    assert_eq!(
        scalar(&blocker, &format!("{history} 'crm'")).await,
        i64::from(eerp_e2e::crm_version())
    );
    assert_eq!(
        scalar(
            &blocker,
            "SELECT count(*) FROM eerp.tenant_modules WHERE module = 'hostile'"
        )
        .await,
        0
    );

    // The first replica kept the code it compiled in the catalog: a replica process
    // started now deserialises all five modules (four built in, the hostile one).
    let second = Replica::start(env!("CARGO_BIN_EXE_eerp-test-replica"), &url).await;
    let metrics = reqwest::get(format!("{}/metrics", second.ops_address))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("a metrics body");
    assert_loads(&metrics, 0, 5);

    // Another replica does not serve the half-made tenant, and finishes it on request.
    let app = spawn_app_with(TestOptions {
        database: Some(database),
        hostile: true,
        ..TestOptions::default()
    })
    .await;
    // A module uploaded to it reaches the replica process compiled: it loads the code the
    // uploader kept, on the notification.
    let (status, stored) = app.upload_module(Probe::new("kept", "1.0.0").wasm()).await;
    assert_eq!(status, 201, "{stored}");
    let loads = format!("{}/metrics", second.ops_address);
    wait_until("the replica process loads the upload", || async {
        let metrics = reqwest::get(&loads).await.expect("metrics answer");
        let text = metrics.text().await.expect("a metrics body");
        text.contains("eerp_module_loads_total{code=\"catalog\"} 6")
            || text.contains("eerp_module_loads_total{code=\"compiled\"} 1")
    })
    .await;
    let metrics = reqwest::get(&loads).await.expect("metrics answer");
    assert_loads(&metrics.text().await.expect("a metrics body"), 0, 6);
    drop(second);
    let victim = eerp_tenancy::id::TenantSlug::parse("victim").expect("valid");
    let token = app.token(&victim, &["admin"]);
    let refused = app
        .send(Method::GET, "/api/v1/crm/contacts", Some(&token), None)
        .await;
    assert_eq!(refused.status(), 503);
    let (status, tenant) = app
        .admin(
            Method::POST,
            "/tenants",
            Some(&json!({"slug": "victim", "modules": ["crm", "hostile"]})),
        )
        .await;
    assert_eq!(status, 200, "{tenant}");
    assert_eq!(tenant["status"], "active");
    let modules: Vec<&str> = tenant["modules"]
        .as_array()
        .expect("modules listed")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(modules, ["crm", "hostile"]);
    for path in ["/api/v1/crm/contacts", "/api/v1/hostile/count"] {
        let served = app.send(Method::GET, path, Some(&token), None).await;
        assert_eq!(served.status(), 200, "{path}");
    }
    assert_eq!(
        app.scalar("SELECT count(*) FROM eerp.audit_log WHERE action = 'tenant.create' AND tenant = 'victim'")
            .await,
        1
    );
}
