//! The module store: module versions as rows of `eerp.module_versions`.
//!
//! An upload is checked before anything is stored: it compiles with this engine, speaks
//! ABI v1, exports what the ABI requires, imports only what its manifest's capabilities
//! allow, has a sane manifest, and its migrations apply to a scratch schema inside a
//! transaction that is rolled back. A version is immutable: the same bytes again change
//! nothing, other bytes under a stored version are refused. Only the built-in modules of
//! a binary may replace their own rows (a developer rebuilding without a version bump).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::db::Pool;
use serde_json::{Value, json};
use thiserror::Error;
use wasmtime::Engine;

use super::{Registry, artifacts};
use crate::audit::commit_audited;
use crate::migrations::{MigrationError, dry_run};
use crate::notify::Change;
use crate::runtime::loaded::sha256_hex;
use crate::runtime::{Identity, LoadError, LoadedModule};

/// Why a module version could not be stored, found or changed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The module fails a check; the message names the first problem.
    #[error(transparent)]
    Invalid(#[from] LoadError),
    /// Its migrations do not apply to an empty schema.
    #[error("its migrations do not apply to an empty schema: {0}")]
    DryRun(#[source] MigrationError),
    /// The change conflicts with what is stored or in use.
    #[error("{0}")]
    Conflict(String),
    /// No such module version.
    #[error("{0}")]
    NotFound(String),
    /// The catalog could not be read or written.
    #[error("the module store failed in the database")]
    Db(#[from] tokio_postgres::Error),
    /// No database connection could be had.
    #[error("no database connection for the module store")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// A new version was stored.
    Created,
    /// The same bytes were stored already: nothing changed.
    Unchanged,
    /// The same bytes had been retired and are available again.
    Restored,
    /// A built-in module's row got this binary's bytes.
    Replaced,
}

/// Who stores a version.
#[derive(Debug, Clone, Copy)]
pub struct Uploader<'a> {
    /// For the audit log: the operator's `sub`, or what seeded it.
    pub actor: &'a str,
    /// Whether it is built into this binary.
    pub builtin: bool,
    /// Whether this is the start-up seed, which leaves a retired version retired (an
    /// operator's upload of the same bytes restores it).
    pub seeding: bool,
}

/// The store, with the engine that compiles its modules and the registry they load into.
#[derive(Clone, Copy)]
pub struct ModuleStore<'a> {
    /// The catalog.
    pub pool: &'a Pool,
    /// The engine modules are compiled for.
    pub engine: &'a Engine,
    /// Where loaded versions go.
    pub registry: &'a Registry,
    /// Signs and checks the compiled code kept in the catalog; `None` keeps none there.
    pub artifact_key: Option<&'a artifacts::ArtifactKey>,
}

const VERSION_JSON: &str = "SELECT json_build_object(
        'name', v.module, 'version', v.version, 'abi_version', v.abi_version,
        'sha256', v.sha256, 'size_bytes', octet_length(v.wasm), 'builtin', v.builtin,
        'migration_version', v.migration_version,
        'routes', jsonb_array_length(v.manifest->'routes'),
        'capabilities', v.manifest->'capabilities',
        'uploaded_by', v.uploaded_by, 'uploaded_at', v.uploaded_at, 'retired_at', v.retired_at,
        'tenants', (SELECT count(*) FROM eerp.tenant_modules m
                    WHERE m.module = v.module AND m.module_version = v.version))::text
    FROM eerp.module_versions v";

