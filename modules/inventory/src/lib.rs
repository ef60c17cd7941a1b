//! # eerp-inventory: the Inventory module
//!
//! Owns the tenant's stock: items, warehouses and locations, stock moves (receipt,
//! issue, transfer, adjustment) on a ledger in posting order per item, balances per item
//! and location that never go negative on any date, reservations, and moving-average or
//! FIFO valuation to the cent. A move is valued at its own date; a back-dated one values the
//! item's later moves again ([`history`]). Every move emits `inventory.stock_moved` with
//! the value that moved (and a `revaluation` for each later move whose value changed),
//! which Accounting (when the tenant has it) turns into a journal entry in the same
//! transaction.
//!
//! It must never reach anything but its own tables through the SDK's data API, and it
//! never knows whether anyone handles its events: a tenant without Accounting still
//! moves stock.
//!
//! Routes, under `/api/v1/inventory` (permissions `inventory.<resource>.<action>`):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | `/items`, `/warehouses`, `/locations`, `/units` | list (filters, cursor), create |
//! | GET, PATCH, DELETE | `/items/{id}` (and the others) | read, change, soft delete (refused while stock is held) |
//! | POST | `/items/{id}/restore` (and the others) | undo a soft delete |
//! | GET, POST | `/moves` | list moves; post a receipt, issue, transfer or adjustment |
//! | GET, DELETE | `/moves/{id}` | read a move; deleting is refused (409) |
//! | POST | `/moves/{id}/cancel` | cancel a move: its exact opposite on its date |
//! | GET | `/ledger` | ledger lines by item, location or move |
//! | POST | `/counts` | a stock count: sets what is on hand, posts the difference |
//! | GET, POST | `/receipt-costs` | list; add a landed cost to receipts, or re-price one |
//! | GET | `/receipt-costs/{id}` | read |
//! | GET | `/stock` | balances: on hand, reserved, available, rate, value, FIFO layers |
//! | GET, POST | `/reservations` | list, reserve |
//! | GET | `/reservations/{id}` | read |
//! | POST | `/reservations/{id}/release` | give the rest back |

pub mod catalog;
pub mod costs;
pub mod counts;
pub mod history;
pub mod moves;
pub mod reservations;
pub mod schema;
pub mod units;
pub mod valuation;

use eerp_sdk::{Module, resource_routes};

use catalog::{Items, Locations, Warehouses};
use units::Units;

/// The Inventory module's definition.
pub fn module() -> Module {
    let module = Module::new("inventory", env!("CARGO_PKG_VERSION")).migrations(schema::migrations);
    let module = resource_routes!(module, Items, "/items", "inventory.items");
    let module = resource_routes!(module, Warehouses, "/warehouses", "inventory.warehouses");
    let module = resource_routes!(module, Locations, "/locations", "inventory.locations");
    let module = resource_routes!(module, Units, "/units", "inventory.units");
    let module = counts::routes(reservations::routes(moves::routes(module)));
    costs::routes(module)
}

eerp_sdk::export!(module);

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_has_an_inventory_permission_and_routes_do_not_clash() {
        let manifest = super::module().manifest();
        assert_eq!(manifest.name, "inventory");
        assert_eq!(manifest.events, ["inventory.stock_moved"]);
        let mut seen = std::collections::BTreeSet::new();
        for route in &manifest.routes {
            assert!(route.permission.starts_with("inventory."), "{route:?}");
            assert!(
                seen.insert((&route.method, &route.path)),
                "twice: {route:?}"
            );
        }
        assert_eq!(manifest.routes.len(), 24 + 7 + 4 + 1 + 3);
        // The one route without a success: deleting a move is always refused.
        assert_eq!(super::module().undescribed_routes(), ["DELETE /moves/{id}"]);
    }
}
