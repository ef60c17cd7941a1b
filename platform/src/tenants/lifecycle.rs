//! Provisioning and operator actions on tenants, plans, limits, modules and roles.
//!
//! Each action runs in a transaction that also appends to the audit log (who, what, when,
//! before and after) and announces the change to every replica. Provisioning is a series
//! of idempotent steps: record the tenant as `provisioning`, migrate each module's schema
//! (one transaction per module), then mark it `active`. A crash between steps leaves a
//! tenant that is not served and that the same `create` call completes.

use crate::db::Pool;
use deadpool_postgres::Transaction;
use eerp_tenancy::id::{ModuleName, TenantSlug, schema_name};
use eerp_tenancy::limits::Ceilings;
use eerp_tenancy::permission::{default_roles, is_valid_pattern};
use eerp_tenancy::{LimitOverrides, Limits};
use serde::Deserialize;
use serde_json::{Value, json};

use super::TenantError;
use crate::audit::{audit, commit_audited};
use crate::migrations::MigrationError;
use crate::notify::{Change, announce};
use crate::registry::store::ModuleStore;
use crate::runtime::LoadedModule;
use crate::sql::quote_ident;

/// What an operator action needs: the catalog, the module store, the limit rules.
pub struct Catalog<'a> {
    /// The shared pool.
    pub pool: &'a Pool,
    /// The module store and the loaded versions.
    pub modules: ModuleStore<'a>,
    /// Limits under every plan.
    pub base: &'a Limits,
    /// Highest values limits may take.
    pub ceilings: Ceilings,
    /// Who acts (the operator token's `sub`), for the audit log.
    pub actor: &'a str,
}

/// A tenant to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Slug: lower-case letters, digits and `_`, starting with a letter, at most 39 characters.
    pub slug: String,
    /// Human name; defaults to the slug.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Plan; defaults to `standard`.
    #[serde(default)]
    pub plan: Option<String>,
    /// Modules to enable (each at its newest stored version); defaults to the plan's.
    #[serde(default)]
    pub modules: Option<Vec<String>>,
}

/// Creates `new` and enables its modules, or finishes a creation that was interrupted.
/// Returns the tenant and whether it was created now (`false` when it existed). Asking
/// again for a tenant that is complete changes nothing.
///
/// # Errors
/// [`TenantError::Invalid`] for a bad slug, name, plan or module, [`TenantError::Conflict`]
/// for a deleted tenant of that slug or an existing one with another name or plan, and
/// database or migration failures.
pub async fn create(cat: &Catalog<'_>, new: NewTenant) -> Result<(Value, bool), TenantError> {
    let slug = TenantSlug::parse(&new.slug).map_err(|e| TenantError::Invalid(e.to_string()))?;
    let display_name = new.display_name.clone().unwrap_or_else(|| slug.to_string());
    check_display_name(&display_name)?;
    let plan = new.plan.clone().unwrap_or_else(|| "standard".to_string());

    let mut conn = cat.pool.get().await?;
    let tx = conn.transaction().await?;
    check_plan(&tx, &plan).await?;
    let names = match &new.modules {
        Some(names) => names.clone(),
        None => plan_modules(&tx, &plan).await?,
    };
    let modules = modules_to_enable(&cat.modules, &names)?;
    let inserted = tx
        .query_opt(
            "INSERT INTO eerp.tenants (slug, display_name, plan, status)
             VALUES ($1, $2, $3, 'provisioning') ON CONFLICT (slug) DO NOTHING RETURNING id::text",
            &[&slug.as_str(), &display_name, &plan],
        )
        .await?;
    let (id, created) = match inserted {
        Some(row) => (row.get::<_, String>(0), true),
        None => match existing_for_create(&tx, &slug, &new).await? {
            Some(id) => (id, false),
            None => {
                drop(tx);
                drop(conn);
                return Ok((show(cat, &slug).await?, false));
            }
        },
    };
    if created {
        for (role, grants) in default_roles().0 {
            tx.execute(
                "INSERT INTO eerp.tenant_roles (tenant_id, role, grants) VALUES ($1::text::uuid, $2, $3)",
                &[&id, &role, &grants],
            )
            .await?;
        }
        let after = json!({"slug": slug.as_str(), "display_name": display_name, "plan": plan,
                           "modules": modules.iter().map(|m| m.name.as_str()).collect::<Vec<_>>()});
        audit(
            &tx,
            cat.actor,
            "tenant.create",
            Some(&slug),
            None,
            Some(&after),
        )
        .await?;
    }
    tx.commit().await?;
    drop(conn);

    for module in &modules {
        crate::migrations::apply_module(cat.pool, &id, &slug, module.schema()).await?;
    }
    let conn = cat.pool.get().await?;
    conn.execute(
        "UPDATE eerp.tenants SET status = 'active', updated_at = now()
         WHERE id = $1::text::uuid AND status = 'provisioning'",
        &[&id],
    )
    .await?;
    announce(conn.client(), &Change::Tenant(slug.to_string())).await?;
    drop(conn);
    Ok((show(cat, &slug).await?, created))
}

