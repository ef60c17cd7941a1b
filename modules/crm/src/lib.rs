//! # eerp-crm: the CRM module
//!
//! Owns the tenant's companies (customers and suppliers, which Accounting reads as
//! parties) and contacts: people and companies the business deals with, each in a
//! pipeline stage (`lead`, `prospect`, `customer`, `churned`) with an exact-decimal credit
//! limit. Compiled to wasm it runs inside the EERP sandbox; natively its business rules
//! (validation, normalisation) are plain functions with unit tests.
//!
//! It must never reach anything but its own tables through the SDK's data API: no SQL, no
//! tenant names, no other module's data.
//!
//! Routes, under `/api/v1/crm`:
//!
//! | method | path | permission |
//! |---|---|---|
//! | GET | `/contacts` | `crm.contacts.read` |
//! | POST | `/contacts` | `crm.contacts.create` |
//! | POST | `/contacts/validate` | `crm.contacts.read` |
//! | GET | `/contacts/stats` | `crm.contacts.read` |
//! | GET | `/contacts/duplicates` | `crm.contacts.read` (compute-heavy) |
//! | GET | `/contacts/{id}` | `crm.contacts.read` |
//! | PATCH | `/contacts/{id}` | `crm.contacts.update` |
//! | DELETE | `/contacts/{id}` | `crm.contacts.delete` |
//! | POST | `/contacts/{id}/restore` | `crm.contacts.delete` |
//! | GET, POST | `/companies` | `crm.companies.read`, `.create` |
//! | GET, PATCH, DELETE | `/companies/{id}` | `crm.companies.read`, `.update`, `.delete` |
//! | POST | `/companies/{id}/restore` | `crm.companies.delete` |
//! | GET, POST, PATCH, DELETE | `/leads`, `/opportunities`, `/activities` (and `/{id}`, `/{id}/restore`) | `crm.<resource>.<action>` |
//! | POST | `/leads/{id}/convert` | `crm.leads.convert`: contact, company and opportunity in one request |

pub mod companies;
pub mod contacts;
pub mod pipeline;
pub mod schema;

use eerp_sdk::{Module, resource_routes};

/// The CRM module's definition.
pub fn module() -> Module {
    let module = Module::new("crm", env!("CARGO_PKG_VERSION")).migrations(schema::migrations);
    let module = contacts::routes(module);
    let module = resource_routes!(module, companies::Companies, "/companies", "crm.companies");
    pipeline::routes(module)
}

eerp_sdk::export!(module);

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_says_what_it_does_and_answers() {
        assert_eq!(super::module().undescribed_routes(), Vec::<String>::new());
    }
}
