//! PostgreSQL crashing under load (`pg_ctl stop -m immediate`) and starting again: every
//! acknowledged write survives, nothing is half-written, requests fail fast with 503 while
//! it is down, `/readyz` follows, and the service recovers by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eerp_e2e::{TestOptions, create_database, start, test_settings};
use eerp_platform::dev::cluster::{ClusterOptions, LocalCluster};
use eerp_tenancy::Limits;
use serde_json::json;

use super::one_at_a_time;

/// One write as its client saw it.
struct Write {
    name: String,
    /// The [`Progress`] phase it was sent in.
    phase: usize,
    sent: Instant,
    latency: Duration,
    status: Option<u16>,
    problem_json: bool,
    id: Option<String>,
}

/// Where the test is: PostgreSQL up, crashed, started again. Writers and the readiness
/// probe count what they saw in each phase, and the test moves on when each phase has
/// shown what it is there to show, not after a fixed time.
#[derive(Default)]
struct Progress {
    phase: AtomicU8,
    /// Writes answered 201, by the phase they were sent in.
    acknowledged: [AtomicUsize; 3],
    /// Writes answered 503, by the phase they were sent in.
    refused: [AtomicUsize; 3],
    /// `/readyz` answers 503, then 200, by phase.
    unready: [AtomicUsize; 3],
    ready: [AtomicUsize; 3],
}

const UP: u8 = 0;
const DOWN: u8 = 1;
const AGAIN: u8 = 2;

impl Progress {
    fn phase(&self) -> usize {
        usize::from(self.phase.load(Ordering::Relaxed))
    }

    fn count(counters: &[AtomicUsize; 3], phase: u8) -> usize {
        counters[usize::from(phase)].load(Ordering::Relaxed)
    }

