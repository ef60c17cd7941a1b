//! Tenant isolation: another tenant's ids lead nowhere, and a pooled connection carries
//! nothing from one tenant's request to the next; the request lanes share their idle
//! connections, keep a tenant's requests to few of them, and keep their prepared
//! statements within a tenant's schema.

use std::collections::BTreeMap;
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

/// Every table of `tenant`'s four module schemas, as JSON text.
async fn tenant_snapshot(app: &TestApp, tenant: &str) -> String {
    let conn = app.state.pool.get().await.unwrap();
    let tables = conn
        .query(
            "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
             WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE'
             ORDER BY table_schema, table_name",
            &[&MODULES
                .map(|module| format!("t_{tenant}__{module}"))
                .to_vec()],
        )
        .await
        .unwrap();
    assert!(tables.len() >= 16, "{tenant} has its four modules' tables");
    let mut snapshot = String::new();
    for table in tables {
        let name: String = table.get(0);
        let sql =
            format!("SELECT coalesce(json_agg(t ORDER BY t::text), '[]')::text FROM {name} t");
        let rows: String = conn.query_one(&sql, &[]).await.unwrap().get(0);
        snapshot.push_str(&format!("{name}: {rows}\n"));
    }
    snapshot
}

const MODULES: [&str; 4] = ["crm", "inventory", "accounting", "hr"];

/// The rows of one tenant, made through the API: one of every kind, by the module and the
/// path segment its routes name it by (`/items/{id}` → `("inventory", "items")`), and the
/// bodies that made them.
#[derive(Default)]
struct Everything {
    ids: BTreeMap<(String, String), String>,
    bodies: Vec<(String, Value)>,
    /// Every id in the tenant's tables, the rows the modules made themselves (ledger
    /// lines, journal entries, balances) included: none may show up in another's answers.
    all_ids: Vec<String>,
}

impl Everything {
    async fn make(app: &TestApp, token: &str) -> Self {
        let mut made = Self::default();
        let mut add = async |module: &str, kind: &str, body: Value| {
            made.add(app, token, module, kind, body).await
        };
        let company = add("crm", "companies", json!({"name": "Initech"})).await;
        add(
            "crm",
            "contacts",
            json!({"name": "Grace", "email": "grace@globex.example", "company": "Initech"}),
        )
        .await;
        add(
            "crm",
            "leads",
            json!({"name": "Hank Scorpio", "company_name": "Globex"}),
        )
        .await;
        add(
            "crm",
            "opportunities",
            json!({"name": "Rollout", "amount": "12000.00"}),
        )
        .await;
        add("crm", "activities", json!({"kind": "call", "subject": "Intro", "on_type": "company", "on_id": company, "due_on": "2026-12-03"})).await;
        let item = add("inventory", "items", json!({"sku": "BOLT", "name": "Bolt"})).await;
        let warehouse = add(
            "inventory",
            "warehouses",
            json!({"code": "MAIN", "name": "Main"}),
        )
        .await;
        let location = add(
            "inventory",
            "locations",
            json!({"warehouse_id": warehouse, "code": "A1", "name": "Aisle 1"}),
        )
        .await;
        let stock = json!({"item_id": item, "location_id": location});
        let receipt = add(
            "inventory",
            "moves",
            json!({"kind": "receipt", "qty": "10", "rate": "2.50"}).merged(&stock),
        )
        .await;
        add(
            "inventory",
            "receipt-costs",
            json!({"kind": "landed_cost", "receipts": [receipt], "amount": "5.00"}),
        )
        .await;
        add(
            "inventory",
            "reservations",
            json!({"qty": "2", "reference": "SO-1"}).merged(&stock),
        )
        .await;
        add("inventory", "counts", json!({"qty": "9"}).merged(&stock)).await;
        add(
            "inventory",
            "units",
            json!({"item_id": item, "uom": "box", "factor": "12"}),
        )
        .await;
        let cash = add(
            "accounting",
            "accounts",
            json!({"code": "1010", "name": "Cash", "type": "asset"}),
        )
        .await;
        let capital = add(
            "accounting",
            "accounts",
            json!({"code": "3000", "name": "Capital", "type": "equity"}),
        )
        .await;
        let journal = add(
            "accounting",
            "journals",
            json!({"code": "GEN", "name": "General"}),
        )
        .await;
        let lines = json!([{"account_id": cash, "debit": "100.00"}, {"account_id": capital, "credit": "100.00"}]);
        add(
            "accounting",
            "entries",
            json!({"journal_id": journal, "date": "2026-11-02", "lines": lines}),
        )
        .await;
        add(
            "accounting",
            "periods",
            json!({"name": "2026-11", "start_date": "2026-11-01", "end_date": "2026-11-30"}),
        )
        .await;
        let department = add(
            "hr",
            "departments",
            json!({"code": "ops", "name": "Operations"}),
        )
        .await;
        let position = add(
            "hr",
            "positions",
            json!({"title": "Engineer", "department_id": department}),
        )
        .await;
        let employee = add(
            "hr",
            "employees",
            json!({"name": "Grace Hopper", "department_id": department, "position_id": position}),
        )
        .await;
        add(
            "hr",
            "holidays",
            json!({"date": "2026-12-25", "name": "Christmas Day"}),
        )
        .await;
        let annual = add(
            "hr",
            "leave-types",
            json!({"code": "annual", "name": "Annual leave"}),
        )
        .await;
        let leave = json!({"employee_id": employee, "leave_type_id": annual});
        add("hr", "allocations", json!({"days": "25"}).merged(&leave)).await;
        add(
            "hr",
            "leave-requests",
            json!({"from_date": "2026-12-07", "to_date": "2026-12-08"}).merged(&leave),
        )
        .await;
        made
    }

