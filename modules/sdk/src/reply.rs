//! What a handler returns: a [`Reply`] on success, an [`Error`] otherwise.

use eerp_abi::data::{DataError, DataErrorKind};
use eerp_abi::envelope::{self, ErrorBody, FieldError, Response};
use serde::Serialize;
use serde_json::value::RawValue;

/// A successful answer: a 2xx status and a JSON body. The request's writes are committed.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    body: Box<RawValue>,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: impl Serialize) -> Self {
        Self::with_status(200, body)
    }

    /// 201 with `body`, for a created resource.
    pub fn created(body: impl Serialize) -> Self {
        Self::with_status(201, body)
    }

    /// 204 without a body.
    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: envelope::null(),
        }
    }

    /// Any status with `body`. A body that cannot be serialized becomes `null`.
    pub fn with_status(status: u16, body: impl Serialize) -> Self {
        Self {
            status,
            body: serde_json::value::to_raw_value(&body).unwrap_or_else(|_| envelope::null()),
        }
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body, as JSON text.
    pub fn body(&self) -> &RawValue {
        &self.body
    }

    pub(crate) fn into_response(self) -> Response {
        Response {
            status: self.status,
            body: self.body,
        }
    }
}

/// A failed request: a 4xx/5xx status with a problem description. The host rolls back
/// the request's writes and answers `application/problem+json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// HTTP status.
    pub status: u16,
    /// The problem's body.
    pub body: ErrorBody,
}

impl Error {
    /// Any status, title and detail.
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                title: title.into(),
                detail: detail.into(),
                code: None,
                errors: Vec::new(),
            },
        }
    }

    /// 400: the request does not make sense.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, "Invalid request", detail)
    }

    /// 422: the request is well-formed but its values break the rules.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(422, "Invalid values", detail)
    }

    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "Not found", detail)
    }

    /// 409: the request conflicts with existing data.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, "Conflict", detail)
    }

    /// 500: the module itself failed.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, "Module failure", detail)
    }

    /// 422 for a field naming a row that does not exist: `unknown_reference`, naming
    /// `field` (`item_id`) and what it should name (`item`).
    pub fn unknown_reference(field: &str, what: &str) -> Self {
        Self::unprocessable(format!("{field}: no live {what} with this id"))
            .with_code("unknown_reference")
            .with_field(field, format!("no live {what} with this id"))
    }

    /// Adds a stable machine-readable code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.body.code = Some(code.into());
        self
    }

    /// Adds a per-field problem.
    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.body.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }
}

impl From<Error> for Reply {
    fn from(err: Error) -> Self {
        Reply::with_status(err.status, err.body)
    }
}

impl From<DataError> for Error {
    fn from(err: DataError) -> Self {
        let status = match err.kind {
            DataErrorKind::NotFound => 404,
            DataErrorKind::Invalid => 400,
            DataErrorKind::Conflict => 409,
            DataErrorKind::LimitExceeded => 422,
            // A missing grant is the module's (or the operator's) doing, not the caller's.
            DataErrorKind::Forbidden => 500,
            DataErrorKind::Unavailable => 503,
        };
        let title = match err.kind {
            DataErrorKind::NotFound => "Not found",
            DataErrorKind::Invalid => "Invalid request",
            DataErrorKind::Conflict => "Conflict",
            DataErrorKind::LimitExceeded => "Request limit reached",
            DataErrorKind::Forbidden => "Module not permitted",
            DataErrorKind::Unavailable => "Data unavailable",
        };
        Error::new(status, title, err.message)
    }
}
