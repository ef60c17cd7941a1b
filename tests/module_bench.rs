//! `eerp-module-bench`: figures for the module runtime in `docs/performance.md`, against
//! in-process apps on a throwaway PostgreSQL (or `DATABASE_URL`), over loopback HTTP.
//!
//! - upload-to-first-served: a new version of a WAT probe module is uploaded to replica
//!   1, the tenant upgraded to it, and both replicas polled until they serve it;
//! - the cost of one event handler: the same emitting route with no subscriber and with
//!   one, requests in sequence.
//!
//! Run: `cargo run --release -p eerp-e2e --features bench --bin eerp-module-bench`.

use std::time::{Duration, Instant};

use eerp_e2e::probe::{Action, Probe};
use eerp_e2e::{TestApp, TestOptions, spawn_app, spawn_app_with, status_and_json};
use eerp_tenancy::Limits;
use reqwest::Method;
use serde_json::json;

const ROLLOUTS: u32 = 10;
const REQUESTS: usize = 2_000;

async fn upload(app: &TestApp, probe: &Probe) {
    let (status, body) = app.upload_module(probe.wasm()).await;
    assert_eq!(status, 201, "{body}");
}

async fn serve(app: &TestApp, tenant: &str, module: &str, version: &str) {
    let (status, body) = app.serve_version(tenant, module, version).await;
    assert_eq!(status, 200, "{body}");
}

/// Polls `GET /version` until `app` answers `version`.
async fn until_served(app: &TestApp, token: &str, version: &str, since: Instant) -> Duration {
    loop {
        let response = app
            .send(Method::GET, "/api/v1/probe/version", Some(token), None)
            .await;
        let (_, _, body) = status_and_json(response).await;
        if body["version"] == version {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "never served {version}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: median {:.1} ms, min {:.1} ms, max {:.1} ms ({} runs)",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

async fn rollout() {
    let first = spawn_app().await;
    let second = spawn_app_with(TestOptions {
        database: Some(first.database.clone()),
        ..TestOptions::default()
    })
    .await;
    let token = first.admin_of("acme").await;
    let (mut stored, mut one, mut two) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROLLOUTS {
        let version = format!("1.0.{i}");
        let probe = Probe::new("probe", &version);
        let started = Instant::now();
        upload(&first, &probe).await;
        stored.push(started.elapsed());
        serve(&first, "acme", "probe", &version).await;
        one.push(until_served(&first, &token, &version, started).await);
        two.push(until_served(&second, &token, &version, started).await);
    }
    summary("upload (checks, compile, dry run, store)", stored);
    let (file, crm) = eerp_platform::registry::BUILTIN_MODULES[0];
    let mut loads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        eerp_platform::runtime::LoadedModule::load(&first.state.engine, crm)
            .await
            .expect("CRM loads");
        loads.push(started.elapsed());
    }
    summary(
        &format!("checks and compile of {file} ({} KiB)", crm.len() / 1024),
        loads,
    );
    summary("upload to first served, same replica", one);
    summary("upload to first served, second replica", two);
}

async fn event_cost() {
    let limits = Limits {
        requests_per_second: 1_000_000,
        burst: 1_000_000,
        ..Limits::default()
    };
    let app = spawn_app_with(TestOptions {
        limits,
        ..TestOptions::default()
    })
    .await;
    let token = app.admin_of("acme").await;
    let fire = Action::answer(json!({"status": 200})).emitting("emitter.fired", json!({"n": 1}));
    let mut emitter = Probe::new("emitter", "1.0.0").route("POST", "/fire", fire);
    emitter.capabilities = vec!["log", "data", "events"];
    emitter.events = vec!["emitter.fired".into()];
    let listener =
        Probe::new("listener", "1.0.0").on("emitter.fired", Action::answer(json!({"status": 200})));
    upload(&app, &emitter).await;
    upload(&app, &listener).await;
    serve(&app, "acme", "emitter", "1.0.0").await;
    let measure = async |label: &str| {
        let mut samples = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let started = Instant::now();
            let response = app
                .send(Method::POST, "/api/v1/emitter/fire", Some(&token), None)
                .await;
            assert_eq!(response.status(), 200);
            samples.push(started.elapsed());
        }
        samples.sort();
        let p50 = samples[REQUESTS / 2];
        println!(
            "{label}: p50 {:.0} µs, p99 {:.0} µs",
            p50.as_secs_f64() * 1e6,
            samples[REQUESTS * 99 / 100].as_secs_f64() * 1e6
        );
        p50
    };
    measure("warm-up").await;
    let without = measure("emitting route, no subscriber").await;
    serve(&app, "acme", "listener", "1.0.0").await;
    let with = measure("emitting route, one subscriber").await;
    println!(
        "one event handler invocation adds {:.0} µs at p50",
        (with.as_secs_f64() - without.as_secs_f64()) * 1e6
    );
}

#[tokio::main]
async fn main() {
    rollout().await;
    event_cost().await;
}
