//! The module store: upload at runtime, a version per tenant, upgrade and rollback,
//! retirement, refused uploads, requests in flight, and a second replica.

use std::time::{Duration, Instant};

use eerp_e2e::probe::Probe;
use eerp_e2e::{TestApp, TestOptions, spawn_app, spawn_app_with, status_and_json, wait_until};
use reqwest::Method;
use serde_json::{Value, json};

async fn upload(app: &TestApp, probe: &Probe) -> (u16, Value) {
    app.upload_module(probe.wasm()).await
}

/// The version the tenant's `GET /version` answers with, or the status when it fails.
async fn served(app: &TestApp, token: &str) -> Result<String, u16> {
    let response = app
        .send(Method::GET, "/api/v1/probe/version", Some(token), None)
        .await;
    let (status, _, body) = status_and_json(response).await;
    match status {
        200 => Ok(body["version"].as_str().unwrap().to_string()),
        other => Err(other),
    }
}

async fn stored_versions(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) FROM eerp.module_versions WHERE module = 'probe'")
        .await
}

async fn schema_has_table(app: &TestApp, schema: &str, table: &str) -> bool {
    app.scalar(&format!(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_schema = '{schema}' AND table_name = '{table}'"
    ))
    .await
        == 1
}

fn v1() -> Probe {
    Probe::new("probe", "1.0.0")
}

fn v2() -> Probe {
    Probe::new("probe", "1.1.0").migration(Probe::notes_step(2, "body"))
}