impl ModuleStore<'_> {
    /// Checks `wasm` and stores it as a new module version; loads it into the registry.
    /// `identity` names a module that carries no manifest (the original EERP's contract).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] or [`StoreError::DryRun`] naming the first problem,
    /// [`StoreError::Conflict`] when the version is stored with other bytes; nothing is
    /// stored then.
    pub async fn upload(
        &self,
        wasm: &[u8],
        uploader: Uploader<'_>,
        identity: Option<Identity<'_>>,
    ) -> Result<(Upload, Arc<LoadedModule>), StoreError> {
        let (module, compiled) = self.compile_and_check(wasm, identity).await?;
        let module = Arc::new(module);
        let (name, version) = (module.name.as_str(), module.version.to_string());
        let lookup = "SELECT sha256, builtin, retired_at IS NOT NULL FROM eerp.module_versions
                      WHERE module = $1 AND version = $2";
        let conn = self.pool.get().await?;
        let existing = conn.query_opt(lookup, &[&name, &version]).await?;
        drop(conn);
        let checked = decide(&module, uploader, existing.as_ref())?.needs_dry_run();
        if checked {
            // Before the transaction, on a connection of its own, so a pool of one works.
            dry_run(self.pool, module.schema())
                .await
                .map_err(StoreError::DryRun)?;
        }
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        // Uploads of one (module, version) take turns, even before its row exists (a row
        // lock cannot lock a row that is not there yet); then decide again, since another
        // replica may have stored it meanwhile.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("eerp.module:{name}@{version}")],
        )
        .await?;
        let existing = tx
            .query_opt(&format!("{lookup} FOR UPDATE"), &[&name, &version])
            .await?;
        let (upload, action) = match decide(&module, uploader, existing.as_ref())? {
            Step::Unchanged => {
                self.keep(&compiled).await;
                self.install(&module, &compiled);
                return Ok((Upload::Unchanged, module));
            }
            Step::StaysRetired => return Ok((Upload::Unchanged, module)),
            Step::Restore => {
                tx.execute(
                    "UPDATE eerp.module_versions SET retired_at = NULL WHERE module = $1 AND version = $2",
                    &[&name, &version],
                )
                .await?;
                (Upload::Restored, "module.restore")
            }
            step if step.needs_dry_run() && !checked => {
                return Err(StoreError::Conflict(format!(
                    "module `{name}` {version} was stored by someone else meanwhile; upload again"
                )));
            }
            step @ (Step::Replace | Step::Insert) => {
                // `Replace` only ever rewrites a built-in module's own row (see `decide`).
                tx.execute(
                    "INSERT INTO eerp.module_versions (module, version, wasm, sha256, manifest,
                         migration_version, abi_version, uploaded_by, builtin)
                     VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9)
                     ON CONFLICT (module, version) DO UPDATE SET wasm = EXCLUDED.wasm,
                         sha256 = EXCLUDED.sha256, manifest = EXCLUDED.manifest,
                         migration_version = EXCLUDED.migration_version,
                         abi_version = EXCLUDED.abi_version, uploaded_by = EXCLUDED.uploaded_by,
                         uploaded_at = now()",
                    &[
                        &name,
                        &version,
                        &wasm,
                        &module.sha256,
                        &manifest_json(&module),
                        &migration_version(&module),
                        &(module.manifest.abi_version as i32),
                        &uploader.actor,
                        &uploader.builtin,
                    ],
                )
                .await?;
                match step {
                    Step::Replace => (Upload::Replaced, "module.replace"),
                    _ => (Upload::Created, "module.upload"),
                }
            }
        };
        // Kept before the commit: the commit tells the other replicas to load this version,
        // and they should find its code. (A commit that then fails leaves an unused row.)
        self.keep(&compiled).await;
        let after = json!({"module": name, "version": version, "sha256": module.sha256});
        commit_audited(
            tx,
            uploader.actor,
            action,
            None,
            Change::Modules,
            None,
            Some(&after),
        )
        .await?;
        self.install(&module, &compiled);
        tracing::info!(module = name, %version, sha256 = %module.sha256, action, "module version stored");
        Ok((upload, module))
    }

    /// Stores the built-in modules and the files in `extra` (`eerp serve --module`), and
    /// gives tenants that predate the store the built-in version they were migrated with.
    /// Returns the versions stored (or found stored), built-in ones first.
    ///
    /// # Errors
    /// The first module that cannot be read or stored, named.
    pub async fn seed(
        &self,
        builtin: &[(&str, &[u8])],
        extra: &[impl AsRef<Path>],
    ) -> anyhow::Result<Vec<Arc<LoadedModule>>> {
        let mut seeded = Vec::with_capacity(builtin.len() + extra.len());
        for (file, bytes) in builtin {
            let uploader = Uploader {
                actor: "eerp (built in)",
                builtin: true,
                seeding: true,
            };
            let (_, module) = self
                .upload(bytes, uploader, None)
                .await
                .map_err(|e| anyhow::anyhow!("built-in module {file}: {e}"))?;
            self.backfill(&module).await?;
            seeded.push(module);
        }
        for path in extra {
            let path = path.as_ref();
            let bytes = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read module {}: {e}", path.display()))?;
            let uploader = Uploader {
                actor: "eerp serve --module",
                builtin: false,
                seeding: true,
            };
            let (_, module) = self
                .upload(&bytes, uploader, None)
                .await
                .map_err(|e| anyhow::anyhow!("module {}: {e}", path.display()))?;
            self.backfill(&module).await?;
            seeded.push(module);
        }
        Ok(seeded)
    }

    /// Tenants that predate the store (no served version recorded) are served `module`
    /// when they have all its migrations; the others wait for a fleet run.
    async fn backfill(&self, module: &LoadedModule) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        conn.execute(
            "UPDATE eerp.tenant_modules SET module_version = $2
             WHERE module = $1 AND module_version IS NULL AND version >= $3",
            &[
                &module.name.as_str(),
                &module.version.to_string(),
                &migration_version(module),
            ],
        )
        .await?;
        Ok(())
    }

    /// Makes the registry hold exactly the store's live versions: loads the missing ones,
    /// forgets retired or replaced ones. A version that fails to load is logged and
    /// skipped, so one bad row cannot stop a replica.
    ///
    /// # Errors
    /// When the catalog cannot be read.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT module, version, sha256 FROM eerp.module_versions WHERE retired_at IS NULL",
                &[],
            )
            .await?;
        drop(conn);
        let live: BTreeMap<(String, String), String> = rows
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect();
        // Under the loading lock, so an on-demand load that read the store before this
        // sync cannot install what the sync just dropped.
        let _serial = self.registry.loading.lock().await;
        self.registry.retain(|name, version, module| {
            live.get(&(name.to_string(), version.to_string())) == Some(&module.sha256)
        });
        for (name, version) in live.keys() {
            if let Err(e) = self.load_locked(name, version).await {
                tracing::error!(module = %name, %version, error = %e, "cannot load a stored module version");
            }
        }
        Ok(())
    }

    /// Version `version` of `name`: from the registry, else loaded from the store (once,
    /// however many requests ask at the same time). `None` when the store has no live
    /// row for it.
    ///
    /// # Errors
    /// When the catalog cannot be read or the stored module no longer loads.
    pub async fn load(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<Arc<LoadedModule>>, StoreError> {
        if let Some(module) = self.registry.get(name, version) {
            return Ok(Some(module));
        }
        let _serial = self.registry.loading.lock().await;
        self.load_locked(name, version).await
    }

    /// [`ModuleStore::load`], with the loading lock held.
    async fn load_locked(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<Arc<LoadedModule>>, StoreError> {
        if let Some(module) = self.registry.get(name, version) {
            return Ok(Some(module));
        }
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT wasm FROM eerp.module_versions
                 WHERE module = $1 AND version = $2 AND retired_at IS NULL",
                &[&name, &version],
            )
            .await?;
        drop(conn);
        let Some(row) = row else {
            return Ok(None);
        };
        let identity = Identity { name, version };
        let wasm: &[u8] = row.get(0);
        let (module, compiled) = self.compile_and_check(wasm, Some(identity)).await?;
        let module = Arc::new(module);
        self.keep(&compiled).await;
        self.install(&module, &compiled);
        Ok(Some(module))
    }

    /// Serves `module` from this replica and counts where its code came from.
    fn install(&self, module: &Arc<LoadedModule>, compiled: &artifacts::Compiled) {
        self.registry.install(module.clone());
        self.registry.record_load(compiled.source);
    }

    /// Keeps `compiled`'s code in the catalog, when this store has a key to sign it. Only
    /// for a version that is (or is about to be) stored: a refused upload keeps nothing.
    async fn keep(&self, compiled: &artifacts::Compiled) {
        if let Some(catalog) = self.catalog() {
            compiled.keep(catalog).await;
        }
    }

    /// Where compiled code is kept in the catalog, when this store has a key to sign it.
    fn catalog(&self) -> Option<artifacts::Catalog<'_>> {
        self.artifact_key.map(|key| artifacts::Catalog {
            pool: self.pool,
            key,
        })
    }

    /// `wasm` compiled (or its kept artefact deserialised, see [`artifacts`]) and checked,
    /// with its compiled code for [`ModuleStore::keep`].
    async fn compile_and_check(
        &self,
        wasm: &[u8],
        identity: Option<Identity<'_>>,
    ) -> Result<(LoadedModule, artifacts::Compiled), LoadError> {
        let started = std::time::Instant::now();
        let sha256 = sha256_hex(wasm);
        let catalog = self.catalog();
        let compiled = artifacts::compiled(catalog, self.engine, wasm, &sha256).await?;
        let module =
            LoadedModule::from_compiled(self.engine, compiled.module.clone(), sha256, identity)
                .await?;
        tracing::info!(
            module = %module.name,
            version = %module.version,
            routes = module.manifest.routes.len(),
            code = compiled.source.as_str(),
            load_ms = started.elapsed().as_millis() as u64,
            "module version compiled and checked"
        );
        Ok((module, compiled))
    }

    /// Every stored version, by module and upload time, with how many tenants use it.
    ///
    /// # Errors
    /// When the catalog cannot be read.
    pub async fn list(&self) -> Result<Vec<Value>, StoreError> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!("{VERSION_JSON} ORDER BY v.module, v.uploaded_at, v.version"),
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(r.get(0)).ok())
            .collect())
    }

    /// One stored version.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn show(&self, name: &str, version: &str) -> Result<Value, StoreError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("{VERSION_JSON} WHERE v.module = $1 AND v.version = $2"),
                &[&name, &version],
            )
            .await?
            .ok_or_else(|| not_found(name, version))?;
        serde_json::from_str(row.get(0))
            .map_err(|e| StoreError::Conflict(format!("unreadable catalog row: {e}")))
    }

    /// Retires a version no tenant uses: replicas unload it and it cannot be enabled;
    /// uploading the same bytes again restores it. Retiring twice changes nothing.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or [`StoreError::Conflict`] naming tenants still on it.
    pub async fn retire(
        &self,
        name: &str,
        version: &str,
        actor: &str,
    ) -> Result<Value, StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        let retired: bool = tx
            .query_opt(
                "SELECT retired_at IS NOT NULL FROM eerp.module_versions
                 WHERE module = $1 AND version = $2 FOR UPDATE",
                &[&name, &version],
            )
            .await?
            .ok_or_else(|| not_found(name, version))?
            .get(0);
        if !retired {
            let users: Vec<String> = tx
                .query(
                    "SELECT t.slug FROM eerp.tenant_modules m JOIN eerp.tenants t ON t.id = m.tenant_id
                     WHERE m.module = $1 AND m.module_version = $2 ORDER BY t.slug LIMIT 6",
                    &[&name, &version],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !users.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "tenants are still served `{name}` {version} ({}{}); upgrade or roll them \
                     back to another version first",
                    users.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    if users.len() > 5 { ", ..." } else { "" }
                )));
            }
            tx.execute(
                "UPDATE eerp.module_versions SET retired_at = now() WHERE module = $1 AND version = $2",
                &[&name, &version],
            )
            .await?;
            // Its compiled code goes too, unless a live version has the same bytes.
            tx.execute(
                "DELETE FROM eerp.module_artifacts a USING eerp.module_versions v
                 WHERE v.module = $1 AND v.version = $2 AND a.sha256 = v.sha256
                   AND NOT EXISTS (SELECT 1 FROM eerp.module_versions o
                                   WHERE o.sha256 = v.sha256 AND o.retired_at IS NULL)",
                &[&name, &version],
            )
            .await?;
            let after = json!({"module": name, "version": version, "retired": true});
            commit_audited(
                tx,
                actor,
                "module.retire",
                None,
                Change::Modules,
                None,
                Some(&after),
            )
            .await?;
            self.registry
                .retain(|n, v, _| !(n == name && v.to_string() == version));
        } else {
            drop(tx);
        }
        drop(conn);
        self.show(name, version).await
    }
}

