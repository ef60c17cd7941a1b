//! `Idempotency-Key` on POST and PATCH module requests, per tenant, as payment APIs do it:
//!
//! - the first request with a key claims it (a row with no status yet) and runs;
//! - a success is recorded in the request's own transaction, so the key says "done" if
//!   and only if the writes committed; a module's 4xx (nothing written) is recorded too;
//! - the same key and the same request again replays the recorded answer
//!   (`Idempotent-Replayed: true`); another request under the key is 422; one while the
//!   first still runs is 409 with `Retry-After`;
//! - a failure of the platform (timeout, trap, database) records nothing: the claim is
//!   released, and the client may retry with the same key. Should the release itself
//!   fail (the database is down, the process died), the claim's lease runs out a little
//!   after the request's wall time, and the next request with the key takes it over; a
//!   request whose claim was taken over cannot record (its transaction rolls back);
//! - a key is scoped to its tenant, and the caller (`sub`) is part of what makes two
//!   requests the same, so one user never gets another's recorded answer;
//! - keys expire after [`KEY_LIFETIME`].

use std::time::Duration;

use crate::db::Pool;
use actix_web::HttpRequest;
use eerp_abi::envelope::Response;
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::db::DbSession;
use crate::tenants::TenantEntry;

/// How long a key is remembered.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Longest key accepted (UUIDs and ULIDs fit many times over).
const MAX_KEY_LEN: usize = 255;

/// What a request's key says to do.
pub enum Claimed {
    /// The key is new: run the request, then [`Claim::record`] its answer.
    Run(Claim),
    /// The key has an answer: send it again.
    Replay(Response),
}

/// A key this request holds while it runs. Dropped unrecorded (a platform failure, or the
/// request was abandoned), it is released for a retry.
pub struct Claim {
    pool: Pool,
    tenant_id: String,
    key: String,
    /// This request's claim, so a claim taken over after its lease ran out is not touched.
    claimed_by: String,
    recorded: bool,
}

/// The request's key, if it has one: POST and PATCH only.
///
/// # Errors
/// [`ApiError::BadRequest`] for a key that is empty, too long or not printable ASCII.
pub fn key_of(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let method = req.method();
    if method != actix_web::http::Method::POST && method != actix_web::http::Method::PATCH {
        return Ok(None);
    }
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadRequest(format!(
            "`Idempotency-Key` must be 1 to {MAX_KEY_LEN} printable ASCII characters, such as a UUID"
        )));
    }
    Ok(Some(key.to_string()))
}

/// What makes two requests "the same" under one key: caller, method, path, query and body.
pub fn fingerprint(req: &HttpRequest, subject: &str, body: &str) -> String {
    let mut hash = Sha256::new();
    for part in [
        subject,
        req.method().as_str(),
        req.path(),
        req.query_string(),
        body,
    ] {
        hash.update(part.len().to_le_bytes());
        hash.update(part.as_bytes());
    }
    format!("{:x}", hash.finalize())
}

/// Claims `key` for this request, or says what the key already holds.
///
/// # Errors
/// 422 for another request under the key, 409 while the first one runs, 503 when the
/// catalog cannot be reached.
pub async fn claim(
    pool: &Pool,
    tenant: &TenantEntry,
    key: String,
    fingerprint: &str,
    lease: Duration,
) -> Result<Claimed, ApiError> {
    let conn = pool
        .get()
        .await
        .map_err(|e| ApiError::Db(format!("idempotency keys: {e}")))?;
    // Made before the INSERT is sent: should this request be dropped while it is in
    // flight, the guard still releases what it may have claimed.
    let claim = Claim {
        pool: pool.clone(),
        tenant_id: tenant.id.clone(),
        key,
        claimed_by: uuid::Uuid::new_v4().to_string(),
        recorded: false,
    };
    let lifetime = KEY_LIFETIME.as_secs_f64();
    // A new key, or one that expired or whose claim's lease ran out, is taken; else the
    // key's current row is read.
    let claimed = conn
        .query_opt(
            "INSERT INTO eerp.idempotency_keys AS k
                 (tenant_id, key, fingerprint, claimed_by, lease_until, expires_at)
             VALUES ($1::text::uuid, $2, $3, $4::text::uuid, now() + make_interval(secs => $5),
                     now() + make_interval(secs => $6))
             ON CONFLICT (tenant_id, key) DO UPDATE
                 SET fingerprint = excluded.fingerprint, claimed_by = excluded.claimed_by,
                     lease_until = excluded.lease_until, status = NULL, body = NULL,
                     created_at = now(), expires_at = excluded.expires_at
                 WHERE k.expires_at < now()
                    OR (k.status IS NULL AND k.lease_until < now() AND k.fingerprint = excluded.fingerprint)
             RETURNING 1",
            &[
                &claim.tenant_id,
                &claim.key,
                &fingerprint,
                &claim.claimed_by,
                &lease.as_secs_f64(),
                &lifetime,
            ],
        )
        .await
        .map_err(|e| ApiError::Db(format!("claiming an idempotency key: {e}")))?;
    if claimed.is_some() {
        return Ok(Claimed::Run(claim));
    }
    // Another request's claim: nothing of this one's to release.
    let mut claim = claim;
    claim.recorded = true;
    let key = &claim.key;
    let row = conn
        .query_opt(
            "SELECT fingerprint, status, body FROM eerp.idempotency_keys
             WHERE tenant_id = $1::text::uuid AND key = $2",
            &[&tenant.id, key],
        )
        .await
        .map_err(|e| ApiError::Db(format!("reading an idempotency key: {e}")))?;
    // Released between the two statements: the client retries and claims it then.
    let Some(row) = row else {
        return Err(ApiError::IdempotencyInFlight);
    };
    if row.get::<_, &str>(0) != fingerprint {
        return Err(ApiError::IdempotencyMismatch);
    }
    let (Some(status), Some(body)) = (
        row.get::<_, Option<i16>>(1),
        row.get::<_, Option<String>>(2),
    ) else {
        return Err(ApiError::IdempotencyInFlight);
    };
    let body = serde_json::value::RawValue::from_string(body)
        .map_err(|e| ApiError::Db(format!("a recorded answer is not JSON: {e}")))?;
    Ok(Claimed::Replay(Response {
        status: u16::try_from(status).unwrap_or(500),
        body,
    }))
}

