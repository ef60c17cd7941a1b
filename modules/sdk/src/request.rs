//! The request a handler receives.

use eerp_abi::envelope::{self, Principal};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Error;

/// One HTTP request routed to a handler.
#[derive(Debug, Clone)]
pub struct Request {
    inner: envelope::Request,
}

impl Request {
    /// Wraps a decoded envelope (the SDK does this; tests may too).
    pub fn new(inner: envelope::Request) -> Self {
        Self { inner }
    }

    /// A `{name}` segment of the route template.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.inner.params.get(name).map(String::as_str)
    }

    /// The `{name}` segment of the route template, which the route declares.
    ///
    /// # Errors
    /// A 500 when the route has no such segment: a bug in the module's route table.
    pub fn path(&self, name: &str) -> Result<&str, Error> {
        self.param(name).ok_or_else(|| {
            Error::internal(format!(
                "route `{}` has no `{{{name}}}` segment",
                self.inner.route
            ))
        })
    }

    /// A query string parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.inner.query.get(name).map(String::as_str)
    }

    /// Names of all query parameters, for rejecting unknown ones.
    pub fn query_names(&self) -> impl Iterator<Item = &str> {
        self.inner.query.keys().map(String::as_str)
    }

    /// The body as JSON text (`null` when there was none).
    pub fn raw_body(&self) -> &str {
        self.inner.body.get()
    }

    /// The body decoded as `T`. Put `#[serde(deny_unknown_fields)]` on `T` to reject
    /// unknown fields.
    ///
    /// # Errors
    /// A 400 [`Error`] naming what did not fit, when the body is missing or not a `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if envelope::is_null(&self.inner.body) {
            return Err(Error::bad_request(
                "this route needs a JSON body; send one with content-type application/json",
            ));
        }
        serde_json::from_str(self.inner.body.get())
            .map_err(|e| Error::bad_request(format!("the request body is invalid: {e}")))
    }

    /// The body as a record `T`, refusing fields `T` does not have (the keys
    /// `T::default()` serializes to), so `T` itself can stay open to stored rows' extra
    /// columns.
    ///
    /// # Errors
    /// A 400 for a missing body, an unknown field, or values that are not a `T`.
    pub fn record<T: Serialize + DeserializeOwned + Default>(&self) -> Result<T, Error> {
        if envelope::is_null(&self.inner.body) {
            return Err(Error::bad_request(
                "this route needs a JSON body; send one with content-type application/json",
            ));
        }
        // One pass over the body: fields `T` ignores are reported, not collected in a tree
        // (this runs on every create, in a fresh instance, so no cache would help).
        let mut unknown = None;
        let mut body = serde_json::Deserializer::from_str(self.inner.body.get());
        let record = serde_ignored::deserialize(&mut body, |path| {
            unknown.get_or_insert_with(|| path.to_string());
        })
        .map_err(|e| Error::bad_request(format!("the request body is invalid: {e}")))?;
        match unknown {
            Some(field) => Err(unknown_field(&field, &fields_of::<T>()?)),
            None => Ok(record),
        }
    }

    /// The body of a `PATCH` applied to `current` (a stored row), as a `T`: the record
    /// type the create route takes, so one type and one validator serve both. `T`'s
    /// fields are the keys `T::default()` serializes to; the body may name only those.
    ///
    /// # Errors
    /// A 400 for a body that is not a non-empty object of `T`'s fields, or whose values
    /// do not fit `T`.
    pub fn patch<T: Serialize + DeserializeOwned + Default>(
        &self,
        current: &impl Serialize,
    ) -> Result<Patch<T>, Error> {
        let Value::Object(changes) = self.json::<Value>()? else {
            return Err(Error::bad_request(
                "a patch is a JSON object of the fields to change",
            ));
        };
        if changes.is_empty() {
            return Err(Error::bad_request(
                "the patch changes nothing; send at least one field to change",
            ));
        }
        let template = fields_of::<T>()?;
        if let Some(unknown) = changes.keys().find(|k| !template.contains_key(*k)) {
            return Err(unknown_field(unknown, &template));
        }
        let current = match serde_json::to_value(current) {
            Ok(Value::Object(row)) => row,
            _ => Map::new(),
        };
        let merged: Map<String, Value> = template
            .keys()
            .map(|key| {
                let value = changes.get(key).or_else(|| current.get(key));
                (key.clone(), value.cloned().unwrap_or(Value::Null))
            })
            .collect();
        let merged = serde_json::from_value(Value::Object(merged))
            .map_err(|e| Error::bad_request(format!("the patch is invalid: {e}")))?;
        Ok(Patch {
            merged,
            fields: changes.keys().cloned().collect(),
        })
    }

    /// The verified caller.
    pub fn principal(&self) -> &Principal {
        &self.inner.principal
    }

    /// The HTTP method.
    pub fn method(&self) -> &str {
        &self.inner.method
    }

    /// The host's request id.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }
}

