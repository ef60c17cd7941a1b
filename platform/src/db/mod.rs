//! The shared connection pools and the per-request transaction.
//!
//! Every tenant shares the same connections: each HTTP worker owns some of the request
//! connections, each a pool of one ("lanes", [`WorkerLanes`]), a tenant's requests try
//! the same lane first, and work outside the data API has a pool of its own. Settings that are the
//! same for every request (time zone, date style, a statement-timeout backstop) are the
//! connection's startup parameters; nothing a tenant or request chooses is ever set on a
//! connection. A request's reads
//! before its first write each take a connection and give it back as soon as the rows
//! are in (READ COMMITTED gives each statement its own snapshot inside a transaction
//! too, so nothing ties them to one connection), and a request busy in its module holds
//! none; its first write or lock opens the transaction, which keeps its connection and
//! ends with exactly one `COMMIT` or `ROLLBACK`. A connection goes back to the pool
//! only when no statement of the request can still run and any transaction was closed:
//! if the request is cancelled, panics, or the closing statement fails, the connection is
//! closed instead, so no transaction, lock or setting can reach the next tenant.
//!
//! A request dropped while its statement runs (the client went away, a timeout, shutdown)
//! does not leave that statement running: the session cancels it on the server and keeps
//! the connection, and the tenant's permits, counted as in use until the backend is idle
//! ([`wind_down`]). So live backends never exceed the pools' sizes, whatever clients do.
//!
//! Each connection keeps the data API's statements it has seen more than once prepared
//! ([`statements`]), so PostgreSQL parses and plans them once per connection, not per
//! request.

mod pool;
mod statements;

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, RowStream};

pub use pool::{Connection, Object, Pool, PoolError, WorkerLanes, create_pool};
use statements::Lookup;

/// Something a session keeps until it ends and no statement of it can still run (a
/// permit, mostly).
type Held = Box<dyn Send + Sync>;

/// How long `COMMIT` or `ROLLBACK` may take before the connection is given up.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `sql` with its parameters, each bound as the given type, prepared if `conn` has
/// seen the text before (see [`statements`]).
///
/// # Errors
/// As PostgreSQL answered, or the connection failed.
pub async fn query(
    conn: &Object,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<RowStream, tokio_postgres::Error> {
    let lookup = match conn.statements.lock() {
        Ok(mut statements) => statements.lookup(sql),
        Err(_) => Lookup::RunUnprepared,
    };
    let statement = match lookup {
        Lookup::RunUnprepared => return conn.query_typed_raw(sql, params.iter().cloned()).await,
        Lookup::Prepared(statement) => statement,
        Lookup::Prepare => {
            let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
            let statement = conn.prepare_typed(sql, &types).await?;
            if let Ok(mut statements) = conn.statements.lock() {
                statements.insert(sql, statement.clone());
            }
            statement
        }
    };
    let rows = conn
        .query_raw(&statement, params.iter().map(|(param, _)| *param))
        .await;
    if let Err(e) = &rows
        && e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME)
    {
        // Gone from the server (something in between dropped it): prepare it anew.
        if let Ok(mut statements) = conn.statements.lock() {
            statements.forget(sql);
        }
    }
    rows
}

/// A tenant's share of the pool's connections.
#[derive(Clone)]
pub struct ConnectionShare {
    /// One permit per connection of the share.
    pub permits: Arc<Semaphore>,
    /// How many permits the share has.
    pub size: u32,
    /// Tenants of this replica active now, this one included.
    pub active_tenants: Arc<AtomicUsize>,
}

/// Reads shorter than this never pay back: a request's lookups take well under it, also
/// when a neighbour's scans slow the database down (a read's time includes its waits).
const READ_GRACE: Duration = Duration::from_millis(20);

/// The longest a permit is kept back for one read. Longer than the pool wait: a tenant
/// whose scans keep all its permits back is over its share, and its further requests get
/// 503 with `Retry-After` (a shorter bound let its scans keep taking the database from
/// the others: measured in `docs/reliability.md`).
const MAX_READ_PAYBACK: Duration = Duration::from_secs(10);

impl ConnectionShare {
    /// Gives back the permit of a plain read that took `elapsed`. While other tenants are
    /// active, a read longer than [`READ_GRACE`] keeps its permit idle for a while
    /// first, so a tenant running long scans gets a small part of the database's time,
    /// like a CPU-heavy one gets a small part of the cores
    /// ([`crate::runtime::cpu::CpuShared`]). The pay-back is the read's time beyond the
    /// grace, times the CPU pay-back factor, times the share's size: the tenant's
    /// permits together run about as many scans as one permit would run alone, since the
    /// database's cores, not its connections, are what the scans use up. Only plain
    /// reads pay back: their time is the database working (no row locks to wait on).
    fn read_ended(&self, permit: OwnedSemaphorePermit, elapsed: Duration) {
        let factor =
            crate::runtime::cpu::payback_factor(&self.active_tenants).saturating_mul(self.size);
        let payback = elapsed.saturating_sub(READ_GRACE).saturating_mul(factor);
        if payback.is_zero() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        drop(runtime.spawn(async move {
            tokio::time::sleep(payback.min(MAX_READ_PAYBACK)).await;
            drop(permit);
        }));
    }
}

