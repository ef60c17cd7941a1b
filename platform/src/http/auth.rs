//! Bearer token -> verified identity. The tenant comes from here and nowhere else.

use actix_web::HttpRequest;
use actix_web::http::header;
use eerp_tenancy::{AuthError, Identity, Verifier};

/// Verifies the request's `Authorization: Bearer` token.
///
/// # Errors
/// [`AuthError`] when the header is missing or the token fails verification.
pub fn authenticate(req: &HttpRequest, verifier: &Verifier) -> Result<Identity, AuthError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(AuthError::MissingToken)?;
    verifier.verify(token)
}
