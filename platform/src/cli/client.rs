//! A small HTTP client for `/admin/v1` that turns problems into readable errors.

use anyhow::Context;
use reqwest::{Method, RequestBuilder};
use serde_json::Value;

use super::Connection;

/// Calls the admin API with an operator token.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AdminClient {
    /// A client for `connection`.
    ///
    /// # Errors
    /// When no operator token is given and `eerp dev` wrote none.
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        let token = match &connection.token {
            Some(token) => token.clone(),
            None => {
                let path = token_file(&connection.state_dir);
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no operator token: pass --token or EERP_OPERATOR_TOKEN \
                             (`eerp dev` writes one to {})",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Ok(Self {
            http: reqwest::Client::new(),
            base: format!("{}/admin/v1", connection.url.trim_end_matches('/')),
            token,
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(Method::GET, path)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    /// `POST path` with raw bytes of `content_type`.
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let request = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(request).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(Method::DELETE, path)).await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn send(&self, request: RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach EERP at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let detail = body["detail"].as_str().unwrap_or("no detail");
        anyhow::bail!("{status}: {detail}")
    }
}

/// `<state_dir>/operator-token`; a relative state directory is also looked for in the
/// parent folders, so the commands work from a module crate made inside the checkout.
fn token_file(state_dir: &std::path::Path) -> std::path::PathBuf {
    let file = state_dir.join("operator-token");
    if file.is_absolute() || file.exists() {
        return file;
    }
    std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            cwd.ancestors()
                .map(|dir| dir.join(&file))
                .find(|candidate| candidate.exists())
        })
        .unwrap_or(file)
}
