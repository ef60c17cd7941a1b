//! The migration JSON a module returns from `migrate()`.
//!
//! Two formats share one envelope, `{"entity", "version", "operations"}`:
//! - the original EERP format, accepted unchanged: `add_column` and `create_index`;
//! - a richer one: `create_table` with typed columns, `NOT NULL`, defaults, unique
//!   constraints, in-schema foreign keys and structured checks.
//!
//! `migrate()` may return one migration object or an array of them, one per version.
//! Column types are whitelisted by [`SqlType::parse`]; anything else is an error, never
//! text pasted into SQL.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One versioned migration step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// Free text naming what the step is about (recorded, not interpreted).
    pub entity: String,
    /// Version, starting at 1; versions of a module strictly increase.
    pub version: u32,
    /// What to do, in order.
    pub operations: Vec<Operation>,
    /// Ignored. The original EERP's Rust proof of concept emits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// One schema change. Every table gets `id`, `created_at`, `updated_at` and `deleted_at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Operation {
    /// Original format: add a column, creating the table first if needed.
    AddColumn(AddColumn),
    /// Original format: index one column.
    CreateIndex(CreateIndex),
    /// Richer format: create a table with typed columns and constraints.
    CreateTable(CreateTable),
}

/// `{"type":"add_column","table","column","sql_type","nullable","index","index_type"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddColumn {
    /// Table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Column type, checked against the whitelist of [`SqlType::parse`].
    pub sql_type: String,
    /// `false` adds `NOT NULL`. Absent means nullable, as the original's DDL behaved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    /// Also create a index on the column.
    #[serde(default)]
    pub index: bool,
    /// Index method when `index` is set (default `btree`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_type: Option<IndexType>,
}

/// `{"type":"create_index","table","column","index_type"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateIndex {
    /// Table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Index method (default `btree`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_type: Option<IndexType>,
}

/// PostgreSQL index methods a module may ask for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum IndexType {
    Btree,
    Hash,
    Gin,
    Gist,
    Spgist,
    Brin,
}

impl IndexType {
    /// The SQL keyword.
    pub fn as_sql(self) -> &'static str {
        match self {
            IndexType::Btree => "btree",
            IndexType::Hash => "hash",
            IndexType::Gin => "gin",
            IndexType::Gist => "gist",
            IndexType::Spgist => "spgist",
            IndexType::Brin => "brin",
        }
    }
}

/// `{"type":"create_table","table","columns":[..],"unique":[[..]],"checks":[..]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateTable {
    /// Table name.
    pub table: String,
    /// Columns besides the four every table gets.
    pub columns: Vec<Column>,
    /// Multi-column unique constraints, enforced among rows that are not soft-deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<Vec<String>>,
    /// Structured checks, e.g. `{"column":"qty","op":">=","value":0}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// A typed column of `create_table`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Column type, checked against the whitelist of [`SqlType::parse`].
    #[serde(rename = "type")]
    pub sql_type: String,
    /// Adds `NOT NULL`.
    #[serde(default)]
    pub not_null: bool,
    /// Value used when an insert leaves the column out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ColumnDefault>,
    /// Unique among rows that are not soft-deleted.
    #[serde(default)]
    pub unique: bool,
    /// Foreign key to the `id` of another table of the same module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
}

/// A column default: a literal of the column's type, or a whitelisted function.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ColumnDefault {
    /// `{"literal": "lead"}`, `{"literal": 0}`, `{"literal": true}`.
    Literal(Value),
    /// `{"function": "now"}`.
    Function(DefaultFunction),
}

/// Functions a default may call.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DefaultFunction {
    /// `now()`, for `timestamptz` and `date` columns.
    Now,
    /// `gen_random_uuid()`, for `uuid` columns.
    GenRandomUuid,
}

/// A structured check constraint: `column op value`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Column the check applies to.
    pub column: String,
    /// Comparison.
    pub op: CheckOp,
    /// A literal of the column's type; for `in`, an array of them.
    pub value: Value,
}

/// Comparisons a check may use. `NULL` values pass, as in SQL.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CheckOp {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "<>")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Lte,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Gte,
    #[serde(rename = "in")]
    In,
}

impl CheckOp {
    /// The SQL operator.
    pub fn as_sql(self) -> &'static str {
        match self {
            CheckOp::Eq => "=",
            CheckOp::Ne => "<>",
            CheckOp::Lt => "<",
            CheckOp::Lte => "<=",
            CheckOp::Gt => ">",
            CheckOp::Gte => ">=",
            CheckOp::In => "IN",
        }
    }
}

