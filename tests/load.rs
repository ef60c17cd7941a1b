//! `eerp-load`: the load generator behind the tenancy figures in `docs/performance.md`.
//!
//! - `provision`: creates tenants through the admin API with C requests in flight (with
//!   the plan's modules, or `--modules`) and reports tenants per second.
//! - `tokens`: prints one tenant token per line, for `wrk` scripts that spread requests
//!   over many tenants (`tests/bench/tenants.lua`).
//! - `operator-token`: an operator token, to lift the rate limits of the benchmark's plan.
//!
//! Tokens are signed with an HS256 secret the benchmarked `eerp serve` was given
//! (`--jwt-algorithms HS256 --jwt-hs256-secret ...`). Loopback only.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eerp_tenancy::id::TenantSlug;
use eerp_tenancy::{DevSigner, IssuerConfig};
use futures_util::StreamExt;
use serde_json::json;

#[derive(Parser)]
struct Cli {
    /// Issuer the server expects.
    #[arg(long, default_value = "eerp-bench")]
    issuer: String,
    /// Tenant audience; operator tokens use `<audience>-admin`.
    #[arg(long, default_value = "eerp")]
    audience: String,
    /// The server's HS256 secret.
    #[arg(long, env = "EERP_JWT_HS256_SECRET")]
    secret: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create `count` tenants `<prefix>_<n>` with every module.
    Provision {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value = "bench")]
        prefix: String,
        /// Modules to enable (comma-separated); default: the plan's.
        #[arg(long, value_delimiter = ',')]
        modules: Option<Vec<String>>,
    },
    /// Print an operator token (for `eerp --token` or curl against `/admin/v1`).
    OperatorToken,
    /// Print admin tokens of tenants `<prefix>_1..=count`, one per line.
    Tokens {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value = "bench")]
        prefix: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut issuer = IssuerConfig::hs256(&cli.issuer, &cli.audience, cli.secret.into_bytes());
    issuer.operator_audience = Some(format!("{}-admin", cli.audience));
    let signer = DevSigner::new(&issuer).context("HS256 signer")?;
    match cli.command {
        Command::OperatorToken => println!("{}", signer.operator_token("bench", 3600)?),
        Command::Tokens { count, prefix } => {
            for n in 1..=count {
                let tenant = TenantSlug::parse(&format!("{prefix}_{n}"))?;
                println!(
                    "{}",
                    signer.tenant_token(&tenant, "bench", &["admin"], 24 * 3600)?
                );
            }
        }
        Command::Provision {
            url,
            count,
            concurrency,
            prefix,
            modules,
        } => {
            let operator = Arc::new(signer.operator_token("bench", 3600)?);
            let client = reqwest::Client::new();
            let started = Instant::now();
            let failures = futures_util::stream::iter(1..=count)
                .map(|n| {
                    let (client, operator, url) = (client.clone(), operator.clone(), url.clone());
                    let slug = format!("{prefix}_{n}");
                    let body = match &modules {
                        Some(modules) => json!({ "slug": slug, "modules": modules }),
                        None => json!({ "slug": slug }),
                    };
                    async move {
                        let response = client
                            .post(format!("{url}/admin/v1/tenants"))
                            .bearer_auth(operator.as_str())
                            .json(&body)
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status().is_success() => 0,
                            Ok(r) => {
                                if n <= 3 {
                                    eprintln!("{slug}: {}", r.text().await.unwrap_or_default());
                                }
                                1
                            }
                            Err(e) => {
                                if n <= 3 {
                                    eprintln!("{slug}: {e}");
                                }
                                1
                            }
                        }
                    }
                })
                .buffer_unordered(concurrency)
                .fold(0usize, |acc, failed| async move { acc + failed })
                .await;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "created {} tenants ({failures} failed) in {seconds:.1} s with {concurrency} in flight: {:.1} tenants/s",
                count - failures,
                (count - failures) as f64 / seconds
            );
        }
    }
    Ok(())
}
