//! Data API operations a module sends through `data_call`, and their results.
//!
//! A module names tables and columns it declared in its migrations; the host validates
//! every name and value against that schema, builds the SQL itself and runs it in the
//! request's transaction, in the schema of the calling tenant. Values are JSON: `numeric`
//! columns travel as decimal strings (`"12.50"`) so nothing is rounded through a float.
//!
//! Every operation may name `module`: another module's table of the same tenant. Only
//! `get`, `list` and `aggregate` may, and only with a read grant in the manifest
//! (`read:crm.contacts`) while that module is enabled for the tenant.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One data API call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataOp {
    /// Insert one row; returns it.
    Insert {
        /// Another module whose table this reads (needs a read grant); absent: this module.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
        /// Table name.
        table: String,
        /// Column values; `id` and the timestamps are set by the host.
        values: Map<String, Value>,
    },
    /// Fetch one row by id; `not_found` if absent or soft-deleted.
    Get {
        /// Another module whose table this reads (needs a read grant); absent: this module.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
        /// Table name.
        table: String,
        /// Row id (uuid).
        id: String,
        /// Also return a soft-deleted row.
        #[serde(default)]
        include_deleted: bool,
    },
    /// Fetch one live row by id and lock it until the request ends (`FOR UPDATE`).
    GetForUpdate {
        /// Another module whose table this reads (needs a read grant); absent: this module.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
        /// Table name.
        table: String,
        /// Row id (uuid).
        id: String,
    },
    /// Fetch the live row whose unique key has the values in `key`: `id`, a column
    /// declared `unique`, or a `unique_together` set, all of its columns given. With
    /// `lock`, the row stays locked until the request ends; with `or_insert`, a missing
    /// row is first inserted from those values and the key's (a row inserted by a
    /// concurrent request is waited for and returned instead). Returns the row.
    GetBy {
        /// Another module whose table this reads (needs a read grant); absent: this module.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
        /// Table name.
        table: String,
        /// The unique key's columns and values.
        key: Map<String, Value>,
        /// Lock the row: `update` (exclusive) or `share` (others may share, none update).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lock: Option<LockMode>,
        /// Insert the row from these values (and `key`'s) when it does not exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        or_insert: Option<Map<String, Value>>,
    },
    /// A page of rows; returns [`ListPage`].
    List(ListQuery),
    /// Change some columns of one live row; returns it.
    Update {
        /// Another module whose table this reads (needs a read grant); absent: this module.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
        /// Table name.
        table: String,
        /// Row id (uuid).
        id: String,
        /// Columns to change.
        values: Map<String, Value>,
    },
    /// Soft delete: set `deleted_at` on a live row; returns it.
    Delete {
        /// Another module whose table this reads (needs a read grant); absent: this module.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
        /// Table name.
        table: String,
        /// Row id (uuid).
        id: String,
    },
    /// Undo a soft delete; returns the row.
    Restore {
        /// Another module whose table this reads (needs a read grant); absent: this module.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
        /// Table name.
        table: String,
        /// Row id (uuid).
        id: String,
    },
    /// Count, sum, min and max over live rows, optionally grouped; returns
    /// [`AggregateResult`].
    Aggregate(AggregateQuery),
}

impl DataOp {
    /// The other module whose table the operation names, if any.
    pub fn module(&self) -> Option<&str> {
        match self {
            DataOp::Insert { module, .. }
            | DataOp::Get { module, .. }
            | DataOp::GetForUpdate { module, .. }
            | DataOp::GetBy { module, .. }
            | DataOp::Update { module, .. }
            | DataOp::Delete { module, .. }
            | DataOp::Restore { module, .. } => module.as_deref(),
            DataOp::List(query) => query.module.as_deref(),
            DataOp::Aggregate(query) => query.module.as_deref(),
        }
    }

    /// The table the operation names.
    pub fn table(&self) -> &str {
        match self {
            DataOp::Insert { table, .. }
            | DataOp::Get { table, .. }
            | DataOp::GetForUpdate { table, .. }
            | DataOp::GetBy { table, .. }
            | DataOp::Update { table, .. }
            | DataOp::Delete { table, .. }
            | DataOp::Restore { table, .. } => table,
            DataOp::List(query) => &query.table,
            DataOp::Aggregate(query) => &query.table,
        }
    }

    /// Whether the operation only reads (and so may go through a read grant).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            DataOp::Get { .. }
                | DataOp::List(_)
                | DataOp::Aggregate(_)
                | DataOp::GetBy {
                    lock: None,
                    or_insert: None,
                    ..
                }
        )
    }
}

