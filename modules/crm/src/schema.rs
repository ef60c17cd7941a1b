//! The CRM schema, as versioned migrations.
//!
//! Version 1 uses the richer `create_table` format; version 2 is written in the original
//! EERP format (`add_column`, `create_index`), which the platform accepts unchanged.

use eerp_sdk::IndexType;
use eerp_sdk::{AddColumn, CheckOp, Column, CreateIndex, CreateTable, Migration, Operation};

/// States of a lead.
pub const LEAD_STATES: [&str; 4] = ["new", "qualified", "disqualified", "converted"];
/// Stages of an opportunity: the open ones in order, then the two closed ones.
pub const STAGES: [&str; 6] = [
    "qualification",
    "proposal",
    "negotiation",
    "review",
    "won",
    "lost",
];
/// Kinds of activity.
pub const ACTIVITY_KINDS: [&str; 3] = ["call", "meeting", "note"];
/// What an activity can be about.
pub const ACTIVITY_TARGETS: [&str; 4] = ["company", "contact", "lead", "opportunity"];

/// Pipeline stages a contact can be in.
pub const STATUSES: [&str; 4] = ["lead", "prospect", "customer", "churned"];

/// All migration steps, oldest first. Never edit a released step: add a new one.
pub fn migrations() -> Vec<Migration> {
    vec![
        v1_contacts(),
        v2_website_and_company_index(),
        v3_companies(),
        v4_pipeline(),
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
            Operation::AddColumn(AddColumn::nullable("contacts", "website", "TEXT")),
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

fn v4_pipeline() -> Migration {
    let leads = CreateTable::new(
        "leads",
        vec![
            Column::new("name", "varchar(200)").not_null(),
            Column::new("company_name", "varchar(200)"),
            Column::new("email", "varchar(320)"),
            Column::new("phone", "varchar(64)"),
            Column::new("source", "varchar(64)"),
            Column::new("status", "varchar(16)")
                .not_null()
                .default_value("new"),
            Column::new("notes", "varchar(4000)"),
            Column::new("contact_id", "uuid").references("contacts"),
            Column::new("opportunity_id", "uuid"),
        ],
    )
    .check("status", CheckOp::In, LEAD_STATES.to_vec());
    let opportunities = CreateTable::new(
        "opportunities",
        vec![
            Column::new("name", "varchar(200)").not_null(),
            Column::new("company_id", "uuid").references("companies"),
            Column::new("contact_id", "uuid").references("contacts"),
            Column::new("lead_id", "uuid").references("leads"),
            Column::new("stage", "varchar(16)")
                .not_null()
                .default_value("qualification"),
            Column::new("amount", "numeric(14,2)"),
            Column::new("probability", "integer"),
            Column::new("expected_close", "date"),
            Column::new("lost_reason", "varchar(500)"),
        ],
    )
    .check("stage", CheckOp::In, STAGES.to_vec())
    .check("amount", CheckOp::Gte, "0")
    .check("probability", CheckOp::Gte, 0)
    .check("probability", CheckOp::Lte, 100);
    let activities = CreateTable::new(
        "activities",
        vec![
            Column::new("kind", "varchar(16)").not_null(),
            Column::new("subject", "varchar(200)").not_null(),
            Column::new("notes", "varchar(4000)"),
            Column::new("on_type", "varchar(16)").not_null(),
            Column::new("on_id", "uuid").not_null(),
            Column::new("due_on", "date"),
            Column::new("done", "boolean")
                .not_null()
                .default_value(false),
        ],
    )
    .check("kind", CheckOp::In, ACTIVITY_KINDS.to_vec())
    .check("on_type", CheckOp::In, ACTIVITY_TARGETS.to_vec());
    Migration {
        entity: "pipeline".into(),
        version: 4,
        operations: vec![
            Operation::CreateTable(leads),
            Operation::CreateTable(opportunities),
            Operation::CreateTable(activities),
            Operation::CreateIndex(CreateIndex {
                table: "activities".into(),
                column: "on_id".into(),
                index_type: None,
            }),
        ],
        data: None,
    }
}
