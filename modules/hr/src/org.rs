//! The organisation: departments (a tree), positions, employees (each with at most one
//! manager, never themselves or anyone who reports to them), leave types and leave
//! allocations, each a [`Resource`] with soft delete and restore.

use eerp_sdk::decimal::parse;
use eerp_sdk::{Checks, Ctx, Decimal, Error, FilterOp, ListSpec, LockMode, Resource, Row, Table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::schema::EMPLOYEE_STATES;

/// A department.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Department {
    /// Short code, unique.
    pub code: String,
    /// Display name.
    pub name: String,
    /// The department it belongs to.
    #[schemars(extend("format" = "uuid"))]
    pub parent_id: Option<String>,
}

/// A position (job title) in a department.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Position {
    /// Job title.
    pub title: String,
    /// Its department.
    #[schemars(extend("format" = "uuid"))]
    pub department_id: Option<String>,
}

/// An employee.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Employee {
    /// Full name.
    pub name: String,
    /// Work email, unique, stored lower-case.
    pub email: Option<String>,
    /// Department.
    #[schemars(extend("format" = "uuid"))]
    pub department_id: Option<String>,
    /// Position.
    #[schemars(extend("format" = "uuid"))]
    pub position_id: Option<String>,
    /// Manager: another employee, not oneself, not someone who reports to one.
    #[schemars(extend("format" = "uuid"))]
    pub manager_id: Option<String>,
    /// Hiring date.
    #[schemars(extend("format" = "date"))]
    pub hired_on: Option<String>,
    /// `active` or `left`.
    pub status: Option<String>,
}

/// A kind of leave (`annual`, `sick`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct LeaveType {
    /// Short code, unique.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Approvals a request needs: 1 (the default) or 2, the second by someone other
    /// than the first.
    pub approvals: Option<i64>,
}

/// Days of a leave type granted to an employee.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Allocation {
    /// The employee.
    #[schemars(extend("format" = "uuid"))]
    pub employee_id: String,
    /// The leave type.
    #[schemars(extend("format" = "uuid"))]
    pub leave_type_id: String,
    /// Days, in halves (`"30"`, `"2.5"`).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub days: String,
    /// Free text.
    pub note: Option<String>,
}

/// The departments table.
pub const DEPARTMENTS: Table<Row<Department>> = Table::new("departments");
/// The positions table.
pub const POSITIONS: Table<Row<Position>> = Table::new("positions");
/// The employees table.
pub const EMPLOYEES: Table<Row<Employee>> = Table::new("employees");
/// The leave types table.
pub const LEAVE_TYPES: Table<Row<LeaveType>> = Table::new("leave_types");
/// The allocations table.
pub const ALLOCATIONS: Table<Row<Allocation>> = Table::new("allocations");
const ORG: Table<Row<Value>> = Table::new("org");

/// Departments.
#[derive(Debug)]
pub struct Departments;
/// Positions.
#[derive(Debug)]
pub struct Positions;
/// Employees.
#[derive(Debug)]
pub struct Employees;
/// Leave types.
#[derive(Debug)]
pub struct LeaveTypes;
/// Allocations.
#[derive(Debug)]
pub struct Allocations;

/// Locks the organisation (its one row), so tree changes happen one at a time.
fn lock_org(ctx: &mut Ctx) -> Result<(), Error> {
    let key = json!({"singleton": "x"});
    ORG.lock_or_insert(ctx, &key, &key, LockMode::Update)?;
    Ok(())
}

/// The parent of a row (`None` when the row does not exist).
type ParentOf = fn(&mut Ctx, &str) -> Option<Option<String>>;

/// Walks up from `start` with `parent_of`; a 422 on `field` if `own` is met (a cycle) or
/// `start` does not exist.
fn refuse_cycle(
    ctx: &mut Ctx,
    field: &str,
    start: &str,
    own: Option<&str>,
    what: &str,
    parent_of: ParentOf,
) -> Result<(), Error> {
    let cycle = || {
        Error::unprocessable(format!(
            "{field}: the {what} would end up under itself; pick one that is not below it"
        ))
        .with_code("cycle")
        .with_field(field, "would make a cycle")
    };
    let mut next = Some(start.to_string());
    let mut steps = 0;
    while let Some(id) = next {
        if Some(id.as_str()) == own {
            return Err(cycle());
        }
        steps += 1;
        if steps > 1000 {
            return Err(cycle());
        }
        next = parent_of(ctx, &id).ok_or_else(|| Error::unknown_reference(field, what))?;
    }
    Ok(())
}

