//! # eerp-e2e: the test harness
//!
//! [`spawn_app`] starts the real EERP application on a free port against real
//! PostgreSQL, in a database of its own: `DATABASE_URL`'s server when that is set,
//! otherwise a throwaway cluster started once per test binary from the installed server
//! binaries (removed when the binary exits). Requests go over HTTP, tenants are created
//! through the admin API with an operator token, and the pool in [`TestApp`] is for
//! asserting on rows.
//!
//! Two token issuers are trusted: an HS256 one the harness mints with ([`TestApp::token`])
//! and `https://idp.test`, whose RS256, ES256 and EdDSA keys (`tests/keys`) are published in
//! a JWKS file with the `kid`s `rsa`, `ec` and `ed` ([`sign_with`]).

pub mod observability;
pub mod probe;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use eerp_platform::dev::cluster::{ClusterOptions, LocalCluster};
use eerp_platform::registry::artifacts::ArtifactKey;
use eerp_platform::runtime::EngineSettings;
use eerp_platform::{App, AppState, Settings};
use eerp_tenancy::id::TenantSlug;
use eerp_tenancy::{AuthSettings, DevSigner, IssuerConfig, KeySource, Limits};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Response};
use serde_json::{Value, json};

/// The hostile test module, built by this crate's build script.
pub const HOSTILE_WASM: &str = env!("EERP_HOSTILE_WASM");

/// A module with only the original EERP's exports, built by this crate's build script.
pub const SEED_WASM: &str = env!("EERP_SEED_WASM");

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// `http://127.0.0.1:<ops port>`: `/metrics`, `/readyz`.
    pub ops_address: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The app's shared state: its pool (for assertions), registry and directory.
    pub state: actix_web::web::Data<AppState>,
    /// Mints tokens of the HS256 test issuer.
    pub signer: DevSigner,
    /// An operator token for the admin API.
    pub operator: String,
    /// Name of this app's database.
    pub database: String,
    /// The settings the app was built with (to start a second replica).
    pub settings: Settings,
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
    /// Serve this existing database (a second replica) instead of creating one.
    pub database: Option<String>,
    /// Tenant cache time-to-live (default 30 s, the production default).
    pub tenant_cache_ttl: Option<Duration>,
    /// Connections in the pool (default 8).
    pub db_pool_size: Option<usize>,
    /// Issuers trusted besides the two test issuers.
    pub extra_issuers: Vec<IssuerConfig>,
}

/// The HS256 issuer of the tests. Its secret is fixed so replicas share it.
pub fn test_issuer() -> IssuerConfig {
    IssuerConfig::hs256(
        "https://issuer.test",
        "eerp-test",
        b"eerp-test-secret-eerp-test-secret".to_vec(),
    )
}

/// The `https://idp.test` issuer: asymmetric keys from a JWKS file.
pub fn idp_issuer() -> IssuerConfig {
    IssuerConfig {
        issuer: IDP.into(),
        audience: "eerp-test".into(),
        operator_audience: Some("eerp-test-admin".into()),
        algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
        keys: KeySource::JwksFile(jwks_file()),
        tenant_claim: "tid".into(),
        tenants: None,
    }
}

/// Issuer name of the asymmetric test issuer.
pub const IDP: &str = "https://idp.test";

/// Path of a test key in `tests/keys`.
pub fn key_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/keys")).join(name)
}

/// The private key `kid` (`rsa`, `ec` or `ed`) of `https://idp.test`, and its algorithm.
pub fn idp_key(kid: &str) -> (EncodingKey, Algorithm) {
    let pem = std::fs::read(key_path(&format!("{kid}.pem"))).expect("test key exists");
    match kid {
        "rsa" => (
            EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
            Algorithm::RS256,
        ),
        "ec" => (
            EncodingKey::from_ec_pem(&pem).expect("ec key"),
            Algorithm::ES256,
        ),
        _ => (
            EncodingKey::from_ed_pem(&pem).expect("ed key"),
            Algorithm::EdDSA,
        ),
    }
}

/// Signs `claims` with the `https://idp.test` key `kid`, announcing `header_kid`.
pub fn sign_with(kid: &str, header_kid: Option<&str>, claims: &Value) -> String {
    let (key, alg) = idp_key(kid);
    let mut header = Header::new(alg);
    header.kid = header_kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key).expect("signing works")
}