    /// Creates one row; the first of each kind is the one the probes use.
    async fn add(
        &mut self,
        app: &TestApp,
        token: &str,
        module: &str,
        kind: &str,
        body: Value,
    ) -> String {
        let path = format!("/api/v1/{module}/{kind}");
        let response = app
            .send(Method::POST, &path, Some(token), Some(&body))
            .await;
        let (status, _, row) = status_and_json(response).await;
        assert_eq!(status, 201, "POST {path} {body}: {row}");
        let id = row["id"].as_str().unwrap().to_string();
        self.ids
            .entry((module.into(), kind.into()))
            .or_insert_with(|| id.clone());
        self.bodies.push((path, body));
        id
    }

    /// The row of the kind a path segment (`items`) or an id parameter (`item_id`,
    /// `leave_type_id`) names: `module`'s own first, else any module's.
    fn id_for(&self, module: &str, name: &str) -> Option<&str> {
        let kind = match name.strip_suffix("_id") {
            Some(singular) => plural(&singular.replace('_', "-")),
            None => name.to_string(),
        };
        self.ids
            .get(&(module.to_string(), kind.clone()))
            .or_else(|| {
                self.ids
                    .iter()
                    .find(|((_, k), _)| *k == kind)
                    .map(|(_, id)| id)
            })
            .map(String::as_str)
    }

    /// Learns every id in `snapshot` (see [`tenant_snapshot`]).
    fn learn_ids(&mut self, snapshot: &str) {
        let is_id = |word: &&str| word.len() == 36 && word.matches('-').count() == 4;
        self.all_ids = snapshot
            .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
            .filter(is_id)
            .map(str::to_string)
            .collect();
        self.all_ids.sort();
        self.all_ids.dedup();
    }

    /// One of this tenant's ids that `answer` contains, if any.
    fn leaked_in(&self, answer: &Value) -> Option<&str> {
        let text = answer.to_string();
        self.all_ids
            .iter()
            .find(|id| text.contains(id.as_str()))
            .map(String::as_str)
    }
}

/// JSON objects joined: `self`'s keys and `other`'s.
trait Merged {
    fn merged(self, other: &Value) -> Value;
}

impl Merged for Value {
    fn merged(mut self, other: &Value) -> Value {
        if let (Some(object), Some(more)) = (self.as_object_mut(), other.as_object()) {
            object.extend(more.clone());
        }
        self
    }
}

fn plural(kind: &str) -> String {
    match kind.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{kind}s"),
    }
}