/// Where a request's connection comes from: the request lanes, within its tenant's share.
#[derive(Clone)]
pub struct Connections {
    /// The request lanes, one connection each.
    pub pools: Arc<[Pool]>,
    /// Which of them this request's worker owns.
    pub lanes: WorkerLanes,
    /// Which of the worker's lanes the tenant tries first ([`affinity`]).
    pub affinity: u64,
    /// The tenant's share ([`crate::tenants::gate::Gate::connection_share`]).
    pub share: ConnectionShare,
    /// How long to wait for a permit and then a connection, together.
    pub wait: Duration,
}

/// Which lane a tenant's requests try first, the same for every request of the tenant.
pub fn affinity(tenant_id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(tenant_id)
}

impl Connections {
    /// The tenant's lane of the worker's own, else a free one of the worker's other
    /// lanes, else the first connection any lane has. A tenant's requests keep to few
    /// backends, so each backend's catalog caches and prepared statements cover a
    /// fraction of the tenants rather than all of them. A request whose lane another
    /// tenant holds waits for it up to [`LANE_WAIT`] (taking any free connection at once
    /// made every backend see every tenant under load: measured in
    /// `docs/performance.md`); one whose lane its own tenant holds takes another at once,
    /// so a busy tenant can still use them all (a connection of another worker is driven
    /// by another thread: slower, never wrong).
    async fn connection(&self) -> Result<Object, PoolError> {
        let mut own = self.lanes.own(self.pools.len(), self.affinity);
        if let Some(lane) = own.next() {
            let wait = match self.pools.get(lane) {
                Some(pool) => lane_wait(pool.manager().taken_by(self.affinity)),
                None => Duration::ZERO,
            };
            if let Some(conn) = self.take(lane, wait).await {
                return Ok(conn);
            }
        }
        for lane in own {
            if let Some(conn) = self.take(lane, Duration::ZERO).await {
                return Ok(conn);
            }
        }
        if self.pools.is_empty() {
            return Err(PoolError::Closed);
        }
        // Only lanes that have their connection: waiting on an empty one would make its
        // connection here, driven by this worker's thread for good (unless none has one).
        let made = |pool: &Pool| pool.status().size > 0;
        let any_made = self.pools.iter().any(made);
        let gets = self
            .pools
            .iter()
            .filter(|pool| !any_made || made(pool))
            .map(|pool| Box::pin(async move { pool.get().await.map(|conn| (pool, conn)) }));
        let ((pool, conn), _) = futures_util::future::select_ok(gets).await?;
        pool.manager().take(self.affinity);
        Ok(conn)
    }

    /// `lane`'s connection if it is free within `wait`, marked as this tenant's.
    async fn take(&self, lane: usize, wait: Duration) -> Option<Object> {
        let pool = self.pools.get(lane)?;
        let mut timeouts = pool.timeouts();
        timeouts.wait = Some(wait);
        let conn = pool.timeout_get(&timeouts).await.ok()?;
        pool.manager().take(self.affinity);
        Some(conn)
    }
}

/// How long a request waits for its tenant's lane while another tenant holds it, before
/// it takes any free connection.
const LANE_WAIT: Duration = Duration::from_millis(2);

/// How long to wait for the tenant's lane: not at all when the tenant's own request holds
/// it (a busy tenant spreads over the lanes rather than queue on one), else
/// [`LANE_WAIT`].
fn lane_wait(held_by_same_tenant: bool) -> Duration {
    if held_by_same_tenant {
        Duration::ZERO
    } else {
        LANE_WAIT
    }
}

/// One request's database work: a connection taken on first use, a transaction opened
/// by the first write.
pub struct DbSession {
    source: Option<Connections>,
    conn: Option<Object>,
    /// `BEGIN` was sent on `conn`.
    in_transaction: bool,
    /// A cancel was sent for a statement of `conn`: it may still arrive, so the
    /// connection must not serve anyone else.
    cancelled: bool,
    /// The tenant's connection permit for `conn`, given back with it.
    permit: Option<OwnedSemaphorePermit>,
    /// Given back at the end of the session, once no statement of it can run: whatever
    /// the request handed over with [`DbSession::hold`].
    held: Vec<Held>,
    aborted: bool,
    failure: Option<String>,
    timed_out: bool,
}

