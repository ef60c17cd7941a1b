//! The `eerp` host imports, one capability per file, and the state of one Store.
//!
//! Each capability ([`log`], [`data`], [`events`]) is one unit: it names its imports,
//! links them into a module's `Linker` once when the module is loaded (only if the
//! manifest requested it, so a module importing anything else cannot be instantiated),
//! and holds its own slice of per-request state in [`HostState`]. Adding a capability
//! touches its file, the [`CAPABILITIES`] table and [`HostState`].
//!
//! The tenant, schema and transaction live in host state that the guest cannot name or
//! change.

pub mod data;
pub mod events;
pub mod log;

use eerp_abi::IMPORT_MODULE;
use eerp_abi::manifest::Capability;
use thiserror::Error;
use wasmtime::{Caller, Linker, Memory};

use super::limits::MemoryLimiter;
use crate::data_api::RequestScope;

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
    /// The request emitted more events than the platform allows.
    #[error("{0}")]
    EventLimit(String),
}

/// One capability's imports and how to link them.
pub struct CapabilityImports {
    /// The manifest name that grants it.
    pub capability: Capability,
    /// Its import names in the `eerp` module.
    pub imports: &'static [&'static str],
    /// Defines its imports.
    pub link: fn(&mut Linker<HostState>) -> wasmtime::Result<()>,
}

/// Every capability of ABI v1.
pub const CAPABILITIES: [CapabilityImports; 3] = [log::IMPORTS, data::IMPORTS, events::IMPORTS];

/// The state of one Store: the memory limiter and each capability's per-request slice.
pub struct HostState {
    /// Memory cap and peak tracking.
    pub limiter: MemoryLimiter,
    /// Log lines and the tags they carry.
    pub log: log::LogState,
    /// The data API scope; `None` while a module is being loaded.
    pub data: data::DataState,
    /// Events emitted so far.
    pub events: events::EventState,
}

impl HostState {
    /// State for loading a module: no request, no database, no events.
    pub fn for_loading(cap_bytes: usize) -> Self {
        Self {
            limiter: MemoryLimiter::new(cap_bytes),
            log: log::LogState::default(),
            data: data::DataState::default(),
            events: events::EventState::default(),
        }
    }

    /// State for serving `scope`; `request_id` tags the log lines, `events` are the
    /// names the module may emit.
    pub fn for_request(scope: RequestScope, request_id: &str, events: events::EventState) -> Self {
        Self {
            limiter: MemoryLimiter::new(scope.limits.max_memory_bytes),
            log: log::LogState::for_request(&scope, request_id),
            data: data::DataState::for_request(scope),
            events,
        }
    }
}

/// Defines the imports of `capabilities` in `linker`.
///
/// # Errors
/// Only if wasmtime refuses a definition, which would be a bug here.
pub fn link(linker: &mut Linker<HostState>, capabilities: &[Capability]) -> wasmtime::Result<()> {
    for unit in &CAPABILITIES {
        if capabilities.contains(&unit.capability) {
            (unit.link)(linker)?;
        }
    }
    Ok(())
}

/// The capability an import belongs to, if it is an import ABI v1 knows.
pub fn capability_of(module: &str, name: &str) -> Option<Capability> {
    if module != IMPORT_MODULE {
        return None;
    }
    CAPABILITIES
        .iter()
        .find(|unit| unit.imports.contains(&name))
        .map(|unit| unit.capability)
}

pub(super) fn memory_of(caller: &mut Caller<'_, HostState>) -> Result<Memory, HostTrap> {
    caller
        .get_export(eerp_abi::exports::MEMORY)
        .and_then(|export| export.into_memory())
        .ok_or_else(|| HostTrap::BadAbi("the module exports no `memory`".into()))
}
