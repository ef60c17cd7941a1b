//! Domain events: what a handler emitted is delivered, once it has returned success, to
//! the modules of the same tenant that subscribe to the event. Each subscriber runs in a
//! fresh Store, inside the request's transaction, with what is left of the request's fuel,
//! wall time and data API caps; events its handler emits are delivered next, one level
//! deeper. Any failure rolls the whole request back. Depth and the number of deliveries
//! are capped, so an event loop is stopped and classified as `event_limit`.

use std::collections::VecDeque;
use std::time::Instant;

use eerp_abi::envelope::Request;
use eerp_abi::manifest::EVENT_METHOD;

use super::{Call, Trace, served_module, settle};
use crate::data_api::DataUsage;
use crate::db::DbSession;
use crate::http::problem::ApiError;
use crate::metrics::Usage;
use crate::runtime::host::events::Emitted;
use crate::runtime::{InvokeError, LoadedModule};

/// Events nest at most this deep: an event emitted by a handler of an event emitted by
/// the route's handler is depth 2.
pub const MAX_EVENT_DEPTH: u32 = 4;
/// Event handler calls one request may make in all.
pub const MAX_DELIVERIES: u32 = 32;
/// Payload bytes of all the events one request may emit, handlers' included.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Delivers `events` (emitted by `emitter`) and whatever their handlers emit. Returns the
/// transaction to commit, or the failure and the transaction to roll back.
pub(super) async fn deliver(
    call: &Call<'_>,
    emitter: &LoadedModule,
    events: Vec<Emitted>,
    db: DbSession,
    usage: DataUsage,
    trace: &mut Trace,
) -> Result<DbSession, (DbSession, ApiError)> {
    let mut queue: VecDeque<(Emitted, u32, String)> = events
        .into_iter()
        .map(|event| (event, 1, emitter.name.to_string()))
        .collect();
    let (mut db, mut usage, mut deliveries) = (db, usage, 0);
    let mut bytes: usize = queue.iter().map(|(e, ..)| e.payload.get().len()).sum();
    while let Some((event, depth, from)) = queue.pop_front() {
        for name in call.tenant.modules.keys() {
            let module = match served_module(call.state, call.tenant, name).await {
                Ok(module) => module,
                Err(e) => return Err((db, e)),
            };
            let Some(handler_id) = module.subscription_handler(&event.name) else {
                continue;
            };
            deliveries += 1;
            if depth > MAX_EVENT_DEPTH || deliveries > MAX_DELIVERIES {
                let why = format!(
                    "`{}` from `{from}` would be event delivery {deliveries} at depth {depth}; \
                     a request may make {MAX_DELIVERIES} deliveries, {MAX_EVENT_DEPTH} deep",
                    event.name
                );
                return Err((db, ApiError::Invoke(InvokeError::EventLimit(why))));
            }
            let handled = handle(call, &module, handler_id, &event, db, usage, trace).await?;
            (db, usage) = (handled.0, handled.1);
            bytes += handled
                .2
                .iter()
                .map(|e| e.payload.get().len())
                .sum::<usize>();
            if bytes > MAX_EVENT_BYTES {
                let why = format!("the request's events carry more than {MAX_EVENT_BYTES} bytes");
                return Err((db, ApiError::Invoke(InvokeError::EventLimit(why))));
            }
            queue.extend(
                handled
                    .2
                    .into_iter()
                    .map(|next| (next, depth + 1, module.name.to_string())),
            );
        }
    }
    Ok(db)
}

type Handled = (DbSession, DataUsage, Vec<Emitted>);

/// One subscriber's call: its own Store, the request's remaining budget.
async fn handle(
    call: &Call<'_>,
    module: &LoadedModule,
    handler_id: i32,
    event: &Emitted,
    db: DbSession,
    usage: DataUsage,
    trace: &mut Trace,
) -> Result<Handled, (DbSession, ApiError)> {
    let mut limits = call.tenant.limits.clone();
    let spent = trace.fuel;
    let Some(fuel) = limits
        .fuel_per_request
        .checked_sub(spent)
        .filter(|f| *f > 0)
    else {
        let budget = limits.fuel_per_request;
        return Err((db, ApiError::Invoke(InvokeError::OutOfFuel { budget })));
    };
    let Some(wall) = call.deadline.checked_duration_since(Instant::now()) else {
        return Err((db, ApiError::Invoke(InvokeError::Timeout(limits.wall_time))));
    };
    limits.fuel_per_request = fuel;
    limits.wall_time = wall;
    let envelope = Request {
        method: EVENT_METHOD.to_string(),
        route: event.name.clone(),
        params: Default::default(),
        query: Default::default(),
        body: event.payload.clone(),
        principal: call.principal.clone(),
        request_id: call.request_id.to_string(),
    };
    let envelope = match serde_json::to_vec(&envelope) {
        Ok(bytes) => bytes,
        Err(e) => {
            let err = InvokeError::BadAbi(format!("the event could not be encoded: {e}"));
            return Err((db, ApiError::Invoke(err)));
        }
    };
    let scope = match call.scope(module, limits, db, usage).await {
        Ok(scope) => scope,
        // The scope took the session; a failed grant lookup is a database failure, and
        // the transaction is rolled back when the session is dropped.
        Err(e) => return Err((DbSession::detached(), e)),
    };
    let report = call
        .invoke(module, handler_id, envelope, scope, trace)
        .await;
    record(call, module, &report);
    let (response, db) = settle(report.result, report.db).await?;
    if response.status >= 400 {
        return Err((db, ApiError::Module(response)));
    }
    Ok((db, report.usage, report.events))
}

/// The subscriber's own metrics: its outcome and usage under its module's name.
fn record(call: &Call<'_>, module: &LoadedModule, report: &crate::runtime::InvokeReport) {
    let outcome = match &report.result {
        Ok(response) if response.status >= 400 => crate::runtime::Outcome::ModuleError,
        Ok(_) => crate::runtime::Outcome::Ok,
        Err(e) => e.outcome(),
    };
    let metrics = &call.state.metrics;
    let name = module.name.as_str();
    metrics.record_outcome(name, Some(call.tenant.slug.as_str()), outcome);
    metrics.record_usage(name, &Usage::of(report));
}
