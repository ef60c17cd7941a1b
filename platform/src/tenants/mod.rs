//! Tenants: the catalog records, their life cycle, and what the request path reads.
//!
//! - [`directory`]: the cached view of a tenant the request path uses.
//! - [`gate`]: per-tenant rate and concurrency admission.
//! - [`lifecycle`]: provisioning and every operator action, each audited.
//! - [`fleet`]: applying a module's new migrations to every tenant.
//!
//! Every step of provisioning is idempotent, so a crashed `create` is finished by running
//! it again; a tenant is served only once it is `active`.

pub mod directory;
pub mod fleet;
pub mod gate;
pub mod lifecycle;

use thiserror::Error;

use crate::migrations::MigrationError;

pub use directory::{Status, TenantDirectory, TenantEntry};

/// Why a tenant operation failed.
#[derive(Debug, Error)]
pub enum TenantError {
    /// No such tenant (or plan, or module).
    #[error("{0}")]
    NotFound(String),
    /// The operation does not fit the tenant's current state.
    #[error("{0}")]
    Conflict(String),
    /// The input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(String),
    /// The module's migrations could not be applied.
    #[error(transparent)]
    Migration(#[from] MigrationError),
}

impl From<tokio_postgres::Error> for TenantError {
    fn from(e: tokio_postgres::Error) -> Self {
        TenantError::Db(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for TenantError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        TenantError::Db(e.to_string())
    }
}
