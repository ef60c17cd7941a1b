//! [`Ctx`]: the caller, the host's data API (used through [`crate::Table`]) and event
//! emission.

use eerp_abi::data::{DataError, DataErrorKind, DataOp, DataReply};
use eerp_abi::envelope::Principal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
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

    /// Runs `op` and reads its result as `T`, straight from the reply's bytes (no JSON
    /// tree in between: a list's rows are decoded once).
    pub(crate) fn call<T: DeserializeOwned>(&mut self, op: &DataOp) -> Result<T, DataError> {
        let request = serde_json::to_vec(op).map_err(|e| invalid(e.to_string()))?;
        let reply = crate::host::data_call(&request).ok_or_else(|| DataError {
            kind: DataErrorKind::Unavailable,
            message: "the data API is only available inside the EERP host".to_string(),
        })?;
        decode(&reply)
    }

    pub(crate) fn object(&self, values: &impl Serialize) -> Result<Map<String, Value>, DataError> {
        match serde_json::to_value(values) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(invalid("row values must serialize to a JSON object".into())),
            Err(e) => Err(invalid(e.to_string())),
        }
    }
}

/// A data reply's result as `T`, read straight from its bytes (no JSON tree in between:
/// a list's rows are decoded once).
fn decode<T: DeserializeOwned>(reply: &[u8]) -> Result<T, DataError> {
    /// [`DataReply`] with its result typed.
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Typed<T> {
        Ok(T),
        Error(DataError),
    }
    let unfit = match serde_json::from_slice::<Typed<T>>(reply) {
        Ok(Typed::Ok(value)) => return Ok(value),
        Ok(Typed::Error(err)) => return Err(err),
        Err(e) => e,
    };
    // Only on failure: tell a result that does not fit `T` from a broken reply.
    match serde_json::from_slice::<DataReply>(reply) {
        Ok(DataReply::Error(err)) => Err(err),
        Ok(DataReply::Ok(_)) => Err(invalid(format!(
            "a row does not fit the module's row type: {unfit}"
        ))),
        Err(e) => Err(DataError {
            kind: DataErrorKind::Unavailable,
            message: format!("the host sent an unreadable data reply: {e}"),
        }),
    }
}

fn invalid(message: String) -> DataError {
    DataError {
        kind: DataErrorKind::Invalid,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Named {
        name: String,
    }

    #[test]
    fn a_reply_is_read_as_the_modules_type_or_says_why_not() {
        let ok: Result<Named, _> = decode(br#"{"ok": {"name": "Ada", "extra": 1}}"#);
        assert_eq!(ok.unwrap().name, "Ada");

        let err: Result<Named, _> = decode(br#"{"error": {"kind": "not_found", "message": "no"}}"#);
        assert_eq!(err.unwrap_err().kind, DataErrorKind::NotFound);

        let unfit: Result<Named, _> = decode(br#"{"ok": {"name": 7}}"#);
        let unfit = unfit.unwrap_err();
        assert_eq!(unfit.kind, DataErrorKind::Invalid);
        assert!(unfit.message.contains("does not fit"), "{}", unfit.message);

        let broken: Result<Named, _> = decode(b"{\"ok\": ");
        assert_eq!(broken.unwrap_err().kind, DataErrorKind::Unavailable);
    }
}
