//! The declared shape of a module's tables.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use eerp_abi::migration::SqlType;

/// Columns every table has, managed by the host.
pub const BUILTIN_COLUMNS: [&str; 4] = ["id", "created_at", "updated_at", "deleted_at"];

/// A module's tables after all its migrations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchemaModel {
    pub(crate) tables: BTreeMap<String, TableModel>,
}

/// One table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableModel {
    /// Table name.
    pub name: String,
    /// Columns in creation order, built-in ones first.
    pub columns: Vec<ColumnModel>,
    /// Unique keys among live rows (a `unique` column or a `unique_together` set), each
    /// a set of column names, besides `id`.
    pub unique: Vec<Vec<String>>,
    /// What the data API derives from the columns, once: every read repeats it.
    pub(crate) reads: Derived<crate::data_api::query::Reads>,
}

/// A value derived from a model on first use, after its migrations are planned. It is not
/// part of the model's identity: clones start empty (a clone may get more columns) and any
/// two compare equal.
#[derive(Debug)]
pub(crate) struct Derived<T>(OnceLock<T>);

impl<T> Default for Derived<T> {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<T> Derived<T> {
    /// The value, made by `make` the first time.
    pub(crate) fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(make)
    }
}

impl<T> Clone for Derived<T> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnModel {
    /// Column name.
    pub name: String,
    /// Type.
    pub ty: SqlType,
    /// `NOT NULL`.
    pub not_null: bool,
    /// Has a default, so inserts may leave it out.
    pub has_default: bool,
    /// Managed by the host (`id`, timestamps); modules cannot write it.
    pub builtin: bool,
}

impl SchemaModel {
    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&TableModel> {
        self.tables.get(name)
    }

    /// Table names, sorted.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

impl TableModel {
    /// A table with only the built-in columns.
    pub fn new(name: &str) -> Self {
        let builtin = |name: &str, ty, not_null| ColumnModel {
            name: name.to_string(),
            ty,
            not_null,
            has_default: not_null,
            builtin: true,
        };
        Self {
            name: name.to_string(),
            columns: vec![
                builtin("id", SqlType::Uuid, true),
                builtin("created_at", SqlType::Timestamptz, true),
                builtin("updated_at", SqlType::Timestamptz, true),
                builtin("deleted_at", SqlType::Timestamptz, false),
            ],
            unique: Vec::new(),
            reads: Derived::default(),
        }
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnModel> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The declared unique key with exactly the columns `names` (in any order).
    pub fn unique_key(&self, names: &[&str]) -> Option<&[String]> {
        let mut wanted: Vec<&str> = names.to_vec();
        wanted.sort_unstable();
        self.unique
            .iter()
            .find(|key| {
                let mut have: Vec<&str> = key.iter().map(String::as_str).collect();
                have.sort_unstable();
                have == wanted
            })
            .map(Vec::as_slice)
    }
}
