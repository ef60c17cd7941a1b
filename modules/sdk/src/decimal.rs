//! Exact decimals for money and quantities: [`Decimal`] (`rust_decimal`, 28 significant
//! digits), read from and written as the decimal strings the data API carries.

pub use rust_decimal::{Decimal, RoundingStrategy};

use crate::Error;

/// What [`parse`] accepts, as a JSON Schema `pattern` for a decimal string field:
/// `#[schemars(pattern(eerp_sdk::decimal::PATTERN))]`.
pub const PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

/// Reads `text` as a decimal with at most `scale` decimals.
///
/// # Errors
/// A 422 naming `field` when it is not a plain decimal (`"12.50"`, `"-3"`) or has more
/// decimals than `scale`.
pub fn parse(field: &str, text: &str, scale: u32) -> Result<Decimal, Error> {
    let bad = |why: &str| {
        Error::unprocessable(format!("{field} `{text}` {why}"))
            .with_code("invalid_number")
            .with_field(field, why.to_string())
    };
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.ends_with('.')
        && !digits.starts_with('.');
    if !plain {
        return Err(bad(
            "is not a decimal number; send a string such as \"12.50\"",
        ));
    }
    let value: Decimal = text
        .parse()
        .map_err(|_| bad("does not fit in 28 significant digits"))?;
    if value.scale() > scale {
        return Err(bad(&format!("has more than {scale} decimals")));
    }
    Ok(value)
}

/// `value` rounded half away from zero to `scale` decimals, as a string with exactly
/// `scale` decimals (`"3000.00"`).
pub fn fixed(value: Decimal, scale: u32) -> String {
    let mut rounded = value.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(scale);
    rounded.to_string()
}

/// `value` rounded half away from zero to `scale` decimals.
pub fn round(value: Decimal, scale: u32) -> Decimal {
    value.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decimals_parse_and_everything_else_is_named() {
        assert_eq!(parse("qty", "12.50", 6).unwrap().to_string(), "12.50");
        assert_eq!(parse("qty", "-3", 0).unwrap().to_string(), "-3");
        for bad in [
            "",
            "1e3",
            "1.",
            ".5",
            "1,5",
            "1.2.3",
            " 1",
            "0x10",
            "--1",
            "1.2345678",
        ] {
            let err = parse("qty", bad, 6).unwrap_err();
            assert_eq!(err.status, 422, "{bad}");
            assert_eq!(err.body.errors[0].field, "qty");
        }
    }

    #[test]
    fn fixed_rounds_half_away_from_zero() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(fixed(d("2.345"), 2), "2.35");
        assert_eq!(fixed(d("-2.345"), 2), "-2.35");
        assert_eq!(fixed(d("3000"), 2), "3000.00");
    }
}
