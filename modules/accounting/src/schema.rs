//! The Accounting schema, as versioned migrations. Never edit a released step: add one.

use eerp_sdk::{AddColumn, CheckOp, Column, CreateIndex, CreateTable, Migration, Operation};

/// Account types, which decide the report an account belongs to and its normal side.
pub const ACCOUNT_TYPES: [&str; 5] = ["asset", "liability", "equity", "income", "expense"];
/// Account kinds whose lines need a party (a CRM company).
pub const PARTY_KINDS: [&str; 2] = ["receivable", "payable"];
/// States of an entry.
pub const ENTRY_STATES: [&str; 2] = ["draft", "posted"];
/// States of a fiscal period.
pub const PERIOD_STATES: [&str; 2] = ["open", "closed"];

const MONEY: &str = "numeric(18,2)";

/// All migration steps, oldest first.
pub fn migrations() -> Vec<Migration> {
    vec![v1_ledger(), v2_closing_lines()]
}

/// Lines of period-closing entries are marked, so profit and loss leaves them out; the
/// books keep the tenant's round-off tolerance.
fn v2_closing_lines() -> Migration {
    Migration {
        entity: "ledger".into(),
        version: 2,
        operations: vec![
            Operation::AddColumn(AddColumn::nullable("lines", "closing", "boolean")),
            Operation::AddColumn(AddColumn::nullable(
                "books",
                "round_off_tolerance",
                "numeric(18,2)",
            )),
        ],
        data: None,
    }
}

fn index(table: &str, column: &str) -> Operation {
    Operation::CreateIndex(CreateIndex {
        table: table.into(),
        column: column.into(),
        index_type: None,
    })
}

fn v1_ledger() -> Migration {
    let accounts = CreateTable::new(
        "accounts",
        vec![
            Column::new("code", "varchar(20)").not_null().unique(),
            Column::new("name", "varchar(200)").not_null(),
            Column::new("type", "varchar(16)").not_null(),
            Column::new("parent_id", "uuid").references("accounts"),
            Column::new("is_group", "boolean")
                .not_null()
                .default_value(false),
            Column::new("kind", "varchar(16)"),
            // What the module itself posts to: `stock_valuation`, `cogs`, ...
            Column::new("role", "varchar(32)").unique(),
        ],
    )
    .check("type", CheckOp::In, ACCOUNT_TYPES.to_vec())
    .check("kind", CheckOp::In, PARTY_KINDS.to_vec());
    let journals = CreateTable::new(
        "journals",
        vec![
            Column::new("code", "varchar(16)").not_null().unique(),
            Column::new("name", "varchar(200)").not_null(),
        ],
    );
    let entries = CreateTable::new(
        "entries",
        vec![
            Column::new("journal_id", "uuid")
                .not_null()
                .references("journals"),
            Column::new("date", "date").not_null(),
            Column::new("status", "varchar(16)").not_null(),
            Column::new("reference", "varchar(200)"),
            Column::new("memo", "varchar(1000)"),
            Column::new("total", MONEY).not_null().default_value("0"),
            // Drafts keep their lines here; posting writes them to `lines`.
            Column::new("draft_lines", "jsonb"),
            Column::new("reversal_of", "uuid").references("entries"),
            Column::new("reversed_by", "uuid").references("entries"),
            // Who posted it when it was not a caller: `inventory.move:<id>`.
            Column::new("source", "varchar(100)").unique(),
        ],
    )
    .check("status", CheckOp::In, ENTRY_STATES.to_vec());
    let lines = CreateTable::new(
        "lines",
        vec![
            Column::new("entry_id", "uuid")
                .not_null()
                .references("entries"),
            // The line's place in its entry, from 1.
            Column::new("seq", "integer").not_null(),
            Column::new("account_id", "uuid")
                .not_null()
                .references("accounts"),
            Column::new("date", "date").not_null(),
            Column::new("debit", MONEY).not_null().default_value("0"),
            Column::new("credit", MONEY).not_null().default_value("0"),
            Column::new("party_id", "uuid"),
            Column::new("memo", "varchar(200)"),
        ],
    )
    .check("debit", CheckOp::Gte, "0")
    .check("credit", CheckOp::Gte, "0");
    let periods = CreateTable::new(
        "periods",
        vec![
            Column::new("name", "varchar(64)").not_null().unique(),
            Column::new("start_date", "date").not_null(),
            Column::new("end_date", "date").not_null(),
            Column::new("status", "varchar(16)")
                .not_null()
                .default_value("open"),
            // What the period held when it was closed: nothing may change it after.
            Column::new("closed_entries", "integer"),
            Column::new("closed_debit", MONEY),
        ],
    )
    .check("status", CheckOp::In, PERIOD_STATES.to_vec());
    // One row: changes to the account tree lock it alone, one at a time.
    let chart = CreateTable::new(
        "chart",
        vec![Column::new("singleton", "varchar(1)").not_null().unique()],
    );
    // One row: postings share-lock it, closing and opening periods lock it alone.
    let books = CreateTable::new(
        "books",
        vec![Column::new("singleton", "varchar(1)").not_null().unique()],
    );
    Migration {
        entity: "ledger".into(),
        version: 1,
        operations: vec![
            Operation::CreateTable(accounts),
            Operation::CreateTable(journals),
            Operation::CreateTable(entries),
            Operation::CreateTable(lines),
            Operation::CreateTable(periods),
            Operation::CreateTable(books),
            Operation::CreateTable(chart),
            index("lines", "account_id"),
            index("lines", "date"),
            index("lines", "entry_id"),
            index("entries", "date"),
        ],
        data: None,
    }
}
