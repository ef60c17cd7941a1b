//! The connection pools: connections with the same startup settings for everyone, each
//! with its own cache of prepared statements.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_postgres::{ClientWrapper, ManagerConfig, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::statements::Statements;

/// A connection pool (one HTTP worker's, or the background one); every tenant shares it.
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
    Ok(Pool::builder(Manager { inner, statements })
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()?)
}

/// Splits `total` connections (at least one) into one pool per worker, or one per
/// connection when there are more workers than connections (workers then share pools
/// round-robin), so the pools never hold more than `total` together.
pub fn split(total: usize, workers: usize) -> Vec<usize> {
    let total = total.max(1);
    let pools = workers.clamp(1, total);
    (0..pools)
        .map(|i| total / pools + usize::from(i < total % pools))
        .collect()
}

/// Which of the request pools is this HTTP worker's own: its connections are made by, and
/// so driven on, the worker's thread, and a statement's request and reply need no wake-up
/// of another thread (measured in `docs/performance.md`).
#[derive(Clone, Copy)]
pub struct WorkerPool(pub usize);

/// deadpool-postgres' manager, with a statement cache of our own on every connection
/// (its own cache has no bound).
pub struct Manager {
    inner: deadpool_postgres::Manager,
    statements: usize,
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
    #[test]
    fn connections_are_split_over_workers_never_beyond_the_total() {
        assert_eq!(super::split(16, 2), [8, 8]);
        assert_eq!(super::split(5, 2), [3, 2]);
        assert_eq!(super::split(1, 2), [1]);
        assert_eq!(super::split(3, 32), [1, 1, 1]);
        assert_eq!(super::split(4, 0), [4]);
        assert_eq!(super::split(0, 2), [1]);
    }
}
