//! What one request's data calls may touch, fixed by the host before the module runs:
//! the tenant, the calling module's schema and tables, the read grants resolved for this
//! tenant, the limits, the transaction and the usage so far.

use std::sync::Arc;

use eerp_abi::data::{DataError, DataErrorKind, DataOp};
use eerp_tenancy::Limits;
use eerp_tenancy::id::{ModuleName, TenantSlug};

use super::{DataUsage, error};
use crate::db::DbSession;
use crate::migrations::SchemaModel;

/// The data API's per-request state.
pub struct RequestScope {
    /// The tenant from the verified token.
    pub tenant: TenantSlug,
    /// The module being called.
    pub module: ModuleName,
    /// The (tenant, module) schema every statement on its own tables is qualified with.
    pub schema: String,
    /// The module's declared tables.
    pub model: Arc<SchemaModel>,
    /// The module's read grants, resolved for this tenant.
    pub grants: Vec<ReadGrant>,
    /// The tenant's limits.
    pub limits: Limits,
    /// The request's database transaction, opened on first use.
    pub db: DbSession,
    /// Data API usage so far, checked against `limits`.
    pub usage: DataUsage,
}

/// A read grant (`read:<module>.<table>`) of the calling module.
#[derive(Debug, Clone)]
pub struct ReadGrant {
    /// The granted module.
    pub module: String,
    /// The granted table.
    pub table: String,
    /// That module's schema for this tenant and its tables, when it is enabled for the
    /// tenant; `None` otherwise, and the grant then reads nothing.
    pub target: Option<(String, Arc<SchemaModel>)>,
}

impl RequestScope {
    /// The schema and tables `op` runs against: the module's own, or another module's
    /// through a read grant. Writes and row locks never cross modules.
    ///
    /// # Errors
    /// [`DataErrorKind::Forbidden`] naming the missing grant, the write refused, or the
    /// granted module that is not enabled for the tenant.
    pub fn target(&self, op: &DataOp) -> Result<(&str, &SchemaModel), DataError> {
        let own = (self.schema.as_str(), self.model.as_ref());
        let Some(other) = op.module().filter(|m| *m != self.module.as_str()) else {
            return Ok(own);
        };
        let table = op.table();
        if !op.is_read() {
            return Err(error(
                DataErrorKind::Forbidden,
                format!(
                    "`{}` may not write or lock `{other}.{table}`: grants only read; ask `{other}` \
                     through its routes or events",
                    self.module
                ),
            ));
        }
        let grant = self
            .grants
            .iter()
            .find(|g| g.module == other && g.table == table)
            .ok_or_else(|| {
                error(
                    DataErrorKind::Forbidden,
                    format!(
                        "`{}` has no grant `read:{other}.{table}`; add it to the manifest's grants",
                        self.module
                    ),
                )
            })?;
        grant
            .target
            .as_ref()
            .map(|(schema, model)| (schema.as_str(), model.as_ref()))
            .ok_or_else(|| {
                error(
                    DataErrorKind::Forbidden,
                    format!("module `{other}` is not enabled for this tenant, so `{other}.{table}` cannot be read"),
                )
            })
    }
}
