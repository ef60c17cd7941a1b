//! One data API operation -> one SQL statement.
//!
//! Tables and columns must be declared in the module's migrations; identifiers are quoted
//! and schema-qualified with the schema the host chose for the tenant; every value is a
//! bind parameter. The module never supplies SQL text.

use std::sync::Arc;

use eerp_abi::data::{
    AggregateFn, AggregateGroup, AggregateQuery, AggregateResult, DEFAULT_PAGE, DataError,
    DataErrorKind, DataOp, Filter, FilterOp, ListQuery, LockMode, MAX_PAGE,
};
use eerp_abi::migration::SqlType;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::cursor::Cursor;
use super::values::{TextValue, cast_type, from_text, select_text, to_param, to_text};
use crate::migrations::{ColumnModel, SchemaModel, TableModel};
use crate::sql::{is_uuid, qualified, quote_ident};

/// Most values an `in` filter may list.
const MAX_IN_VALUES: usize = 100;

/// A bind parameter; all are text, cast in SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// One value (`None` is SQL `NULL`).
    Text(Option<String>),
    /// A `text[]`, for `in`.
    TextArray(Vec<String>),
}

/// A statement ready to run, and how to read its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// SQL text with `$n` placeholders.
    pub sql: String,
    /// Parameters, in order.
    pub params: Vec<Param>,
    /// How rows become the reply.
    pub shape: Shape,
}

impl Statement {
    /// The parameters as they are bound: each as `text` (or `text[]`), cast in the SQL.
    pub fn binds(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params
            .iter()
            .map(|param| match param {
                Param::Text(text) => (text as &(dyn ToSql + Sync), Type::TEXT),
                Param::TextArray(items) => (items as &(dyn ToSql + Sync), Type::TEXT_ARRAY),
            })
            .collect()
    }
}

/// The columns of a table as every read selects them, derived once per loaded model.
#[derive(Debug)]
pub(crate) struct Reads {
    /// Every column as text, in order ([`select_text`]).
    select_list: String,
    /// Column names and types, in the same order.
    columns: Columns,
}

/// Column names and types, in select order: by name, the order a reply's row objects
/// list their keys in (as a `serde_json::Map` would).
pub type Columns = Arc<[(String, SqlType)]>;

fn reads(table: &TableModel) -> &Reads {
    table.reads.get_or_init(|| {
        let mut columns: Vec<&ColumnModel> = table.columns.iter().collect();
        columns.sort_by(|a, b| a.name.cmp(&b.name));
        Reads {
            select_list: columns
                .iter()
                .map(|c| select_text(&quote_ident(&c.name), c.ty))
                .collect::<Vec<_>>()
                .join(", "),
            columns: columns.iter().map(|c| (c.name.clone(), c.ty)).collect(),
        }
    })
}

/// How a statement's rows become the reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Exactly one row of `columns`, or not found.
    One {
        /// Column types, in select order.
        columns: Columns,
    },
    /// A page of at most `limit` rows; one more row means there is a next page.
    Page {
        /// Column types, in select order.
        columns: Columns,
        /// Page size.
        limit: usize,
        /// Order column and direction, for the next cursor.
        order: (String, bool),
    },
    /// Aggregate groups.
    Groups {
        /// Group-by columns.
        keys: Vec<(String, SqlType)>,
        /// Aggregates: output key and value type.
        values: Vec<(String, AggregateValue)>,
    },
}

/// How an aggregate value is rendered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggregateValue {
    /// A count, as a JSON number.
    Count,
    /// A sum, as a decimal string.
    Sum,
    /// A min or max, typed like its column.
    Like(SqlType),
}

struct Builder<'a> {
    table: &'a TableModel,
    target: String,
    params: Vec<Param>,
}

fn invalid(message: impl Into<String>) -> DataError {
    DataError {
        kind: DataErrorKind::Invalid,
        message: message.into(),
    }
}

fn not_found(table: &str, id: &str) -> DataError {
    DataError {
        kind: DataErrorKind::NotFound,
        message: format!("no {table} row with id {id}"),
    }
}