#[tokio::test]
async fn uploaded_versions_are_served_per_tenant_with_upgrade_rollback_and_retirement() {
    let app = spawn_app().await;
    let a = app.admin_of("alpha").await;
    let b = app.admin_of("beta").await;

    let (status, stored) = upload(&app, &v1()).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["version"], "1.0.0");
    assert_eq!(stored["tenants"], 0);
    let (status, again) = upload(&app, &v1()).await;
    assert_eq!(status, 200, "the same bytes again change nothing: {again}");
    assert_eq!(again["sha256"], stored["sha256"]);
    assert_eq!(stored_versions(&app).await, 1);

    // Enabled for nobody until an operator says so.
    assert_eq!(served(&app, &a).await, Err(404));
    for tenant in ["alpha", "beta"] {
        let (status, body) = app
            .admin(
                Method::PUT,
                &format!("/tenants/{tenant}/modules/probe"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(served(&app, &a).await.as_deref(), Ok("1.0.0"));
    assert_eq!(served(&app, &b).await.as_deref(), Ok("1.0.0"));

    // v2 is stored; tenants stay on v1 until upgraded, then only alpha moves.
    assert_eq!(upload(&app, &v2()).await.0, 201);
    assert_eq!(served(&app, &a).await.as_deref(), Ok("1.0.0"));
    let (status, tenant) = app.serve_version("alpha", "probe", "1.1.0").await;
    assert_eq!(status, 200, "{tenant}");
    for _ in 0..3 {
        assert_eq!(served(&app, &a).await.as_deref(), Ok("1.1.0"));
        assert_eq!(served(&app, &b).await.as_deref(), Ok("1.0.0"));
    }
    assert!(schema_has_table(&app, "t_alpha__probe", "notes").await);
    assert!(!schema_has_table(&app, "t_beta__probe", "notes").await);

    // Back to v1: its migrations are a prefix of alpha's, so it is allowed; the newer
    // table stays.
    let (status, body) = app.serve_version("alpha", "probe", "1.0.0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served(&app, &a).await.as_deref(), Ok("1.0.0"));
    assert!(schema_has_table(&app, "t_alpha__probe", "notes").await);
    assert_eq!(app.serve_version("alpha", "probe", "1.1.0").await.0, 200);

    // A version whose v2 differs from the one alpha applied can serve neither way.
    let other_v2 = Probe::new("probe", "1.2.0").migration(Probe::notes_step(2, "text"));
    assert_eq!(upload(&app, &other_v2).await.0, 201);
    let (status, problem) = app.serve_version("alpha", "probe", "1.2.0").await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("v2"),
        "{problem}"
    );
    assert_eq!(served(&app, &a).await.as_deref(), Ok("1.1.0"));
    // A version that lacks alpha's v2 but has a v3 alpha never applied is a branch, not
    // an older version: refused, and alpha stays where it was.
    let branch = Probe::new("probe", "1.3.0").migration(Probe::notes_step(3, "title"));
    assert_eq!(upload(&app, &branch).await.0, 201);
    let (status, problem) = app.serve_version("alpha", "probe", "1.3.0").await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("never applied"),
        "{problem}"
    );
    assert_eq!(served(&app, &a).await.as_deref(), Ok("1.1.0"));
    let (status, problem) = app.serve_version("beta", "probe", "9.9.9").await;
    assert_eq!(status, 404, "a version never stored: {problem}");

    // A version in use cannot be retired; once nobody uses it, it can, and is gone.
    let (status, problem) = app
        .admin(Method::DELETE, "/modules/probe/versions/1.0.0", None)
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("beta"),
        "{problem}"
    );
    assert_eq!(app.serve_version("beta", "probe", "1.1.0").await.0, 200);
    // Each stored version's compiled code is kept beside it, until it is retired.
    let artifacts = "SELECT count(*) FROM eerp.module_artifacts a JOIN eerp.module_versions v \
                     ON v.sha256 = a.sha256 WHERE v.module = 'probe'";
    let kept = app.scalar(artifacts).await;
    assert_eq!(
        kept,
        stored_versions(&app).await,
        "one artefact per version"
    );
    let (status, retired) = app
        .admin(Method::DELETE, "/modules/probe/versions/1.0.0", None)
        .await;
    assert_eq!(status, 200, "{retired}");
    assert!(!retired["retired_at"].is_null());
    assert!(app.state.registry.get("probe", "1.0.0").is_none());
    assert_eq!(
        app.scalar(artifacts).await,
        kept - 1,
        "the retired version's code is gone"
    );
    assert_eq!(app.serve_version("beta", "probe", "1.0.0").await.0, 404);

    // A new tenant gets its plan's modules, not everything stored.
    let (status, gamma) = app
        .admin(Method::POST, "/tenants", Some(&json!({"slug": "gamma"})))
        .await;
    assert_eq!(status, 201, "{gamma}");
    let names: Vec<&str> = gamma["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["crm"]);

    let (_, audit) = app.admin(Method::GET, "/audit?limit=100", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "module.upload",
        "module.upgrade",
        "module.rollback",
        "module.retire",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"eerp_module_invocations_total{module="probe",outcome="ok"}"#),
        "the new module has metric series"
    );
}

#[tokio::test]
async fn refused_uploads_name_the_problem_and_store_nothing() {
    let app = spawn_app().await;
    assert_eq!(upload(&app, &v1()).await.0, 201);
    let stored_before = stored_versions(&app).await;

    let wrong_abi = Probe {
        abi_version: 2,
        ..Probe::new("probe", "2.0.0")
    };
    let no_data_capability = Probe {
        capabilities: vec!["log"],
        ..Probe::new("probe", "2.0.1")
    };
    // PostgreSQL has no default GIN operator class for text: only the dry run sees it.
    let failing_migration = Probe::new("probe", "2.0.2").migration(json!({
        "entity": "items", "version": 2,
        "operations": [{"type": "create_index", "table": "items", "column": "label", "index_type": "gin"}]
    }));
    let overlapping = Probe::new("probe", "2.0.3").route(
        "GET",
        "/version",
        eerp_e2e::probe::Action::answer(json!({"status": 200})),
    );
    let not_semver = Probe::new("probe", "two");
    let cases: [(Vec<u8>, u16, &str); 6] = [
        (b"not wasm at all".to_vec(), 422, "does not compile"),
        (wrong_abi.wasm(), 422, "abi_version is 2"),
        (no_data_capability.wasm(), 422, "the `data` capability"),
        (failing_migration.wasm(), 422, "migration v2"),
        (overlapping.wasm(), 422, "match the same paths"),
        (not_semver.wasm(), 422, "semantic version"),
    ];
    for (wasm, expected, named) in cases {
        let (status, problem) = app.upload_module(wasm).await;
        assert_eq!(status, expected, "{problem}");
        assert_eq!(problem["type"], "https://eerp.dev/problems/module-invalid");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(named), "`{named}` in {detail}");
    }

    // Same version, other bytes.
    let changed = v1().route(
        "GET",
        "/extra",
        eerp_e2e::probe::Action::answer(json!({"status": 200})),
    );
    let (status, problem) = upload(&app, &changed).await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("immutable"));

    let (status, _) = app
        .upload_module_as("", v1().wasm(), "application/json")
        .await;
    assert_eq!(status, 415);
    let (status, problem) = app.upload_module(vec![0; (32 << 20) + 1]).await;
    assert_eq!(status, 413, "{problem}");
    let tenant = app.admin_of("acme").await;
    let response = app
        .client
        .post(format!("{}/admin/v1/modules", app.address))
        .bearer_auth(&tenant)
        .header("content-type", "application/wasm")
        .body(Probe::new("probe", "3.0.0").wasm())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "tenant tokens cannot upload");

    assert_eq!(stored_versions(&app).await, stored_before);
    assert_eq!(
        app.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'eerp_dry_run_%'")
            .await,
        0,
        "the dry runs leave no schema behind"
    );
    assert!(app.state.registry.get("probe", "2.0.2").is_none());
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_version_it_started_with() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    assert_eq!(upload(&app, &v1()).await.0, 201);
    assert_eq!(app.serve_version("acme", "probe", "1.0.0").await.0, 200);

    // Hold a lock on the table the slow route reads, so its request waits in the
    // database while v2 is installed and the tenant upgraded.
    let mut lock_conn = app.state.pool.get().await.unwrap();
    let lock = lock_conn.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE t_acme__probe.items IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let slow = {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/api/v1/probe/slow", app.address),
            token.clone(),
        );
        tokio::spawn(async move {
            let response = client.get(url).bearer_auth(token).send().await.unwrap();
            status_and_json(response).await
        })
    };
    let started = Instant::now();
    while app
        .scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%t_acme__probe%'")
        .await
        == 0
    {
        assert!(started.elapsed() < Duration::from_secs(10), "the slow request never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upload(&app, &v2()).await.0, 201);
    assert_eq!(app.serve_version("acme", "probe", "1.1.0").await.0, 200);
    assert_eq!(served(&app, &token).await.as_deref(), Ok("1.1.0"));
    assert!(!slow.is_finished(), "the slow request is still waiting");
    lock.rollback().await.unwrap();
    let (status, _, body) = slow.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "1.0.0");
}