/// For a slug that exists: its id when its creation must be finished, `None` when it is
/// complete and matches the request.
async fn existing_for_create(
    tx: &Transaction<'_>,
    slug: &TenantSlug,
    new: &NewTenant,
) -> Result<Option<String>, TenantError> {
    let row = tx
        .query_one(
            "SELECT id::text, status, display_name, plan FROM eerp.tenants WHERE slug = $1 FOR UPDATE",
            &[&slug.as_str()],
        )
        .await?;
    let (status, name, plan): (&str, &str, &str) = (row.get(1), row.get(2), row.get(3));
    if status == "deleted" {
        return Err(TenantError::Conflict(format!(
            "tenant `{slug}` was deleted and is waiting to be purged; purge it before reusing the slug"
        )));
    }
    let differs = new.display_name.as_deref().is_some_and(|n| n != name)
        || new.plan.as_deref().is_some_and(|p| p != plan);
    if differs {
        return Err(TenantError::Conflict(format!(
            "tenant `{slug}` exists with display name `{name}` and plan `{plan}`; \
             change its plan with `eerp limits`, or pick another slug"
        )));
    }
    Ok((status == "provisioning").then(|| row.get(0)))
}

fn check_display_name(name: &str) -> Result<(), TenantError> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(TenantError::Invalid(
            "`display_name` must be 1 to 200 characters without control characters".into(),
        ));
    }
    Ok(())
}

/// The newest stored version of each module in `names`.
fn modules_to_enable(
    store: &ModuleStore<'_>,
    names: &[String],
) -> Result<Vec<std::sync::Arc<LoadedModule>>, TenantError> {
    names
        .iter()
        .map(|name| {
            store.registry.newest(name).ok_or_else(|| {
                TenantError::Invalid(format!(
                    "no module `{name}` is stored; stored modules: {}",
                    store.registry.names().join(", ")
                ))
            })
        })
        .collect()
}

async fn plan_modules(tx: &Transaction<'_>, plan: &str) -> Result<Vec<String>, TenantError> {
    Ok(tx
        .query_one("SELECT modules FROM eerp.plans WHERE name = $1", &[&plan])
        .await?
        .get(0))
}

async fn check_plan(tx: &Transaction<'_>, plan: &str) -> Result<(), TenantError> {
    let exists = tx
        .query_opt("SELECT 1 FROM eerp.plans WHERE name = $1", &[&plan])
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    Err(TenantError::Invalid(format!(
        "no plan `{plan}`; list plans with `eerp plan list`"
    )))
}

/// The tenant as the admin API shows it, with its effective limits.
///
/// # Errors
/// [`TenantError::NotFound`] for an unknown slug.
pub async fn show(cat: &Catalog<'_>, slug: &TenantSlug) -> Result<Value, TenantError> {
    let conn = cat.pool.get().await?;
    let rows = conn
        .query(
            &format!("{TENANT_JSON} WHERE t.slug = $1"),
            &[&slug.as_str()],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| TenantError::NotFound(format!("no tenant `{slug}`")))?;
    with_effective_limits(cat.base, row.get(0))
}

