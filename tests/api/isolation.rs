//! Tenant isolation: another tenant's ids lead nowhere, and a pooled connection carries
//! nothing from one tenant's request to the next; the request lanes share their idle
//! connections, keep a tenant's requests to few of them, and keep their prepared
//! statements within a tenant's schema.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use eerp_e2e::{TestApp, TestOptions, spawn_app, spawn_app_with, status_and_json};
use eerp_platform::db::{ConnectionShare, Connections, DbSession, WorkerLanes};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

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

/// What the request connections (one per lane) carry between transactions that
/// could leak to the next tenant.
async fn session_state(app: &TestApp) -> Vec<Value> {
    let mut states = Vec::new();
    for pool in app.state.request_pools.iter() {
        assert_eq!(pool.status().max_size, 1, "one connection per lane");
        states.push(connection_state(&pool.get().await.unwrap()).await);
    }
    states
}

async fn connection_state(conn: &eerp_platform::db::Object) -> Value {
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

/// The statements prepared on the one request connection of `app`.
async fn prepared_statements(app: &TestApp) -> Vec<String> {
    let pools = &app.state.request_pools;
    assert_eq!(pools.len(), 1, "one pool");
    let conn = pools[0].get().await.unwrap();
    let rows = conn
        .query("SELECT statement FROM pg_prepared_statements", &[])
        .await
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

#[tokio::test]
async fn a_repeated_read_is_prepared_once_per_connection_in_its_tenant_schema() {
    let app = spawn_app_with(TestOptions {
        db_pool_size: Some(1),
        ..TestOptions::default()
    })
    .await;
    let mut gets = Vec::new();
    for tenant in ["acme", "globex"] {
        let token = app.admin_of(tenant).await;
        let id = create_contact(&app, &token, tenant).await;
        gets.push((token, id, tenant));
    }
    // Interleaved on the one connection: each tenant's get is seen, prepared, reused.
    for _ in 0..3 {
        for (token, id, tenant) in &gets {
            let path = format!("/api/v1/crm/contacts/{id}");
            let (status, _, contact) =
                status_and_json(app.send(Method::GET, &path, Some(token), None).await).await;
            assert_eq!(status, 200, "{contact}");
            assert_eq!(contact["name"], *tenant, "{tenant} reads its own row");
        }
    }
    let prepared = prepared_statements(&app).await;
    let mut unique = prepared.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), prepared.len(), "each text once: {prepared:?}");
    for schema in ["\"t_acme__crm\"", "\"t_globex__crm\""] {
        let get = prepared
            .iter()
            .filter(|text| text.starts_with("SELECT") && text.contains("WHERE \"id\" ="))
            .filter(|text| text.contains(schema))
            .count();
        assert_eq!(get, 1, "{schema}'s get prepared once: {prepared:?}");
    }
}

/// A request's database session on `pools` (the app's lanes, two workers), for the
/// tenant with `affinity`, with a share of every connection.
fn session_on(pools: &Arc<[eerp_platform::db::Pool]>, worker: usize, affinity: u64) -> DbSession {
    let size = pools.len();
    DbSession::new(Connections {
        pools: pools.clone(),
        lanes: WorkerLanes::of(worker, 2, size),
        affinity,
        share: ConnectionShare {
            permits: Arc::new(Semaphore::new(size)),
            size: size as u32,
            active_tenants: Arc::new(AtomicUsize::new(1)),
        },
        wait: Duration::from_millis(300),
    })
}

