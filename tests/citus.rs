//! EERP on Citus, for real (docs/scaling.md): a coordinator and two workers on loopback,
//! throwaway clusters with the Citus extension that `../shared/citus/build.sh` installs,
//! and EERP serving the coordinator with schema-based sharding on. Tenants' module schemas
//! become distributed schemas; moving them between workers changes no answer; the fleet
//! migration still applies; a write across two nodes is still all or nothing.
//!
//! `cargo test -p eerp-e2e --features citus-e2e --test citus` (`.ci/run` builds Citus
//! first).

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it did not expect"
)]

use std::collections::BTreeSet;

use eerp_e2e::probe::{Action, Probe};
use eerp_e2e::{TestApp, TestOptions, start, status_and_json, test_settings};
use eerp_platform::dev::cluster::{ClusterOptions, LocalCluster};
use eerp_platform::upgrade::{MigrateOptions, migrate};
use reqwest::Method;
use serde_json::{Value, json};

/// Citus needs preloading, and prepared transactions for writes that span nodes. Its
/// nodes talk without TLS on loopback (with TLS, libpq would look for client certificates
/// in the home of whoever started the test, which `postgres` may not read).
const CITUS_OPTIONS: &str = "-c shared_preload_libraries=citus -c max_prepared_transactions=100 \
                             -c citus.node_conninfo=sslmode=disable";

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// A coordinator and two workers, database `eerp` on each.
struct Citus {
    coordinator: LocalCluster,
    workers: Vec<LocalCluster>,
}

impl Citus {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("eerp-citus-{}", std::process::id()));
        let node = |name: &str| {
            let options = ClusterOptions {
                ephemeral: true,
                durable: false,
                server_options: CITUS_OPTIONS,
            };
            LocalCluster::start(&dir.join(name), options).unwrap_or_else(|e| {
                panic!("cannot start the Citus {name} (built by ../shared/citus/build.sh?): {e}")
            })
        };
        let coordinator = node("coordinator");
        let workers = vec![node("worker1"), node("worker2")];
        for node in std::iter::once(&coordinator).chain(&workers) {
            let server = client(&node.url("postgres")).await;
            server.batch_execute("CREATE DATABASE eerp").await.unwrap();
            let eerp = client(&node.url("eerp")).await;
            eerp.batch_execute("CREATE EXTENSION citus").await.unwrap();
        }
        let eerp = client(&coordinator.url("eerp")).await;
        let port = i32::from(coordinator.port());
        eerp.execute(
            "SELECT citus_set_coordinator_host('127.0.0.1', $1)",
            &[&port],
        )
        .await
        .unwrap();
        for worker in &workers {
            let port = i32::from(worker.port());
            eerp.execute("SELECT citus_add_node('127.0.0.1', $1)", &[&port])
                .await
                .unwrap();
        }
        // As an operator would: before EERP starts, for every schema created from now on.
        eerp.batch_execute("ALTER DATABASE eerp SET citus.enable_schema_based_sharding = on")
            .await
            .unwrap();
        Self {
            coordinator,
            workers,
        }
    }

    async fn distributed_schemas(&self) -> Vec<String> {
        let eerp = client(&self.coordinator.url("eerp")).await;
        let rows = eerp
            .query(
                "SELECT schema_name::text FROM citus_schemas ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// The workers (by index) that hold every shard of `schema`'s tables, read from each
    /// worker's own `pg_class`, not from the coordinator's metadata. Panics when a worker
    /// holds only some of them.
    async fn holders_of(&self, schema: &str) -> BTreeSet<usize> {
        let eerp = client(&self.coordinator.url("eerp")).await;
        let shards: Vec<String> = eerp
            .query(
                "SELECT c.relname || '_' || s.shardid FROM pg_dist_shard s
                 JOIN pg_class c ON c.oid = s.logicalrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
                &[&schema],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!shards.is_empty(), "{schema} has no distributed tables");
        let mut holders = BTreeSet::new();
        for (index, worker) in self.workers.iter().enumerate() {
            let local = client(&worker.url("eerp")).await;
            // Citus hides shards from catalog queries unless asked.
            local
                .batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
                .await
                .unwrap();
            let held: i64 = local
                .query_one(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relname = ANY($2)",
                    &[&schema, &shards],
                )
                .await
                .unwrap()
                .get(0);
            assert!(
                held == 0 || held as usize == shards.len(),
                "worker {index} holds {held} of {schema}'s {} shards",
                shards.len()
            );
            if held > 0 {
                holders.insert(index);
            }
        }
        holders
    }

    /// Moves every schema of `tenant` to worker `index`, as docs/scaling.md's runbook does.
    async fn place(&self, tenant: &str, index: usize) {
        let prefix = format!("t_{tenant}__");
        for schema in self.distributed_schemas().await {
            if schema.starts_with(&prefix) && !self.holders_of(&schema).await.contains(&index) {
                self.move_schema(&schema, index).await;
            }
        }
    }

    /// Moves `schema` to worker `index` and drops the old copy at once (a move leaves it
    /// for Citus' maintenance to drop later).
    async fn move_schema(&self, schema: &str, index: usize) {
        let eerp = client(&self.coordinator.url("eerp")).await;
        let port = self.workers[index].port();
        // Two round trips: one simple query would run both in one transaction.
        let moved = format!(
            "SELECT citus_schema_move('{schema}'::regnamespace, '127.0.0.1', {port}, 'block_writes')"
        );
        for sql in [moved.as_str(), "CALL citus_cleanup_orphaned_resources()"] {
            eerp.batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("moving {schema} to worker {index}: {e:?}"));
        }
    }
}