impl DbSession {
    /// A session that will take a connection from `source` when first used.
    pub fn new(source: Connections) -> Self {
        Self::with(Some(source))
    }

    /// A session without a database; every use fails.
    pub fn detached() -> Self {
        Self::with(None)
    }

    fn with(source: Option<Connections>) -> Self {
        Self {
            source,
            conn: None,
            in_transaction: false,
            cancelled: false,
            permit: None,
            held: Vec::new(),
            aborted: false,
            failure: None,
            timed_out: false,
        }
    }

    /// The connection for a statement: for a `write` (or a lock), inside the request's
    /// transaction, opened now if it is not yet; for a plain read, as it is.
    ///
    /// # Errors
    /// A description of why no connection or transaction could be had; the session is
    /// then marked failed.
    pub async fn client(&mut self, write: bool) -> Result<&Object, String> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        if self.conn.is_none() {
            match self.connect().await {
                // Held by the session from here on: should anything go wrong, `Drop`
                // closes it rather than pooling it.
                Ok(conn) => self.conn = Some(conn),
                Err(reason) => {
                    self.fail(reason.clone());
                    return Err(reason);
                }
            }
        }
        if write && !self.in_transaction {
            // Marked first: should BEGIN fail halfway, the connection is not pooled.
            self.in_transaction = true;
            let begun = match &self.conn {
                Some(conn) => conn.batch_execute("BEGIN").await.map_err(|e| e.to_string()),
                None => Err("no database connection".into()),
            };
            if let Err(e) = begun {
                let reason = format!("could not begin a transaction: {e}");
                self.fail(reason.clone());
                return Err(reason);
            }
        }
        self.conn
            .as_ref()
            .ok_or_else(|| "no database connection".to_string())
    }

    /// A pooled connection within the tenant's share, its permit kept in `permit`.
    async fn connect(&mut self) -> Result<Object, String> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| "no database in this context".to_string())?;
        let started = std::time::Instant::now();
        let share = source.share.permits.clone().acquire_owned();
        let permit = match tokio::time::timeout(source.wait, share).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => {
                return Err(format!(
                    "this tenant's share of database connections stayed in use (or held back after \
                     long reads) for {} ms; retry shortly",
                    source.wait.as_millis()
                ));
            }
        };
        let remaining = source.wait.saturating_sub(started.elapsed());
        let conn = match tokio::time::timeout(remaining, source.connection()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(format!("no database connection available: {e}")),
            Err(_) => return Err("no database connection was free in time".into()),
        };
        self.permit = Some(permit);
        Ok(conn)
    }

    /// Gives the connection back after a read that ran outside a transaction and ended
    /// (read to its end, or refused by the database for its input) in `elapsed`: the
    /// backend is idle, and whatever the request does next (more wasm, another read)
    /// need not keep a connection from the others. A cancelled or broken connection is
    /// kept, to be wound down or closed when the session ends.
    pub fn read_done(&mut self, elapsed: Duration) {
        if self.in_transaction || self.cancelled || self.failure.is_some() {
            return;
        }
        drop(self.conn.take());
        if let (Some(permit), Some(source)) = (self.permit.take(), &self.source) {
            source.share.read_ended(permit, elapsed);
        }
    }

    /// Keeps `permit` until the session ends and, if it still has a connection, that
    /// connection is idle, so what it counts cannot be reused while a statement of this
    /// request may still run.
    pub fn hold(&mut self, permit: impl Send + Sync + 'static) {
        self.held.push(Box::new(permit));
    }

    /// Records that a statement failed, which aborts the transaction: later statements
    /// would fail too, and the request can only roll back.
    pub fn mark_aborted(&mut self) {
        self.aborted = true;
    }

    /// Whether an earlier statement aborted the transaction.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// Records an infrastructure failure (connection lost, timeout): the request ends as
    /// `db_error`.
    pub fn fail(&mut self, reason: String) {
        self.aborted = true;
        self.failure.get_or_insert(reason);
    }

    /// Records that PostgreSQL cancelled a statement at the request's time limit: the
    /// request ends as `timeout`, like one the host's own clock stopped.
    pub fn time_out(&mut self) {
        self.timed_out = true;
        self.fail("a statement ran into the request's time limit".into());
    }

    /// Whether a statement ran into the request's time limit.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// The infrastructure failure, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Asks PostgreSQL to cancel a statement still running for this session (after a
    /// wall-clock timeout dropped the call that was waiting for it).
    pub async fn cancel_running(&mut self) {
        if let Some(conn) = &self.conn {
            self.cancelled = true;
            cancel(conn).await;
        }
    }

    /// Commits (when `commit` and nothing aborted the transaction) or rolls back.
    ///
    /// # Errors
    /// When the commit fails; nothing was saved then.
    pub async fn finish(mut self, commit: bool) -> Result<(), String> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(());
        };
        if !self.in_transaction {
            // Only reads ran, each awaited to its end: the connection is idle, unless a
            // cancel is on its way (then `Drop` winds it down and closes it).
            if !self.cancelled {
                drop(self.conn.take());
            }
            return Ok(());
        }
        let commit = commit && !self.aborted;
        let statement = if commit { "COMMIT" } else { "ROLLBACK" };
        let result = tokio::time::timeout(FINISH_TIMEOUT, conn.batch_execute(statement)).await;
        match result {
            Ok(Ok(())) => {
                // Transaction closed: the connection may serve the next request, unless a
                // cancel sent for it may still arrive (then `Drop` closes it).
                if !self.cancelled {
                    drop(self.conn.take());
                }
                Ok(())
            }
            // Dropping `self` closes the connection instead of pooling it.
            Ok(Err(e)) if commit => Err(format!("commit failed: {e}")),
            Err(_) if commit => Err("commit did not finish in time".into()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "rollback failed; connection closed");
                Ok(())
            }
            Err(_) => {
                tracing::warn!("rollback did not finish in time; connection closed");
                Ok(())
            }
        }
    }
}