    /// Waits until `done` holds (see [`eerp_e2e::wait_until`]).
    async fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        eerp_e2e::wait_until(what, || async { done(self) }).await;
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_a_postgres_crash_and_the_service_recovers_by_itself() {
    let _turn = one_at_a_time().await;
    let dir = std::env::temp_dir().join(format!("eerp-crash-pg-{}", uuid::Uuid::new_v4().simple()));
    let cluster = Arc::new(
        tokio::task::spawn_blocking(move || {
            LocalCluster::start(
                &dir,
                ClusterOptions {
                    ephemeral: true,
                    durable: true,
                    server_options: "",
                },
            )
        })
        .await
        .unwrap()
        .expect("a private PostgreSQL starts"),
    );
    let database = "eerp_crash";
    create_database(&cluster.url("postgres"), database).await;
    let options = TestOptions {
        limits: Limits {
            requests_per_second: 1_000_000,
            burst: 1_000_000,
            ..Limits::default()
        },
        ..TestOptions::default()
    };
    let app = start(
        test_settings(cluster.url(database), options),
        database.into(),
    )
    .await;
    let token = app.admin_of("durable").await;

    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (stop, token, progress) = (stop.clone(), token.clone(), progress.clone());
            let url = format!("{}/api/v1/crm/contacts", app.address);
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap();
                let mut writes = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("writer {writer} write {n}");
                    let sent = Instant::now();
                    let phase = progress.phase();
                    let answer = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"name": name}))
                        .send()
                        .await;
                    let mut write = Write {
                        name,
                        phase,
                        sent,
                        latency: Duration::ZERO,
                        status: None,
                        problem_json: false,
                        id: None,
                    };
                    if let Ok(response) = answer {
                        write.status = Some(response.status().as_u16());
                        write.problem_json = response
                            .headers()
                            .get("content-type")
                            .is_some_and(|v| v == "application/problem+json");
                        let body: serde_json::Value = response.json().await.unwrap_or_default();
                        write.id = body["id"].as_str().map(str::to_string);
                    }
                    write.latency = sent.elapsed();
                    match write.status {
                        Some(201) => progress.acknowledged[phase].fetch_add(1, Ordering::Relaxed),
                        Some(503) => progress.refused[phase].fetch_add(1, Ordering::Relaxed),
                        _ => 0,
                    };
                    writes.push(write);
                }
                writes
            })
        })
        .collect();
    let readiness = tokio::spawn({
        let (stop, url) = (stop.clone(), format!("{}/readyz", app.ops_address));
        let progress = progress.clone();
        async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let phase = progress.phase();
                let status = reqwest::get(&url).await.map(|r| r.status().as_u16()).ok();
                match status {
                    Some(200) => progress.ready[phase].fetch_add(1, Ordering::Relaxed),
                    Some(503) => progress.unready[phase].fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
                seen.push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        }
    });

    progress
        .wait_until("20 writes acknowledged before the crash", |p| {
            Progress::count(&p.acknowledged, UP) >= 20
        })
        .await;
    let crashing = cluster.clone();
    tokio::task::spawn_blocking(move || crashing.crash())
        .await
        .unwrap()
        .expect("the server is killed");
    let down = Instant::now();
    progress.phase.store(DOWN, Ordering::Relaxed);
    progress
        .wait_until("writes refused and /readyz unready while down", |p| {
            Progress::count(&p.refused, DOWN) >= 20 && Progress::count(&p.unready, DOWN) >= 2
        })
        .await;
    let restarting = cluster.clone();
    let restarted_at = Instant::now();
    tokio::task::spawn_blocking(move || restarting.start_again())
        .await
        .unwrap()
        .expect("the server starts again");
    let up = Instant::now();
    progress.phase.store(AGAIN, Ordering::Relaxed);
    progress
        .wait_until(
            "20 writes acknowledged and /readyz ready after the restart",
            |p| {
                Progress::count(&p.acknowledged, AGAIN) >= 20
                    && Progress::count(&p.ready, AGAIN) >= 1
            },
        )
        .await;
    stop.store(true, Ordering::Relaxed);
    let mut writes = Vec::new();
    for writer in writers {
        writes.extend(writer.await.unwrap());
    }
    let readiness = readiness.await.unwrap();

    // While it was down (sent after the crash, answered before the restart), every write
    // failed with a 503 problem.
    let while_down: Vec<&Write> = writes
        .iter()
        .filter(|w| w.phase == usize::from(DOWN) && w.sent + w.latency < restarted_at)
        .collect();
    assert!(
        !while_down.is_empty(),
        "writes were tried while PostgreSQL was down"
    );
    for write in &while_down {
        assert_eq!(write.status, Some(503), "{}", write.name);
        assert!(write.problem_json, "{}", write.name);
    }
    let slowest_refusal = while_down
        .iter()
        .map(|w| w.latency)
        .max()
        .unwrap_or_default();
    let recovered = writes
        .iter()
        .filter(|w| w.sent > up && w.status == Some(201))
        .map(|w| w.sent + w.latency - up)
        .min()
        .expect("writes succeed again after the restart");
    let ready = |status: u16, from: Instant, to: Instant| {
        readiness
            .iter()
            .any(|(at, s)| *at > from && *at < to && *s == Some(status))
    };
    assert!(
        ready(503, down, up),
        "/readyz went unready while PostgreSQL was down"
    );
    assert!(ready(200, up, Instant::now()), "/readyz came back");

    // Every acknowledged write is there; nothing else but writes that were tried.
    let rows = app
        .state
        .pool
        .get()
        .await
        .unwrap()
        .query("SELECT id::text, name FROM t_durable__crm.contacts", &[])
        .await
        .unwrap();
    let stored: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let acknowledged: Vec<&Write> = writes.iter().filter(|w| w.status == Some(201)).collect();
    for write in &acknowledged {
        let id = write.id.as_ref().expect("a 201 names its id");
        assert_eq!(
            stored.get(id),
            Some(&write.name),
            "acknowledged {id} is stored"
        );
    }
    let tried: std::collections::HashSet<&str> = writes.iter().map(|w| w.name.as_str()).collect();
    assert!(stored.values().all(|name| tried.contains(name.as_str())));
    let unacknowledged_but_stored = stored.len() - acknowledged.len();
    println!(
        "PostgreSQL crash: {} writes acknowledged, all stored, 0 lost; {} stored whose answer \
         was lost with the connection; {} refused while down, slowest refusal {:?}; first \
         write {:?} after PostgreSQL was back",
        acknowledged.len(),
        unacknowledged_but_stored,
        while_down.len(),
        slowest_refusal,
        recovered
    );
    let idle_in_transaction = app
        .scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'")
        .await;
    assert_eq!(idle_in_transaction, 0);
    drop(app);
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap();
}
