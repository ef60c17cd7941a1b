//! One busy tenant cannot starve another: beside another tenant, a tenant executes wasm on
//! at most its share of the cores, holds at most its share of the pool's connections and of the sandbox slots,
//! pays back CPU and scan time it takes beyond a request's while others are active, and
//! is throttled (429/503 with `Retry-After`) beyond that, while the other tenant's
//! requests keep being answered.

use std::time::Duration;

use eerp_e2e::TestApp;

use super::{Seen, closed_loop, one_at_a_time, one_contact, seed_contacts, unmetered_app};

/// The smallest median share of its alone throughput B keeps beside a CPU-heavy A: 0.02
/// before fair sharing, 0.62–1.00 since in release builds and 0.71–0.80 in debug ones
/// (`docs/reliability.md`, item 3).
const CPU_THROUGHPUT_FLOOR: f64 = 0.4;

/// The same beside a scanning A: before the scans paid their time back, B kept 0.15–0.30
/// (and without connection shares it waited out the pool); since, 0.47–0.88 in release
/// builds and 0.39–0.41 in debug ones with 2 s phases.
const SCAN_THROUGHPUT_FLOOR: f64 = 0.33;

/// The largest median ratio of B's p99 beside A to its p99 alone, CPU scenario: 33x
/// before fair sharing, 1.1–3.9x since. (Beside a scanning A, B's p99 was 3.7–8.8x both
/// before and after; only its throughput tells the two apart.)
const CPU_P99_CEILING: f64 = 10.0;

/// How long a scenario runs: `cargo test` runs 3 rounds of 3 s phases, enough for the
/// floors above (with 2 s phases A's first scans of a round, before any pay-back, weigh
/// too much); `tests/bench/fairness.sh` runs the full length whose figures
/// `docs/reliability.md` records (`EERP_FAIRNESS_ROUNDS`, `EERP_FAIRNESS_SECONDS`).
struct Length {
    /// Rounds of (B alone, B beside A): interleaved, so a machine that slows down or
    /// speeds up during the test (a shared VM does) weighs on both sides alike.
    rounds: usize,
    /// Each phase of a round.
    phase: Duration,
}

impl Length {
    fn from_env() -> Self {
        let number = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        Self {
            rounds: number("EERP_FAIRNESS_ROUNDS", 3) as usize,
            phase: Duration::from_secs(number("EERP_FAIRNESS_SECONDS", 3)),
        }
    }
}

/// One round: B's get-by-id alone, then while `busy` keeps 32 of A's `path` requests in
/// flight. A starts with B and ends after it, so B never runs beside an idle A.
async fn round(
    app: &TestApp,
    phase: Duration,
    (calm, get): (&str, &str),
    (busy, path): (&str, &str),
) -> [Seen; 3] {
    let alone = closed_loop(app, calm, get, 8, phase).await;
    let (beside, a) = tokio::join!(
        closed_loop(app, calm, get, 8, phase),
        closed_loop(app, busy, path, 32, phase + Duration::from_millis(500)),
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

fn throughput_share([alone, beside, _]: &[Seen; 3]) -> f64 {
    beside.per_second() / alone.per_second()
}

fn p99_ratio([alone, beside, _]: &[Seen; 3]) -> f64 {
    beside.p99().as_secs_f64() / alone.p99().as_secs_f64()
}

/// Prints every round and returns the medians: (B's throughput share, B's p99 ratio).
fn report(what: &str, rounds: &[[Seen; 3]]) -> (f64, f64) {
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
    let medians = (
        median(rounds.iter().map(throughput_share).collect()),
        median(rounds.iter().map(p99_ratio).collect()),
    );
    println!(
        "{what}, median of {} rounds: B keeps {:.2} of its throughput, its p99 is {:.2}x alone",
        rounds.len(),
        medians.0,
        medians.1,
    );
    medians
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
/// flight beside B's get-by-id: B is unharmed and A throttled in every round, and B keeps
/// at least `floor` of its throughput at the median. Returns the medians.
async fn scenario(what: &str, (count, columns): (u64, &str), path: &str, floor: f64) -> (f64, f64) {
    let _turn = one_at_a_time().await;
    let length = Length::from_env();
    let app = unmetered_app(None).await;
    let busy = app.admin_of("busy").await;
    seed_contacts(&app, "busy", count, columns).await;
    let calm = app.admin_of("calm").await;
    let get = format!("/api/v1/crm/contacts/{}", one_contact(&app, &calm).await);
    let mut rounds = Vec::new();
    for _ in 0..length.rounds {
        rounds.push(round(&app, length.phase, (&calm, &get), (&busy, path)).await);
    }
    let (share, p99) = report(what, &rounds);
    for [alone, beside, a] in &rounds {
        assert_b_unharmed_and_a_throttled(alone, beside, a);
    }
    assert!(
        share >= floor,
        "{what}: B kept a median {share:.2} of its throughput beside A, under the floor of \
         {floor}: A's load starves B"
    );
    (share, p99)
}

#[tokio::test]
async fn a_tenant_running_cpu_heavy_calls_leaves_the_others_their_cores() {
    // 500 similar long names: comparing every pair runs into the fuel limit.
    let names = "'Contact number ' || lpad(i::text, 30, 'x'), NULL, NULL, NULL";
    let duplicates = "/api/v1/crm/contacts/duplicates";
    let (_, p99) = scenario("CPU", (500, names), duplicates, CPU_THROUGHPUT_FLOOR).await;
    assert!(
        p99 <= CPU_P99_CEILING,
        "B's p99 beside a CPU-heavy A was a median {p99:.1}x its p99 alone, over \
         {CPU_P99_CEILING}x: A's calls hold the cores"
    );
}

#[tokio::test]
async fn a_tenant_running_slow_queries_leaves_the_others_their_connections() {
    // Long names make the `q` scan slow: every row is read, none matches.
    let names = "repeat(md5(i::text), 8), NULL, NULL, NULL";
    let slow_list = "/api/v1/crm/contacts?q=zzzz&order=-credit_limit";
    scenario(
        "connections",
        (300_000, names),
        slow_list,
        SCAN_THROUGHPUT_FLOOR,
    )
    .await;
}
