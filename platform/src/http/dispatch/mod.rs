//! Module routes: authenticate, find the tenant and route, check the permission, admit
//! the request under the tenant's rate and concurrency limits, read the body within the
//! tenant's limit, claim its `Idempotency-Key` (or replay the answer the key holds), run
//! the module in the sandbox within the tenant's share of the cores and connections,
//! commit or roll back, answer, and log one line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use eerp_abi::envelope::{Principal, Request, Response};
use eerp_tenancy::Identity;
use eerp_tenancy::id::schema_name;
use serde_json::value::RawValue;

mod events;
mod idempotency;

pub use idempotency::expire_forever as expire_idempotency_keys;

use idempotency::{Claim, Claimed};

use super::auth::authenticate;
use super::metrics::RouteLabel;
use super::problem::ApiError;
use crate::data_api::DataUsage;
use crate::data_api::{ReadGrant, RequestScope};
use crate::db::{Connections, DbSession, WorkerLanes};
use crate::metrics::Usage;
use crate::runtime::{
    Invocation, InvokeError, InvokeReport, LoadedModule, Outcome, RouteMatch, invoke,
};
use crate::state::AppState;
use crate::tenants::{Status, TenantEntry};

/// The request id: the caller's `x-request-id` when it is short and plain, else a new one.
pub fn request_id(req: &HttpRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The module and the module's own path (`contacts/{id}`) of a request under `/api/v1`:
/// `None` when the path names no module (`/api/v1`, `/api/v1/`, `/api/v1//x`).
pub fn module_path(req: &HttpRequest) -> Option<(&str, &str)> {
    let rest = req.match_info().unprocessed().strip_prefix('/')?;
    let (module, tail) = rest.split_once('/').unwrap_or((rest, ""));
    (!module.is_empty()).then_some((module, tail))
}

/// What the log line of a request reports.
#[derive(Default)]
pub(super) struct Trace {
    tenant: Option<String>,
    route: Option<String>,
    outcome: Option<Outcome>,
    fuel: u64,
    peak_memory: usize,
    instantiate: std::time::Duration,
    cpu: std::time::Duration,
    /// What the route's own module call used, once it was called (the totals above add
    /// event handlers').
    route_call: Option<Usage>,
    usage: DataUsage,
    /// What went wrong inside the module call, for operators (never sent to clients).
    error: Option<String>,
    /// The answer is a recorded one, replayed for its `Idempotency-Key`.
    replayed: bool,
}

impl Trace {
    /// Adds one module call (the route's or an event handler's) to the totals.
    pub(super) fn add(&mut self, report: &InvokeReport) {
        self.fuel += report.fuel_used;
        self.peak_memory = self.peak_memory.max(report.peak_memory_bytes);
        self.instantiate += report.instantiate_time;
        self.cpu += report.cpu_time;
        self.usage = report.usage.clone();
    }
}

/// Handles every `/api/v1/{module}/...` request.
pub async fn module_route(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id(&req);
    let Some((module, tail)) = module_path(&req) else {
        return ApiError::NoRoute(req.path().to_string())
            .problem()
            .respond(&request_id);
    };
    let mut trace = Trace::default();
    let served = serve(&req, module, tail, payload, &state, &request_id, &mut trace).await;
    let response = match served {
        Ok(response) => response,
        Err(err) => {
            let problem = err.problem();
            if trace.outcome.is_none() {
                trace.outcome = problem.outcome();
            }
            problem.respond(&request_id)
        }
    };
    record_metrics(&req, &state, module, &trace);
    tracing::info!(
        target: "eerp::request",
        request_id,
        method = %req.method(),
        module,
        route = trace.route.as_deref().unwrap_or(""),
        tenant = trace.tenant.as_deref().unwrap_or(""),
        status = response.status().as_u16(),
        outcome = trace.outcome.map(Outcome::as_str).unwrap_or(""),
        fuel = trace.fuel,
        peak_memory_bytes = trace.peak_memory,
        instantiate_us = trace.instantiate.as_micros() as u64,
        cpu_us = trace.cpu.as_micros() as u64,
        data_calls = trace.usage.calls,
        data_ms = trace.usage.host_time.as_secs_f64() * 1e3,
        latency_ms = started.elapsed().as_secs_f64() * 1e3,
        error = trace.error.as_deref().unwrap_or(""),
        "request"
    );
    let mut response = response;
    if trace.replayed {
        response.headers_mut().insert(
            header::HeaderName::from_static("idempotent-replayed"),
            header::HeaderValue::from_static("true"),
        );
    }
    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    response
}

/// Counts the request for its module and tenant, and labels it with its route template.
fn record_metrics(req: &HttpRequest, state: &AppState, module: &str, trace: &Trace) {
    // Only loaded modules become label values: the path segment is caller input.
    let loaded = state.registry.has(module);
    let label = match &trace.route {
        Some(route) if loaded => format!("/api/v1/{module}{route}"),
        _ => "/api/v1/{module}/unmatched".into(),
    };
    req.extensions_mut().insert(RouteLabel(label));
    if !loaded {
        return;
    }
    let metrics = &state.metrics;
    if let Some(outcome) = trace.outcome {
        metrics.record_outcome(module, trace.tenant.as_deref(), outcome);
    }
    // The route's own call: event handlers were recorded under their modules.
    let Some(usage) = &trace.route_call else {
        return;
    };
    metrics.record_usage(module, usage);
    for (op, duration) in &trace.usage.statements {
        metrics
            .query_duration
            .with_label_values(&[op])
            .observe(duration.as_secs_f64());
    }
}

async fn serve(
    req: &HttpRequest,
    module_name: &str,
    tail: &str,
    payload: web::Payload,
    state: &AppState,
    request_id: &str,
    trace: &mut Trace,
) -> Result<HttpResponse, ApiError> {
    let identity = authenticate(req, &state.auth)
        .await
        .map_err(ApiError::Auth)?;
    trace.tenant = Some(identity.tenant.to_string());
    let tenant = check_tenant(state, &identity).await?;
    let module = served_module(state, &tenant, module_name).await?;

    let method = req.method().as_str();
    let (handler_id, route, params) = match module.match_route(method, tail) {
        RouteMatch::Found {
            handler_id,
            route,
            params,
        } => (handler_id, route, params),
        RouteMatch::MethodNotAllowed { allowed } => {
            return Err(ApiError::MethodNotAllowed(allowed));
        }
        RouteMatch::NotFound => return Err(ApiError::NoRoute(req.path().to_string())),
    };
    trace.route = Some(route.path.clone());
    if !tenant.roles.allow(&identity.roles, &route.permission) {
        return Err(ApiError::Forbidden(route.permission.clone()));
    }
    let gate = state.directory.gate(&tenant);
    let permit = admit(state, &gate)?;
    let limits = tenant.limits.clone();
    let body = read_body(req, payload, limits.max_request_bytes).await?;
    let lanes = req
        .app_data::<WorkerLanes>()
        .copied()
        .unwrap_or(WorkerLanes::of(0, 1, 1));
    let pools = state.request_pools.clone();
    let claim = match idempotency::key_of(req)? {
        None => None,
        Some(key) => {
            let fingerprint = idempotency::fingerprint(req, &identity.subject, body.get());
            // Held past the request's wall time and its commit: then another request may
            // take the key over, should this one's release never happen.
            let lease = limits.wall_time + 2 * crate::db::FINISH_TIMEOUT + Duration::from_secs(5);
            match idempotency::claim(&state.pool, &tenant, key, &fingerprint, lease).await? {
                Claimed::Run(claim) => Some(claim),
                Claimed::Replay(response) => {
                    trace.replayed = true;
                    if response.status >= 400 {
                        return Err(ApiError::Module(response));
                    }
                    return Ok(success_response(&response));
                }
            }
        }
    };
    let query = parse_query(req.query_string())?;
    let principal = Principal {
        subject: identity.subject.clone(),
        roles: identity.roles.clone(),
    };
    let envelope = Request {
        method: method.to_string(),
        route: route.path.clone(),
        params,
        query,
        body,
        principal,
        request_id: request_id.to_string(),
    };
    let encoded = serde_json::to_vec(&envelope)
        .map_err(|e| ApiError::BadRequest(format!("the request could not be encoded: {e}")))?;
    if encoded.len() > eerp_abi::envelope::MAX_REQUEST_BYTES {
        return Err(ApiError::TooLarge(eerp_abi::envelope::MAX_REQUEST_BYTES));
    }
    let call = Call {
        state,
        tenant: &tenant,
        cpu: gate.cpu(),
        principal: &envelope.principal,
        request_id,
        deadline: Instant::now() + limits.wall_time,
    };
    let connections = Connections {
        pools,
        lanes,
        affinity: crate::db::affinity(&tenant.id),
        share: gate.connection_share(),
        wait: state.pool_wait,
    };
    let mut db = DbSession::new(connections);
    // Given back when the request's connection is idle, not when a dropped request's
    // future is: a client that hangs up cannot free its slot while its SQL still runs.
    db.hold(permit);
    let scope = call
        .scope(&module, limits, db, DataUsage::default())
        .await?;
    run_module(&call, &module, handler_id, encoded, scope, claim, trace).await
}

/// What every module call of one request shares: the tenant, the caller and the
/// request's deadline. The route's handler and every event handler it sets off run as
/// calls of this.
pub(super) struct Call<'a> {
    pub state: &'a AppState,
    pub tenant: &'a TenantEntry,
    /// The tenant's share of the cores ([`crate::tenants::gate::Gate::cpu`]).
    pub cpu: crate::runtime::cpu::CpuShare,
    pub principal: &'a Principal,
    pub request_id: &'a str,
    pub deadline: Instant,
}

