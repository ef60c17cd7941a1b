//! Hostile modules are stopped, classified, rolled back, and do not hurt the next request.

use std::time::Duration;

use eerp_e2e::{TestApp, TestOptions, spawn_app_with, status_and_json, wait_until};
use eerp_tenancy::Limits;
use reqwest::Method;
use serde_json::{Value, json};

async fn hostile_app(limits: Limits) -> (TestApp, String) {
    hostile_app_with(TestOptions {
        limits,
        hostile: true,
        ..TestOptions::default()
    })
    .await
}

async fn hostile_app_with(options: TestOptions) -> (TestApp, String) {
    let app = spawn_app_with(options).await;
    let token = app.admin_of("acme").await;
    (app, token)
}

async fn call(app: &TestApp, token: &str, method: Method, route: &str) -> (u16, Value) {
    let path = format!("/api/v1/hostile{route}");
    let body = json!({"note": route});
    let body = (method == Method::POST).then_some(&body);
    let (status, content_type, json) =
        status_and_json(app.send(method, &path, Some(token), body).await).await;
    if status >= 400 {
        assert_eq!(content_type, "application/problem+json", "{route}");
    }
    (status, json)
}

async fn rows(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) FROM t_acme__hostile.probes")
        .await
}

/// The tenant is still served normally, by the same module, right after.
async fn next_request_succeeds(app: &TestApp, token: &str) {
    let (status, body) = call(app, token, Method::GET, "/count").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn each_hostile_behaviour_is_stopped_and_classified() {
    let (app, token) = hostile_app(Limits {
        fuel_per_request: 20_000_000,
        max_memory_bytes: 16 << 20,
        ..Limits::default()
    })
    .await;
    let cases = [
        ("/loop", 500, "out-of-fuel"),
        ("/hog", 500, "memory-limit"),
        ("/recurse", 500, "stack-overflow"),
        ("/bad-pointer", 500, "bad-abi"),
        ("/oversized", 500, "bad-abi"),
        ("/panic", 500, "trap"),
    ];
    for (route, status, kind) in cases {
        let (got, problem) = call(&app, &token, Method::GET, route).await;
        assert_eq!(got, status, "{route}: {problem}");
        assert_eq!(
            problem["type"],
            format!("https://eerp.dev/problems/{kind}"),
            "{route}: {problem}"
        );
        next_request_succeeds(&app, &token).await;
    }
}

#[tokio::test]
async fn writes_before_a_trap_are_rolled_back() {
    let (app, token) = hostile_app(Limits::default()).await;
    let (status, problem) = call(&app, &token, Method::POST, "/write-then-trap").await;
    assert_eq!(status, 500);
    assert_eq!(problem["type"], "https://eerp.dev/problems/trap");
    assert_eq!(
        rows(&app).await,
        0,
        "the row written before the trap is gone"
    );

    let (status, _) = call(&app, &token, Method::POST, "/write").await;
    assert_eq!(status, 201, "a well-behaved write right after commits");
    assert_eq!(rows(&app).await, 1);
}

#[tokio::test]
async fn a_module_that_ignores_a_failed_write_saves_nothing() {
    let (app, token) = hostile_app(Limits::default()).await;
    let (status, problem) = call(&app, &token, Method::POST, "/ignore-failure").await;
    assert_eq!(status, 500, "{problem}");
    assert_eq!(problem["type"], "https://eerp.dev/problems/bad-abi");
    assert_eq!(
        rows(&app).await,
        0,
        "the first insert is rolled back with the failed one"
    );
}

#[tokio::test]
async fn the_wall_clock_stops_a_module_that_fuel_would_not_stop_in_time() {
    let (app, token) = hostile_app(Limits {
        fuel_per_request: u64::MAX / 4,
        wall_time: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    let (status, problem) = call(&app, &token, Method::GET, "/loop").await;
    assert_eq!(status, 504, "{problem}");
    assert_eq!(problem["type"], "https://eerp.dev/problems/timeout");
    next_request_succeeds(&app, &token).await;
}

#[tokio::test]
async fn a_tenant_cap_on_data_calls_is_enforced() {
    let (app, token) = hostile_app(Limits {
        max_data_calls: 1,
        ..Limits::default()
    })
    .await;
    let (status, body) = call(&app, &token, Method::POST, "/ignore-failure").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["second"]["error"]["kind"], "limit_exceeded");
    assert_eq!(rows(&app).await, 1, "the call within the cap committed");
}

#[tokio::test]
async fn a_full_sandbox_pool_answers_503_with_retry_after() {
    let limits = Limits {
        fuel_per_request: u64::MAX / 4,
        wall_time: Duration::from_secs(3),
        ..Limits::default()
    };
    let (app, token) = hostile_app_with(TestOptions {
        limits,
        hostile: true,
        pool_slots: Some(1),
        ..TestOptions::default()
    })
    .await;
    // A second tenant: one tenant's own calls beyond its share of the slots are 429s.
    let other = app.admin_of("globex").await;
    let busy = call(&app, &token, Method::GET, "/loop");
    let blocked = async {
        wait_until("the looping call holds the one sandbox slot", || async {
            app.sandboxes_in_use() == 1
        })
        .await;
        app.send(Method::GET, "/api/v1/hostile/count", Some(&other), None)
            .await
    };
    let ((busy_status, _), blocked) = tokio::join!(busy, blocked);
    assert_eq!(busy_status, 504, "the slot holder runs into its wall time");
    assert_eq!(blocked.status(), 503);
    assert_eq!(
        blocked
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let (_, _, problem) = status_and_json(blocked).await;
    assert_eq!(problem["type"], "https://eerp.dev/problems/pool-exhausted");
    next_request_succeeds(&app, &token).await;
}

#[tokio::test]
async fn a_timeout_while_waiting_on_the_database_leaves_no_open_transaction() {
    let (app, token) = hostile_app(Limits {
        wall_time: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let (status, row) = call(&app, &token, Method::POST, "/write").await;
    assert_eq!(status, 201, "{row}");
    let id = row["ok"]["id"]
        .as_str()
        .expect("the new row's id")
        .to_string();
    // Another session holds the row, so the module's `get_for_update` waits on it.
    let mut holder = app.state.pool.get().await.expect("a connection");
    let tx = holder.transaction().await.expect("a transaction");
    tx.execute(
        "SELECT 1 FROM t_acme__hostile.probes WHERE id = $1::text::uuid FOR UPDATE",
        &[&id],
    )
    .await
    .expect("the row is locked");
    let (status, _, problem) = lock(&app, &token, &id).await;
    assert_eq!(status, 504, "{problem}");
    assert_eq!(problem["type"], "https://eerp.dev/problems/timeout");
    tx.rollback().await.expect("the lock is released");
    drop(holder);

    // The waiting statement was cancelled and rolled back: no session of this database is
    // left inside a transaction, and the pool serves the next requests normally.
    let stuck = app
        .scalar(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
             AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
            app.database
        ))
        .await;
    assert_eq!(stuck, 0);
    for _ in 0..3 {
        let (status, _, locked) = lock(&app, &token, &id).await;
        assert_eq!(status, 200, "{locked}");
        assert_eq!(locked["ok"]["id"], id.as_str());
    }
}

/// Calls the route that locks row `id` with `get_for_update`.
async fn lock(app: &TestApp, token: &str, id: &str) -> (u16, String, Value) {
    let body = json!({"id": id});
    let response = app
        .send(
            Method::POST,
            "/api/v1/hostile/lock",
            Some(token),
            Some(&body),
        )
        .await;
    status_and_json(response).await
}

#[tokio::test]
async fn a_call_busy_in_its_module_after_a_read_holds_no_connection() {
    // A pool of 2 gives each tenant a share of one connection.
    let (app, token) = hostile_app_with(TestOptions {
        limits: Limits {
            fuel_per_request: 1_000_000_000_000,
            wall_time: Duration::from_secs(6),
            ..Limits::default()
        },
        hostile: true,
        db_pool_size: Some(2),
        ..TestOptions::default()
    })
    .await;
    let busy = {
        let (address, token) = (app.address.clone(), token.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!("{address}/api/v1/hostile/count-then-loop"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // The busy call has read (its count is the last statement of an idle backend) and
    // is spinning in its sandbox.
    let counted = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND state = 'idle' \
         AND query LIKE '%count(%' AND query LIKE '%probes%' \
         AND query NOT LIKE '%pg_stat_activity%'",
        app.database
    );
    wait_until("the busy call has read and spins", || async {
        app.scalar(&counted).await > 0 && app.sandboxes_in_use() == 1
    })
    .await;
    let (status, body) = call(&app, &token, Method::GET, "/count").await;
    assert_eq!(status, 200, "{body}");
    // Had the spinning call kept the tenant's one connection, the read could not have
    // had it before that call's wall time ended.
    assert!(
        !busy.is_finished(),
        "the read was answered while the call that read before it still runs"
    );
    assert_eq!(
        busy.await.unwrap(),
        504,
        "the spinning call ends at its wall time"
    );
}
