//! Permissions (`crm.contacts.read`) and the patterns roles grant (`crm.*`, `*.*.read`).

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

/// The permission patterns a built-in role grants. Until tenants define their own roles,
/// `admin` may do everything and `viewer` may read everything.
pub fn default_role_grants(role: &str) -> &'static [&'static str] {
    match role {
        "admin" => &["*"],
        "viewer" => &["*.*.read"],
        _ => &[],
    }
}

/// True when any of `roles` grants `permission` through the default role grants.
pub fn roles_grant(roles: &[String], permission: &str) -> bool {
    roles.iter().any(|role| {
        default_role_grants(role)
            .iter()
            .any(|pattern| grants(pattern, permission))
    })
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
    fn viewer_reads_but_does_not_write() {
        let viewer = vec!["viewer".to_string()];
        assert!(roles_grant(&viewer, "crm.contacts.read"));
        assert!(!roles_grant(&viewer, "crm.contacts.create"));
        assert!(!roles_grant(&["unknown".to_string()], "crm.contacts.read"));
    }
}