/// A tenant of `app` with `modules`, and its admin's token.
async fn tenant(app: &TestApp, slug: &str, modules: &[&str]) -> String {
    let body = json!({"slug": slug, "modules": modules});
    let (status, created) = app.admin(Method::POST, "/tenants", Some(&body)).await;
    assert_eq!(status, 201, "tenant {slug}: {created}");
    app.token(
        &eerp_tenancy::id::TenantSlug::parse(slug).unwrap(),
        &["admin"],
    )
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let response = app.send(method, path, Some(token), body.as_ref()).await;
    let (status, _, body) = status_and_json(response).await;
    (status, body)
}

async fn create_contact(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    call(app, token, Method::POST, "/api/v1/crm/contacts", Some(body)).await
}

/// A module that hears `crm.contact_created` and records it in its own table.
fn ledger() -> Probe {
    let record = Action {
        calls: vec![json!({"op": "insert", "table": "items", "values": {"label": "heard"}})],
        ..Action::answer(json!({"status": 200}))
    };
    Probe::new("ledger", "1.0.0").on("crm.contact_created", record)
}

async fn install(app: &TestApp, probe: &Probe, tenant: &str) {
    let (status, body) = app.upload_module(probe.wasm()).await;
    assert!(
        status == 201 || status == 200,
        "{} stored: {body}",
        probe.name
    );
    let path = format!("/tenants/{tenant}/modules/{}", probe.name);
    let (status, body) = app.admin(Method::PUT, &path, None).await;
    assert_eq!(status, 200, "{} enabled for {tenant}: {body}", probe.name);
}

