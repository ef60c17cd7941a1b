//! The manifest a module returns from `eerp_manifest`: who it is and what it serves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// JSON Schemas (2020-12) the routes' schemas refer to as `#/$defs/<name>`, by name.
    /// The host serves them to API clients in its OpenAPI document; it never validates
    /// requests with them (the module does).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schemas: BTreeMap<String, Value>,
}

/// The method of the request envelope an event handler receives; its `route` is the
/// event's name and its `body` the payload.
pub const EVENT_METHOD: &str = "EVENT";

/// One HTTP route served by a module, mounted under `/api/v1/<module>`. Besides what the
/// host routes by (method, path, permission), it describes itself for API clients; a route
/// that does not is still served, and documented as taking and answering any JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: String,
    /// Path template relative to the module mount: literal segments and `{name}`
    /// parameters, e.g. `/contacts/{id}/restore`.
    pub path: String,
    /// Permission the caller needs, e.g. `crm.contacts.read`.
    pub permission: String,
    /// One line saying what the route does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// Its path and query parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// JSON Schema of the JSON body it takes, if it takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// The route also takes no body at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub request_optional: bool,
    /// Its successful answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responses: Vec<RouteResponse>,
}

/// A path or query parameter of a route.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Its name: a `{name}` of the path template, or a query string key.
    pub name: String,
    /// Where it goes.
    #[serde(rename = "in")]
    pub location: ParameterIn,
    /// Whether the route needs it (path parameters always do).
    #[serde(default)]
    pub required: bool,
    /// What it means.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// JSON Schema of its value.
    pub schema: Value,
}

/// Where a [`Parameter`] goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ParameterIn {
    /// A `{name}` segment of the path.
    Path,
    /// A query string key.
    Query,
}

/// A successful answer of a route.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteResponse {
    /// HTTP status, 200..=299.
    pub status: u16,
    /// JSON Schema of the body; none for an answer without one (204).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
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