/// Builds the statement for `op` against `model`, in `schema`.
///
/// # Errors
/// [`DataErrorKind::Invalid`] naming the unknown table or column or the value that does
/// not fit.
pub fn build(schema: &str, model: &SchemaModel, op: &DataOp) -> Result<Statement, DataError> {
    let mut b = Builder::new(schema, model, op.table())?;
    let (sql, shape) = match op {
        DataOp::Insert { values, .. } => b.insert(values, "")?,
        DataOp::Get {
            id,
            include_deleted,
            ..
        } => b.get(id, *include_deleted, None)?,
        DataOp::GetForUpdate { id, .. } => b.get(id, false, Some(LockMode::Update))?,
        DataOp::GetBy { key, lock, .. } => b.get_by(key, *lock)?,
        DataOp::Update { id, values, .. } => b.update(id, values)?,
        DataOp::Delete { id, .. } => b.set_deleted(id, true)?,
        DataOp::Restore { id, .. } => b.set_deleted(id, false)?,
        DataOp::List(query) => b.list(query)?,
        DataOp::Aggregate(query) => b.aggregate(query)?,
    };
    Ok(Statement {
        sql,
        params: b.params,
        shape,
    })
}

/// The insert a [`DataOp::GetBy`] with `or_insert` runs when its row is missing: the
/// `or_insert` values and the key's, doing nothing when a live row with that key exists
/// or is committed meanwhile. `None` for every other operation.
///
/// # Errors
/// As [`build`], and for a key of `id` (ids are the host's to choose).
pub fn insert_if_absent(
    schema: &str,
    model: &SchemaModel,
    op: &DataOp,
) -> Result<Option<Statement>, DataError> {
    let DataOp::GetBy {
        table,
        key,
        or_insert: Some(values),
        ..
    } = op
    else {
        return Ok(None);
    };
    let mut b = Builder::new(schema, model, table)?;
    let columns = b.unique_key(key)?;
    if columns == ["id"] {
        return Err(invalid(
            "`or_insert` needs a declared unique key, not `id`: ids are chosen by the host",
        ));
    }
    let mut row = values.clone();
    for (name, value) in key {
        if row.get(name).is_some_and(|v| v != value) {
            return Err(invalid(format!(
                "`or_insert` sets `{name}` to another value than the key's"
            )));
        }
        row.insert(name.clone(), value.clone());
    }
    let target = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let on_conflict = format!(" ON CONFLICT ({target}) WHERE \"deleted_at\" IS NULL DO NOTHING");
    let (sql, shape) = b.insert(&row, &on_conflict)?;
    Ok(Some(Statement {
        sql,
        params: b.params,
        shape,
    }))
}

impl<'a> Builder<'a> {
    fn new(schema: &str, model: &'a SchemaModel, table_name: &str) -> Result<Self, DataError> {
        let table = model.table(table_name).ok_or_else(|| {
            let known: Vec<&str> = model.table_names().collect();
            invalid(format!(
                "unknown table `{table_name}`; the module declares: {}",
                known.join(", ")
            ))
        })?;
        Ok(Builder {
            table,
            target: qualified(schema, &table.name),
            params: Vec::new(),
        })
    }

    /// The columns of the unique key `key` names: `id` or a declared one.
    fn unique_key(&self, key: &Map<String, Value>) -> Result<Vec<String>, DataError> {
        let names: Vec<&str> = key.keys().map(String::as_str).collect();
        if names == ["id"] {
            return Ok(vec!["id".into()]);
        }
        if let Some(columns) = self.table.unique_key(&names) {
            return Ok(columns.to_vec());
        }
        let declared: Vec<String> = self
            .table
            .unique
            .iter()
            .map(|key| format!("({})", key.join(", ")))
            .collect();
        Err(invalid(format!(
            "({}) is not a unique key of `{}`; its unique keys are (id){}{}",
            names.join(", "),
            self.table.name,
            if declared.is_empty() { "" } else { ", " },
            declared.join(", ")
        )))
    }

