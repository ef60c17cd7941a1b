//! Cross-module capabilities, checked by the host: read grants on another module's
//! tables, and domain events delivered to subscribers in the emitter's transaction.

use eerp_e2e::probe::{Action, Probe};
use eerp_e2e::{TestApp, spawn_app, status_and_json};
use reqwest::Method;
use serde_json::{Value, json};

async fn install(app: &TestApp, probe: &Probe, tenants: &[&str]) {
    let (status, body) = app.upload_module(probe.wasm()).await;
    assert_eq!(status, 201, "{} stored: {body}", probe.name);
    for tenant in tenants {
        let path = format!("/tenants/{tenant}/modules/{}", probe.name);
        let (status, body) = app.admin(Method::PUT, &path, None).await;
        assert_eq!(status, 200, "{} enabled for {tenant}: {body}", probe.name);
    }
}

async fn call(app: &TestApp, token: &str, method: Method, path: &str) -> (u16, Value) {
    let (status, _, body) = status_and_json(app.send(method, path, Some(token), None).await).await;
    (status, body)
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.scalar(&format!("SELECT count(*) FROM {table}")).await
}

async fn create_contact(app: &TestApp, token: &str, name: &str) {
    let body = json!({"name": name});
    let response = app
        .send(
            Method::POST,
            "/api/v1/crm/contacts",
            Some(token),
            Some(&body),
        )
        .await;
    assert_eq!(response.status(), 201);
}

fn reader() -> Probe {
    let mut reader = Probe::new("reader", "1.0.0")
        .route(
            "GET",
            "/contacts",
            Action::reply_of(json!({"op": "list", "module": "crm", "table": "contacts"})),
        )
        .route(
            "GET",
            "/count",
            Action::reply_of(
                json!({"op": "aggregate", "module": "crm", "table": "contacts",
                                    "aggregates": [{"func": "count"}]}),
            ),
        )
        .route(
            "GET",
            "/write",
            Action::reply_of(json!({"op": "insert", "module": "crm", "table": "contacts",
                                    "values": {"name": "Mallory"}})),
        )
        .route(
            "GET",
            "/lock",
            Action::reply_of(
                json!({"op": "get_for_update", "module": "crm", "table": "contacts",
                                    "id": "00000000-0000-0000-0000-000000000000"}),
            ),
        )
        .route(
            "GET",
            "/ungranted",
            Action::reply_of(json!({"op": "list", "module": "other", "table": "items"})),
        );
    reader.grants = vec!["read:crm.contacts".into()];
    reader
}

