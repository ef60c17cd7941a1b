//! The admin API under `/admin/v1`, for operators only.
//!
//! Every call needs an operator token (the issuer's operator audience and the `operator`
//! role); tenant tokens are refused. Every change is audited with the operator's `sub`.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /tenants?status=&after=&limit=` | list tenants |
//! | `POST /tenants` | create (idempotent; finishes an interrupted creation) |
//! | `GET /tenants/{slug}` | show, with effective limits |
//! | `POST /tenants/{slug}/suspend`, `/resume` | stop or restart service |
//! | `DELETE /tenants/{slug}` | soft delete |
//! | `POST /purge` | drop tenants deleted longer ago than the grace period |
//! | `PUT /tenants/{slug}/limits` | `{"plan"?, "limits"?}`: plan and overrides |
//! | `PUT`/`DELETE /tenants/{slug}/modules/{module}` | `{"version"?}`: enable, upgrade or roll back / disable a module |
//! | `PUT /tenants/{slug}/roles/{role}` | `{"grants": [...]}` |
//! | `GET /plans`, `PUT /plans/{name}` | plans (named limit presets) |
//! | `PUT /plans/{name}/modules` | `{"modules": [...]}`: what new tenants on the plan get |
//! | `POST /modules` | upload a module version (`application/wasm`) |
//! | `GET /modules` | every stored module version |
//! | `GET`/`DELETE /modules/{module}/versions/{version}` | show / retire a version |
//! | `POST /modules/{module}/migrate` | `{"workers"?, "version"?}`: upgrade every tenant |
//! | `GET /migration-runs/{id}` | a fleet migration's progress and failures |
//! | `GET /audit?tenant=&before=&limit=` | the audit log, newest first |

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use eerp_tenancy::LimitOverrides;
use eerp_tenancy::id::TenantSlug;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

mod modules;

use super::auth::authenticate_operator;
use super::body;
use super::dispatch::request_id;
use super::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::tenants::lifecycle::{self, Catalog, NewTenant, Transition};
use crate::tenants::{TenantError, fleet};

/// Registers the admin routes under `/admin/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/v1")
            .wrap(actix_web::middleware::from_fn(operator_first))
            .route("/tenants", web::get().to(list_tenants))
            .route("/tenants", web::post().to(create_tenant))
            .route("/tenants/{slug}", web::get().to(show_tenant))
            .route("/tenants/{slug}", web::delete().to(delete_tenant))
            .route("/tenants/{slug}/suspend", web::post().to(suspend_tenant))
            .route("/tenants/{slug}/resume", web::post().to(resume_tenant))
            .route("/tenants/{slug}/limits", web::put().to(set_limits))
            .route(
                "/tenants/{slug}/modules/{module}",
                web::put().to(enable_module),
            )
            .route(
                "/tenants/{slug}/modules/{module}",
                web::delete().to(disable_module),
            )
            .route("/tenants/{slug}/roles/{role}", web::put().to(set_role))
            .route("/purge", web::post().to(purge))
            .route("/plans", web::get().to(list_plans))
            .route("/plans/{name}", web::put().to(put_plan))
            .route(
                "/plans/{name}/modules",
                web::put().to(modules::set_plan_modules),
            )
            .route("/modules", web::post().to(modules::upload))
            .route("/modules", web::get().to(modules::list))
            .route(
                "/modules/{module}/versions/{version}",
                web::get().to(modules::show),
            )
            .route(
                "/modules/{module}/versions/{version}",
                web::delete().to(modules::retire),
            )
            .route(
                "/modules/{module}/migrate",
                web::post().to(modules::migrate_all),
            )
            .route("/migration-runs/{id}", web::get().to(migration_run))
            .route("/audit", web::get().to(audit))
            .default_service(web::route().to(unknown)),
    );
}

/// Largest admin request body other than a module upload.
const ADMIN_BODY_LIMIT: usize = 1 << 20;

