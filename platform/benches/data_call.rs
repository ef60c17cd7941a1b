//! What one data call costs, layer by layer, against a real PostgreSQL: the CRM module's
//! `GET /contacts/{id}` in a fresh sandbox, the host's side of its data call alone
//! (`data_api::execute`: decode the operation, build the SQL, run it, encode the row), the
//! statement alone (the same SQL, prepared, on the same pool), and, in the same run, the
//! sandbox with no data call (`POST /contacts/validate`). The differences are the
//! boundary: host side minus statement is the host's encoding and SQL building; sandbox
//! with the call minus host side minus sandbox without a call is the guest's encoding and
//! decoding and the host call itself.
//!
//! Run: `cargo bench -p eerp-platform --bench data_call` (PostgreSQL at
//! `EERP_BENCH_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`; the
//! bench creates its own database there and drops it). Figures: docs/performance.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use eerp_abi::data::DataOp;
use eerp_abi::envelope::{Principal, Request};
use eerp_platform::data_api::query;
use eerp_platform::data_api::{self, DataUsage, RequestScope};
use eerp_platform::db::{self, ConnectionShare, Connections, DbSession, Pool};
use eerp_platform::migrations::plan::plan;
use eerp_platform::registry::BUILTIN_MODULES;
use eerp_platform::runtime::cpu::CpuShare;
use eerp_platform::runtime::{
    EngineSettings, Invocation, LoadedModule, RouteMatch, build_engine, invoke,
};
use eerp_tenancy::Limits;
use eerp_tenancy::id::{ModuleName, TenantSlug};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::Semaphore;

const SCHEMA: &str = "t_bench__crm";

/// A database of its own on the server, dropped when the bench ends.
struct BenchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create() -> Self {
        let admin_url = std::env::var("EERP_BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("eerp_bench_data_call_{}", std::process::id());
        admin(&admin_url, &format!("CREATE DATABASE {name}")).await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("EERP_BENCH_DATABASE_URL names no database: {admin_url}"),
        };
        Self {
            admin_url,
            name,
            url,
        }
    }

    async fn drop_now(&self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        admin(&self.admin_url, &sql).await;
    }
}

async fn admin(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"));
    let driver = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = driver.await;
}

/// The CRM module's schema with 10,000 contacts; returns one contact's id.
async fn seed(pool: &Pool, module: &LoadedModule) -> String {
    let (steps, _) = plan(SCHEMA, &module.migrations).expect("the CRM migrations plan");
    let conn = pool.get().await.expect("a connection");
    conn.batch_execute(&format!("CREATE SCHEMA {SCHEMA}"))
        .await
        .expect("schema");
    for statement in steps.iter().flat_map(|step| &step.statements) {
        conn.batch_execute(statement).await.expect(statement);
    }
    conn.batch_execute(&format!(
        "INSERT INTO {SCHEMA}.contacts (name, email, status) \
         SELECT 'Contact ' || n, 'c' || n || '@seed.test', 'lead' FROM generate_series(1, 10000) n; \
         ANALYZE {SCHEMA}.contacts"
    ))
    .await
    .expect("contacts");
    let row = conn
        .query_one(
            &format!("SELECT id::text FROM {SCHEMA}.contacts ORDER BY email LIMIT 1"),
            &[],
        )
        .await
        .expect("a contact");
    row.get(0)
}

fn scope(module: &LoadedModule, connections: &Connections) -> RequestScope {
    RequestScope {
        tenant: TenantSlug::parse("bench").expect("valid slug"),
        module: ModuleName::parse("crm").expect("valid name"),
        schema: SCHEMA.into(),
        model: Arc::clone(&module.model),
        grants: Vec::new(),
        limits: Limits::default(),
        db: DbSession::new(connections.clone()),
        usage: DataUsage::default(),
    }
}