/// Valid claims of `https://idp.test` for `tenant`'s admin.
pub fn idp_claims(tenant: &str) -> Value {
    json!({
        "iss": IDP, "aud": "eerp-test", "sub": "ada", "tid": tenant, "roles": ["admin"],
        "exp": jsonwebtoken::get_current_timestamp() + 600,
        "iat": jsonwebtoken::get_current_timestamp(),
    })
}

fn jwks_file() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let keys = ["rsa", "ec", "ed"]
            .iter()
            .map(|kid| {
                let (key, alg) = idp_key(kid);
                let mut jwk = Jwk::from_encoding_key(&key, alg).expect("a public JWK");
                jwk.common.key_id = Some(kid.to_string());
                jwk
            })
            .collect();
        let path = std::env::temp_dir().join(format!("eerp-test-jwks-{}.json", std::process::id()));
        let body = serde_json::to_vec(&JwkSet { keys }).expect("JWKS serialises");
        std::fs::write(&path, body).expect("JWKS written");
        path
    })
    .clone()
}

/// The newest migration version of the CRM module built into the binary.
pub fn crm_version() -> u32 {
    eerp_crm::schema::migrations()
        .last()
        .map_or(0, |step| step.version)
}

/// The app with default options.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

/// The app with `options`.
pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    let server_url = server_url();
    let database = match options.database.clone() {
        Some(database) => database,
        None => {
            let database = format!("eerp_test_{}", uuid::Uuid::new_v4().simple());
            create_database(&server_url, &database).await;
            database
        }
    };
    let first_replica = options.database.is_none();
    let hostile = options.hostile;
    let settings = test_settings(with_database(&server_url, &database), options);
    let app = start(settings, database).await;
    if hostile && first_replica {
        // New tenants get their plan's modules; the hostile tests want it everywhere.
        let body = json!({"modules": ["crm", "hostile"]});
        let (status, plan) = app
            .admin(Method::PUT, "/plans/standard/modules", Some(&body))
            .await;
        assert_eq!(
            status, 200,
            "the standard plan gets the hostile module: {plan}"
        );
    }
    app
}

/// The settings of a test app serving `database_url`.
pub fn test_settings(database_url: String, options: TestOptions) -> Settings {
    let mut issuers = vec![test_issuer(), idp_issuer()];
    issuers.extend(options.extra_issuers);
    let mut settings = Settings::new(database_url, issuers);
    settings.port = 0;
    settings.ops_port = 0;
    settings.workers = 2;
    settings.db_pool_size = options.db_pool_size.unwrap_or(8);
    settings.limits = options.limits;
    settings.auth = AuthSettings {
        jwks_cooldown: Duration::from_secs(2),
        ..AuthSettings::default()
    };
    if let Some(ttl) = options.tenant_cache_ttl {
        settings.tenant_cache_ttl = ttl;
    }
    settings.metrics_refresh = Duration::from_millis(100);
    // Fixed, so replicas of one test (in-process or `eerp-test-replica`) share kept code.
    settings.artifact_key = Some(
        ArtifactKey::new(b"eerp-test-artifact-key-eerp-test-artifact-key".to_vec())
            .expect("a long enough key"),
    );
    settings.engine = EngineSettings {
        pool_slots: options.pool_slots.unwrap_or(16),
        ..EngineSettings::default()
    };
    if options.hostile {
        settings.extra_modules.push(HOSTILE_WASM.into());
    }
    settings
}