impl Call<'_> {
    /// Runs one module call of this request in a fresh Store and adds it to the totals.
    pub async fn invoke(
        &self,
        module: &LoadedModule,
        handler_id: i32,
        envelope: Vec<u8>,
        scope: RequestScope,
        trace: &mut Trace,
    ) -> InvokeReport {
        let invocation = Invocation {
            handler_id,
            envelope,
            scope,
            request_id: self.request_id.to_string(),
            cpu: self.cpu.clone(),
        };
        let report = invoke(&self.state.engine, module, invocation).await;
        trace.add(&report);
        report
    }

    /// The data scope of `module` for this tenant: its schema, and its read grants
    /// resolved against the versions the tenant is served.
    pub async fn scope(
        &self,
        module: &LoadedModule,
        limits: eerp_tenancy::Limits,
        db: DbSession,
        usage: DataUsage,
    ) -> Result<RequestScope, ApiError> {
        let mut grants = Vec::with_capacity(module.grants.len());
        for (granted, table) in &module.grants {
            // A granted module the tenant is not served reads nothing; the module hears
            // why from the data API (`forbidden`), not its caller from a 404.
            let target = match served_module(self.state, self.tenant, granted.as_str()).await {
                Ok(loaded) => Some((
                    schema_name(&self.tenant.slug, granted),
                    loaded.model.clone(),
                )),
                Err(ApiError::UnknownModule(_)) => None,
                Err(e) => return Err(e),
            };
            grants.push(ReadGrant {
                module: granted.to_string(),
                table: table.clone(),
                target,
            });
        }
        Ok(RequestScope {
            schema: schema_name(&self.tenant.slug, &module.name),
            tenant: self.tenant.slug.clone(),
            module: module.name.clone(),
            model: module.model.clone(),
            grants,
            limits,
            db,
            usage,
        })
    }
}

