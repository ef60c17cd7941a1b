//! Module migrations: from `migrate()` JSON to DDL in the (tenant, module) schema.
//!
//! - [`model`]: the tables and columns the migrations declare, used by the data API.
//! - [`plan`]: JSON steps in both formats -> validated DDL statements.
//! - [`apply`]: runs pending steps under an advisory lock, one transaction per
//!   (tenant, module), and records them in the catalog's history.
//! - [`catalog`]: the platform's own schema (`eerp`), versioned the same way.

pub mod apply;
pub mod catalog;
pub mod model;
pub mod plan;

use eerp_abi::migration::Migration;
use eerp_tenancy::id::ModuleName;
use semver::Version;
use thiserror::Error;

pub use apply::{apply_module, dry_run, roll_back};
pub use model::{ColumnModel, SchemaModel, TableModel};

/// A module version's schema as migrations see it: who it is and its steps.
#[derive(Debug, Clone, Copy)]
pub struct ModuleSchema<'a> {
    /// The module.
    pub name: &'a ModuleName,
    /// The module version a tenant is served once these steps are applied.
    pub version: &'a Version,
    /// Its migration steps, oldest first.
    pub migrations: &'a [Migration],
}

/// Why migrations could not be planned or applied.
#[derive(Debug, Error)]
pub enum MigrationError {
    /// `migrate()` did not return migration JSON.
    #[error("migrate() did not return valid migration JSON: {0}")]
    Json(String),
    /// A step is not valid.
    #[error("migration v{version}: {message}")]
    Invalid {
        /// The step's version.
        version: u32,
        /// What is wrong.
        message: String,
    },
    /// Versions are not strictly increasing, or one is 0.
    #[error("migration versions must be at least 1 and strictly increasing; found {0:?}")]
    Versions(Vec<u32>),
    /// A step already applied differs from the module's current one.
    #[error(
        "migration v{version} of `{module}` was changed after it was applied to tenant \
         `{tenant}`; released migrations are forward-only: add a new version instead"
    )]
    Changed {
        /// Module.
        module: String,
        /// Tenant.
        tenant: String,
        /// Version.
        version: u32,
    },
    /// The database has versions the module does not know.
    #[error(
        "tenant `{tenant}` has `{module}` migrations up to v{applied}, but this module \
         version only knows up to v{known}; deploy the newer module"
    )]
    Ahead {
        /// Module.
        module: String,
        /// Tenant.
        tenant: String,
        /// Highest applied version.
        applied: u32,
        /// Highest known version.
        known: u32,
    },
    /// The module version is not (or no longer) stored: it was retired meanwhile.
    #[error(
        "version {version} of module `{module}` is not stored or was retired; `eerp module list` shows the live versions"
    )]
    NotStored {
        /// Module.
        module: String,
        /// Version.
        version: String,
    },
    /// A rollback to a version whose migrations are not a prefix of the applied ones.
    #[error(
        "tenant `{tenant}` cannot go back to `{module}` {version}: {reason}; only a version \
         whose migrations the tenant has all applied, unchanged, can serve it"
    )]
    NotAPrefix {
        /// Module.
        module: String,
        /// Tenant.
        tenant: String,
        /// The version asked for.
        version: String,
        /// Which step does not fit.
        reason: String,
    },
    /// PostgreSQL refused a statement.
    #[error("database error while migrating: {}", db_message(.0))]
    Db(#[source] tokio_postgres::Error),
    /// The database could not be reached, or the statement hit a transient condition (lock
    /// timeout, cancellation, serialization failure): retrying may succeed.
    #[error("database unavailable while migrating: {}", db_message(.0))]
    Unavailable(#[source] tokio_postgres::Error),
    /// No connection could be had from the pool: retrying may succeed.
    #[error("no database connection for migrating")]
    NoConnection(#[source] deadpool_postgres::PoolError),
}

impl MigrationError {
    /// Whether retrying may succeed (the database was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MigrationError::Unavailable(_) | MigrationError::NoConnection(_)
        )
    }
}

/// PostgreSQL's own message for a database error, else the client's.
pub fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_string())
}

impl From<tokio_postgres::Error> for MigrationError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            return MigrationError::Unavailable(e);
        };
        let code = db.code().code();
        let transient = ["08", "53", "57", "40"]
            .iter()
            .any(|class| code.starts_with(class))
            || code == "55P03";
        if transient {
            MigrationError::Unavailable(e)
        } else {
            MigrationError::Db(e)
        }
    }
}

impl From<deadpool_postgres::PoolError> for MigrationError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        MigrationError::NoConnection(e)
    }
}
