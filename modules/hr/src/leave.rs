//! Leave requests and balances.
//!
//! A request is `draft` until submitted, then approved or rejected; any request not yet
//! decided against can be cancelled. Every change that adds or moves days locks the
//! employee's row first, so two concurrent requests cannot both pass the overlap or the
//! balance check. Draft, submitted and approved requests never overlap (two half days may
//! share a date); a submission may ask only for what the balance less pending requests
//! allows, so approving everything pending never drives the balance negative.

use eerp_sdk::decimal::fixed;
use eerp_sdk::{
    Checks, Ctx, Decimal, Error, Filter, FilterOp, ListQuery, ListSpec, LockMode, Module, Page,
    Reply, Request, Row, Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::calendar::{Balance, DatesError, DaysOff, Span, day_number, fits, working_days};
use crate::holidays::days_off;
use crate::org::{Allocation, EMPLOYEES, LEAVE_TYPES};
use crate::schema::LEAVE_STATES;

/// The leave requests table.
pub const REQUESTS: Table<Row<LeaveRequest>> = Table::new("leave_requests");

/// A stored leave request.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct LeaveRequest {
    /// The employee.
    #[schemars(extend("format" = "uuid"))]
    pub employee_id: String,
    /// The leave type.
    #[schemars(extend("format" = "uuid"))]
    pub leave_type_id: String,
    /// First day.
    #[schemars(extend("format" = "date"))]
    pub from_date: String,
    /// Last day.
    #[schemars(extend("format" = "date"))]
    pub to_date: String,
    /// Half a day (then the two dates are equal).
    pub half_day: bool,
    /// Working days it takes.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub days: String,
    /// `draft`, `submitted`, `approved`, `rejected` or `cancelled`.
    pub status: String,
    /// Free text.
    pub reason: Option<String>,
    /// Who gave the first of two approvals (the leave type asks for two).
    pub first_approved_by: Option<String>,
    /// The one day of a longer request taken as a half day.
    #[schemars(extend("format" = "date"))]
    pub half_day_date: Option<String>,
}

/// The body of `POST /leave-requests`, and what a `PATCH` of a draft changes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct RequestInput {
    /// The employee.
    #[schemars(extend("format" = "uuid"))]
    pub employee_id: String,
    /// The leave type.
    #[schemars(extend("format" = "uuid"))]
    pub leave_type_id: String,
    /// First day, `YYYY-MM-DD`.
    #[schemars(extend("format" = "date"))]
    pub from_date: String,
    /// Last day.
    #[schemars(extend("format" = "date"))]
    pub to_date: String,
    /// Half a day (a one-day request).
    pub half_day: Option<bool>,
    /// In a longer request, the one working day taken as a half day.
    #[schemars(extend("format" = "date"))]
    pub half_day_date: Option<String>,
    /// Free text.
    pub reason: Option<String>,
}

/// Adds the leave routes to `module`.
pub fn routes(module: Module) -> Module {
    module
        .get("/leave-requests", "hr.leave.read", list)
        .summary("List leave requests")
        .lists(request_list)
        .returns::<Page<Row<LeaveRequest>>>()
        .post("/leave-requests", "hr.leave.create", create)
        .summary("Create a draft leave request")
        .takes_record::<RequestInput>()
        .creates::<Row<LeaveRequest>>()
        .get("/leave-requests/{id}", "hr.leave.read", get)
        .summary("Read a leave request")
        .returns::<Row<LeaveRequest>>()
        .patch("/leave-requests/{id}", "hr.leave.create", update)
        .summary("Change a draft leave request")
        .takes_patch::<RequestInput>()
        .returns::<Row<LeaveRequest>>()
        .post("/leave-requests/{id}/submit", "hr.leave.create", submit)
        .summary("Submit a draft for approval, within the balance less pending")
        .returns::<Row<LeaveRequest>>()
        .post("/leave-requests/{id}/approve", "hr.leave.approve", approve)
        .summary("Approve a submitted request")
        .returns::<Row<LeaveRequest>>()
        .post("/leave-requests/{id}/reject", "hr.leave.approve", reject)
        .summary("Reject a submitted request")
        .returns::<Row<LeaveRequest>>()
        .post("/leave-requests/{id}/cancel", "hr.leave.create", cancel)
        .summary("Cancel a draft, submitted or approved request")
        .returns::<Row<LeaveRequest>>()
        .get("/employees/{id}/balances", "hr.leave.read", balances)
        .summary("An employee's leave balances per leave type")
        .returns::<Balances>()
}