/// Tenants, optionally only those with `status`, ordered by slug, at most `limit` after
/// the slug `after`.
///
/// # Errors
/// Database failures.
pub async fn list(
    cat: &Catalog<'_>,
    status: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Value>, TenantError> {
    let conn = cat.pool.get().await?;
    let rows = conn
        .query(
            &format!(
                "{TENANT_JSON} WHERE ($1::text IS NULL OR t.status = $1)
                 AND ($2::text IS NULL OR t.slug > $2) ORDER BY t.slug LIMIT $3"
            ),
            &[&status, &after, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| with_effective_limits(cat.base, row.get(0)))
        .collect()
}

const TENANT_JSON: &str = "SELECT json_build_object(
        'slug', t.slug, 'display_name', t.display_name, 'status', t.status, 'plan', t.plan,
        'plan_limits', p.limits, 'limit_overrides', t.limit_overrides,
        'created_at', t.created_at, 'updated_at', t.updated_at, 'deleted_at', t.deleted_at,
        'modules', coalesce((SELECT json_agg(json_build_object(
                'name', m.module, 'version', m.module_version, 'migration_version', m.version,
                'enabled', m.enabled) ORDER BY m.module)
            FROM eerp.tenant_modules m WHERE m.tenant_id = t.id), '[]'),
        'roles', coalesce((SELECT json_object_agg(r.role, r.grants)
            FROM eerp.tenant_roles r WHERE r.tenant_id = t.id), '{}'))::text
    FROM eerp.tenants t JOIN eerp.plans p ON p.name = t.plan";

fn with_effective_limits(base: &Limits, text: &str) -> Result<Value, TenantError> {
    let mut tenant: Value =
        serde_json::from_str(text).map_err(|e| TenantError::Catalog(e.to_string()))?;
    let layer = |key: &str| -> Result<LimitOverrides, TenantError> {
        LimitOverrides::from_stored(tenant[key].clone())
            .map_err(|e| TenantError::Catalog(e.to_string()))
    };
    let effective = base.with(&layer("plan_limits")?.merged(&layer("limit_overrides")?));
    tenant["effective_limits"] = json!(effective.as_overrides());
    Ok(tenant)
}

/// Suspends (`active` -> `suspended`), resumes (`suspended` -> `active`) or soft-deletes
/// (`active`/`suspended` -> `deleted`) the tenant. Repeating an action that already took
/// effect succeeds and changes nothing.
///
/// # Errors
/// [`TenantError::NotFound`], or [`TenantError::Conflict`] when the tenant is in a state
/// the action does not apply to.
pub async fn transition(
    cat: &Catalog<'_>,
    slug: &TenantSlug,
    action: Transition,
) -> Result<Value, TenantError> {
    let (from, to, name): (&[&str], &str, &str) = match action {
        Transition::Suspend => (&["active"], "suspended", "tenant.suspend"),
        Transition::Resume => (&["suspended"], "active", "tenant.resume"),
        // A tenant whose creation failed for good can be deleted (and then purged).
        Transition::Delete => (
            &["active", "suspended", "provisioning"],
            "deleted",
            "tenant.delete",
        ),
    };
    let mut conn = cat.pool.get().await?;
    let tx = conn.transaction().await?;
    // The row lock serialises concurrent actions on one tenant, so each sees the state
    // the previous one left.
    let status: String = tx
        .query_opt(
            "SELECT status FROM eerp.tenants WHERE slug = $1 FOR UPDATE",
            &[&slug.as_str()],
        )
        .await?
        .ok_or_else(|| TenantError::NotFound(format!("no tenant `{slug}`")))?
        .get(0);
    if status == to {
        drop(tx);
        drop(conn);
        return show(cat, slug).await;
    }
    if !from.contains(&status.as_str()) {
        return Err(TenantError::Conflict(format!(
            "tenant `{slug}` is {status}; `{name}` applies only to {} tenants",
            from.join(" or ")
        )));
    }
    tx.execute(
        "UPDATE eerp.tenants SET status = $2, updated_at = now(),
             deleted_at = CASE WHEN $2 = 'deleted' THEN now() END
         WHERE slug = $1",
        &[&slug.as_str(), &to],
    )
    .await?;
    let after = json!({"status": to});
    let before_status = json!({"status": status});
    commit_audited(
        tx,
        cat.actor,
        name,
        Some(slug),
        Change::Tenant(slug.to_string()),
        Some(&before_status),
        Some(&after),
    )
    .await?;
    drop(conn);
    show(cat, slug).await
}

/// A tenant state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Stop serving, keep data.
    Suspend,
    /// Serve again.
    Resume,
    /// Soft delete; purged after the grace period.
    Delete,
}

