//! [`Checks`]: field validation that reports every problem at once, as a 422 naming
//! each field, with the validators business modules keep needing.

use eerp_abi::envelope::FieldError;

use crate::Error;

/// Problems found in a record, by field.
#[derive(Debug, Default)]
pub struct Checks {
    problems: Vec<FieldError>,
}

impl Checks {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field`.
    pub fn problem(&mut self, field: &str, message: impl Into<String>) -> &mut Self {
        self.problems.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    /// `value` has `min..=max` characters.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let len = value.chars().count();
        if len < min || len > max {
            self.problem(field, format!("must be {min} to {max} characters"));
        }
        self
    }

    /// `value`, when present, has at most `max` characters.
    pub fn max_len(&mut self, field: &str, value: Option<&str>, max: usize) -> &mut Self {
        if let Some(value) = value {
            self.text(field, value, 0, max);
        }
        self
    }

    /// `value`, when present, is one of `allowed`.
    pub fn one_of(&mut self, field: &str, value: Option<&str>, allowed: &[&str]) -> &mut Self {
        if let Some(value) = value.filter(|v| !allowed.contains(v)) {
            self.problem(
                field,
                format!("`{value}` must be one of {}", allowed.join(", ")),
            );
        }
        self
    }

    /// `value`, when present, looks like an email address: one `@`, something on each
    /// side, a dot inside the domain, no spaces. Deliberately small: the only real check
    /// is sending mail.
    pub fn email(&mut self, field: &str, value: Option<&str>) -> &mut Self {
        if let Some(email) = value.filter(|e| !is_email(e)) {
            self.problem(field, format!("`{email}` is not an email address"));
        }
        self
    }

    /// `value`, when present, is a non-negative decimal string with at most
    /// `integer_digits` digits before the point and `scale` after it (`"1500.00"`).
    pub fn money(
        &mut self,
        field: &str,
        value: Option<&str>,
        integer_digits: usize,
        scale: usize,
    ) -> &mut Self {
        if let Some(amount) = value.filter(|a| !is_amount(a, integer_digits, scale)) {
            self.problem(
                field,
                format!(
                    "`{amount}` is not an amount; send a non-negative decimal string with at most \
                     {scale} decimals, such as \"1500.00\""
                ),
            );
        }
        self
    }

    /// `value`, when present, is a calendar date `YYYY-MM-DD`.
    pub fn date(&mut self, field: &str, value: Option<&str>) -> &mut Self {
        if let Some(date) = value.filter(|d| !is_date(d)) {
            self.problem(field, format!("`{date}` must be a date, YYYY-MM-DD"));
        }
        self
    }

    /// `Ok` when nothing was found; otherwise a 422 that lists every problem, with
    /// `code` and one `errors` entry per field.
    ///
    /// # Errors
    /// The 422.
    pub fn finish(self, what: &str, code: &str) -> Result<(), Error> {
        if self.problems.is_empty() {
            return Ok(());
        }
        let summary: Vec<String> = self
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        let error = Error::unprocessable(format!("the {what} is invalid: {}", summary.join("; ")))
            .with_code(code);
        Err(self
            .problems
            .into_iter()
            .fold(error, |e, p| e.with_field(p.field, p.message)))
    }
}

/// `YYYY-MM-DD` with a real month and day.
pub fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    let number = |s: &str, len: usize| {
        (s.len() == len && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (Some(y), Some(m), Some(d)) = (number(y, 4), number(m, 2), number(d, 2)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d) && y >= 1
}

fn is_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

fn is_amount(amount: &str, integer_digits: usize, scale: usize) -> bool {
    let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    !int.is_empty()
        && int.len() <= integer_digits
        && digits(int)
        && frac.len() <= scale
        && digits(frac)
        && !(amount.contains('.') && frac.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut checks = Checks::new();
        checks
            .text("name", "", 1, 200)
            .email("email", Some("not-an-email"))
            .money("credit_limit", Some("12.345"), 12, 2)
            .one_of("status", Some("vip"), &["lead", "customer"]);
        let err = checks.finish("contact", "invalid_contact").unwrap_err();
        assert_eq!(err.status, 422);
        let fields: Vec<&str> = err.body.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "email", "credit_limit", "status"]);
        assert_eq!(err.body.code.as_deref(), Some("invalid_contact"));
    }

    #[test]
    fn valid_values_pass() {
        let mut checks = Checks::new();
        checks
            .text("name", "Ada", 1, 200)
            .email("email", Some("ada@example.com"))
            .email("other", None)
            .money("credit_limit", Some("1500.5"), 12, 2)
            .money("zero", Some("0"), 12, 2)
            .max_len("notes", Some("short"), 10);
        assert!(checks.finish("contact", "invalid").is_ok());
    }

    #[test]
    fn amounts_are_strict() {
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1.234",
            "1e3",
            "1 000",
            "1234567890123",
        ] {
            assert!(!is_amount(bad, 12, 2), "{bad}");
        }
        for good in ["0", "1", "1.5", "999999999999.99"] {
            assert!(is_amount(good, 12, 2), "{good}");
        }
    }

    #[test]
    fn dates_are_real_calendar_dates() {
        for good in ["2026-12-01", "2024-02-29", "2000-02-29"] {
            assert!(is_date(good), "{good}");
        }
        for bad in [
            "2026-13-01",
            "2026-02-29",
            "1900-02-29",
            "2026-1-01",
            "2026-12-01T00:00",
            "",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }
}