/// How [`DataOp::GetBy`] locks the row it returns.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// `FOR UPDATE`: no other request may lock or change the row until this one ends.
    Update,
    /// `FOR SHARE`: other requests may share the lock, none may change the row.
    Share,
}

/// Parameters of [`DataOp::List`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Another module whose table this reads (needs a read grant); absent: this module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Table name.
    pub table: String,
    /// All must hold (AND).
    #[serde(default)]
    pub filter: Vec<Filter>,
    /// Sort column; rows with equal values are ordered by `id`. Default: `created_at`.
    #[serde(default)]
    pub order: Option<Order>,
    /// Page size, 1..=[`MAX_PAGE`]; default [`DEFAULT_PAGE`].
    #[serde(default)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Include soft-deleted rows.
    #[serde(default)]
    pub include_deleted: bool,
}

/// Default page size of a list.
pub const DEFAULT_PAGE: u32 = 50;
/// Largest page a list may ask for.
pub const MAX_PAGE: u32 = 500;

/// One condition of a list or aggregate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Column name.
    pub column: String,
    /// Comparison.
    pub op: FilterOp,
    /// A value of the column's type; an array for `in`; `true`/`false` for `is_null`.
    pub value: Value,
}

impl Filter {
    /// `column op value`.
    pub fn new(column: &str, op: FilterOp, value: impl Into<Value>) -> Self {
        Self {
            column: column.to_string(),
            op,
            value: value.into(),
        }
    }

    /// `column = value`.
    pub fn eq(column: &str, value: impl Into<Value>) -> Self {
        Self::new(column, FilterOp::Eq, value)
    }
}

/// Comparisons a filter may use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    /// Case-insensitive substring match on text columns.
    Contains,
    /// Column equals one of the values of an array (at most 100).
    In,
    /// `value: true` for `IS NULL`, `false` for `IS NOT NULL`.
    IsNull,
}

/// Sort order of a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// Column name.
    pub column: String,
    /// Descending instead of ascending. `NULL`s come last either way.
    #[serde(default)]
    pub desc: bool,
}

/// The result of [`DataOp::List`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ListPage {
    /// Rows as JSON objects.
    pub rows: Vec<Value>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Parameters of [`DataOp::Aggregate`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AggregateQuery {
    /// Another module whose table this reads (needs a read grant); absent: this module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Table name.
    pub table: String,
    /// All must hold (AND).
    #[serde(default)]
    pub filter: Vec<Filter>,
    /// Columns to group by; empty for one group over all rows.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// What to compute.
    pub aggregates: Vec<Aggregate>,
}

/// One aggregate, reported under the key `func` or `func_column` (`count`,
/// `sum_credit_limit`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// The function.
    pub func: AggregateFn,
    /// The column; absent only for `count` (count of rows).
    #[serde(default)]
    pub column: Option<String>,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum AggregateFn {
    Count,
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// The key this aggregate's value has in each group.
    pub fn key(&self) -> String {
        let func = match self.func {
            AggregateFn::Count => "count",
            AggregateFn::Sum => "sum",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
        };
        match &self.column {
            Some(column) => format!("{func}_{column}"),
            None => func.to_string(),
        }
    }
}

/// The result of [`DataOp::Aggregate`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AggregateResult {
    /// One entry per group.
    pub groups: Vec<AggregateGroup>,
}

impl AggregateResult {
    /// The value `key` (`count`, `sum_debit`) of the first group: the only one of an
    /// aggregate without `group_by`.
    pub fn first(&self, key: &str) -> Option<&Value> {
        self.groups.first().and_then(|group| group.values.get(key))
    }
}

/// One group of an aggregate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AggregateGroup {
    /// The `group_by` columns' values.
    pub key: Map<String, Value>,
    /// Each aggregate's value; sums of numeric and integer columns are decimal strings.
    pub values: Map<String, Value>,
}

/// What `data_call` returns: exactly one of `ok` and `error`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum DataReply {
    /// The operation's result.
    Ok(Value),
    /// Why it failed.
    Error(DataError),
}

/// A failed data API call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataError {
    /// What kind of failure.
    pub kind: DataErrorKind,
    /// A sentence saying what was wrong.
    pub message: String,
}

/// Kinds of data API failure.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DataErrorKind {
    /// No live row with that id.
    NotFound,
    /// The operation does not fit the declared schema, or a value does not fit its column.
    Invalid,
    /// A unique constraint would be broken.
    Conflict,
    /// A per-request cap (calls, rows, bytes) was reached.
    LimitExceeded,
    /// The operation needs a grant the module does not have, or writes through a read
    /// grant.
    Forbidden,
    /// The database failed; the request will be rolled back.
    Unavailable,
}