#[tokio::test]
async fn a_request_whose_workers_lanes_are_busy_takes_a_connection_of_another() {
    let app = spawn_app_with(TestOptions {
        db_pool_size: Some(2),
        ..TestOptions::default()
    })
    .await;
    let pools = app.state.request_pools.clone();
    assert_eq!(pools.len(), 2, "one lane per connection, one per worker");
    let session = |worker| session_on(&pools, worker, 5);
    let idle = backend_pid(&pools[1].get().await.unwrap()).await;
    let held = pools[0].get().await.unwrap(); // worker 0's only one is in use

    let mut elsewhere = session(0);
    let conn = elsewhere.client(false).await.expect("worker 1's idle one");
    assert_eq!(backend_pid(conn).await, idle, "worker 1's connection");
    elsewhere.finish(true).await.unwrap();
    assert_eq!(pools[1].status().available, 1, "back in worker 1's pool");
    assert_eq!(pools[0].status().size, 1, "worker 0 made none");

    // A connection freed while the request waits serves it too.
    let busy = pools[1].get().await.unwrap();
    let waiting = tokio::spawn({
        let mut waiting = session(0);
        async move {
            waiting.client(false).await?;
            waiting.finish(true).await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(busy);
    waiting.await.unwrap().expect("the freed one");

    // With every connection in use the request gives up at its wait, and says so.
    let busy = pools[1].get().await.unwrap();
    let error = session(0).client(false).await.err().expect("none was free");
    assert!(error.contains("free in time"), "{error}");
    drop((held, busy));
}

/// The statements prepared on each request lane of `app`, lane by lane.
async fn prepared_per_lane(app: &TestApp) -> Vec<Vec<String>> {
    let mut lanes = Vec::new();
    for pool in app.state.request_pools.iter() {
        let conn = pool.get().await.unwrap();
        let rows = conn
            .query("SELECT statement FROM pg_prepared_statements", &[])
            .await
            .unwrap();
        lanes.push(rows.iter().map(|row| row.get(0)).collect());
    }
    lanes
}

#[tokio::test]
async fn a_tenants_requests_keep_to_one_connection_of_their_worker() {
    let app = spawn_app_with(TestOptions {
        db_pool_size: Some(4),
        ..TestOptions::default()
    })
    .await;
    let pools = app.state.request_pools.clone();
    assert_eq!(pools.len(), 4, "one lane per connection");
    // Every lane's connection made first, so any of them could serve each request.
    drop(futures_util::future::join_all(pools.iter().map(|pool| pool.get())).await);
    let mut expected = Vec::new();
    for tenant in ["acme", "globex"] {
        let token = app.admin_of(tenant).await;
        let id = create_contact(&app, &token, tenant).await;
        let catalog = app.state.pool.get().await.unwrap();
        let sql = "SELECT id::text FROM eerp.tenants WHERE slug = $1";
        let tenant_id: String = catalog.query_one(sql, &[&tenant]).await.unwrap().get(0);
        let affinity = eerp_platform::db::affinity(&tenant_id);
        let first_of = |worker| WorkerLanes::of(worker, 2, 4).own(4, affinity).next();
        expected.push((format!("\"t_{tenant}__crm\""), [first_of(0), first_of(1)]));
        // One after another: the tenant's lane is free every time, so it is the one used
        // (a pool of the worker's connections would take them in turn, and prepare the
        // get on each).
        for _ in 0..6 {
            let path = format!("/api/v1/crm/contacts/{id}");
            let response = app.send(Method::GET, &path, Some(&token), None).await;
            assert_eq!(response.status(), 200);
        }
    }
    let lanes = prepared_per_lane(&app).await;
    for (schema, tenant_lanes) in expected {
        let holding: Vec<usize> = (0..lanes.len())
            .filter(|&lane| {
                lanes[lane]
                    .iter()
                    .any(|text| text.contains(&schema) && text.contains("WHERE \"id\" ="))
            })
            .collect();
        assert!(
            !holding.is_empty(),
            "{schema}'s get was prepared: {lanes:?}"
        );
        for lane in holding {
            assert!(
                tenant_lanes.contains(&Some(lane)),
                "{schema}'s get prepared on lane {lane}, not its lanes {tenant_lanes:?}: {lanes:?}"
            );
        }
    }

    // Busy with the tenant's own request, its lane is passed over for another of its
    // worker's.
    let mut pids = Vec::new();
    for pool in pools.iter() {
        pids.push(backend_pid(&pool.get().await.unwrap()).await);
    }
    let mut first = session_on(&pools, 0, 3);
    let used = backend_pid(first.client(false).await.unwrap()).await;
    assert_eq!(used, pids[2], "affinity 3 picks worker 0's second lane");
    let mut second = session_on(&pools, 0, 3);
    let used = backend_pid(second.client(false).await.unwrap()).await;
    assert_eq!(used, pids[0], "then worker 0's other lane, not worker 1's");
    first.finish(true).await.unwrap();
    second.finish(true).await.unwrap();
}

async fn backend_pid(conn: &eerp_platform::db::Object) -> i32 {
    let row = conn.query_one("SELECT pg_backend_pid()", &[]).await;
    row.unwrap().get(0)
}
