//! JSON values <-> column types.
//!
//! Every value travels to PostgreSQL as text and is cast there (`$1::text::numeric`), so
//! one rule covers every type and nothing passes through a float. Values are checked here
//! first, so most mistakes get a precise message instead of a database error.

use eerp_abi::migration::SqlType;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::migrations::ColumnModel;
use crate::sql::{is_decimal, is_uuid};

/// The longest `text` or `jsonb` value the data API writes, in bytes. A column that
/// should hold less declares `varchar(n)`; nothing may hold more, so a row read back
/// stays a bounded amount of memory (the request's byte cap is counted per row).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

fn bounded(name: &str, text: String) -> Result<String, String> {
    if text.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "`{name}` is {} bytes, more than the platform's limit of {MAX_VALUE_BYTES} bytes per value",
            text.len()
        ));
    }
    Ok(text)
}

/// The type a parameter is cast to. Lengths and scales are left to the column, because
/// an explicit cast to `varchar(n)` or `numeric(p,s)` would silently truncate or round.
pub fn cast_type(ty: SqlType) -> &'static str {
    match ty {
        SqlType::Text | SqlType::Varchar(_) => "text",
        SqlType::Integer => "integer",
        SqlType::BigInt => "bigint",
        SqlType::Numeric(_) => "numeric",
        SqlType::Boolean => "boolean",
        SqlType::Date => "date",
        SqlType::Timestamptz => "timestamptz",
        SqlType::Uuid => "uuid",
        SqlType::Jsonb => "jsonb",
    }
}

/// The text to bind for `value` in `column`, or why it does not fit. `null` is allowed
/// unless the column is `NOT NULL`.
pub fn to_param(column: &ColumnModel, value: &Value) -> Result<Option<String>, String> {
    if value.is_null() {
        if column.not_null {
            return Err(format!("`{}` may not be null", column.name));
        }
        return Ok(None);
    }
    to_text(column, value).map(Some)
}

/// The text of a non-null `value` for `column`, or why it does not fit.
pub fn to_text(column: &ColumnModel, value: &Value) -> Result<String, String> {
    let name = &column.name;
    let wrong = |expected: &str| format!("`{name}` must be {expected}, not `{value}`");
    match column.ty {
        SqlType::Text => value
            .as_str()
            .ok_or_else(|| wrong("a string"))
            .and_then(|text| bounded(name, text.to_string())),
        SqlType::Varchar(max) => {
            let text = value.as_str().ok_or_else(|| wrong("a string"))?;
            if text.chars().count() > max as usize {
                return Err(format!("`{name}` is longer than {max} characters"));
            }
            Ok(text.to_string())
        }
        SqlType::Integer => value
            .as_i64()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(|n| n.to_string())
            .ok_or_else(|| wrong("a 32-bit integer")),
        SqlType::BigInt => value
            .as_i64()
            .map(|n| n.to_string())
            .ok_or_else(|| wrong("a 64-bit integer")),
        SqlType::Numeric(precision) => numeric_text(name, value, precision),
        SqlType::Boolean => value
            .as_bool()
            .map(|b| b.to_string())
            .ok_or_else(|| wrong("true or false")),
        SqlType::Date => value
            .as_str()
            .filter(|s| is_date(s))
            .map(str::to_string)
            .ok_or_else(|| wrong("a date such as \"2026-11-24\"")),
        SqlType::Timestamptz => value
            .as_str()
            .filter(|s| is_timestamp(s))
            .map(str::to_string)
            .ok_or_else(|| wrong("an RFC 3339 timestamp such as \"2026-11-24T09:30:00Z\"")),
        SqlType::Uuid => value
            .as_str()
            .filter(|s| is_uuid(s))
            .map(str::to_string)
            .ok_or_else(|| wrong("a UUID string")),
        SqlType::Jsonb => bounded(name, value.to_string()),
    }
}

/// `YYYY-MM-DD` with plausible ranges; PostgreSQL rejects impossible days (`02-30`).
/// Its shortcuts such as `today` or `infinity` are refused: the API speaks RFC 3339.
fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let number = |s: &str, len: usize, max: u32| {
        s.len() == len
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n))
    };
    matches!(parts.as_slice(), [y, m, d] if number(y, 4, 9999) && number(m, 2, 12) && number(d, 2, 31))
}

