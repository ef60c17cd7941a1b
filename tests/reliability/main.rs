//! The reliability suite: what one tenant, or one client, could do to every other tenant,
//! tried against the real app, real PostgreSQL and real HTTP.
//!
//! `cargo test -p eerp-e2e --test reliability -- --nocapture` also prints the figures
//! `docs/reliability.md` records. The tests take turns: each loads the machine, and a
//! neighbour's load would blur what the other measures.
// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod cancellation;
mod caps;
mod fairness;
mod restart;
mod shutdown;

use std::time::{Duration, Instant};

use eerp_e2e::{TestApp, TestOptions, server_url, spawn_app_with, with_database};
use eerp_tenancy::Limits;
use reqwest::Method;
use serde_json::json;

/// Held by each test while it runs.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// An app whose tenants' request rate is not what limits them (the suite's clients send
/// thousands of requests a second), with `pool` connections.
async fn unmetered_app(pool: Option<usize>) -> TestApp {
    spawn_app_with(TestOptions {
        limits: Limits {
            requests_per_second: 1_000_000,
            burst: 1_000_000,
            ..Limits::default()
        },
        db_pool_size: pool,
        ..TestOptions::default()
    })
    .await
}

/// A connection of the test's own to the app's database (not one of the app's pool).
async fn observer(app: &TestApp) -> tokio_postgres::Client {
    let url = with_database(&server_url(), &app.database);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Backends of the app's database other than `observer`'s: (running a statement, all).
async fn backends(observer: &tokio_postgres::Client) -> (i64, i64) {
    let row = observer
        .query_one(
            "SELECT count(*) FILTER (WHERE state <> 'idle'), count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND backend_type = 'client backend'
               AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Adds `count` contacts to `tenant`'s CRM table straight in SQL (far faster than the
/// API); `columns` is the SELECT list for `name, notes, phone, website` over `i`.
async fn seed_contacts(app: &TestApp, tenant: &str, count: u64, columns: &str) {
    let sql = format!(
        "INSERT INTO t_{tenant}__crm.contacts (name, notes, phone, website)
         SELECT {columns} FROM generate_series(1, {count}) AS i;
         ANALYZE t_{tenant}__crm.contacts"
    );
    observer(app).await.batch_execute(&sql).await.unwrap();
}

/// Creates one contact of `token`'s tenant through the API and returns its id.
async fn one_contact(app: &TestApp, token: &str) -> String {
    let response = app
        .send(
            Method::POST,
            "/api/v1/crm/contacts",
            Some(token),
            Some(&json!({"name": "Grace Hopper"})),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// What a closed-loop client saw: one entry per answered request.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    statuses: Vec<u16>,
    elapsed: Duration,
}

impl Seen {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn p99(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted
            .get(sorted.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or_default()
    }

    fn count(&self, status: u16) -> usize {
        self.statuses.iter().filter(|s| **s == status).count()
    }

    fn merge(&mut self, other: Seen) {
        self.latencies.extend(other.latencies);
        self.statuses.extend(other.statuses);
        self.elapsed = self.elapsed.max(other.elapsed);
    }
}

/// `connections` clients each sending `GET path` back to back for `length`, waiting as
/// long as `Retry-After` says when throttled, as a well-behaved client does.
async fn closed_loop(
    app: &TestApp,
    token: &str,
    path: &str,
    connections: usize,
    length: Duration,
) -> Seen {
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let client = reqwest::Client::new();
            let url = format!("{}{path}", app.address);
            let token = token.to_string();
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let started = Instant::now();
                while started.elapsed() < length {
                    let sent = Instant::now();
                    let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    response.bytes().await.unwrap();
                    seen.latencies.push(sent.elapsed());
                    seen.statuses.push(status);
                    if let Some(seconds) = retry_after {
                        tokio::time::sleep(Duration::from_secs(seconds)).await;
                    }
                }
                seen.elapsed = started.elapsed();
                seen
            })
        })
        .collect();
    let mut all = Seen::default();
    for task in tasks {
        all.merge(task.await.unwrap());
    }
    all
}
