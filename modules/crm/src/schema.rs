//! The CRM schema, as versioned migrations.
//!
//! Version 1 uses the richer `create_table` format; version 2 is written in the original
//! EERP format (`add_column`, `create_index`), which the platform accepts unchanged.

use eerp_sdk::IndexType;
use eerp_sdk::{AddColumn, CheckOp, Column, CreateIndex, CreateTable, Migration, Operation};

/// Pipeline stages a contact can be in.
pub const STATUSES: [&str; 4] = ["lead", "prospect", "customer", "churned"];

/// All migration steps, oldest first. Never edit a released step: add a new one.
pub fn migrations() -> Vec<Migration> {
    vec![
        v1_contacts(),
        v2_website_and_company_index(),
        v3_companies(),
    ]
}

fn v1_contacts() -> Migration {
    let contacts = CreateTable::new(
        "contacts",
        vec![
            Column::new("name", "text").not_null(),
            Column::new("email", "text").unique(),
            Column::new("phone", "text"),
            Column::new("company", "text"),
            Column::new("status", "text")
                .not_null()
                .default_value("lead"),
            Column::new("notes", "text"),
            Column::new("credit_limit", "numeric(14,2)")
                .not_null()
                .default_value("0"),
            Column::new("last_contacted_at", "timestamptz"),
        ],
    )
    .check("status", CheckOp::In, STATUSES.to_vec())
    .check("credit_limit", CheckOp::Gte, "0");
    Migration {
        entity: "contacts".into(),
        version: 1,
        operations: vec![Operation::CreateTable(contacts)],
        data: None,
    }
}

fn v2_website_and_company_index() -> Migration {
    Migration {
        entity: "contacts".into(),
        version: 2,
        operations: vec![
            Operation::AddColumn(AddColumn {
                table: "contacts".into(),
                column: "website".into(),
                sql_type: "TEXT".into(),
                nullable: Some(true),
                index: false,
                index_type: None,
            }),
            Operation::CreateIndex(CreateIndex {
                table: "contacts".into(),
                column: "company".into(),
                index_type: Some(IndexType::Btree),
            }),
        ],
        data: None,
    }
}

fn v3_companies() -> Migration {
    let companies = CreateTable::new(
        "companies",
        vec![
            Column::new("name", "varchar(200)").not_null(),
            Column::new("is_customer", "boolean")
                .not_null()
                .default_value(false),
            Column::new("is_supplier", "boolean")
                .not_null()
                .default_value(false),
            Column::new("email", "varchar(320)"),
            Column::new("phone", "varchar(64)"),
            Column::new("tax_id", "varchar(32)"),
            Column::new("address", "varchar(1000)"),
        ],
    );
    Migration {
        entity: "companies".into(),
        version: 3,
        operations: vec![Operation::CreateTable(companies)],
        data: None,
    }
}
