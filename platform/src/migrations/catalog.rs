//! The platform's own catalog schema, `eerp`, migrated at startup.
//!
//! Versions are append-only, like module migrations: never change what a released entry
//! makes.
//!
//! On Citus the catalog stays on the coordinator, a plain local schema: its migration turns
//! schema-based sharding off for its own transaction (docs/scaling.md).

use crate::db::Pool;

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
    // v2: plans and limits, provisioning state, module versions, tenant roles, the audit
    // log, and fleet migration runs.
    "CREATE TABLE eerp.plans (
        name text PRIMARY KEY,
        limits jsonb NOT NULL DEFAULT '{}',
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO eerp.plans (name, limits) VALUES
        ('standard', '{}'),
        ('free', '{\"fuel_per_request\": 10000000, \"requests_per_second\": 20, \"burst\": 40, \"max_concurrent_calls\": 4}');
    -- One constraint per ALTER TABLE: Citus refuses ADD CONSTRAINT beside other
    -- subcommands. (Split after release; the catalog it makes is the same.)
    ALTER TABLE eerp.tenants DROP CONSTRAINT tenants_status_check;
    ALTER TABLE eerp.tenants ADD CONSTRAINT tenants_status_check
        CHECK (status IN ('provisioning', 'active', 'suspended', 'deleted'));
    ALTER TABLE eerp.tenants
        ADD COLUMN plan text NOT NULL DEFAULT 'standard' REFERENCES eerp.plans (name);
    ALTER TABLE eerp.tenants
        ADD COLUMN limit_overrides jsonb NOT NULL DEFAULT '{}',
        ADD COLUMN deleted_at timestamptz;
    ALTER TABLE eerp.tenant_modules
        ADD COLUMN version integer NOT NULL DEFAULT 0,
        ADD COLUMN enabled boolean NOT NULL DEFAULT true;
    CREATE TABLE eerp.tenant_roles (
        tenant_id uuid NOT NULL REFERENCES eerp.tenants (id),
        role text NOT NULL,
        grants text[] NOT NULL,
        PRIMARY KEY (tenant_id, role)
    );
    -- Tenants created before v2 get the default roles and their modules' versions.
    INSERT INTO eerp.tenant_roles (tenant_id, role, grants)
        SELECT id, 'admin', '{*}'::text[] FROM eerp.tenants
        UNION ALL SELECT id, 'viewer', '{*.*.read}'::text[] FROM eerp.tenants;
    UPDATE eerp.tenant_modules m SET version = coalesce((SELECT max(h.version)
        FROM eerp.migration_history h WHERE h.tenant_id = m.tenant_id AND h.module = m.module), 0);
    CREATE TABLE eerp.audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        action text NOT NULL,
        tenant text,
        before jsonb,
        after jsonb
    );
    CREATE INDEX audit_log_tenant ON eerp.audit_log (tenant, id);
    CREATE RULE audit_log_no_update AS ON UPDATE TO eerp.audit_log DO INSTEAD NOTHING;
    CREATE RULE audit_log_no_delete AS ON DELETE TO eerp.audit_log DO INSTEAD NOTHING;
    CREATE TABLE eerp.fleet_runs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        module text NOT NULL,
        target_version integer NOT NULL,
        workers integer NOT NULL,
        status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'finished')),
        total integer NOT NULL DEFAULT 0,
        done integer NOT NULL DEFAULT 0,
        failed integer NOT NULL DEFAULT 0,
        started_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz
    );
    CREATE TABLE eerp.fleet_failures (
        run_id uuid NOT NULL REFERENCES eerp.fleet_runs (id),
        tenant text NOT NULL,
        error text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, tenant)
    );",
    // v3: the module store (every module version's wasm bytes, hash and manifest), the
    // module version each tenant is served, and the modules each plan gives new tenants.
    "CREATE TABLE eerp.module_versions (
        module text NOT NULL,
        version text NOT NULL,
        abi_version integer NOT NULL,
        sha256 text NOT NULL,
        wasm bytea NOT NULL,
        manifest jsonb NOT NULL,
        migration_version integer NOT NULL,
        builtin boolean NOT NULL DEFAULT false,
        uploaded_by text NOT NULL,
        uploaded_at timestamptz NOT NULL DEFAULT now(),
        retired_at timestamptz,
        PRIMARY KEY (module, version)
    );
    ALTER TABLE eerp.tenant_modules ADD COLUMN module_version text;
    ALTER TABLE eerp.fleet_runs ADD COLUMN target_module_version text;
    ALTER TABLE eerp.plans ADD COLUMN modules text[] NOT NULL DEFAULT '{}';
    -- Before v3 every tenant got every built-in module, and CRM was the only one.
    UPDATE eerp.plans SET modules = '{crm}';",
    // v4: idempotency keys of POST and PATCH requests, per tenant; `status` is null while
    // the request that claimed the key (`claimed_by`) runs, until `lease_until` at most.
    "CREATE TABLE eerp.idempotency_keys (
        tenant_id uuid NOT NULL REFERENCES eerp.tenants (id) ON DELETE CASCADE,
        key text NOT NULL,
        fingerprint text NOT NULL,
        claimed_by uuid NOT NULL,
        lease_until timestamptz NOT NULL,
        status smallint,
        body text,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (tenant_id, key)
    );
    CREATE INDEX idempotency_keys_expiry ON eerp.idempotency_keys (expires_at);",
    // v5: each module version's compiled code (wasmtime's `Module::serialize`), per engine
    // (`engine`: a digest of its compatibility hash), signed by the replicas
    // (`artifact_mac`, HMAC-SHA256 with a key that is not in the database;
    // `registry::artifacts`).
    "CREATE TABLE eerp.module_artifacts (
        sha256 text NOT NULL,
        engine text NOT NULL,
        artifact bytea NOT NULL,
        artifact_mac bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (sha256, engine)
    );",
];

/// Brings the catalog to the newest version. Safe to run from many replicas at once: the
/// work happens under a transaction-scoped advisory lock.
///
/// # Errors
/// [`MigrationError::Unavailable`] when the database is unreachable, [`MigrationError::Db`]
/// when PostgreSQL refuses.
pub async fn migrate_catalog(pool: &Pool) -> Result<(), MigrationError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('eerp.catalog', 0));
         -- Without Citus this only sets a placeholder that ends with the transaction.
         SET LOCAL citus.enable_schema_based_sharding = off;
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
