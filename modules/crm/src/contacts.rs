//! Contacts: routes, the contact record and the rules it must satisfy.

use eerp_sdk::{
    Aggregate, AggregateFn, AggregateQuery, Checks, Ctx, Error, FilterOp, ListQuery, ListSpec,
    Module, Page, Reply, Request, Row, Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::schema::STATUSES;

/// The contacts table.
pub const CONTACTS: Table<Row<Contact>> = Table::new("contacts");

/// Adds the contact routes to `module`.
pub fn routes(module: Module) -> Module {
    module
        .emits(CONTACT_CREATED)
        .get("/contacts", "crm.contacts.read", list)
        .summary("List contacts, a page at a time")
        .lists(list_spec)
        .returns::<Page<Row<Contact>>>()
        .post("/contacts", "crm.contacts.create", create)
        .summary("Create a contact")
        .takes_record::<Contact>()
        .creates::<Row<Contact>>()
        .post("/contacts/validate", "crm.contacts.read", validate)
        .summary("Check a contact without storing it; answers it normalised")
        .takes_record::<Contact>()
        .returns::<Contact>()
        .get("/contacts/stats", "crm.contacts.read", stats)
        .summary("Count and credit limits of the live contacts per status")
        .returns::<Stats>()
        .get("/contacts/duplicates", "crm.contacts.read", duplicates)
        .summary("Pairs of contacts whose names are within an edit distance of 2")
        .returns::<Duplicates>()
        .get("/contacts/{id}", "crm.contacts.read", get)
        .summary("Read a contact")
        .returns::<Row<Contact>>()
        .patch("/contacts/{id}", "crm.contacts.update", update)
        .summary("Change some fields of a contact")
        .takes_patch::<Contact>()
        .returns::<Row<Contact>>()
        .delete("/contacts/{id}", "crm.contacts.delete", delete)
        .summary("Soft-delete a contact")
        .returns_nothing()
        .post("/contacts/{id}/restore", "crm.contacts.delete", restore)
        .summary("Undo the soft delete of a contact")
        .returns::<Row<Contact>>()
}

/// The answer of `GET /contacts/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    /// One group per status.
    pub by_status: Vec<StatusGroup>,
}

/// The live contacts of one status.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatusGroup {
    /// The status.
    pub key: StatusKey,
    /// What they add up to.
    pub values: StatusValues,
}

/// The status of a [`StatusGroup`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatusKey {
    /// The status (none for contacts without one).
    pub status: Option<String>,
}

/// The sums of a [`StatusGroup`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatusValues {
    /// How many contacts.
    pub count: i64,
    /// Their credit limits, summed exactly (none when none has one).
    pub sum_credit_limit: Option<String>,
}

/// The answer of `GET /contacts/duplicates`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Duplicates {
    /// Pairs of probably the same contact.
    pub pairs: Vec<DuplicatePair>,
    /// How many contacts were compared (at most 500).
    pub compared: usize,
}

/// Two contacts whose names are close.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DuplicatePair {
    /// One contact.
    pub a: String,
    /// The other.
    pub b: String,
    /// The edit distance of their names.
    pub distance: usize,
}

/// A contact as callers write it: the body of `POST /contacts`, and what a `PATCH`
/// changes (merged onto the stored contact and checked the same way).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Contact {
    /// Display name; required, 1..=200 characters after trimming.
    pub name: String,
    /// Email address, stored lower-case; unique among live contacts.
    pub email: Option<String>,
    /// Phone number, free text.
    pub phone: Option<String>,
    /// Company name.
    pub company: Option<String>,
    /// Pipeline stage; default `lead`.
    pub status: Option<String>,
    /// Free notes.
    pub notes: Option<String>,
    /// Credit limit as a decimal string with at most 2 decimals, e.g. `"1500.00"`.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub credit_limit: Option<String>,
    /// Web site.
    pub website: Option<String>,
    /// When the contact was last reached, RFC 3339.
    pub last_contacted_at: Option<String>,
}

