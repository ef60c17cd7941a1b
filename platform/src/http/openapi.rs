//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the caller's tenant, covering
//! the module versions it is served. Authenticated like a module route and counted
//! against the tenant's request rate; no permission is needed to read it.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::authenticate;
use super::dispatch::{self, check_tenant, served_module};
use super::problem::ApiError;
use crate::state::AppState;

/// Answers the tenant's document.
pub async fn document(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let request_id = dispatch::request_id(&req);
    let mut response = match build(&req, &state).await {
        Ok(document) => HttpResponse::Ok()
            .content_type("application/json")
            .body(document.to_string()),
        Err(err) => err.problem().respond(&request_id),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    response
}

async fn build(req: &HttpRequest, state: &AppState) -> Result<serde_json::Value, ApiError> {
    let identity = authenticate(req, &state.auth)
        .await
        .map_err(ApiError::Auth)?;
    let tenant = check_tenant(state, &identity).await?;
    let _permit = dispatch::admit(state, &state.directory.gate(&tenant))?;
    let mut modules = Vec::with_capacity(tenant.modules.len());
    for name in tenant.modules.keys() {
        modules.push(served_module(state, &tenant, name).await?);
    }
    let apis: Vec<_> = modules.iter().map(|m| &m.api).collect();
    Ok(crate::openapi::document(
        tenant.slug.as_str(),
        env!("CARGO_PKG_VERSION"),
        &apis,
    ))
}
