//! The HTTP surface: the whole route table is here.
//!
//! | path | what |
//! |---|---|
//! | `/api/v1/{module}/...` | module routes, dispatched into the sandbox ([`dispatch`]) |
//! | `/admin/v1/...` | the operators' admin API ([`admin`]) |
//! | `/livez`, `/readyz` | health ([`health`]) |
//! | `/metrics` | Prometheus text exposition ([`metrics`]) |
//! | anything else | 404 problem |

pub mod admin;
pub mod auth;
pub mod dispatch;
pub mod health;
pub mod metrics;
pub mod problem;

use actix_web::{HttpRequest, HttpResponse, web};

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/livez", web::get().to(health::livez))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .configure(admin::routes)
        .route("/api/v1/{module}", web::route().to(dispatch::module_route))
        .route(
            "/api/v1/{module}/{tail:.*}",
            web::route().to(dispatch::module_route),
        )
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
