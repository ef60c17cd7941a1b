//! The module store's admin routes: upload, list, show and retire module versions, the
//! fleet upgrade, and the modules each plan gives new tenants.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{Answer, body, ok, operate, query, tenant_problem};
use crate::http::problem::{ApiError, Problem};
use crate::registry::{StoreError, Upload, store::Uploader};
use crate::runtime::Identity;
use crate::state::AppState;
use crate::tenants::{TenantError, fleet, lifecycle};

fn store_problem(e: StoreError) -> Box<Problem> {
    use StatusCode as S;
    let refused = |detail: String| {
        Problem::new(
            S::UNPROCESSABLE_ENTITY,
            "module-invalid",
            "Module refused",
            format!("the module was not stored: {detail}"),
        )
    };
    let problem = match e {
        StoreError::Invalid(e) => refused(e.to_string()),
        StoreError::DryRun(e) if e.is_transient() => ApiError::Db(crate::error_chain(&e)).problem(),
        e @ StoreError::DryRun(_) => refused(crate::error_chain(&e)),
        StoreError::Conflict(detail) => Problem::new(S::CONFLICT, "conflict", "Conflict", detail),
        StoreError::NotFound(detail) => {
            Problem::new(S::NOT_FOUND, "not-found", "Not found", detail)
        }
        e @ (StoreError::Db(_) | StoreError::Pool(_)) => {
            tracing::error!(error = %crate::error_chain(&e), "module store failed");
            ApiError::Db(crate::error_chain(&e)).problem()
        }
    };
    Box::new(problem)
}

fn is_wasm(req: &HttpRequest) -> bool {
    crate::http::media_type(req)
        .is_some_and(|mime| mime == "application/wasm" || mime == "application/octet-stream")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    name: Option<String>,
    version: Option<String>,
}

/// `POST /modules?name=&version=`: the body is the module's wasm bytes; the name and
/// version are for a module without a manifest (the original EERP's contract).
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    mut payload: web::Payload,
) -> HttpResponse {
    operate(&req, &state, async |cat| {
        if !is_wasm(&req) {
            return Err(Box::new(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the module's bytes with `content-type: application/wasm`",
            )));
        }
        let given: UploadQuery = query(&req)?;
        let identity = match (&given.name, &given.version) {
            (Some(name), Some(version)) => Some(Identity { name, version }),
            (None, None) => None,
            _ => {
                return Err(Box::new(
                    ApiError::BadRequest("give both `name` and `version`, or neither".into())
                        .problem(),
                ));
            }
        };
        // Already read within `--max-module-bytes` before the handler ran.
        let wasm = crate::http::body::read(&mut payload, None, state.max_module_bytes)
            .await
            .map_err(|e| Box::new(e.problem()))?
            .to_vec();
        let uploader = Uploader {
            actor: cat.actor,
            builtin: false,
            seeding: false,
        };
        let (upload, module) = cat
            .modules
            .upload(&wasm, uploader, identity)
            .await
            .map_err(store_problem)?;
        let stored = cat
            .modules
            .show(module.name.as_str(), &module.version.to_string())
            .await
            .map_err(store_problem)?;
        state.metrics.register_modules(&[module.name.to_string()]);
        let status = match upload {
            Upload::Created => StatusCode::CREATED,
            Upload::Unchanged | Upload::Restored | Upload::Replaced => StatusCode::OK,
        };
        Ok((status, stored))
    })
    .await
}

/// `GET /modules`.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let versions = cat.modules.list().await.map_err(store_problem)?;
        ok(json!({"modules": versions}))
    })
    .await
}

fn name_and_version(req: &HttpRequest) -> (&str, &str) {
    let info = req.match_info();
    (
        info.get("module").unwrap_or_default(),
        info.get("version").unwrap_or_default(),
    )
}

/// `GET /modules/{module}/versions/{version}`.
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let (name, version) = name_and_version(&req);
        ok(cat
            .modules
            .show(name, version)
            .await
            .map_err(store_problem)?)
    })
    .await
}

/// `DELETE /modules/{module}/versions/{version}`.
pub async fn retire(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let (name, version) = name_and_version(&req);
        ok(cat
            .modules
            .retire(name, version, cat.actor)
            .await
            .map_err(store_problem)?)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrateBody {
    workers: Option<usize>,
    version: Option<String>,
}

/// `POST /modules/{module}/migrate`: upgrade every tenant to `version` (default newest).
pub async fn migrate_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> HttpResponse {
    operate(&req, &state, async |cat| -> Answer {
        let name = req.match_info().get("module").unwrap_or_default();
        let change: MigrateBody = body(&bytes)?;
        let module = match &change.version {
            Some(version) => cat
                .modules
                .load(name, version)
                .await
                .map_err(store_problem)?,
            None => cat.modules.registry.newest(name),
        };
        let module = module.ok_or_else(|| {
            tenant_problem(TenantError::NotFound(format!(
                "no module `{name}`{} is stored",
                change
                    .version
                    .as_ref()
                    .map(|v| format!(" at version {v}"))
                    .unwrap_or_default()
            )))
        })?;
        // Each worker holds a connection of the background pool (the data API has pools
        // of its own); at most half, so tenant lookups, operators and probes go on.
        let most = (cat.pool.status().max_size / 2).max(1);
        let workers = change.workers.unwrap_or(4).clamp(1, most);
        let run = fleet::start(cat.pool, module, workers)
            .await
            .map_err(tenant_problem)?;
        Ok((StatusCode::ACCEPTED, run))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanModulesBody {
    modules: Vec<String>,
}

/// `PUT /plans/{name}/modules`.
pub async fn set_plan_modules(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> HttpResponse {
    operate(&req, &state, async |cat| {
        let name = req.match_info().get("name").unwrap_or_default();
        let change: PlanModulesBody = body(&bytes)?;
        ok(lifecycle::set_plan_modules(cat, name, &change.modules)
            .await
            .map_err(tenant_problem)?)
    })
    .await
}
