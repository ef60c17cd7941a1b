//! The connection pools: connections with the same startup settings for everyone, each
//! with its own cache of prepared statements.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_postgres::{ClientWrapper, ManagerConfig, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::statements::Statements;

/// A connection pool (a request lane of one connection, or the background pool); every
/// tenant shares it.
pub type Pool = managed::Pool<Manager>;
/// A connection taken from the [`Pool`].
pub type Object = managed::Object<Manager>;
/// Why the [`Pool`] gave no connection.
pub type PoolError = managed::PoolError<tokio_postgres::Error>;

/// Startup parameters of every pooled connection. The request's wall-clock limit cancels
/// its statements (the host's timer); `statement_timeout` is only a backstop, at the
/// longest wall time a tenant may have.
const CONNECTION_OPTIONS: &str = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c statement_timeout=300000";

/// Builds the pool; a request waits at most `wait` for a connection, and each connection
/// keeps up to `statements` prepared statements (0: none). Connections are made lazily.
///
/// # Errors
/// When `database_url` is not a valid PostgreSQL URL.
pub fn create_pool(
    database_url: &str,
    max_size: usize,
    wait: Duration,
    statements: usize,
) -> anyhow::Result<Pool> {
    let mut config: tokio_postgres::Config = database_url
        .parse()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
    if config.get_connect_timeout().is_none() {
        // An unreachable server (not one refusing) must not hold a request for minutes.
        config.connect_timeout(Duration::from_secs(5));
    }
    let options = match config.get_options() {
        Some(own) => format!("{own} {CONNECTION_OPTIONS}"),
        None => CONNECTION_OPTIONS.to_string(),
    };
    config.options(&options);
    let inner = deadpool_postgres::Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(Manager {
        inner,
        statements,
        taken_by: AtomicU64::new(0),
    })
    .max_size(max_size)
    .runtime(Runtime::Tokio1)
    .wait_timeout(Some(wait))
    .create_timeout(Some(Duration::from_secs(5)))
    .build()?)
}

/// Which HTTP worker this is, and how many own lanes: worker `w` of `n` owns lanes `w`,
/// `w + n`, `w + 2n` and so on of the request pools (a lane is a pool of one connection).
/// Its lanes' connections are made by, and so driven on, the worker's thread, and a
/// statement's request and reply need no wake-up of another thread (measured in
/// `docs/performance.md`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkerLanes {
    /// This worker's index, below `workers`.
    worker: usize,
    /// How many workers own lanes (at least one): the HTTP workers, or the lanes if there
    /// are fewer.
    workers: usize,
}

impl WorkerLanes {
    /// The `index`th of `workers` HTTP workers, with `lanes` request connections: a
    /// worker beyond the lanes shares the lanes of worker `index % lanes`.
    pub fn of(index: usize, workers: usize, lanes: usize) -> Self {
        let workers = workers.clamp(1, lanes.max(1));
        Self {
            worker: index % workers,
            workers,
        }
    }

    /// This worker's lanes among `lanes`, the one `affinity` picks first, then the
    /// others in turn: a tenant's requests start at the same lane each time.
    pub fn own(self, lanes: usize, affinity: u64) -> impl Iterator<Item = usize> {
        let count = lanes.saturating_sub(self.worker).div_ceil(self.workers);
        let first = if count == 0 {
            0
        } else {
            (affinity % count as u64) as usize
        };
        (0..count).map(move |k| self.worker + ((first + k) % count) * self.workers)
    }
}

/// deadpool-postgres' manager, with a statement cache of our own on every connection
/// (its own cache has no bound).
pub struct Manager {
    inner: deadpool_postgres::Manager,
    statements: usize,
    /// The affinity ([`super::affinity`]) of the tenant whose request took the pool's
    /// connection last through [`super::Connections`]: while a request holds it, that
    /// request's tenant (0 before any did).
    taken_by: AtomicU64,
}

impl Manager {
    /// Records that a request of the tenant with `affinity` took a connection.
    pub(super) fn take(&self, affinity: u64) {
        self.taken_by.store(affinity, Ordering::Relaxed);
    }

    /// Whether the connection was taken last by the tenant with `affinity`.
    pub(super) fn taken_by(&self, affinity: u64) -> bool {
        self.taken_by.load(Ordering::Relaxed) == affinity
    }
}

/// A PostgreSQL connection and the statements prepared on it.
pub struct Connection {
    client: ClientWrapper,
    /// Only the request holding the connection uses it; the lock is never contended.
    pub(super) statements: Mutex<Statements>,
}

impl Connection {
    /// The tokio-postgres client itself.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl Deref for Connection {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        &self.client
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut ClientWrapper {
        &mut self.client
    }
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Connection, tokio_postgres::Error> {
        let client = self.inner.create().await?;
        Ok(Connection {
            client,
            statements: Mutex::new(Statements::new(self.statements)),
        })
    }

    async fn recycle(
        &self,
        conn: &mut Connection,
        metrics: &Metrics,
    ) -> RecycleResult<tokio_postgres::Error> {
        self.inner.recycle(&mut conn.client, metrics).await
    }

    fn detach(&self, conn: &mut Connection) {
        self.inner.detach(&mut conn.client);
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerLanes;

    #[test]
    fn each_worker_owns_every_nth_lane_starting_where_the_tenant_hashes() {
        let first = WorkerLanes::of(0, 2, 8);
        assert_eq!(first.own(8, 0).collect::<Vec<_>>(), [0, 2, 4, 6]);
        assert_eq!(first.own(8, 5).collect::<Vec<_>>(), [2, 4, 6, 0]);
        let second = WorkerLanes::of(1, 2, 8);
        assert_eq!(second.own(8, 7).collect::<Vec<_>>(), [7, 1, 3, 5]);
        // Uneven: worker 0 of 2 owns three of five lanes, worker 1 two.
        assert_eq!(first.own(5, 0).count(), 3);
        assert_eq!(second.own(5, 0).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn workers_beyond_the_lanes_share_them() {
        let lanes = WorkerLanes::of(3, 4, 2);
        assert_eq!(lanes, WorkerLanes::of(1, 2, 2));
        assert_eq!(lanes.own(2, 9).collect::<Vec<_>>(), [1]);
        let alone = WorkerLanes::of(0, 0, 0);
        assert_eq!(alone.own(0, 1).count(), 0);
    }
}
