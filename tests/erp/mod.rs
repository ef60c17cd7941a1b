//! The ERP modules end to end: the real app, real PostgreSQL, the modules built into the
//! binary, driven over HTTP like a client would.

mod accounting;
mod crm;
mod hr;
mod inventory;
mod openapi;
mod schemas;

use eerp_e2e::{TestApp, spawn_app, status_and_json};
use reqwest::Method;
use serde_json::{Value, json};

/// One tenant of a fresh app with `modules` enabled, and its admin's token.
pub struct Tenant {
    pub app: TestApp,
    pub token: String,
    pub slug: String,
}

impl Tenant {
    pub async fn with(modules: &[&str]) -> Self {
        let app = spawn_app().await;
        Self::on(app, "acme", modules).await
    }

    pub async fn on(app: TestApp, slug: &str, modules: &[&str]) -> Self {
        let (status, body) = app
            .admin(
                Method::POST,
                "/tenants",
                Some(&json!({"slug": slug, "modules": modules})),
            )
            .await;
        assert_eq!(status, 201, "tenant {slug} created: {body}");
        let tenant = eerp_tenancy::id::TenantSlug::parse(slug).expect("a valid slug");
        let token = app.token(&tenant, &["admin"]);
        Self {
            app,
            token,
            slug: slug.to_string(),
        }
    }

    /// Calls `path` (below `/api/v1`) and returns the status and JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let response = self
            .app
            .send(
                method,
                &format!("/api/v1{path}"),
                Some(&self.token),
                body.as_ref(),
            )
            .await;
        let (status, content_type, body) = status_and_json(response).await;
        if status >= 400 {
            assert_eq!(
                content_type, "application/problem+json",
                "{path} answered {status} with {body}"
            );
        }
        (status, body)
    }

    /// As [`Tenant::call`], sent again after a `rate-limited` 429 (the tenant's share of
    /// sandbox slots is full), as a client honouring it would. Every other answer, a 503
    /// included, is returned for the test to check: none is expected, since requests of a
    /// few milliseconds never wait out the pool's 5 s, and a deadlock or a failed commit
    /// (`db-error`) must fail the test. A request still refused after a minute fails it
    /// too, instead of hanging.
    pub async fn call_until_admitted(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (status, answer) = self.call(method.clone(), path, body.clone()).await;
            if status != 429 {
                return (status, answer);
            }
            assert_eq!(
                answer["type"], "https://eerp.dev/problems/rate-limited",
                "{path}: {answer}"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "{method} {path} was still rate-limited after a minute: {answer}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// POSTs `body` and expects 201; returns the created row.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (status, created) = self.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!(status, 201, "POST {path} {body}: {created}");
        created
    }

    /// A count from the tenant's schema of `module`.
    pub async fn count(&self, module: &str, table_and_condition: &str) -> i64 {
        self.app
            .scalar(&format!(
                "SELECT count(*) FROM \"t_{}__{module}\".{table_and_condition}",
                self.slug
            ))
            .await
    }
}

/// The field names a 422's `errors` list.
pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