/// Drops the schemas and catalog rows of tenants deleted more than `grace` ago. Each
/// tenant is purged in its own transaction; re-running finishes an interrupted purge.
/// Returns the purged slugs.
///
/// # Errors
/// Database failures; tenants purged before the failure stay purged.
pub async fn purge(
    cat: &Catalog<'_>,
    grace: std::time::Duration,
) -> Result<Vec<String>, TenantError> {
    let conn = cat.pool.get().await?;
    let due = conn
        .query(
            "SELECT id::text, slug FROM eerp.tenants
             WHERE status = 'deleted' AND deleted_at <= now() - make_interval(secs => $1)
             ORDER BY slug",
            &[&grace.as_secs_f64()],
        )
        .await?;
    drop(conn);
    let mut purged = Vec::new();
    for row in due {
        let (id, slug): (String, String) = (row.get(0), row.get(1));
        purge_one(cat, &id, &slug).await?;
        purged.push(slug);
    }
    Ok(purged)
}

async fn purge_one(cat: &Catalog<'_>, id: &str, slug: &str) -> Result<(), TenantError> {
    let mut conn = cat.pool.get().await?;
    let tx = conn.transaction().await?;
    // Every schema this tenant ever had: the modules in the catalog and, in case a crash
    // came between creating a schema and recording it, any schema with its prefix.
    let schemas = tx
        .query(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)",
            &[&format!("t_{slug}__")],
        )
        .await?;
    for schema in schemas {
        let name: &str = schema.get(0);
        tx.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(name)
        ))
        .await?;
    }
    for table in ["migration_history", "tenant_modules", "tenant_roles"] {
        tx.execute(
            &format!("DELETE FROM eerp.{table} WHERE tenant_id = $1::text::uuid"),
            &[&id],
        )
        .await?;
    }
    tx.execute("DELETE FROM eerp.tenants WHERE id = $1::text::uuid", &[&id])
        .await?;
    let slug_value = TenantSlug::parse(slug).ok();
    commit_audited(
        tx,
        cat.actor,
        "tenant.purge",
        slug_value.as_ref(),
        Change::Tenant(slug.to_string()),
        Some(&json!({"status": "deleted"})),
        None,
    )
    .await?;
    tracing::info!(tenant = slug, "tenant purged");
    Ok(())
}

