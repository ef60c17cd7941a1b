//! Fleet migration: upgrade every tenant that has a module to one of its versions.
//!
//! A run takes the tenants served an older version of the module than the target, and
//! migrates and switches them with N workers, one transaction per (tenant, module). A
//! failure is recorded with its tenant and the run goes on. Running again picks up only
//! the tenants still behind, so an interrupted or partly failed run is resumed by starting
//! a new one.

use std::sync::Arc;
use std::time::Duration;

use crate::db::Pool;
use eerp_tenancy::id::TenantSlug;
use futures_util::StreamExt;
use serde_json::Value;

use super::TenantError;
use crate::migrations::apply_module;
use crate::notify::{Change, announce};
use crate::runtime::LoadedModule;

/// A run is reported `interrupted` when it made no progress for this long while running
/// (its replica probably stopped); start a new run to resume.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Starts migrating every tenant behind on `module` with `workers` concurrent
/// migrations, in the background. Returns the run as [`run_status`] shows it.
///
/// # Errors
/// Database failures while listing tenants or recording the run.
pub async fn start(
    pool: &Pool,
    module: Arc<LoadedModule>,
    workers: usize,
) -> Result<Value, TenantError> {
    let target = module.migrations.last().map_or(0, |m| m.version as i32);
    let conn = pool.get().await?;
    let candidates = conn
        .query(
            "SELECT t.id::text, t.slug, m.module_version FROM eerp.tenants t
             JOIN eerp.tenant_modules m ON m.tenant_id = t.id
             WHERE m.module = $1 AND t.status <> 'deleted'
               AND (m.version < $2 OR m.module_version IS DISTINCT FROM $3)
             ORDER BY t.slug",
            &[&module.name.as_str(), &target, &module.version.to_string()],
        )
        .await?;
    // Behind: missing migrations, or served an older version. Tenants served a newer
    // version are left alone (going back is a rollback, one tenant at a time).
    let tenants: Vec<(String, String)> = candidates
        .iter()
        .filter(|r| {
            r.get::<_, Option<&str>>(2)
                .and_then(|v| semver::Version::parse(v).ok())
                .is_none_or(|served| served <= module.version)
        })
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let run_id: String = conn
        .query_one(
            "INSERT INTO eerp.fleet_runs (module, target_version, target_module_version, workers, total, status)
             VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 0 THEN 'finished' ELSE 'running' END)
             RETURNING id::text",
            &[
                &module.name.as_str(),
                &target,
                &module.version.to_string(),
                &(workers as i32),
                &(tenants.len() as i32),
            ],
        )
        .await?
        .get(0);
    drop(conn);
    tracing::info!(run = %run_id, module = %module.name, tenants = tenants.len(), workers, "fleet migration started");
    tokio::spawn(run(pool.clone(), module, tenants, workers, run_id.clone()));
    run_status(pool, &run_id).await
}

