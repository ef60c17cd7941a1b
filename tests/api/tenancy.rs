//! The admin API: tenant life cycle, roles and bad input, as an operator drives it.

use eerp_e2e::{TestApp, spawn_app, status_and_json};
use reqwest::Method;
use serde_json::{Value, json};

const CONTACTS: &str = "/api/v1/crm/contacts";

/// Creates the contact "Ada" with `token`; the status and the answer.
async fn create_ada(app: &TestApp, token: &str) -> (u16, Value) {
    let body = json!({"name": "Ada"});
    let response = app
        .send(Method::POST, CONTACTS, Some(token), Some(&body))
        .await;
    let (status, _, answer) = status_and_json(response).await;
    (status, answer)
}

async fn contact_count(app: &TestApp, schema: &str) -> i64 {
    app.scalar(&format!("SELECT count(*) FROM {schema}.contacts"))
        .await
}

#[tokio::test]
async fn create_suspend_resume_delete_and_purge_are_served_and_audited() {
    let app = spawn_app().await;
    let body = json!({"slug": "acme", "display_name": "Acme Ltd"});
    let (status, tenant) = app.admin(Method::POST, "/tenants", Some(&body)).await;
    assert_eq!(status, 201, "{tenant}");
    assert_eq!(tenant["status"], "active");
    assert_eq!(tenant["modules"][0]["name"], "crm");
    assert_eq!(tenant["modules"][0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        tenant["modules"][0]["migration_version"],
        eerp_e2e::crm_version()
    );
    assert_eq!(tenant["roles"]["viewer"], json!(["*.*.read"]));
    assert_eq!(tenant["effective_limits"]["fuel_per_request"], 50_000_000);
    let (again, _) = app.admin(Method::POST, "/tenants", Some(&body)).await;
    assert_eq!(again, 200, "creating again is idempotent");
    let renamed = json!({"slug": "acme", "display_name": "Acme Corp"});
    let (status, problem) = app.admin(Method::POST, "/tenants", Some(&renamed)).await;
    assert_eq!(status, 409, "an existing slug with another name: {problem}");

    let token = app.token(
        &eerp_tenancy::id::TenantSlug::parse("acme").unwrap(),
        &["admin"],
    );
    assert_eq!(create_ada(&app, &token).await.0, 201);

    let (status, suspended) = app.admin(Method::POST, "/tenants/acme/suspend", None).await;
    assert_eq!(
        (status, suspended["status"].as_str()),
        (200, Some("suspended"))
    );
    let (status, _, problem) =
        status_and_json(app.send(Method::GET, CONTACTS, Some(&token), None).await).await;
    assert_eq!(status, 403);
    assert_eq!(
        problem["type"],
        "https://eerp.dev/problems/tenant-suspended"
    );
    assert_eq!(
        contact_count(&app, "t_acme__crm").await,
        1,
        "suspension keeps data"
    );

    let (status, _) = app.admin(Method::POST, "/tenants/acme/resume", None).await;
    assert_eq!(status, 200);
    let listed = app.send(Method::GET, CONTACTS, Some(&token), None).await;
    assert_eq!(listed.status(), 200);

    let (status, deleted) = app.admin(Method::DELETE, "/tenants/acme", None).await;
    assert_eq!((status, deleted["status"].as_str()), (200, Some("deleted")));
    assert!(deleted["deleted_at"].is_string());
    let refused = app.send(Method::GET, CONTACTS, Some(&token), None).await;
    assert_eq!(refused.status(), 401);
    let (status, _) = app.admin(Method::POST, "/tenants", Some(&body)).await;
    assert_eq!(status, 409, "a deleted slug waits for its purge");

    let (_, kept) = app
        .admin(
            Method::POST,
            "/purge",
            Some(&json!({"grace_seconds": 3600})),
        )
        .await;
    assert_eq!(kept["purged"], json!([]), "inside the grace period");
    assert_eq!(contact_count(&app, "t_acme__crm").await, 1);
    let (_, purged) = app
        .admin(Method::POST, "/purge", Some(&json!({"grace_seconds": 0})))
        .await;
    assert_eq!(purged["purged"], json!(["acme"]));
    let schemas = app
        .scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't_acme%'")
        .await;
    assert_eq!(schemas, 0);

    let (_, log) = app.admin(Method::GET, "/audit?tenant=acme", None).await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.purge",
            "tenant.delete",
            "tenant.resume",
            "tenant.suspend",
            "tenant.create"
        ]
    );
    let suspend = &log["entries"][3];
    assert_eq!(suspend["actor"], "test-operator");
    assert_eq!(suspend["before"]["status"], "active");
    assert_eq!(suspend["after"]["status"], "suspended");
}

