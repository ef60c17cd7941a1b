//! # eerp-platform: the EERP host
//!
//! One service for many tenants. Each request is authenticated from its token, routed to
//! a module's route, and run in a fresh wasm sandbox with fuel, memory and
//! time limits; the module reaches its tables only through the host's data API, inside
//! one transaction in the tenant's own schema.
//!
//! Map of the crate, following a request:
//! - [`http`]: routes, authentication, dispatch, the admin API, problem+json errors,
//!   health.
//! - [`tenants`]: the tenant directory (cached), admission gates, provisioning, operator
//!   actions and fleet migration.
//! - [`cli`]: the operator commands, a client of the admin API.
//! - [`runtime`]: engine, loaded modules, per-request Store, limits, outcome classes.
//! - [`data_api`]: typed operations from modules -> SQL with bind parameters.
//! - [`migrations`]: module migration JSON -> DDL, and the platform catalog.
//! - [`registry`]: loaded modules behind an atomic swap.
//! - [`openapi`]: the OpenAPI document of a tenant, from its modules' manifests.
//! - [`metrics`]: Prometheus families, module CPU time, the capped tenant label.
//! - [`db`]: the shared pool and the request transaction (`SET LOCAL` only).
//! - [`sql`]: quoted identifiers and literals, and the rules for table and column names.
//! - [`startup`], [`state`], [`config`], [`telemetry`]: building and running the app.
//! - [`upgrade`]: `eerp migrate`, a release's database work before its replicas start.
//! - [`dev`]: `eerp dev` and the throwaway PostgreSQL it (and the tests) start.
//!
//! It must never let a module choose a tenant, a schema or SQL text, and never set
//! session-level state on a pooled connection.

pub mod audit;
pub mod cli;
pub mod config;
pub mod data_api;
pub mod db;
pub mod dev;
pub mod http;
pub mod metrics;
pub mod migrations;
pub mod notify;
pub mod openapi;
pub mod registry;
pub mod runtime;
pub mod sql;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tenants;
pub mod upgrade;

pub use config::Settings;

/// An error with its causes, `: `-separated: how errors are written once, where they are
/// logged.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
pub use startup::App;
pub use state::AppState;
