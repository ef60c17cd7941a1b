//! The HR schema, as versioned migrations. Never edit a released step: add one.

use eerp_sdk::{AddColumn, CheckOp, Column, CreateIndex, CreateTable, Migration, Operation};

/// States of a leave request.
pub const LEAVE_STATES: [&str; 5] = ["draft", "submitted", "approved", "rejected", "cancelled"];
/// States an employee can be in.
pub const EMPLOYEE_STATES: [&str; 2] = ["active", "left"];

/// All migration steps, oldest first.
pub fn migrations() -> Vec<Migration> {
    vec![v1_people_and_leave(), v2_holidays()]
}

/// The company's holiday list: dated holidays and weekly days off. Leave types that need
/// a second approval, and who gave the first. A half day inside a longer request.
fn v2_holidays() -> Migration {
    let holidays = CreateTable::new(
        "holidays",
        vec![
            Column::new("date", "date").unique(),
            Column::new("weekday", "varchar(16)").unique(),
            Column::new("name", "varchar(200)").not_null(),
        ],
    );
    let column = |table: &str, column: &str, sql_type: &str| {
        Operation::AddColumn(AddColumn::nullable(table, column, sql_type))
    };
    Migration {
        entity: "holidays".into(),
        version: 2,
        operations: vec![
            Operation::CreateTable(holidays),
            column("leave_types", "approvals", "integer"),
            column("leave_requests", "first_approved_by", "varchar(200)"),
            column("leave_requests", "half_day_date", "date"),
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

fn v1_people_and_leave() -> Migration {
    let departments = CreateTable::new(
        "departments",
        vec![
            Column::new("code", "varchar(32)").not_null().unique(),
            Column::new("name", "varchar(200)").not_null(),
            Column::new("parent_id", "uuid").references("departments"),
        ],
    );
    let positions = CreateTable::new(
        "positions",
        vec![
            Column::new("title", "varchar(200)").not_null(),
            Column::new("department_id", "uuid").references("departments"),
        ],
    );
    let employees = CreateTable::new(
        "employees",
        vec![
            Column::new("name", "varchar(200)").not_null(),
            Column::new("email", "varchar(320)").unique(),
            Column::new("department_id", "uuid").references("departments"),
            Column::new("position_id", "uuid").references("positions"),
            Column::new("manager_id", "uuid").references("employees"),
            Column::new("hired_on", "date"),
            Column::new("status", "varchar(16)")
                .not_null()
                .default_value("active"),
        ],
    )
    .check("status", CheckOp::In, EMPLOYEE_STATES.to_vec());
    let leave_types = CreateTable::new(
        "leave_types",
        vec![
            Column::new("code", "varchar(32)").not_null().unique(),
            Column::new("name", "varchar(200)").not_null(),
        ],
    );
    let allocations = CreateTable::new(
        "allocations",
        vec![
            Column::new("employee_id", "uuid")
                .not_null()
                .references("employees"),
            Column::new("leave_type_id", "uuid")
                .not_null()
                .references("leave_types"),
            Column::new("days", "numeric(6,1)").not_null(),
            Column::new("note", "varchar(500)"),
        ],
    )
    .check("days", CheckOp::Gt, "0");
    let requests = CreateTable::new(
        "leave_requests",
        vec![
            Column::new("employee_id", "uuid")
                .not_null()
                .references("employees"),
            Column::new("leave_type_id", "uuid")
                .not_null()
                .references("leave_types"),
            Column::new("from_date", "date").not_null(),
            Column::new("to_date", "date").not_null(),
            Column::new("half_day", "boolean")
                .not_null()
                .default_value(false),
            Column::new("days", "numeric(6,1)").not_null(),
            Column::new("status", "varchar(16)")
                .not_null()
                .default_value("draft"),
            Column::new("reason", "varchar(1000)"),
        ],
    )
    .check("status", CheckOp::In, LEAVE_STATES.to_vec())
    .check("days", CheckOp::Gt, "0");
    // One row: changes to the reporting lines and the department tree take it alone,
    // so two concurrent changes cannot close a cycle between them.
    let org = CreateTable::new(
        "org",
        vec![Column::new("singleton", "varchar(1)").not_null().unique()],
    );
    Migration {
        entity: "hr".into(),
        version: 1,
        operations: vec![
            Operation::CreateTable(departments),
            Operation::CreateTable(positions),
            Operation::CreateTable(employees),
            Operation::CreateTable(leave_types),
            Operation::CreateTable(allocations),
            Operation::CreateTable(requests),
            Operation::CreateTable(org),
            index("employees", "manager_id"),
            index("allocations", "employee_id"),
            index("leave_requests", "employee_id"),
        ],
        data: None,
    }
}
