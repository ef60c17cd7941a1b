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
    #[error("database error")]
    Db(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The catalog holds something this platform cannot read.
    #[error("unreadable catalog data: {0}")]
    Catalog(String),
    /// A failure shared by every request that waited on the same load.
    #[error(transparent)]
    Shared(#[from] std::sync::Arc<TenantError>),
    /// The module's migrations could not be applied.
    #[error(transparent)]
    Migration(#[from] MigrationError),
}