/// Parses what `migrate()` returned: one migration object, or an array of them.
///
/// # Errors
/// When the bytes are not JSON of that shape, including unknown operation types and
/// unknown fields; the error names the problem and its position.
pub fn parse_migrations(bytes: &[u8]) -> Result<Vec<Migration>, serde_json::Error> {
    let value: Value = serde_json::from_slice(bytes)?;
    if value.is_array() {
        serde_json::from_value(value)
    } else {
        serde_json::from_value(value).map(|one| vec![one])
    }
}

/// The column types a module may use. Floating point is left out on purpose: money and
/// quantities are exact decimals (`numeric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    /// `text`.
    Text,
    /// `varchar(n)`, at most `n` characters.
    Varchar(u32),
    /// `integer` (32-bit).
    Integer,
    /// `bigint` (64-bit).
    BigInt,
    /// `numeric` or `numeric(precision, scale)`: exact decimal, carried as a JSON string.
    Numeric(Option<(u32, u32)>),
    /// `boolean`.
    Boolean,
    /// `date`, as `YYYY-MM-DD`.
    Date,
    /// `timestamptz`, as RFC 3339 text.
    Timestamptz,
    /// `uuid`.
    Uuid,
    /// `jsonb`: any JSON value.
    Jsonb,
}

/// A column type string that is not on the whitelist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSqlType(pub String);

impl fmt::Display for UnknownSqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown SQL type `{}`; use one of text, varchar(n), integer, bigint, \
             numeric, numeric(p,s), boolean, date, timestamptz, uuid, jsonb",
            self.0
        )
    }
}

impl std::error::Error for UnknownSqlType {}

impl SqlType {
    /// Parses a type name, case-insensitively, with common aliases (`int`, `int8`,
    /// `decimal`, `bool`, `timestamp with time zone`). A trailing `NOT NULL`, which the
    /// original EERP format used to spell required columns, is accepted and reported as
    /// the second value.
    ///
    /// # Errors
    /// [`UnknownSqlType`] for anything else, such as `float8` or `text; drop table x`.
    pub fn parse(text: &str) -> Result<(SqlType, bool), UnknownSqlType> {
        let unknown = || UnknownSqlType(text.to_string());
        let lower = text.to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let (words, not_null) = match words.as_slice() {
            [head @ .., "not", "null"] => (head.to_vec(), true),
            _ => (words, false),
        };
        let name = words.join(" ");
        let parsed = match name.as_str() {
            "text" => SqlType::Text,
            "integer" | "int" | "int4" => SqlType::Integer,
            "bigint" | "int8" => SqlType::BigInt,
            "numeric" | "decimal" => SqlType::Numeric(None),
            "boolean" | "bool" => SqlType::Boolean,
            "date" => SqlType::Date,
            "timestamptz" | "timestamp with time zone" => SqlType::Timestamptz,
            "uuid" => SqlType::Uuid,
            "jsonb" => SqlType::Jsonb,
            other => parse_sized(other).ok_or_else(unknown)?,
        };
        Ok((parsed, not_null))
    }

    /// The SQL spelling used in DDL and casts.
    pub fn as_sql(&self) -> String {
        match self {
            SqlType::Text => "text".into(),
            SqlType::Varchar(n) => format!("varchar({n})"),
            SqlType::Integer => "integer".into(),
            SqlType::BigInt => "bigint".into(),
            SqlType::Numeric(None) => "numeric".into(),
            SqlType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            SqlType::Boolean => "boolean".into(),
            SqlType::Date => "date".into(),
            SqlType::Timestamptz => "timestamptz".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Jsonb => "jsonb".into(),
        }
    }
}

/// `varchar(n)`, `numeric(p,s)`, `numeric(p)`, `decimal(p,s)`.
fn parse_sized(text: &str) -> Option<SqlType> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (name, rest) = compact.split_once('(')?;
    let args = rest.strip_suffix(')')?;
    let numbers: Vec<u32> = args
        .split(',')
        .map(|n| n.parse::<u32>().ok())
        .collect::<Option<_>>()?;
    match (name, numbers.as_slice()) {
        ("varchar" | "charactervarying", [n]) if (1..=10_485_760).contains(n) => {
            Some(SqlType::Varchar(*n))
        }
        ("numeric" | "decimal", [p]) if (1..=1000).contains(p) => {
            Some(SqlType::Numeric(Some((*p, 0))))
        }
        ("numeric" | "decimal", [p, s]) if (1..=1000).contains(p) && s <= p => {
            Some(SqlType::Numeric(Some((*p, *s))))
        }
        _ => None,
    }
}

