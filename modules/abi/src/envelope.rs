//! The request the host hands to `eerp_handle` and the response the module returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Largest request envelope the host will ever write into a module (1 MiB). Tenants may
/// set a smaller body cap; the envelope adds params, query and principal to the body.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Largest response any module may return (1 MiB); tenants may set a smaller cap.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// One HTTP request, as a module sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// HTTP method, upper case (`GET`, `POST`, ...).
    pub method: String,
    /// The route template that matched, e.g. `/contacts/{id}`.
    pub route: String,
    /// Values of the `{name}` segments of the route template.
    pub params: BTreeMap<String, String>,
    /// Query string parameters. A name given twice is rejected by the host.
    pub query: BTreeMap<String, String>,
    /// The JSON body, or `null` when the request had none. Kept as raw JSON text so
    /// neither side builds a tree it does not need.
    pub body: Box<RawValue>,
    /// Who is calling. The tenant is deliberately absent: the host alone knows it.
    pub principal: Principal,
    /// The request id the host logs and returns in `x-request-id`.
    pub request_id: String,
}

/// The verified caller of a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// The token's `sub` claim.
    pub subject: String,
    /// The roles the token carries.
    pub roles: Vec<String>,
}

/// What a module answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// HTTP status, 200..=599. 2xx and 3xx commit the request's writes; 4xx and 5xx roll
    /// them back.
    pub status: u16,
    /// The JSON body. For an error status, an object with `title`, `detail` and optionally
    /// `code` and `errors`, which the host turns into `application/problem+json`.
    #[serde(default = "null")]
    pub body: Box<RawValue>,
}

/// JSON `null` as a raw value.
pub fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_string()).unwrap_or_else(|_| unreachable!("`null` is JSON"))
}

/// True when `raw` is JSON `null`.
pub fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

/// The body a module returns with a 4xx/5xx status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// A short summary that does not change between occurrences.
    pub title: String,
    /// What went wrong this time and what to do about it.
    pub detail: String,
    /// A stable machine-readable code chosen by the module, e.g. `email_taken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Per-field problems, for validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FieldError {
    /// The field's name in the request body or query.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}
