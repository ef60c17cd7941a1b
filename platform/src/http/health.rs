//! Liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// `/livez`: the process answers. No I/O, so a slow database never restarts the pod.
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Whether the database answers `SELECT 1` within 2 s: `/readyz` and `eerp_ready`.
///
/// # Errors
/// What failed, for the readiness answer.
pub async fn probe_database(pool: &crate::db::Pool) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(2), async {
        let conn = pool.get().await.map_err(|e| e.to_string())?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    })
    .await
    .unwrap_or_else(|_| Err("timed out after 2 s".into()))
}

/// `/readyz`: the database answers within 2 s and modules are loaded.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = probe_database(&state.pool).await;
    if let Err(e) = &database {
        // The error text (host names, users) is for operators' logs, not for the probe.
        tracing::warn!(error = %e, "readiness: the database did not answer");
    }
    let modules = state.registry.names();
    let ready = database.is_ok() && !modules.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": if database.is_ok() { "ok" } else { "unreachable" },
        "modules": modules,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