fn department_parent(ctx: &mut Ctx, id: &str) -> Option<Option<String>> {
    DEPARTMENTS.get(ctx, id).ok().map(|d| d.record.parent_id)
}

fn manager_of(ctx: &mut Ctx, id: &str) -> Option<Option<String>> {
    EMPLOYEES.get(ctx, id).ok().map(|e| e.record.manager_id)
}

impl Resource for Departments {
    type Record = Department;
    const TABLE: Table<Row<Department>> = DEPARTMENTS;
    const NAME: &'static str = "department";

    fn list_spec() -> ListSpec {
        ListSpec::new("departments")
            .filter_id("parent_id")
            .filter("code")
            .sortable(&["code", "name"])
    }

    fn check(
        ctx: &mut Ctx,
        mut department: Department,
        current: Option<&Row<Department>>,
    ) -> Result<Department, Error> {
        department.code = department.code.trim().to_string();
        department.name = department.name.trim().to_string();
        let mut checks = Checks::new();
        checks
            .text("code", &department.code, 1, 32)
            .text("name", &department.name, 1, 200);
        checks.finish("department", "invalid_department")?;
        if let Some(parent) = &department.parent_id {
            lock_org(ctx)?;
            let own = current.map(|c| c.id.as_str());
            refuse_cycle(
                ctx,
                "parent_id",
                parent,
                own,
                "department",
                department_parent,
            )?;
        }
        Ok(department)
    }

    fn conflict() -> Error {
        Error::conflict("another live department already has this code").with_code("code_taken")
    }
}

impl Resource for Positions {
    type Record = Position;
    const TABLE: Table<Row<Position>> = POSITIONS;
    const NAME: &'static str = "position";

    fn list_spec() -> ListSpec {
        ListSpec::new("positions")
            .filter_id("department_id")
            .sortable(&["title"])
    }

    fn check(
        ctx: &mut Ctx,
        mut position: Position,
        _current: Option<&Row<Position>>,
    ) -> Result<Position, Error> {
        position.title = position.title.trim().to_string();
        let mut checks = Checks::new();
        checks.text("title", &position.title, 1, 200);
        checks.finish("position", "invalid_position")?;
        if let Some(department) = &position.department_id {
            DEPARTMENTS
                .get(ctx, department)
                .map_err(|_| Error::unknown_reference("department_id", "department"))?;
        }
        Ok(position)
    }
}

/// Checks an employee's own fields: a 422 naming each invalid one.
///
/// # Errors
/// The 422.
pub fn check_employee(mut employee: Employee) -> Result<Employee, Error> {
    employee.name = employee.name.trim().to_string();
    employee.email = employee.email.map(|e| e.trim().to_ascii_lowercase());
    let mut checks = Checks::new();
    checks
        .text("name", &employee.name, 1, 200)
        .email("email", employee.email.as_deref())
        .date("hired_on", employee.hired_on.as_deref())
        .one_of("status", employee.status.as_deref(), &EMPLOYEE_STATES);
    checks.finish("employee", "invalid_employee")?;
    Ok(employee)
}

impl Resource for Employees {
    type Record = Employee;
    const TABLE: Table<Row<Employee>> = EMPLOYEES;
    const NAME: &'static str = "employee";

    fn list_spec() -> ListSpec {
        ListSpec::new("employees")
            .filter_id("department_id")
            .filter_id("manager_id")
            .filter_one_of("status", &EMPLOYEE_STATES)
            .filter_by("q", "name", FilterOp::Contains)
            .sortable(&["name", "hired_on"])
    }

    fn check(
        ctx: &mut Ctx,
        employee: Employee,
        current: Option<&Row<Employee>>,
    ) -> Result<Employee, Error> {
        let employee = check_employee(employee)?;
        if let Some(department) = &employee.department_id {
            DEPARTMENTS
                .get(ctx, department)
                .map_err(|_| Error::unknown_reference("department_id", "department"))?;
        }
        if let Some(position) = &employee.position_id {
            POSITIONS
                .get(ctx, position)
                .map_err(|_| Error::unknown_reference("position_id", "position"))?;
        }
        if let Some(manager) = &employee.manager_id {
            let own = current.map(|c| c.id.as_str());
            if own == Some(manager.as_str()) {
                return Err(Error::unprocessable(
                    "manager_id: an employee cannot manage themselves",
                )
                .with_code("cycle")
                .with_field("manager_id", "is the employee themselves"));
            }
            lock_org(ctx)?;
            refuse_cycle(ctx, "manager_id", manager, own, "employee", manager_of)?;
        }
        Ok(employee)
    }

