//! Request bodies, read within a size and a time limit before anything else sees them,
//! so neither a huge body nor one trickled in a byte at a time can tie up the server.

use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::web::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::problem::ApiError;

/// How long a client may take to send a whole body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the whole body, refusing more than `limit` bytes (announced or sent) without
/// buffering them, and a body not complete within [`BODY_TIMEOUT`].
///
/// # Errors
/// [`ApiError::TooLarge`], [`ApiError::SlowBody`], or [`ApiError::BadRequest`] when the
/// connection broke.
pub async fn read<S>(
    payload: &mut S,
    declared: Option<usize>,
    limit: usize,
) -> Result<BytesMut, ApiError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    read_within(payload, declared, limit, BODY_TIMEOUT).await
}

/// The time a body of up to `limit` bytes may take: [`BODY_TIMEOUT`], plus a second per
/// MiB above the first (a 32 MiB module upload gets 41 s).
pub fn timeout_for(limit: usize) -> Duration {
    BODY_TIMEOUT + Duration::from_secs((limit >> 20).saturating_sub(1) as u64)
}

/// [`read`], with `timeout` instead of [`BODY_TIMEOUT`].
///
/// # Errors
/// As [`read`].
pub async fn read_within<S>(
    payload: &mut S,
    declared: Option<usize>,
    limit: usize,
    timeout: Duration,
) -> Result<BytesMut, ApiError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    let reading = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, reading)
        .await
        .unwrap_or(Err(ApiError::SlowBody(timeout)))
}

/// The `Content-Length` the client announced, if any.
pub fn declared_length(req: &actix_web::HttpRequest) -> Option<usize> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_whether_announced_or_sent() {
        let chunks = || {
            futures_util::stream::iter(vec![
                Ok(Bytes::from_static(b"12345")),
                Ok(Bytes::from_static(b"678")),
            ])
        };
        assert!(matches!(
            read(&mut chunks(), Some(100), 10).await,
            Err(ApiError::TooLarge(10))
        ));
        assert!(matches!(
            read(&mut chunks(), None, 6).await,
            Err(ApiError::TooLarge(6))
        ));
        assert_eq!(
            &read(&mut chunks(), None, 8).await.unwrap()[..],
            b"12345678"
        );
    }

    #[tokio::test]
    async fn a_body_that_never_finishes_times_out() {
        let mut stalled = futures_util::stream::pending::<Result<Bytes, PayloadError>>();
        assert!(matches!(
            read_within(&mut stalled, None, 10, Duration::from_millis(10)).await,
            Err(ApiError::SlowBody(_))
        ));
    }
}
