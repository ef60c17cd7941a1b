//! `eerp dev`: everything a new user needs, in one command.
//!
//! Starts a private PostgreSQL from the installed server binaries when `DATABASE_URL` is
//! unset (data kept in `.eerp/pgdata`), migrates, creates the `demo` tenant with its
//! plan's modules and every built-in module (CRM, Inventory, ...), writes an operator token for the `eerp` operator commands to
//! `.eerp/operator-token`, prints a tenant token and working `curl` lines, and serves.
//! Ctrl-C stops the server, then the private PostgreSQL.

pub mod cluster;

use std::path::{Path, PathBuf};

use anyhow::Context;
use eerp_tenancy::id::TenantSlug;
use eerp_tenancy::{DevSigner, IssuerConfig};

use crate::config::Settings;
use crate::registry::artifacts::ArtifactKey;
use crate::startup::App;
use crate::tenants::lifecycle::{self, Catalog, NewTenant};
use cluster::{ClusterOptions, LocalCluster};

/// Issuer and audience of the tokens `eerp dev` mints.
pub const DEV_ISSUER: &str = "eerp-dev";
/// Audience of dev tokens.
pub const DEV_AUDIENCE: &str = "eerp";
/// The demo tenant's slug.
pub const DEMO_TENANT: &str = "demo";

/// What `eerp dev` was asked for.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Where the private cluster and the dev signing secret live.
    pub state_dir: PathBuf,
    /// Port to serve on.
    pub port: u16,
    /// An existing database to use instead of a private cluster.
    pub database_url: Option<String>,
}

/// Runs the dev server until Ctrl-C.
///
/// # Errors
/// When PostgreSQL cannot be started or reached, or the app cannot be built.
pub async fn run(options: DevOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.state_dir)
        .with_context(|| format!("creating {}", options.state_dir.display()))?;
    let (database_url, cluster) = match options.database_url.clone() {
        Some(url) => (url, None),
        None => {
            eprintln!(
                "starting a private PostgreSQL in {}/pgdata ...",
                options.state_dir.display()
            );
            let data_dir = options.state_dir.join("pgdata");
            let cluster = tokio::task::spawn_blocking(move || {
                LocalCluster::start(&data_dir, ClusterOptions::default())
            })
            .await??;
            (cluster.url("postgres"), Some(cluster))
        }
    };
    let secret = dev_secret(&options.state_dir, "dev-jwt-secret")?;
    let issuer = IssuerConfig::hs256(DEV_ISSUER, DEV_AUDIENCE, secret);
    let signer = DevSigner::new(&issuer).context("the dev issuer signs with HS256")?;
    let mut settings = Settings::new(database_url, vec![issuer]);
    settings.artifact_key = Some(
        ArtifactKey::new(dev_secret(&options.state_dir, "dev-artifact-key")?)
            .map_err(anyhow::Error::msg)?,
    );
    settings.port = options.port;
    // The operations port (metrics, readiness) is the next one.
    settings.ops_port = options
        .port
        .checked_add(1)
        .filter(|_| options.port != 0)
        .unwrap_or(0);
    let app = App::build(settings).await?;
    let state = app.state();
    let catalog = Catalog {
        pool: &state.pool,
        modules: state.module_store(),
        base: state.directory.base_limits(),
        ceilings: state.ceilings,
        actor: "eerp-dev",
    };
    let demo = NewTenant {
        slug: DEMO_TENANT.into(),
        display_name: Some("Demo Company".into()),
        plan: None,
        modules: None,
    };
    lifecycle::create(&catalog, demo).await?;
    // The demo has every module built into the binary, also when an earlier run's demo
    // tenant predates some of them (enabling is idempotent).
    let demo = TenantSlug::parse(DEMO_TENANT)?;
    for (file, _) in crate::registry::BUILTIN_MODULES {
        let module = file.trim_end_matches(".wasm");
        lifecycle::set_module(&catalog, &demo, module, true, None).await?;
    }
    let operator = signer.operator_token("dev-operator", 30 * 24 * 3600)?;
    write_private(
        &options.state_dir.join("operator-token"),
        operator.as_bytes(),
    )?;
    let token = signer.tenant_token(
        &TenantSlug::parse(DEMO_TENANT)?,
        "dev-admin",
        &["admin"],
        24 * 3600,
    )?;
    print_welcome(app.port(), app.ops_port(), &token);
    drop(state);
    let served = app.run_until_stopped().await;
    if let Some(cluster) = cluster {
        eprintln!("stopping the private PostgreSQL ...");
        tokio::task::spawn_blocking(move || cluster.stop()).await?;
    }
    served.context("serving")
}

/// A secret of the state directory, made at the first run and kept across runs: the HS256
/// secret dev tokens are signed with (so tokens survive a restart; production verifies
/// tokens from a real issuer) and the key kept module code is signed with.
fn dev_secret(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(name);
    if let Ok(secret) = std::fs::read(&path)
        && secret.len() >= 32
    {
        return Ok(secret);
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, secret.as_bytes())?;
    Ok(secret.into_bytes())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

fn print_welcome(port: u16, ops_port: u16, token: &str) {
    let base = format!("http://127.0.0.1:{port}/api/v1/crm");
    println!(
        r#"
EERP dev server on http://127.0.0.1:{port}  (Ctrl-C stops it)
Metrics and readiness on http://127.0.0.1:{ops_port}/metrics and /readyz
Tenant `{DEMO_TENANT}`, role admin. Token (valid 24 h):

export TOKEN={token}

Try:
curl -s -X POST {base}/contacts -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"name":"Ada Lovelace","email":"ada@example.com","credit_limit":"1500.00"}}'
curl -s "{base}/contacts?limit=10" -H "authorization: Bearer $TOKEN"
curl -s -X PATCH {base}/contacts/ID -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"status":"customer"}}'
curl -s -X DELETE {base}/contacts/ID -H "authorization: Bearer $TOKEN"
curl -s -X POST {base}/contacts/ID/restore -H "authorization: Bearer $TOKEN"
curl -s {base}/contacts/stats -H "authorization: Bearer $TOKEN"
(replace ID with an "id" from the create or list answer)

The demo tenant also has Inventory, Accounting and HR, under /api/v1/inventory,
/api/v1/accounting and /api/v1/hr; the README's "The ERP modules" walks through them.

Operator commands use the operator token in .eerp/operator-token, e.g.:
eerp tenant create acme --name "Acme Ltd"
eerp token --tenant acme --role admin
eerp tenant suspend acme
eerp limits acme fuel_per_request=1000000
"#
    );
}
