//! The `events` capability: `emit` queues a domain event declared in the manifest. The
//! host delivers queued events to the subscribers once the handler has returned
//! (`crate::events`), in the same transaction.

use std::sync::Arc;

use eerp_abi::manifest::Capability;
use eerp_abi::{IMPORT_MODULE, imports};
use serde::Deserialize;
use serde_json::value::RawValue;
use wasmtime::{Caller, Linker};

use super::{CapabilityImports, HostState, HostTrap, memory_of};
use crate::runtime::guest_memory;

/// Largest event (name and payload JSON) a module may emit, in bytes.
const MAX_EVENT_BYTES: usize = 64 << 10;
/// Events one module call may emit.
pub const MAX_EVENTS_PER_CALL: usize = 16;

/// The `events` capability's imports.
pub const IMPORTS: CapabilityImports = CapabilityImports {
    capability: Capability::Events,
    imports: &[imports::EMIT],
    link,
};

/// One emitted event, waiting for delivery.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// `<module>.<event>`.
    pub name: String,
    /// Its JSON payload.
    pub payload: Box<RawValue>,
}

/// What the module may emit and what it has emitted so far.
#[derive(Debug, Default)]
pub struct EventState {
    declared: Arc<[String]>,
    /// Emitted by this call, in order.
    pub emitted: Vec<Emitted>,
}

impl EventState {
    /// A call that may emit the events named in `declared`.
    pub fn new(declared: Arc<[String]>) -> Self {
        Self {
            declared,
            emitted: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitRequest {
    event: String,
    #[serde(default = "eerp_abi::envelope::null")]
    payload: Box<RawValue>,
}

fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        imports::EMIT,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let memory = memory_of(&mut caller)?;
            let bytes =
                guest_memory::read(&memory, &caller, ptr as u32, len as u32, MAX_EVENT_BYTES)?;
            let request: EmitRequest = serde_json::from_slice(&bytes).map_err(|e| {
                HostTrap::BadAbi(format!(
                    "emit: not an event `{{\"event\", \"payload\"}}`: {e}"
                ))
            })?;
            let state = &mut caller.data_mut().events;
            if !state.declared.contains(&request.event) {
                return Err(HostTrap::BadAbi(format!(
                    "emit: the module emits `{}`, which its manifest's `events` does not declare",
                    request.event
                ))
                .into());
            }
            if state.emitted.len() >= MAX_EVENTS_PER_CALL {
                return Err(HostTrap::EventLimit(format!(
                    "one call emitted more than {MAX_EVENTS_PER_CALL} events"
                ))
                .into());
            }
            state.emitted.push(Emitted {
                name: request.event,
                payload: request.payload,
            });
            Ok(())
        },
    )?;
    Ok(())
}