/// The answer of `GET /employees/{id}/balances`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Balances {
    /// The employee.
    #[schemars(extend("format" = "uuid"))]
    pub employee_id: String,
    /// One per leave type the employee has days or requests of.
    pub balances: Vec<TypeBalance>,
}

/// One leave type's balance, in days.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TypeBalance {
    /// The leave type.
    #[schemars(extend("format" = "uuid"))]
    pub leave_type_id: String,
    /// Its code.
    pub code: Option<String>,
    /// Days allocated.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub allocated: String,
    /// Days approved.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub approved: String,
    /// Days submitted and not yet decided.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub pending: String,
    /// Allocated less approved.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub balance: String,
}

fn request_list() -> ListSpec {
    ListSpec::new("leave_requests")
        .filter_id("employee_id")
        .filter_id("leave_type_id")
        .filter_one_of("status", &LEAVE_STATES)
        .sortable(&["from_date"])
}

fn list(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(REQUESTS.list(ctx, request_list().query(req)?)?))
}

fn get(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(locked_or_plain(ctx, req.path("id")?, false)?))
}

fn locked_or_plain(ctx: &mut Ctx, id: &str, lock: bool) -> Result<Row<LeaveRequest>, Error> {
    let row = if lock {
        REQUESTS.get_for_update(ctx, id)
    } else {
        REQUESTS.get(ctx, id)
    };
    row.map_err(|_| Error::not_found("no leave request with that id"))
}

/// Checks the input's own fields and returns its span and days, counted without the
/// company's days off.
fn plan(ctx: &mut Ctx, input: &RequestInput) -> Result<(Span, Decimal), Error> {
    let mut checks = Checks::new();
    checks
        .date("from_date", Some(&input.from_date))
        .date("to_date", Some(&input.to_date))
        .date("half_day_date", input.half_day_date.as_deref())
        .max_len("reason", input.reason.as_deref(), 1000);
    checks.finish("leave request", "invalid_leave_request")?;
    let (Some(from), Some(to)) = (day_number(&input.from_date), day_number(&input.to_date)) else {
        return Err(Error::internal("checked dates did not convert"));
    };
    let half_day = input.half_day.unwrap_or(false);
    let off = if to >= from {
        days_off(ctx, &input.from_date, &input.to_date)?
    } else {
        DaysOff::default()
    };
    let days = working_days(from, to, half_day, &off).map_err(|e| {
        let (field, why) = match e {
            DatesError::Backwards => ("to_date", "must not be before from_date"),
            DatesError::TooLong => ("to_date", "a request spans at most 366 days"),
            DatesError::HalfDaySpan => ("half_day", "a half day starts and ends on the same date"),
            DatesError::NoWorkingDay => (
                "from_date",
                "the dates hold no working day (only weekly days off and holidays)",
            ),
        };
        Error::unprocessable(format!("{field}: {why}"))
            .with_code("invalid_leave_request")
            .with_field(field, why)
    })?;
    let days = match input.half_day_date.as_deref().and_then(day_number) {
        Some(half) if from < to && (from..=to).contains(&half) && !off.contains(half) => {
            days - Decimal::new(5, 1)
        }
        Some(_) => {
            let why = "must be a working day inside a request of more than one day \
                       (a one-day request takes half_day instead)";
            return Err(Error::unprocessable(format!("half_day_date: {why}"))
                .with_code("invalid_leave_request")
                .with_field("half_day_date", why));
        }
        None => days,
    };
    Ok((Span { from, to, half_day }, days))
}

