//! Names that end up inside SQL identifiers, parsed once and carried as types.
//!
//! A PostgreSQL identifier holds at most 63 bytes. A schema is `t_<tenant>__<module>`, so
//! tenant slugs are capped at 39 bytes and module names at 20: 2 + 39 + 2 + 20 = 63.

use std::fmt;

use thiserror::Error;

/// A name that is not a valid slug.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "`{value}` is not a valid {what}: use 1 to {max} lower-case ASCII letters, digits or `_`, \
     starting with a letter and not ending with `_`"
)]
pub struct InvalidName {
    /// What was being parsed.
    pub what: &'static str,
    /// The rejected text.
    pub value: String,
    /// The length limit.
    pub max: usize,
}

fn parse_slug(value: &str, what: &'static str, max: usize) -> Result<String, InvalidName> {
    let valid = !value.is_empty()
        && value.len() <= max
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && !value.ends_with('_')
        && !value.contains("__")
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(value.to_string())
    } else {
        Err(InvalidName {
            what,
            value: value.to_string(),
            max,
        })
    }
}

/// A tenant's slug, e.g. `acme`: the tenant claim of its tokens and part of its schemas.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantSlug(String);

impl TenantSlug {
    /// Longest slug, in bytes.
    pub const MAX_LEN: usize = 39;

    /// Parses a slug.
    ///
    /// # Errors
    /// [`InvalidName`] unless it is 1..=39 of `[a-z0-9_]`, starts with a letter, has no
    /// `__` (the schema separator) and does not end with `_`.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        parse_slug(value, "tenant slug", Self::MAX_LEN).map(Self)
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A module's name, e.g. `crm`: its URL prefix and part of its schemas.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleName(String);

impl ModuleName {
    /// Longest module name, in bytes.
    pub const MAX_LEN: usize = 20;

    /// Parses a module name, with the same rules as [`TenantSlug::parse`] and at most
    /// 20 bytes.
    ///
    /// # Errors
    /// [`InvalidName`] otherwise.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        parse_slug(value, "module name", Self::MAX_LEN).map(Self)
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The schema owned by one (tenant, module) pair: `t_<tenant>__<module>`. Both parts are
/// validated slugs without `__`, so distinct pairs never share a schema, and the result
/// always fits PostgreSQL's 63-byte identifier limit.
pub fn schema_name(tenant: &TenantSlug, module: &ModuleName) -> String {
    format!("t_{}__{}", tenant.0, module.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_names_still_fit_an_identifier() {
        let tenant = TenantSlug::parse(&"a".repeat(TenantSlug::MAX_LEN)).unwrap();
        let module = ModuleName::parse(&"b".repeat(ModuleName::MAX_LEN)).unwrap();
        assert!(schema_name(&tenant, &module).len() <= 63);
    }

    #[test]
    fn names_that_could_break_sql_or_collide_are_rejected() {
        for bad in [
            "",
            "Acme",
            "1acme",
            "acme-co",
            "acme co",
            "a\"b",
            "acme_",
            "a__b",
            "é",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(
                TenantSlug::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(ModuleName::parse("crm_extras_with_a_long_name").is_err());
    }

    #[test]
    fn error_says_what_is_allowed() {
        let err = TenantSlug::parse("Acme").unwrap_err().to_string();
        assert!(err.contains("lower-case"), "{err}");
    }
}