impl Drop for DbSession {
    fn drop(&mut self) {
        let mut held = std::mem::take(&mut self.held);
        held.extend(self.permit.take().map(|p| Box::new(p) as Held));
        // Still held means the transaction was not closed cleanly: a statement may run.
        let Some(conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(wind_down(conn, held))),
            Err(_) => drop(Object::take(conn)),
        }
    }
}

/// Ends a connection whose request went away: cancels whatever statement it still runs,
/// waits until the backend is idle, then closes it (never pools it). Until then the
/// connection counts as in use in the pool, and `held` (the tenant's permits) stay taken.
async fn wind_down(conn: Object, held: Vec<Held>) {
    // Should this task itself be dropped (the runtime shutting down), the connection is
    // still closed, never pooled.
    let conn = NeverPooled(Some(conn));
    if let Some(conn) = &conn.0 {
        cancel(conn).await;
        // Answered only once the cancelled statement has ended and the backend is idle.
        match tokio::time::timeout(FINISH_TIMEOUT, conn.batch_execute("ROLLBACK")).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "rollback of an abandoned request failed"),
            Err(_) => tracing::warn!("an abandoned request's backend stayed busy; closing it"),
        }
    }
    drop(conn);
    drop(held);
}

/// How long a cancel request may take (it opens a connection of its own).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks PostgreSQL to cancel whatever `conn` runs, within [`CANCEL_TIMEOUT`].
async fn cancel(conn: &Object) {
    let token = conn.cancel_token();
    match tokio::time::timeout(CANCEL_TIMEOUT, token.cancel_query(NoTls)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not cancel a statement"),
        Err(_) => tracing::warn!("cancelling a statement did not finish in time"),
    }
}

/// A connection that is closed when dropped, whatever happens.
struct NeverPooled(Option<Object>);

impl Drop for NeverPooled {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_waits_for_its_lane_only_behind_another_tenant() {
        assert_eq!(lane_wait(false), LANE_WAIT);
        assert_eq!(lane_wait(true), Duration::ZERO);
        assert_ne!(affinity("a"), affinity("b"));
        assert_eq!(affinity("a"), affinity("a"));
    }

    /// A share of one permit, among `active` tenants; the permit is taken.
    async fn share_with_its_permit_taken(active: usize) -> (ConnectionShare, OwnedSemaphorePermit) {
        let share = ConnectionShare {
            permits: Arc::new(Semaphore::new(1)),
            size: 1,
            active_tenants: Arc::new(AtomicUsize::new(active)),
        };
        let permit = share.permits.clone().acquire_owned().await.unwrap();
        (share, permit)
    }

    #[tokio::test]
    async fn a_long_read_keeps_its_permit_back_only_while_others_are_active() {
        let (alone, permit) = share_with_its_permit_taken(1).await;
        alone.read_ended(permit, Duration::from_secs(1));
        assert_eq!(alone.permits.available_permits(), 1, "alone: back at once");

        let (short, permit) = share_with_its_permit_taken(2).await;
        short.read_ended(permit, READ_GRACE);
        assert_eq!(
            short.permits.available_permits(),
            1,
            "within the grace: back at once"
        );

        // 100 ms beyond the grace, beside one other tenant: kept back 8 × 100 ms.
        let (busy, permit) = share_with_its_permit_taken(2).await;
        let started = std::time::Instant::now();
        busy.read_ended(permit, READ_GRACE + Duration::from_millis(100));
        assert_eq!(busy.permits.available_permits(), 0, "kept back");
        drop(busy.permits.acquire().await.unwrap());
        assert!(started.elapsed() >= Duration::from_millis(800));
    }
}
