//! The manifest a module returns from `eerp_manifest`: who it is and what it serves.

use serde::{Deserialize, Serialize};

/// A module's self-description. The host reads it once, when the module is loaded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Module name: lower-case ASCII letters, digits and `_`, starting with a letter, at
    /// most 20 bytes (it becomes part of a PostgreSQL schema name).
    pub name: String,
    /// Module version, semver (`1.2.0`): with the name, what identifies a module version
    /// in the host's store.
    pub version: String,
    /// ABI version the module was built against; must equal [`crate::ABI_VERSION`].
    pub abi_version: u32,
    /// Routes, in handler-id order: route `i` is called as `eerp_handle(i, ..)`.
    pub routes: Vec<Route>,
    /// Capabilities the module asks for. Imports of capabilities it did not ask for are
    /// not linked, so such a module fails to load.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Read grants on other modules' tables of the same tenant, as `read:<module>.<table>`
    /// (`read:crm.contacts`). Honoured only while that module is enabled for the tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// Events the module may emit (needs the `events` capability), each named
    /// `<this module>.<event>`, e.g. `inventory.stock_moved`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Events the module handles, any module's. Subscription `i` is called as
    /// `eerp_handle(routes.len() + i, ..)` with an event envelope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<String>,
}

/// The method of the request envelope an event handler receives; its `route` is the
/// event's name and its `body` the payload.
pub const EVENT_METHOD: &str = "EVENT";

/// One HTTP route served by a module, mounted under `/api/v1/<module>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: String,
    /// Path template relative to the module mount: literal segments and `{name}`
    /// parameters, e.g. `/contacts/{id}/restore`.
    pub path: String,
    /// Permission the caller needs, e.g. `crm.contacts.read`.
    pub permission: String,
}

/// A host capability, which decides which `eerp` imports are linked.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// The `log` import.
    Log,
    /// The `data_call` and `data_take` imports: the data API on the module's own tables
    /// (and, with grants, reads of other modules' tables).
    Data,
    /// The `emit` import: domain events for other modules' subscriptions.
    Events,
}

impl Capability {
    /// The name a manifest uses for it (`log`, `data`, `events`).
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Data => "data",
            Capability::Events => "events",
        }
    }
}
