//! One busy tenant cannot starve another: beside another tenant, a tenant executes wasm on
//! at most its share of the cores, holds at most its share of the pool's connections and of the sandbox slots,
//! pays back CPU and scan time it takes beyond a request's while others are active, and
//! is throttled (429/503 with `Retry-After`) beyond that, while the other tenant's
//! requests keep being answered.

use std::time::Duration;

use eerp_e2e::TestApp;

use super::{Seen, closed_loop, one_at_a_time, one_contact, seed_contacts, unmetered_app};

/// Each phase of a round.
const LENGTH: Duration = Duration::from_secs(3);

/// Rounds of (B alone, B beside A): interleaved, so a machine that slows down or speeds
/// up during the test (a shared VM does) weighs on both sides alike.
const ROUNDS: usize = 3;

/// One round: B's get-by-id alone, then while `busy` keeps 32 of A's `path` requests in
/// flight. A starts with B and ends after it, so B never runs beside an idle A.
async fn round(app: &TestApp, calm: &str, get: &str, busy: &str, path: &str) -> [Seen; 3] {
    let alone = closed_loop(app, calm, get, 8, LENGTH).await;
    let (beside, a) = tokio::join!(
        closed_loop(app, calm, get, 8, LENGTH),
        closed_loop(app, busy, path, 32, LENGTH + Duration::from_millis(500)),
    );
    // A counts as active for a moment after its last call, and its last scans keep
    // their permits back for up to 2 s: the next round's B alone must be alone and A
    // start afresh.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    [alone, beside, a]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(what: &str, rounds: &[[Seen; 3]]) {
    let throughput = |[alone, beside, _]: &[Seen; 3]| beside.per_second() / alone.per_second();
    let p99 =
        |[alone, beside, _]: &[Seen; 3]| beside.p99().as_secs_f64() / alone.p99().as_secs_f64();
    for (i, [alone, beside, a]) in rounds.iter().enumerate() {
        println!(
            "{what}, round {}: B alone {:.0} req/s p99 {:?}; beside A {:.0} req/s p99 {:?} \
             ({:.2} of its throughput, p99 {:.2}x); A's answers by status: {:?}",
            i + 1,
            alone.per_second(),
            alone.p99(),
            beside.per_second(),
            beside.p99(),
            beside.per_second() / alone.per_second(),
            beside.p99().as_secs_f64() / alone.p99().as_secs_f64(),
            a.statuses
                .iter()
                .fold(std::collections::BTreeMap::new(), |mut m, s| {
                    *m.entry(*s).or_insert(0) += 1;
                    m
                }),
        );
    }
    println!(
        "{what}, median of {} rounds: B keeps {:.2} of its throughput, its p99 is {:.2}x alone",
        rounds.len(),
        median(rounds.iter().map(throughput).collect()),
        median(rounds.iter().map(p99).collect()),
    );
}

fn assert_b_unharmed_and_a_throttled(alone: &Seen, beside: &Seen, a: &Seen) {
    for (phase, seen) in [("alone", alone), ("beside A", beside)] {
        assert!(!seen.statuses.is_empty(), "B was answered {phase}");
        assert_eq!(
            seen.count(200),
            seen.statuses.len(),
            "B got only 200s {phase}"
        );
    }
    assert!(a.count(429) + a.count(503) > 0, "A was throttled");
    assert!(
        a.statuses.iter().any(|s| *s != 429 && *s != 503),
        "A was still served"
    );
}

/// Tenant A with `count` contacts of `columns` (see `seed_contacts`) keeps 32 of `path` in
/// flight beside B's get-by-id; B is unharmed and A throttled, in every round.
async fn scenario(what: &str, count: u64, columns: &str, path: &str) {
    let _turn = one_at_a_time().await;
    let app = unmetered_app(None).await;
    let busy = app.admin_of("busy").await;
    seed_contacts(&app, "busy", count, columns).await;
    let calm = app.admin_of("calm").await;
    let get = format!("/api/v1/crm/contacts/{}", one_contact(&app, &calm).await);
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        rounds.push(round(&app, &calm, &get, &busy, path).await);
    }
    report(what, &rounds);
    for [alone, beside, a] in &rounds {
        assert_b_unharmed_and_a_throttled(alone, beside, a);
    }
}

#[tokio::test]
async fn a_tenant_running_cpu_heavy_calls_leaves_the_others_their_cores() {
    // 500 similar long names: comparing every pair runs into the fuel limit.
    let names = "'Contact number ' || lpad(i::text, 30, 'x'), NULL, NULL, NULL";
    scenario("CPU", 500, names, "/api/v1/crm/contacts/duplicates").await;
}

#[tokio::test]
async fn a_tenant_running_slow_queries_leaves_the_others_their_connections() {
    // Long names make the `q` scan slow: every row is read, none matches.
    let names = "repeat(md5(i::text), 8), NULL, NULL, NULL";
    let slow_list = "/api/v1/crm/contacts?q=zzzz&order=-credit_limit";
    scenario("connections", 300_000, names, slow_list).await;
}