impl Claim {
    /// Records `response` in the request's transaction, so it commits with the writes;
    /// once the commit succeeded, [`Claim::committed`] says so.
    ///
    /// # Errors
    /// The statement failed; the request must roll back.
    pub async fn record_in(&self, db: &mut DbSession, response: &Response) -> Result<(), String> {
        let status = i16::try_from(response.status).unwrap_or(500);
        let body = response.body.get();
        let client = db.client(true).await?;
        let updated = client
            .execute(RECORD, &self.record_params(&status, &body))
            .await
            .map_err(|e| format!("recording the idempotency key: {e}"))?;
        if updated != 1 {
            // The lease ran out and another request took the key over: this one must not
            // commit a second execution.
            return Err(
                "this request's idempotency claim was taken over; retry to get the answer".into(),
            );
        }
        Ok(())
    }

    /// The transaction holding [`Claim::record_in`]'s record committed: keep the key.
    pub fn committed(mut self) {
        self.recorded = true;
    }

    /// Records `response` on its own (a refusal: nothing else was written).
    pub async fn record(mut self, response: &Response) {
        let status = i16::try_from(response.status).unwrap_or(500);
        let body = response.body.get();
        let recorded = match self.pool.get().await {
            Ok(conn) => conn
                .execute(RECORD, &self.record_params(&status, &body))
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match recorded {
            Ok(()) => self.recorded = true,
            Err(e) => {
                tracing::warn!(error = %e, "could not record an idempotency key; it is released")
            }
        }
    }
}

impl Claim {
    fn record_params<'a>(
        &'a self,
        status: &'a i16,
        body: &'a &'a str,
    ) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 5] {
        [&self.tenant_id, &self.key, &self.claimed_by, status, body]
    }
}

const RECORD: &str = "UPDATE eerp.idempotency_keys SET status = $4, body = $5
                      WHERE tenant_id = $1::text::uuid AND key = $2 AND claimed_by = $3::text::uuid";

impl Drop for Claim {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pool, tenant_id, key, claimed_by) = (
            self.pool.clone(),
            self.tenant_id.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.claimed_by),
        );
        drop(runtime.spawn(async move {
            let released = match pool.get().await {
                Ok(conn) => conn
                    .execute(
                        "DELETE FROM eerp.idempotency_keys
                         WHERE tenant_id = $1::text::uuid AND key = $2
                           AND claimed_by = $3::text::uuid AND status IS NULL",
                        &[&tenant_id, &key, &claimed_by],
                    )
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = released {
                tracing::warn!(error = %e, "could not release an idempotency key; its lease runs out instead");
            }
        }));
    }
}

/// Forgets expired keys, a batch at a time, every few minutes.
pub async fn expire_forever(pool: Pool) {
    loop {
        tokio::time::sleep(Duration::from_secs(300)).await;
        let Ok(conn) = pool.get().await else {
            continue;
        };
        let deleted = conn
            .execute(
                "DELETE FROM eerp.idempotency_keys WHERE ctid IN (
                     SELECT ctid FROM eerp.idempotency_keys WHERE expires_at < now() LIMIT 10000)",
                &[],
            )
            .await;
        if let Err(e) = deleted {
            tracing::warn!(error = %e, "could not forget expired idempotency keys");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint_of(req: &HttpRequest, body: &str) -> String {
        fingerprint(req, "ada", body)
    }

    #[test]
    fn the_fingerprint_tells_requests_apart_by_caller_method_path_query_and_body() {
        let req = |method, uri: &str| {
            actix_web::test::TestRequest::default()
                .method(method)
                .uri(uri)
                .to_http_request()
        };
        let post = actix_web::http::Method::POST;
        let patch = actix_web::http::Method::PATCH;
        let base = fingerprint_of(&req(post.clone(), "/api/v1/crm/contacts"), r#"{"a":1}"#);
        assert_eq!(
            base,
            fingerprint_of(&req(post.clone(), "/api/v1/crm/contacts"), r#"{"a":1}"#)
        );
        for other in [
            fingerprint_of(&req(post.clone(), "/api/v1/crm/contacts"), r#"{"a":2}"#),
            fingerprint_of(&req(patch, "/api/v1/crm/contacts"), r#"{"a":1}"#),
            fingerprint_of(&req(post.clone(), "/api/v1/crm/contacts?x=1"), r#"{"a":1}"#),
            fingerprint_of(&req(post, "/api/v1/crm/contacts/1"), r#"{"a":1}"#),
            fingerprint(
                &req(actix_web::http::Method::POST, "/api/v1/crm/contacts"),
                "grace",
                r#"{"a":1}"#,
            ),
        ] {
            assert_ne!(base, other);
        }
    }
}
