//! Permissions (`crm.contacts.read`), the patterns roles grant (`crm.*`, `*.*.read`), and
//! the roles of a tenant.

use std::collections::BTreeMap;

/// True when `pattern` grants `permission`.
///
/// Both are dot-separated. A `*` segment matches exactly one segment, except as the last
/// segment of a pattern, where it matches all remaining segments (so `*` grants
/// everything and `crm.*` everything in CRM).
pub fn grants(pattern: &str, permission: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let wanted: Vec<&str> = permission.split('.').collect();
    for (i, segment) in pattern.iter().enumerate() {
        let last = i + 1 == pattern.len();
        match (*segment, wanted.get(i)) {
            ("*", Some(_)) if last => return true,
            ("*", Some(_)) => continue,
            (literal, Some(part)) if literal == *part => continue,
            _ => return false,
        }
    }
    pattern.len() == wanted.len()
}

/// True when `pattern` is a well-formed grant: dot-separated segments of lowercase
/// letters, digits, `_` or `-`, or `*`.
pub fn is_valid_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.split('.').all(|segment| {
            segment == "*"
                || (!segment.is_empty()
                    && segment.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    }))
        })
}

/// The roles every new tenant starts with: `admin` may do everything, `viewer` may read
/// everything. Operators may change them per tenant.
pub fn default_roles() -> RoleGrants {
    let mut roles = BTreeMap::new();
    roles.insert("admin".to_string(), vec!["*".to_string()]);
    roles.insert("viewer".to_string(), vec!["*.*.read".to_string()]);
    RoleGrants(roles)
}

/// A tenant's roles and the permission patterns each grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleGrants(pub BTreeMap<String, Vec<String>>);

impl RoleGrants {
    /// True when any of `roles` grants `permission`. Unknown roles grant nothing.
    pub fn allow(&self, roles: &[String], permission: &str) -> bool {
        roles.iter().any(|role| {
            self.0
                .get(role)
                .is_some_and(|patterns| patterns.iter().any(|p| grants(p, permission)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_documented() {
        let cases = [
            ("*", "crm.contacts.read", true),
            ("crm.*", "crm.contacts.delete", true),
            ("crm.*.read", "crm.contacts.read", true),
            ("crm.*.read", "crm.contacts.create", false),
            ("*.*.read", "hr.leave.read", true),
            ("crm.contacts.read", "crm.contacts.read", true),
            ("crm.contacts.read", "crm.contacts.readall", false),
            ("crm.contacts", "crm.contacts.read", false),
            ("crm.contacts.read.x", "crm.contacts.read", false),
            ("hr.*", "crm.contacts.read", false),
        ];
        for (pattern, permission, expected) in cases {
            assert_eq!(
                grants(pattern, permission),
                expected,
                "{pattern} vs {permission}"
            );
        }
    }

    #[test]
    fn default_viewer_reads_but_does_not_write() {
        let roles = default_roles();
        let viewer = vec!["viewer".to_string()];
        assert!(roles.allow(&viewer, "crm.contacts.read"));
        assert!(!roles.allow(&viewer, "crm.contacts.create"));
        assert!(!roles.allow(&["unknown".to_string()], "crm.contacts.read"));
        assert!(roles.allow(&["admin".to_string()], "hr.leave.approve"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert!(is_valid_pattern("crm.*.read"));
        assert!(is_valid_pattern("*"));
        for bad in ["", "crm..read", "CRM.read", "crm.con tacts", "crm.*x"] {
            assert!(!is_valid_pattern(bad), "{bad}");
        }
    }
}
