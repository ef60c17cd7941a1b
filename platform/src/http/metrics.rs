//! `/metrics` and the middleware that counts every HTTP request.

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};

use super::health::probe_database;
use crate::metrics::{Metrics, status_class};
use crate::state::AppState;

/// The route template of a module route (`/api/v1/crm/contacts/{id}`), set by dispatch
/// so the HTTP families are labelled by template, never by raw path.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub String);

/// Counts the request and observes its latency under its route template.
///
/// # Errors
/// Whatever the wrapped service returns.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = method_label(req.method().as_str());
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = route_label(&response);
        let class = status_class(response.status().as_u16());
        let labels = [route.as_str(), method, class];
        metrics.http_requests.with_label_values(&labels).inc();
        metrics
            .http_duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// The method as a label: any method a client invents would otherwise be a new series.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

fn route_label<B>(response: &ServiceResponse<B>) -> String {
    let request = response.request();
    if let Some(label) = request.extensions().get::<RouteLabel>() {
        return label.0.clone();
    }
    // Module paths are labelled by dispatch, matched or not.
    request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into())
}

/// `/metrics`: refreshes the values that are cheap to read at scrape time, then renders
/// every family. What needs the database is refreshed in the background
/// ([`refresh_catalog_forever`]), so scraping never takes a pooled connection.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    refresh(&state);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

fn refresh(state: &AppState) {
    let m: &Metrics = &state.metrics;
    // The replica's connections: every request lane and the background pool.
    let (mut max, mut open, mut idle, mut waiting) = (0, 0, 0, 0);
    for pool in state.request_pools.iter().chain([&state.pool]) {
        let status = pool.status();
        max += status.max_size;
        open += status.size;
        idle += status.available;
        waiting += status.waiting;
    }
    let connections = [
        ("max", max),
        ("open", open),
        ("idle", idle),
        ("in_use", open.saturating_sub(idle)),
    ];
    for (state, count) in connections {
        m.db_pool.with_label_values(&[state]).set(count as i64);
    }
    m.db_pool_waiting.set(waiting as i64);
    if let Some(sandbox) = state.engine.pooling_allocator_metrics() {
        let in_use = [
            ("instances", sandbox.core_instances() as i64),
            ("memories", sandbox.memories() as i64),
            ("tables", sandbox.tables() as i64),
            ("stacks", sandbox.stacks() as i64),
        ];
        for (resource, value) in in_use {
            m.sandbox_pool.with_label_values(&[resource]).set(value);
        }
    }
    m.sandbox_slots.set(i64::from(state.pool_slots));
    m.catch_up_cache("token", state.auth.cache_counts());
    m.catch_up_cache("tenant", state.directory.cache_counts());
    m.catch_up_module_loads(&state.registry.load_counts());
}

/// Every `every`, counts tenants by status and probes the database for `eerp_ready`.
pub async fn refresh_catalog_forever(state: web::Data<AppState>, every: Duration) {
    loop {
        let database = probe_database(&state.pool).await;
        let counted = match &database {
            Ok(()) => tenants_by_status(&state).await,
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = &counted {
            state.metrics.scrape_errors.inc();
            tracing::warn!(error = %e, "metrics: cannot read the catalog");
        }
        let ready = database.is_ok() && !state.registry.names().is_empty();
        state.metrics.ready.set(i64::from(ready));
        tokio::time::sleep(every).await;
    }
}

async fn tenants_by_status(state: &AppState) -> Result<(), String> {
    let query = async {
        let conn = state.pool.get().await.map_err(|e| e.to_string())?;
        conn.query(
            "SELECT status, count(*) FROM eerp.tenants GROUP BY status",
            &[],
        )
        .await
        .map_err(|e| e.to_string())
    };
    let rows = tokio::time::timeout(Duration::from_secs(2), query)
        .await
        .map_err(|_| "timed out after 2 s".to_string())??;
    for status in ["provisioning", "active", "suspended", "deleted"] {
        let count = rows
            .iter()
            .find(|r| r.get::<_, &str>(0) == status)
            .map_or(0, |r| r.get::<_, i64>(1));
        state
            .metrics
            .tenants
            .with_label_values(&[status])
            .set(count);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("BREW"), "other");
    }
}
