//! Bearer token -> verified identity. The tenant comes from here and nowhere else.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header;
use eerp_tenancy::identity::JwksFetcher;
use eerp_tenancy::{AuthError, Authenticator, Identity, Operator};

/// The bearer token of the request.
///
/// # Errors
/// [`AuthError::MissingToken`] when there is no `Authorization: Bearer` header.
pub fn bearer(req: &HttpRequest) -> Result<&str, AuthError> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(AuthError::MissingToken)
}

/// Verifies the request's tenant token.
///
/// # Errors
/// [`AuthError`] when the header is missing or the token fails verification.
pub async fn authenticate(req: &HttpRequest, auth: &Authenticator) -> Result<Identity, AuthError> {
    auth.verify(bearer(req)?).await
}

/// Verifies the request's operator token.
///
/// # Errors
/// [`AuthError`] when the header is missing or the token is not an operator token.
pub async fn authenticate_operator(
    req: &HttpRequest,
    auth: &Authenticator,
) -> Result<Operator, AuthError> {
    auth.verify_operator(bearer(req)?).await
}

/// Fetches JWKS documents over HTTP(S) with short timeouts.
pub struct HttpJwks {
    client: reqwest::Client,
}

impl HttpJwks {
    /// A fetcher with a 5 s timeout.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self { client })
    }
}

impl JwksFetcher for HttpJwks {
    fn fetch<'a>(
        &'a self,
        url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        Box::pin(async move {
            let response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            Ok(body.to_vec())
        })
    }
}