/// Enables `module` for the tenant at `version` (default: the version it had, else the
/// newest stored), creating and migrating its schema, or disables it (data kept; requests
/// to it get 404). Naming another version upgrades the tenant (migrations first, then the
/// switch, in one transaction) or rolls it back, which is allowed only while the older
/// version's migrations are a prefix of what the tenant has applied. Idempotent.
///
/// # Errors
/// [`TenantError::NotFound`] for an unknown tenant, module or version,
/// [`TenantError::Conflict`] for a refused rollback, migration failures.
pub async fn set_module(
    cat: &Catalog<'_>,
    slug: &TenantSlug,
    module: &str,
    enabled: bool,
    version: Option<&str>,
) -> Result<Value, TenantError> {
    let name = ModuleName::parse(module)
        .map_err(|_| TenantError::NotFound(format!("no module `{module}` is stored")))?;
    let (id, _) = tenant_id(cat, slug).await?;
    let current = served_version(cat, &id, module).await?;
    if !enabled {
        return disable_module(cat, slug, &id, &name).await;
    }
    let target = match version.map(str::to_string).or(current.clone()) {
        Some(version) => cat
            .modules
            .load(module, &version)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                TenantError::NotFound(format!(
                    "no version {version} of module `{module}` is stored, or it was retired; \
                 `eerp module list` shows the stored versions"
                ))
            })?,
        None => cat
            .modules
            .registry
            .newest(module)
            .ok_or_else(|| TenantError::NotFound(format!("no module `{module}` is stored")))?,
    };
    let target_version = target.version.to_string();
    let older = current
        .as_deref()
        .and_then(|c| semver::Version::parse(c).ok())
        .is_some_and(|c| target.version < c);
    let action = match crate::migrations::apply_module(cat.pool, &id, slug, target.schema()).await {
        Ok(_) if current.as_ref().is_none_or(|c| *c == target_version) => "module.enable",
        Ok(_) if older => "module.rollback",
        Ok(_) => "module.upgrade",
        Err(e @ MigrationError::NotStored { .. }) => {
            return Err(TenantError::NotFound(e.to_string()));
        }
        Err(MigrationError::Ahead { .. }) => {
            crate::migrations::roll_back(cat.pool, &id, slug, target.schema())
                .await
                .map_err(|e| match e {
                    MigrationError::NotAPrefix { .. } => TenantError::Conflict(e.to_string()),
                    other => TenantError::Migration(other),
                })?;
            "module.rollback"
        }
        Err(e) => return Err(e.into()),
    };
    let mut conn = cat.pool.get().await?;
    let tx = conn.transaction().await?;
    tx.execute(
        "UPDATE eerp.tenant_modules SET enabled = true WHERE tenant_id = $1::text::uuid AND module = $2",
        &[&id, &module],
    )
    .await?;
    let before = current.map(|v| json!({"module": module, "version": v}));
    let after = json!({"module": module, "version": target_version, "enabled": true,
                       "schema": schema_name(slug, &name)});
    commit_audited(
        tx,
        cat.actor,
        action,
        Some(slug),
        Change::Tenant(slug.to_string()),
        before.as_ref(),
        Some(&after),
    )
    .await?;
    drop(conn);
    show(cat, slug).await
}

async fn disable_module(
    cat: &Catalog<'_>,
    slug: &TenantSlug,
    id: &str,
    name: &ModuleName,
) -> Result<Value, TenantError> {
    let mut conn = cat.pool.get().await?;
    let tx = conn.transaction().await?;
    let changed = tx
        .execute(
            "UPDATE eerp.tenant_modules SET enabled = false
             WHERE tenant_id = $1::text::uuid AND module = $2 AND enabled",
            &[&id, &name.as_str()],
        )
        .await?;
    if changed > 0 {
        let after = json!({"module": name.as_str(), "enabled": false,
                           "schema": schema_name(slug, name)});
        let change = Change::Tenant(slug.to_string());
        commit_audited(
            tx,
            cat.actor,
            "module.disable",
            Some(slug),
            change,
            None,
            Some(&after),
        )
        .await?;
    } else {
        // Already disabled, or never enabled: nothing to record or announce.
        drop(tx);
    }
    drop(conn);
    show(cat, slug).await
}

/// The module version the tenant is served (or was, while disabled).
async fn served_version(
    cat: &Catalog<'_>,
    id: &str,
    module: &str,
) -> Result<Option<String>, TenantError> {
    let conn = cat.pool.get().await?;
    Ok(conn
        .query_opt(
            "SELECT module_version FROM eerp.tenant_modules
             WHERE tenant_id = $1::text::uuid AND module = $2",
            &[&id, &module],
        )
        .await?
        .and_then(|row| row.get(0)))
}

fn store_error(e: crate::registry::StoreError) -> TenantError {
    TenantError::Catalog(crate::error_chain(&e))
}

