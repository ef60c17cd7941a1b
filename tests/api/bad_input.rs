//! Bad input gets a clear problem and changes nothing.

use eerp_e2e::{TestOptions, spawn_app, spawn_app_with, status_and_json};
use eerp_tenancy::Limits;
use reqwest::Method;
use serde_json::json;

const CREATE: &str = "/api/v1/crm/contacts";

#[tokio::test]
async fn malformed_unknown_mistyped_or_invalid_bodies_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    // 400: the body cannot be read as a contact; 422: it can, and breaks a rule.
    let bodies = [
        ("{\"name\": ", 400, "not valid JSON"),
        (
            "{\"name\":\"Ada\",\"nickname\":\"A\"}",
            400,
            "unknown field `nickname`",
        ),
        ("{\"name\": 42}", 400, "invalid type"),
        (
            "{\"name\":\"Ada\",\"credit_limit\":12.5}",
            400,
            "invalid type",
        ),
        (
            "{\"name\":\"Ada\",\"credit_limit\":\"12.345\"}",
            422,
            "credit_limit",
        ),
        ("{\"name\":\"Ada\",\"status\":\"vip\"}", 422, "status"),
        (
            "{\"name\":\"Ada\",\"last_contacted_at\":\"yesterday\"}",
            400,
            "RFC 3339",
        ),
        (
            "{\"name\":\"Ada\",\"last_contacted_at\":\"2026-02-30T10:00:00Z\"}",
            400,
            "out of range",
        ),
        ("[]", 400, "the request body is invalid"),
        ("", 400, "needs a JSON body"),
    ];
    for (body, expected_status, expected) in bodies {
        let response = app.post_raw(CREATE, &token, "application/json", body).await;
        let (status, content_type, problem) = status_and_json(response).await;
        assert_eq!(status, expected_status, "{body}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(expected),
            "{body}: detail `{detail}` lacks `{expected}`"
        );
    }
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts")
            .await,
        0
    );
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    let response = app.post_raw(CREATE, &token, "text/plain", "name=Ada").await;
    assert_eq!(response.status(), 415);
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts")
            .await,
        0
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_and_write_nothing() {
    let limits = Limits {
        max_request_bytes: 1024,
        ..Limits::default()
    };
    let app = spawn_app_with(TestOptions {
        limits,
        ..TestOptions::default()
    })
    .await;
    let token = app.admin_of("acme").await;
    let body = json!({"name": "Ada", "notes": "x".repeat(2000)});
    let (status, content_type, problem) = status_and_json(
        app.send(Method::POST, CREATE, Some(&token), Some(&body))
            .await,
    )
    .await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("1024 bytes")
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts")
            .await,
        0
    );
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    for query in [
        "?limit=0",
        "?limit=abc",
        "?colour=red",
        "?status=lead&status=customer",
        "?order=email",
    ] {
        let path = format!("{CREATE}{query}");
        let (status, _, problem) =
            status_and_json(app.send(Method::GET, &path, Some(&token), None).await).await;
        assert_eq!(status, 400, "{query}: {problem}");
    }
}

/// Sends `head` (request line and headers, without the blank line) over a raw
/// connection, then `body`, and never more: the status line of the answer.
async fn raw_request(app: &eerp_e2e::TestApp, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("{head}\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn an_anonymous_admin_request_is_refused_before_its_body_is_read() {
    let app = spawn_app().await;
    // A megabyte is announced and never sent: had the server waited for it, the
    // answer would be the body timeout's 408.
    let status = raw_request(
        &app,
        "POST /admin/v1/tenants HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000000",
        b"{",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
}

#[tokio::test]
async fn a_body_that_trickles_in_too_slowly_is_408() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    let status = raw_request(
        &app,
        &format!(
            "POST {CREATE} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100"
        ),
        b"{\"name\":",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts")
            .await,
        0
    );
}

#[tokio::test]
async fn database_errors_the_input_causes_are_the_callers_4xx_not_a_503() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    // An email too large for its unique index's entries (and not compressible).
    let local: String = (0..600)
        .map(|i: u64| format!("{:x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40))
        .collect();
    let body = json!({"name": "Ada", "email": format!("{local}@example.com")});
    let (status, content_type, problem) = status_and_json(
        app.send(Method::POST, CREATE, Some(&token), Some(&body))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("index row"),
        "{problem}"
    );
}
