//! The `eerp` binary: parse the command line, set up logs, run. Nothing else lives here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use eerp_platform::dev::{self, DevOptions};
use eerp_platform::{App, Settings, telemetry};
use eerp_tenancy::IssuerConfig;

#[derive(Parser)]
#[command(
    name = "eerp",
    version,
    about = "EERP: a multi-tenant ERP whose modules run in wasm sandboxes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything for local development: private PostgreSQL, demo tenant, token.
    Dev {
        /// Port to serve on.
        #[arg(long, env = "EERP_PORT", default_value_t = 8080)]
        port: u16,
        /// Where the private PostgreSQL and dev secret live.
        #[arg(long, default_value = ".eerp")]
        state_dir: PathBuf,
        /// Use this database instead of a private PostgreSQL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Serve in production: configuration from flags or EERP_* environment variables.
    Serve {
        /// PostgreSQL URL (may hold a password; never printed).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Address to listen on.
        #[arg(long, env = "EERP_HOST", default_value = "0.0.0.0")]
        host: String,
        /// Port to listen on.
        #[arg(long, env = "EERP_PORT", default_value_t = 8080)]
        port: u16,
        /// Expected token issuer (`iss`).
        #[arg(long, env = "EERP_JWT_ISSUER")]
        jwt_issuer: String,
        /// Expected token audience (`aud`).
        #[arg(long, env = "EERP_JWT_AUDIENCE", default_value = "eerp")]
        jwt_audience: String,
        /// HS256 secret (at least 32 bytes). Never logged.
        #[arg(long, env = "EERP_JWT_HS256_SECRET", hide_env_values = true)]
        jwt_hs256_secret: String,
        /// Claim holding the tenant slug.
        #[arg(long, env = "EERP_TENANT_CLAIM", default_value = "tid")]
        tenant_claim: String,
        /// Extra module files to load.
        #[arg(long = "module", env = "EERP_MODULES", value_delimiter = ',')]
        modules: Vec<PathBuf>,
    },
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
        Command::Serve {
            database_url,
            host,
            port,
            jwt_issuer,
            jwt_audience,
            jwt_hs256_secret,
            tenant_claim,
            modules,
        } => {
            telemetry::init(true, "info");
            anyhow::ensure!(
                jwt_hs256_secret.len() >= 32,
                "EERP_JWT_HS256_SECRET must be at least 32 bytes"
            );
            let issuer = IssuerConfig {
                issuer: jwt_issuer,
                audience: jwt_audience,
                hs256_secret: jwt_hs256_secret.into_bytes(),
                tenant_claim,
            };
            let mut settings = Settings::new(database_url, issuer);
            settings.host = host;
            settings.port = port;
            settings.extra_modules = modules;
            let app = App::build(settings).await?;
            tracing::info!(port = app.port(), "serving");
            app.run_until_stopped().await?;
            Ok(())
        }
    }
}
