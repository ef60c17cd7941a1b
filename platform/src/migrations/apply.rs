//! Applying a module's pending migrations to one tenant.

use deadpool_postgres::Pool;
use eerp_tenancy::id::{TenantSlug, schema_name};
use serde_json::Value;

use super::MigrationError;
use super::plan::plan;
use crate::runtime::LoadedModule;
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
    module: &LoadedModule,
) -> Result<Vec<u32>, MigrationError> {
    let schema = schema_name(tenant, &module.name);
    let (steps, _) = plan(&schema, &module.migrations)?;
    let mut conn = pool
        .get()
        .await
        .map_err(|e| MigrationError::Unavailable(format!("no database connection: {e}")))?;
    let tx = conn.transaction().await?;
    tx.batch_execute("SET LOCAL lock_timeout = '30s'; SET LOCAL standard_conforming_strings = on")
        .await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("eerp.migrate:{schema}")],
    )
    .await?;
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
    // The module counts as enabled once its schema is complete; a module disabled earlier
    // stays disabled (only its version moves).
    let version = steps.last().map_or(0, |s| s.version as i32);
    tx.execute(
        "INSERT INTO eerp.tenant_modules (tenant_id, module, version) VALUES ($1::text::uuid, $2, $3)
         ON CONFLICT (tenant_id, module) DO UPDATE SET version = EXCLUDED.version",
        &[&tenant_id, &module.name.as_str(), &version],
    )
    .await?;
    tx.commit().await?;
    if !newly.is_empty() {
        tracing::info!(%tenant, module = %module.name, versions = ?newly, "migrations applied");
    }
    Ok(newly)
}