/// Locks the employee and refuses a span overlapping their other open or approved
/// requests (`except` is the request being changed).
fn lock_and_check_overlap(
    ctx: &mut Ctx,
    input: &RequestInput,
    span: Span,
    except: Option<&str>,
) -> Result<(), Error> {
    EMPLOYEES
        .lock_by(ctx, &json!({"id": input.employee_id}), LockMode::Update)
        .map_err(|_| Error::unknown_reference("employee_id", "employee"))?;
    let page = REQUESTS.list(
        ctx,
        ListQuery {
            filter: vec![
                Filter::eq("employee_id", input.employee_id.as_str()),
                Filter::new(
                    "status",
                    FilterOp::In,
                    json!(["draft", "submitted", "approved"]),
                ),
                Filter::new("from_date", FilterOp::Lte, input.to_date.as_str()),
                Filter::new("to_date", FilterOp::Gte, input.from_date.as_str()),
            ],
            limit: Some(100),
            ..ListQuery::default()
        },
    )?;
    let others: Vec<(Span, &Row<LeaveRequest>)> = page
        .data
        .iter()
        .filter(|r| Some(r.id.as_str()) != except)
        .filter_map(|r| {
            let from = day_number(&r.record.from_date)?;
            let to = day_number(&r.record.to_date)?;
            Some((
                Span {
                    from,
                    to,
                    half_day: r.record.half_day,
                },
                r,
            ))
        })
        .collect();
    let spans: Vec<Span> = others.iter().map(|(s, _)| *s).collect();
    if fits(span, &spans) {
        return Ok(());
    }
    let clash = others
        .iter()
        .find(|(s, _)| s.from <= span.to && s.to >= span.from)
        .map(|(_, r)| r);
    let detail = match clash {
        Some(r) => format!(
            "the employee already has {} leave from {} to {} ({}); requests never overlap",
            r.record.status, r.record.from_date, r.record.to_date, r.id
        ),
        None => "the employee already has leave on these dates".to_string(),
    };
    Err(Error::conflict(detail).with_code("leave_overlap"))
}

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let input = req.record::<RequestInput>()?;
    let (span, days) = plan(ctx, &input)?;
    LEAVE_TYPES
        .get(ctx, &input.leave_type_id)
        .map_err(|_| Error::unknown_reference("leave_type_id", "leave type"))?;
    lock_and_check_overlap(ctx, &input, span, None)?;
    let row = REQUESTS.insert(
        ctx,
        &json!({
            "employee_id": input.employee_id,
            "leave_type_id": input.leave_type_id,
            "from_date": input.from_date,
            "to_date": input.to_date,
            "half_day": span.half_day,
            "half_day_date": input.half_day_date,
            "days": fixed(days, 1),
            "reason": input.reason,
        }),
    )?;
    Ok(Reply::created(row))
}

fn update(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let current = locked_or_plain(ctx, id, true)?;
    if current.record.status != "draft" {
        return Err(transition(&current.record.status, "changed"));
    }
    let stored = json!({
        "employee_id": current.record.employee_id,
        "leave_type_id": current.record.leave_type_id,
        "from_date": current.record.from_date,
        "to_date": current.record.to_date,
        "half_day": current.record.half_day,
        "half_day_date": current.record.half_day_date,
        "reason": current.record.reason,
    });
    let input = req.patch::<RequestInput>(&stored)?.merged;
    if input.employee_id != current.record.employee_id {
        return Err(Error::unprocessable("a request stays with its employee")
            .with_field("employee_id", "cannot change"));
    }
    let (span, days) = plan(ctx, &input)?;
    LEAVE_TYPES
        .get(ctx, &input.leave_type_id)
        .map_err(|_| Error::unknown_reference("leave_type_id", "leave type"))?;
    lock_and_check_overlap(ctx, &input, span, Some(id))?;
    let row = REQUESTS.update(
        ctx,
        id,
        &json!({
            "leave_type_id": input.leave_type_id,
            "from_date": input.from_date,
            "to_date": input.to_date,
            "half_day": span.half_day,
            "half_day_date": input.half_day_date,
            "days": fixed(days, 1),
            "reason": input.reason,
        }),
    )?;
    Ok(Reply::ok(row))
}

fn transition(status: &str, to: &str) -> Error {
    Error::conflict(format!("a {status} leave request cannot be {to}"))
        .with_code("invalid_transition")
}