/// Replaces the tenant's limit overrides (`{}` removes them all) and/or its plan.
///
/// # Errors
/// [`TenantError::Invalid`] for a bad value or unknown plan, [`TenantError::NotFound`].
pub async fn set_limits(
    cat: &Catalog<'_>,
    slug: &TenantSlug,
    overrides: Option<&LimitOverrides>,
    plan: Option<&str>,
) -> Result<Value, TenantError> {
    if let Some(overrides) = overrides {
        overrides
            .validate(cat.ceilings)
            .map_err(TenantError::Invalid)?;
    }
    let before = show(cat, slug).await?;
    let mut conn = cat.pool.get().await?;
    let tx = conn.transaction().await?;
    if let Some(plan) = plan {
        check_plan(&tx, plan).await?;
    }
    let overrides_json = overrides.map(|o| json!(o).to_string());
    tx.execute(
        "UPDATE eerp.tenants SET limit_overrides = coalesce($2::text::jsonb, limit_overrides),
             plan = coalesce($3, plan), updated_at = now()
         WHERE slug = $1",
        &[&slug.as_str(), &overrides_json, &plan],
    )
    .await?;
    let pick = |v: &Value| json!({"plan": v["plan"], "limit_overrides": v["limit_overrides"]});
    let after = json!({"plan": plan.map_or(before["plan"].clone(), |p| json!(p)),
                       "limit_overrides": overrides.map_or(before["limit_overrides"].clone(), |o| json!(o))});
    commit_audited(
        tx,
        cat.actor,
        "tenant.limits",
        Some(slug),
        Change::Tenant(slug.to_string()),
        Some(&pick(&before)),
        Some(&after),
    )
    .await?;
    drop(conn);
    show(cat, slug).await
}

/// Sets what `role` grants in the tenant (an empty list removes the role).
///
/// # Errors
/// [`TenantError::Invalid`] for a malformed pattern or role name.
pub async fn set_role(
    cat: &Catalog<'_>,
    slug: &TenantSlug,
    role: &str,
    grants: &[String],
) -> Result<Value, TenantError> {
    if !is_valid_pattern(role) || role.contains(['.', '*']) {
        return Err(TenantError::Invalid(format!(
            "role `{role}` must be lowercase letters, digits, `_` or `-`"
        )));
    }
    if let Some(bad) = grants.iter().find(|g| !is_valid_pattern(g)) {
        return Err(TenantError::Invalid(format!(
            "grant `{bad}` is not a permission pattern like `crm.contacts.read` or `crm.*`"
        )));
    }
    let (id, _) = tenant_id(cat, slug).await?;
    let mut conn = cat.pool.get().await?;
    let tx = conn.transaction().await?;
    let before = tx
        .query_opt(
            "SELECT grants FROM eerp.tenant_roles WHERE tenant_id = $1::text::uuid AND role = $2",
            &[&id, &role],
        )
        .await?
        .map(|row| json!(row.get::<_, Vec<String>>(0)));
    if grants.is_empty() {
        tx.execute(
            "DELETE FROM eerp.tenant_roles WHERE tenant_id = $1::text::uuid AND role = $2",
            &[&id, &role],
        )
        .await?;
    } else {
        tx.execute(
            "INSERT INTO eerp.tenant_roles (tenant_id, role, grants) VALUES ($1::text::uuid, $2, $3)
             ON CONFLICT (tenant_id, role) DO UPDATE SET grants = EXCLUDED.grants",
            &[&id, &role, &grants],
        )
        .await?;
    }
    let after = json!({"role": role, "grants": grants});
    let before = before.map(|g| json!({"role": role, "grants": g}));
    commit_audited(
        tx,
        cat.actor,
        "tenant.role",
        Some(slug),
        Change::Tenant(slug.to_string()),
        before.as_ref(),
        Some(&after),
    )
    .await?;
    drop(conn);
    show(cat, slug).await
}