async fn run(
    pool: Pool,
    module: Arc<LoadedModule>,
    tenants: Vec<(String, String)>,
    workers: usize,
    run_id: String,
) {
    let work = futures_util::stream::iter(tenants).for_each_concurrent(
        workers.max(1),
        |(id, slug)| {
            let (pool, module, run_id) = (pool.clone(), module.clone(), run_id.clone());
            async move {
                let result = match TenantSlug::parse(&slug) {
                    Ok(tenant) => upgrade(&pool, &id, &tenant, &module).await,
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = record(&pool, &run_id, &slug, result.err()).await {
                    tracing::error!(run = %run_id, tenant = %slug, error = %e, "cannot record fleet progress");
                }
            }
        },
    );
    tokio::pin!(work);
    // A heartbeat while migrations run, so a long one is not mistaken for a dead run.
    let mut heartbeat = tokio::time::interval(STALE_AFTER / 6);
    loop {
        tokio::select! {
            () = &mut work => break,
            _ = heartbeat.tick() => {
                if let Err(e) = beat(&pool, &run_id).await {
                    tracing::warn!(run = %run_id, error = %e, "fleet run heartbeat failed");
                }
            }
        }
    }
    let finished = async {
        let conn = pool.get().await?;
        conn.execute(
            "UPDATE eerp.fleet_runs SET status = 'finished', finished_at = now(), updated_at = now()
             WHERE id = $1::text::uuid",
            &[&run_id],
        )
        .await?;
        Ok::<_, TenantError>(())
    };
    if let Err(e) = finished.await {
        tracing::error!(run = %run_id, error = %e, "cannot mark fleet run finished");
    }
    tracing::info!(run = %run_id, "fleet migration finished");
}

/// Upgrades one tenant, unless an operator moved it past the target since the run began.
async fn upgrade(
    pool: &Pool,
    id: &str,
    tenant: &TenantSlug,
    module: &LoadedModule,
) -> Result<(), String> {
    let served = served_version(pool, id, module.name.as_str())
        .await
        .map_err(|e| crate::error_chain(&e))?;
    if served.is_some_and(|served| served > module.version) {
        return Ok(());
    }
    apply_module(pool, id, tenant, module.schema())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn served_version(
    pool: &Pool,
    id: &str,
    module: &str,
) -> Result<Option<semver::Version>, TenantError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT module_version FROM eerp.tenant_modules
             WHERE tenant_id = $1::text::uuid AND module = $2",
            &[&id, &module],
        )
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, Option<String>>(0))
        .and_then(|v| semver::Version::parse(&v).ok()))
}

async fn beat(pool: &Pool, run_id: &str) -> Result<(), TenantError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE eerp.fleet_runs SET updated_at = now() WHERE id = $1::text::uuid",
        &[&run_id],
    )
    .await?;
    Ok(())
}

async fn record(
    pool: &Pool,
    run_id: &str,
    tenant: &str,
    error: Option<String>,
) -> Result<(), TenantError> {
    let conn = pool.get().await?;
    let Some(error) = error else {
        conn.execute(
            "UPDATE eerp.fleet_runs SET done = done + 1, updated_at = now() WHERE id = $1::text::uuid",
            &[&run_id],
        )
        .await?;
        // The tenant is served the new version now: every replica forgets its entry.
        announce(conn.client(), &Change::Tenant(tenant.to_string())).await?;
        return Ok(());
    };
    tracing::warn!(run = %run_id, %tenant, %error, "fleet migration failed for a tenant");
    conn.execute(
        "WITH failure AS (INSERT INTO eerp.fleet_failures (run_id, tenant, error)
                          VALUES ($1::text::uuid, $2, $3) ON CONFLICT DO NOTHING)
         UPDATE eerp.fleet_runs SET failed = failed + 1, updated_at = now() WHERE id = $1::text::uuid",
        &[&run_id, &tenant, &error],
    )
    .await?;
    Ok(())
}

/// A run's progress and failures.
///
/// # Errors
/// [`TenantError::NotFound`] for an unknown run id.
pub async fn run_status(pool: &Pool, run_id: &str) -> Result<Value, TenantError> {
    if uuid::Uuid::parse_str(run_id).is_err() {
        return Err(TenantError::NotFound(format!(
            "no migration run `{run_id}`"
        )));
    }
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT json_build_object('id', r.id, 'module', r.module,
                 'target_version', r.target_version, 'module_version', r.target_module_version,
                 'workers', r.workers,
                 'status', CASE WHEN r.status = 'running' AND r.updated_at < now() - make_interval(secs => $2)
                                THEN 'interrupted' ELSE r.status END,
                 'total', r.total, 'done', r.done, 'failed', r.failed,
                 'started_at', r.started_at, 'finished_at', r.finished_at,
                 'failures', coalesce((SELECT json_agg(json_build_object('tenant', f.tenant, 'error', f.error)
                                       ORDER BY f.tenant) FROM eerp.fleet_failures f WHERE f.run_id = r.id), '[]'))::text
             FROM eerp.fleet_runs r WHERE r.id = $1::text::uuid",
            &[&run_id, &STALE_AFTER.as_secs_f64()],
        )
        .await?
        .ok_or_else(|| TenantError::NotFound(format!("no migration run `{run_id}`")))?;
    serde_json::from_str(row.get(0)).map_err(|e| TenantError::Catalog(e.to_string()))
}
