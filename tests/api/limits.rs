//! Per-tenant limits set by the operator at runtime: fuel, plans, rate and concurrency,
//! and their propagation to another replica.

use std::time::Duration;

use eerp_e2e::{TestApp, TestOptions, spawn_app, spawn_app_with, status_and_json, wait_until};
use eerp_tenancy::Limits;
use reqwest::Method;
use serde_json::json;

const HEAVY: &str = "/api/v1/crm/contacts/duplicates";
const CHEAP: &str = "/api/v1/crm/contacts/validate";

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, _, body) =
        status_and_json(app.send(Method::GET, path, Some(token), None).await).await;
    (status, body)
}

async fn set_limits(app: &TestApp, tenant: &str, body: serde_json::Value) {
    let path = format!("/tenants/{tenant}/limits");
    let (status, answer) = app.admin(Method::PUT, &path, Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
}

/// Enough similar contacts that comparing every pair costs about 10 M fuel, while
/// listing ten of them costs under 1 M (measured; see docs/performance.md).
async fn add_contacts(app: &TestApp, token: &str) {
    for n in 0..30 {
        let body = json!({"name": format!("Contact Person Number {n}")});
        let created = app
            .send(
                Method::POST,
                "/api/v1/crm/contacts",
                Some(token),
                Some(&body),
            )
            .await;
        assert_eq!(created.status(), 201);
    }
}

const LIGHT: &str = "/api/v1/crm/contacts?limit=10";
const FUEL_BETWEEN: u64 = 3_000_000;

#[tokio::test]
async fn lower_fuel_fails_the_heavy_route_for_that_tenant_only_and_plans_layer_under_overrides() {
    let app = spawn_app().await;
    let acme = app.admin_of("acme").await;
    let globex = app.admin_of("globex").await;
    add_contacts(&app, &acme).await;
    add_contacts(&app, &globex).await;
    assert_eq!(get(&app, &acme, HEAVY).await.0, 200);

    let lowered = json!({"limits": {"fuel_per_request": FUEL_BETWEEN}});
    set_limits(&app, "acme", lowered).await;
    let (status, problem) = get(&app, &acme, HEAVY).await;
    assert_eq!(status, 500, "{problem}");
    assert_eq!(problem["type"], "https://eerp.dev/problems/out-of-fuel");
    assert_eq!(
        get(&app, &acme, LIGHT).await.0,
        200,
        "light routes still fit"
    );
    let other = get(&app, &globex, HEAVY).await.0;
    assert_eq!(other, 200, "globex is unaffected");

    // A plan sets the tenant's limits unless the tenant overrides them.
    let tiny = json!({"fuel_per_request": FUEL_BETWEEN});
    let (status, _) = app.admin(Method::PUT, "/plans/tiny", Some(&tiny)).await;
    assert_eq!(status, 200);
    set_limits(&app, "globex", json!({"plan": "tiny"})).await;
    assert_eq!(get(&app, &globex, HEAVY).await.0, 500, "the plan applies");
    let generous = json!({"limits": {"fuel_per_request": 50_000_000}});
    set_limits(&app, "globex", generous).await;
    let overridden = get(&app, &globex, HEAVY).await.0;
    assert_eq!(overridden, 200, "the override beats the plan");
    let (_, shown) = app.admin(Method::GET, "/tenants/globex", None).await;
    assert_eq!(shown["plan"], "tiny");
    assert_eq!(shown["effective_limits"]["fuel_per_request"], 50_000_000);
}

#[tokio::test]
async fn a_lowered_limit_reaches_a_second_replica_long_before_its_cache_expires() {
    let first = spawn_app().await;
    let token = first.admin_of("acme").await;
    // The second replica's tenant cache would keep the old limits for 10 minutes without
    // NOTIFY; the test waits for the change a minute at most.
    let second = spawn_app_with(TestOptions {
        database: Some(first.database.clone()),
        tenant_cache_ttl: Some(Duration::from_secs(600)),
        ..TestOptions::default()
    })
    .await;
    assert_eq!(
        get(&second, &token, HEAVY).await.0,
        200,
        "cached as unlimited"
    );

    set_limits(
        &first,
        "acme",
        json!({"limits": {"fuel_per_request": 20_000}}),
    )
    .await;
    wait_until("the second replica runs with the lowered limit", || async {
        let (status, problem) = get(&second, &token, HEAVY).await;
        assert!(status == 200 || status == 500, "{status}: {problem}");
        status == 500 && problem["type"] == "https://eerp.dev/problems/out-of-fuel"
    })
    .await;
}

#[tokio::test]
async fn over_its_rate_a_tenant_gets_429_with_retry_after_and_others_do_not() {
    let app = spawn_app().await;
    let acme = app.admin_of("acme").await;
    let globex = app.admin_of("globex").await;
    set_limits(
        &app,
        "acme",
        json!({"limits": {"requests_per_second": 1, "burst": 3}}),
    )
    .await;
    let body = json!({"name": "Ada"});
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let response = app
            .send(Method::POST, CHEAP, Some(&acme), Some(&body))
            .await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok());
            let (_, _, problem) = status_and_json(response).await;
            assert_eq!(problem["type"], "https://eerp.dev/problems/rate-limited");
        }
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "the burst is admitted");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After in whole seconds"
    );
    let other = app
        .send(Method::POST, CHEAP, Some(&globex), Some(&body))
        .await;
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn module_calls_beyond_the_concurrency_limit_get_429() {
    let app = spawn_app_with(TestOptions {
        hostile: true,
        limits: Limits {
            fuel_per_request: u64::MAX / 4,
            wall_time: Duration::from_secs(2),
            ..Limits::default()
        },
        ..TestOptions::default()
    })
    .await;
    let token = app.admin_of("acme").await;
    set_limits(&app, "acme", json!({"limits": {"max_concurrent_calls": 1}})).await;
    let busy = app.send(Method::GET, "/api/v1/hostile/loop", Some(&token), None);
    let second = async {
        wait_until("the looping call runs", || async {
            app.sandboxes_in_use() == 1
        })
        .await;
        app.send(Method::GET, "/api/v1/hostile/count", Some(&token), None)
            .await
    };
    let (busy, second) = tokio::join!(busy, second);
    assert_eq!(busy.status(), 504, "the loop runs into its wall time");
    assert_eq!(second.status(), 429);
    assert_eq!(
        second
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let after = app
        .send(Method::GET, "/api/v1/hostile/count", Some(&token), None)
        .await;
    assert_eq!(after.status(), 200, "the slot is free again");
}