/// Checks a contact and returns it normalised (trimmed name, lower-case email).
///
/// # Errors
/// A 422 naming every invalid field.
pub fn normalize(mut contact: Contact) -> Result<Contact, Error> {
    contact.name = contact.name.trim().to_string();
    contact.email = contact.email.map(|e| e.trim().to_ascii_lowercase());
    let mut checks = Checks::new();
    checks
        .text("name", &contact.name, 1, 200)
        .email("email", contact.email.as_deref())
        .max_len("phone", contact.phone.as_deref(), 64)
        .max_len("company", contact.company.as_deref(), 200)
        .max_len("website", contact.website.as_deref(), 2048)
        .max_len("notes", contact.notes.as_deref(), 20_000)
        .one_of("status", contact.status.as_deref(), &STATUSES)
        .money("credit_limit", contact.credit_limit.as_deref(), 12, 2);
    checks.finish("contact", "invalid_contact")?;
    Ok(contact)
}

/// What `GET /contacts` accepts.
pub fn list_spec() -> ListSpec {
    ListSpec::new("contacts")
        .filter_one_of("status", &STATUSES)
        .filter("company")
        .filter_by("q", "name", FilterOp::Contains)
        .sortable(&["name", "credit_limit"])
}

/// Emitted when a contact is created, with its `id` and `name`.
pub const CONTACT_CREATED: &str = "crm.contact_created";

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let contact = normalize(req.record::<Contact>()?)?;
    let row = CONTACTS.insert(ctx, &contact).map_err(email_conflict)?;
    ctx.emit(
        CONTACT_CREATED,
        &json!({"id": row.id, "name": row.record.name}),
    )?;
    Ok(Reply::created(row))
}

fn validate(_ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(normalize(req.record::<Contact>()?)?))
}

fn get(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(CONTACTS.get(ctx, req.path("id")?)?))
}

fn update(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let current = CONTACTS.get_for_update(ctx, id)?;
    let patch = req.patch::<Contact>(&current)?;
    let contact = normalize(patch.merged.clone())?;
    let row = CONTACTS
        .update(ctx, id, &patch.changes(&contact))
        .map_err(email_conflict)?;
    Ok(Reply::ok(row))
}

fn delete(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    CONTACTS.delete(ctx, req.path("id")?)?;
    Ok(Reply::no_content())
}

fn restore(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = CONTACTS
        .restore(ctx, req.path("id")?)
        .map_err(email_conflict)?;
    Ok(Reply::ok(row))
}

fn email_conflict(err: eerp_sdk::DataError) -> Error {
    if err.kind == eerp_sdk::DataErrorKind::Conflict {
        return Error::conflict("another live contact already has this email address")
            .with_code("email_taken");
    }
    err.into()
}

fn list(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(CONTACTS.list(ctx, list_spec().query(req)?)?))
}

/// Pairs of live contacts that are probably the same: names within an edit distance of 2
/// after lower-casing and dropping punctuation. Compares every pair of up to 500 contacts,
/// which makes it the module's compute-heavy route.
fn duplicates(ctx: &mut Ctx, _req: &Request) -> Result<Reply, Error> {
    let query = ListQuery {
        limit: Some(eerp_sdk::abi::data::MAX_PAGE),
        ..ListQuery::default()
    };
    let page = CONTACTS.list(ctx, query)?;
    let names: Vec<(&str, Vec<char>)> = page
        .data
        .iter()
        .map(|row| (row.id.as_str(), normalize_name(&row.record.name)))
        .collect();
    let mut pairs = Vec::new();
    for (i, (id_a, a)) in names.iter().enumerate() {
        for (id_b, b) in &names[i + 1..] {
            if let Some(distance) = distance_within(a, b, 2) {
                pairs.push(DuplicatePair {
                    a: id_a.to_string(),
                    b: id_b.to_string(),
                    distance,
                });
            }
        }
    }
    Ok(Reply::ok(Duplicates {
        pairs,
        compared: names.len(),
    }))
}

fn stats(ctx: &mut Ctx, _req: &Request) -> Result<Reply, Error> {
    let result = CONTACTS.aggregate(
        ctx,
        AggregateQuery {
            group_by: vec!["status".into()],
            aggregates: vec![
                Aggregate {
                    func: AggregateFn::Count,
                    column: None,
                },
                Aggregate {
                    func: AggregateFn::Sum,
                    column: Some("credit_limit".into()),
                },
            ],
            ..AggregateQuery::default()
        },
    )?;
    let by_status = result
        .groups
        .into_iter()
        .map(|group| serde_json::from_value(serde_json::to_value(group)?))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::internal(format!("the contact stats have an unexpected shape: {e}")))?;
    Ok(Reply::ok(Stats { by_status }))
}

