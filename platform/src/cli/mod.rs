//! The operator commands of the `eerp` binary: a client of the admin API.
//!
//! Every command talks to a running service (`--url`, default the dev server) with an
//! operator token (`--token`/`EERP_OPERATOR_TOKEN`, or the one `eerp dev` wrote to
//! `.eerp/operator-token`). Results print as JSON (lists as tables); a refused action prints
//! the problem's detail and exits with status 1.

mod client;
mod modules;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use eerp_tenancy::id::TenantSlug;
use eerp_tenancy::{DevSigner, IssuerConfig};
use serde_json::{Value, json};

use crate::dev::{DEV_AUDIENCE, DEV_ISSUER};
pub use client::AdminClient;
pub use modules::ModuleCommand;

/// Where the admin API is and who calls it.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Base URL of the EERP service.
    pub url: String,
    /// Operator token; `None` reads the one `eerp dev` wrote into `state_dir`.
    pub token: Option<String>,
    /// The dev state directory (`eerp dev --state-dir`).
    pub state_dir: PathBuf,
}

/// Tenant commands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with its modules (re-run to finish an interrupted creation).
    Create {
        /// Slug: lower-case letters, digits and `_`, starting with a letter.
        slug: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Plan (default `standard`).
        #[arg(long)]
        plan: Option<String>,
        /// Modules to enable (default: the plan's), comma separated.
        #[arg(long, value_delimiter = ',')]
        modules: Option<Vec<String>>,
    },
    /// List tenants.
    List {
        /// Only tenants with this status.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one tenant with its effective limits.
    Show {
        /// Slug.
        slug: String,
    },
    /// Stop serving a tenant; its data is kept.
    Suspend {
        /// Slug.
        slug: String,
    },
    /// Serve a suspended tenant again.
    Resume {
        /// Slug.
        slug: String,
    },
    /// Soft-delete a tenant; `purge` drops its data after the grace period.
    Delete {
        /// Slug.
        slug: String,
    },
    /// Drop the data of tenants deleted longer ago than the grace period.
    Purge {
        /// Grace period in seconds (default: the server's, 30 days).
        #[arg(long)]
        grace_seconds: Option<u64>,
    },
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create, list, show, suspend, resume, delete and purge tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Set a tenant's plan and limit overrides, e.g. `eerp limits acme fuel_per_request=1000000`.
    Limits {
        /// Slug.
        slug: String,
        /// `field=value` overrides (`field=` removes one); see `eerp plan list` for fields.
        overrides: Vec<String>,
        /// Move the tenant to this plan.
        #[arg(long)]
        plan: Option<String>,
    },
    /// List plans, set one (`eerp plan set gold fuel_per_request=100000000`), or set the
    /// modules its new tenants get (`eerp plan modules gold crm,hello`).
    Plan {
        /// `list`, `set` or `modules`.
        action: String,
        /// Plan name (for `set` and `modules`).
        name: Option<String>,
        /// `field=value` limits (for `set`), module names (for `modules`).
        values: Vec<String>,
    },
    /// Upload, list and retire module versions; enable, upgrade or disable them per tenant.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Set what a tenant role grants: `eerp role acme sales crm.*`.
    Role {
        /// Slug.
        slug: String,
        /// Role name.
        role: String,
        /// Permission patterns (none removes the role).
        grants: Vec<String>,
    },
    /// Upgrade every tenant of a module to its newest (or a given) version, with a
    /// progress bar.
    MigrateAll {
        /// Module name.
        module: String,
        /// Target version (default: the newest stored).
        #[arg(long)]
        version: Option<String>,
        /// Tenants migrated at once.
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
    /// Show the audit log, newest first.
    Audit {
        /// Only this tenant's entries.
        #[arg(long)]
        tenant: Option<String>,
        /// Entries to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// Runs an operator command against the admin API.
///
/// # Errors
/// When the service cannot be reached or refuses the action (the problem's detail).
pub async fn run(connection: Connection, command: AdminCommand) -> anyhow::Result<()> {
    if let AdminCommand::Module(command) = command {
        return modules::run(&connection, command).await;
    }
    let client = AdminClient::new(&connection)?;
    let output = match command {
        AdminCommand::Tenant(command) => tenant(&client, command).await?,
        AdminCommand::Limits {
            slug,
            overrides,
            plan,
        } => {
            let current = client.get(&format!("/tenants/{slug}")).await?;
            let mut limits = current["limit_overrides"].clone();
            apply_assignments(&mut limits, &overrides)?;
            let body = json!({"plan": plan, "limits": limits});
            client
                .put(&format!("/tenants/{slug}/limits"), &body)
                .await?
        }
        AdminCommand::Plan {
            action,
            name,
            values,
        } => match (action.as_str(), name) {
            ("list", _) => client.get("/plans").await?,
            ("set", Some(name)) => {
                let mut body = json!({});
                apply_assignments(&mut body, &values)?;
                client.put(&format!("/plans/{name}"), &body).await?
            }
            ("modules", Some(name)) => {
                let modules: Vec<&str> = values
                    .iter()
                    .flat_map(|v| v.split(','))
                    .filter(|m| !m.is_empty())
                    .collect();
                let body = json!({"modules": modules});
                client.put(&format!("/plans/{name}/modules"), &body).await?
            }
            _ => anyhow::bail!(
                "use `eerp plan list`, `eerp plan set <name> field=value ...` or \
                 `eerp plan modules <name> <module>,...`"
            ),
        },
        AdminCommand::Module(_) => unreachable!("handled before connecting"),
        AdminCommand::Role { slug, role, grants } => {
            let path = format!("/tenants/{slug}/roles/{role}");
            client.put(&path, &json!({"grants": grants})).await?
        }
        AdminCommand::MigrateAll {
            module,
            version,
            workers,
        } => {
            return migrate_all(&client, &module, version.as_deref(), workers).await;
        }
        AdminCommand::Audit { tenant, limit } => {
            let mut path = format!("/audit?limit={limit}");
            if let Some(tenant) = tenant {
                path.push_str(&format!("&tenant={tenant}"));
            }
            client.get(&path).await?
        }
    };
    if !output.is_null() {
        println!("{}", serde_json::to_string_pretty(&output)?);
    }
    Ok(())
}

async fn tenant(client: &AdminClient, command: TenantCommand) -> anyhow::Result<Value> {
    Ok(match command {
        TenantCommand::Create {
            slug,
            name,
            plan,
            modules,
        } => {
            let body =
                json!({"slug": slug, "display_name": name, "plan": plan, "modules": modules});
            client.post("/tenants", &body).await?
        }
        TenantCommand::List { status } => {
            let path = match status {
                Some(status) => format!("/tenants?status={status}&limit=1000"),
                None => "/tenants?limit=1000".into(),
            };
            let list = client.get(&path).await?;
            print_tenant_table(&list["tenants"]);
            Value::Null
        }
        TenantCommand::Show { slug } => client.get(&format!("/tenants/{slug}")).await?,
        TenantCommand::Suspend { slug } => {
            client
                .post(&format!("/tenants/{slug}/suspend"), &json!({}))
                .await?
        }
        TenantCommand::Resume { slug } => {
            client
                .post(&format!("/tenants/{slug}/resume"), &json!({}))
                .await?
        }
        TenantCommand::Delete { slug } => client.delete(&format!("/tenants/{slug}")).await?,
        TenantCommand::Purge { grace_seconds } => {
            client
                .post("/purge", &json!({"grace_seconds": grace_seconds}))
                .await?
        }
    })
}

fn print_tenant_table(tenants: &Value) {
    println!("{:<40} {:<13} {:<12} MODULES", "SLUG", "STATUS", "PLAN");
    for t in tenants.as_array().into_iter().flatten() {
        let modules: Vec<String> = t["modules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["enabled"].as_bool() == Some(true))
            .map(|m| {
                let name = m["name"].as_str().unwrap_or("?");
                format!("{name}@{}", m["version"].as_str().unwrap_or("?"))
            })
            .collect();
        println!(
            "{:<40} {:<13} {:<12} {}",
            t["slug"].as_str().unwrap_or(""),
            t["status"].as_str().unwrap_or(""),
            t["plan"].as_str().unwrap_or(""),
            modules.join(",")
        );
    }
}

/// Applies `field=value` assignments to a JSON object; an empty value removes the field.
fn apply_assignments(object: &mut Value, assignments: &[String]) -> anyhow::Result<()> {
    if !object.is_object() {
        *object = json!({});
    }
    for assignment in assignments {
        let (field, value) = assignment
            .split_once('=')
            .with_context(|| format!("`{assignment}` is not field=value"))?;
        let Some(map) = object.as_object_mut() else {
            continue;
        };
        if value.is_empty() {
            map.remove(field);
            continue;
        }
        let number: u64 = value
            .replace('_', "")
            .parse()
            .with_context(|| format!("`{field}` must be a whole number, got `{value}`"))?;
        map.insert(field.to_string(), json!(number));
    }
    Ok(())
}

async fn migrate_all(
    client: &AdminClient,
    module: &str,
    version: Option<&str>,
    workers: usize,
) -> anyhow::Result<()> {
    let run = client
        .post(
            &format!("/modules/{module}/migrate"),
            &json!({"workers": workers, "version": version}),
        )
        .await?;
    let id = run["id"]
        .as_str()
        .context("the server did not return a run id")?
        .to_string();
    let total = run["total"].as_u64().unwrap_or(0);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {pos}/{len} tenants ({eta} left)",
        )?
        .progress_chars("=> "),
    );
    bar.set_message(format!(
        "{module} -> {}",
        run["module_version"].as_str().unwrap_or("?")
    ));
    let mut run = run;
    loop {
        let done = run["done"].as_u64().unwrap_or(0) + run["failed"].as_u64().unwrap_or(0);
        bar.set_position(done);
        if run["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        run = client.get(&format!("/migration-runs/{id}")).await?;
    }
    bar.finish();
    println!(
        "run {id}: {} migrated, {} failed, of {} ({})",
        run["done"],
        run["failed"],
        run["total"],
        run["status"].as_str().unwrap_or("")
    );
    for failure in run["failures"].as_array().into_iter().flatten() {
        println!(
            "  {}: {}",
            failure["tenant"].as_str().unwrap_or(""),
            failure["error"].as_str().unwrap_or("")
        );
    }
    let complete = run["status"] == "finished"
        && run["failed"].as_u64() == Some(0)
        && run["done"].as_u64() == run["total"].as_u64();
    anyhow::ensure!(
        complete,
        "some tenants were not migrated; fix the cause and run `eerp migrate-all {module}` again to resume"
    );
    Ok(())
}

/// Mints a dev token with the `eerp dev` secret. Development only: production tokens come
/// from the identity provider.
///
/// # Errors
/// When there is no dev secret (run `eerp dev` first) or the tenant slug is invalid.
pub fn mint_dev_token(
    state_dir: &std::path::Path,
    tenant: Option<&str>,
    roles: &[String],
    ttl: Duration,
) -> anyhow::Result<String> {
    let path = state_dir.join("dev-jwt-secret");
    let secret = std::fs::read(&path).with_context(|| {
        format!(
            "no dev signing secret at {}: `eerp token` only works against `eerp dev`",
            path.display()
        )
    })?;
    let issuer = IssuerConfig::hs256(DEV_ISSUER, DEV_AUDIENCE, secret);
    let signer = DevSigner::new(&issuer).context("the dev issuer signs with HS256")?;
    let token = match tenant {
        Some(tenant) => {
            let tenant = TenantSlug::parse(tenant)?;
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            signer.tenant_token(&tenant, "dev-user", &roles, ttl.as_secs())?
        }
        None => signer.operator_token("dev-operator", ttl.as_secs())?,
    };
    Ok(token)
}