/// Every plan and its limits.
///
/// # Errors
/// Database failures.
pub async fn plans(cat: &Catalog<'_>) -> Result<Vec<Value>, TenantError> {
    let conn = cat.pool.get().await?;
    let rows = conn
        .query(
            "SELECT json_build_object('name', name, 'limits', limits, 'modules', modules)::text
             FROM eerp.plans ORDER BY name",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| serde_json::from_str(r.get(0)).map_err(|e| TenantError::Catalog(e.to_string())))
        .collect()
}

/// Creates or replaces plan `name`; every tenant on it gets the new limits.
///
/// # Errors
/// [`TenantError::Invalid`] for a bad name or value.
pub async fn put_plan(
    cat: &Catalog<'_>,
    name: &str,
    limits: &LimitOverrides,
) -> Result<Value, TenantError> {
    if !is_valid_pattern(name) || name.contains(['.', '*']) || name.len() > 40 {
        return Err(TenantError::Invalid(format!(
            "plan name `{name}` must be lowercase letters, digits, `_` or `-`"
        )));
    }
    limits
        .validate(cat.ceilings)
        .map_err(TenantError::Invalid)?;
    let mut conn = cat.pool.get().await?;
    let tx = conn.transaction().await?;
    let before = tx
        .query_opt(
            "SELECT limits::text FROM eerp.plans WHERE name = $1",
            &[&name],
        )
        .await?
        .and_then(|row| serde_json::from_str::<Value>(row.get(0)).ok());
    let after = json!(limits);
    tx.execute(
        // A new plan starts with the standard plan's modules.
        "INSERT INTO eerp.plans (name, limits, modules) VALUES ($1, $2::text::jsonb,
             coalesce((SELECT modules FROM eerp.plans WHERE name = 'standard'), '{}'))
         ON CONFLICT (name) DO UPDATE SET limits = EXCLUDED.limits, updated_at = now()",
        &[&name, &after.to_string()],
    )
    .await?;
    let record = json!({"plan": name, "limits": after});
    let before = before.map(|b| json!({"plan": name, "limits": b}));
    commit_audited(
        tx,
        cat.actor,
        "plan.put",
        None,
        Change::All,
        before.as_ref(),
        Some(&record),
    )
    .await?;
    Ok(record)
}

/// Sets the modules new tenants on plan `name` get (tenants that exist keep theirs).
///
/// # Errors
/// [`TenantError::NotFound`] for an unknown plan, [`TenantError::Invalid`] for a module
/// the store does not hold.
pub async fn set_plan_modules(
    cat: &Catalog<'_>,
    name: &str,
    modules: &[String],
) -> Result<Value, TenantError> {
    modules_to_enable(&cat.modules, modules)?;
    let mut conn = cat.pool.get().await?;
    let tx = conn.transaction().await?;
    let before: Vec<String> = tx
        .query_opt(
            "SELECT modules FROM eerp.plans WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await?
        .ok_or_else(|| {
            TenantError::NotFound(format!(
                "no plan `{name}`; `eerp plan list` shows the plans"
            ))
        })?
        .get(0);
    tx.execute(
        "UPDATE eerp.plans SET modules = $2, updated_at = now() WHERE name = $1",
        &[&name, &modules],
    )
    .await?;
    let record = json!({"plan": name, "modules": modules});
    commit_audited(
        tx,
        cat.actor,
        "plan.modules",
        None,
        Change::All,
        Some(&json!({"plan": name, "modules": before})),
        Some(&record),
    )
    .await?;
    Ok(record)
}

/// The audit log, newest first, optionally for one tenant, at most `limit` entries older
/// than entry `before`.
///
/// # Errors
/// Database failures.
pub async fn audit_log(
    cat: &Catalog<'_>,
    tenant: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Value>, TenantError> {
    let conn = cat.pool.get().await?;
    let rows = conn
        .query(
            "SELECT json_build_object('id', id, 'at', at, 'actor', actor, 'action', action,
                     'tenant', tenant, 'before', before, 'after', after)::text
             FROM eerp.audit_log
             WHERE ($1::text IS NULL OR tenant = $1) AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
            &[&tenant, &before, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| serde_json::from_str(r.get(0)).map_err(|e| TenantError::Catalog(e.to_string())))
        .collect()
}

async fn tenant_id(cat: &Catalog<'_>, slug: &TenantSlug) -> Result<(String, String), TenantError> {
    let conn = cat.pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT id::text, status FROM eerp.tenants WHERE slug = $1",
            &[&slug.as_str()],
        )
        .await?
        .ok_or_else(|| TenantError::NotFound(format!("no tenant `{slug}`")))?;
    Ok((row.get(0), row.get(1)))
}
