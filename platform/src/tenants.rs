//! Tenants in the catalog: creating them, enabling modules, and the per-request lookup.
//!
//! This is the minimal tenant lifecycle the request path needs; suspension, deletion,
//! plans and the admin API build on it.

use deadpool_postgres::Pool;
use eerp_tenancy::id::TenantSlug;
use thiserror::Error;

use crate::migrations::{MigrationError, apply_module};
use crate::runtime::LoadedModule;

/// A tenant as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// Catalog id (uuid text).
    pub id: String,
    /// Slug.
    pub slug: TenantSlug,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
}

/// Why a tenant operation failed.
#[derive(Debug, Error)]
pub enum TenantError {
    /// The database failed.
    #[error("database error: {0}")]
    Db(String),
    /// The module's migrations could not be applied.
    #[error(transparent)]
    Migration(#[from] MigrationError),
}

impl From<tokio_postgres::Error> for TenantError {
    fn from(e: tokio_postgres::Error) -> Self {
        TenantError::Db(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for TenantError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        TenantError::Db(e.to_string())
    }
}

/// Creates the tenant if it does not exist yet; returns its record either way.
///
/// # Errors
/// [`TenantError::Db`] when the database fails.
pub async fn ensure_tenant(
    pool: &Pool,
    slug: &TenantSlug,
    display_name: &str,
) -> Result<TenantRecord, TenantError> {
    let conn = pool.get().await?;
    conn.execute(
        "INSERT INTO eerp.tenants (slug, display_name) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING",
        &[&slug.as_str(), &display_name],
    )
    .await?;
    let row = conn
        .query_one(
            "SELECT id::text, status FROM eerp.tenants WHERE slug = $1",
            &[&slug.as_str()],
        )
        .await?;
    Ok(TenantRecord {
        id: row.get(0),
        slug: slug.clone(),
        status: row.get(1),
    })
}

/// Enables `module` for `tenant` and applies its pending migrations; returns the versions
/// applied now. Idempotent.
///
/// # Errors
/// [`TenantError`] when the database or a migration fails; the module stays disabled
/// only if recording it failed, and migrations are all-or-nothing.
pub async fn enable_module(
    pool: &Pool,
    tenant: &TenantRecord,
    module: &LoadedModule,
) -> Result<Vec<u32>, TenantError> {
    let applied = apply_module(pool, &tenant.id, &tenant.slug, module).await?;
    let conn = pool.get().await?;
    conn.execute(
        "INSERT INTO eerp.tenant_modules (tenant_id, module) VALUES ($1::text::uuid, $2)
         ON CONFLICT DO NOTHING",
        &[&tenant.id, &module.name.as_str()],
    )
    .await?;
    Ok(applied)
}

/// What the request path needs to know about a tenant and one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantAccess {
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    /// Whether the module is enabled for the tenant.
    pub module_enabled: bool,
}

/// Looks up `slug` and whether `module` is enabled for it; `None` for unknown tenants.
///
/// # Errors
/// [`TenantError::Db`] when the database fails.
pub async fn access(
    pool: &Pool,
    slug: &TenantSlug,
    module: &str,
) -> Result<Option<TenantAccess>, TenantError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT t.status, EXISTS (SELECT 1 FROM eerp.tenant_modules m
                                     WHERE m.tenant_id = t.id AND m.module = $2)
             FROM eerp.tenants t WHERE t.slug = $1",
            &[&slug.as_str(), &module],
        )
        .await?;
    Ok(row.map(|row| TenantAccess {
        status: row.get(0),
        module_enabled: row.get(1),
    }))
}
