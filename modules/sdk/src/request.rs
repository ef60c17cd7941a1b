//! The request a handler receives.

use eerp_abi::envelope::{self, Principal};
use serde::de::DeserializeOwned;

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