/// How much earlier than its tenant's creation a token may say it was issued: the clocks
/// of the identity provider and the database differ a little.
const TOKEN_CLOCK_SKEW_SECS: u64 = 5;

/// The token's tenant, if it may be served: it exists, is active, and is the tenant the
/// token was issued for (not an earlier one of the same slug).
pub(super) async fn check_tenant(
    state: &AppState,
    identity: &Identity,
) -> Result<Arc<TenantEntry>, ApiError> {
    let tenant = state
        .directory
        .get(&identity.tenant)
        .await
        .map_err(|e| ApiError::Db(crate::error_chain(&e)))?
        .ok_or(ApiError::UnknownTenant)?;
    if identity.issued_at.saturating_add(TOKEN_CLOCK_SKEW_SECS) < tenant.created_at {
        // Issued for an earlier tenant of this slug, since deleted and purged.
        return Err(ApiError::UnknownTenant);
    }
    match tenant.status {
        Status::Active => {}
        Status::Suspended => return Err(ApiError::Suspended),
        Status::Provisioning => return Err(ApiError::Provisioning),
        Status::Deleted => return Err(ApiError::UnknownTenant),
    }
    Ok(tenant)
}

/// Admits a request through the tenant's `gate`, counting a refusal by its reason.
pub(super) fn admit(
    state: &AppState,
    gate: &crate::tenants::gate::Gate,
) -> Result<crate::tenants::gate::Admitted, ApiError> {
    gate.admit().map_err(|rejected| {
        state
            .metrics
            .rate_limited
            .with_label_values(&[rejected.reason()])
            .inc();
        ApiError::Rejected(rejected)
    })
}

/// The version of `module` the tenant is served: loaded from the module store if this
/// replica has not loaded it yet (a notification still on its way).
pub(super) async fn served_module(
    state: &AppState,
    tenant: &TenantEntry,
    module: &str,
) -> Result<Arc<LoadedModule>, ApiError> {
    let unknown = || ApiError::UnknownModule(module.to_string());
    let version = tenant.modules.get(module).ok_or_else(unknown)?;
    if let Some(loaded) = state.registry.get(module, version) {
        return Ok(loaded);
    }
    let loaded = state
        .module_store()
        .load(module, version)
        .await
        .map_err(|e| ApiError::Db(crate::error_chain(&e)))?
        .ok_or_else(unknown)?;
    state.metrics.register_modules(&[module.to_string()]);
    Ok(loaded)
}

