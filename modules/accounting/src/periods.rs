//! Fiscal periods: date ranges that never overlap, closed to freeze what was posted in
//! them and reopened when an accountant must correct something.
//!
//! The books row is the lock between posting and closing: every posting holds it shared,
//! and opening, closing or reopening a period holds it alone. A close therefore waits
//! for the postings in flight and every later posting sees it. The close records how many
//! entries and how much debit the period held, the figures nothing may change after.

use eerp_sdk::decimal::fixed;
use eerp_sdk::{
    Aggregate, AggregateFn, AggregateQuery, Checks, Ctx, Decimal, Error, Filter, FilterOp,
    ListQuery, ListSpec, LockMode, Module, Page, Reply, Request, Row, Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::entries::{ENTRIES, LINES};
use crate::schema::PERIOD_STATES;

/// The periods table.
pub const PERIODS: Table<Row<Period>> = Table::new("periods");
/// The books: one row per tenant, the posting/closing lock.
const BOOKS: Table<Row<Value>> = Table::new("books");

/// A stored period.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Period {
    /// Unique name (`2026-11`).
    pub name: String,
    /// First day.
    #[schemars(extend("format" = "date"))]
    pub start_date: String,
    /// Last day.
    #[schemars(extend("format" = "date"))]
    pub end_date: String,
    /// `open` or `closed`.
    pub status: String,
    /// Posted entries dated in the period when it was closed.
    pub closed_entries: Option<i64>,
    /// Their total debit.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub closed_debit: Option<String>,
}

/// The body of `POST /periods`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewPeriod {
    /// Unique name (`2026-11`).
    name: String,
    /// First day, `YYYY-MM-DD`.
    #[schemars(extend("format" = "date"))]
    start_date: String,
    /// Last day, not before the first; periods do not overlap.
    #[schemars(extend("format" = "date"))]
    end_date: String,
}

/// Locks the books row (creating it on first use).
///
/// # Errors
/// When the data API fails.
pub fn open_books(ctx: &mut Ctx, mode: LockMode) -> Result<(), Error> {
    let key = json!({"singleton": "x"});
    BOOKS.lock_or_insert(ctx, &key, &key, mode)?;
    Ok(())
}

/// Periods that share a day with `start..=end`.
fn overlapping(start: &str, end: &str) -> Vec<Filter> {
    vec![
        Filter::new("start_date", FilterOp::Lte, end),
        Filter::new("end_date", FilterOp::Gte, start),
    ]
}

/// The name of the closed period covering `date`, if any.
///
/// # Errors
/// When the data API fails.
pub fn closed_period_at(ctx: &mut Ctx, date: &str) -> Result<Option<String>, Error> {
    let mut filter = overlapping(date, date);
    filter.push(Filter::new("status", FilterOp::Eq, "closed"));
    let page = PERIODS.list(
        ctx,
        ListQuery {
            filter,
            limit: Some(1),
            ..ListQuery::default()
        },
    )?;
    Ok(page.data.into_iter().next().map(|p| p.record.name))
}

/// Adds the period routes to `module`.
pub fn routes(module: Module) -> Module {
    module
        .get("/periods", "accounting.periods.read", list)
        .summary("List fiscal periods")
        .lists(period_list)
        .returns::<Page<Row<Period>>>()
        .post("/periods", "accounting.periods.create", create)
        .summary("Open a fiscal period")
        .takes::<NewPeriod>()
        .creates::<Row<Period>>()
        .get("/periods/{id}", "accounting.periods.read", get)
        .summary("Read a fiscal period")
        .returns::<Row<Period>>()
        .post("/periods/{id}/close", "accounting.periods.close", close)
        .summary("Close a period (first posting its closing entry, if asked): postings dated in it are refused from now on")
        .takes_optional::<Close>()
        .returns::<Row<Period>>()
        .post("/periods/{id}/reopen", "accounting.periods.close", reopen)
        .summary("Reopen a closed period")
        .returns::<Row<Period>>()
}

fn period_list() -> ListSpec {
    ListSpec::new("periods")
        .filter_one_of("status", &PERIOD_STATES)
        .sortable(&["start_date"])
}

fn list(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(PERIODS.list(ctx, period_list().query(req)?)?))
}