#[tokio::test]
async fn a_second_replica_loads_and_serves_a_new_version_on_notification() {
    let first = spawn_app().await;
    let second = spawn_app_with(TestOptions {
        database: Some(first.database.clone()),
        ..TestOptions::default()
    })
    .await;
    let token = first.admin_of("acme").await;

    for (probe, version) in [(v1(), "1.0.0"), (v2(), "1.1.0")] {
        assert_eq!(upload(&first, &probe).await.0, 201);
        // The notification, not a request, makes the second replica load it.
        wait_until(&format!("replica 2 loads {version}"), || async {
            second.state.registry.get("probe", version).is_some()
        })
        .await;
        assert_eq!(first.serve_version("acme", "probe", version).await.0, 200);
        wait_until(&format!("replica 2 serves {version}"), || async {
            served(&second, &token).await.as_deref() == Ok(version)
        })
        .await;
    }
}

#[tokio::test]
async fn the_fleet_runner_upgrades_every_tenant_of_a_module() {
    let app = spawn_app().await;
    assert_eq!(upload(&app, &v1()).await.0, 201);
    let mut tokens = Vec::new();
    for tenant in ["t1", "t2", "t3"] {
        tokens.push(app.admin_of(tenant).await);
        assert_eq!(app.serve_version(tenant, "probe", "1.0.0").await.0, 200);
    }
    assert_eq!(upload(&app, &v2()).await.0, 201);
    let (status, run) = app
        .admin(Method::POST, "/modules/probe/migrate", Some(&json!({})))
        .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["module_version"], "1.1.0");
    assert_eq!(run["total"], 3);
    let id = run["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (_, run) = app
            .admin(Method::GET, &format!("/migration-runs/{id}"), None)
            .await;
        if run["status"] == "finished" {
            assert_eq!(run["done"], 3, "{run}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for token in &tokens {
        assert_eq!(served(&app, token).await.as_deref(), Ok("1.1.0"));
    }
}