async fn run_module(
    call: &Call<'_>,
    module: &LoadedModule,
    handler_id: i32,
    envelope: Vec<u8>,
    scope: RequestScope,
    claim: Option<Claim>,
    trace: &mut Trace,
) -> Result<HttpResponse, ApiError> {
    let report = call
        .invoke(module, handler_id, envelope, scope, trace)
        .await;
    trace.route_call = Some(Usage::of(&report));
    let (response, db) = match settle(report.result, report.db).await {
        Ok(done) => done,
        Err((db, err)) => return Err(fail(db, err, trace).await),
    };
    if response.status >= 400 {
        // Rolled back: the module refused, so its events never happened either.
        let _ = db.finish(false).await;
        if trace.usage.capped {
            // The module's answer is passed on; operators see the cap was the cause.
            trace.outcome = Some(Outcome::DataLimit);
        }
        // A refusal is the answer to this request; a 5xx may not be, so it can be retried.
        if let Some(claim) = claim.filter(|_| response.status < 500) {
            claim.record(&response).await;
        }
        return Err(ApiError::Module(response));
    }
    let mut db = match events::deliver(call, module, report.events, db, report.usage, trace).await {
        Ok(db) => db,
        Err((db, err)) => return Err(fail(db, err, trace).await),
    };
    if let Some(claim) = &claim
        && let Err(e) = claim.record_in(&mut db, &response).await
    {
        return Err(fail(db, ApiError::Invoke(InvokeError::Db(e)), trace).await);
    }
    if let Err(e) = db.finish(true).await {
        trace.error = Some(e.clone());
        return Err(ApiError::Invoke(InvokeError::Db(e)));
    }
    if let Some(claim) = claim {
        claim.committed();
    }
    trace.outcome = Some(Outcome::Ok);
    Ok(success_response(&response))
}

/// The module's response, if its call and its data calls ended cleanly; otherwise why
/// not. A timed-out statement is cancelled on the server first.
pub(super) async fn settle(
    result: Result<Response, InvokeError>,
    mut db: DbSession,
) -> Result<(Response, DbSession), (DbSession, ApiError)> {
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            if matches!(err, InvokeError::Timeout(_)) {
                db.cancel_running().await;
            }
            return Err((db, ApiError::Invoke(err)));
        }
    };
    if let Some(failure) = db.failure().map(str::to_string) {
        return Err((db, ApiError::Invoke(InvokeError::Db(failure))));
    }
    if response.status < 400 && db.is_aborted() {
        let err = InvokeError::BadAbi(
            "the module answered success after a failed data call; nothing was saved".into(),
        );
        return Err((db, ApiError::Invoke(err)));
    }
    Ok((response, db))
}

/// Rolls back everything the request wrote and records why it failed.
async fn fail(db: DbSession, err: ApiError, trace: &mut Trace) -> ApiError {
    // A rollback that fails closes the connection; nothing was committed either way.
    let _ = db.finish(false).await;
    if let ApiError::Invoke(e) = &err {
        trace.error = Some(e.to_string());
        trace.outcome = Some(e.outcome());
    }
    err
}

fn success_response(response: &Response) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(response.status)
        .unwrap_or(actix_web::http::StatusCode::OK);
    if status == actix_web::http::StatusCode::NO_CONTENT
        || eerp_abi::envelope::is_null(&response.body)
    {
        return HttpResponse::build(status).finish();
    }
    HttpResponse::build(status)
        .content_type("application/json")
        .body(response.body.get().to_string())
}

/// Reads the body within the tenant's size limit and the body timeout.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Box<RawValue>, ApiError> {
    let body = super::body::read(&mut payload, super::body::declared_length(req), limit).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(eerp_abi::envelope::null());
    }
    let json = super::media_type(req)
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"));
    if !json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice::<Box<RawValue>>(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

fn parse_query(query: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::BadRequest(format!("the query string is malformed: {e}")))?;
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        if map.insert(key.clone(), value).is_some() {
            return Err(ApiError::BadRequest(format!(
                "query parameter `{key}` is given twice; give it once"
            )));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_query_parameters_are_refused() {
        assert!(parse_query("a=1&a=2").is_err());
        let map = parse_query("status=lead&q=ada%20l").unwrap();
        assert_eq!(map.get("q").map(String::as_str), Some("ada l"));
    }
}
