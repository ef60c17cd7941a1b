//! # eerp-accounting: the Accounting module
//!
//! Owns the tenant's general ledger: a hierarchical chart of accounts (asset, liability,
//! equity, income, expense), journals, journal entries whose lines balance to the cent,
//! fiscal periods that can be closed, and the reports built on them (trial balance,
//! account ledger, balance sheet, profit and loss). A posted entry's amounts, accounts
//! and date never change (a reversal entry corrects one; its reference and memo may be
//! edited). A period's close can first post its closing entry, moving the period's
//! income and expenses to retained earnings. It posts the perpetual-inventory entry of every stock
//! move Inventory reports, and reads CRM companies as the parties of receivable and
//! payable lines, through the grant `read:crm.companies`.
//!
//! It must never reach anything but its own tables through the SDK's data API, and
//! never writes another module's: it reads CRM and reacts to Inventory's events.
//!
//! Routes, under `/api/v1/accounting` (permissions `accounting.<resource>.<action>`):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | `/accounts`, `/journals` | list, create |
//! | GET, PATCH, DELETE | `/accounts/{id}`, `/journals/{id}` | read, change, soft delete |
//! | POST | `/accounts/{id}/restore`, `/journals/{id}/restore` | undo a soft delete |
//! | GET, POST | `/entries` | list; post an entry (or keep a draft with `"draft": true`) |
//! | GET, PATCH, DELETE | `/entries/{id}` | read with lines; change or delete a draft (once posted: only reference and memo change) |
//! | POST | `/entries/{id}/post`, `/entries/{id}/reverse` | post a draft; reverse a posted entry |
//! | GET, POST | `/periods` | list, open a period |
//! | GET | `/periods/{id}` | read |
//! | POST | `/periods/{id}/close`, `/periods/{id}/reopen` | close (postings dated in it are refused; `{"closing_entry": true}` posts the closing entry first), reopen |
//! | GET | `/reports/trial-balance`, `/reports/balance-sheet`, `/reports/profit-and-loss` | `?from=&to=` |
//! | GET | `/reports/ledger` | `?account_id=&from=&to=&cursor=` |
//! | GET, PATCH | `/settings` | the round-off tolerance (0.00, off, by default) |

pub mod chart;
pub mod closing;
pub mod entries;
pub mod periods;
pub mod reports;
pub mod schema;
pub mod settings;
pub mod stock;

use eerp_sdk::{Module, resource_routes};

use chart::{Accounts, Journals};

/// The Accounting module's definition.
pub fn module() -> Module {
    let module = Module::new("accounting", env!("CARGO_PKG_VERSION"))
        .migrations(schema::migrations)
        .grant("read:crm.companies")
        .on(stock::STOCK_MOVED, stock::on_stock_moved);
    let module = resource_routes!(module, Accounts, "/accounts", "accounting.accounts");
    let module = resource_routes!(module, Journals, "/journals", "accounting.journals");
    let module = entries::routes(module);
    let module = periods::routes(module);
    settings::routes(reports::routes(module))
}

eerp_sdk::export!(module);

#[cfg(test)]
mod tests {
    #[test]
    fn routes_are_distinct_and_carry_accounting_permissions() {
        let manifest = super::module().manifest();
        assert_eq!(manifest.grants, ["read:crm.companies"]);
        assert_eq!(manifest.subscriptions, ["inventory.stock_moved"]);
        let mut seen = std::collections::BTreeSet::new();
        for route in &manifest.routes {
            assert!(route.permission.starts_with("accounting."), "{route:?}");
            assert!(
                seen.insert((&route.method, &route.path)),
                "twice: {route:?}"
            );
        }
        assert_eq!(super::module().undescribed_routes(), Vec::<String>::new());
    }
}