fn get(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = PERIODS
        .get(ctx, req.path("id")?)
        .map_err(|_| Error::not_found("no period with that id"))?;
    Ok(Reply::ok(row))
}

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let new = req.json::<NewPeriod>()?;
    let mut checks = Checks::new();
    checks.text("name", new.name.trim(), 1, 64);
    for (field, date) in [("start_date", &new.start_date), ("end_date", &new.end_date)] {
        if !eerp_sdk::is_date(date) {
            checks.problem(field, format!("`{date}` must be a date, YYYY-MM-DD"));
        }
    }
    if eerp_sdk::is_date(&new.start_date)
        && eerp_sdk::is_date(&new.end_date)
        && new.start_date > new.end_date
    {
        checks.problem("end_date", "must not be before start_date");
    }
    checks.finish("period", "invalid_period")?;
    open_books(ctx, LockMode::Update)?;
    let overlapping = PERIODS.list(
        ctx,
        ListQuery {
            filter: overlapping(&new.start_date, &new.end_date),
            limit: Some(1),
            ..ListQuery::default()
        },
    )?;
    if let Some(other) = overlapping.data.first() {
        return Err(Error::conflict(format!(
            "the period overlaps {} ({} to {}); periods never overlap",
            other.record.name, other.record.start_date, other.record.end_date
        ))
        .with_code("period_overlap"));
    }
    let row = PERIODS
        .insert(
            ctx,
            &json!({"name": new.name.trim(), "start_date": new.start_date, "end_date": new.end_date}),
        )
        .map_err(|e| match e.kind {
            eerp_sdk::DataErrorKind::Conflict => {
                Error::conflict("another period has this name").with_code("duplicate")
            }
            _ => e.into(),
        })?;
    Ok(Reply::created(row))
}

fn locked_period(ctx: &mut Ctx, id: &str) -> Result<Row<Period>, Error> {
    open_books(ctx, LockMode::Update)?;
    PERIODS
        .get_for_update(ctx, id)
        .map_err(|_| Error::not_found("no period with that id"))
}

/// The body of `POST /periods/{id}/close`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Close {
    /// Post the period-closing entry first: each income and expense account's balance
    /// for the period moved to retained earnings (role `retained_earnings`, 3200 by
    /// default), dated the period's last day, in journal `CLS`.
    #[serde(default)]
    closing_entry: bool,
}

fn close(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let body: Close = if req.raw_body() == "null" {
        Close::default()
    } else {
        req.json()?
    };
    let period = locked_period(ctx, id)?;
    if period.record.status == "closed" {
        return Err(Error::conflict("the period is already closed").with_code("period_closed"));
    }
    if body.closing_entry {
        crate::closing::post_closing_entry(ctx, &period)?;
    }
    let (start, end) = (&period.record.start_date, &period.record.end_date);
    let posted = vec![
        Filter::new("date", FilterOp::Gte, start.as_str()),
        Filter::new("date", FilterOp::Lte, end.as_str()),
    ];
    let mut entries = posted.clone();
    entries.push(Filter::new("status", FilterOp::Eq, "posted"));
    let count = ENTRIES.aggregate(
        ctx,
        AggregateQuery {
            filter: entries,
            aggregates: vec![Aggregate {
                func: AggregateFn::Count,
                column: None,
            }],
            ..AggregateQuery::default()
        },
    )?;
    let debit = LINES.aggregate(
        ctx,
        AggregateQuery {
            filter: posted,
            aggregates: vec![Aggregate {
                func: AggregateFn::Sum,
                column: Some("debit".into()),
            }],
            ..AggregateQuery::default()
        },
    )?;
    let count = count.first("count").and_then(Value::as_i64).unwrap_or(0);
    let debit = debit
        .first("sum_debit")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Decimal>().ok())
        .unwrap_or_default();
    let row = PERIODS.update(
        ctx,
        id,
        &json!({"status": "closed", "closed_entries": count, "closed_debit": fixed(debit, 2)}),
    )?;
    Ok(Reply::ok(row))
}

fn reopen(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let period = locked_period(ctx, id)?;
    if period.record.status == "open" {
        return Err(Error::conflict("the period is open").with_code("period_open"));
    }
    let row = PERIODS.update(
        ctx,
        id,
        &json!({"status": "open", "closed_entries": null, "closed_debit": null}),
    )?;
    Ok(Reply::ok(row))
}
