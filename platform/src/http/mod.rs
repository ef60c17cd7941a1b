//! The HTTP surface: the whole route table is here.
//!
//! | path | what |
//! |---|---|
//! | `/api/v1/openapi.json` | the OpenAPI document of the caller's tenant ([`openapi`]) |
//! | `/api/v1/{module}/...` | module routes, dispatched into the sandbox ([`dispatch`]) |
//! | `/admin/v1/...` | the operators' admin API ([`admin`]) |
//! | `/livez` | liveness, no I/O ([`health`]) |
//! | anything else | 404 problem |
//!
//! The operations port ([`ops_routes`]) serves `/livez`, `/readyz` and `/metrics`: they
//! name tenants and touch the shared database, so they stay off the public listener.

pub mod admin;
pub mod auth;
pub mod body;
pub mod dispatch;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod problem;

use actix_web::{HttpRequest, HttpResponse, web};

/// Registers every route of the public listener.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/livez", web::get().to(health::livez))
        .configure(admin::routes)
        // A static prefix, and the module and its route split from the rest of the path
        // by hand ([`dispatch::module_path`]): a `{module}/{tail:.*}` pattern was matched
        // with a regular expression on every request (get by id 139–148 → 132–135 µs of
        // CPU, `docs/performance.md`).
        // `openapi.json` cannot be a module name.
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", web::get().to(openapi::document))
                .default_service(web::route().to(dispatch::module_route)),
        )
        .default_service(web::route().to(not_found));
}

/// Registers the routes of the operations listener (probes and Prometheus).
pub fn ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/livez", web::get().to(health::livez))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .default_service(web::route().to(not_found));
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    problem::ApiError::NoRoute(req.path().to_string())
        .problem()
        .respond(&dispatch::request_id(&req))
}

/// The request's media type, lower-case and without parameters (`application/json`).
pub(crate) fn media_type(req: &actix_web::HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}