/// Lower-case letters and digits of `name`, single-spaced.
pub fn normalize_name(name: &str) -> Vec<char> {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    cleaned
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect()
}

/// The Levenshtein distance between `a` and `b` when it is at most `max`, else `None`.
/// Only cells within `max` of the diagonal are computed, and a row whose best cell is
/// already beyond `max` ends the search.
pub fn distance_within(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let beyond = max + 1;
    let mut previous: Vec<usize> = (0..=b.len()).map(|j| j.min(beyond)).collect();
    let mut current = vec![beyond; b.len() + 1];
    for i in 1..=a.len() {
        let low = i.saturating_sub(max).max(1);
        let high = (i + max).min(b.len());
        current[low - 1] = if low == 1 { i.min(beyond) } else { beyond };
        let mut best = current[low - 1];
        for j in low..=high {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let cell = substitution
                .min(previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(beyond);
            current[j] = cell;
            best = best.min(cell);
        }
        if high < b.len() {
            current[high + 1] = beyond;
        }
        if best > max {
            return None;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    Some(previous[b.len()]).filter(|d| *d <= max)
}

/// The plain Levenshtein distance, the oracle for [`distance_within`].
#[cfg(test)]
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(name: &str) -> Contact {
        Contact {
            name: name.into(),
            ..Contact::default()
        }
    }

    #[test]
    fn a_contact_is_trimmed_and_its_email_lowercased() {
        let mut c = contact("  Ada Lovelace ");
        c.email = Some(" Ada@Example.COM ".into());
        let c = normalize(c).unwrap();
        assert_eq!(c.name, "Ada Lovelace");
        assert_eq!(c.email.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let mut c = contact(" ");
        c.email = Some("nope".into());
        c.status = Some("vip".into());
        c.credit_limit = Some("-5".into());
        let err = normalize(c).unwrap_err();
        assert_eq!(err.status, 422);
        let fields: Vec<&str> = err.body.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "email", "status", "credit_limit"]);
    }

    #[test]
    fn near_identical_names_are_within_distance_two() {
        let d = |a: &str, b: &str| edit_distance(&normalize_name(a), &normalize_name(b));
        assert_eq!(d("Ada Lovelace", "ada  lovelace."), 0);
        assert_eq!(d("Ada Lovelace", "Ada Lovelase"), 1);
        assert!(d("Ada Lovelace", "Grace Hopper") > 2);
        assert_eq!(d("", "abc"), 3);
    }

    #[test]
    fn the_banded_distance_agrees_with_the_full_one() {
        let words = [
            "",
            "a",
            "ab",
            "abc",
            "acb",
            "ada lovelace",
            "ada lovelase",
            "ada lovlace",
            "adа lovelace",
            "grace hopper",
            "grace hoper",
            "gracehopper",
            "ada",
            "lovelace ada",
        ];
        for a in words {
            for b in words {
                let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
                let full = edit_distance(&a, &b);
                for max in 0..4 {
                    let expected = (full <= max).then_some(full);
                    assert_eq!(distance_within(&a, &b, max), expected, "{a:?} {b:?} {max}");
                }
            }
        }
    }

    #[test]
    fn data_calls_fail_cleanly_outside_the_host() {
        let principal = eerp_sdk::Principal {
            subject: "u".into(),
            roles: vec![],
        };
        let mut ctx = Ctx::new(principal, "r".into());
        let err = CONTACTS.get(&mut ctx, "x").unwrap_err();
        assert_eq!(err.kind, eerp_sdk::DataErrorKind::Unavailable);
    }

    #[test]
    fn manifest_lists_every_route_with_a_crm_permission() {
        let manifest = crate::module().manifest();
        assert_eq!(manifest.name, "crm");
        assert_eq!(manifest.routes.len(), 9 + 4 * 6 + 1);
        assert!(
            manifest
                .routes
                .iter()
                .all(|r| r.permission.starts_with("crm."))
        );
    }
}
