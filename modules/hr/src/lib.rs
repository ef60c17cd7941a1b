//! # eerp-hr: the HR module
//!
//! Owns the tenant's people: departments (a tree), positions, employees with a manager
//! (never themselves, never in a cycle), leave types, allocations and leave requests
//! (draft, submitted, approved, rejected, cancelled; half days). Requests of one employee
//! never overlap, and balances are allocated − approved, with pending requests shown
//! apart and never allowed to drive the balance negative. A request counts the days
//! between that are neither the company's weekly days off nor its holidays.
//!
//! It must never reach anything but its own tables through the SDK's data API.
//!
//! Routes, under `/api/v1/hr` (permissions `hr.<resource>.<action>`):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | `/departments`, `/positions`, `/employees`, `/leave-types`, `/allocations`, `/holidays` | list, create |
//! | GET, PATCH, DELETE | `/departments/{id}` (and the others) | read, change, soft delete |
//! | POST | `/departments/{id}/restore` (and the others) | undo a soft delete |
//! | GET, POST | `/leave-requests` | list; ask for leave (a draft) |
//! | GET, PATCH | `/leave-requests/{id}` | read; change a draft |
//! | POST | `/leave-requests/{id}/submit`, `/approve`, `/reject`, `/cancel` | move it on (`hr.leave.approve` decides; a leave type may need two approvers) |
//! | GET | `/employees/{id}/balances` | allocated, approved, pending and balance per leave type |

pub mod calendar;
pub mod holidays;
pub mod leave;
pub mod org;
pub mod schema;

use eerp_sdk::{Module, resource_routes};

use holidays::Holidays;
use org::{Allocations, Departments, Employees, LeaveTypes, Positions};

/// The HR module's definition.
pub fn module() -> Module {
    let module = Module::new("hr", env!("CARGO_PKG_VERSION")).migrations(schema::migrations);
    let module = resource_routes!(module, Departments, "/departments", "hr.departments");
    let module = resource_routes!(module, Positions, "/positions", "hr.positions");
    let module = resource_routes!(module, Employees, "/employees", "hr.employees");
    let module = resource_routes!(module, LeaveTypes, "/leave-types", "hr.leave_types");
    let module = resource_routes!(module, Allocations, "/allocations", "hr.allocations");
    let module = resource_routes!(module, Holidays, "/holidays", "hr.holidays");
    leave::routes(module)
}

eerp_sdk::export!(module);

#[cfg(test)]
mod tests {
    #[test]
    fn routes_are_distinct_and_carry_hr_permissions() {
        let manifest = super::module().manifest();
        let mut seen = std::collections::BTreeSet::new();
        for route in &manifest.routes {
            assert!(route.permission.starts_with("hr."), "{route:?}");
            assert!(
                seen.insert((&route.method, &route.path)),
                "twice: {route:?}"
            );
        }
        assert_eq!(manifest.routes.len(), 6 * 6 + 9);
        assert_eq!(super::module().undescribed_routes(), Vec::<String>::new());
    }
}
