//! CRM contacts through the sandbox: the full life cycle a tenant's app goes through.

use eerp_e2e::{spawn_app, status_and_json};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn contact_life_cycle_create_get_update_delete_restore() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    let t = Some(token.as_str());

    let created = app
        .send(
            Method::POST,
            "/api/v1/crm/contacts",
            t,
            Some(&json!({
                "name": "  Ada Lovelace ", "email": "ADA@Example.com", "credit_limit": "1500.50",
                "last_contacted_at": "2026-11-20T10:00:00Z"
            })),
        )
        .await;
    let (status, content_type, contact) = status_and_json(created).await;
    assert_eq!(status, 201, "{contact}");
    assert!(content_type.starts_with("application/json"));
    assert_eq!(contact["name"], "Ada Lovelace");
    assert_eq!(contact["email"], "ada@example.com");
    assert_eq!(
        contact["credit_limit"], "1500.50",
        "decimals come back exact, as strings"
    );
    assert_eq!(contact["status"], "lead", "the column default applies");
    assert_eq!(contact["last_contacted_at"], "2026-11-20T10:00:00+00:00");
    let id = contact["id"].as_str().expect("an id").to_string();
    let path = format!("/api/v1/crm/contacts/{id}");

    let (status, _, fetched) = status_and_json(app.send(Method::GET, &path, t, None).await).await;
    assert_eq!((status, &fetched["id"]), (200, &contact["id"]));

    let patch = json!({"status": "customer", "credit_limit": "99999999999.99"});
    let (status, _, updated) =
        status_and_json(app.send(Method::PATCH, &path, t, Some(&patch)).await).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["status"], "customer");
    assert_eq!(updated["credit_limit"], "99999999999.99");
    assert_ne!(updated["updated_at"], contact["updated_at"]);
    assert_eq!(
        updated["email"], "ada@example.com",
        "fields not in the patch stay"
    );

    // A patch is checked like a new contact, after it is merged onto the stored one.
    for (patch, status, named) in [
        (json!({"nickname": "A"}), 400, "unknown field `nickname`"),
        (json!({}), 400, "changes nothing"),
        (json!({"email": "not-an-email"}), 422, "email"),
        (json!({"name": "  "}), 422, "name"),
    ] {
        let (got, _, problem) =
            status_and_json(app.send(Method::PATCH, &path, t, Some(&patch)).await).await;
        assert_eq!(got, status, "{patch}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(named),
            "{problem}"
        );
    }
    let (status, _, cleared) = status_and_json(
        app.send(
            Method::PATCH,
            &path,
            t,
            Some(&json!({"email": null, "name": " Ada "})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["email"], Value::Null, "null clears a field");
    assert_eq!(cleared["name"], "Ada", "a patched value is normalised too");

    let (status, _, _) = status_and_json(app.send(Method::DELETE, &path, t, None).await).await;
    assert_eq!(status, 204);
    let (status, content_type, problem) =
        status_and_json(app.send(Method::GET, &path, t, None).await).await;
    assert_eq!(status, 404, "a soft-deleted contact is gone from reads");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["type"], "https://eerp.dev/problems/module-error");
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts WHERE deleted_at IS NOT NULL")
            .await,
        1,
        "soft delete keeps the row"
    );
    let (status, _, with_deleted) = status_and_json(
        app.send(
            Method::GET,
            "/api/v1/crm/contacts?include_deleted=true",
            t,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{with_deleted}");
    assert_eq!(with_deleted["data"][0]["id"], contact["id"]);
    assert!(with_deleted["data"][0]["deleted_at"].is_string());

    let restore = format!("{path}/restore");
    let (status, _, restored) =
        status_and_json(app.send(Method::POST, &restore, t, None).await).await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["deleted_at"], Value::Null);
    let (status, _, _) = status_and_json(app.send(Method::POST, &restore, t, None).await).await;
    assert_eq!(
        status, 404,
        "restoring a live contact finds nothing to restore"
    );
}

