//! The company's holiday list: public holidays by date, and the weekly days off (by
//! default Saturday and Sunday, replaced as soon as one weekly day off is listed: a
//! company working Sunday to Thursday lists Friday and Saturday). Leave requests count
//! only the days between that are neither.

use std::collections::BTreeSet;

use eerp_sdk::{Checks, Ctx, Error, Filter, FilterOp, ListQuery, ListSpec, Resource, Row, Table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::calendar::{DaysOff, day_number};

/// Days of the week, from Sunday, as a holiday's `weekday` names them.
pub const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// A day off: one date, or one day of every week.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Holiday {
    /// A public holiday's date; give this or `weekday`.
    #[schemars(extend("format" = "date"))]
    pub date: Option<String>,
    /// A weekly day off (`friday`); give this or `date`.
    pub weekday: Option<String>,
    /// What it is (`New Year's Day`, `Weekend`).
    pub name: String,
}

/// Holidays.
#[derive(Debug)]
pub struct Holidays;

/// The holidays table.
pub const HOLIDAYS: Table<Row<Holiday>> = Table::new("holidays");

impl Resource for Holidays {
    type Record = Holiday;
    const TABLE: Table<Row<Holiday>> = HOLIDAYS;
    const NAME: &'static str = "holiday";

    fn list_spec() -> ListSpec {
        ListSpec::new("holidays")
            .filter_date("date")
            .filter_one_of("weekday", &WEEKDAYS)
            .sortable(&["date"])
    }

    fn check(
        _ctx: &mut Ctx,
        mut holiday: Holiday,
        _current: Option<&Row<Holiday>>,
    ) -> Result<Holiday, Error> {
        holiday.name = holiday.name.trim().to_string();
        let mut checks = Checks::new();
        checks
            .text("name", &holiday.name, 1, 200)
            .date("date", holiday.date.as_deref())
            .one_of("weekday", holiday.weekday.as_deref(), &WEEKDAYS);
        if holiday.date.is_some() == holiday.weekday.is_some() {
            checks.problem("date", "give either a date or a weekday");
        }
        checks.finish("holiday", "invalid_holiday")?;
        Ok(holiday)
    }

    fn conflict() -> Error {
        Error::conflict("that date or weekday is already a holiday").with_code("holiday_taken")
    }
}

/// The days off the holiday list names from `from` to `to` (`YYYY-MM-DD`).
///
/// # Errors
/// When the data API fails.
pub fn days_off(ctx: &mut Ctx, from: &str, to: &str) -> Result<DaysOff, Error> {
    let weekly = HOLIDAYS.list(
        ctx,
        ListQuery {
            filter: vec![Filter::new("weekday", FilterOp::IsNull, false)],
            limit: Some(7),
            ..ListQuery::default()
        },
    )?;
    let mut off = DaysOff::default();
    if !weekly.data.is_empty() {
        off.weekdays = [false; 7];
        for holiday in &weekly.data {
            let day = holiday.record.weekday.as_deref();
            if let Some(i) = WEEKDAYS.iter().position(|w| Some(*w) == day) {
                off.weekdays[i] = true;
            }
        }
    }
    // A request spans at most 366 days, so one page of 500 holds every date in it.
    let dated = HOLIDAYS.list(
        ctx,
        ListQuery {
            filter: vec![
                Filter::new("date", FilterOp::Gte, from),
                Filter::new("date", FilterOp::Lte, to),
            ],
            limit: Some(500),
            ..ListQuery::default()
        },
    )?;
    off.dates = dated
        .data
        .iter()
        .filter_map(|h| h.record.date.as_deref().and_then(day_number))
        .collect::<BTreeSet<i64>>();
    Ok(off)
}
