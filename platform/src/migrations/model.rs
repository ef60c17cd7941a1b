//! The declared shape of a module's tables.

use std::collections::BTreeMap;

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
