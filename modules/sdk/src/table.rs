//! Typed tables: rows as the module's own serde structs instead of JSON indexing.
//!
//! A [`Table`] is one of the module's own tables and can be written; a [`Granted`] table
//! belongs to another module of the same tenant and can only be read, through a read
//! grant in the manifest (`Module::grant`).

use std::marker::PhantomData;

#[cfg(doc)]
use eerp_abi::data::DataErrorKind;
use eerp_abi::data::{AggregateQuery, AggregateResult, DataError, DataOp, ListQuery, LockMode};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Ctx;

/// A stored row: the host's columns around the module's record type `T` (which must not
/// deny unknown fields: a newer schema may have columns `T` does not know).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[schemars(rename = "{T}Row")]
pub struct Row<T> {
    /// Row id (uuid), set by the host.
    #[schemars(extend("format" = "uuid"))]
    pub id: String,
    /// The module's fields.
    #[serde(flatten)]
    pub record: T,
    /// When the row was created (RFC 3339, UTC).
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    /// When it last changed.
    #[schemars(extend("format" = "date-time"))]
    pub updated_at: String,
    /// When it was soft-deleted, if it was.
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub deleted_at: Option<String>,
}

/// A page of typed rows; serializes as `{"data": [...], "next_cursor": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    /// The rows.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// One of the module's own tables, its rows read as `T`.
#[derive(Debug)]
pub struct Table<T> {
    name: &'static str,
    row: PhantomData<fn() -> T>,
}

/// A table of another module, read through a grant.
#[derive(Debug)]
pub struct Granted<T> {
    module: &'static str,
    name: &'static str,
    row: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Table<T> {
    /// The table `name` (declared in the module's migrations).
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            row: PhantomData,
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Inserts a row built from `values`; returns the stored row. `null` values are
    /// left out, so the column's default applies.
    ///
    /// # Errors
    /// [`DataError`] when the values do not fit, a unique constraint is hit, a cap is
    /// reached or the database fails.
    pub fn insert(&self, ctx: &mut Ctx, values: &impl Serialize) -> Result<T, DataError> {
        let mut values = ctx.object(values)?;
        values.retain(|_, value| !value.is_null());
        ctx.call(&DataOp::Insert {
            module: None,
            table: self.name.into(),
            values,
        })
    }

    /// The live row `id`.
    ///
    /// # Errors
    /// [`DataErrorKind::NotFound`] when there is none.
    pub fn get(&self, ctx: &mut Ctx, id: &str) -> Result<T, DataError> {
        get(ctx, None, self.name, id, false)
    }

    /// The row `id`, soft-deleted or not.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub fn get_including_deleted(&self, ctx: &mut Ctx, id: &str) -> Result<T, DataError> {
        get(ctx, None, self.name, id, true)
    }

    /// The live row `id`, locked until the request ends.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub fn get_for_update(&self, ctx: &mut Ctx, id: &str) -> Result<T, DataError> {
        ctx.call(&DataOp::GetForUpdate {
            module: None,
            table: self.name.into(),
            id: id.into(),
        })
    }

    /// The live row whose unique key has the values of `key` (an object such as
    /// `{"sku": "A-1"}`: `id`, a `unique` column or a `unique_together` set).
    ///
    /// # Errors
    /// [`DataErrorKind::NotFound`] when there is none; [`DataErrorKind::Invalid`] when
    /// `key` is not a declared unique key.
    pub fn get_by(&self, ctx: &mut Ctx, key: &impl Serialize) -> Result<T, DataError> {
        get_by(ctx, None, self.name, key, None, None)
    }

    /// As [`Table::get_by`], locked until the request ends: [`LockMode::Update`] to
    /// change the row, [`LockMode::Share`] to keep it from changing while this request
    /// relies on it.
    ///
    /// # Errors
    /// As [`Table::get_by`].
    pub fn lock_by(
        &self,
        ctx: &mut Ctx,
        key: &impl Serialize,
        mode: LockMode,
    ) -> Result<T, DataError> {
        get_by(ctx, None, self.name, key, Some(mode), None)
    }

    /// The row with unique key `key`, locked; when there is none it is first inserted
    /// from `values` and the key's values. Requests racing to create the same row all
    /// get the one that was inserted, so this is how a module keeps one row per key (a
    /// balance per item and location) without a unique-violation error.
    ///
    /// # Errors
    /// As [`Table::get_by`] and [`Table::insert`].
    pub fn lock_or_insert(
        &self,
        ctx: &mut Ctx,
        key: &impl Serialize,
        values: &impl Serialize,
        mode: LockMode,
    ) -> Result<T, DataError> {
        let mut values = ctx.object(values)?;
        values.retain(|_, value| !value.is_null());
        get_by(ctx, None, self.name, key, Some(mode), Some(values))
    }

    /// A page of rows (`query.table` is set to this table).
    ///
    /// # Errors
    /// As [`Table::insert`].
    pub fn list(&self, ctx: &mut Ctx, query: ListQuery) -> Result<Page<T>, DataError> {
        list(ctx, None, self.name, query)
    }

    /// Changes the columns in `values` of the live row `id`; returns the row.
    ///
    /// # Errors
    /// As [`Table::insert`], and [`DataErrorKind::NotFound`].
    pub fn update(&self, ctx: &mut Ctx, id: &str, values: &impl Serialize) -> Result<T, DataError> {
        let values = ctx.object(values)?;
        ctx.call(&DataOp::Update {
            module: None,
            table: self.name.into(),
            id: id.into(),
            values,
        })
    }

    /// Soft-deletes the live row `id`; returns it.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub fn delete(&self, ctx: &mut Ctx, id: &str) -> Result<T, DataError> {
        ctx.call(&DataOp::Delete {
            module: None,
            table: self.name.into(),
            id: id.into(),
        })
    }

    /// Restores the soft-deleted row `id`; returns it.
    ///
    /// # Errors
    /// [`DataErrorKind::NotFound`] when no soft-deleted row has that id.
    pub fn restore(&self, ctx: &mut Ctx, id: &str) -> Result<T, DataError> {
        ctx.call(&DataOp::Restore {
            module: None,
            table: self.name.into(),
            id: id.into(),
        })
    }

    /// Counts, sums, minima and maxima (`query.table` is set to this table).
    ///
    /// # Errors
    /// As [`Table::insert`].
    pub fn aggregate(
        &self,
        ctx: &mut Ctx,
        query: AggregateQuery,
    ) -> Result<AggregateResult, DataError> {
        aggregate(ctx, None, self.name, query)
    }
}

