//! The `data` capability: `data_call` runs one data API operation in the request's
//! transaction and holds the reply; `data_take` copies it into the guest. Two steps, so
//! the host never calls back into the guest to allocate.

use std::time::Instant;

use eerp_abi::manifest::Capability;
use eerp_abi::{IMPORT_MODULE, imports};
use wasmtime::{Caller, Linker};

use super::{CapabilityImports, HostState, HostTrap, memory_of};
use crate::data_api::{self, RequestScope};
use crate::runtime::guest_memory;

/// Largest data API request a module may send, in bytes.
const MAX_DATA_REQUEST_BYTES: usize = 256 << 10;

/// The `data` capability's imports.
pub const IMPORTS: CapabilityImports = CapabilityImports {
    capability: Capability::Data,
    imports: &[imports::DATA_CALL, imports::DATA_TAKE],
    link,
};

/// The request's data API scope and the reply waiting for `data_take`.
#[derive(Default)]
pub struct DataState {
    /// `None` while a module is being loaded.
    pub scope: Option<RequestScope>,
    pending_reply: Option<Vec<u8>>,
}

impl DataState {
    /// State for serving `scope`.
    pub fn for_request(scope: RequestScope) -> Self {
        Self {
            scope: Some(scope),
            pending_reply: None,
        }
    }
}

fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        IMPORT_MODULE,
        imports::DATA_CALL,
        |mut caller: Caller<'_, HostState>, (ptr, len): (i32, i32)| {
            Box::new(async move {
                let memory = memory_of(&mut caller)?;
                let request = guest_memory::read(
                    &memory,
                    &caller,
                    ptr as u32,
                    len as u32,
                    MAX_DATA_REQUEST_BYTES,
                )?;
                let state = &mut caller.data_mut().data;
                if state.pending_reply.is_some() {
                    return Err(HostTrap::BadAbi(
                        "data_call before the previous reply was taken with data_take".into(),
                    )
                    .into());
                }
                let scope = state.scope.as_mut().ok_or_else(|| {
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
            let memory = memory_of(&mut caller)?;
            let reply = caller
                .data_mut()
                .data
                .pending_reply
                .take()
                .ok_or_else(|| HostTrap::BadAbi("data_take without a pending reply".into()))?;
            guest_memory::write(&memory, &mut caller, dst as u32, &reply)?;
            Ok(())
        },
    )?;
    Ok(())
}