/// Locks the request, then its employee (the order every change takes), and checks it
/// is in one of `from`.
fn for_transition(
    ctx: &mut Ctx,
    req: &Request,
    from: &[&str],
    to: &str,
) -> Result<Row<LeaveRequest>, Error> {
    let row = locked_or_plain(ctx, req.path("id")?, true)?;
    if !from.contains(&row.record.status.as_str()) {
        return Err(transition(&row.record.status, to));
    }
    EMPLOYEES
        .lock_by(
            ctx,
            &json!({"id": row.record.employee_id}),
            LockMode::Update,
        )
        .map_err(|_| Error::unknown_reference("employee_id", "employee"))?;
    Ok(row)
}

fn set_status(ctx: &mut Ctx, row: &Row<LeaveRequest>, status: &str) -> Result<Reply, Error> {
    Ok(Reply::ok(REQUESTS.update(
        ctx,
        &row.id,
        &json!({"status": status}),
    )?))
}

fn insufficient(b: &Balance, days: Decimal, pending: bool) -> Error {
    let pending_note = if pending {
        format!(" and {} pending", b.pending.normalize())
    } else {
        String::new()
    };
    Error::conflict(format!(
        "the request takes {} days; the balance is {}{pending_note} of {} allocated",
        days.normalize(),
        b.balance().normalize(),
        b.allocated.normalize()
    ))
    .with_code("insufficient_balance")
}

fn submit(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = for_transition(ctx, req, &["draft"], "submitted")?;
    let days = read_days(&row.record.days)?;
    let b = balance_of(ctx, &row.record.employee_id, &row.record.leave_type_id)?;
    if days > b.requestable() {
        return Err(insufficient(&b, days, true));
    }
    set_status(ctx, &row, "submitted")
}

/// Approves a submitted request; when its leave type needs two approvals, the first
/// is recorded (the request stays submitted) and the second must come from someone else.
fn approve(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = for_transition(ctx, req, &["submitted"], "approved")?;
    let days = read_days(&row.record.days)?;
    let b = balance_of(ctx, &row.record.employee_id, &row.record.leave_type_id)?;
    if days > b.balance() {
        return Err(insufficient(&b, days, false));
    }
    let leave_type = LEAVE_TYPES
        .get_including_deleted(ctx, &row.record.leave_type_id)
        .map_err(|_| Error::unknown_reference("leave_type_id", "leave type"))?;
    if leave_type.record.approvals != Some(2) {
        return set_status(ctx, &row, "approved");
    }
    let me = ctx.principal().subject.clone();
    match &row.record.first_approved_by {
        None => Ok(Reply::ok(REQUESTS.update(
            ctx,
            &row.id,
            &json!({"first_approved_by": me}),
        )?)),
        Some(first) if *first == me => Err(Error::conflict(format!(
            "{me} gave this request its first approval; a second approver must give the other"
        ))
        .with_code("second_approver_needed")),
        Some(_) => set_status(ctx, &row, "approved"),
    }
}

/// A stored number of days; a bad one is an internal error, never a silent 0.
///
/// # Errors
/// When `text` is not a decimal.
pub fn read_days(text: &str) -> Result<Decimal, Error> {
    text.parse()
        .map_err(|_| Error::internal(format!("stored days `{text}` are not a decimal")))
}

fn reject(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = for_transition(ctx, req, &["submitted"], "rejected")?;
    set_status(ctx, &row, "rejected")
}

fn cancel(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = for_transition(ctx, req, &["draft", "submitted", "approved"], "cancelled")?;
    set_status(ctx, &row, "cancelled")
}

/// Days summed over the rows of `table` matching `filter`.
fn sum(ctx: &mut Ctx, table: &'static str, filter: Vec<Filter>) -> Result<Decimal, Error> {
    let groups = grouped(ctx, table, filter, &[])?;
    Ok(groups.first().map(|(_, days)| *days).unwrap_or_default())
}

