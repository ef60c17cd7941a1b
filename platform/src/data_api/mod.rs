//! The data API: typed operations from a module, SQL built by the host.
//!
//! - [`query`]: a [`DataOp`] checked against the module's [`SchemaModel`] -> one SQL
//!   statement with bind parameters, in the tenant's schema.
//! - [`values`]: JSON values <-> column types (exact decimals, no floats).
//! - [`cursor`]: opaque keyset cursors for lists.
//!
//! [`execute`] runs one operation (a plain read on a connection of its own, a write or a
//! lock in the request's transaction; see [`crate::db`]) and enforces the per-request
//! caps. Constraint and data errors go back to the module as [`DataError`]s (a
//! transaction is then aborted and will roll back); infrastructure failures end the
//! request as `db_error`.

pub mod cursor;
pub mod query;
pub mod scope;
pub mod values;

use std::time::Duration;

use eerp_abi::data::{DataError, DataErrorKind, DataOp};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_postgres::error::SqlState;

use query::Statement;
pub use scope::{ReadGrant, RequestScope};

/// What one request has used of the data API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataUsage {
    /// Calls made.
    pub calls: u32,
    /// Rows returned, all calls together.
    pub rows: u64,
    /// Bytes of row text returned, all calls together.
    pub bytes: u64,
    /// Wall time spent in data calls (database included).
    pub host_time: Duration,
    /// Each statement's operation and duration, for the query histogram.
    pub statements: Vec<(&'static str, Duration)>,
    /// A data call was stopped at the row or byte cap (the request is `data_limit`).
    pub capped: bool,
}

/// The operation's name as metrics label it.
pub fn op_name(op: &DataOp) -> &'static str {
    match op {
        DataOp::Insert { .. } => "insert",
        DataOp::Get { .. } => "get",
        DataOp::GetForUpdate { .. } => "get_for_update",
        DataOp::GetBy { .. } => "get_by",
        DataOp::List(_) => "list",
        DataOp::Update { .. } => "update",
        DataOp::Delete { .. } => "delete",
        DataOp::Restore { .. } => "restore",
        DataOp::Aggregate(_) => "aggregate",
    }
}

/// What `data_call` answers: [`eerp_abi::data::DataReply`] as it is encoded, with the
/// result already JSON (written straight from the rows, never built as a `Value`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The operation's result.
    Ok(Box<RawValue>),
    /// Why it failed.
    Error(DataError),
}

/// Runs one data API request from the module and returns the reply it will read.
pub async fn execute(scope: &mut RequestScope, request: &[u8]) -> Reply {
    match run(scope, request).await {
        Ok(value) => Reply::Ok(value),
        Err(err) => Reply::Error(err),
    }
}

async fn run(scope: &mut RequestScope, request: &[u8]) -> Result<Box<RawValue>, DataError> {
    scope.usage.calls += 1;
    if scope.usage.calls > scope.limits.max_data_calls {
        return Err(error(
            DataErrorKind::LimitExceeded,
            format!(
                "this request made more than {} data calls, the tenant's limit",
                scope.limits.max_data_calls
            ),
        ));
    }
    let op: DataOp = serde_json::from_slice(request).map_err(|e| {
        error(
            DataErrorKind::Invalid,
            format!("not a data API operation: {e}"),
        )
    })?;
    if scope.db.is_aborted() {
        return Err(error(
            DataErrorKind::Unavailable,
            "an earlier data call of this request failed, so its transaction can only roll back",
        ));
    }
    let (schema, model) = scope.target(&op)?;
    let statement = query::build(schema, model, &op)?;
    let insert = query::insert_if_absent(schema, model, &op)?;
    let rows = run_statement(scope, &statement, op_name(&op), !op.is_read()).await?;
    let Some(insert) = insert.filter(|_| rows.is_empty()) else {
        return statement.shape.render(&rows);
    };
    // `get_by` with `or_insert` on a missing row: insert it, or, when a concurrent
    // request's insert won (the insert waited for it and did nothing), read that row.
    let inserted = run_statement(scope, &insert, "insert", true).await?;
    if !inserted.is_empty() {
        return insert.shape.render(&inserted);
    }
    let rows = run_statement(scope, &statement, op_name(&op), true).await?;
    statement.shape.render(&rows)
}

/// Bytes of row text in `row` (every column is selected as text).
fn row_bytes(row: &tokio_postgres::Row) -> u64 {
    (0..row.len())
        .map(|i| {
            row.try_get::<_, Option<&str>>(i)
                .ok()
                .flatten()
                .map_or(0, str::len) as u64
        })
        .sum()
}