/// Runs before every admin handler and its extractors: the operator is authenticated
/// first, so an anonymous client cannot make the server read, or wait for, a body; the
/// body is then read within its limit and the time that limit allows
/// ([`body::timeout_for`]).
async fn operator_first(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let id = request_id(req.request());
    if let Err(e) = authenticate_operator(req.request(), &state.auth).await {
        let response = ApiError::Auth(e).problem().respond(&id);
        return Ok(req.into_response(response).map_into_right_body());
    }
    let upload = req.method() == actix_web::http::Method::POST && req.path() == "/admin/v1/modules";
    let limit = if upload {
        state.max_module_bytes
    } else {
        ADMIN_BODY_LIMIT
    };
    let declared = body::declared_length(req.request());
    let mut payload = req.parts_mut().1.take();
    match body::read_within(&mut payload, declared, limit, body::timeout_for(limit)).await {
        Ok(bytes) => req.set_payload(Payload::from(bytes.freeze())),
        Err(e) => {
            let response = e.problem().respond(&id);
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Problems are boxed: they are large and only the error path carries them.
pub(super) type Answer = Result<(StatusCode, Value), Box<Problem>>;

/// Authenticates the operator, runs `action` with a [`Catalog`] for them, and answers
/// JSON or a problem.
pub(super) async fn operate<F>(req: &HttpRequest, state: &AppState, action: F) -> HttpResponse
where
    F: AsyncFnOnce(&Catalog<'_>) -> Answer,
{
    let id = request_id(req);
    let operator = match authenticate_operator(req, &state.auth).await {
        Ok(operator) => operator,
        Err(e) => return ApiError::Auth(e).problem().respond(&id),
    };
    let catalog = Catalog {
        pool: &state.pool,
        modules: state.module_store(),
        base: state.directory.base_limits(),
        ceilings: state.ceilings,
        actor: &operator.subject,
    };
    let answer = action(&catalog).await;
    if answer.is_ok() && req.method() != actix_web::http::Method::GET {
        // Other replicas hear of the change through NOTIFY; this one forgets it now, so
        // the operator's next request already sees it.
        match req.match_info().get("slug") {
            Some(slug) => state.directory.invalidate(slug).await,
            None => state.directory.invalidate_all(),
        }
    }
    tracing::info!(
        target: "eerp::admin",
        request_id = %id,
        operator = %operator.subject,
        method = %req.method(),
        path = req.path(),
        status = answer.as_ref().map_or_else(|p| p.status().as_u16(), |(s, _)| s.as_u16()),
        "admin request"
    );
    match answer {
        Ok((status, body)) => HttpResponse::build(status).json(body),
        Err(problem) => problem.respond(&id),
    }
}

pub(super) fn tenant_problem(e: TenantError) -> Box<Problem> {
    use StatusCode as S;
    let problem = match e {
        TenantError::NotFound(detail) => {
            Problem::new(S::NOT_FOUND, "not-found", "Not found", detail)
        }
        TenantError::Conflict(detail) => Problem::new(S::CONFLICT, "conflict", "Conflict", detail),
        TenantError::Invalid(detail) => {
            Problem::new(S::BAD_REQUEST, "bad-request", "Invalid request", detail)
        }
        TenantError::Migration(e) if e.is_transient() => {
            let detail = crate::error_chain(&e);
            tracing::error!(error = %detail, "admin action could not reach the database");
            ApiError::Db(detail).problem()
        }
        TenantError::Migration(e) => Problem::new(
            S::UNPROCESSABLE_ENTITY,
            "migration-failed",
            "Migration failed",
            format!("{e}; nothing of the failed step was applied, fix it and retry"),
        ),
        e @ (TenantError::Db(_)
        | TenantError::Pool(_)
        | TenantError::Catalog(_)
        | TenantError::Shared(_)) => {
            let detail = crate::error_chain(&e);
            tracing::error!(error = %detail, "admin action failed in the database");
            ApiError::Db(detail).problem()
        }
    };
    Box::new(problem)
}

pub(super) fn ok(value: Value) -> Answer {
    Ok((StatusCode::OK, value))
}

fn slug(req: &HttpRequest) -> Result<TenantSlug, Box<Problem>> {
    let text = req.match_info().get("slug").unwrap_or_default();
    TenantSlug::parse(text).map_err(|e| {
        Box::new(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no tenant `{text}`: {e}"),
        ))
    })
}

pub(super) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Box<Problem>> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(text).map_err(|e| {
        Box::new(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Invalid request",
            format!("the body is not what this endpoint takes: {e}"),
        ))
    })
}

pub(super) fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, Box<Problem>> {
    serde_urlencoded::from_str(req.query_string()).map_err(|e| {
        Box::new(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Invalid request",
            format!("the query string is not valid here: {e}"),
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

async fn list_tenants(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let q: ListQuery = query(&req)?;
        let limit = q.limit.unwrap_or(100).clamp(1, 1000);
        let tenants = lifecycle::list(cat, q.status.as_deref(), q.after.as_deref(), limit)
            .await
            .map_err(tenant_problem)?;
        let next = (tenants.len() as i64 == limit)
            .then(|| tenants.last().map(|t| t["slug"].clone()))
            .flatten();
        ok(json!({"tenants": tenants, "next_after": next}))
    })
    .await
}

async fn create_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let new: NewTenant = body(&bytes)?;
        let (tenant, created) = lifecycle::create(cat, new).await.map_err(tenant_problem)?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, tenant))
    })
    .await
}