/// The fields of record type `T`: the keys its default serializes to.
fn fields_of<T: Serialize + Default>() -> Result<Map<String, Value>, Error> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(template)) => Ok(template),
        _ => Err(Error::internal(
            "the record type does not serialize to a JSON object",
        )),
    }
}

fn unknown_field(unknown: &str, template: &Map<String, Value>) -> Error {
    let known: Vec<&str> = template.keys().map(String::as_str).collect();
    Error::bad_request(format!(
        "unknown field `{unknown}`; the fields are {}",
        known.join(", ")
    ))
}

/// A `PATCH` body merged onto the stored row: validate [`Patch::merged`] like a new
/// record, then write [`Patch::changes`].
#[derive(Debug, Clone)]
pub struct Patch<T> {
    /// The stored record with the patch applied.
    pub merged: T,
    /// The fields the patch named.
    pub fields: Vec<String>,
}

impl<T: Serialize> Patch<T> {
    /// What to pass to `Table::update`: from `record` (the merged record after
    /// validation and normalisation), the fields the patch named and those the
    /// validation changed (a derived field, such as a probability a stage sets).
    pub fn changes(&self, record: &T) -> Map<String, Value> {
        let Ok(Value::Object(mut all)) = serde_json::to_value(record) else {
            return Map::new();
        };
        let merged = match serde_json::to_value(&self.merged) {
            Ok(Value::Object(merged)) => merged,
            _ => Map::new(),
        };
        all.retain(|key, value| self.fields.contains(key) || merged.get(key) != Some(value));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
    struct Thing {
        name: String,
        colour: Option<String>,
    }

    fn request(body: &str) -> Request {
        Request::new(envelope::Request {
            method: "PATCH".into(),
            route: "/things/{id}".into(),
            params: [("id".to_string(), "7".to_string())].into(),
            query: Default::default(),
            body: serde_json::value::RawValue::from_string(body.to_string()).unwrap(),
            principal: Principal {
                subject: "u".into(),
                roles: vec![],
            },
            request_id: "r".into(),
        })
    }

    #[test]
    fn a_record_refuses_fields_it_does_not_have() {
        let thing: Thing = request(r#"{"name":"a","colour":"red"}"#).record().unwrap();
        assert_eq!(thing.colour.as_deref(), Some("red"));
        let err = request(r#"{"name":"a","size":3}"#)
            .record::<Thing>()
            .unwrap_err();
        assert!(
            err.body.detail.contains("unknown field `size`"),
            "{}",
            err.body.detail
        );
    }

    #[test]
    fn a_patch_merges_onto_the_stored_row_and_names_its_fields() {
        let stored =
            serde_json::json!({"id": "7", "name": "old", "colour": "blue", "created_at": "x"});
        let patch = request(r#"{"colour":null}"#)
            .patch::<Thing>(&stored)
            .unwrap();
        assert_eq!(
            patch.merged,
            Thing {
                name: "old".into(),
                colour: None
            }
        );
        let changes = patch.changes(&patch.merged);
        assert_eq!(
            serde_json::Value::Object(changes),
            serde_json::json!({"colour": null})
        );
        let mut derived = patch.merged.clone();
        derived.name = "derived".into();
        assert_eq!(
            serde_json::Value::Object(patch.changes(&derived)),
            serde_json::json!({"colour": null, "name": "derived"}),
            "a field the validation changed is written too"
        );
        for (body, named) in [
            ("{}", "changes nothing"),
            (r#"{"id":"8"}"#, "unknown field `id`"),
            (r#"{"name":5}"#, "invalid type"),
            ("[1]", "JSON object"),
        ] {
            let err = request(body).patch::<Thing>(&stored).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(
                err.body.detail.contains(named),
                "{body}: {}",
                err.body.detail
            );
        }
    }

    #[test]
    fn a_missing_path_segment_is_the_modules_bug() {
        assert_eq!(request("null").path("id").unwrap(), "7");
        assert_eq!(request("null").path("other").unwrap_err().status, 500);
    }
}
