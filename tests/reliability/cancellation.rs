//! A client that hangs up mid-request does not leave its SQL running: the host cancels
//! the statement and counts the connection as busy until its backend is idle, so live
//! backends never exceed the pool, and other tenants are served throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;

use super::{
    backends, closed_loop, observer, one_at_a_time, one_contact, seed_contacts, unmetered_app,
};

const POOL: usize = 4;
const SLOW_LIST: &str = "/api/v1/crm/contacts?q=zzzz&order=-credit_limit";

#[tokio::test]
async fn clients_that_hang_up_never_leave_more_backends_running_than_the_pool() {
    let _turn = one_at_a_time().await;
    let app = unmetered_app(Some(POOL)).await;
    let hasty = app.admin_of("hasty").await;
    let steady = app.admin_of("steady").await;
    let id = one_contact(&app, &steady).await;
    // Long names make the `q` scan slow: every row is read, none matches.
    seed_contacts(
        &app,
        "hasty",
        400_000,
        "repeat(md5(i::text), 8), NULL, NULL, NULL",
    )
    .await;
    let started = Instant::now();
    let full = app.send(Method::GET, SLOW_LIST, Some(&hasty), None).await;
    assert_eq!(full.status(), 200);
    // Hang up a third of the way through, whatever this machine's speed.
    let hang_up_after = (started.elapsed() / 3).max(Duration::from_millis(5));

    let watcher = observer(&app).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (most_running, most_open) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicI64::new(0)));
    let sampler = tokio::spawn({
        let (stop, most_running, most_open) =
            (stop.clone(), most_running.clone(), most_open.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let (running, open) = backends(&watcher).await;
                most_running.fetch_max(running, Ordering::Relaxed);
                most_open.fetch_max(open, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            watcher
        }
    });
    // Long enough for several hang-ups whatever this machine's speed: the tenant's share
    // admits two scans at a time, each dropped after `hang_up_after` and paid back after.
    let storm = (hang_up_after * 40).max(Duration::from_secs(3));
    let hang_ups: Vec<_> = (0..12)
        .map(|_| {
            let client = reqwest::Client::builder()
                .timeout(hang_up_after)
                .build()
                .unwrap();
            let url = format!("{}{SLOW_LIST}", app.address);
            let token = hasty.clone();
            tokio::spawn(async move {
                // (hung up at the timeout, answered before it)
                let (mut hung_up, mut answered) = (0, 0);
                let started = Instant::now();
                while started.elapsed() < storm {
                    // Dropped at the timeout: the connection is reset mid-request.
                    match client.get(&url).bearer_auth(&token).send().await {
                        Err(e) if e.is_timeout() => hung_up += 1,
                        Err(e) => panic!("the slow list failed otherwise than by a hang-up: {e}"),
                        Ok(response) => {
                            // Refused (the tenant's share is busy): try again shortly.
                            answered += 1;
                            assert!(
                                matches!(response.status().as_u16(), 200 | 429 | 503),
                                "the slow list answered {}",
                                response.status()
                            );
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (hung_up, answered)
            })
        })
        .collect();
    let served = closed_loop(
        &app,
        &steady,
        &format!("/api/v1/crm/contacts/{id}"),
        2,
        storm,
    )
    .await;
    let (mut hung_up, mut answered) = (0, 0);
    for task in hang_ups {
        let (dropped, served) = task.await.unwrap();
        hung_up += dropped;
        answered += served;
    }
    stop.store(true, Ordering::Relaxed);
    let watcher = sampler.await.unwrap();

    let (running, open) = (
        most_running.load(Ordering::Relaxed),
        most_open.load(Ordering::Relaxed),
    );
    println!(
        "hang-up loop: {hung_up} requests dropped after {hang_up_after:?} ({answered} answered \
         before it); at most {running} \
         backends running, {open} open (request pools {POOL}, plus the background pool and the \
         catalog listener); the other \
         tenant: {} requests, p99 {:?}",
        served.latencies.len(),
        served.p99()
    );
    // Each scan the tenant gets pays back its time before the next (fair sharing), so
    // most tries are refused at once; the hang-ups that count are the admitted ones.
    assert!(
        hung_up >= 5,
        "the loop hung up often: {hung_up} times ({answered} answered before the timeout)"
    );
    // The scans did reach the database (the pool's limit is what held them back), so
    // there were statements to cancel.
    assert!(
        running > 0,
        "no statement of the slow list was ever seen running"
    );
    assert!(
        running <= POOL as i64,
        "{running} backends ran at once, pool {POOL}"
    );
    // The request pools' connections, the background pool's (tenant lookups, metrics)
    // and the catalog listener's, nothing else.
    let background = app.state.pool.status().max_size as i64;
    assert!(
        open <= POOL as i64 + background + 1,
        "{open} backends were open, request pools {POOL}, background pool {background}"
    );
    assert_eq!(
        served.count(200),
        served.statuses.len(),
        "the other tenant was served throughout"
    );
    assert!(!served.statuses.is_empty());

    let deadline = Instant::now() + Duration::from_secs(15);
    while backends(&watcher).await.0 > 0 {
        assert!(
            Instant::now() < deadline,
            "abandoned statements were still running 15 s later"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
