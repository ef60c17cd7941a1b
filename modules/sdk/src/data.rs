//! [`Ctx`]: the caller, the host's data API (used through [`crate::Table`]) and event
//! emission.

use eerp_abi::data::{DataError, DataErrorKind, DataOp, DataReply};
use eerp_abi::envelope::Principal;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;

/// A handler's context: who is calling, the host's data API on the module's own tables
/// (and granted ones), and events. Every data call runs in the request's single
/// transaction, in the calling tenant's schema, which the module neither chooses nor sees.
#[derive(Debug)]
pub struct Ctx {
    principal: Principal,
    request_id: String,
    emitted: Vec<(String, Value)>,
}

impl Ctx {
    /// A context for `principal`. Tests of business logic may build one; natively its
    /// data calls fail as unavailable and its events are only recorded.
    pub fn new(principal: Principal, request_id: String) -> Self {
        Self {
            principal,
            request_id,
            emitted: Vec::new(),
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

    /// Emits `event` (declared with `Module::emits`) with `payload`. Subscribers run
    /// after this handler returns, in the same transaction; if one fails, the whole
    /// request is rolled back.
    ///
    /// # Errors
    /// A 500 when the payload cannot be serialized.
    pub fn emit(&mut self, event: &str, payload: &impl Serialize) -> Result<(), Error> {
        let payload = serde_json::to_value(payload)
            .map_err(|e| Error::internal(format!("event `{event}` payload: {e}")))?;
        let bytes = serde_json::to_vec(&serde_json::json!({"event": event, "payload": payload}))
            .map_err(|e| Error::internal(format!("event `{event}`: {e}")))?;
        crate::host::emit(&bytes);
        self.emitted.push((event.to_string(), payload));
        Ok(())
    }

    /// The events emitted so far, in order (for native tests of handlers).
    pub fn emitted(&self) -> &[(String, Value)] {
        &self.emitted
    }

    pub(crate) fn call(&mut self, op: &DataOp) -> Result<Value, DataError> {
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

    pub(crate) fn object(&self, values: &impl Serialize) -> Result<Map<String, Value>, DataError> {
        match serde_json::to_value(values) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(invalid("row values must serialize to a JSON object".into())),
            Err(e) => Err(invalid(e.to_string())),
        }
    }
}

fn invalid(message: String) -> DataError {
    DataError {
        kind: DataErrorKind::Invalid,
        message,
    }
}
