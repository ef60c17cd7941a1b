//! The tenant directory: what the request path needs to know about a tenant (status,
//! enabled modules, roles, effective limits), cached per replica.
//!
//! Entries are loaded with one query and kept in a bounded moka cache. Operator changes
//! reach every replica through `LISTEN/NOTIFY` ([`super::notify`]), which invalidates the
//! entry; the time-to-live is a safety net for a missed notification.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::db::Pool;
use eerp_tenancy::id::TenantSlug;
use eerp_tenancy::permission::RoleGrants;
use eerp_tenancy::{LimitOverrides, Limits};
use moka::future::Cache;

use super::TenantError;
use super::gate::{Gate, Shares};

/// A tenant's life cycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Being created; not served until provisioning finishes.
    Provisioning,
    /// Served.
    Active,
    /// Data kept, requests refused with 403.
    Suspended,
    /// Soft-deleted: refused like an unknown tenant, purged after the grace period.
    Deleted,
}

impl Status {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provisioning => "provisioning",
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Deleted => "deleted",
        }
    }

    /// Parses the catalog's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Status::Provisioning,
            Status::Active,
            Status::Suspended,
            Status::Deleted,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One tenant as the request path sees it.
#[derive(Debug, Clone)]
pub struct TenantEntry {
    /// The catalog id of this incarnation of the tenant.
    pub id: String,
    /// Slug.
    pub slug: TenantSlug,
    /// Life cycle state.
    pub status: Status,
    /// Defaults, then the plan, then the tenant's overrides.
    pub limits: Limits,
    /// Enabled modules and the module version each is served.
    pub modules: BTreeMap<String, String>,
    /// The tenant's roles.
    pub roles: RoleGrants,
    /// When this tenant (this incarnation of its slug) was created, in seconds since the
    /// epoch: tokens issued before then were for an earlier tenant of the same slug.
    pub created_at: u64,
}

