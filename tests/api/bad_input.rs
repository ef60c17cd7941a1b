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