/// An employee's balance of one leave type.
///
/// # Errors
/// When the data API fails.
pub fn balance_of(ctx: &mut Ctx, employee: &str, leave_type: &str) -> Result<Balance, Error> {
    let of = |status: Option<&str>| {
        let mut filter = vec![
            Filter::eq("employee_id", employee),
            Filter::eq("leave_type_id", leave_type),
        ];
        if let Some(status) = status {
            filter.push(Filter::eq("status", status));
        }
        filter
    };
    Ok(Balance {
        allocated: sum(ctx, "allocations", of(None))?,
        approved: sum(ctx, "leave_requests", of(Some("approved")))?,
        pending: sum(ctx, "leave_requests", of(Some("submitted")))?,
    })
}

/// Refuses taking `days` away from `allocation` when the balance would go below what is
/// approved and pending.
///
/// # Errors
/// A 409 saying by how much.
pub fn refuse_negative(ctx: &mut Ctx, allocation: &Allocation, days: Decimal) -> Result<(), Error> {
    let b = balance_of(ctx, &allocation.employee_id, &allocation.leave_type_id)?;
    if b.requestable() >= days {
        return Ok(());
    }
    Err(Error::conflict(format!(
        "taking {} days away would leave less than the {} approved and {} pending",
        days.normalize(),
        b.approved.normalize(),
        b.pending.normalize()
    ))
    .with_code("insufficient_balance"))
}

/// Days summed per group of `group_by` over `table`'s rows matching `filter`.
fn grouped(
    ctx: &mut Ctx,
    table: &'static str,
    filter: Vec<Filter>,
    group_by: &[&str],
) -> Result<Vec<(Value, Decimal)>, Error> {
    let result = Table::<Value>::new(table).aggregate(
        ctx,
        eerp_sdk::AggregateQuery {
            filter,
            group_by: group_by.iter().map(|c| c.to_string()).collect(),
            aggregates: vec![eerp_sdk::Aggregate {
                func: eerp_sdk::AggregateFn::Sum,
                column: Some("days".into()),
            }],
            ..eerp_sdk::AggregateQuery::default()
        },
    )?;
    Ok(result
        .groups
        .into_iter()
        .map(|g| {
            let days = g
                .values
                .get("sum_days")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or_default();
            (Value::Object(g.key), days)
        })
        .collect())
}

/// Every leave type the employee has days or requests of: two grouped sums, whatever
/// the number of leave types.
fn balances(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let employee = EMPLOYEES
        .get(ctx, req.path("id")?)
        .map_err(|_| Error::not_found("no live employee with that id"))?;
    let mine = Filter::eq("employee_id", employee.id.as_str());
    let mut by_type: std::collections::BTreeMap<String, Balance> = Default::default();
    let type_of = |key: &Value| {
        key["leave_type_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for (key, days) in grouped(ctx, "allocations", vec![mine.clone()], &["leave_type_id"])? {
        by_type.entry(type_of(&key)).or_default().allocated = days;
    }
    let decided = Filter::new("status", FilterOp::In, json!(["approved", "submitted"]));
    for (key, days) in grouped(
        ctx,
        "leave_requests",
        vec![mine, decided],
        &["leave_type_id", "status"],
    )? {
        let b = by_type.entry(type_of(&key)).or_default();
        match key["status"].as_str() {
            Some("approved") => b.approved = days,
            _ => b.pending = days,
        }
    }
    let ids: Vec<&str> = by_type.keys().map(String::as_str).collect();
    let types = match ids.is_empty() {
        true => Vec::new(),
        false => {
            let query = ListQuery {
                filter: vec![Filter::new("id", FilterOp::In, json!(ids))],
                limit: Some(500),
                include_deleted: true,
                ..ListQuery::default()
            };
            LEAVE_TYPES.list(ctx, query)?.data
        }
    };
    let balances = by_type
        .iter()
        .map(|(id, b)| TypeBalance {
            leave_type_id: id.clone(),
            code: types
                .iter()
                .find(|t| &t.id == id)
                .map(|t| t.record.code.clone()),
            allocated: fixed(b.allocated, 1),
            approved: fixed(b.approved, 1),
            pending: fixed(b.pending, 1),
            balance: fixed(b.balance(), 1),
        })
        .collect();
    Ok(Reply::ok(Balances {
        employee_id: employee.id,
        balances,
    }))
}