#[tokio::test]
async fn tenants_spread_over_citus_workers_keep_their_data_migrations_and_atomic_writes() {
    let citus = Citus::start().await;
    let app = start(
        test_settings(citus.coordinator.url("eerp"), TestOptions::default()),
        "eerp".into(),
    )
    .await;

    // Each (tenant, module) schema is distributed; the catalog stays a local schema.
    let north = tenant(&app, "north", &["crm", "inventory"]).await;
    let south = tenant(&app, "south", &["crm", "inventory"]).await;
    assert_eq!(
        citus.distributed_schemas().await,
        [
            "t_north__crm",
            "t_north__inventory",
            "t_south__crm",
            "t_south__inventory"
        ]
    );

    // Writes and reads over HTTP, through the coordinator.
    let mut answers = Vec::new();
    for token in [&north, &south] {
        let mut last = Value::Null;
        for n in 0..5 {
            let body =
                json!({"name": format!("Contact {n}"), "email": format!("c{n}@example.com")});
            let (status, created) = create_contact(&app, token, body).await;
            assert_eq!(status, 201, "{created}");
            last = created;
        }
        let path = format!("/api/v1/crm/contacts/{}", last["id"].as_str().unwrap());
        let (status, updated) = call(
            &app,
            token,
            Method::PATCH,
            &path,
            Some(json!({"phone": "+44 1"})),
        )
        .await;
        assert_eq!(
            (status, &updated["phone"]),
            (200, &json!("+44 1")),
            "{updated}"
        );
        let (status, list) = call(
            &app,
            token,
            Method::GET,
            "/api/v1/crm/contacts?limit=50",
            None,
        )
        .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["data"].as_array().map(Vec::len), Some(5), "{list}");
        answers.push((path, list));
    }

    // North on one worker, south on the other, each tenant's schemas together.
    citus.place("north", 0).await;
    citus.place("south", 1).await;
    for (schema, worker) in [
        ("t_north__crm", 0),
        ("t_north__inventory", 0),
        ("t_south__crm", 1),
        ("t_south__inventory", 1),
    ] {
        assert_eq!(
            citus.holders_of(schema).await,
            BTreeSet::from([worker]),
            "{schema}"
        );
    }
    for (token, (path, list)) in [&north, &south].into_iter().zip(&answers) {
        let (status, again) = call(
            &app,
            token,
            Method::GET,
            "/api/v1/crm/contacts?limit=50",
            None,
        )
        .await;
        assert_eq!(
            (status, &again),
            (200, list),
            "the same answer after the move"
        );
        let (status, one) = call(&app, token, Method::GET, path, None).await;
        assert_eq!((status, &one["phone"]), (200, &json!("+44 1")), "{one}");
    }

    // The fleet migration still applies: south's inventory schema, dropped and rewound,
    // is made again by `eerp migrate`, distributed again.
    let conn = app.state.pool.get().await.unwrap();
    conn.batch_execute(
        "DROP SCHEMA t_south__inventory CASCADE;
         DELETE FROM eerp.migration_history h USING eerp.tenants t
             WHERE h.tenant_id = t.id AND t.slug = 'south' AND h.module = 'inventory';
         UPDATE eerp.tenant_modules m SET version = 0 FROM eerp.tenants t
             WHERE m.tenant_id = t.id AND t.slug = 'south' AND m.module = 'inventory';",
    )
    .await
    .unwrap();
    drop(conn);
    let options = MigrateOptions {
        database_url: citus.coordinator.url("eerp"),
        extra_modules: Vec::new(),
        workers: 2,
    };
    let outcomes = migrate(&options).await.unwrap();
    let inventory = outcomes.iter().find(|o| o.module == "inventory").unwrap();
    assert_eq!(
        (inventory.run["done"].as_i64(), inventory.failed()),
        (Some(1), 0),
        "{}",
        inventory.run
    );
    assert!(
        citus
            .distributed_schemas()
            .await
            .contains(&"t_south__inventory".to_string())
    );
    let (status, items) = call(&app, &south, Method::GET, "/api/v1/inventory/items", None).await;
    assert_eq!(status, 200, "{items}");

    // A write across two nodes: north's contact (worker 0) and the ledger's record of it
    // (worker 1) commit together, and roll back together when a later subscriber refuses.
    install(&app, &ledger(), "north").await;
    citus.place("north", 0).await;
    citus.move_schema("t_north__ledger", 1).await;
    assert_eq!(
        citus.holders_of("t_north__ledger").await,
        BTreeSet::from([1])
    );
    let contacts = "SELECT count(*) FROM t_north__crm.contacts";
    let heard = "SELECT count(*) FROM t_north__ledger.items";
    let (status, body) = create_contact(&app, &north, json!({"name": "Ada"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (app.scalar(contacts).await, app.scalar(heard).await),
        (6, 1)
    );

    let refusal = json!({"status": 409, "body": {"title": "Vetoed", "detail": "no new contacts"}});
    let vetoer = Probe::new("vetoer", "1.0.0").on("crm.contact_created", Action::answer(refusal));
    install(&app, &vetoer, "north").await;
    let (status, body) = create_contact(&app, &north, json!({"name": "Bob"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        (app.scalar(contacts).await, app.scalar(heard).await),
        (6, 1),
        "both nodes' writes rolled back"
    );
}
