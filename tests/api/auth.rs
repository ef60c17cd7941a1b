//! Authentication and permissions: the tenant comes from a verified token only.

use eerp_e2e::{spawn_app, status_and_json};
use eerp_tenancy::id::TenantSlug;
use eerp_tenancy::{DevSigner, IssuerConfig};
use reqwest::Method;
use serde_json::json;

const LIST: &str = "/api/v1/crm/contacts";

#[tokio::test]
async fn missing_malformed_or_foreign_tokens_get_401_problems() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let foreign = DevSigner::new(&IssuerConfig::hs256(
        "https://issuer.test",
        "eerp-test",
        b"a-different-secret-a-different-secret".to_vec(),
    ))
    .expect("an HS256 issuer")
    .tenant_token(&tenant, "mallory", &["admin"], 600)
    .expect("a token can be minted");
    let ghost = app.token(&TenantSlug::parse("ghost").expect("valid slug"), &["admin"]);
    for token in [
        None,
        Some("not-a-jwt"),
        Some(foreign.as_str()),
        Some(ghost.as_str()),
    ] {
        let (status, content_type, problem) =
            status_and_json(app.send(Method::GET, LIST, token, None).await).await;
        assert_eq!(status, 401, "{token:?}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["type"], "https://eerp.dev/problems/unauthenticated");
        assert!(problem["request_id"].is_string());
    }
    // A valid signature over another payload: claim to be globex with acme's signature.
    let acme_token = app.token(&tenant, &["admin"]);
    let globex_token = app.token(
        &TenantSlug::parse("globex").expect("valid slug"),
        &["admin"],
    );
    let acme_parts: Vec<&str> = acme_token.split('.').collect();
    let globex_parts: Vec<&str> = globex_token.split('.').collect();
    let tampered = format!("{}.{}.{}", acme_parts[0], globex_parts[1], acme_parts[2]);
    let response = app.send(Method::GET, LIST, Some(&tampered), None).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_tenant_header_or_body_field_cannot_choose_the_tenant() {
    let app = spawn_app().await;
    let acme = app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    let token = app.token(&acme, &["admin"]);
    let response = app
        .client
        .post(format!("{}{LIST}", app.address))
        .bearer_auth(&token)
        .header("x-tenant", "globex")
        .json(&json!({"name": "where do I go?"}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 201);
    let smuggled = json!({"name": "smuggled", "tid": "globex"});
    let response = app
        .send(Method::POST, LIST, Some(&token), Some(&smuggled))
        .await;
    assert_eq!(
        response.status(),
        400,
        "a tenant field in the body is an unknown field"
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts")
            .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_globex__crm.contacts")
            .await,
        0
    );
}

#[tokio::test]
async fn viewers_read_but_cannot_write_and_the_problem_names_the_permission() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let viewer = app.token(&tenant, &["viewer"]);
    assert_eq!(
        app.send(Method::GET, LIST, Some(&viewer), None)
            .await
            .status(),
        200
    );
    let (status, _, problem) = status_and_json(
        app.send(
            Method::POST,
            LIST,
            Some(&viewer),
            Some(&json!({"name": "x"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(problem["permission"], "crm.contacts.create");
    let nobody = app.token(&tenant, &[]);
    assert_eq!(
        app.send(Method::GET, LIST, Some(&nobody), None)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts")
            .await,
        0
    );
}

#[tokio::test]
async fn unknown_modules_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    let cases = [
        (Method::GET, "/api/v1/nope/things", 404),
        (Method::GET, "/api/v1/crm/nothing-here", 404),
        (Method::PUT, "/api/v1/crm/contacts", 405),
        (Method::GET, "/elsewhere", 404),
    ];
    for (method, path, expected) in cases {
        let (status, content_type, problem) =
            status_and_json(app.send(method, path, Some(&token), None).await).await;
        assert_eq!(status, expected, "{path}: {problem}");
        assert_eq!(content_type, "application/problem+json");
    }
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    assert_eq!(
        app.send(Method::GET, "/livez", None, None).await.status(),
        200
    );
    let (status, _, ready) = status_and_json(app.ops_get("/readyz").await).await;
    assert_eq!(status, 200, "{ready}");
    let mut builtin: Vec<&str> = eerp_platform::registry::BUILTIN_MODULES
        .iter()
        .map(|(file, _)| file.trim_end_matches(".wasm"))
        .collect();
    builtin.sort_unstable();
    assert_eq!(ready["modules"], json!(builtin));
}

#[tokio::test]
async fn probes_and_metrics_are_served_on_the_operations_port_only() {
    let app = spawn_app().await;
    for path in ["/metrics", "/readyz"] {
        let public = app.send(Method::GET, path, None, None).await;
        assert_eq!(public.status(), 404, "{path} is not on the public port");
        assert_eq!(app.ops_get(path).await.status(), 200, "{path}");
    }
    // Liveness is cheap and needed by load balancers: both.
    assert_eq!(
        app.send(Method::GET, "/livez", None, None).await.status(),
        200
    );
    assert_eq!(app.ops_get("/livez").await.status(), 200);
}
