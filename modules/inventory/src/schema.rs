//! The Inventory schema, as versioned migrations. Never edit a released step: add one.

use eerp_sdk::{
    AddColumn, CheckOp, Column, CreateIndex, CreateTable, DefaultFunction, Migration, Operation,
};

/// Kinds of stock move.
pub const MOVE_KINDS: [&str; 4] = ["receipt", "issue", "transfer", "adjustment"];
/// How an item's stock is valued.
pub const VALUATION_METHODS: [&str; 2] = ["moving_average", "fifo"];
/// States of a reservation.
pub const RESERVATION_STATES: [&str; 3] = ["active", "released", "consumed"];

const QTY: &str = "numeric(18,6)";
const RATE: &str = "numeric(24,10)";
const VALUE: &str = "numeric(18,2)";

/// All migration steps, oldest first.
pub fn migrations() -> Vec<Migration> {
    vec![v1_stock(), v2_posting_order_and_fifo()]
}

fn table(table: CreateTable) -> Operation {
    Operation::CreateTable(table)
}

fn index(table: &str, column: &str) -> Operation {
    Operation::CreateIndex(CreateIndex {
        table: table.into(),
        column: column.into(),
        index_type: None,
    })
}

fn v1_stock() -> Migration {
    let items = CreateTable::new(
        "items",
        vec![
            Column::new("sku", "varchar(64)").not_null().unique(),
            Column::new("name", "varchar(200)").not_null(),
            Column::new("uom", "varchar(16)")
                .not_null()
                .default_value("unit"),
            Column::new("description", "varchar(4000)"),
        ],
    );
    let warehouses = CreateTable::new(
        "warehouses",
        vec![
            Column::new("code", "varchar(32)").not_null().unique(),
            Column::new("name", "varchar(200)").not_null(),
        ],
    );
    let locations = CreateTable::new(
        "locations",
        vec![
            Column::new("warehouse_id", "uuid")
                .not_null()
                .references("warehouses"),
            Column::new("code", "varchar(32)").not_null(),
            Column::new("name", "varchar(200)").not_null(),
        ],
    )
    .unique_together(&["warehouse_id", "code"]);
    let balances = CreateTable::new(
        "balances",
        vec![
            Column::new("item_id", "uuid")
                .not_null()
                .references("items"),
            Column::new("location_id", "uuid")
                .not_null()
                .references("locations"),
            Column::new("on_hand", QTY).not_null().default_value("0"),
            Column::new("reserved", QTY).not_null().default_value("0"),
            Column::new("rate", RATE).not_null().default_value("0"),
            Column::new("value", VALUE).not_null().default_value("0"),
        ],
    )
    .unique_together(&["item_id", "location_id"])
    // The last line of defence: the module checks first and answers 409.
    .check("on_hand", CheckOp::Gte, "0")
    .check("reserved", CheckOp::Gte, "0")
    .check("value", CheckOp::Gte, "0");
    let moves = CreateTable::new(
        "moves",
        vec![
            Column::new("kind", "varchar(16)").not_null(),
            Column::new("item_id", "uuid")
                .not_null()
                .references("items"),
            Column::new("location_id", "uuid")
                .not_null()
                .references("locations"),
            Column::new("to_location_id", "uuid").references("locations"),
            Column::new("qty", QTY).not_null(),
            Column::new("rate", RATE).not_null(),
            Column::new("value", VALUE).not_null(),
            Column::new("reservation_id", "uuid"),
            Column::new("reference", "varchar(200)"),
            Column::new("date", "date")
                .not_null()
                .default_fn(DefaultFunction::Now),
        ],
    )
    .check("kind", CheckOp::In, MOVE_KINDS.to_vec());
    let ledger = CreateTable::new(
        "ledger",
        vec![
            Column::new("move_id", "uuid")
                .not_null()
                .references("moves"),
            Column::new("item_id", "uuid")
                .not_null()
                .references("items"),
            Column::new("location_id", "uuid")
                .not_null()
                .references("locations"),
            Column::new("qty_change", QTY).not_null(),
            Column::new("value_change", VALUE).not_null(),
            Column::new("rate", RATE).not_null(),
            Column::new("qty_after", QTY).not_null(),
            Column::new("value_after", VALUE).not_null(),
            Column::new("date", "date").not_null(),
        ],
    );
    let reservations = CreateTable::new(
        "reservations",
        vec![
            Column::new("item_id", "uuid")
                .not_null()
                .references("items"),
            Column::new("location_id", "uuid")
                .not_null()
                .references("locations"),
            Column::new("qty", QTY).not_null(),
            Column::new("remaining", QTY).not_null(),
            Column::new("status", "varchar(16)")
                .not_null()
                .default_value("active"),
            Column::new("reference", "varchar(200)"),
        ],
    )
    .check("qty", CheckOp::Gt, "0")
    .check("remaining", CheckOp::Gte, "0")
    .check("status", CheckOp::In, RESERVATION_STATES.to_vec());
    Migration {
        entity: "stock".into(),
        version: 1,
        operations: vec![
            table(items),
            table(warehouses),
            table(locations),
            table(balances),
            table(moves),
            table(ledger),
            table(reservations),
            index("locations", "warehouse_id"),
            index("moves", "item_id"),
            index("ledger", "item_id"),
            index("ledger", "location_id"),
            index("reservations", "item_id"),
        ],
        data: None,
    }
}

