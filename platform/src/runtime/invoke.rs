//! One module call in one fresh Store.
//!
//! ```text
//! Store::new (limiter, fuel, yield interval)
//!   -> instantiate from the cached InstancePre (pooling allocator)
//!   -> eerp_alloc + write the request envelope
//!   -> eerp_handle -> packed (ptr, len) -> bounds-checked read -> Response
//! all inside tokio::time::timeout(wall_time), with the CPU time of every poll
//! added up (so database waits, which return Pending, are not counted); the Store is
//! dropped afterwards
//! ```
//! The transaction is not finished here: the caller commits or rolls back with the
//! [`DbSession`] handed back in the report, once it knows the outcome.

use std::time::{Duration, Instant};

use eerp_abi::envelope::{MAX_RESPONSE_BYTES, Response};
use eerp_abi::unpack;
use wasmtime::{Engine, Extern, ModuleExport, Store};

use super::cpu::{CpuShare, CpuShared};
use super::guest_memory;
use super::host::events::{Emitted, EventState};
use super::host::{HostState, HostTrap};
use super::loaded::LoadedModule;
use super::outcome::InvokeError;
use crate::data_api::{DataUsage, RequestScope};
use crate::db::DbSession;

/// Fuel between voluntary yields to the async executor, so a busy module cannot hold a
/// worker thread for long: about 50 µs of guest code, short enough that other tenants'
/// requests interleave with a CPU-bound one, long enough that yielding costs little (see
/// `docs/reliability.md`).
pub(super) const FUEL_YIELD_INTERVAL: u64 = 100_000;

/// One call to make.
pub struct Invocation {
    /// Route index in the manifest.
    pub handler_id: i32,
    /// The request envelope, as JSON.
    pub envelope: Vec<u8>,
    /// Tenant, schema, limits and database session.
    pub scope: RequestScope,
    /// The request id, for the module's log lines.
    pub request_id: String,
    /// The tenant's share of the cores: the call executes only within it.
    pub cpu: CpuShare,
}

/// What happened, with the measurements the caller logs.
pub struct InvokeReport {
    /// The module's response, or why there is none.
    pub result: Result<Response, InvokeError>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Peak linear memory, in bytes.
    pub peak_memory_bytes: usize,
    /// Time to instantiate.
    pub instantiate_time: Duration,
    /// Thread CPU time while the call was polled (instantiation and wasm; not waits).
    pub cpu_time: Duration,
    /// Data API usage, including time spent in the host.
    pub usage: DataUsage,
    /// The database session, still open if the module used it.
    pub db: DbSession,
    /// Events the module emitted, for delivery if the call succeeded.
    pub events: Vec<Emitted>,
}

/// Runs `invocation` against `module` in a fresh Store.
pub async fn invoke(
    engine: &Engine,
    module: &LoadedModule,
    invocation: Invocation,
) -> InvokeReport {
    let limits = invocation.scope.limits.clone();
    let events = EventState::new(module.events.clone());
    let state = HostState::for_request(invocation.scope, &invocation.request_id, events);
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    let mut instantiate_time = Duration::ZERO;
    let mut cpu_time = Duration::ZERO;
    let setup = store
        .set_fuel(limits.fuel_per_request)
        .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)));
    let outcome = match setup {
        Err(e) => Err(e),
        Ok(()) => {
            let call = call(
                &mut store,
                module,
                invocation.handler_id,
                &invocation.envelope,
                limits.max_response_bytes.min(MAX_RESPONSE_BYTES),
                &mut instantiate_time,
            );
            tokio::pin!(call);
            let mut call = CpuShared::new(call, invocation.cpu);
            let result = match tokio::time::timeout(limits.wall_time, &mut call).await {
                Ok(result) => result,
                Err(_) => Ok(Err(InvokeError::Timeout(limits.wall_time))),
            };
            cpu_time = call.cpu_time();
            result
        }
    };
    let fuel_used = limits
        .fuel_per_request
        .saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.into_data();
    let result = match outcome {
        // `eerp_alloc` returning 0 because its grow was refused is the memory limit.
        Ok(Err(InvokeError::BadAbi(_))) if state.limiter.cap_hit() => {
            Err(InvokeError::MemoryLimit {
                cap_bytes: state.limiter.cap_bytes(),
            })
        }
        Ok(result) => result,
        Err(err) => Err(InvokeError::classify(
            &err,
            state.limiter.cap_hit(),
            state.limiter.cap_bytes(),
            limits.fuel_per_request,
        )),
    };
    let peak_memory_bytes = state.limiter.peak_bytes();
    // A request Store always has its scope; the fallback only keeps this path panic-free.
    let (usage, db) = match state.data.scope {
        Some(scope) => (scope.usage, scope.db),
        None => (DataUsage::default(), DbSession::detached()),
    };
    InvokeReport {
        result,
        fuel_used,
        peak_memory_bytes,
        instantiate_time,
        cpu_time,
        usage,
        db,
        events: state.events.emitted,
    }
}