impl<T: DeserializeOwned> Granted<T> {
    /// Table `name` of module `module`; the manifest needs `read:<module>.<name>`.
    pub const fn new(module: &'static str, name: &'static str) -> Self {
        Self {
            module,
            name,
            row: PhantomData,
        }
    }

    /// The grant this table needs, for `Module::grant`.
    pub fn grant(&self) -> String {
        format!("read:{}.{}", self.module, self.name)
    }

    /// The live row `id`.
    ///
    /// # Errors
    /// [`DataErrorKind::Forbidden`] without the grant or when the module is not enabled
    /// for the tenant; [`DataErrorKind::NotFound`] when there is no such row.
    pub fn get(&self, ctx: &mut Ctx, id: &str) -> Result<T, DataError> {
        get(ctx, Some(self.module), self.name, id, false)
    }

    /// The live row whose unique key has the values of `key`.
    ///
    /// # Errors
    /// As [`Granted::get`].
    pub fn get_by(&self, ctx: &mut Ctx, key: &impl Serialize) -> Result<T, DataError> {
        get_by(ctx, Some(self.module), self.name, key, None, None)
    }

    /// A page of rows.
    ///
    /// # Errors
    /// As [`Granted::get`].
    pub fn list(&self, ctx: &mut Ctx, query: ListQuery) -> Result<Page<T>, DataError> {
        list(ctx, Some(self.module), self.name, query)
    }

    /// Counts, sums, minima and maxima.
    ///
    /// # Errors
    /// As [`Granted::get`].
    pub fn aggregate(
        &self,
        ctx: &mut Ctx,
        query: AggregateQuery,
    ) -> Result<AggregateResult, DataError> {
        aggregate(ctx, Some(self.module), self.name, query)
    }
}

fn get<T: DeserializeOwned>(
    ctx: &mut Ctx,
    module: Option<&str>,
    table: &str,
    id: &str,
    include_deleted: bool,
) -> Result<T, DataError> {
    ctx.call(&DataOp::Get {
        module: module.map(str::to_string),
        table: table.into(),
        id: id.into(),
        include_deleted,
    })
}

fn get_by<T: DeserializeOwned>(
    ctx: &mut Ctx,
    module: Option<&str>,
    table: &str,
    key: &impl Serialize,
    lock: Option<LockMode>,
    or_insert: Option<serde_json::Map<String, Value>>,
) -> Result<T, DataError> {
    let key = ctx.object(key)?;
    ctx.call(&DataOp::GetBy {
        module: module.map(str::to_string),
        table: table.into(),
        key,
        lock,
        or_insert,
    })
}

fn list<T: DeserializeOwned>(
    ctx: &mut Ctx,
    module: Option<&str>,
    table: &str,
    mut query: ListQuery,
) -> Result<Page<T>, DataError> {
    query.module = module.map(str::to_string);
    query.table = table.into();
    /// [`eerp_abi::data::ListPage`] with its rows typed.
    #[derive(Deserialize)]
    struct TypedPage<T> {
        rows: Vec<T>,
        #[serde(default)]
        next_cursor: Option<String>,
    }
    let page: TypedPage<T> = ctx.call(&DataOp::List(query))?;
    Ok(Page {
        data: page.rows,
        next_cursor: page.next_cursor,
    })
}

fn aggregate(
    ctx: &mut Ctx,
    module: Option<&str>,
    table: &str,
    mut query: AggregateQuery,
) -> Result<AggregateResult, DataError> {
    query.module = module.map(str::to_string);
    query.table = table.into();
    ctx.call(&DataOp::Aggregate(query))
}