/// Runs `statement` (in the request's transaction when it `writes` or locks) and records
/// its duration under `op` (the statement alone: not the connection checkout or `BEGIN`).
///
/// Rows are counted against the request's caps as they stream in: past a cap the
/// statement is cancelled on the server and nothing more is read, so a cap bounds the
/// memory a request can make the host hold, not just what the module sees.
async fn run_statement(
    scope: &mut RequestScope,
    statement: &Statement,
    op: &'static str,
    writes: bool,
) -> Result<Vec<tokio_postgres::Row>, DataError> {
    let params = statement.binds();
    let client = match scope.db.client(writes).await {
        Ok(client) => client,
        Err(reason) => return Err(error(DataErrorKind::Unavailable, reason)),
    };
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    let mut capped = false;
    let result = match crate::db::query(client, &statement.sql, &params).await {
        Ok(stream) => {
            let mut stream = std::pin::pin!(stream);
            let mut result = Ok(());
            while let Some(row) = stream.next().await {
                let row = match row {
                    Ok(row) => row,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                };
                scope.usage.rows += 1;
                scope.usage.bytes += row_bytes(&row);
                if scope.usage.rows > scope.limits.max_rows_returned
                    || scope.usage.bytes > scope.limits.max_bytes_returned
                {
                    capped = true;
                    break;
                }
                rows.push(row);
            }
            result
        }
        Err(e) => Err(e),
    };
    let elapsed = started.elapsed();
    scope.usage.statements.push((op, elapsed));
    if capped {
        // The rest of the result is not wanted; a write may have happened, so only
        // rollback is safe.
        drop(rows);
        scope.db.cancel_running().await;
        scope.db.mark_aborted();
        scope.usage.capped = true;
        return Err(error(
            DataErrorKind::LimitExceeded,
            format!(
                "this request read more than the tenant's limit of {} rows or {} bytes; \
                 ask for fewer rows (a smaller `limit`) or narrower ones",
                scope.limits.max_rows_returned, scope.limits.max_bytes_returned
            ),
        ));
    }
    let outcome = result.map(|()| rows).map_err(|e| {
        let (kind, message) = classify(&e);
        let cancelled = e
            .as_db_error()
            .is_some_and(|db| db.code() == &SqlState::QUERY_CANCELED);
        if cancelled {
            // Cancelled at the request's wall time (or the connection's backstop).
            scope.db.time_out();
        } else if kind == DataErrorKind::Unavailable {
            scope.db.fail(message.clone());
        } else {
            scope.db.mark_aborted();
        }
        error(kind, message)
    });
    if !writes {
        scope.db.read_done(elapsed);
    }
    outcome
}

/// Constraint and data errors, and limits a value ran into (an index entry too large),
/// are the module's to handle: its input caused them. Everything else is the database
/// failing.
fn classify(e: &tokio_postgres::Error) -> (DataErrorKind, String) {
    let Some(db) = e.as_db_error() else {
        return (
            DataErrorKind::Unavailable,
            format!("database connection failed: {e}"),
        );
    };
    let message = module_message(db.message(), db.detail());
    let code = db.code();
    let kind = if code == &SqlState::UNIQUE_VIOLATION {
        DataErrorKind::Conflict
    } else if ["22", "23", "54"]
        .iter()
        .any(|class| code.code().starts_with(class))
    {
        DataErrorKind::Invalid
    } else {
        DataErrorKind::Unavailable
    };
    (kind, message)
}

/// What a module (and so maybe its caller) is told of a database error: PostgreSQL's
/// message, with its detail unless that is "Failing row contains (...)", which would hand
/// the whole row, other columns included, to whoever sees the error.
fn module_message(message: &str, detail: Option<&str>) -> String {
    match detail.filter(|d| !d.starts_with("Failing row contains")) {
        Some(detail) => format!("{message} ({detail})"),
        None => message.to_string(),
    }
}

pub(crate) fn error(kind: DataErrorKind, message: impl Into<String>) -> DataError {
    DataError {
        kind,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_encoded_as_the_abi_says() {
        use eerp_abi::data::DataReply;
        let value = serde_json::json!({"id": "7", "rows": [{"a": 1}], "next_cursor": null});
        let raw = serde_json::value::to_raw_value(&value).unwrap();
        assert_eq!(
            serde_json::to_string(&Reply::Ok(raw)).unwrap(),
            serde_json::to_string(&DataReply::Ok(value)).unwrap()
        );
        let failed = error(DataErrorKind::NotFound, "no live row with that id");
        assert_eq!(
            serde_json::to_string(&Reply::Error(failed.clone())).unwrap(),
            serde_json::to_string(&DataReply::Error(failed)).unwrap()
        );
    }

    #[test]
    fn row_contents_never_reach_the_module_in_an_error() {
        let check = module_message(
            "new row for relation \"contacts\" violates check constraint \"contacts_credit_limit_check\"",
            Some("Failing row contains (1, Ada, ada@example.com, secret notes, -5)."),
        );
        assert!(check.contains("contacts_credit_limit_check"));
        assert!(!check.contains("secret notes"), "{check}");
        let unique = module_message(
            "duplicate key value violates unique constraint \"contacts_email_key\"",
            Some("Key (email)=(ada@example.com) already exists."),
        );
        assert!(
            unique.contains("Key (email)"),
            "the caller's own key is useful: {unique}"
        );
    }
}
