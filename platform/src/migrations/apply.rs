//! Applying a module's pending migrations to one tenant.

use crate::db::Pool;
use eerp_tenancy::id::{TenantSlug, schema_name};
use serde_json::Value;

use super::plan::plan;
use super::{MigrationError, ModuleSchema};
use crate::sql::quote_ident;

/// Applies the steps of `module` that tenant `tenant` (catalog id `tenant_id`) lacks, in
/// one transaction under an advisory lock on the schema, records the module's version for
/// the tenant, and returns the versions applied now.
/// Running it again applies nothing.
///
/// # Errors
/// [`MigrationError::Changed`] when an applied step was edited since,
/// [`MigrationError::Ahead`] when the database knows newer steps than the module, and
/// [`MigrationError::Db`] when a statement fails and [`MigrationError::Unavailable`] when the
/// database cannot be reached (nothing is applied then).
pub async fn apply_module(
    pool: &Pool,
    tenant_id: &str,
    tenant: &TenantSlug,
    module: ModuleSchema<'_>,
) -> Result<Vec<u32>, MigrationError> {
    let schema = schema_name(tenant, module.name);
    let (steps, _) = plan(&schema, module.migrations)?;
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.batch_execute("SET LOCAL lock_timeout = '30s'; SET LOCAL standard_conforming_strings = on")
        .await?;
    lock_live_version(&tx, &schema, module).await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_ident(&schema)
    ))
    .await?;
    let history = tx
        .query(
            "SELECT version, step::text FROM eerp.migration_history
             WHERE tenant_id = $1::text::uuid AND module = $2 ORDER BY version",
            &[&tenant_id, &module.name.as_str()],
        )
        .await?;
    let mut applied = Vec::new();
    for row in &history {
        let version = row.get::<_, i32>(0) as u32;
        let recorded: Value = serde_json::from_str(row.get::<_, &str>(1))
            .map_err(|e| MigrationError::Json(e.to_string()))?;
        let changed = || MigrationError::Changed {
            module: module.name.to_string(),
            tenant: tenant.to_string(),
            version,
        };
        let current = steps.iter().find(|s| s.version == version);
        match current {
            Some(step) if step.json == recorded => applied.push(version),
            Some(_) => return Err(changed()),
            None => {
                return Err(MigrationError::Ahead {
                    module: module.name.to_string(),
                    tenant: tenant.to_string(),
                    applied: history
                        .iter()
                        .map(|r| r.get::<_, i32>(0) as u32)
                        .max()
                        .unwrap_or(version),
                    known: steps.last().map_or(0, |s| s.version),
                });
            }
        }
    }
    let mut newly = Vec::new();
    for step in steps.iter().filter(|s| !applied.contains(&s.version)) {
        for statement in &step.statements {
            tx.batch_execute(statement).await?;
        }
        tx.execute(
            "INSERT INTO eerp.migration_history (tenant_id, module, version, entity, step)
             VALUES ($1::text::uuid, $2, $3, $4, $5::text::jsonb)",
            &[
                &tenant_id,
                &module.name.as_str(),
                &(step.version as i32),
                &step.entity,
                &step.json.to_string(),
            ],
        )
        .await?;
        newly.push(step.version);
    }
    // The module counts as enabled once its schema is complete, and from then on the
    // tenant is served this module version; a module disabled earlier stays disabled
    // (only its versions move).
    let version = steps.last().map_or(0, |s| s.version as i32);
    tx.execute(
        "INSERT INTO eerp.tenant_modules (tenant_id, module, version, module_version)
         VALUES ($1::text::uuid, $2, $3, $4)
         ON CONFLICT (tenant_id, module) DO UPDATE
         SET version = EXCLUDED.version, module_version = EXCLUDED.module_version",
        &[
            &tenant_id,
            &module.name.as_str(),
            &version,
            &module.version.to_string(),
        ],
    )
    .await?;
    tx.commit().await?;
    if !newly.is_empty() {
        tracing::info!(%tenant, module = %module.name, versions = ?newly, "migrations applied");
    }
    Ok(newly)
}