/// Builders, so modules can declare schemas in Rust without struct literals.
impl AddColumn {
    /// A nullable column `column` of `sql_type` added to `table`, without an index.
    pub fn nullable(table: &str, column: &str, sql_type: &str) -> Self {
        Self {
            table: table.to_string(),
            column: column.to_string(),
            sql_type: sql_type.to_string(),
            nullable: Some(true),
            index: false,
            index_type: None,
        }
    }
}

impl Column {
    /// A nullable column without default or constraints.
    pub fn new(name: &str, sql_type: &str) -> Self {
        Self {
            name: name.to_string(),
            sql_type: sql_type.to_string(),
            not_null: false,
            default: None,
            unique: false,
            references: None,
        }
    }

    /// Adds `NOT NULL`.
    pub fn not_null(mut self) -> Self {
        self.not_null = true;
        self
    }

    /// Unique among live rows.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// A literal default.
    pub fn default_value(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(ColumnDefault::Literal(value.into()));
        self
    }

    /// A function default.
    pub fn default_fn(mut self, function: DefaultFunction) -> Self {
        self.default = Some(ColumnDefault::Function(function));
        self
    }

    /// A foreign key to `table.id` in the same module.
    pub fn references(mut self, table: &str) -> Self {
        self.references = Some(table.to_string());
        self
    }
}

impl CreateTable {
    /// A table with `columns` and no table-level constraints yet.
    pub fn new(table: &str, columns: Vec<Column>) -> Self {
        Self {
            table: table.to_string(),
            columns,
            unique: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// Adds a check `column op value`.
    pub fn check(mut self, column: &str, op: CheckOp, value: impl Into<Value>) -> Self {
        self.checks.push(Check {
            column: column.to_string(),
            op,
            value: value.into(),
        });
        self
    }

    /// Adds a multi-column unique constraint among live rows.
    pub fn unique_together(mut self, columns: &[&str]) -> Self {
        self.unique
            .push(columns.iter().map(|c| c.to_string()).collect());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_eerp_poc_output_parses_unchanged() {
        let json = br#"{"entity":"vente","version":1,"operations":[{"type":"add_column","table":"vente","column":"type_client","sql_type":"TEXT","nullable":true}],"data":{"x":1}}"#;
        let steps = parse_migrations(json).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].version, 1);
        assert!(
            matches!(&steps[0].operations[0], Operation::AddColumn(c) if c.column == "type_client")
        );
    }

    #[test]
    fn unknown_operation_type_is_an_error_naming_it() {
        let json =
            br#"{"entity":"x","version":1,"operations":[{"type":"drop_table","table":"t"}]}"#;
        let err = parse_migrations(json).unwrap_err().to_string();
        assert!(err.contains("drop_table"), "{err}");
    }

    #[test]
    fn unknown_field_in_an_operation_is_an_error() {
        let json = br#"[{"entity":"x","version":1,"operations":[{"type":"create_index","table":"t","column":"c","colum":"d"}]}]"#;
        assert!(parse_migrations(json).is_err());
    }

    #[test]
    fn sql_types_parse_with_aliases_and_not_null() {
        assert_eq!(SqlType::parse("TEXT"), Ok((SqlType::Text, false)));
        assert_eq!(SqlType::parse("text NOT NULL"), Ok((SqlType::Text, true)));
        assert_eq!(
            SqlType::parse("DECIMAL(14, 2)"),
            Ok((SqlType::Numeric(Some((14, 2))), false))
        );
        assert_eq!(
            SqlType::parse("timestamp with time zone"),
            Ok((SqlType::Timestamptz, false))
        );
        assert_eq!(
            SqlType::parse("varchar(80)"),
            Ok((SqlType::Varchar(80), false))
        );
    }

    #[test]
    fn floats_injections_and_nonsense_are_rejected() {
        for bad in [
            "float8",
            "double precision",
            "text; drop table x",
            "numeric(2,5)",
            "varchar(0)",
            "",
            "not null",
        ] {
            assert!(SqlType::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
