//! The platform's own catalog schema, `eerp`, migrated at startup.
//!
//! Versions are append-only, like module migrations: never edit a released entry.

use deadpool_postgres::Pool;

use super::MigrationError;

/// Catalog versions, oldest first; entry `i` is version `i + 1`.
const VERSIONS: &[&str] = &[
    // v1: tenants, the modules they use, and each (tenant, module)'s migration history.
    "CREATE TABLE eerp.tenants (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        slug text NOT NULL UNIQUE,
        display_name text NOT NULL,
        status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE eerp.tenant_modules (
        tenant_id uuid NOT NULL REFERENCES eerp.tenants (id),
        module text NOT NULL,
        enabled_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, module)
    );
    CREATE TABLE eerp.migration_history (
        tenant_id uuid NOT NULL REFERENCES eerp.tenants (id),
        module text NOT NULL,
        version integer NOT NULL,
        entity text NOT NULL,
        step jsonb NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, module, version)
    );",
];

/// Brings the catalog to the newest version. Safe to run from many replicas at once: the
/// work happens under a transaction-scoped advisory lock.
///
/// # Errors
/// [`MigrationError::Db`] when PostgreSQL refuses, e.g. the database is unreachable.
pub async fn migrate_catalog(pool: &Pool) -> Result<(), MigrationError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| MigrationError::Db(format!("no database connection: {e}")))?;
    let tx = conn.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('eerp.catalog', 0));
         CREATE SCHEMA IF NOT EXISTS eerp;
         CREATE TABLE IF NOT EXISTS eerp.catalog_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM eerp.catalog_migrations",
            &[],
        )
        .await?;
    let applied: i32 = row.get(0);
    for (index, sql) in VERSIONS.iter().enumerate().skip(applied.max(0) as usize) {
        let version = index as i32 + 1;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO eerp.catalog_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!(version, "catalog migrated");
    }
    tx.commit().await?;
    Ok(())
}
