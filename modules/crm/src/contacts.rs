//! Contacts: routes, request shapes and the rules a contact must satisfy.

use eerp_sdk::{
    Aggregate, AggregateFn, AggregateQuery, Ctx, Error, Filter, FilterOp, ListQuery, Module, Order,
    Reply, Request,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::schema::STATUSES;

const TABLE: &str = "contacts";

/// Adds the contact routes to `module`.
pub fn routes(module: Module) -> Module {
    module
        .get("/contacts", "crm.contacts.read", list)
        .post("/contacts", "crm.contacts.create", create)
        .post("/contacts/validate", "crm.contacts.read", validate)
        .get("/contacts/stats", "crm.contacts.read", stats)
        .get("/contacts/duplicates", "crm.contacts.read", duplicates)
        .get("/contacts/{id}", "crm.contacts.read", get)
        .patch("/contacts/{id}", "crm.contacts.update", update)
        .delete("/contacts/{id}", "crm.contacts.delete", delete)
        .post("/contacts/{id}/restore", "crm.contacts.delete", restore)
}

/// The body of `POST /contacts`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// Display name; required, 1..=200 characters after trimming.
    pub name: String,
    /// Email address, stored lower-case; unique among live contacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone number, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Company name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Pipeline stage; default `lead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Free notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Credit limit as a decimal string with at most 2 decimals, e.g. `"1500.00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_limit: Option<String>,
    /// Web site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// When the contact was last reached, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contacted_at: Option<String>,
}

/// The body of `PATCH /contacts/{id}`: only the fields to change.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contacted_at: Option<String>,
}

/// Checks a new contact and returns it normalised (trimmed name, lower-case email).
///
/// # Errors
/// A 400 listing every invalid field.
pub fn normalize_new(mut contact: NewContact) -> Result<NewContact, Error> {
    let mut problems = Vec::new();
    contact.name = contact.name.trim().to_string();
    check_name(&contact.name, &mut problems);
    contact.email = contact.email.map(|e| e.trim().to_ascii_lowercase());
    check_optional(&contact.email, "email", check_email, &mut problems);
    check_optional(&contact.status, "status", check_status, &mut problems);
    check_optional(
        &contact.credit_limit,
        "credit_limit",
        check_money,
        &mut problems,
    );
    into_result(contact, problems)
}

/// Checks a patch and returns it normalised.
///
/// # Errors
/// A 400 listing every invalid field, or saying the patch is empty.
pub fn normalize_patch(mut patch: ContactPatch) -> Result<ContactPatch, Error> {
    if patch == ContactPatch::default() {
        return Err(Error::bad_request(
            "the patch changes nothing; send at least one field to change",
        ));
    }
    let mut problems = Vec::new();
    patch.name = patch.name.map(|n| n.trim().to_string());
    if let Some(name) = &patch.name {
        check_name(name, &mut problems);
    }
    patch.email = patch.email.map(|e| e.trim().to_ascii_lowercase());
    check_optional(&patch.email, "email", check_email, &mut problems);
    check_optional(&patch.status, "status", check_status, &mut problems);
    check_optional(
        &patch.credit_limit,
        "credit_limit",
        check_money,
        &mut problems,
    );
    into_result(patch, problems)
}

type Problems = Vec<(&'static str, String)>;

fn into_result<T>(value: T, problems: Problems) -> Result<T, Error> {
    if problems.is_empty() {
        return Ok(value);
    }
    let summary = problems
        .iter()
        .map(|(field, message)| format!("{field}: {message}"))
        .collect::<Vec<_>>()
        .join("; ");
    let err = Error::bad_request(format!("the contact is invalid: {summary}"))
        .with_code("invalid_contact");
    Err(problems
        .into_iter()
        .fold(err, |err, (field, message)| err.with_field(field, message)))
}

fn check_name(name: &str, problems: &mut Problems) {
    let len = name.chars().count();
    if len == 0 || len > 200 {
        problems.push(("name", "must be 1 to 200 characters".into()));
    }
}

fn check_optional(
    value: &Option<String>,
    field: &'static str,
    check: fn(&str) -> Result<(), String>,
    problems: &mut Problems,
) {
    if let Some(Err(message)) = value.as_deref().map(check) {
        problems.push((field, message));
    }
}

/// A deliberately small check: one `@`, something on each side, a dot in the domain.
fn check_email(email: &str) -> Result<(), String> {
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!("`{email}` is not an email address"))
    }
}

