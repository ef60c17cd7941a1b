//! `eerp module ...`: the module store and per-tenant module versions.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::{AdminClient, Connection};

/// Module commands.
#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    /// Upload a module version (`.wasm`); every replica loads it within seconds. It is
    /// enabled for no tenant until an operator enables it. A module without a manifest
    /// (the original EERP's contract) needs `--name` and `--version`, or a `module.json`
    /// beside the file with `name` and `version`.
    Upload {
        /// The module file.
        file: PathBuf,
        /// Name, for a module without a manifest.
        #[arg(long, requires = "version")]
        name: Option<String>,
        /// Version, for a module without a manifest.
        #[arg(long, requires = "name")]
        version: Option<String>,
    },
    /// List stored module versions and how many tenants each serves.
    List,
    /// Enable a module for a tenant (its newest version, or `--version`).
    Enable {
        /// Tenant slug.
        slug: String,
        /// Module name.
        module: String,
        /// Version to serve.
        #[arg(long)]
        version: Option<String>,
    },
    /// Disable a module for a tenant; its data is kept.
    Disable {
        /// Tenant slug.
        slug: String,
        /// Module name.
        module: String,
    },
    /// Move a tenant to another version of a module: migrate, then switch. Going back is
    /// allowed while the older version's migrations are a prefix of the tenant's.
    Upgrade {
        /// Tenant slug.
        slug: String,
        /// Module name.
        module: String,
        /// Version to serve.
        version: String,
    },
    /// Retire a version no tenant uses: replicas unload it.
    Retire {
        /// Module name.
        module: String,
        /// Version.
        version: String,
    },
    /// Create a module crate: one table, two routes, native unit tests; it builds to
    /// wasm and uploads with `eerp module upload`.
    New {
        /// Module name: lower-case letters, digits and `_`, starting with a letter.
        name: String,
        /// Where to create it (default: `./<name>`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The EERP SDK crate (default: the checkout this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Runs a module command.
///
/// # Errors
/// When the file cannot be read, or the service refuses (the problem's detail).
pub async fn run(connection: &Connection, command: ModuleCommand) -> anyhow::Result<()> {
    if let ModuleCommand::New { name, dir, sdk } = command {
        return scaffold(&name, dir, sdk);
    }
    let client = AdminClient::new(connection)?;
    let output = match command {
        ModuleCommand::Upload {
            file,
            name,
            version,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let path = match name.zip(version).or_else(|| module_json_beside(&file)) {
                Some((name, version)) => format!("/modules?name={name}&version={version}"),
                None => "/modules".into(),
            };
            client.post_bytes(&path, "application/wasm", bytes).await?
        }
        ModuleCommand::List => {
            print_versions(&client.get("/modules").await?["modules"]);
            return Ok(());
        }
        ModuleCommand::Enable {
            slug,
            module,
            version,
        } => serve(&client, &slug, &module, version.as_deref()).await?,
        ModuleCommand::Disable { slug, module } => {
            client
                .delete(&format!("/tenants/{slug}/modules/{module}"))
                .await?
        }
        ModuleCommand::Upgrade {
            slug,
            module,
            version,
        } => serve(&client, &slug, &module, Some(&version)).await?,
        ModuleCommand::Retire { module, version } => {
            client
                .delete(&format!("/modules/{module}/versions/{version}"))
                .await?
        }
        ModuleCommand::New { .. } => unreachable!("handled before connecting"),
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

/// Enables `module` for `slug` at `version` (default: its version, else the newest).
async fn serve(
    client: &AdminClient,
    slug: &str,
    module: &str,
    version: Option<&str>,
) -> anyhow::Result<Value> {
    let path = format!("/tenants/{slug}/modules/{module}");
    client.put(&path, &json!({"version": version})).await
}

/// The files of a new module crate: path, template.
const SCAFFOLD: [(&str, &str); 4] = [
    ("Cargo.toml", include_str!("scaffold/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("scaffold/lib.rs.tmpl")),
    ("README.md", include_str!("scaffold/README.md.tmpl")),
    (".gitignore", "target/\n"),
];

fn scaffold(name: &str, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<()> {
    eerp_tenancy::id::ModuleName::parse(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sdk = sdk
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../modules/sdk")));
    let sdk = std::fs::canonicalize(&sdk).with_context(|| {
        format!(
            "no EERP SDK at {}: pass --sdk with the path of modules/sdk in an EERP checkout",
            sdk.display()
        )
    })?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    anyhow::ensure!(
        !dir.exists(),
        "{} exists already; pick another --dir",
        dir.display()
    );
    for (path, template) in SCAFFOLD {
        let text = template
            .replace("{name}", name)
            .replace("{sdk}", &sdk.display().to_string());
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let dir = dir.display();
    println!("created module `{name}` in {dir}; next:");
    println!("  cargo test --manifest-path {dir}/Cargo.toml");
    println!(
        "  cargo build --release --target wasm32-unknown-unknown --manifest-path {dir}/Cargo.toml"
    );
    println!("  eerp module upload {dir}/target/wasm32-unknown-unknown/release/{name}.wasm");
    println!("  eerp module enable demo {name}");
    Ok(())
}

/// Name and version from a `module.json` (the original EERP's manifest) in the file's
/// folder, if there is one.
fn module_json_beside(file: &std::path::Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(file.parent()?.join("module.json")).ok()?;
    let manifest: Value = serde_json::from_str(&text).ok()?;
    let field = |key: &str| manifest[key].as_str().map(str::to_string);
    field("name").zip(field("version"))
}

fn print_versions(versions: &Value) {
    println!(
        "{:<20} {:<12} {:<8} {:<8} {:<10} SHA256",
        "MODULE", "VERSION", "ROUTES", "TENANTS", "STATE"
    );
    for v in versions.as_array().into_iter().flatten() {
        let state = if v["retired_at"].is_null() {
            "live"
        } else {
            "retired"
        };
        println!(
            "{:<20} {:<12} {:<8} {:<8} {:<10} {}",
            v["name"].as_str().unwrap_or(""),
            v["version"].as_str().unwrap_or(""),
            v["routes"],
            v["tenants"],
            state,
            v["sha256"].as_str().unwrap_or("").get(..16).unwrap_or("")
        );
    }
}
