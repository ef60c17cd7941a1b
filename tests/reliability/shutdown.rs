//! SIGTERM drains: the replica stops accepting, lets the requests in flight finish and
//! commit, answers them, and exits 0 with no connection left in a transaction.

use std::time::{Duration, Instant};

use eerp_e2e::{Replica, server_url, with_database};
use serde_json::json;

use super::{observer, one_at_a_time, one_contact, unmetered_app};

const IN_FLIGHT: usize = 4;

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_and_commit_then_exits_0() {
    let _turn = one_at_a_time().await;
    let app = unmetered_app(None).await;
    let token = app.admin_of("draining").await;
    let mut ids = Vec::new();
    for _ in 0..IN_FLIGHT {
        ids.push(one_contact(&app, &token).await);
    }
    let url = with_database(&server_url(), &app.database);
    let mut replica = Replica::start(env!("CARGO_BIN_EXE_eerp-test-replica"), &url).await;

    // Hold the contacts' rows, so each PATCH waits in the database, in flight.
    let blocker = observer(&app).await;
    let list = ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    blocker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM t_draining__crm.contacts WHERE id IN ({list}) FOR UPDATE"
        ))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let patches: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let request = client
                .patch(format!("{}/api/v1/crm/contacts/{id}", replica.address))
                .bearer_auth(&token)
                .json(&json!({"notes": format!("patched {i}")}))
                .send();
            tokio::spawn(async move { request.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let watcher = observer(&app).await;
    let waiting = "SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = Instant::now() + Duration::from_secs(30);
    while watcher
        .query_one(waiting, &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        < IN_FLIGHT as i64
    {
        assert!(
            Instant::now() < deadline,
            "the PATCHes never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = replica.pid().to_string();
    let signalled = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(signalled.success());
    // It stops accepting: a new connection is refused (once the signal is handled).
    let address = replica.address.trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&address).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    blocker.batch_execute("COMMIT").await.unwrap();
    for patch in patches {
        assert_eq!(
            patch.await.unwrap().unwrap(),
            200,
            "in flight at SIGTERM, answered"
        );
    }
    let exit = tokio::time::timeout(Duration::from_secs(60), replica.child.wait())
        .await
        .expect("the replica exits after draining")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    for (i, id) in ids.iter().enumerate() {
        let notes: Option<String> = watcher
            .query_one(
                "SELECT notes FROM t_draining__crm.contacts WHERE id = $1::text::uuid",
                &[id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            notes.as_deref(),
            Some(format!("patched {i}").as_str()),
            "committed"
        );
    }
    let open = watcher
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(open, 0, "no connection was left in a transaction");
}