    fn column(&self, name: &str) -> Result<&'a ColumnModel, DataError> {
        self.table.column(name).ok_or_else(|| {
            let known: Vec<&str> = self.table.columns.iter().map(|c| c.name.as_str()).collect();
            invalid(format!(
                "unknown column `{}.{name}`; it has: {}",
                self.table.name,
                known.join(", ")
            ))
        })
    }

    fn writable(&self, name: &str) -> Result<&'a ColumnModel, DataError> {
        let column = self.column(name)?;
        if column.builtin {
            return Err(invalid(format!(
                "`{name}` is managed by the host and cannot be written"
            )));
        }
        Ok(column)
    }

    /// Adds a parameter and returns its cast placeholder.
    fn bind(&mut self, value: Option<String>, ty: SqlType) -> String {
        self.params.push(Param::Text(value));
        format!("${}::text::{}", self.params.len(), cast_type(ty))
    }

    fn bind_id(&mut self, id: &str) -> Result<String, DataError> {
        if !is_uuid(id) {
            return Err(not_found(&self.table.name, id));
        }
        Ok(self.bind(Some(id.to_string()), SqlType::Uuid))
    }

    fn columns(&self) -> Columns {
        reads(self.table).columns.clone()
    }

    fn select_list(&self) -> &'a str {
        &reads(self.table).select_list
    }

    /// `write` answering its rows in the text encoding of [`Self::select_list`], selected
    /// from what the write returned: the encoding calls functions that are not IMMUTABLE
    /// (`to_json` of a timestamp), which Citus refuses in a RETURNING clause of a
    /// distributed table, but not in a query over the rows a write returned.
    fn returning(&self, write: &str) -> String {
        format!(
            "WITH written AS ({write} RETURNING *) SELECT {} FROM written",
            self.select_list()
        )
    }

    fn one(&self) -> Shape {
        Shape::One {
            columns: self.columns(),
        }
    }

    fn insert(
        &mut self,
        values: &Map<String, Value>,
        on_conflict: &str,
    ) -> Result<(String, Shape), DataError> {
        if let Some(missing) = self
            .table
            .columns
            .iter()
            .find(|c| c.not_null && !c.has_default && !values.contains_key(&c.name))
        {
            return Err(invalid(format!("`{}` is required", missing.name)));
        }
        let mut names = Vec::new();
        let mut placeholders = Vec::new();
        for (name, value) in values {
            let column = self.writable(name)?;
            let text = to_param(column, value).map_err(invalid)?;
            names.push(quote_ident(name));
            placeholders.push(self.bind(text, column.ty));
        }
        let write = if names.is_empty() {
            format!("INSERT INTO {} DEFAULT VALUES{on_conflict}", self.target)
        } else {
            format!(
                "INSERT INTO {} ({}) VALUES ({}){on_conflict}",
                self.target,
                names.join(", "),
                placeholders.join(", ")
            )
        };
        Ok((self.returning(&write), self.one()))
    }

    fn get(
        &mut self,
        id: &str,
        include_deleted: bool,
        lock: Option<LockMode>,
    ) -> Result<(String, Shape), DataError> {
        let id = self.bind_id(id)?;
        let live = if include_deleted {
            ""
        } else {
            " AND \"deleted_at\" IS NULL"
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE \"id\" = {id}{live}{}",
            self.select_list(),
            self.target,
            lock_clause(lock)
        );
        Ok((sql, self.one()))
    }

    fn get_by(
        &mut self,
        key: &Map<String, Value>,
        lock: Option<LockMode>,
    ) -> Result<(String, Shape), DataError> {
        let columns = self.unique_key(key)?;
        if columns == ["id"] {
            let id = key.get("id").and_then(Value::as_str).unwrap_or_default();
            return self.get(id, false, lock);
        }
        let mut conditions = vec!["\"deleted_at\" IS NULL".to_string()];
        for name in &columns {
            let column = self.column(name)?;
            let value = key
                .get(name)
                .filter(|v| !v.is_null())
                .ok_or_else(|| invalid(format!("the key's `{name}` needs a value, not null")))?;
            let text = to_text(column, value).map_err(invalid)?;
            let placeholder = self.bind(Some(text), column.ty);
            conditions.push(format!("{} = {placeholder}", quote_ident(name)));
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE {}{}",
            self.select_list(),
            self.target,
            conditions.join(" AND "),
            lock_clause(lock)
        );
        Ok((sql, self.one()))
    }

    fn update(
        &mut self,
        id: &str,
        values: &Map<String, Value>,
    ) -> Result<(String, Shape), DataError> {
        if values.is_empty() {
            return Err(invalid("an update needs at least one column to change"));
        }
        let mut sets = Vec::new();
        for (name, value) in values {
            let column = self.writable(name)?;
            let text = to_param(column, value).map_err(invalid)?;
            let placeholder = self.bind(text, column.ty);
            sets.push(format!("{} = {placeholder}", quote_ident(name)));
        }
        let id = self.bind_id(id)?;
        let write = format!(
            "UPDATE {} SET {}, \"updated_at\" = now() WHERE \"id\" = {id} AND \"deleted_at\" IS NULL",
            self.target,
            sets.join(", ")
        );
        Ok((self.returning(&write), self.one()))
    }

    fn set_deleted(&mut self, id: &str, delete: bool) -> Result<(String, Shape), DataError> {
        let id = self.bind_id(id)?;
        let (set, condition) = if delete {
            ("now()", "IS NULL")
        } else {
            ("NULL", "IS NOT NULL")
        };
        let write = format!(
            "UPDATE {} SET \"deleted_at\" = {set}, \"updated_at\" = now() WHERE \"id\" = {id} AND \"deleted_at\" {condition}",
            self.target
        );
        Ok((self.returning(&write), self.one()))
    }

    fn conditions(
        &mut self,
        filters: &[Filter],
        include_deleted: bool,
    ) -> Result<Vec<String>, DataError> {
        // Never empty, so `WHERE` always has something to join.
        let mut conditions = vec!["TRUE".to_string()];
        if !include_deleted {
            conditions.push("\"deleted_at\" IS NULL".to_string());
        }
        for filter in filters {
            conditions.push(self.condition(filter)?);
        }
        Ok(conditions)
    }

    fn condition(&mut self, filter: &Filter) -> Result<String, DataError> {
        let column = self.column(&filter.column)?;
        if column.name == "deleted_at" {
            return Err(invalid(
                "filter on soft deletion with `include_deleted`, not on `deleted_at`",
            ));
        }
        let quoted = quote_ident(&column.name);
        let bad = |why: &str| invalid(format!("filter on `{}`: {why}", column.name));
        let sql = match filter.op {
            FilterOp::IsNull => {
                let is_null = filter
                    .value
                    .as_bool()
                    .ok_or_else(|| bad("`is_null` takes true or false"))?;
                format!("{quoted} IS {}NULL", if is_null { "" } else { "NOT " })
            }
            FilterOp::Contains => {
                if !matches!(column.ty, SqlType::Text | SqlType::Varchar(_)) {
                    return Err(bad("`contains` works on text columns only"));
                }
                let text = filter
                    .value
                    .as_str()
                    .ok_or_else(|| bad("`contains` takes a string"))?;
                let escaped = text
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                let placeholder = self.bind(Some(format!("%{escaped}%")), SqlType::Text);
                format!("{quoted} ILIKE {placeholder}")
            }
            FilterOp::In => {
                let items = filter
                    .value
                    .as_array()
                    .ok_or_else(|| bad("`in` takes an array"))?;
                if items.is_empty() || items.len() > MAX_IN_VALUES {
                    return Err(bad("`in` takes 1 to 100 values"));
                }
                let texts = items
                    .iter()
                    .map(|item| to_text(column, item))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(invalid)?;
                self.params.push(Param::TextArray(texts));
                format!(
                    "{quoted} = ANY(${}::text[]::{}[])",
                    self.params.len(),
                    cast_type(column.ty)
                )
            }
            op => {
                if filter.value.is_null() {
                    return Err(bad("compare with null using `is_null`"));
                }
                let text = to_text(column, &filter.value).map_err(invalid)?;
                let placeholder = self.bind(Some(text), column.ty);
                let operator = match op {
                    FilterOp::Eq => "=",
                    FilterOp::Ne => "<>",
                    FilterOp::Lt => "<",
                    FilterOp::Lte => "<=",
                    FilterOp::Gt => ">",
                    _ => ">=",
                };
                format!("{quoted} {operator} {placeholder}")
            }
        };
        Ok(sql)
    }

    fn list(&mut self, query: &ListQuery) -> Result<(String, Shape), DataError> {
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(invalid(format!("limit must be 1 to {MAX_PAGE}")));
        }
        let (order_name, desc) = match &query.order {
            Some(order) => (order.column.as_str(), order.desc),
            None => ("created_at", false),
        };
        let order_column = self.column(order_name)?;
        if order_column.ty == SqlType::Jsonb {
            return Err(invalid("cannot order by a jsonb column"));
        }
        let mut conditions = self.conditions(&query.filter, query.include_deleted)?;
        if let Some(text) = &query.cursor {
            let cursor = Cursor::decode(text, order_name, desc).map_err(invalid)?;
            conditions.push(self.after_cursor(order_column, desc, &cursor)?);
        }
        let direction = if desc { "DESC" } else { "ASC" };
        // Qualified: a bare `"id"` in ORDER BY would name the select list's `("id")::text`
        // and sort text, which no index serves.
        let sql = format!(
            "SELECT {} FROM {target} WHERE {} ORDER BY {target}.{} {direction} NULLS LAST, \
             {target}.\"id\" {direction} LIMIT {}",
            self.select_list(),
            conditions.join(" AND "),
            quote_ident(order_name),
            limit + 1,
            target = self.target,
        );
        let shape = Shape::Page {
            columns: self.columns(),
            limit: limit as usize,
            order: (order_name.to_string(), desc),
        };
        Ok((sql, shape))
    }

    /// Keyset condition for rows after `cursor`, with `NULLS LAST` in both directions.
    fn after_cursor(
        &mut self,
        column: &ColumnModel,
        desc: bool,
        cursor: &Cursor,
    ) -> Result<String, DataError> {
        if !is_uuid(&cursor.id) {
            return Err(invalid("the cursor is damaged; start again without it"));
        }
        let quoted = quote_ident(&column.name);
        let cmp = if desc { "<" } else { ">" };
        let id = self.bind(Some(cursor.id.clone()), SqlType::Uuid);
        Ok(match &cursor.value {
            None => format!("({quoted} IS NULL AND \"id\" {cmp} {id})"),
            Some(value) => {
                let value = self.bind(Some(value.clone()), column.ty);
                format!(
                    "({quoted} {cmp} {value} OR ({quoted} = {value} AND \"id\" {cmp} {id}) OR {quoted} IS NULL)"
                )
            }
        })
    }

    fn aggregate(&mut self, query: &AggregateQuery) -> Result<(String, Shape), DataError> {
        if query.aggregates.is_empty() {
            return Err(invalid(
                "an aggregate needs at least one of count, sum, min, max",
            ));
        }
        let mut keys = Vec::new();
        let mut select = Vec::new();
        for name in &query.group_by {
            let column = self.column(name)?;
            keys.push((column.name.clone(), column.ty));
            select.push(select_text(&quote_ident(name), column.ty));
        }
        let mut values = Vec::new();
        for aggregate in &query.aggregates {
            let (expr, value) = self.aggregate_expr(aggregate.func, aggregate.column.as_deref())?;
            select.push(expr);
            values.push((aggregate.key(), value));
        }
        let conditions = self.conditions(&query.filter, false)?;
        let group_by = if keys.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = query.group_by.iter().map(|c| quote_ident(c)).collect();
            format!(" GROUP BY {0} ORDER BY {0}", list.join(", "))
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE {}{group_by} LIMIT {}",
            select.join(", "),
            self.target,
            conditions.join(" AND "),
            MAX_PAGE + 1
        );
        Ok((sql, Shape::Groups { keys, values }))
    }

    fn aggregate_expr(
        &self,
        func: AggregateFn,
        column: Option<&str>,
    ) -> Result<(String, AggregateValue), DataError> {
        let Some(name) = column else {
            return match func {
                AggregateFn::Count => Ok(("count(*)::text".into(), AggregateValue::Count)),
                _ => Err(invalid("sum, min and max need a column")),
            };
        };
        let column = self.column(name)?;
        let quoted = quote_ident(name);
        let numeric = matches!(
            column.ty,
            SqlType::Integer | SqlType::BigInt | SqlType::Numeric(_)
        );
        match func {
            AggregateFn::Count => Ok((format!("count({quoted})::text"), AggregateValue::Count)),
            AggregateFn::Sum if numeric => {
                Ok((format!("sum({quoted})::text"), AggregateValue::Sum))
            }
            AggregateFn::Sum => Err(invalid(format!(
                "cannot sum `{name}`: it is not a number column"
            ))),
            AggregateFn::Min | AggregateFn::Max
                if matches!(column.ty, SqlType::Jsonb | SqlType::Boolean | SqlType::Uuid) =>
            {
                Err(invalid(format!("cannot take min or max of `{name}`")))
            }
            AggregateFn::Min => Ok((
                select_text(&format!("min({quoted})"), column.ty),
                AggregateValue::Like(column.ty),
            )),
            AggregateFn::Max => Ok((
                select_text(&format!("max({quoted})"), column.ty),
                AggregateValue::Like(column.ty),
            )),
        }
    }
}