/// Cached tenant entries and admission gates of this replica.
pub struct TenantDirectory {
    pool: Pool,
    base: Limits,
    shares: Shares,
    /// Tenants with module calls in flight on this replica, or just ended.
    active_tenants: Arc<AtomicUsize>,
    entries: Cache<String, Option<Arc<TenantEntry>>>,
    gates: moka::sync::Cache<String, Arc<Gate>>,
    /// Bumped by every invalidation, so a load that raced with one is not trusted.
    invalidations: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TenantDirectory {
    /// A directory over `pool`; `base` are the limits under every plan, and `shares`
    /// what each tenant may hold of this replica's shared resources.
    pub fn new(pool: Pool, base: Limits, shares: Shares, capacity: u64, ttl: Duration) -> Self {
        Self {
            pool,
            base,
            shares,
            active_tenants: Arc::default(),
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            gates: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            invalidations: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Entry lookups so far: (hits, misses).
    pub fn cache_counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The limits under every plan.
    pub fn base_limits(&self) -> &Limits {
        &self.base
    }

    /// The tenant `slug`, or `None` when there is no such tenant. Concurrent misses for
    /// one tenant share a single database query.
    ///
    /// # Errors
    /// [`TenantError::Db`] when the catalog cannot be read.
    pub async fn get(&self, slug: &TenantSlug) -> Result<Option<Arc<TenantEntry>>, TenantError> {
        if let Some(entry) = self.entries.get(slug.as_str()).await {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let before = self.invalidations.load(Ordering::Acquire);
        let entry = self.cached(slug).await?;
        if self.invalidations.load(Ordering::Acquire) == before {
            return Ok(entry);
        }
        // An invalidation arrived while this entry was loading, so it may predate the
        // change (a suspension, say): drop it and read again.
        self.entries.invalidate(slug.as_str()).await;
        self.cached(slug).await
    }

    async fn cached(&self, slug: &TenantSlug) -> Result<Option<Arc<TenantEntry>>, TenantError> {
        self.entries
            .try_get_with_by_ref(slug.as_str(), load(&self.pool, &self.base, slug))
            .await
            .map_err(TenantError::Shared)
    }

    /// The admission gate of `entry`, rebuilt when its limits changed.
    pub fn gate(&self, entry: &TenantEntry) -> Arc<Gate> {
        use moka::ops::compute::{CompResult, Op};
        let key = entry.slug.as_str();
        if let Some(gate) = self.gates.get(key)
            && gate.fits(&entry.limits)
        {
            return gate;
        }
        // Missing or built for other limits: replace it under the key's lock, so requests
        // racing here end up with one gate (two buckets would admit twice the rate).
        let result = self
            .gates
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(gate) if gate.value().fits(&entry.limits) => Op::Nop,
                Some(gate) => Op::Put(Arc::new(gate.value().rebuilt(&entry.limits))),
                None => Op::Put(Arc::new(Gate::new(
                    &entry.limits,
                    self.shares,
                    self.active_tenants.clone(),
                ))),
            });
        match result {
            CompResult::Inserted(gate)
            | CompResult::ReplacedWith(gate)
            | CompResult::Unchanged(gate) => gate.into_value(),
            // The closure never removes; a fresh gate is still a correct answer.
            CompResult::Removed(_) | CompResult::StillNone(_) => Arc::new(Gate::new(
                &entry.limits,
                self.shares,
                self.active_tenants.clone(),
            )),
        }
    }

    /// Forgets `slug` so the next request reads the catalog.
    pub async fn invalidate(&self, slug: &str) {
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(slug).await;
    }

    /// Forgets every tenant (after a plan changed or notifications may have been missed).
    pub fn invalidate_all(&self) {
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }
}

async fn load(
    pool: &Pool,
    base: &Limits,
    slug: &TenantSlug,
) -> Result<Option<Arc<TenantEntry>>, TenantError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT t.status, p.limits::text, t.limit_overrides::text,
                coalesce((SELECT json_object_agg(m.module, m.module_version) FROM eerp.tenant_modules m
                          WHERE m.tenant_id = t.id AND m.enabled AND m.module_version IS NOT NULL),
                         '{}')::text,
                coalesce((SELECT json_object_agg(r.role, r.grants) FROM eerp.tenant_roles r
                          WHERE r.tenant_id = t.id), '{}')::text,
                extract(epoch FROM t.created_at)::bigint,
                t.id::text
             FROM eerp.tenants t JOIN eerp.plans p ON p.name = t.plan
             WHERE t.slug = $1",
            &[&slug.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let json = |i: usize| -> Result<serde_json::Value, TenantError> {
        serde_json::from_str(row.get::<_, &str>(i))
            .map_err(|e| TenantError::Catalog(format!("catalog JSON of {slug}: {e}")))
    };
    let overrides = |i: usize| -> Result<LimitOverrides, TenantError> {
        LimitOverrides::from_stored(json(i)?)
            .map_err(|e| TenantError::Catalog(format!("catalog limits of {slug}: {e}")))
    };
    let limits = base.with(&overrides(1)?.merged(&overrides(2)?));
    let modules = serde_json::from_value(json(3)?)
        .map_err(|e| TenantError::Catalog(format!("catalog modules of {slug}: {e}")))?;
    let roles = serde_json::from_value(json(4)?)
        .map_err(|e| TenantError::Catalog(format!("catalog roles of {slug}: {e}")))?;
    let status: &str = row.get(0);
    Ok(Some(Arc::new(TenantEntry {
        id: row.get(6),
        slug: slug.clone(),
        status: Status::parse(status)
            .ok_or_else(|| TenantError::Catalog(format!("unknown status `{status}` of {slug}")))?,
        limits,
        modules,
        roles: RoleGrants(roles),
        created_at: u64::try_from(row.get::<_, i64>(5)).unwrap_or(0),
    })))
}