/// RFC 3339: a date, `T` (or a space), `HH:MM:SS`, optional fraction, and `Z` or an
/// offset. An offset is required so a timestamp never depends on a session time zone.
fn is_timestamp(text: &str) -> bool {
    let Some((date, rest)) = text.split_once(['T', 't', ' ']) else {
        return false;
    };
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(at) => rest.split_at(at),
        None => return false,
    };
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let two = |s: &str, max: u32| {
        s.len() == 2
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| n <= max)
    };
    let clock_ok = matches!(clock.split(':').collect::<Vec<_>>().as_slice(), [h, m, s] if two(h, 23) && two(m, 59) && two(s, 60));
    let fraction_ok =
        !fraction.is_empty() && fraction.len() <= 9 && fraction.bytes().all(|b| b.is_ascii_digit());
    let offset_ok = match offset {
        "Z" | "z" => true,
        _ => {
            matches!(offset[1..].split(':').collect::<Vec<_>>().as_slice(), [h, m] if two(h, 23) && two(m, 59))
        }
    };
    is_date(date) && clock_ok && fraction_ok && offset_ok
}

/// Decimals arrive as strings (`"12.50"`) or integers; floats are refused because they
/// may already have lost digits. More decimals than the column's scale are refused
/// rather than rounded.
fn numeric_text(
    name: &str,
    value: &Value,
    precision: Option<(u32, u32)>,
) -> Result<String, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => {
            return Err(format!(
                "`{name}` must be a decimal string such as \"12.50\", not `{value}` (numbers with a fraction may already have lost precision)"
            ));
        }
    };
    if !is_decimal(&text) {
        return Err(format!(
            "`{name}` must be a decimal such as \"12.50\", not `{text}`"
        ));
    }
    if let Some((_, scale)) = precision {
        let decimals = text.split_once('.').map_or(0, |(_, frac)| frac.len());
        if decimals > scale as usize {
            return Err(format!(
                "`{name}` allows {scale} decimals; `{text}` has {decimals} and would be rounded"
            ));
        }
    }
    Ok(text)
}

/// The JSON value of a column's text (as the host selects it).
pub fn from_text(ty: SqlType, text: Option<&str>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    match ty {
        SqlType::Integer | SqlType::BigInt => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_string())),
        SqlType::Boolean => Value::Bool(text == "true" || text == "t"),
        SqlType::Jsonb => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
        _ => Value::String(text.to_string()),
    }
}

/// A column's text serialized as the JSON value [`from_text`] makes of it, written straight
/// into the reply instead of built as a [`Value`] first (a list page has hundreds).
pub struct TextValue<'a> {
    /// The column's type.
    pub ty: SqlType,
    /// Its text as selected, `None` for SQL `NULL`.
    pub text: Option<&'a str>,
}

impl Serialize for TextValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(text) = self.text else {
            return serializer.serialize_unit();
        };
        match self.ty {
            SqlType::Integer | SqlType::BigInt => match text.parse::<i64>() {
                Ok(number) => serializer.serialize_i64(number),
                Err(_) => serializer.serialize_str(text),
            },
            SqlType::Boolean => serializer.serialize_bool(text == "true" || text == "t"),
            // Rare, and re-encoded so its keys come out as a parsed object's would.
            SqlType::Jsonb => from_text(self.ty, self.text).serialize(serializer),
            _ => serializer.serialize_str(text),
        }
    }
}