impl Shape {
    /// Turns rows into the reply value, written as JSON straight from the rows' text.
    ///
    /// # Errors
    /// [`DataErrorKind::NotFound`] when a single-row statement found nothing.
    pub fn render(&self, rows: &[Row]) -> Result<Box<RawValue>, DataError> {
        match self {
            Shape::One { columns } => {
                let row = rows.first().ok_or_else(|| DataError {
                    kind: DataErrorKind::NotFound,
                    message: "no live row with that id".into(),
                })?;
                encoded(&RowObject { columns, row })
            }
            Shape::Page {
                columns,
                limit,
                order,
            } => {
                let more = rows.len() > *limit;
                let page = &rows[..rows.len().min(*limit)];
                let next_cursor = match (more, page.last()) {
                    (true, Some(last)) => Some(next_cursor(columns, last, order)),
                    _ => None,
                };
                encoded(&PageObject {
                    next_cursor,
                    rows: RowObjects {
                        columns,
                        rows: page,
                    },
                })
            }
            Shape::Groups { keys, values } => {
                if rows.len() > MAX_PAGE as usize {
                    return Err(DataError {
                        kind: DataErrorKind::LimitExceeded,
                        message: format!(
                            "the aggregate has more than {MAX_PAGE} groups; filter or group by fewer columns"
                        ),
                    });
                }
                let groups = rows.iter().map(|row| group(keys, values, row)).collect();
                encoded(&AggregateResult { groups })
            }
        }
    }
}