async fn show_tenant(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    operate(&req, &state, async |cat| {
        ok(lifecycle::show(cat, &slug(&req)?)
            .await
            .map_err(tenant_problem)?)
    })
    .await
}

async fn transition(req: &HttpRequest, state: &AppState, action: Transition) -> HttpResponse {
    operate(req, state, async |cat| {
        let tenant = lifecycle::transition(cat, &slug(req)?, action)
            .await
            .map_err(tenant_problem)?;
        ok(tenant)
    })
    .await
}

async fn suspend_tenant(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    transition(&req, &state, Transition::Suspend).await
}

async fn resume_tenant(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    transition(&req, &state, Transition::Resume).await
}

async fn delete_tenant(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    transition(&req, &state, Transition::Delete).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsBody {
    plan: Option<String>,
    limits: Option<LimitOverrides>,
}

async fn set_limits(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let change: LimitsBody = body(&bytes)?;
        let tenant = lifecycle::set_limits(
            cat,
            &slug(&req)?,
            change.limits.as_ref(),
            change.plan.as_deref(),
        )
        .await
        .map_err(tenant_problem)?;
        ok(tenant)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleBody {
    version: Option<String>,
}

async fn set_module(
    req: &HttpRequest,
    state: &AppState,
    enabled: bool,
    bytes: &[u8],
) -> HttpResponse {
    operate(req, state, async |cat| {
        let module = req.match_info().get("module").unwrap_or_default();
        let change: ModuleBody = body(bytes)?;
        let tenant =
            lifecycle::set_module(cat, &slug(req)?, module, enabled, change.version.as_deref())
                .await
                .map_err(tenant_problem)?;
        ok(tenant)
    })
    .await
}

async fn enable_module(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> HttpResponse {
    set_module(&req, &state, true, &bytes).await
}

async fn disable_module(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    set_module(&req, &state, false, b"").await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    grants: Vec<String>,
}

async fn set_role(req: HttpRequest, state: web::Data<AppState>, bytes: web::Bytes) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let role = req.match_info().get("role").unwrap_or_default();
        let change: RoleBody = body(&bytes)?;
        let tenant = lifecycle::set_role(cat, &slug(&req)?, role, &change.grants)
            .await
            .map_err(tenant_problem)?;
        ok(tenant)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    grace_seconds: Option<u64>,
}

async fn purge(req: HttpRequest, state: web::Data<AppState>, bytes: web::Bytes) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let change: PurgeBody = body(&bytes)?;
        // Bounded so the interval stays within what PostgreSQL accepts (100 years).
        let grace = change.grace_seconds.map_or(state.purge_grace, |s| {
            Duration::from_secs(s.min(3_153_600_000))
        });
        let purged = lifecycle::purge(cat, grace).await.map_err(tenant_problem)?;
        ok(json!({"purged": purged, "grace_seconds": grace.as_secs()}))
    })
    .await
}

async fn list_plans(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    operate(&req, &state, async |cat| {
        ok(json!({"plans": lifecycle::plans(cat).await.map_err(tenant_problem)?}))
    })
    .await
}

async fn put_plan(req: HttpRequest, state: web::Data<AppState>, bytes: web::Bytes) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let name = req.match_info().get("name").unwrap_or_default();
        let limits: LimitOverrides = body(&bytes)?;
        ok(lifecycle::put_plan(cat, name, &limits)
            .await
            .map_err(tenant_problem)?)
    })
    .await
}

async fn migration_run(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let id = req.match_info().get("id").unwrap_or_default();
        ok(fleet::run_status(cat.pool, id)
            .await
            .map_err(tenant_problem)?)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    tenant: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

async fn audit(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let q: AuditQuery = query(&req)?;
        let limit = q.limit.unwrap_or(50).clamp(1, 1000);
        let entries = lifecycle::audit_log(cat, q.tenant.as_deref(), q.before, limit)
            .await
            .map_err(tenant_problem)?;
        ok(json!({"entries": entries}))
    })
    .await
}

async fn unknown(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    operate(&req, &state, async |_| {
        Err(Box::new(
            ApiError::NoRoute(req.path().to_string()).problem(),
        ))
    })
    .await
}