/// The SQL that selects `expr` (of type `ty`) as text in the form [`from_text`] expects:
/// timestamps as RFC 3339 through `to_json`, everything else with `::text`.
pub fn select_text(expr: &str, ty: SqlType) -> String {
    match ty {
        SqlType::Timestamptz => format!("(to_json({expr}) #>> '{{}}')"),
        _ => format!("({expr})::text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn column(ty: SqlType, not_null: bool) -> ColumnModel {
        ColumnModel {
            name: "c".into(),
            ty,
            not_null,
            has_default: false,
            builtin: false,
        }
    }

    #[test]
    fn decimals_are_exact_and_never_rounded() {
        let money = column(SqlType::Numeric(Some((14, 2))), false);
        assert_eq!(
            to_param(&money, &json!("1500.50")),
            Ok(Some("1500.50".into()))
        );
        assert_eq!(to_param(&money, &json!(7)), Ok(Some("7".into())));
        assert!(to_param(&money, &json!(0.1)).is_err());
        assert!(
            to_param(&money, &json!("1.005"))
                .unwrap_err()
                .contains("rounded")
        );
        assert!(to_param(&money, &json!("1e3")).is_err());
    }

    #[test]
    fn types_are_checked_before_the_database_sees_them() {
        assert!(to_param(&column(SqlType::Integer, false), &json!(3_000_000_000u64)).is_err());
        assert!(to_param(&column(SqlType::Text, false), &json!(5)).is_err());
        assert!(to_param(&column(SqlType::Uuid, false), &json!("nope")).is_err());
        assert!(to_param(&column(SqlType::Varchar(3), false), &json!("abcd")).is_err());
        assert!(to_param(&column(SqlType::Text, true), &Value::Null).is_err());
        assert_eq!(
            to_param(&column(SqlType::Jsonb, false), &json!({"a":1})),
            Ok(Some(r#"{"a":1}"#.into()))
        );
    }

    #[test]
    fn text_and_json_values_have_a_platform_maximum() {
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let text = to_param(&column(SqlType::Text, false), &json!(long)).unwrap_err();
        assert!(text.contains("platform's limit"), "{text}");
        let doc = to_param(&column(SqlType::Jsonb, false), &json!({ "a": long })).unwrap_err();
        assert!(doc.contains("platform's limit"), "{doc}");
        let fits = "x".repeat(MAX_VALUE_BYTES);
        assert!(to_param(&column(SqlType::Text, false), &json!(fits)).is_ok());
    }

    #[test]
    fn dates_and_timestamps_must_be_rfc_3339() {
        for ok in [
            "2026-11-24T09:30:00Z",
            "2026-11-24 09:30:00.123456+01:00",
            "2026-11-24T23:59:60-05:30",
        ] {
            assert!(is_timestamp(ok), "{ok}");
        }
        for bad in [
            "yesterday",
            "now",
            "infinity",
            "2026-11-24",
            "2026-11-24T09:30:00",
            "2026-13-01T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T09:30Z",
        ] {
            assert!(!is_timestamp(bad), "{bad}");
        }
        assert!(is_date("2026-02-28"));
        for bad in ["today", "2026-2-28", "2026-00-10", "26-02-28"] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn text_is_written_as_the_value_it_reads_as() {
        let cases = [
            (SqlType::BigInt, Some("-42")),
            (SqlType::Integer, Some("not a number")),
            (SqlType::Boolean, Some("t")),
            (SqlType::Boolean, Some("false")),
            (SqlType::Numeric(None), Some("0.10")),
            (SqlType::Jsonb, Some(r#"{"b": [1, 2], "a": "\u00e9"}"#)),
            (SqlType::Text, Some("line\nbreak \"quoted\"")),
            (SqlType::Text, None),
        ];
        for (ty, text) in cases {
            let written = serde_json::to_string(&TextValue { ty, text }).unwrap();
            let built = serde_json::to_string(&from_text(ty, text)).unwrap();
            assert_eq!(written, built, "{ty:?} {text:?}");
        }
    }

    #[test]
    fn text_comes_back_typed() {
        assert_eq!(from_text(SqlType::BigInt, Some("42")), json!(42));
        assert_eq!(from_text(SqlType::Boolean, Some("true")), json!(true));
        assert_eq!(
            from_text(SqlType::Numeric(None), Some("0.10")),
            json!("0.10")
        );
        assert_eq!(
            from_text(SqlType::Jsonb, Some(r#"{"a":[1]}"#)),
            json!({"a":[1]})
        );
        assert_eq!(from_text(SqlType::Text, None), Value::Null);
    }
}