fn check_status(status: &str) -> Result<(), String> {
    if STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(format!("must be one of {}", STATUSES.join(", ")))
    }
}

/// Non-negative decimal with at most 12 integer digits and 2 decimals: `"0"`, `"1500.5"`.
fn check_money(amount: &str) -> Result<(), String> {
    let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let valid = !int.is_empty()
        && int.len() <= 12
        && digits(int)
        && frac.len() <= 2
        && digits(frac)
        && !(amount.contains('.') && frac.is_empty());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{amount}` is not an amount; send a non-negative decimal string with at most 2 decimals, such as \"1500.00\""
        ))
    }
}

fn id_param(req: &Request) -> Result<&str, Error> {
    req.param("id")
        .ok_or_else(|| Error::internal("route has no {id} parameter"))
}

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let contact = normalize_new(req.json::<NewContact>()?)?;
    let row = ctx.insert(TABLE, &contact).map_err(email_conflict)?;
    Ok(Reply::created(row))
}

fn validate(_ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let contact = normalize_new(req.json::<NewContact>()?)?;
    Ok(Reply::ok(contact))
}

fn get(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = ctx.get(TABLE, id_param(req)?)?;
    Ok(Reply::ok(row))
}

fn update(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let patch = normalize_patch(req.json::<ContactPatch>()?)?;
    let row = ctx
        .update(TABLE, id_param(req)?, &patch)
        .map_err(email_conflict)?;
    Ok(Reply::ok(row))
}

fn delete(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    ctx.delete(TABLE, id_param(req)?)?;
    Ok(Reply::no_content())
}

fn restore(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = ctx.restore(TABLE, id_param(req)?).map_err(email_conflict)?;
    Ok(Reply::ok(row))
}

fn email_conflict(err: eerp_sdk::DataError) -> Error {
    if err.kind == eerp_sdk::DataErrorKind::Conflict {
        return Error::conflict("another live contact already has this email address")
            .with_code("email_taken");
    }
    err.into()
}

const LIST_PARAMS: [&str; 7] = [
    "status",
    "company",
    "q",
    "limit",
    "cursor",
    "order",
    "include_deleted",
];

/// Turns `GET /contacts` query parameters into a list query.
///
/// # Errors
/// A 400 naming an unknown parameter or a bad value.
pub fn list_query(req: &Request) -> Result<ListQuery, Error> {
    if let Some(unknown) = req.query_names().find(|name| !LIST_PARAMS.contains(name)) {
        return Err(Error::bad_request(format!(
            "unknown query parameter `{unknown}`; use {}",
            LIST_PARAMS.join(", ")
        )));
    }
    let mut filter = Vec::new();
    if let Some(status) = req.query("status") {
        check_status(status).map_err(|m| Error::bad_request(format!("status {m}")))?;
        filter.push(eq("status", status));
    }
    if let Some(company) = req.query("company") {
        filter.push(eq("company", company));
    }
    if let Some(q) = req.query("q") {
        filter.push(Filter {
            column: "name".into(),
            op: FilterOp::Contains,
            value: json!(q),
        });
    }
    let limit = match req.query("limit") {
        Some(text) => Some(
            text.parse::<u32>()
                .ok()
                .filter(|n| (1..=200).contains(n))
                .ok_or_else(|| {
                    Error::bad_request(format!(
                        "limit `{text}` must be a whole number from 1 to 200"
                    ))
                })?,
        ),
        None => None,
    };
    let order = match req.query("order") {
        None => None,
        Some(text) => Some(parse_order(text)?),
    };
    let include_deleted = match req.query("include_deleted") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Error::bad_request(format!(
                "include_deleted `{other}` must be true or false"
            )));
        }
    };
    Ok(ListQuery {
        module: None,
        table: TABLE.into(),
        filter,
        order,
        limit,
        cursor: req.query("cursor").map(str::to_string),
        include_deleted,
    })
}

fn parse_order(text: &str) -> Result<Order, Error> {
    let (column, desc) = match text.strip_prefix('-') {
        Some(column) => (column, true),
        None => (text, false),
    };
    if !["name", "created_at", "updated_at", "credit_limit"].contains(&column) {
        return Err(Error::bad_request(format!(
            "order `{text}` must be name, created_at, updated_at or credit_limit, with `-` for descending"
        )));
    }
    Ok(Order {
        column: column.into(),
        desc,
    })
}

fn eq(column: &str, value: &str) -> Filter {
    Filter {
        column: column.into(),
        op: FilterOp::Eq,
        value: Value::String(value.into()),
    }
}

fn list(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let page = ctx.list(list_query(req)?)?;
    Ok(Reply::ok(
        json!({ "data": page.rows, "next_cursor": page.next_cursor }),
    ))
}

/// Pairs of live contacts that are probably the same: names within an edit distance of 2
/// after lower-casing and dropping punctuation. Compares every pair of up to 500 contacts,
/// which makes it the module's compute-heavy route.
fn duplicates(ctx: &mut Ctx, _req: &Request) -> Result<Reply, Error> {
    let page = ctx.list(ListQuery {
        module: None,
        table: TABLE.into(),
        filter: Vec::new(),
        order: None,
        limit: Some(eerp_sdk::abi::data::MAX_PAGE),
        cursor: None,
        include_deleted: false,
    })?;
    let names: Vec<(Value, Vec<char>)> = page
        .rows
        .iter()
        .map(|row| {
            (
                row["id"].clone(),
                normalize_name(row["name"].as_str().unwrap_or("")),
            )
        })
        .collect();
    let mut pairs = Vec::new();
    for (i, (id_a, a)) in names.iter().enumerate() {
        for (id_b, b) in &names[i + 1..] {
            if let Some(distance) = distance_within(a, b, 2) {
                pairs.push(json!({ "a": id_a, "b": id_b, "distance": distance }));
            }
        }
    }
    Ok(Reply::ok(
        json!({ "pairs": pairs, "compared": names.len() }),
    ))
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

fn stats(ctx: &mut Ctx, _req: &Request) -> Result<Reply, Error> {
    let result = ctx.aggregate(AggregateQuery {
        module: None,
        table: TABLE.into(),
        filter: Vec::new(),
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
    })?;
    Ok(Reply::ok(json!({ "by_status": result.groups })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(name: &str) -> NewContact {
        NewContact {
            name: name.into(),
            email: None,
            phone: None,
            company: None,
            status: None,
            notes: None,
            credit_limit: None,
            website: None,
            last_contacted_at: None,
        }
    }

    #[test]
    fn new_contact_is_trimmed_and_email_lowercased() {
        let mut c = contact("  Ada Lovelace ");
        c.email = Some(" Ada@Example.COM ".into());
        let c = normalize_new(c).unwrap();
        assert_eq!(c.name, "Ada Lovelace");
        assert_eq!(c.email.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let mut c = contact("   ");
        c.email = Some("not-an-email".into());
        c.status = Some("vip".into());
        c.credit_limit = Some("-5".into());
        let err = normalize_new(c).unwrap_err();
        assert_eq!(err.status, 400);
        let fields: Vec<_> = err.body.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "email", "status", "credit_limit"]);
    }

    #[test]
    fn money_accepts_exact_decimals_only() {
        for ok in ["0", "1500", "1500.5", "1500.50", "999999999999.99"] {
            assert!(check_money(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-1", "1.234", "1e3", "1.", ".5", "1,5", "1000000000000"] {
            assert!(check_money(bad).is_err(), "{bad}");
        }
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
    fn empty_patch_is_rejected() {
        assert_eq!(
            normalize_patch(ContactPatch::default()).unwrap_err().status,
            400
        );
    }

    #[test]
    fn data_calls_fail_cleanly_outside_the_host() {
        let principal = eerp_sdk::Principal {
            subject: "u".into(),
            roles: vec![],
        };
        let mut ctx = Ctx::new(principal, "r".into());
        let err = ctx.get(TABLE, "x").unwrap_err();
        assert_eq!(err.kind, eerp_sdk::DataErrorKind::Unavailable);
    }

    #[test]
    fn manifest_lists_every_route_with_a_crm_permission() {
        let manifest = crate::module().manifest();
        assert_eq!(manifest.name, "crm");
        assert_eq!(manifest.routes.len(), 9);
        assert!(
            manifest
                .routes
                .iter()
                .all(|r| r.permission.starts_with("crm.contacts."))
        );
    }
}
