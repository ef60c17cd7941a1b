//! Module migrations against real PostgreSQL: versioned, idempotent, forward-only.

use eerp_e2e::{TestApp, spawn_app};
use eerp_platform::migrations::{MigrationError, apply_module};
use eerp_platform::registry::BUILTIN_MODULES;
use eerp_platform::runtime::LoadedModule;
use eerp_tenancy::id::TenantSlug;
use reqwest::Method;
use serde_json::json;

async fn crm(app: &TestApp) -> LoadedModule {
    LoadedModule::load(&app.state.engine, BUILTIN_MODULES[0].1)
        .await
        .expect("the CRM module loads")
}

/// Tenant `acme` (catalog id and slug), created with no module if it does not exist.
async fn acme(app: &TestApp) -> (String, TenantSlug) {
    let body = json!({"slug": "acme", "modules": []});
    let (status, tenant) = app.admin(Method::POST, "/tenants", Some(&body)).await;
    assert!(status == 200 || status == 201, "{tenant}");
    let conn = app.state.pool.get().await.expect("connection");
    let id = conn
        .query_one("SELECT id::text FROM eerp.tenants WHERE slug = 'acme'", &[])
        .await
        .expect("acme exists")
        .get(0);
    (id, TenantSlug::parse("acme").expect("valid"))
}

async fn apply(
    app: &TestApp,
    tenant: &(String, TenantSlug),
    module: &LoadedModule,
) -> Result<Vec<u32>, MigrationError> {
    apply_module(&app.state.pool, &tenant.0, &tenant.1, module.schema()).await
}

#[tokio::test]
async fn applying_twice_applies_nothing_the_second_time() {
    let app = spawn_app().await;
    let tenant = acme(&app).await;
    let module = crm(&app).await;
    let first = apply(&app, &tenant, &module).await.expect("applies");
    assert_eq!(first, (1..=eerp_e2e::crm_version()).collect::<Vec<_>>());
    let second = apply(&app, &tenant, &module).await.expect("applies");
    assert!(second.is_empty());
    assert_eq!(
        app.scalar("SELECT count(*) FROM eerp.migration_history")
            .await,
        i64::from(eerp_e2e::crm_version())
    );
    // v2 came in the original EERP format: its column and index exist.
    assert_eq!(
        app.scalar("SELECT count(*) FROM information_schema.columns WHERE table_schema = 't_acme__crm' AND column_name = 'website'").await,
        1
    );
    assert_eq!(app.scalar("SELECT count(*) FROM pg_indexes WHERE schemaname = 't_acme__crm' AND indexname = 'ix_contacts__company'").await, 1);
}

#[tokio::test]
async fn an_edited_released_step_is_refused() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let tenant = acme(&app).await;
    let mut module = crm(&app).await;
    module.migrations[0].entity = "edited".into();
    let err = apply(&app, &tenant, &module).await.unwrap_err();
    assert!(
        matches!(err, MigrationError::Changed { version: 1, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_database_ahead_of_the_module_is_refused() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let tenant = acme(&app).await;
    let mut module = crm(&app).await;
    module.migrations.truncate(1);
    let err = apply(&app, &tenant, &module).await.unwrap_err();
    assert!(
        matches!(
            err,
            MigrationError::Ahead {
                applied,
                known: 1,
                ..
            } if applied == eerp_e2e::crm_version()
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_step_applies_nothing() {
    let app = spawn_app().await;
    let tenant = acme(&app).await;
    let module = crm(&app).await;
    // Sabotage: a table in the way makes step 1's CREATE TABLE a no-op and step 2's index fail.
    let conn = app.state.pool.get().await.expect("connection");
    conn.batch_execute("CREATE SCHEMA t_acme__crm; CREATE TABLE t_acme__crm.contacts (id uuid)")
        .await
        .expect("sabotage");
    let err = apply(&app, &tenant, &module).await.unwrap_err();
    assert!(matches!(err, MigrationError::Db(_)), "{err}");
    assert_eq!(
        app.scalar("SELECT count(*) FROM eerp.migration_history")
            .await,
        0
    );
}
