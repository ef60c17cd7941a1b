//! Tenant isolation: another tenant's ids lead nowhere, and a pooled connection carries
//! nothing from one tenant's request to the next.

use eerp_e2e::{TestApp, TestOptions, spawn_app, spawn_app_with, status_and_json};
use reqwest::Method;
use serde_json::{Value, json};

async fn create_contact(app: &TestApp, token: &str, name: &str) -> String {
    let response = app
        .send(
            Method::POST,
            "/api/v1/crm/contacts",
            Some(token),
            Some(&json!({"name": name, "email": format!("{name}@example.com")})),
        )
        .await;
    let (status, _, contact) = status_and_json(response).await;
    assert_eq!(status, 201, "{contact}");
    contact["id"].as_str().unwrap().to_string()
}

async fn table_snapshot(app: &TestApp, schema: &str) -> String {
    let conn = app.state.pool.get().await.unwrap();
    conn.query_one(
        &format!("SELECT coalesce(json_agg(c ORDER BY id), '[]')::text FROM {schema}.contacts c"),
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// A body the route would accept from its own tenant, so a 404 is about the id only.
fn body_for(method: &str) -> Option<Value> {
    match method {
        "PATCH" => Some(json!({"name": "Mallory", "status": "customer"})),
        "POST" | "PUT" => Some(json!({})),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_given_another_tenants_id_answers_404_and_changes_nothing() {
    let app = spawn_app().await;
    let acme = app.admin_of("acme").await;
    let globex = app.admin_of("globex").await;
    create_contact(&app, &acme, "ada").await;
    let theirs = create_contact(&app, &globex, "grace").await;
    let before = table_snapshot(&app, "t_globex__crm").await;

    let mut probed = 0;
    for module in app.state.registry.modules() {
        for route in &module.manifest.routes {
            let path: String = route
                .path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        theirs.as_str()
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let url = format!("/api/v1/{}{path}", module.name);
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let body = body_for(&route.method);
            let response = app.send(method, &url, Some(&acme), body.as_ref()).await;
            let (status, _, answer) = status_and_json(response).await;
            if route.path.contains('{') {
                assert_eq!(status, 404, "{} {url}: {answer}", route.method);
                probed += 1;
            } else {
                assert!(
                    !answer.to_string().contains(&theirs),
                    "{} {url} leaked globex's id: {answer}",
                    route.method
                );
            }
        }
    }
    assert!(probed >= 4, "every route with an id was probed ({probed})");
    assert_eq!(table_snapshot(&app, "t_globex__crm").await, before);
}

/// What a connection carries between transactions that could leak to the next tenant.
async fn session_state(app: &TestApp) -> Value {
    let conn = app.state.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT json_build_object(
                 'pid', pg_backend_pid(),
                 'user', current_user, 'session_user', session_user,
                 'search_path', current_setting('search_path'),
                 'statement_timeout', current_setting('statement_timeout'),
                 'timezone', current_setting('TimeZone'),
                 'session_settings', (SELECT coalesce(json_agg(name ORDER BY name), '[]')
                                      FROM pg_settings WHERE source = 'session'),
                 'transaction', txid_current_if_assigned(),
                 'advisory_locks', (SELECT count(*) FROM pg_locks
                                    WHERE pid = pg_backend_pid() AND locktype = 'advisory'),
                 'temp_tables', (SELECT count(*) FROM pg_class WHERE relpersistence = 't'))::text",
            &[],
        )
        .await
        .unwrap();
    serde_json::from_str(row.get(0)).unwrap()
}

#[tokio::test]
async fn one_pooled_connection_serves_tenant_a_then_b_and_leaks_nothing() {
    let app = spawn_app_with(TestOptions {
        db_pool_size: Some(1),
        ..TestOptions::default()
    })
    .await;
    let acme = app.admin_of("acme").await;
    let globex = app.admin_of("globex").await;
    let baseline = session_state(&app).await;

    let ada = create_contact(&app, &acme, "ada").await;
    // A failing request too: a duplicate email is refused and rolled back.
    let duplicate = app
        .send(
            Method::POST,
            "/api/v1/crm/contacts",
            Some(&acme),
            Some(&json!({"name": "Ada again", "email": "ada@example.com"})),
        )
        .await;
    assert_eq!(duplicate.status(), 409);
    assert_eq!(session_state(&app).await, baseline, "after tenant A");

    let (status, _, list) = status_and_json(
        app.send(Method::GET, "/api/v1/crm/contacts", Some(&globex), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["data"], json!([]), "B sees none of A's rows");
    create_contact(&app, &globex, "grace").await;
    assert_eq!(session_state(&app).await, baseline, "after tenant B");
    let path = format!("/api/v1/crm/contacts/{ada}");
    let foreign = app.send(Method::GET, &path, Some(&globex), None).await;
    assert_eq!(foreign.status(), 404);
}