/// Applies every migration of `module` to a scratch schema inside a transaction that is
/// then rolled back, so a module whose migrations PostgreSQL refuses is never stored.
///
/// # Errors
/// [`MigrationError::Invalid`] naming the step PostgreSQL refused and why,
/// [`MigrationError::Unavailable`] when the database cannot be reached.
pub async fn dry_run(pool: &Pool, module: ModuleSchema<'_>) -> Result<(), MigrationError> {
    let schema = format!("eerp_dry_run_{}", uuid::Uuid::new_v4().simple());
    let (steps, _) = plan(&schema, module.migrations)?;
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '5s'; SET LOCAL statement_timeout = '30s';
         CREATE SCHEMA {}",
        quote_ident(&schema)
    ))
    .await?;
    for step in &steps {
        for statement in &step.statements {
            if let Err(e) = tx.batch_execute(statement).await {
                return Err(match MigrationError::from(e) {
                    MigrationError::Db(e) => MigrationError::Invalid {
                        version: step.version,
                        message: format!("PostgreSQL refuses it: {}", super::db_message(&e)),
                    },
                    other => other,
                });
            }
        }
    }
    tx.rollback().await?;
    Ok(())
}

/// Switches the tenant back to `module`, an older version, without touching its schema.
/// Allowed only when every migration step of `module` was applied to the tenant exactly
/// as `module` declares it: the newer steps stay applied, and the older code ignores
/// what it does not know.
///
/// # Errors
/// [`MigrationError::NotAPrefix`] naming the step that does not fit, database failures.
pub async fn roll_back(
    pool: &Pool,
    tenant_id: &str,
    tenant: &TenantSlug,
    module: ModuleSchema<'_>,
) -> Result<(), MigrationError> {
    let schema = schema_name(tenant, module.name);
    let (steps, _) = plan(&schema, module.migrations)?;
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    lock_live_version(&tx, &schema, module).await?;
    let history = tx
        .query(
            "SELECT version, step::text FROM eerp.migration_history
             WHERE tenant_id = $1::text::uuid AND module = $2",
            &[&tenant_id, &module.name.as_str()],
        )
        .await?;
    let refuse = |reason: String| MigrationError::NotAPrefix {
        module: module.name.to_string(),
        tenant: tenant.to_string(),
        version: module.version.to_string(),
        reason,
    };
    for step in &steps {
        let recorded = history
            .iter()
            .find(|row| row.get::<_, i32>(0) as u32 == step.version)
            .and_then(|row| serde_json::from_str::<Value>(row.get::<_, &str>(1)).ok());
        match recorded {
            Some(recorded) if recorded == step.json => {}
            Some(_) => {
                return Err(refuse(format!(
                    "its migration v{} differs from the one applied",
                    step.version
                )));
            }
            None => {
                return Err(refuse(format!(
                    "its migration v{} was never applied to this tenant",
                    step.version
                )));
            }
        }
    }
    // A prefix, not just a subset: every applied step up to the older version's last one
    // must be one of its steps.
    let last = steps.last().map_or(0, |s| s.version);
    if let Some(row) = history.iter().find(|row| {
        let applied = row.get::<_, i32>(0) as u32;
        applied <= last && !steps.iter().any(|s| s.version == applied)
    }) {
        return Err(refuse(format!(
            "the tenant has migration v{}, within its steps' range but not one of them",
            row.get::<_, i32>(0)
        )));
    }
    tx.execute(
        "UPDATE eerp.tenant_modules SET module_version = $3
         WHERE tenant_id = $1::text::uuid AND module = $2",
        &[
            &tenant_id,
            &module.name.as_str(),
            &module.version.to_string(),
        ],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%tenant, module = %module.name, version = %module.version, "module rolled back");
    Ok(())
}

/// Takes the (tenant, module) schema's migration lock, and checks under a share lock on
/// its row that `module`'s version is live in the store: a retire on another replica
/// locks that row first, so the two never interleave.
async fn lock_live_version(
    tx: &deadpool_postgres::Transaction<'_>,
    schema: &str,
    module: ModuleSchema<'_>,
) -> Result<(), MigrationError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("eerp.migrate:{schema}")],
    )
    .await?;
    let live = tx
        .query_opt(
            "SELECT 1 FROM eerp.module_versions
             WHERE module = $1 AND version = $2 AND retired_at IS NULL FOR SHARE",
            &[&module.name.as_str(), &module.version.to_string()],
        )
        .await?;
    match live {
        Some(_) => Ok(()),
        None => Err(MigrationError::NotStored {
            module: module.name.to_string(),
            version: module.version.to_string(),
        }),
    }
}