#[tokio::test]
async fn a_read_grant_reads_and_nothing_else_gets_through() {
    let app = spawn_app().await;
    let acme = app.admin_of("acme").await;
    let globex = app.admin_of("globex").await;
    create_contact(&app, &acme, "Ada").await;
    create_contact(&app, &acme, "Grace").await;
    install(&app, &Probe::new("other", "1.0.0"), &["acme"]).await;
    install(&app, &reader(), &["acme", "globex"]).await;

    let (status, body) = call(&app, &acme, Method::GET, "/api/v1/reader/contacts").await;
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<&str> = body["ok"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Ada", "Grace"]);
    let (_, body) = call(&app, &acme, Method::GET, "/api/v1/reader/count").await;
    assert_eq!(body["ok"]["groups"][0]["values"]["count"], 2, "{body}");
    // Globex's reader reads globex's CRM: none of acme's contacts.
    let (_, body) = call(&app, &globex, Method::GET, "/api/v1/reader/contacts").await;
    assert_eq!(body["ok"]["rows"], json!([]), "{body}");

    for (path, named) in [
        ("/write", "grants only read"),
        ("/lock", "grants only read"),
        ("/ungranted", "no grant `read:other.items`"),
    ] {
        let (status, body) = call(&app, &acme, Method::GET, &format!("/api/v1/reader{path}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["error"]["kind"], "forbidden", "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{path}: {message}");
    }
    assert_eq!(
        count(&app, "t_acme__crm.contacts").await,
        2,
        "nothing written"
    );

    // Granted, but CRM is not enabled for globex any more: the grant reads nothing.
    let (status, _) = app
        .admin(Method::DELETE, "/tenants/globex/modules/crm", None)
        .await;
    assert_eq!(status, 200);
    let (_, body) = call(&app, &globex, Method::GET, "/api/v1/reader/contacts").await;
    assert_eq!(body["error"]["kind"], "forbidden", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not enabled"),
        "{body}"
    );
}

#[tokio::test]
async fn grants_and_events_are_checked_when_uploaded() {
    let app = spawn_app().await;
    let upload = async |probe: Probe| {
        let response = app
            .client
            .post(format!("{}/admin/v1/modules", app.address))
            .bearer_auth(&app.operator)
            .header("content-type", "application/wasm")
            .body(probe.wasm())
            .send()
            .await
            .unwrap();
        let (status, _, body) = status_and_json(response).await;
        (
            status,
            body["detail"].as_str().unwrap_or_default().to_string(),
        )
    };
    let with = |grants: &[&str], events: &[&str], caps: Vec<&'static str>| {
        let mut probe = Probe::new("bad", "1.0.0");
        probe.grants = grants.iter().map(|g| g.to_string()).collect();
        probe.events = events.iter().map(|e| e.to_string()).collect();
        probe.capabilities = caps;
        probe
    };
    let cases = [
        (
            with(&["write:crm.contacts"], &[], vec!["log", "data"]),
            "only `read:` grants",
        ),
        (
            with(&["read:bad.items"], &[], vec!["log", "data"]),
            "its own tables",
        ),
        (
            with(&["read:crm"], &[], vec!["log", "data"]),
            "names no table",
        ),
        (
            with(&[], &["crm.stolen"], vec!["log", "data", "events"]),
            "`bad.<name>`",
        ),
        (
            with(&[], &["bad.ok"], vec!["log", "data"]),
            "`events` capability",
        ),
    ];
    for (probe, named) in cases {
        let (status, detail) = upload(probe).await;
        assert_eq!(status, 422, "{detail}");
        assert!(detail.contains(named), "`{named}` in {detail}");
    }
}

fn emitter() -> Probe {
    let mut emitter = Probe::new("emitter", "1.0.0")
        .route(
            "POST",
            "/fire",
            Action {
                calls: vec![
                    json!({"op": "insert", "table": "items", "values": {"label": "fired"}}),
                ],
                ..Action::answer(json!({"status": 201}))
            }
            .emitting("emitter.happened", json!({"n": 1})),
        )
        .route(
            "POST",
            "/undeclared",
            Action {
                calls: vec![
                    json!({"op": "insert", "table": "items", "values": {"label": "secret"}}),
                ],
                ..Action::answer(json!({"status": 201}))
            }
            .emitting("emitter.secret", json!({})),
        );
    emitter.capabilities = vec!["log", "data", "events"];
    emitter.events = vec!["emitter.happened".into()];
    emitter
}

fn subscriber(name: &str, action: Action) -> Probe {
    Probe::new(name, "1.0.0").on("emitter.happened", action)
}

fn writes_heard() -> Action {
    Action {
        calls: vec![json!({"op": "insert", "table": "items", "values": {"label": "heard"}})],
        store_request: true,
        ..Action::answer(json!({"status": 200}))
    }
}

#[tokio::test]
async fn an_event_runs_its_subscribers_in_the_emitters_transaction() {
    let app = spawn_app().await;
    let acme = app.admin_of("acme").await;
    let globex = app.admin_of("globex").await;
    install(&app, &emitter(), &["acme", "globex"]).await;
    let listener = subscriber("listener", writes_heard()).migration(Probe::heard_step(2));
    install(&app, &listener, &["acme"]).await;

    let (status, body) = call(&app, &acme, Method::POST, "/api/v1/emitter/fire").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(count(&app, "t_acme__emitter.items").await, 1);
    assert_eq!(
        count(&app, "t_acme__listener.items").await,
        1,
        "the subscriber ran"
    );
    // It got the event envelope: name, payload and the emitting request's caller.
    let conn = app.state.pool.get().await.unwrap();
    let heard: String = conn
        .query_one("SELECT envelope::text FROM t_acme__listener.heard", &[])
        .await
        .unwrap()
        .get(0);
    drop(conn);
    let heard: Value = serde_json::from_str(&heard).unwrap();
    assert_eq!(heard["method"], "EVENT");
    assert_eq!(heard["route"], "emitter.happened");
    assert_eq!(heard["body"], json!({"n": 1}));
    assert_eq!(heard["principal"]["subject"], "test-user");

    // Globex has no listener: the event simply reaches nobody.
    let (status, body) = call(&app, &globex, Method::POST, "/api/v1/emitter/fire").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(count(&app, "t_globex__emitter.items").await, 1);
    assert_eq!(count(&app, "t_acme__listener.items").await, 1);

    // A subscriber that refuses rolls back the emitter's write and the other
    // subscriber's, and the caller sees its problem.
    let refusal =
        json!({"status": 422, "body": {"title": "Refused", "detail": "the listener refuses"}});
    install(
        &app,
        &subscriber("refuser", Action::answer(refusal)),
        &["acme"],
    )
    .await;
    let heard_before = listener_calls(&app).await;
    let (status, body) = call(&app, &acme, Method::POST, "/api/v1/emitter/fire").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"], "the listener refuses");
    assert_eq!(
        listener_calls(&app).await,
        heard_before + 1,
        "the listener ran (before the refuser, in name order) and was rolled back"
    );
    assert_eq!(count(&app, "t_acme__emitter.items").await, 1, "rolled back");
    assert_eq!(
        count(&app, "t_acme__listener.items").await,
        1,
        "rolled back"
    );

    // An undeclared event is an ABI breach, and rolls back the write before it too.
    let (status, body) = call(&app, &acme, Method::POST, "/api/v1/emitter/undeclared").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["type"], "https://eerp.dev/problems/bad-abi");
    assert_eq!(count(&app, "t_acme__emitter.items").await, 1, "rolled back");
}

/// How often the listener's handler answered ok, from `/metrics`.
async fn listener_calls(app: &TestApp) -> u64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(r#"eerp_module_invocations_total{module="listener",outcome="ok"} "#)
        })
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_event_loop_is_stopped_by_the_depth_cap_and_rolled_back() {
    let app = spawn_app().await;
    let acme = app.admin_of("acme").await;
    let ping = || {
        Action {
            calls: vec![json!({"op": "insert", "table": "items", "values": {"label": "ping"}})],
            ..Action::answer(json!({"status": 201}))
        }
        .emitting("pinger.ping", json!({}))
    };
    let mut pinger = Probe::new("pinger", "1.0.0")
        .route("POST", "/ping", ping())
        .on("pinger.ping", ping());
    pinger.capabilities = vec!["log", "data", "events"];
    pinger.events = vec!["pinger.ping".into()];
    install(&app, &pinger, &["acme"]).await;

    let (status, body) = call(&app, &acme, Method::POST, "/api/v1/pinger/ping").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["type"], "https://eerp.dev/problems/event-limit");
    assert_eq!(count(&app, "t_acme__pinger.items").await, 0, "nothing kept");
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"eerp_module_invocations_total{module="pinger",outcome="event_limit"} 1"#),
        "the loop is counted as event_limit"
    );
}

#[tokio::test]
async fn a_subscriber_can_veto_what_a_sdk_module_emits() {
    let app = spawn_app().await;
    let acme = app.admin_of("acme").await;
    let veto =
        json!({"status": 409, "body": {"title": "Vetoed", "detail": "no new contacts today"}});
    let vetoer = Probe::new("vetoer", "1.0.0").on("crm.contact_created", Action::answer(veto));
    install(&app, &vetoer, &["acme"]).await;
    let body = json!({"name": "Ada"});
    let response = app
        .send(
            Method::POST,
            "/api/v1/crm/contacts",
            Some(&acme),
            Some(&body),
        )
        .await;
    let (status, _, problem) = status_and_json(response).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["detail"], "no new contacts today");
    assert_eq!(
        count(&app, "t_acme__crm.contacts").await,
        0,
        "the insert was rolled back"
    );

    let (status, _) = app
        .admin(Method::DELETE, "/tenants/acme/modules/vetoer", None)
        .await;
    assert_eq!(status, 200);
    create_contact(&app, &acme, "Ada").await;
    assert_eq!(count(&app, "t_acme__crm.contacts").await, 1);
}
