//! [`Ctx`]: the caller and the data API client a handler works with.

use eerp_abi::data::{
    AggregateQuery, AggregateResult, DataError, DataErrorKind, DataOp, DataReply, ListPage,
    ListQuery,
};
use eerp_abi::envelope::Principal;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A handler's context: who is calling, and the host's data API on the module's own
/// tables. Every call runs in the request's single transaction, in the calling tenant's
/// schema, which the module neither chooses nor sees.
#[derive(Debug)]
pub struct Ctx {
    principal: Principal,
    request_id: String,
}

impl Ctx {
    /// A context for `principal`. Tests of business logic may build one; its data calls
    /// fail natively.
    pub fn new(principal: Principal, request_id: String) -> Self {
        Self {
            principal,
            request_id,
        }
    }

    /// The verified caller.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The host's request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Inserts a row built from `values` (a struct or JSON object); returns the stored row.
    ///
    /// # Errors
    /// [`DataError`] when the values do not fit the table, a unique constraint is hit, a
    /// per-request cap is reached or the database fails.
    pub fn insert(&mut self, table: &str, values: &impl Serialize) -> Result<Value, DataError> {
        let values = to_object(values)?;
        self.call(&DataOp::Insert {
            module: None,
            table: table.to_string(),
            values,
        })
    }

    /// The live row with `id`.
    ///
    /// # Errors
    /// [`DataErrorKind::NotFound`] when there is none; see [`Ctx::insert`] for the rest.
    pub fn get(&mut self, table: &str, id: &str) -> Result<Value, DataError> {
        self.call(&DataOp::Get {
            module: None,
            table: table.to_string(),
            id: id.to_string(),
            include_deleted: false,
        })
    }

    /// The row with `id`, soft-deleted or not.
    ///
    /// # Errors
    /// As [`Ctx::get`].
    pub fn get_including_deleted(&mut self, table: &str, id: &str) -> Result<Value, DataError> {
        self.call(&DataOp::Get {
            module: None,
            table: table.to_string(),
            id: id.to_string(),
            include_deleted: true,
        })
    }

    /// The live row with `id`, locked until the request ends.
    ///
    /// # Errors
    /// As [`Ctx::get`].
    pub fn get_for_update(&mut self, table: &str, id: &str) -> Result<Value, DataError> {
        self.call(&DataOp::GetForUpdate {
            module: None,
            table: table.to_string(),
            id: id.to_string(),
        })
    }

    /// A page of rows.
    ///
    /// # Errors
    /// As [`Ctx::insert`].
    pub fn list(&mut self, query: ListQuery) -> Result<ListPage, DataError> {
        self.call(&DataOp::List(query)).and_then(from_value)
    }

    /// Changes the columns in `values` of the live row `id`; returns the row.
    ///
    /// # Errors
    /// As [`Ctx::insert`], and [`DataErrorKind::NotFound`].
    pub fn update(
        &mut self,
        table: &str,
        id: &str,
        values: &impl Serialize,
    ) -> Result<Value, DataError> {
        let values = to_object(values)?;
        self.call(&DataOp::Update {
            module: None,
            table: table.to_string(),
            id: id.to_string(),
            values,
        })
    }

    /// Soft-deletes the live row `id`; returns it.
    ///
    /// # Errors
    /// As [`Ctx::get`].
    pub fn delete(&mut self, table: &str, id: &str) -> Result<Value, DataError> {
        self.call(&DataOp::Delete {
            module: None,
            table: table.to_string(),
            id: id.to_string(),
        })
    }

    /// Restores the soft-deleted row `id`; returns it.
    ///
    /// # Errors
    /// [`DataErrorKind::NotFound`] when no soft-deleted row has that id.
    pub fn restore(&mut self, table: &str, id: &str) -> Result<Value, DataError> {
        self.call(&DataOp::Restore {
            module: None,
            table: table.to_string(),
            id: id.to_string(),
        })
    }

    /// Counts, sums, minima and maxima, optionally grouped.
    ///
    /// # Errors
    /// As [`Ctx::insert`].
    pub fn aggregate(&mut self, query: AggregateQuery) -> Result<AggregateResult, DataError> {
        self.call(&DataOp::Aggregate(query)).and_then(from_value)
    }

    fn call(&mut self, op: &DataOp) -> Result<Value, DataError> {
        let request = serde_json::to_vec(op).map_err(|e| invalid(e.to_string()))?;
        let reply = crate::host::data_call(&request).ok_or_else(|| DataError {
            kind: DataErrorKind::Unavailable,
            message: "the data API is only available inside the EERP host".to_string(),
        })?;
        match serde_json::from_slice::<DataReply>(&reply) {
            Ok(DataReply::Ok(value)) => Ok(value),
            Ok(DataReply::Error(err)) => Err(err),
            Err(e) => Err(DataError {
                kind: DataErrorKind::Unavailable,
                message: format!("the host sent an unreadable data reply: {e}"),
            }),
        }
    }
}

fn to_object(values: &impl Serialize) -> Result<Map<String, Value>, DataError> {
    match serde_json::to_value(values) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid("row values must serialize to a JSON object".into())),
        Err(e) => Err(invalid(e.to_string())),
    }
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, DataError> {
    serde_json::from_value(value).map_err(|e| DataError {
        kind: DataErrorKind::Unavailable,
        message: format!("the host sent an unexpected data reply: {e}"),
    })
}

fn invalid(message: String) -> DataError {
    DataError {
        kind: DataErrorKind::Invalid,
        message,
    }
}