fn envelope(
    method: &str,
    route: &str,
    params: BTreeMap<String, String>,
    body: serde_json::Value,
) -> Vec<u8> {
    let request = Request {
        method: method.into(),
        route: route.into(),
        params,
        query: BTreeMap::new(),
        body: serde_json::value::to_raw_value(&body).expect("JSON"),
        principal: Principal {
            subject: "bench".into(),
            roles: vec!["admin".into()],
        },
        request_id: "bench".into(),
    };
    serde_json::to_vec(&request).expect("encodes")
}

fn handler(module: &LoadedModule, method: &str, path: &str) -> (i32, BTreeMap<String, String>) {
    match module.match_route(method, path) {
        RouteMatch::Found {
            handler_id, params, ..
        } => (handler_id, params),
        _ => panic!("{method} {path} is a CRM route"),
    }
}

fn data_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let database = rt.block_on(BenchDatabase::create());
    let engine = build_engine(&EngineSettings::default()).expect("engine");
    let module = rt
        .block_on(LoadedModule::load(&engine, BUILTIN_MODULES[0].1))
        .expect("crm loads");
    let pool = rt.block_on(async {
        db::create_pool(&database.url, 4, Duration::from_secs(5), 128).expect("pool")
    });
    let id = rt.block_on(seed(&pool, &module));
    let connections = Connections {
        pools: Arc::from(vec![pool.clone()]),
        lanes: db::WorkerLanes::of(0, 1, 1),
        affinity: 0,
        share: ConnectionShare {
            permits: Arc::new(Semaphore::new(4)),
            size: 4,
            active_tenants: Arc::new(AtomicUsize::new(1)),
        },
        wait: Duration::from_secs(5),
    };
    let cpu = CpuShare::alone(1);
    let mut group = c.benchmark_group("data_call");

    let op = DataOp::Get {
        module: None,
        table: "contacts".into(),
        id: id.clone(),
        include_deleted: false,
    };
    let statement = query::build(SCHEMA, &module.model, &op).expect("a get builds");
    group.bench_function("statement alone (the get's SQL, prepared)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let conn = pool.get().await.expect("a connection");
                let rows = db::query(&conn, &statement.sql, &statement.binds())
                    .await
                    .expect("the get runs");
                let rows: Vec<_> = rows.collect().await;
                assert_eq!(rows.len(), 1);
            })
        })
    });

    let request = serde_json::to_vec(&op).expect("encodes");
    group.bench_function(
        "host side (data_api::execute: decode, build, run, encode)",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut scope = scope(&module, &connections);
                    let reply = data_api::execute(&mut scope, &request).await;
                    assert!(matches!(reply, data_api::Reply::Ok(_)), "the get answers");
                    scope.db.finish(true).await.expect("the session ends");
                })
            })
        },
    );

    let path = format!("/contacts/{id}");
    let (get_id, params) = handler(&module, "GET", &path);
    let get = envelope("GET", "/contacts/{id}", params, serde_json::Value::Null);
    let (validate_id, _) = handler(&module, "POST", "/contacts/validate");
    let validate = envelope(
        "POST",
        "/contacts/validate",
        BTreeMap::new(),
        json!({ "name": "  Ada Lovelace ", "email": "ADA@example.com", "credit_limit": "1500.00" }),
    );
    for (name, handler_id, bytes) in [
        ("sandbox, one data call (GET /contacts/{id})", get_id, &get),
        (
            "sandbox, no data call (POST /contacts/validate)",
            validate_id,
            &validate,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let report = invoke(
                        &engine,
                        &module,
                        Invocation {
                            handler_id,
                            envelope: bytes.clone(),
                            scope: scope(&module, &connections),
                            request_id: "bench".into(),
                            cpu: cpu.clone(),
                        },
                    )
                    .await;
                    let response = report.result.expect("the module answers");
                    assert_eq!(response.status, 200);
                    report.db.finish(true).await.expect("the session ends");
                })
            })
        });
    }
    group.finish();
    drop(pool);
    rt.block_on(database.drop_now());
}

criterion_group!(benches, data_call);
criterion_main!(benches);
