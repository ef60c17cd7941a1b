//! The `log` capability: a module writes lines to the host's log, tagged with the
//! request id, tenant and module, capped in length and count.

use eerp_abi::manifest::Capability;
use eerp_abi::{IMPORT_MODULE, imports, log_level};
use wasmtime::{Caller, Linker};

use super::{CapabilityImports, HostState, memory_of};
use crate::data_api::RequestScope;
use crate::runtime::guest_memory;

/// Longest log line kept, in bytes; longer lines are cut.
const MAX_LOG_LINE_BYTES: usize = 4 << 10;
/// Log lines kept per request; more are counted and dropped so a module cannot flood logs.
const MAX_LOG_LINES: u32 = 100;

/// The `log` capability's imports.
pub const IMPORTS: CapabilityImports = CapabilityImports {
    capability: Capability::Log,
    imports: &[imports::LOG],
    link,
};

/// Tags and the line count of one request.
#[derive(Debug, Default)]
pub struct LogState {
    tenant: String,
    module: String,
    request_id: String,
    lines: u32,
}

impl LogState {
    /// Lines tagged with `scope`'s tenant and module and `request_id`.
    pub fn for_request(scope: &RequestScope, request_id: &str) -> Self {
        Self {
            tenant: scope.tenant.to_string(),
            module: scope.module.to_string(),
            request_id: request_id.to_string(),
            lines: 0,
        }
    }
}

fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        imports::LOG,
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let memory = memory_of(&mut caller)?;
            let len = (len as u32).min(MAX_LOG_LINE_BYTES as u32);
            let bytes = guest_memory::read(&memory, &caller, ptr as u32, len, MAX_LOG_LINE_BYTES)?;
            let state = &mut caller.data_mut().log;
            state.lines += 1;
            if state.lines > MAX_LOG_LINES {
                return Ok(());
            }
            let line = String::from_utf8_lossy(&bytes);
            let (tenant, module, request_id) = (
                state.tenant.as_str(),
                state.module.as_str(),
                state.request_id.as_str(),
            );
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