/// Starts an app from `settings`, serving `database`.
pub async fn start(settings: Settings, database: String) -> TestApp {
    let app = App::build(settings.clone()).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let ops_address = format!("http://127.0.0.1:{}", app.ops_port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let signer = DevSigner::new(&test_issuer()).expect("an HS256 issuer");
    let operator = signer
        .operator_token("test-operator", 3600)
        .expect("operator tokens can be minted");
    TestApp {
        address,
        ops_address,
        client: reqwest::Client::new(),
        state,
        signer,
        operator,
        database,
        settings,
    }
}

impl TestApp {
    /// Creates tenant `slug` with its plan's modules, through the admin API.
    pub async fn create_tenant(&self, slug: &str) -> TenantSlug {
        let (status, body) = self
            .admin(Method::POST, "/tenants", Some(&json!({"slug": slug})))
            .await;
        assert!(
            status == 201 || status == 200,
            "tenant {slug} created: {body}"
        );
        TenantSlug::parse(slug).expect("test tenant slugs are valid")
    }

    /// Calls the admin API (`path` below `/admin/v1`) with the operator token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let response = self
            .send(
                method,
                &format!("/admin/v1{path}"),
                Some(&self.operator),
                body,
            )
            .await;
        let (status, _, json) = status_and_json(response).await;
        (status, json)
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
        self.token_as(tenant, "test-user", roles)
    }

    /// As [`TestApp::token`], for the user `subject`.
    pub fn token_as(&self, tenant: &TenantSlug, subject: &str, roles: &[&str]) -> String {
        self.signer
            .tenant_token(tenant, subject, roles, 600)
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

    /// Uploads module bytes to `POST /admin/v1/modules{query}` as `content_type`.
    pub async fn upload_module_as(
        &self,
        query: &str,
        wasm: Vec<u8>,
        content_type: &str,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/admin/v1/modules{query}", self.address))
            .bearer_auth(&self.operator)
            .header("content-type", content_type)
            .body(wasm)
            .send()
            .await
            .expect("the upload reaches the app");
        let (status, _, body) = status_and_json(response).await;
        (status, body)
    }

    /// Uploads module bytes as `application/wasm`.
    pub async fn upload_module(&self, wasm: Vec<u8>) -> (u16, Value) {
        self.upload_module_as("", wasm, "application/wasm").await
    }

    /// Serves `module` at `version` to `tenant`: enables, upgrades or rolls back.
    pub async fn serve_version(&self, tenant: &str, module: &str, version: &str) -> (u16, Value) {
        let path = format!("/tenants/{tenant}/modules/{module}");
        self.admin(Method::PUT, &path, Some(&json!({"version": version})))
            .await
    }

    /// `GET path` on the operations port.
    pub async fn ops_get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.ops_address))
            .send()
            .await
            .expect("the request reaches the operations port")
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self.ops_get("/metrics").await;
        assert_eq!(response.status(), 200);
        response.text().await.expect("a metrics body")
    }

    /// Sandbox instances running now (wasmtime's pooling allocator counts them).
    pub fn sandboxes_in_use(&self) -> u64 {
        self.state
            .engine
            .pooling_allocator_metrics()
            .map_or(0, |pool| pool.core_instances())
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

/// Waits until `ready` answers true, checking every 20 ms: tests wait for what they need
/// to have happened, not for a time that a slow machine can overrun. A minute without it
/// fails the test, naming `what`, rather than hanging it.
pub async fn wait_until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ready().await {
        assert!(
            std::time::Instant::now() < deadline,
            "waited a minute for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
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
pub fn server_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("eerp-test-pg-{}", std::process::id()));
            LocalCluster::start(
                &dir,
                ClusterOptions {
                    ephemeral: true,
                    durable: false,
                    server_options: "",
                },
            )
            .unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"))
        })
        .url("postgres")
}

/// Creates `database` on the server at `server_url`.
pub async fn create_database(server_url: &str, database: &str) {
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

/// The real app in a process of its own (the `eerp-test-replica` binary), so a test can
/// kill it, signal it or read its memory use; killed when dropped.
pub struct Replica {
    /// The process.
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// `http://127.0.0.1:<ops port>`.
    pub ops_address: String,
}

impl Replica {
    /// Starts `binary` (pass `env!("CARGO_BIN_EXE_eerp-test-replica")`) serving
    /// `database_url`, and waits until it listens.
    pub async fn start(binary: &str, database_url: &str) -> Self {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = tokio::process::Command::new(binary)
            .env("EERP_TEST_DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the replica starts");
        let stdout = child.stdout.take().expect("piped");
        let first_line = tokio::time::timeout(Duration::from_secs(60), async {
            BufReader::new(stdout).lines().next_line().await
        })
        .await
        .expect("the replica starts within 60 s")
        .expect("stdout is readable")
        .expect("the replica prints its port");
        let ports: Vec<&str> = first_line.split_whitespace().collect();
        let [_, port, _, ops] = ports[..] else {
            panic!("the replica printed `{first_line}`, not `port <n> ops <m>`");
        };
        Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
            ops_address: format!("http://127.0.0.1:{ops}"),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the replica runs")
    }

    /// The process's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the replica's /proc status is readable");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM is reported");
        kib * 1024
    }
}