#[tokio::test]
async fn the_admin_api_takes_operator_tokens_only_and_names_bad_input() {
    let app = spawn_app().await;
    let tenant_token = app.admin_of("acme").await;
    for token in [None, Some(tenant_token.as_str())] {
        let (status, content_type, problem) = status_and_json(
            app.send(Method::GET, "/admin/v1/tenants", token, None)
                .await,
        )
        .await;
        assert_eq!(status, 401, "{problem}");
        assert_eq!(content_type, "application/problem+json");
    }
    let acme = eerp_tenancy::id::TenantSlug::parse("acme").unwrap();
    let operator_role = app.token(&acme, &["operator"]);
    let response = app
        .send(Method::GET, "/admin/v1/tenants", Some(&operator_role), None)
        .await;
    assert_eq!(
        response.status(),
        401,
        "an operator role in a tenant token opens nothing"
    );
    let operator_at_api = app
        .send(Method::GET, CONTACTS, Some(&app.operator), None)
        .await;
    assert_eq!(
        operator_at_api.status(),
        401,
        "operator tokens are not tenant tokens"
    );

    let bad: [(Value, &str); 5] = [
        (json!({"slug": "Bad_Slug"}), "slug"),
        (json!({"slug": "ok", "colour": "red"}), "colour"),
        (json!({"slug": "ok", "plan": "platinum"}), "platinum"),
        (json!({"slug": "ok", "modules": ["payroll"]}), "payroll"),
        (json!({"slug": 7}), "expected a string"),
    ];
    for (body, named) in bad {
        let (status, problem) = app.admin(Method::POST, "/tenants", Some(&body)).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(named),
            "{problem}"
        );
    }
    let limits = [
        (
            json!({"limits": {"fuel_per_request": 0}}),
            "fuel_per_request",
        ),
        (
            json!({"limits": {"max_memory_bytes": 1u64 << 40}}),
            "ceiling",
        ),
        (json!({"limits": {"fuel": 5}}), "fuel"),
    ];
    for (body, named) in limits {
        let (status, problem) = app
            .admin(Method::PUT, "/tenants/acme/limits", Some(&body))
            .await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(named),
            "{problem}"
        );
    }
    assert_eq!(
        app.scalar("SELECT count(*) FROM eerp.tenants").await,
        1,
        "nothing created"
    );
    let (_, acme) = app.admin(Method::GET, "/tenants/acme", None).await;
    assert_eq!(acme["limit_overrides"], json!({}), "nothing changed");
    let (status, _) = app.admin(Method::GET, "/tenants/nobody", None).await;
    assert_eq!(status, 404);
    let (status, _) = app.admin(Method::POST, "/tenants/acme/resume", None).await;
    assert_eq!(status, 200, "resuming an active tenant changes nothing");
    let (status, _) = app.admin(Method::DELETE, "/tenants/acme", None).await;
    assert_eq!(status, 200);
    let (status, problem) = app.admin(Method::POST, "/tenants/acme/resume", None).await;
    assert_eq!(status, 409, "a deleted tenant cannot be resumed: {problem}");
}

#[tokio::test]
async fn tenant_roles_grant_what_the_operator_sets_and_403_names_the_permission() {
    let app = spawn_app().await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let grants = json!({"grants": ["crm.contacts.read", "crm.contacts.create"]});
    let (status, tenant) = app
        .admin(Method::PUT, "/tenants/acme/roles/sales", Some(&grants))
        .await;
    assert_eq!(status, 200, "{tenant}");
    let sales = app.token(&acme, &["sales"]);
    let (_, contact) = create_ada(&app, &sales).await;
    let path = format!("{CONTACTS}/{}", contact["id"].as_str().unwrap());
    let (status, _, problem) =
        status_and_json(app.send(Method::DELETE, &path, Some(&sales), None).await).await;
    assert_eq!(status, 403);
    assert_eq!(problem["permission"], "crm.contacts.delete");

    // Removing acme's viewer role takes reading away from acme's viewers only.
    let (status, _) = app
        .admin(
            Method::PUT,
            "/tenants/acme/roles/viewer",
            Some(&json!({"grants": []})),
        )
        .await;
    assert_eq!(status, 200);
    let acme_viewer = app.token(&acme, &["viewer"]);
    let globex_viewer = app.token(&globex, &["viewer"]);
    let refused = app
        .send(Method::GET, CONTACTS, Some(&acme_viewer), None)
        .await;
    assert_eq!(refused.status(), 403);
    let allowed = app
        .send(Method::GET, CONTACTS, Some(&globex_viewer), None)
        .await;
    assert_eq!(allowed.status(), 200);

    let (status, problem) = app
        .admin(
            Method::PUT,
            "/tenants/acme/roles/sales",
            Some(&json!({"grants": ["crm..x"]})),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
}

#[tokio::test]
async fn a_disabled_module_is_hidden_and_its_data_returns_when_enabled_again() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    assert_eq!(create_ada(&app, &token).await.0, 201);
    let (status, _) = app
        .admin(Method::DELETE, "/tenants/acme/modules/crm", None)
        .await;
    assert_eq!(status, 200);
    let (status, _, problem) =
        status_and_json(app.send(Method::GET, CONTACTS, Some(&token), None).await).await;
    assert_eq!(status, 404);
    assert_eq!(problem["type"], "https://eerp.dev/problems/unknown-module");
    let (status, _) = app
        .admin(Method::PUT, "/tenants/acme/modules/crm", None)
        .await;
    assert_eq!(status, 200);
    let (_, _, list) =
        status_and_json(app.send(Method::GET, CONTACTS, Some(&token), None).await).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
}
