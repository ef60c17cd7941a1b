//! The `eerp` binary: parse the command line, set up logs, run. Nothing else lives here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use eerp_platform::cli::{self, AdminCommand, Connection};
use eerp_platform::dev::{self, DevOptions};
use eerp_platform::registry::artifacts::ArtifactKey;
use eerp_platform::upgrade::MigrateOptions;
use eerp_platform::{App, Settings, telemetry};
use eerp_tenancy::{IssuerConfig, KeySource};
use jsonwebtoken::Algorithm;

#[derive(Parser)]
#[command(
    name = "eerp",
    version,
    about = "EERP: a multi-tenant ERP whose modules run in wasm sandboxes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Base URL of the EERP service, for operator commands.
    #[arg(
        long,
        env = "EERP_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Operator token for operator commands; defaults to the one `eerp dev` wrote.
    #[arg(
        long,
        env = "EERP_OPERATOR_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything for local development: private PostgreSQL, demo tenant, tokens.
    Dev {
        /// Port to serve on.
        #[arg(long, env = "EERP_PORT", default_value_t = 8080)]
        port: u16,
        /// Where the private PostgreSQL, dev secret and operator token live.
        #[arg(long, default_value = ".eerp")]
        state_dir: PathBuf,
        /// Use this database instead of a private PostgreSQL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Serve in production: configuration from flags or EERP_* environment variables.
    Serve(Box<ServeArgs>),
    /// Migrates the catalog, stores the built-in modules (and --module files) and moves
    /// every tenant to them, then exits: a release's pre-upgrade step (the Helm chart's
    /// Job). Exits with status 1 when a tenant could not be migrated.
    Migrate {
        /// PostgreSQL URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Extra module files, stored beside the built-in ones.
        #[arg(long = "module", env = "EERP_MODULES", value_delimiter = ',')]
        modules: Vec<PathBuf>,
        /// Tenants migrated at once.
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
    /// Mint a token signed with the `eerp dev` secret (development only).
    Token {
        /// Tenant slug; without it, an operator token for the admin API is minted.
        #[arg(long)]
        tenant: Option<String>,
        /// Roles of the tenant token.
        #[arg(long = "role", default_value = "admin")]
        roles: Vec<String>,
        /// Validity in seconds.
        #[arg(long, default_value_t = 24 * 3600)]
        ttl: u64,
        /// The dev state directory.
        #[arg(long, default_value = ".eerp")]
        state_dir: PathBuf,
    },
    /// Operator commands (admin API client).
    #[command(flatten)]
    Admin(AdminCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// PostgreSQL URL (may hold a password; never printed).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Address to listen on.
    #[arg(long, env = "EERP_HOST", default_value = "0.0.0.0")]
    host: String,
    /// Port to listen on.
    #[arg(long, env = "EERP_PORT", default_value_t = 8080)]
    port: u16,
    /// Port of `/metrics`, `/readyz` and `/livez` (keep it off the public network).
    #[arg(long, env = "EERP_OPS_PORT", default_value_t = 8081)]
    ops_port: u16,
    /// Expected token issuer (`iss`).
    #[arg(long, env = "EERP_JWT_ISSUER")]
    jwt_issuer: String,
    /// Audience (`aud`) of tenant tokens.
    #[arg(long, env = "EERP_JWT_AUDIENCE", default_value = "eerp")]
    jwt_audience: String,
    /// Audience of operator tokens for the admin API; empty: this issuer mints no operator
    /// tokens (operators then come from an `--issuers-file` issuer of their own).
    #[arg(long, env = "EERP_JWT_OPERATOR_AUDIENCE", default_value = "eerp-admin")]
    jwt_operator_audience: String,
    /// Tenants this issuer may name (slugs, or prefixes ending in `*`); default: any.
    #[arg(long, env = "EERP_JWT_TENANTS", value_delimiter = ',')]
    jwt_tenants: Option<Vec<String>>,
    /// More issuers, as a JSON array (see docs/operations.md): tenants' own identity
    /// providers bound to their tenants, or an operator-only issuer.
    #[arg(long, env = "EERP_ISSUERS_FILE")]
    issuers_file: Option<PathBuf>,
    /// Accepted algorithms: RS256, ES256, EdDSA, or HS256 alone.
    #[arg(
        long,
        env = "EERP_JWT_ALGORITHMS",
        value_delimiter = ',',
        default_value = "RS256,ES256,EdDSA"
    )]
    jwt_algorithms: Vec<String>,
    /// JWKS URL of the issuer (keys by `kid`, refetched on an unknown `kid`).
    #[arg(long, env = "EERP_JWT_JWKS_URL")]
    jwt_jwks_url: Option<String>,
    /// JWKS file of the issuer.
    #[arg(long, env = "EERP_JWT_JWKS_FILE")]
    jwt_jwks_file: Option<PathBuf>,
    /// PEM public key files of the issuer.
    #[arg(
        long = "jwt-public-key",
        env = "EERP_JWT_PUBLIC_KEYS",
        value_delimiter = ','
    )]
    jwt_public_keys: Vec<PathBuf>,
    /// HS256 secret (at least 32 bytes); only with `--jwt-algorithms HS256`. Never logged.
    #[arg(long, env = "EERP_JWT_HS256_SECRET", hide_env_values = true)]
    jwt_hs256_secret: Option<String>,
    /// Claim holding the tenant slug.
    #[arg(long, env = "EERP_TENANT_CLAIM", default_value = "tid")]
    tenant_claim: String,
    /// Days a deleted tenant's data is kept before `eerp tenant purge` may drop it.
    #[arg(long, env = "EERP_PURGE_GRACE_DAYS", default_value_t = 30)]
    purge_grace_days: u64,
    /// Module files to store in the catalog at start-up (like `eerp module upload`).
    #[arg(long = "module", env = "EERP_MODULES", value_delimiter = ',')]
    modules: Vec<PathBuf>,
    /// Largest module upload, in bytes.
    #[arg(long, env = "EERP_MAX_MODULE_BYTES", default_value_t = 32 << 20)]
    max_module_bytes: usize,
    /// Secret (at least 32 bytes, the same on every replica) that signs the compiled
    /// modules kept in the catalog; without it every replica compiles every module at
    /// start. Never logged.
    #[arg(long, env = "EERP_ARTIFACT_KEY", hide_env_values = true)]
    artifact_key: Option<String>,
    /// Tenants with their own `tenant` label in metrics (the rest count as `other`).
    #[arg(long, env = "EERP_METRICS_TOP_TENANTS", default_value_t = 20)]
    metrics_top_tenants: usize,
    /// Connections in the shared PostgreSQL pool of this replica.
    #[arg(long, env = "EERP_DB_POOL_SIZE", default_value_t = 16)]
    db_pool_size: usize,
    /// Milliseconds a request waits for a connection before it gets 503 with Retry-After.
    #[arg(long, env = "EERP_DB_POOL_WAIT_MS", default_value_t = 5000)]
    db_pool_wait_ms: u64,
    /// Prepared statements each pooled connection keeps (0: prepare none, e.g. behind a
    /// connection pooler that cannot keep them).
    #[arg(long, env = "EERP_DB_STATEMENT_CACHE", default_value_t = 128)]
    db_statement_cache: usize,
    /// Seconds in-flight requests may take to finish after SIGTERM (then rolled back).
    #[arg(long, env = "EERP_DRAIN_TIMEOUT_SECS", default_value_t = 30)]
    drain_timeout_secs: u64,
    /// Fraction (0 < f <= 1) of this replica's cores, connections and sandbox slots one
    /// tenant may hold at once.
    #[arg(long, env = "EERP_TENANT_SHARE", default_value_t = 0.5)]
    tenant_share: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev {
            port,
            state_dir,
            database_url,
        } => {
            telemetry::init(false, "info,eerp::request=info");
            dev::run(DevOptions {
                state_dir,
                port,
                database_url,
            })
            .await
        }
        Command::Serve(args) => serve(*args).await,
        Command::Migrate {
            database_url,
            modules,
            workers,
        } => {
            telemetry::init(true, "info");
            migrate(MigrateOptions {
                database_url,
                extra_modules: modules,
                workers: workers.max(1),
            })
            .await
        }
        Command::Token {
            tenant,
            roles,
            ttl,
            state_dir,
        } => {
            let token = cli::mint_dev_token(
                &state_dir,
                tenant.as_deref(),
                &roles,
                Duration::from_secs(ttl),
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Admin(command) => {
            let connection = Connection {
                url: cli.url,
                token: cli.token,
                state_dir: std::env::var_os("EERP_STATE_DIR").map_or(".eerp".into(), PathBuf::from),
            };
            cli::run(connection, command).await
        }
    }
}