fn encoded(value: &impl Serialize) -> Result<Box<RawValue>, DataError> {
    serde_json::value::to_raw_value(value).map_err(|e| DataError {
        kind: DataErrorKind::Unavailable,
        message: format!("the rows could not be encoded: {e}"),
    })
}

/// A row as a JSON object: a single-row reply, or one of a page's rows.
struct RowObject<'a> {
    columns: &'a [(String, SqlType)],
    row: &'a Row,
}

impl Serialize for RowObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len()))?;
        for (i, (name, ty)) in self.columns.iter().enumerate() {
            let text = text_at(self.row, i);
            map.serialize_entry(name, &TextValue { ty: *ty, text })?;
        }
        map.end()
    }
}

struct RowObjects<'a> {
    columns: &'a [(String, SqlType)],
    rows: &'a [Row],
}

impl Serialize for RowObjects<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
        for row in self.rows {
            seq.serialize_element(&RowObject {
                columns: self.columns,
                row,
            })?;
        }
        seq.end()
    }
}

/// A [`eerp_abi::data::ListPage`] as the module reads it, its keys in name order.
#[derive(serde::Serialize)]
struct PageObject<'a> {
    next_cursor: Option<String>,
    rows: RowObjects<'a>,
}

fn lock_clause(lock: Option<LockMode>) -> &'static str {
    match lock {
        None => "",
        Some(LockMode::Update) => " FOR UPDATE",
        Some(LockMode::Share) => " FOR SHARE",
    }
}

