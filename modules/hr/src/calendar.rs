//! Leave arithmetic as plain functions: working days between two dates, whether two
//! requests overlap, and the balance an employee has of a leave type.

use std::collections::BTreeSet;

use eerp_sdk::Decimal;

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (Howard Hinnant's `days_from_civil`).
pub fn day_number(date: &str) -> Option<i64> {
    if !eerp_sdk::is_date(date) {
        return None;
    }
    let y: i64 = date.get(0..4)?.parse().ok()?;
    let m: i64 = date.get(5..7)?.parse().ok()?;
    let d: i64 = date.get(8..10)?.parse().ok()?;
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The day of the week of day number `day`, 0 for Sunday.
pub fn weekday(day: i64) -> usize {
    // 1970-01-01 was a Thursday: (0 + 4) mod 7 = 4.
    usize::try_from((day + 4).rem_euclid(7)).unwrap_or_default()
}

/// The days no one works: weekly (by [`weekday`]) and dated holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaysOff {
    /// Each day of the week, from Sunday: off or not.
    pub weekdays: [bool; 7],
    /// Holidays, as day numbers.
    pub dates: BTreeSet<i64>,
}

impl Default for DaysOff {
    /// Saturday and Sunday, no holidays.
    fn default() -> Self {
        Self {
            weekdays: [true, false, false, false, false, false, true],
            dates: BTreeSet::new(),
        }
    }
}

impl DaysOff {
    /// Whether day number `day` is a day off.
    pub fn contains(&self, day: i64) -> bool {
        self.weekdays[weekday(day)] || self.dates.contains(&day)
    }
}

/// Longest request, in calendar days.
pub const MAX_SPAN: i64 = 366;

/// Why a request's dates do not make a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatesError {
    /// `to` is before `from`.
    Backwards,
    /// More than [`MAX_SPAN`] days.
    TooLong,
    /// A half day spans more than one date.
    HalfDaySpan,
    /// Only days off.
    NoWorkingDay,
}

/// Working days (not in `off`) from `from` to `to`, both included; a half day
/// (`from == to`) is 0.5.
///
/// # Errors
/// [`DatesError`] for dates that make no request.
pub fn working_days(
    from: i64,
    to: i64,
    half_day: bool,
    off: &DaysOff,
) -> Result<Decimal, DatesError> {
    if to < from {
        return Err(DatesError::Backwards);
    }
    if to - from >= MAX_SPAN {
        return Err(DatesError::TooLong);
    }
    if half_day && to != from {
        return Err(DatesError::HalfDaySpan);
    }
    let days = (from..=to).filter(|d| !off.contains(*d)).count();
    if days == 0 {
        return Err(DatesError::NoWorkingDay);
    }
    if half_day {
        return Ok(Decimal::new(5, 1));
    }
    Ok(Decimal::from(days as i64))
}

/// A request's dates, as day numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First day.
    pub from: i64,
    /// Last day.
    pub to: i64,
    /// Half a day (then `from == to`).
    pub half_day: bool,
}

/// Whether `new` may coexist with the open or approved requests `others` of the same
/// employee: it shares no day with any, except that half days on the same date may add
/// up to one day.
pub fn fits(new: Span, others: &[Span]) -> bool {
    let overlapping: Vec<&Span> = others
        .iter()
        .filter(|o| o.from <= new.to && o.to >= new.from)
        .collect();
    if overlapping.is_empty() {
        return true;
    }
    new.half_day && overlapping.len() == 1 && overlapping.iter().all(|o| o.half_day)
}

/// What an employee has of one leave type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// Days allocated.
    pub allocated: Decimal,
    /// Days of approved requests.
    pub approved: Decimal,
    /// Days of submitted requests awaiting a decision.
    pub pending: Decimal,
}

impl Balance {
    /// Allocated less approved.
    pub fn balance(&self) -> Decimal {
        self.allocated - self.approved
    }

    /// What a new submission may still ask for: pending requests count against it, so
    /// approving everything pending never drives the balance negative.
    pub fn requestable(&self) -> Decimal {
        self.balance() - self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(date: &str) -> i64 {
        day_number(date).unwrap()
    }

    #[test]
    fn day_numbers_and_weekends_follow_the_calendar() {
        assert_eq!(day("1970-01-01"), 0);
        assert_eq!(day("2000-03-01") - day("2000-02-28"), 2);
        assert_eq!(day("2026-12-01") - day("2025-12-01"), 365);
        // 2026-12-05 is a Saturday, 2026-12-07 a Monday.
        assert_eq!(
            (weekday(day("2026-12-05")), weekday(day("2026-12-07"))),
            (6, 1)
        );
        let weekend = DaysOff::default();
        assert!(weekend.contains(day("2026-12-05")) && weekend.contains(day("2026-12-06")));
        assert!(!weekend.contains(day("2026-12-07")));
        assert_eq!(day_number("2026-02-30"), None);
    }

    #[test]
    fn working_days_skip_days_off_and_half_days_count_half() {
        let weekend = DaysOff::default();
        let d = |a: &str, b: &str, half| working_days(day(a), day(b), half, &weekend);
        assert_eq!(d("2026-12-04", "2026-12-08", false), Ok(Decimal::from(3)));
        assert_eq!(d("2026-12-07", "2026-12-07", true), Ok(Decimal::new(5, 1)));
        assert_eq!(
            d("2026-12-05", "2026-12-06", false),
            Err(DatesError::NoWorkingDay)
        );
        assert_eq!(
            d("2026-12-08", "2026-12-07", false),
            Err(DatesError::Backwards)
        );
        assert_eq!(
            d("2026-12-07", "2026-12-08", true),
            Err(DatesError::HalfDaySpan)
        );
        assert_eq!(
            d("2026-01-01", "2027-01-02", false),
            Err(DatesError::TooLong)
        );
        // A Sunday-to-Thursday week with 12-08 a holiday: 12-04 (Friday) to 12-08 holds
        // only Sunday 12-06 and Monday 12-07.
        let mut gulf = DaysOff {
            weekdays: [false, false, false, false, false, true, true],
            ..DaysOff::default()
        };
        gulf.dates.insert(day("2026-12-08"));
        let days = working_days(day("2026-12-04"), day("2026-12-08"), false, &gulf);
        assert_eq!(days, Ok(Decimal::from(2)));
    }

    #[test]
    fn requests_never_overlap_but_two_half_days_share_a_date() {
        let span = |from: &str, to: &str, half_day| Span {
            from: day(from),
            to: day(to),
            half_day,
        };
        let week = span("2026-12-07", "2026-12-11", false);
        assert!(!fits(span("2026-12-11", "2026-12-14", false), &[week]));
        assert!(fits(span("2026-12-14", "2026-12-15", false), &[week]));
        let morning = span("2026-12-14", "2026-12-14", true);
        assert!(fits(span("2026-12-14", "2026-12-14", true), &[morning]));
        assert!(!fits(span("2026-12-14", "2026-12-14", false), &[morning]));
        let afternoon = morning;
        assert!(!fits(
            span("2026-12-14", "2026-12-14", true),
            &[morning, afternoon]
        ));
    }

    #[test]
    fn balance_is_allocated_less_approved_and_pending_is_apart() {
        let b = Balance {
            allocated: Decimal::from(30),
            approved: Decimal::from(4),
            pending: Decimal::from(1),
        };
        assert_eq!(
            (b.balance(), b.pending),
            (Decimal::from(26), Decimal::from(1))
        );
        assert_eq!(b.requestable(), Decimal::from(25));
    }
}
