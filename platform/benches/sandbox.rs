//! Sandbox overhead per request: fresh Store + instantiate + `eerp_handle` of the CRM
//! module's `POST /contacts/validate` route (no database), against the same handler
//! called natively. Engine variants show what the pooling knobs are worth.
//!
//! Run: `cargo bench -p eerp-platform --bench sandbox`. Figures: docs/performance.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use eerp_abi::envelope::{Principal, Request};
use eerp_platform::data_api::DataUsage;
use eerp_platform::data_api::RequestScope;
use eerp_platform::db::DbSession;
use eerp_platform::registry::BUILTIN_MODULES;
use eerp_platform::runtime::host::HostState;
use eerp_platform::runtime::host::events::EventState;
use eerp_platform::runtime::{
    EngineSettings, Invocation, LoadedModule, RouteMatch, build_engine, invoke,
};
use eerp_tenancy::Limits;
use eerp_tenancy::id::{ModuleName, TenantSlug};
use serde_json::json;

fn envelope() -> Request {
    Request {
        method: "POST".into(),
        route: "/contacts/validate".into(),
        params: BTreeMap::new(),
        query: BTreeMap::new(),
        body: serde_json::value::to_raw_value(&json!({
            "name": "  Ada Lovelace ", "email": "ADA@example.com", "status": "lead", "credit_limit": "1500.00"
        }))
        .expect("JSON"),
        principal: Principal {
            subject: "bench".into(),
            roles: vec!["admin".into()],
        },
        request_id: "bench".into(),
    }
}

fn scope(module: &LoadedModule) -> RequestScope {
    RequestScope {
        tenant: TenantSlug::parse("bench").expect("valid slug"),
        module: ModuleName::parse("crm").expect("valid name"),
        schema: "t_bench__crm".into(),
        model: Arc::clone(&module.model),
        grants: Vec::new(),
        limits: Limits::default(),
        db: DbSession::detached(),
        usage: DataUsage::default(),
    }
}

/// A Store set up as `invoke` sets it up, for the partial-path measurements.
fn fresh_store(engine: &wasmtime::Engine, module: &LoadedModule) -> wasmtime::Store<HostState> {
    let mut store = wasmtime::Store::new(
        engine,
        HostState::for_request(
            scope(module),
            "bench",
            EventState::new(module.events.clone()),
        ),
    );
    store.limiter(|state| &mut state.limiter);
    store.set_fuel(1_000_000).expect("fuel is on");
    store
        .fuel_async_yield_interval(Some(1_000_000))
        .expect("fuel is on");
    store
}

fn variants() -> Vec<(&'static str, EngineSettings)> {
    let tuned = EngineSettings::default();
    let with = |f: fn(&mut EngineSettings)| {
        let mut settings = tuned.clone();
        f(&mut settings);
        settings
    };
    vec![
        (
            "defaults (guards off, cow on, 1 MiB resident)",
            tuned.clone(),
        ),
        ("guards off, cow off", with(|s| s.memory_init_cow = false)),
        (
            "guards on, cow on",
            with(|s| s.virtual_memory_guards = true),
        ),
        (
            "guards on, cow off",
            with(|s| {
                s.virtual_memory_guards = true;
                s.memory_init_cow = false;
            }),
        ),
        ("nothing kept resident", with(|s| s.keep_resident_bytes = 0)),
        ("pagemap scan off", with(|s| s.pagemap_scan = false)),
        (
            "256 KiB resident",
            with(|s| s.keep_resident_bytes = 256 << 10),
        ),
        (
            "no fiber stack kept resident",
            with(|s| s.stack_keep_resident_bytes = 0),
        ),
        (
            "wasmtime pooling defaults (guards on, cow on, nothing resident)",
            with(|s| {
                s.virtual_memory_guards = true;
                s.keep_resident_bytes = 0;
                s.stack_keep_resident_bytes = 0;
            }),
        ),
    ]
}

fn sandbox(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = envelope();
    let bytes = serde_json::to_vec(&request).expect("encodes");
    let mut group = c.benchmark_group("per_request");

    let native = eerp_crm::module();
    let native_id = (0..8)
        .find(|i| native.manifest().routes[*i].path == "/contacts/validate")
        .expect("route") as i32;
    group.bench_function("native handler (decode + handle + encode)", |b| {
        b.iter(|| {
            let request: Request = serde_json::from_slice(&bytes).expect("decodes");
            let reply = native.dispatch(native_id, request).expect("valid contact");
            serde_json::to_vec(reply.body()).expect("encodes")
        })
    });

    for (name, settings) in variants() {
        let engine = build_engine(&settings).expect("engine");
        let module = rt
            .block_on(LoadedModule::load(&engine, BUILTIN_MODULES[0].1))
            .expect("crm loads");
        let RouteMatch::Found { handler_id, .. } = module.match_route("POST", "/contacts/validate")
        else {
            panic!("the validate route exists");
        };
        group.bench_function(format!("instantiate only: {name}"), |b| {
            b.iter(|| {
                let mut store = fresh_store(&engine, &module);
                rt.block_on(module.instance_pre().instantiate_async(&mut store))
                    .expect("instantiates");
            })
        });
        group.bench_function(format!("instantiate + eerp_alloc: {name}"), |b| {
            b.iter(|| {
                let mut store = fresh_store(&engine, &module);
                rt.block_on(async {
                    let instance = module
                        .instance_pre()
                        .instantiate_async(&mut store)
                        .await
                        .expect("instantiates");
                    let alloc = instance
                        .get_typed_func::<i32, i32>(&mut store, "eerp_alloc")
                        .expect("export");
                    alloc.call_async(&mut store, 512).await.expect("allocates")
                })
            })
        });
        let cpu = eerp_platform::runtime::cpu::CpuShare::alone(1);
        group.bench_function(format!("sandbox: {name}"), |b| {
            b.iter(|| {
                let report = rt.block_on(invoke(
                    &engine,
                    &module,
                    Invocation {
                        handler_id,
                        envelope: bytes.clone(),
                        scope: scope(&module),
                        request_id: "bench".into(),
                        cpu: cpu.clone(),
                    },
                ));
                let response = report.result.expect("the module answers");
                assert_eq!(response.status, 200);
                response
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sandbox);
criterion_main!(benches);
