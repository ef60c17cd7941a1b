//! The `eerp` host imports and the per-request state they work on.
//!
//! Each import belongs to a [`Capability`]; [`link`] defines only the imports of the
//! capabilities a module was granted, so a module importing anything else cannot be
//! instantiated at all. The tenant, schema and transaction live here, in host state that
//! the guest cannot name or change.

use std::sync::Arc;
use std::time::Instant;

use eerp_abi::manifest::Capability;
use eerp_abi::{IMPORT_MODULE, imports, log_level};
use eerp_tenancy::Limits;
use eerp_tenancy::id::{ModuleName, TenantSlug};
use thiserror::Error;
use wasmtime::{Caller, Linker, Memory};

use super::guest_memory;
use super::limits::MemoryLimiter;
use crate::data_api::{self, DataUsage};
use crate::db::DbSession;
use crate::migrations::SchemaModel;

/// Largest data API request a module may send, in bytes.
const MAX_DATA_REQUEST_BYTES: usize = 256 << 10;
/// Longest log line kept, in bytes; longer lines are cut.
const MAX_LOG_LINE_BYTES: usize = 4 << 10;
/// Log lines kept per request; more are counted and dropped so a module cannot flood logs.
const MAX_LOG_LINES: u32 = 100;

/// A failure raised by a host function, which ends the module call.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HostTrap {
    /// The guest broke the ABI (bad pointer, oversized data, call out of order).
    #[error("ABI violation: {0}")]
    BadAbi(String),
    /// The database failed underneath a data call.
    #[error("database failure: {0}")]
    Db(String),
    /// PostgreSQL cancelled a statement at the request's time limit.
    #[error("a statement ran into the time limit of {0:?}")]
    Timeout(std::time::Duration),
}

/// The state of one Store.
pub struct HostState {
    /// Memory cap and peak tracking.
    pub limiter: MemoryLimiter,
    /// The request being served; `None` while a module is being loaded.
    pub request: Option<RequestScope>,
    pending_reply: Option<Vec<u8>>,
    log_lines: u32,
}

impl HostState {
    /// State for loading a module: no request, no database.
    pub fn for_loading(cap_bytes: usize) -> Self {
        Self {
            limiter: MemoryLimiter::new(cap_bytes),
            request: None,
            pending_reply: None,
            log_lines: 0,
        }
    }

    /// State for serving `request`.
    pub fn for_request(request: RequestScope) -> Self {
        Self {
            limiter: MemoryLimiter::new(request.limits.max_memory_bytes),
            request: Some(request),
            pending_reply: None,
            log_lines: 0,
        }
    }
}

/// Everything a request's host calls may touch, fixed by the host before the call.
pub struct RequestScope {
    /// The tenant from the verified token.
    pub tenant: TenantSlug,
    /// The module being called.
    pub module: ModuleName,
    /// The (tenant, module) schema every statement is qualified with.
    pub schema: String,
    /// The request id, for logs.
    pub request_id: String,
    /// The module's declared tables.
    pub model: Arc<SchemaModel>,
    /// The tenant's limits.
    pub limits: Limits,
    /// The request's database transaction, opened on first use.
    pub db: DbSession,
    /// Data API usage so far, checked against `limits`.
    pub usage: DataUsage,
}

/// Defines the imports of `capabilities` in `linker`.
///
/// # Errors
/// Only if wasmtime refuses a definition, which would be a bug here.
pub fn link(linker: &mut Linker<HostState>, capabilities: &[Capability]) -> wasmtime::Result<()> {
    for capability in capabilities {
        match capability {
            Capability::Log => link_log(linker)?,
            Capability::Data => link_data(linker)?,
        }
    }
    Ok(())
}

/// The capability an import belongs to, if it is an import ABI v1 knows.
pub fn capability_of(module: &str, name: &str) -> Option<Capability> {
    match (module, name) {
        (IMPORT_MODULE, imports::LOG) => Some(Capability::Log),
        (IMPORT_MODULE, imports::DATA_CALL | imports::DATA_TAKE) => Some(Capability::Data),
        _ => None,
    }
}

fn guest_memory(caller: &mut Caller<'_, HostState>) -> Result<Memory, HostTrap> {
    caller
        .get_export(eerp_abi::exports::MEMORY)
        .and_then(|export| export.into_memory())
        .ok_or_else(|| HostTrap::BadAbi("the module exports no `memory`".into()))
}

fn link_log(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        imports::LOG,
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let memory = guest_memory(&mut caller)?;
            let len = (len as u32).min(MAX_LOG_LINE_BYTES as u32);
            let bytes = guest_memory::read(&memory, &caller, ptr as u32, len, MAX_LOG_LINE_BYTES)?;
            let state = caller.data_mut();
            state.log_lines += 1;
            if state.log_lines > MAX_LOG_LINES {
                return Ok(());
            }
            let line = String::from_utf8_lossy(&bytes);
            let (tenant, module, request_id) = match &state.request {
                Some(r) => (r.tenant.as_str(), r.module.as_str(), r.request_id.as_str()),
                None => ("", "", ""),
            };
            match level {
                log_level::ERROR => {
                    tracing::error!(target: "eerp::module", tenant, module, request_id, "{line}")
                }
                log_level::WARN => {
                    tracing::warn!(target: "eerp::module", tenant, module, request_id, "{line}")
                }
                log_level::INFO => {
                    tracing::info!(target: "eerp::module", tenant, module, request_id, "{line}")
                }
                _ => tracing::debug!(target: "eerp::module", tenant, module, request_id, "{line}"),
            }
            Ok(())
        },
    )?;
    Ok(())
}

fn link_data(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        IMPORT_MODULE,
        imports::DATA_CALL,
        |mut caller: Caller<'_, HostState>, (ptr, len): (i32, i32)| {
            Box::new(async move {
                let memory = guest_memory(&mut caller)?;
                let request = guest_memory::read(
                    &memory,
                    &caller,
                    ptr as u32,
                    len as u32,
                    MAX_DATA_REQUEST_BYTES,
                )?;
                let state = caller.data_mut();
                if state.pending_reply.is_some() {
                    return Err(HostTrap::BadAbi(
                        "data_call before the previous reply was taken with data_take".into(),
                    )
                    .into());
                }
                let scope = state.request.as_mut().ok_or_else(|| {
                    HostTrap::BadAbi("the data API cannot be used while a module loads".into())
                })?;
                let started = Instant::now();
                let reply = data_api::execute(scope, &request).await;
                scope.usage.host_time += started.elapsed();
                if scope.db.timed_out() {
                    return Err(HostTrap::Timeout(scope.limits.wall_time).into());
                }
                if let Some(failure) = scope.db.failure() {
                    return Err(HostTrap::Db(failure.to_string()).into());
                }
                let encoded = serde_json::to_vec(&reply)
                    .map_err(|e| HostTrap::BadAbi(format!("unencodable reply: {e}")))?;
                let reply_len = i32::try_from(encoded.len())
                    .map_err(|_| HostTrap::BadAbi("reply larger than 2 GiB".into()))?;
                state.pending_reply = Some(encoded);
                Ok(reply_len)
            })
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        imports::DATA_TAKE,
        |mut caller: Caller<'_, HostState>, dst: i32| -> wasmtime::Result<()> {
            let memory = guest_memory(&mut caller)?;
            let reply = caller
                .data_mut()
                .pending_reply
                .take()
                .ok_or_else(|| HostTrap::BadAbi("data_take without a pending reply".into()))?;
            guest_memory::write(&memory, &mut caller, dst as u32, &reply)?;
            Ok(())
        },
    )?;
    Ok(())
}
