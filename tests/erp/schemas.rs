//! Schema per (tenant, module) is what lets Citus place each schema on any node
//! (docs/scaling.md): no foreign key may leave its schema, neither a module's nor the
//! catalog's.

use super::Tenant;

#[tokio::test]
async fn no_foreign_key_crosses_a_schema() {
    let tenant = Tenant::with(&["crm", "inventory", "accounting", "hr"]).await;
    let conn = tenant.app.state.pool.get().await.unwrap();
    let keys = conn
        .query(
            "SELECT c.conname::text, a.relnamespace::regnamespace::text, b.relnamespace::regnamespace::text
             FROM pg_constraint c
             JOIN pg_class a ON a.oid = c.conrelid
             JOIN pg_class b ON b.oid = c.confrelid
             WHERE c.contype = 'f'",
            &[],
        )
        .await
        .unwrap();
    let keys: Vec<(String, String, String)> = keys
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let crossing: Vec<_> = keys.iter().filter(|(_, from, to)| from != to).collect();
    assert!(
        crossing.is_empty(),
        "foreign keys across schemas: {crossing:?}"
    );
    // The check saw real keys: the catalog's, and every module's.
    let schemas: std::collections::BTreeSet<&str> =
        keys.iter().map(|(_, from, _)| from.as_str()).collect();
    let modules = ["crm", "inventory", "accounting", "hr"].map(|m| format!("t_acme__{m}"));
    for expected in std::iter::once("eerp").chain(modules.iter().map(String::as_str)) {
        assert!(
            schemas.contains(expected),
            "no foreign key in {expected}: {schemas:?}"
        );
    }
}