/// What an upload must do, given the row stored under its (name, version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Unchanged,
    StaysRetired,
    Restore,
    Replace,
    Insert,
}

impl Step {
    fn needs_dry_run(self) -> bool {
        matches!(self, Step::Replace | Step::Insert)
    }
}

fn decide(
    module: &LoadedModule,
    uploader: Uploader<'_>,
    existing: Option<&tokio_postgres::Row>,
) -> Result<Step, StoreError> {
    let Some(row) = existing else {
        return Ok(Step::Insert);
    };
    let (stored, builtin, retired): (&str, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if stored == module.sha256 {
        return Ok(match (retired, uploader.seeding) {
            (false, _) => Step::Unchanged,
            (true, false) => Step::Restore,
            (true, true) => Step::StaysRetired,
        });
    }
    if uploader.builtin && builtin {
        return Ok(Step::Replace);
    }
    Err(StoreError::Conflict(format!(
        "module `{}` {} is already stored with other bytes (sha256 {stored}); a version is \
         immutable: give the new build a new version",
        module.name, module.version
    )))
}

fn not_found(name: &str, version: &str) -> StoreError {
    StoreError::NotFound(format!(
        "no version {version} of module `{name}` is stored; `eerp module list` shows what is"
    ))
}

fn manifest_json(module: &LoadedModule) -> String {
    serde_json::to_string(&module.manifest).unwrap_or_else(|_| "{}".into())
}

fn migration_version(module: &LoadedModule) -> i32 {
    module.migrations.last().map_or(0, |m| m.version as i32)
}
