//! # eerp-e2e: the test harness
//!
//! [`spawn_app`] starts the real EERP application on a free port against real
//! PostgreSQL, in a database of its own: `DATABASE_URL`'s server when that is set,
//! otherwise a throwaway cluster started once per test binary from the installed server
//! binaries (removed when the binary exits). Requests go over HTTP; tenants and their
//! migrations are set up with the platform's library functions (there is no admin API
//! yet), and the pool in [`TestApp`] is otherwise for asserting on rows.

use std::sync::OnceLock;

use eerp_platform::dev::cluster::{ClusterOptions, LocalCluster};
use eerp_platform::runtime::EngineSettings;
use eerp_platform::{App, AppState, Settings, tenants};
use eerp_tenancy::id::TenantSlug;
use eerp_tenancy::{IssuerConfig, Limits, Verifier};
use reqwest::{Method, Response};
use serde_json::Value;

/// The hostile test module, built by this crate's build script.
pub const HOSTILE_WASM: &str = env!("EERP_HOSTILE_WASM");

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The app's shared state: its pool (for assertions), registry and verifier.
    pub state: actix_web::web::Data<AppState>,
    /// Verifies and mints tokens for this app's issuer.
    pub verifier: Verifier,
    /// Name of this app's database.
    pub database: String,
}

/// Options a test may change before the app starts.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Limits for every tenant.
    pub limits: Limits,
    /// Load the hostile module too.
    pub hostile: bool,
    /// Sandbox slots (default 16).
    pub pool_slots: Option<u32>,
}

/// The app with default options.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

/// The app with `options`.
pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    let database = format!("eerp_test_{}", uuid::Uuid::new_v4().simple());
    let server_url = server_url();
    create_database(&server_url, &database).await;
    let issuer = IssuerConfig {
        issuer: "https://issuer.test".into(),
        audience: "eerp-test".into(),
        hs256_secret: uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .repeat(2)
            .into_bytes(),
        tenant_claim: "tid".into(),
    };
    let mut settings = Settings::new(with_database(&server_url, &database), issuer.clone());
    settings.port = 0;
    settings.workers = 2;
    settings.db_pool_size = 8;
    settings.limits = options.limits;
    settings.engine = EngineSettings {
        pool_slots: options.pool_slots.unwrap_or(16),
        ..EngineSettings::default()
    };
    if options.hostile {
        settings.extra_modules.push(HOSTILE_WASM.into());
    }
    let app = App::build(settings).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        state,
        verifier: Verifier::new(issuer),
        database,
    }
}

impl TestApp {
    /// Creates tenant `slug` with every loaded module enabled (migrated).
    pub async fn create_tenant(&self, slug: &str) -> TenantSlug {
        let slug = TenantSlug::parse(slug).expect("test tenant slugs are valid");
        let tenant = tenants::ensure_tenant(&self.state.pool, &slug, slug.as_str())
            .await
            .expect("tenant created");
        for module in self.state.registry.modules() {
            tenants::enable_module(&self.state.pool, &tenant, &module)
                .await
                .expect("module enabled");
        }
        slug
    }

    /// Creates tenant `slug` and returns a token of its `admin`.
    pub async fn admin_of(&self, slug: &str) -> String {
        let tenant = self.create_tenant(slug).await;
        self.token(&tenant, &["admin"])
    }

    /// Sends `body` as-is with `content_type`, for bodies `send` cannot produce.
    pub async fn post_raw(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: &str,
    ) -> Response {
        self.client
            .post(format!("{}{path}", self.address))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("the request reaches the app")
    }

    /// A token of `tenant` with `roles`.
    pub fn token(&self, tenant: &TenantSlug, roles: &[&str]) -> String {
        self.verifier
            .mint(tenant, "test-user", roles, 600)
            .expect("tokens can be minted")
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("the request reaches the app")
    }

    /// Runs `sql` (a single-value query) against this app's database.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let conn = self.state.pool.get().await.expect("a pooled connection");
        conn.query_one(sql, &[])
            .await
            .expect("the query runs")
            .get(0)
    }
}

/// Reads a response as status and JSON (or `Null` for an empty body).
pub async fn status_and_json(response: Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, content_type, json)
}

/// `DATABASE_URL`, or the throwaway cluster of this test binary.
fn server_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("eerp-test-pg-{}", std::process::id()));
            LocalCluster::start(&dir, ClusterOptions { ephemeral: true })
                .unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"))
        })
        .url("postgres")
}

async fn create_database(server_url: &str, database: &str) {
    let (client, connection) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at the test server: {e}"));
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .expect("the test database is created");
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{database}{query}")
}
