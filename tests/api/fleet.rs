//! Fleet migration: every tenant behind on a module is migrated by N workers; a failure
//! is recorded and the run goes on; running again resumes with what is left.

use std::time::{Duration, Instant};

use eerp_e2e::{TestApp, spawn_app};
use eerp_platform::upgrade::{MigrateOptions, migrate};
use reqwest::Method;
use serde_json::{Value, json};

/// Puts `tenant` back to "crm enabled, nothing migrated", as if the module were new.
async fn rewind(app: &TestApp, tenant: &str) {
    let conn = app.state.pool.get().await.unwrap();
    conn.batch_execute(&format!(
        "DROP SCHEMA t_{tenant}__crm CASCADE;
         DELETE FROM eerp.migration_history h USING eerp.tenants t
             WHERE h.tenant_id = t.id AND t.slug = '{tenant}';
         UPDATE eerp.tenant_modules m SET version = 0 FROM eerp.tenants t
             WHERE m.tenant_id = t.id AND t.slug = '{tenant}';"
    ))
    .await
    .unwrap();
}

/// Creates a contact as `tenant`'s admin; the answer's status.
async fn create_contact(app: &TestApp, tenant: &str) -> u16 {
    let token = app.token(
        &eerp_tenancy::id::TenantSlug::parse(tenant).unwrap(),
        &["admin"],
    );
    let body = json!({"name": "Ada"});
    let created = app
        .send(
            Method::POST,
            "/api/v1/crm/contacts",
            Some(&token),
            Some(&body),
        )
        .await;
    created.status().as_u16()
}

async fn run_to_end(app: &TestApp, workers: usize) -> Value {
    let (status, run) = app
        .admin(
            Method::POST,
            "/modules/crm/migrate",
            Some(&json!({"workers": workers})),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (_, run) = app
            .admin(Method::GET, &format!("/migration-runs/{id}"), None)
            .await;
        if run["status"] != "running" {
            return run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "run {id} never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn migrate_all_records_failures_without_aborting_and_resumes() {
    let app = spawn_app().await;
    let tenants: Vec<String> = (1..=12).map(|i| format!("t{i:02}")).collect();
    for tenant in &tenants {
        app.create_tenant(tenant).await;
        rewind(&app, tenant).await;
    }
    // t05 has a foreign `contacts` table in the way: the module's indexes on it fail.
    let conn = app.state.pool.get().await.unwrap();
    conn.batch_execute("CREATE SCHEMA t_t05__crm; CREATE TABLE t_t05__crm.contacts (id uuid)")
        .await
        .unwrap();
    drop(conn);

    let run = run_to_end(&app, 4).await;
    assert_eq!(run["status"], "finished");
    assert_eq!(
        (
            run["total"].as_i64(),
            run["done"].as_i64(),
            run["failed"].as_i64()
        ),
        (Some(12), Some(11), Some(1))
    );
    assert_eq!(run["failures"][0]["tenant"], "t05");
    assert!(
        run["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("deleted_at"),
        "{run}"
    );
    let migrated = app
        .scalar(&format!(
            "SELECT count(*) FROM eerp.tenant_modules WHERE module = 'crm' AND version = {}",
            eerp_e2e::crm_version()
        ))
        .await;
    assert_eq!(migrated, 11);
    assert_eq!(
        create_contact(&app, "t01").await,
        201,
        "a migrated tenant works"
    );

    // The cause is fixed; the next run picks up t05 alone.
    let conn = app.state.pool.get().await.unwrap();
    conn.batch_execute("DROP SCHEMA t_t05__crm CASCADE")
        .await
        .unwrap();
    drop(conn);
    let resumed = run_to_end(&app, 4).await;
    assert_eq!(
        (resumed["total"].as_i64(), resumed["done"].as_i64()),
        (Some(1), Some(1)),
        "{resumed}"
    );
    let nothing_left = run_to_end(&app, 4).await;
    assert_eq!(nothing_left["total"], 0);
    assert_eq!(nothing_left["status"], "finished");
}

/// `eerp migrate`, the Helm chart's pre-install and pre-upgrade Job: tenants behind on a
/// built-in module are moved to the release's version while a replica keeps serving, and
/// a second run finds nothing left to do.
#[tokio::test]
async fn the_release_migrate_step_moves_tenants_behind_to_the_built_in_versions() {
    let app = spawn_app().await;
    for tenant in ["r1", "r2"] {
        app.create_tenant(tenant).await;
        rewind(&app, tenant).await;
    }
    let options = MigrateOptions {
        database_url: app.settings.database_url.clone(),
        extra_modules: Vec::new(),
        workers: 2,
    };

    let outcomes = migrate(&options).await.unwrap();
    let crm = outcomes
        .iter()
        .find(|o| o.module == "crm")
        .expect("crm is built in");
    assert_eq!(
        (crm.run["done"].as_i64(), crm.failed()),
        (Some(2), 0),
        "{}",
        crm.run
    );
    assert_eq!(
        create_contact(&app, "r1").await,
        201,
        "the running replica serves it again"
    );

    let again = migrate(&options).await.unwrap();
    assert!(
        again.iter().all(|o| o.run["total"] == 0),
        "{:?}",
        again.iter().map(|o| &o.run).collect::<Vec<_>>()
    );
}