/// Ledger lines in posting order: `seq` per item and the rate after each line, so a
/// back-dated move can replay the lines after it (ADR 024); lines posted before this
/// step get their `seq` at their item's next move. FIFO valuation per item, its layers
/// on the balance and on every ledger line. Stock counts, stored as adjustments. Units
/// of measure per item, and the unit a move was posted in. Landed costs and re-priced
/// receipts. Cancelled moves and the moves that cancel them.
fn v2_posting_order_and_fifo() -> Migration {
    let units = CreateTable::new(
        "units",
        vec![
            Column::new("item_id", "uuid")
                .not_null()
                .references("items"),
            Column::new("uom", "varchar(16)").not_null(),
            Column::new("factor", "numeric(24,10)").not_null(),
        ],
    )
    .unique_together(&["item_id", "uom"])
    .check("factor", CheckOp::Gt, "0");
    let costs = CreateTable::new(
        "receipt_costs",
        vec![
            Column::new("kind", "varchar(16)").not_null(),
            Column::new("cost_type", "varchar(16)"),
            Column::new("amount", VALUE).not_null(),
            Column::new("split_by", "varchar(8)"),
            Column::new("reference", "varchar(200)"),
            Column::new("allocations", "jsonb").not_null(),
        ],
    )
    .check("kind", CheckOp::In, vec!["landed_cost", "reprice"]);
    let column = |table: &str, column: &str, sql_type: &str, index: bool| {
        Operation::AddColumn(AddColumn {
            index,
            ..AddColumn::nullable(table, column, sql_type)
        })
    };
    Migration {
        entity: "stock".into(),
        version: 2,
        operations: vec![
            column("ledger", "seq", "bigint", true),
            column("ledger", "rate_after", RATE, false),
            column("ledger", "layers", "jsonb", false),
            column("ledger", "cancelled", "boolean", false),
            column("balances", "layers", "jsonb", false),
            column("items", "valuation", "varchar(16)", false),
            column("items", "last_seq", "bigint", false),
            column("items", "last_date", "date", false),
            column("moves", "counted", QTY, false),
            column("moves", "count_rate", RATE, false),
            column("moves", "uom", "varchar(16)", false),
            column("moves", "uom_qty", QTY, false),
            column("moves", "landed", VALUE, false),
            column("moves", "reverses", "uuid", false),
            column("moves", "cancelled_by", "uuid", false),
            table(units),
            table(costs),
        ],
        data: None,
    }
}
