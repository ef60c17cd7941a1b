//! Row and byte caps hold while rows stream in: a tenant whose rows are huge cannot make
//! the host hold them all in memory, and every refused request is classified.

use eerp_e2e::{Replica, server_url, spawn_app, with_database};

use super::{one_at_a_time, seed_contacts};

/// What eight refused requests may add to the replica's peak resident memory. Each holds
/// at most its byte cap (4 MiB) of rows plus one row in flight; before the caps were
/// counted while reading, this scenario took the peak from 42 MB to 3.86 GB.
const GROWTH_BOUND: u64 = 256 << 20;

#[tokio::test]
async fn huge_rows_are_refused_without_being_held_in_memory() {
    let _turn = one_at_a_time().await;
    let app = spawn_app().await;
    let token = app.admin_of("bulky").await;
    // 501 contacts of 750 KB each (written in SQL: the API refuses such values).
    seed_contacts(
        &app,
        "bulky",
        501,
        "'contact ' || i, repeat('n', 250000), repeat('p', 250000), repeat('w', 250000)",
    )
    .await;
    let url = with_database(&server_url(), &app.database);
    let replica = Replica::start(env!("CARGO_BIN_EXE_eerp-test-replica"), &url).await;
    let client = reqwest::Client::new();
    let duplicates = format!("{}/api/v1/crm/contacts/duplicates", replica.address);
    let warm_up = client
        .get(format!("{}/api/v1/crm/contacts?limit=1", replica.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(warm_up.status(), 200);
    let before = replica.peak_resident_bytes();

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let request = client.get(&duplicates).bearer_auth(&token).send();
            tokio::spawn(async move {
                let response = request.await.unwrap();
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 422, "{body}");
        assert!(
            body["detail"].as_str().unwrap_or("").contains("limit"),
            "the module was told it hit the read limit: {body}"
        );
    }
    let after = replica.peak_resident_bytes();
    println!(
        "huge rows: peak resident memory {} MB before, {} MB after eight refused requests",
        before >> 20,
        after >> 20
    );
    assert!(
        after - before < GROWTH_BOUND,
        "peak resident memory grew by {} MB",
        (after - before) >> 20
    );
    let metrics = client
        .get(format!("{}/metrics", replica.ops_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"eerp_module_invocations_total{module="crm",outcome="data_limit"} 8"#),
        "every refusal is classified as data_limit"
    );
}