/// The guest part. Wasmtime errors (traps, host traps) come back as the outer `Err`, ABI
/// breaches found by the host after a successful call as the inner one.
async fn call(
    store: &mut Store<HostState>,
    module: &LoadedModule,
    handler_id: i32,
    envelope: &[u8],
    max_response_bytes: usize,
    instantiate_time: &mut Duration,
) -> wasmtime::Result<Result<Response, InvokeError>> {
    let started = Instant::now();
    let instance = module.instance_pre().instantiate_async(&mut *store).await?;
    *instantiate_time = started.elapsed();
    let exports = module
        .exports()
        .ok_or_else(|| HostTrap::BadAbi("a schema-only module has no handlers".into()))?;
    let memory = instance
        .get_module_export(&mut *store, &exports.memory)
        .and_then(Extern::into_memory)
        .ok_or_else(|| HostTrap::BadAbi("the module exports no `memory`".into()))?;
    let func = |store: &mut Store<HostState>, export: &ModuleExport| {
        instance
            .get_module_export(store, export)
            .and_then(Extern::into_func)
            .ok_or_else(|| HostTrap::BadAbi("a function export is missing".into()))
    };
    let alloc = func(store, &exports.alloc)?.typed::<i32, i32>(&*store)?;
    let handle = func(store, &exports.handle)?.typed::<(i32, i32, i32), i64>(&*store)?;

    let len = i32::try_from(envelope.len())
        .map_err(|_| HostTrap::BadAbi("request envelope larger than 2 GiB".into()))?;
    let req_ptr = alloc.call_async(&mut *store, len).await?;
    if req_ptr == 0 {
        return Ok(Err(InvokeError::BadAbi(format!(
            "eerp_alloc({len}) returned 0"
        ))));
    }
    guest_memory::write(&memory, &mut *store, req_ptr as u32, envelope)?;
    let packed = handle
        .call_async(&mut *store, (handler_id, req_ptr, len))
        .await?;
    let (ptr, len) = unpack(packed);
    let bytes = match guest_memory::read(&memory, &*store, ptr, len, max_response_bytes) {
        Ok(bytes) => bytes,
        Err(HostTrap::BadAbi(detail)) => {
            return Ok(Err(InvokeError::BadAbi(format!("response: {detail}"))));
        }
        Err(other) => return Err(other.into()),
    };
    Ok(parse_response(&bytes))
}

fn parse_response(bytes: &[u8]) -> Result<Response, InvokeError> {
    let response: Response = serde_json::from_slice(bytes)
        .map_err(|e| InvokeError::BadAbi(format!("response is not ABI v1 JSON: {e}")))?;
    if !(200..=599).contains(&response.status) {
        return Err(InvokeError::BadAbi(format!(
            "response status {} is outside 200..=599",
            response.status
        )));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_must_be_json_with_a_sane_status() {
        assert!(parse_response(br#"{"status":201,"body":{"id":1}}"#).is_ok());
        for bad in [
            &b"not json"[..],
            br#"{"status":99}"#,
            br#"{"status":600}"#,
            br#"{"status":200,"x":1}"#,
        ] {
            assert!(matches!(parse_response(bad), Err(InvokeError::BadAbi(_))));
        }
    }
}
