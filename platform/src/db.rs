//! The shared connection pool and the per-request transaction.
//!
//! One pool serves every tenant. A request's transaction starts on its first data call,
//! with `SET LOCAL` settings only, and ends with exactly one `COMMIT` or `ROLLBACK`; a
//! connection whose rollback fails is discarded instead of returned to the pool, so no
//! transaction or setting can leak to the next tenant.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// Builds the pool. Connections are made lazily.
///
/// # Errors
/// When `database_url` is not a valid PostgreSQL URL.
pub fn create_pool(database_url: &str, max_size: usize) -> anyhow::Result<Pool> {
    let config: tokio_postgres::Config = database_url
        .parse()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()?)
}

/// One request's database work: a transaction opened on first use.
pub struct DbSession {
    pool: Option<Pool>,
    conn: Option<Object>,
    statement_timeout: Duration,
    aborted: bool,
    failure: Option<String>,
}

impl DbSession {
    /// A session that will take a connection from `pool` when first used. Statements are
    /// cancelled by PostgreSQL after `statement_timeout`.
    pub fn new(pool: Pool, statement_timeout: Duration) -> Self {
        Self {
            pool: Some(pool),
            conn: None,
            statement_timeout,
            aborted: false,
            failure: None,
        }
    }

    /// A session without a database; every use fails.
    pub fn detached() -> Self {
        Self {
            pool: None,
            conn: None,
            statement_timeout: Duration::ZERO,
            aborted: false,
            failure: None,
        }
    }

    /// The connection, inside the open transaction.
    ///
    /// # Errors
    /// A description of why no connection or transaction could be had; the session is
    /// then marked failed.
    pub async fn client(&mut self) -> Result<&Object, String> {
        if self.conn.is_none() {
            let conn = self.begin().await.inspect_err(|e| self.fail(e.clone()))?;
            self.conn = Some(conn);
        }
        self.conn
            .as_ref()
            .ok_or_else(|| "no database connection".to_string())
    }

    async fn begin(&self) -> Result<Object, String> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| "no database in this context".to_string())?;
        let conn = pool
            .get()
            .await
            .map_err(|e| format!("no database connection available: {e}"))?;
        let timeout_ms = self.statement_timeout.as_millis().max(1);
        conn.batch_execute(&format!(
            "BEGIN; SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL TIME ZONE 'UTC'"
        ))
        .await
        .map_err(|e| format!("could not begin a transaction: {e}"))?;
        Ok(conn)
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

    /// The infrastructure failure, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Commits (when `commit` and nothing aborted the transaction) or rolls back.
    ///
    /// # Errors
    /// When the commit fails; nothing was saved then.
    pub async fn finish(mut self, commit: bool) -> Result<(), String> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        let statement = if commit && !self.aborted {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        match conn.batch_execute(statement).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // The connection's state is unknown: close it rather than pool it.
                drop(Object::take(conn));
                if statement == "COMMIT" {
                    Err(format!("commit failed: {e}"))
                } else {
                    tracing::warn!(error = %e, "rollback failed; connection discarded");
                    Ok(())
                }
            }
        }
    }
}
