//! Building blocks for SQL text the host writes: quoted identifiers and literals.
//!
//! Values from requests never go through here; they are bind parameters. Only names that
//! were validated as slugs, and DDL literals (defaults and checks) validated against
//! their column type, are rendered into SQL text.

/// Quotes a validated identifier: `contacts` -> `"contacts"`. Embedded quotes are doubled,
/// so even an unvalidated name could not end the identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A schema-qualified table name: `"t_acme__crm"."contacts"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// A string literal for DDL: quotes doubled. Callers run DDL with
/// `standard_conforming_strings = on` (the default), where backslashes are not escapes.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Longest table or column name, in bytes: derived names such as `ix_<table>__<column>`
/// (3 + 29 + 2 + 29 = 63 bytes) then fit PostgreSQL's 63-byte identifiers.
pub const MAX_NAME_LEN: usize = 29;

/// True for names the host accepts for tables and columns: 1..=29 of `[a-z0-9_]`,
/// starting with a letter, not ending with `_`, without `__` (the separator of derived
/// index and constraint names, which keeps those unambiguous) and not `pg_`-prefixed.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.starts_with("pg_")
        && !name.ends_with('_')
        && !name.contains("__")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// True when `text` is a plain decimal: optional `-`, digits, optional `.digits`.
pub fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(int) && frac.is_none_or(all_digits)
}

/// True for the canonical 36-character UUID form (`8-4-4-4-12` hex digits), the only
/// form the data API accepts, so PostgreSQL never sees one it would reject.
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_cannot_break_out() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(
            qualified("t_a__crm", "contacts"),
            r#""t_a__crm"."contacts""#
        );
    }

    #[test]
    fn names_are_short_lowercase_slugs() {
        assert!(is_valid_name("credit_limit"));
        for bad in [
            "",
            "Name",
            "1x",
            "pg_class",
            "a-b",
            "a b",
            "a__b",
            "a_",
            &"x".repeat(30),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn only_canonical_uuids_pass() {
        assert!(is_uuid("6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10"));
        for bad in [
            "",
            "6f1c1a641d2e4c1e9c557f7d3b1e2a10",
            "urn:uuid:6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10",
            "6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a1g",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }

    #[test]
    fn decimals_are_plain() {
        for ok in ["0", "-1", "12.50", "000.1"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", "-", "1.", ".1", "1e5", "1,5", "NaN", "+1", " 1"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