    fn conflict() -> Error {
        Error::conflict("another live employee already has this email").with_code("email_taken")
    }
}

impl Resource for LeaveTypes {
    type Record = LeaveType;
    const TABLE: Table<Row<LeaveType>> = LEAVE_TYPES;
    const NAME: &'static str = "leave type";

    fn list_spec() -> ListSpec {
        ListSpec::new("leave_types")
            .filter("code")
            .sortable(&["code"])
    }

    fn check(
        _ctx: &mut Ctx,
        mut leave_type: LeaveType,
        _current: Option<&Row<LeaveType>>,
    ) -> Result<LeaveType, Error> {
        leave_type.code = leave_type.code.trim().to_string();
        leave_type.name = leave_type.name.trim().to_string();
        let mut checks = Checks::new();
        checks
            .text("code", &leave_type.code, 1, 32)
            .text("name", &leave_type.name, 1, 200);
        if leave_type.approvals.is_some_and(|n| !(1..=2).contains(&n)) {
            checks.problem("approvals", "must be 1 or 2");
        }
        checks.finish("leave type", "invalid_leave_type")?;
        Ok(leave_type)
    }

    fn conflict() -> Error {
        Error::conflict("another live leave type already has this code").with_code("code_taken")
    }
}

/// Reads a number of days: positive, in halves.
///
/// # Errors
/// A 422 naming `field`.
pub fn half_days(field: &str, text: &str) -> Result<Decimal, Error> {
    let days = parse(field, text, 1)?;
    let doubled = days * Decimal::from(2);
    if days <= Decimal::ZERO || doubled != doubled.trunc() || days >= Decimal::from(1000) {
        return Err(Error::unprocessable(format!(
            "{field} `{text}` must be a positive number of half days below 1000"
        ))
        .with_code("invalid_days")
        .with_field(field, "must be a positive multiple of 0.5"));
    }
    Ok(days)
}

impl Resource for Allocations {
    type Record = Allocation;
    const TABLE: Table<Row<Allocation>> = ALLOCATIONS;
    const NAME: &'static str = "allocation";

    fn list_spec() -> ListSpec {
        ListSpec::new("allocations")
            .filter_id("employee_id")
            .filter_id("leave_type_id")
    }

    fn check(
        ctx: &mut Ctx,
        allocation: Allocation,
        current: Option<&Row<Allocation>>,
    ) -> Result<Allocation, Error> {
        let days = half_days("days", &allocation.days)?;
        let mut checks = Checks::new();
        checks.max_len("note", allocation.note.as_deref(), 500);
        checks.finish("allocation", "invalid_allocation")?;
        EMPLOYEES
            .lock_by(
                ctx,
                &json!({"id": allocation.employee_id}),
                LockMode::Update,
            )
            .map_err(|_| Error::unknown_reference("employee_id", "employee"))?;
        LEAVE_TYPES
            .get(ctx, &allocation.leave_type_id)
            .map_err(|_| Error::unknown_reference("leave_type_id", "leave type"))?;
        if let Some(current) = current {
            if current.record.employee_id != allocation.employee_id
                || current.record.leave_type_id != allocation.leave_type_id
            {
                return Err(Error::unprocessable(
                    "an allocation stays with its employee and leave type; delete it and allocate anew",
                )
                .with_code("invalid_allocation")
                .with_field("employee_id", "cannot change"));
            }
            let before = crate::leave::read_days(&current.record.days)?;
            if days < before {
                crate::leave::refuse_negative(ctx, &current.record, before - days)?;
            }
        }
        Ok(allocation)
    }

    fn check_delete(ctx: &mut Ctx, row: &Row<Allocation>) -> Result<(), Error> {
        EMPLOYEES
            .lock_by(
                ctx,
                &json!({"id": row.record.employee_id}),
                LockMode::Update,
            )
            .map_err(|_| Error::unknown_reference("employee_id", "employee"))?;
        let days = crate::leave::read_days(&row.record.days)?;
        crate::leave::refuse_negative(ctx, &row.record, days)
    }
}