/// A body the route would accept from its own tenant, so a 404 is about the id only.
fn body_for(method: &str) -> Option<Value> {
    match method {
        "PATCH" => Some(json!({"name": "Mallory"})),
        "POST" | "PUT" => Some(json!({})),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_given_another_tenants_ids_answers_not_found_and_changes_nothing() {
    let app = spawn_app().await;
    let mut tokens = Vec::new();
    for slug in ["acme", "globex"] {
        let body = json!({"slug": slug, "modules": MODULES});
        let (status, tenant) = app.admin(Method::POST, "/tenants", Some(&body)).await;
        assert_eq!(status, 201, "{tenant}");
        let slug = eerp_tenancy::id::TenantSlug::parse(slug).unwrap();
        tokens.push(app.token(&slug, &["admin"]));
    }
    let (acme, globex) = (&tokens[0], &tokens[1]);
    let mut theirs = Everything::make(&app, globex).await;
    let before = tenant_snapshot(&app, "globex").await;
    theirs.learn_ids(&before);
    assert!(theirs.all_ids.len() > theirs.ids.len(), "{before}");

    let (mut by_id, mut not_found, mut listed, mut filtered) = (0, 0, 0, 0);
    for name in MODULES {
        let module = app.state.registry.newest(name).unwrap();
        for route in &module.manifest.routes {
            let segments: Vec<&str> = route.path.split('/').collect();
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let Some(at) = segments.iter().position(|s| s.starts_with('{')) else {
                if route.method == "GET" {
                    filtered += probe_list(&app, acme, &theirs, name, route).await;
                    listed += 1;
                }
                continue;
            };
            // `/items/{id}/restore`: the id of their item.
            let kind = segments[at - 1];
            let id = theirs.id_for(name, kind).unwrap_or_else(|| {
                panic!(
                    "no {name} `{kind}` for {} {}: add one to Everything::make",
                    route.method, route.path
                )
            });
            // Their id must be answered exactly as an id nobody has: the module's own
            // not-found (not the host's missing route), or a refusal that never looks.
            let mut answers = Vec::new();
            for id in [id.to_string(), uuid::Uuid::new_v4().to_string()] {
                let url = format!(
                    "/api/v1/{name}{}",
                    route.path.replacen(segments[at], &id, 1)
                );
                let body = body_for(&route.method);
                let response = app
                    .send(method.clone(), &url, Some(acme), body.as_ref())
                    .await;
                let (status, _, answer) = status_and_json(response).await;
                let what = format!("{} {url}: {status} {answer}", route.method);
                assert_eq!(
                    answer["type"], "https://eerp.dev/problems/module-error",
                    "{what}"
                );
                assert_eq!(theirs.leaked_in(&answer), None, "{what}");
                answers.push((status, answer["code"].clone(), what));
            }
            let (theirs_answer, nobodys) = (&answers[0], &answers[1]);
            assert_eq!(
                (theirs_answer.0, &theirs_answer.1),
                (nobodys.0, &nobodys.1),
                "their id and an unknown one are told apart: {} / {}",
                theirs_answer.2,
                nobodys.2
            );
            by_id += 1;
            not_found += usize::from(theirs_answer.0 == 404);
        }
    }
    // Their rows' bodies, sent as ours: whatever names one of their rows is refused.
    for (path, body) in &theirs.bodies {
        let response = app.send(Method::POST, path, Some(acme), Some(body)).await;
        let (status, _, answer) = status_and_json(response).await;
        let what = format!("POST {path} {body} as acme: {status} {answer}");
        match status {
            201 => assert_eq!(theirs.leaked_in(&answer), None, "{what}"),
            422 => assert_eq!(answer["code"], "unknown_reference", "{what}"),
            _ => panic!("{what}"),
        }
    }
    println!(
        "{by_id} routes with their ids ({not_found} answered 404), {listed} lists and reports, \
         {filtered} id filters"
    );
    assert!(
        not_found >= by_id * 9 / 10 && by_id >= 40 && listed >= 15 && filtered >= 10,
        "{by_id} routes with ids ({not_found} 404), {listed} lists, {filtered} filters"
    );
    assert_eq!(tenant_snapshot(&app, "globex").await, before);
}

/// Sends a list or report route as `token`'s tenant, plainly and with each of its id
/// filters set to one of `theirs`; none may show their rows. Returns the filters sent.
async fn probe_list(
    app: &TestApp,
    token: &str,
    theirs: &Everything,
    module: &str,
    route: &eerp_abi::manifest::Route,
) -> usize {
    let url = format!("/api/v1/{module}{}", route.path);
    let mut queries = vec![String::new()];
    for parameter in &route.parameters {
        if !parameter.name.ends_with("_id") {
            continue;
        }
        if let Some(id) = theirs.id_for(module, &parameter.name) {
            queries.push(format!("?{}={id}", parameter.name));
        }
    }
    for query in &queries {
        let response = app
            .send(Method::GET, &format!("{url}{query}"), Some(token), None)
            .await;
        let (status, _, answer) = status_and_json(response).await;
        let what = format!("GET {url}{query}: {status} {answer}");
        assert!(matches!(status, 200 | 400 | 404 | 422), "{what}");
        assert_eq!(theirs.leaked_in(&answer), None, "{what}");
    }
    queries.len() - 1
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
