//! The operator audit log: every catalog change an operator makes is recorded (who, what,
//! when, before and after) in the same transaction as the change itself.

use deadpool_postgres::Transaction;
use eerp_tenancy::id::TenantSlug;
use serde_json::Value;

use crate::notify::{Change, announce};

/// Appends the action to the audit log, announces the change to every replica, and
/// commits: the three happen together or not at all.
pub async fn commit_audited(
    tx: Transaction<'_>,
    actor: &str,
    action: &str,
    tenant: Option<&TenantSlug>,
    change: Change,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), tokio_postgres::Error> {
    audit(&tx, actor, action, tenant, before, after).await?;
    announce(&*tx, &change).await?;
    tx.commit().await?;
    Ok(())
}

/// Appends to the audit log inside the action's transaction.
pub async fn audit(
    tx: &Transaction<'_>,
    actor: &str,
    action: &str,
    tenant: Option<&TenantSlug>,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO eerp.audit_log (actor, action, tenant, before, after)
         VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb)",
        &[
            &actor,
            &action,
            &tenant.map(TenantSlug::as_str),
            &before.map(Value::to_string),
            &after.map(Value::to_string),
        ],
    )
    .await?;
    Ok(())
}