#[tokio::test]
async fn list_filters_orders_and_pages_with_a_cursor() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    let t = Some(token.as_str());
    for (name, status) in [
        ("Ada", "lead"),
        ("Bob", "customer"),
        ("Cy", "lead"),
        ("Dee", "lead"),
        ("Eve", "lead"),
    ] {
        let response = app
            .send(
                Method::POST,
                "/api/v1/crm/contacts",
                t,
                Some(&json!({"name": name, "status": status})),
            )
            .await;
        assert_eq!(response.status(), 201);
    }

    let mut seen = Vec::new();
    let mut url = "/api/v1/crm/contacts?status=lead&order=-name&limit=2".to_string();
    loop {
        let (status, _, page) = status_and_json(app.send(Method::GET, &url, t, None).await).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().expect("a data array");
        assert!(data.len() <= 2);
        seen.extend(
            data.iter()
                .map(|c| c["name"].as_str().unwrap_or_default().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                url =
                    format!("/api/v1/crm/contacts?status=lead&order=-name&limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["Eve", "Dee", "Cy", "Ada"],
        "every lead once, in descending name order"
    );

    let (_, _, found) = status_and_json(
        app.send(Method::GET, "/api/v1/crm/contacts?q=DE", t, None)
            .await,
    )
    .await;
    assert_eq!(
        found["data"].as_array().map(Vec::len),
        Some(1),
        "q matches names case-insensitively"
    );

    let (status, _, problem) = status_and_json(
        app.send(
            Method::GET,
            "/api/v1/crm/contacts?order=name&cursor=garbage",
            t,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{problem}");
}

#[tokio::test]
async fn stats_sum_exact_decimals_by_status() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    let t = Some(token.as_str());
    for amount in ["0.10", "0.20", "1000000000.05"] {
        let body = json!({"name": "x", "credit_limit": amount});
        assert_eq!(
            app.send(Method::POST, "/api/v1/crm/contacts", t, Some(&body))
                .await
                .status(),
            201
        );
    }
    let (status, _, stats) = status_and_json(
        app.send(Method::GET, "/api/v1/crm/contacts/stats", t, None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        stats["by_status"][0]["values"]["sum_credit_limit"],
        "1000000000.35"
    );
    assert_eq!(stats["by_status"][0]["values"]["count"], 3);
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_and_nothing_is_written() {
    let app = spawn_app().await;
    let token = app.admin_of("acme").await;
    let body = json!({"name": "Ada", "email": "ada@example.com"});
    let first = app
        .send(
            Method::POST,
            "/api/v1/crm/contacts",
            Some(&token),
            Some(&body),
        )
        .await;
    assert_eq!(first.status(), 201);
    let (status, _, problem) = status_and_json(
        app.send(
            Method::POST,
            "/api/v1/crm/contacts",
            Some(&token),
            Some(&body),
        )
        .await,
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "email_taken");
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts")
            .await,
        1
    );
}

#[tokio::test]
async fn each_tenant_sees_only_its_own_contacts() {
    let app = spawn_app().await;
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let acme_token = app.token(&acme, &["admin"]);
    let globex_token = app.token(&globex, &["admin"]);
    let (_, _, contact) = status_and_json(
        app.send(
            Method::POST,
            "/api/v1/crm/contacts",
            Some(&acme_token),
            Some(&json!({"name": "Acme's"})),
        )
        .await,
    )
    .await;
    let path = format!(
        "/api/v1/crm/contacts/{}",
        contact["id"].as_str().unwrap_or_default()
    );
    for method in [Method::GET, Method::DELETE] {
        let response = app.send(method, &path, Some(&globex_token), None).await;
        assert_eq!(response.status(), 404);
    }
    let patch = app
        .send(
            Method::PATCH,
            &path,
            Some(&globex_token),
            Some(&json!({"name": "stolen"})),
        )
        .await;
    assert_eq!(patch.status(), 404);
    let (_, _, list) = status_and_json(
        app.send(
            Method::GET,
            "/api/v1/crm/contacts",
            Some(&globex_token),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(list["data"], json!([]));
    let (_, _, mine) =
        status_and_json(app.send(Method::GET, &path, Some(&acme_token), None).await).await;
    assert_eq!(mine["name"], "Acme's", "nothing globex did touched it");
}
