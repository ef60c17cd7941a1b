//! Companies: the parties the business deals with (customers, suppliers), which
//! Accounting reads through its `read:crm.companies` grant for receivable and payable
//! lines.

use eerp_sdk::{Checks, Ctx, Error, FilterOp, ListSpec, Resource, Row, Table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A company.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Company {
    /// Legal or display name, 1..=200 characters.
    pub name: String,
    /// Buys from the business.
    pub is_customer: Option<bool>,
    /// Sells to the business.
    pub is_supplier: Option<bool>,
    /// Contact email, stored lower-case.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Tax or VAT number.
    pub tax_id: Option<String>,
    /// Postal address.
    pub address: Option<String>,
}

/// The companies table.
pub const COMPANIES: Table<Row<Company>> = Table::new("companies");

/// Companies as a REST resource.
#[derive(Debug)]
pub struct Companies;

impl Resource for Companies {
    type Record = Company;
    const TABLE: Table<Row<Company>> = COMPANIES;
    const NAME: &'static str = "company";

    fn list_spec() -> ListSpec {
        ListSpec::new("companies")
            .filter_by("q", "name", FilterOp::Contains)
            .filter_bool("is_customer")
            .filter_bool("is_supplier")
            .sortable(&["name"])
    }

    fn check(
        _ctx: &mut Ctx,
        mut company: Company,
        _current: Option<&Row<Company>>,
    ) -> Result<Company, Error> {
        company.name = company.name.trim().to_string();
        company.email = company.email.map(|e| e.trim().to_ascii_lowercase());
        let mut checks = Checks::new();
        checks
            .text("name", &company.name, 1, 200)
            .email("email", company.email.as_deref())
            .max_len("phone", company.phone.as_deref(), 64)
            .max_len("tax_id", company.tax_id.as_deref(), 32)
            .max_len("address", company.address.as_deref(), 1000);
        checks.finish("company", "invalid_company")?;
        Ok(company)
    }
}
