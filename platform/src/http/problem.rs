//! The one place errors become HTTP responses: RFC 9457 `application/problem+json`.
//!
//! Every problem has a stable `type` URI (`https://eerp.dev/problems/<slug>`, listed in
//! `docs/problems.md`), a `title` that does not vary, a `detail` that says what was wrong
//! and what to do, and the `request_id` to quote to an operator. 5xx details never carry
//! internals beyond the outcome class.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use serde_json::{Map, Value, json};

use eerp_abi::envelope::Response;
use eerp_tenancy::AuthError;

use crate::runtime::{InvokeError, Outcome};
use crate::tenants::gate::Rejected;

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://eerp.dev/problems/";

/// A problem about to be sent.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: String,
    detail: String,
    extras: Map<String, Value>,
    retry_after: Option<u32>,
    allow: Option<String>,
    outcome: Option<Outcome>,
}

impl Problem {
    /// A problem with a status, a `type` slug, a title and a detail.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title: title.to_string(),
            detail: detail.into(),
            extras: Map::new(),
            retry_after: None,
            allow: None,
            outcome: None,
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extras.insert(key.to_string(), value);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The module outcome this problem reports, if it came from a module call.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn outcome_of(mut self, outcome: Outcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// The response, tagged with `request_id`.
    pub fn respond(self, request_id: &str) -> HttpResponse {
        let mut body = json!({
            "type": format!("{PROBLEM_BASE}{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "request_id": request_id,
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extras);
        }
        let mut response = HttpResponse::build(self.status);
        response.content_type("application/problem+json");
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(allow) = self.allow {
            response.insert_header((header::ALLOW, allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.body(body.to_string())
    }
}

/// Everything that can go wrong serving an API request.
#[derive(Debug)]
pub enum ApiError {
    /// The token is missing or invalid.
    Auth(AuthError),
    /// The token's tenant is unknown or deleted.
    UnknownTenant,
    /// The tenant is suspended.
    Suspended,
    /// The tenant is still being provisioned.
    Provisioning,
    /// The tenant is over its request rate or concurrency limit.
    Rejected(Rejected),
    /// No module of that name, or not enabled for the tenant.
    UnknownModule(String),
    /// No route at that path.
    NoRoute(String),
    /// The path exists with other methods.
    MethodNotAllowed(Vec<String>),
    /// The caller lacks the route's permission.
    Forbidden(String),
    /// The body is larger than the tenant allows.
    TooLarge(usize),
    /// The body did not arrive in time.
    SlowBody(std::time::Duration),
    /// The `Idempotency-Key` was used for another request.
    IdempotencyMismatch,
    /// The first request with this `Idempotency-Key` is still running.
    IdempotencyInFlight,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// The body or query is malformed.
    BadRequest(String),
    /// The module call failed.
    Invoke(InvokeError),
    /// The database failed outside a module call.
    Db(String),
    /// The module answered with a 4xx/5xx status.
    Module(Response),
}

impl ApiError {
    /// The problem to send.
    pub fn problem(&self) -> Problem {
        use StatusCode as S;
        match self {
            ApiError::Auth(e) => Problem::new(S::UNAUTHORIZED, "unauthenticated", "Authentication required", e.to_string()),
            ApiError::UnknownTenant => Problem::new(
                S::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                "the token's tenant does not exist, was deleted, or was created after the token was issued; get a new token",
            ),
            ApiError::Suspended => Problem::new(
                S::FORBIDDEN,
                "tenant-suspended",
                "Tenant suspended",
                "this tenant is suspended; its data is kept, contact the operator to resume service",
            ),
            ApiError::Provisioning => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "tenant-provisioning",
                "Tenant not ready",
                "this tenant is still being set up; retry shortly, or ask the operator to re-run its creation",
            )
            .retry_after(5),
            ApiError::Rejected(Rejected::Rate { retry_after }) => Problem::new(
                S::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                "this tenant is over its request rate; retry after the time in Retry-After",
            )
            .retry_after(retry_after.as_secs_f64().ceil().max(1.0) as u32)
            .outcome_of(Outcome::RateLimited),
            ApiError::Rejected(Rejected::Concurrency { limit }) => Problem::new(
                S::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("this tenant already has {limit} module calls running, its limit; retry shortly"),
            )
            .retry_after(1)
            .outcome_of(Outcome::RateLimited),
            ApiError::UnknownModule(name) => Problem::new(
                S::NOT_FOUND,
                "unknown-module",
                "Unknown module",
                format!("no module `{name}` is enabled for this tenant"),
            ),
            ApiError::NoRoute(path) => Problem::new(S::NOT_FOUND, "not-found", "Not found", format!("no route matches `{path}`")),
            ApiError::MethodNotAllowed(allowed) => {
                let mut problem = Problem::new(
                    S::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    "Method not allowed",
                    format!("this path accepts {}", allowed.join(", ")),
                );
                problem.allow = Some(allowed.join(", "));
                problem
            }
            ApiError::Forbidden(permission) => Problem::new(
                S::FORBIDDEN,
                "forbidden",
                "Permission denied",
                format!("this route needs the `{permission}` permission, which none of the token's roles grant"),
            )
            .with("permission", json!(permission)),
            ApiError::TooLarge(limit) => Problem::new(
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
                format!("the body is larger than the {limit} bytes this request may have"),
            ),
            ApiError::SlowBody(limit) => Problem::new(
                S::REQUEST_TIMEOUT,
                "request-timeout",
                "Request body too slow",
                format!("the body did not arrive within {} s; send it in one go", limit.as_secs()),
            ),
            ApiError::IdempotencyMismatch => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was used for a different request (method, path, query or body); use a new key for a new request",
            ),
            ApiError::IdempotencyInFlight => Problem::new(
                S::CONFLICT,
                "idempotency-key-in-flight",
                "Request in progress",
                "a request with this Idempotency-Key is still running; retry after the time in Retry-After to get its answer",
            )
            .retry_after(1),
            ApiError::UnsupportedMediaType => Problem::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as JSON with `content-type: application/json`",
            ),
            ApiError::BadRequest(detail) => Problem::new(S::BAD_REQUEST, "bad-request", "Invalid request", detail.clone()),
            ApiError::Invoke(e) => invoke_problem(e),
            ApiError::Module(response) => module_problem(response),
            ApiError::Db(_) => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "db-error",
                "Database unavailable",
                "the database could not be reached; retry shortly",
            )
            .retry_after(1)
            .outcome_of(Outcome::DbError),
        }
    }
}

fn invoke_problem(e: &InvokeError) -> Problem {
    use StatusCode as S;
    let outcome = e.outcome();
    let problem = match e {
        InvokeError::OutOfFuel { .. } => Problem::new(
            S::INTERNAL_SERVER_ERROR,
            "out-of-fuel",
            "Module ran out of fuel",
            format!(
                "{e}; the request was rolled back. Ask the operator for a larger fuel limit or narrow the request"
            ),
        ),
        InvokeError::MemoryLimit { .. } => Problem::new(
            S::INTERNAL_SERVER_ERROR,
            "memory-limit",
            "Module exceeded its memory limit",
            format!("{e}; the request was rolled back"),
        ),
        InvokeError::Timeout(_) => Problem::new(
            S::GATEWAY_TIMEOUT,
            "timeout",
            "Module timed out",
            format!("{e}; the request was rolled back"),
        ),
        InvokeError::StackOverflow => Problem::new(
            S::INTERNAL_SERVER_ERROR,
            "stack-overflow",
            "Module stack overflow",
            format!("{e}; the request was rolled back"),
        ),
        InvokeError::Trap(_) => Problem::new(
            S::INTERNAL_SERVER_ERROR,
            "trap",
            "Module crashed",
            "the module trapped (a panic or invalid operation); the request was rolled back",
        ),
        InvokeError::BadAbi(_) => Problem::new(
            S::INTERNAL_SERVER_ERROR,
            "bad-abi",
            "Module broke the ABI",
            "the module returned something ABI v1 does not allow; the request was rolled back",
        ),
        InvokeError::EventLimit(_) => Problem::new(
            S::INTERNAL_SERVER_ERROR,
            "event-limit",
            "Event loop stopped",
            format!(
                "{e}; the request was rolled back. Check which subscriptions emit events again"
            ),
        ),
        InvokeError::PoolExhausted => Problem::new(
            S::SERVICE_UNAVAILABLE,
            "pool-exhausted",
            "Server busy",
            "no sandbox is free right now; retry shortly",
        )
        .retry_after(1),
        InvokeError::Db(_) => Problem::new(
            S::SERVICE_UNAVAILABLE,
            "db-error",
            "Database unavailable",
            "the database failed during the request, which was rolled back; retry shortly",
        )
        .retry_after(1),
    };
    problem.outcome_of(outcome)
}

/// The problem for a module's own 4xx/5xx response.
fn module_problem(response: &Response) -> Problem {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Only error bodies are parsed; success bodies pass through as raw JSON.
    let body: Value = serde_json::from_str(response.body.get()).unwrap_or(Value::Null);
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let title =
        text("title").unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_string());
    let detail = text("detail").unwrap_or_else(|| "the module refused the request".to_string());
    let mut problem =
        Problem::new(status, "module-error", &title, detail).outcome_of(Outcome::ModuleError);
    for key in ["code", "errors"] {
        if let Some(value) = body.get(key) {
            problem = problem.with(key, value.clone());
        }
    }
    problem
}