fn text_at(row: &Row, index: usize) -> Option<&str> {
    row.try_get::<_, Option<&str>>(index).ok().flatten()
}

fn next_cursor(columns: &[(String, SqlType)], row: &Row, order: &(String, bool)) -> String {
    let index_of = |name: &str| columns.iter().position(|(n, _)| n == name);
    let value = index_of(&order.0)
        .and_then(|i| text_at(row, i))
        .map(str::to_string);
    let id = index_of("id")
        .and_then(|i| text_at(row, i))
        .unwrap_or_default()
        .to_string();
    Cursor {
        column: order.0.clone(),
        desc: order.1,
        value,
        id,
    }
    .encode()
}

fn group(
    keys: &[(String, SqlType)],
    values: &[(String, AggregateValue)],
    row: &Row,
) -> AggregateGroup {
    let key = keys
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| (name.clone(), from_text(*ty, text_at(row, i))))
        .collect();
    let values = values
        .iter()
        .enumerate()
        .map(|(j, (name, kind))| {
            let text = text_at(row, keys.len() + j);
            let value = match kind {
                AggregateValue::Count => from_text(SqlType::BigInt, text),
                AggregateValue::Sum => from_text(SqlType::Numeric(None), text),
                AggregateValue::Like(ty) => from_text(*ty, text),
            };
            (name.clone(), value)
        })
        .collect();
    AggregateGroup { key, values }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eerp_abi::data::Order;
    use eerp_abi::migration::parse_migrations;
    use serde_json::json;

    fn model() -> SchemaModel {
        let json = r#"{"entity":"c","version":1,"operations":[{"type":"create_table","table":"contacts","columns":[
            {"name":"name","type":"text","not_null":true},{"name":"credit","type":"numeric(14,2)"},
            {"name":"email","type":"text","unique":true},{"name":"team","type":"text"}],
            "unique":[["team","name"]]}]}"#;
        SchemaModel::from_migrations(&parse_migrations(json.as_bytes()).unwrap()).unwrap()
    }

    fn op(json: Value) -> DataOp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reads_select_columns_in_name_order_as_replies_list_them() {
        let m = model();
        let reads = reads(m.table("contacts").unwrap());
        let names: Vec<&str> = reads.columns.iter().map(|(n, _)| n.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(
            names.contains(&"id") && names.contains(&"team"),
            "{names:?}"
        );
        let positions: Vec<usize> = names
            .iter()
            .map(|n| reads.select_list.find(&format!("\"{n}\"")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "{}", reads.select_list);
    }

    #[test]
    fn insert_binds_every_value_and_qualifies_the_table() {
        let st = build("t_acme__crm", &model(), &op(json!({"op":"insert","table":"contacts","values":{"name":"x'); drop table y;--","credit":"1.50"}}))).unwrap();
        assert!(st.sql.starts_with(r#"WITH written AS (INSERT INTO "t_acme__crm"."contacts" ("credit", "name") VALUES ($1::text::numeric, $2::text::text)"#), "{}", st.sql);
        assert!(!st.sql.contains("drop table"));
        assert_eq!(
            st.params[1],
            Param::Text(Some("x'); drop table y;--".into()))
        );
    }

    #[test]
    fn unknown_names_builtins_and_missing_required_columns_are_refused() {
        let m = model();
        for bad in [
            json!({"op":"insert","table":"users","values":{"name":"x"}}),
            json!({"op":"insert","table":"contacts","values":{"name":"x","nick":"y"}}),
            json!({"op":"insert","table":"contacts","values":{"name":"x","id":"00000000-0000-0000-0000-000000000000"}}),
            json!({"op":"insert","table":"contacts","values":{"credit":"1"}}),
            json!({"op":"update","table":"contacts","id":"00000000-0000-0000-0000-000000000000","values":{}}),
            json!({"op":"list","table":"contacts","filter":[{"column":"credit","op":"contains","value":"1"}]}),
            json!({"op":"list","table":"contacts","limit":0}),
        ] {
            let err = build("s", &m, &op(bad.clone())).unwrap_err();
            assert_eq!(err.kind, DataErrorKind::Invalid, "{bad}");
        }
    }

    #[test]
    fn list_with_cursor_uses_keyset_conditions() {
        let cursor = Cursor {
            column: "name".into(),
            desc: false,
            value: Some("Bob".into()),
            id: "6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10".into(),
        };
        let query = ListQuery {
            table: "contacts".into(),
            order: Some(Order {
                column: "name".into(),
                desc: false,
            }),
            cursor: Some(cursor.encode()),
            limit: Some(2),
            ..ListQuery::default()
        };
        let st = build("s", &model(), &DataOp::List(query)).unwrap();
        assert!(st.sql.contains(r#"("name" > $2::text::text OR ("name" = $2::text::text AND "id" > $1::text::uuid) OR "name" IS NULL)"#), "{}", st.sql);
        assert!(
            st.sql.ends_with(
                r#"ORDER BY "s"."contacts"."name" ASC NULLS LAST, "s"."contacts"."id" ASC LIMIT 3"#
            ),
            "{}",
            st.sql
        );
    }

    #[test]
    fn get_for_update_locks_only_a_live_row() {
        let id = "6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10";
        let st = build(
            "s",
            &model(),
            &op(json!({"op":"get_for_update","table":"contacts","id":id})),
        )
        .unwrap();
        assert!(
            st.sql
                .ends_with(r#"WHERE "id" = $1::text::uuid AND "deleted_at" IS NULL FOR UPDATE"#),
            "{}",
            st.sql
        );
    }

    #[test]
    fn get_by_takes_a_declared_unique_key_and_locks_as_asked() {
        let st = build(
            "s",
            &model(),
            &op(json!({"op":"get_by","table":"contacts","key":{"name":"Ada","team":"x"},"lock":"share"})),
        )
        .unwrap();
        assert!(
            st.sql.ends_with(
                r#"WHERE "deleted_at" IS NULL AND "team" = $1::text::text AND "name" = $2::text::text FOR SHARE"#
            ),
            "{}",
            st.sql
        );
        let by_id = op(
            json!({"op":"get_by","table":"contacts","key":{"id":"6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10"},"lock":"update"}),
        );
        assert!(
            build("s", &model(), &by_id)
                .unwrap()
                .sql
                .ends_with("FOR UPDATE")
        );
        for bad in [
            json!({"op":"get_by","table":"contacts","key":{"name":"Ada"}}),
            json!({"op":"get_by","table":"contacts","key":{"email":null}}),
            json!({"op":"get_by","table":"contacts","key":{}}),
        ] {
            let err = build("s", &model(), &op(bad.clone())).unwrap_err();
            assert_eq!(err.kind, DataErrorKind::Invalid, "{bad}");
            assert!(
                err.message.contains("unique") || err.message.contains("null"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn or_insert_adds_the_key_and_does_nothing_on_a_live_conflict() {
        let get_by = op(
            json!({"op":"get_by","table":"contacts","key":{"email":"a@b.c"},"lock":"update","or_insert":{"name":"Ada"}}),
        );
        let st = insert_if_absent("s", &model(), &get_by).unwrap().unwrap();
        assert!(
            st.sql.starts_with(
                r#"WITH written AS (INSERT INTO "s"."contacts" ("email", "name") VALUES ($1::text::text, $2::text::text) ON CONFLICT ("email") WHERE "deleted_at" IS NULL DO NOTHING RETURNING *) SELECT "#
            ),
            "{}",
            st.sql
        );
        let plain = op(json!({"op":"get_by","table":"contacts","key":{"email":"a@b.c"}}));
        assert!(insert_if_absent("s", &model(), &plain).unwrap().is_none());
        for bad in [
            json!({"op":"get_by","table":"contacts","key":{"id":"6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10"},"or_insert":{"name":"A"}}),
            json!({"op":"get_by","table":"contacts","key":{"email":"a@b.c"},"or_insert":{"email":"x@y.z","name":"A"}}),
        ] {
            let err = insert_if_absent("s", &model(), &op(bad.clone())).unwrap_err();
            assert_eq!(err.kind, DataErrorKind::Invalid, "{bad}");
        }
    }

    #[test]
    fn listing_everything_including_deleted_still_has_a_where_clause() {
        let query = ListQuery {
            table: "contacts".into(),
            include_deleted: true,
            ..ListQuery::default()
        };
        let st = build("s", &model(), &DataOp::List(query)).unwrap();
        assert!(st.sql.contains(" WHERE TRUE ORDER BY "), "{}", st.sql);
        assert!(!st.sql.contains("deleted_at\" IS NULL"), "{}", st.sql);
    }

    #[test]
    fn malformed_id_is_simply_not_found() {
        let err = build(
            "s",
            &model(),
            &op(json!({"op":"get","table":"contacts","id":"1 OR 1=1"})),
        )
        .unwrap_err();
        assert_eq!(err.kind, DataErrorKind::NotFound);
    }
}
