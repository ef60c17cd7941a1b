//! `Idempotency-Key` on module POST and PATCH: a retry replays the recorded answer and
//! writes nothing twice; another request under the key is 422; a duplicate while the
//! first runs is 409; refusals replay too; keys are per tenant and expire.

use eerp_e2e::{TestApp, spawn_app, status_and_json};
use reqwest::Method;
use serde_json::{Value, json};

const CONTACTS: &str = "/api/v1/crm/contacts";

async fn send_with_key(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, bool, Value) {
    let response = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let (status, _, json) = status_and_json(response).await;
    (status, replayed, json)
}

fn ada_again() -> Value {
    json!({"name": "Ada again"})
}

async fn contacts(app: &TestApp, tenant: &str) -> i64 {
    app.scalar(&format!("SELECT count(*) FROM t_{tenant}__crm.contacts"))
        .await
}

#[tokio::test]
async fn a_retried_create_is_answered_again_and_written_once() {
    let app = spawn_app().await;
    let acme = app.admin_of("acme").await;
    let ada = json!({"name": "Ada Lovelace", "email": "ada@example.com"});
    let (status, replayed, first) =
        send_with_key(&app, Method::POST, CONTACTS, &acme, "k-1", &ada).await;
    assert_eq!((status, replayed), (201, false), "{first}");
    let (status, replayed, again) =
        send_with_key(&app, Method::POST, CONTACTS, &acme, "k-1", &ada).await;
    assert_eq!((status, replayed), (201, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(contacts(&app, "acme").await, 1, "written once");

    // Another request under the same key is refused, and writes nothing.
    let grace = json!({"name": "Grace Hopper"});
    let (status, _, problem) =
        send_with_key(&app, Method::POST, CONTACTS, &acme, "k-1", &grace).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["type"],
        "https://eerp.dev/problems/idempotency-key-reused"
    );
    assert_eq!(contacts(&app, "acme").await, 1);

    // Keys are the tenant's own: another tenant's k-1 is a new request.
    let globex = app.admin_of("globex").await;
    let (status, replayed, _) =
        send_with_key(&app, Method::POST, CONTACTS, &globex, "k-1", &grace).await;
    assert_eq!((status, replayed), (201, false));

    // A refusal by the module is the answer too.
    let nameless = json!({"name": ""});
    let (status, replayed, _) =
        send_with_key(&app, Method::POST, CONTACTS, &acme, "k-2", &nameless).await;
    assert_eq!((status, replayed), (422, false));
    let (status, replayed, _) =
        send_with_key(&app, Method::POST, CONTACTS, &acme, "k-2", &nameless).await;
    assert_eq!((status, replayed), (422, true));

    // Expired keys are forgotten: the key may then name a new request.
    app.scalar("WITH e AS (UPDATE eerp.idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'k-1' RETURNING 1) SELECT count(*) FROM e")
        .await;
    let (status, replayed, _) =
        send_with_key(&app, Method::POST, CONTACTS, &acme, "k-1", &grace).await;
    assert_eq!((status, replayed), (201, false));
    assert_eq!(contacts(&app, "acme").await, 2);

    // A claim whose request never released it (a crash, say) blocks only for its lease.
    let (status, _, _) =
        send_with_key(&app, Method::POST, CONTACTS, &acme, "k-3", &ada_again()).await;
    assert_eq!(status, 201);
    let stuck = "UPDATE eerp.idempotency_keys SET status = NULL, body = NULL, lease_until = now() + interval '1 hour' WHERE key = 'k-3'";
    app.scalar(&format!(
        "WITH s AS ({stuck} RETURNING 1) SELECT count(*) FROM s"
    ))
    .await;
    let (status, _, _) =
        send_with_key(&app, Method::POST, CONTACTS, &acme, "k-3", &ada_again()).await;
    assert_eq!(status, 409, "still within the lease");
    let lapsed = "UPDATE eerp.idempotency_keys SET lease_until = now() - interval '1 second' WHERE key = 'k-3'";
    app.scalar(&format!(
        "WITH s AS ({lapsed} RETURNING 1) SELECT count(*) FROM s"
    ))
    .await;
    let (status, replayed, _) =
        send_with_key(&app, Method::POST, CONTACTS, &acme, "k-3", &ada_again()).await;
    assert_eq!(
        (status, replayed),
        (201, false),
        "the lapsed claim is taken over"
    );

    // Bad keys are named.
    let (status, _, problem) = send_with_key(&app, Method::POST, CONTACTS, &acme, "", &grace).await;
    assert_eq!(status, 400, "{problem}");
}

#[tokio::test]
async fn a_duplicate_sent_while_the_first_runs_is_409_and_then_replays_its_answer() {
    let app = spawn_app().await;
    let acme = app.admin_of("acme").await;
    let (_, _, contact) = status_and_json(
        app.send(
            Method::POST,
            CONTACTS,
            Some(&acme),
            Some(&json!({"name": "Ada"})),
        )
        .await,
    )
    .await;
    let id = contact["id"].as_str().unwrap().to_string();
    let path = format!("{CONTACTS}/{id}");
    let patch = json!({"status": "customer"});

    // Hold the row, so the first PATCH waits in the database.
    let mut conn = app.state.pool.get().await.unwrap();
    let blocker = conn.transaction().await.unwrap();
    blocker
        .execute(
            "SELECT 1 FROM t_acme__crm.contacts WHERE id = $1::text::uuid FOR UPDATE",
            &[&id],
        )
        .await
        .unwrap();
    let first = {
        let (app, acme, path, patch) = (&app, &acme, &path, &patch);
        async move { send_with_key(app, Method::PATCH, path, acme, "p-1", patch).await }
    };
    let duplicate = async {
        // Until the first has claimed the key.
        loop {
            let claimed = app
                .scalar("SELECT count(*) FROM eerp.idempotency_keys WHERE key = 'p-1'")
                .await;
            if claimed == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let answer = send_with_key(&app, Method::PATCH, &path, &acme, "p-1", &patch).await;
        blocker.commit().await.unwrap();
        answer
    };
    let ((status, replayed, _), (dup_status, _, problem)) = tokio::join!(first, duplicate);
    assert_eq!(dup_status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "https://eerp.dev/problems/idempotency-key-in-flight"
    );
    assert_eq!((status, replayed), (200, false));
    let (status, replayed, body) =
        send_with_key(&app, Method::PATCH, &path, &acme, "p-1", &patch).await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(body["status"], "customer");
}