async fn migrate(options: MigrateOptions) -> anyhow::Result<()> {
    let outcomes = eerp_platform::upgrade::migrate(&options).await?;
    let mut failed = 0;
    for outcome in &outcomes {
        let run = &outcome.run;
        println!(
            "{} {}: {} tenants migrated, {} failed",
            outcome.module, outcome.version, run["done"], run["failed"]
        );
        for failure in run["failures"].as_array().into_iter().flatten() {
            println!("  {}: {}", failure["tenant"], failure["error"]);
        }
        failed += outcome.failed();
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} tenant migrations failed; fix them and run `eerp migrate` again (it retries only those)"
        );
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(true, "info");
    let algorithms = args
        .jwt_algorithms
        .iter()
        .map(|a| {
            a.trim().parse::<Algorithm>().map_err(|_| {
                anyhow::anyhow!("unknown JWT algorithm `{a}`; use RS256, ES256, EdDSA or HS256")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keys = match (
        args.jwt_jwks_url,
        args.jwt_jwks_file,
        args.jwt_public_keys.is_empty(),
        args.jwt_hs256_secret,
    ) {
        (Some(url), None, true, None) => KeySource::JwksUrl(url),
        (None, Some(file), true, None) => KeySource::JwksFile(file),
        (None, None, false, None) => KeySource::PemFiles(args.jwt_public_keys),
        (None, None, true, Some(secret)) => KeySource::Hs256Secret(secret.into_bytes()),
        _ => anyhow::bail!(
            "configure exactly one key source: --jwt-jwks-url, --jwt-jwks-file, --jwt-public-key or --jwt-hs256-secret"
        ),
    };
    let issuer = IssuerConfig {
        issuer: args.jwt_issuer,
        audience: args.jwt_audience,
        operator_audience: Some(args.jwt_operator_audience).filter(|a| !a.is_empty()),
        algorithms,
        keys,
        tenant_claim: args.tenant_claim,
        tenants: args.jwt_tenants,
    };
    let mut issuers = vec![issuer];
    if let Some(path) = &args.issuers_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the issuers file {}: {e}", path.display()))?;
        issuers
            .extend(eerp_platform::config::issuers_from_json(&text).map_err(anyhow::Error::msg)?);
    }
    let mut settings = Settings::new(args.database_url, issuers);
    settings.host = args.host;
    settings.port = args.port;
    settings.ops_port = args.ops_port;
    settings.extra_modules = args.modules;
    settings.max_module_bytes = args.max_module_bytes;
    settings.artifact_key = args
        .artifact_key
        .map(ArtifactKey::new)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if settings.artifact_key.is_none() {
        tracing::warn!(
            "no --artifact-key: compiled modules are not kept in the catalog, so every start compiles them"
        );
    }
    settings.purge_grace = Duration::from_secs(args.purge_grace_days * 24 * 3600);
    settings.metrics_top_tenants = args.metrics_top_tenants;
    settings.db_pool_size = args.db_pool_size.max(1);
    settings.db_pool_wait = Duration::from_millis(args.db_pool_wait_ms);
    settings.db_statement_cache = args.db_statement_cache;
    settings.tenant_share = args.tenant_share;
    settings.drain_timeout = Duration::from_secs(args.drain_timeout_secs);
    let app = App::build(settings).await?;
    tracing::info!(port = app.port(), ops_port = app.ops_port(), "serving");
    app.run_until_stopped().await?;
    Ok(())
}
