//! Journal entries: drafts, posting, reversal.
//!
//! Posting checks that every line has one positive amount to the cent and that debits
//! equal credits (a 422 names the difference), that the accounts are live leaf accounts,
//! that receivable and payable lines name a CRM company (read through the grant
//! `read:crm.companies`), and that no closed period covers the date. It share-locks the
//! books row, which closing a period locks alone, so a posting either commits before a
//! close or sees it. Posted entries never change: a reversal entry undoes one.

use std::collections::BTreeSet;

use eerp_sdk::decimal::{fixed, parse};
use eerp_sdk::{
    Checks, Ctx, DataErrorKind, Decimal, Error, Filter, FilterOp, Granted, ListQuery, ListSpec,
    LockMode, Module, Page, Reply, Request, Row, Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::chart::{ACCOUNTS, JOURNALS};
use crate::periods::{closed_period_at, open_books};
use crate::schema::ENTRY_STATES;

/// The entries table.
pub const ENTRIES: Table<Row<Entry>> = Table::new("entries");
/// The lines table: the general ledger, posted lines only.
pub const LINES: Table<Row<Line>> = Table::new("lines");
/// CRM's companies, the parties of receivable and payable lines.
pub const COMPANIES: Granted<Value> = Granted::new("crm", "companies");

/// Most lines one entry may have.
const MAX_LINES: usize = 100;

/// A stored entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Entry {
    /// The journal.
    #[schemars(extend("format" = "uuid"))]
    pub journal_id: String,
    /// Accounting date.
    #[schemars(extend("format" = "date"))]
    pub date: String,
    /// `draft` or `posted`.
    pub status: String,
    /// Free text: an invoice number.
    pub reference: Option<String>,
    /// Free text.
    pub memo: Option<String>,
    /// Sum of the debits (= of the credits).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub total: String,
    /// A draft's lines, as written.
    pub draft_lines: Option<Vec<LineInput>>,
    /// The entry this one reverses.
    #[schemars(extend("format" = "uuid"))]
    pub reversal_of: Option<String>,
    /// The entry that reversed this one.
    #[schemars(extend("format" = "uuid"))]
    pub reversed_by: Option<String>,
    /// What posted it, when not a caller (`inventory.move:<id>`).
    pub source: Option<String>,
}

/// A posted line.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Line {
    /// The entry.
    #[schemars(extend("format" = "uuid"))]
    pub entry_id: String,
    /// Its place in the entry, from 1.
    pub seq: i64,
    /// The account.
    #[schemars(extend("format" = "uuid"))]
    pub account_id: String,
    /// The entry's date.
    #[schemars(extend("format" = "date"))]
    pub date: String,
    /// Debit amount.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub debit: String,
    /// Credit amount.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub credit: String,
    /// The CRM company, on receivable and payable lines.
    #[schemars(extend("format" = "uuid"))]
    pub party_id: Option<String>,
    /// Free text.
    pub memo: Option<String>,
    /// On a period-closing entry (left out of profit and loss).
    pub closing: Option<bool>,
}

/// A line as callers write it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    /// The account.
    #[schemars(extend("format" = "uuid"))]
    pub account_id: String,
    /// Debit, a decimal string with at most 2 decimals; give this or `credit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub debit: Option<String>,
    /// Credit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub credit: Option<String>,
    /// A CRM company; required on receivable and payable accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "uuid"))]
    pub party_id: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// The body of `POST /entries`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// The journal.
    #[schemars(extend("format" = "uuid"))]
    pub journal_id: String,
    /// Accounting date, `YYYY-MM-DD`.
    #[schemars(extend("format" = "date"))]
    pub date: String,
    /// Free text.
    pub reference: Option<String>,
    /// Free text.
    pub memo: Option<String>,
    /// At least two lines.
    pub lines: Vec<LineInput>,
    /// Keep it as a draft instead of posting it.
    #[serde(default)]
    pub draft: bool,
}

/// A line with its amounts read.
#[derive(Debug, Clone, PartialEq)]
pub struct Amounts {
    /// Debit.
    pub debit: Decimal,
    /// Credit.
    pub credit: Decimal,
}

/// Reads each line's amounts: exactly one of debit and credit, positive, to the cent.
///
/// # Errors
/// A 422 naming each bad line (`lines[2].debit`).
pub fn read_amounts(lines: &[LineInput]) -> Result<Vec<Amounts>, Error> {
    let mut checks = Checks::new();
    if lines.len() < 2 || lines.len() > MAX_LINES {
        checks.problem("lines", format!("an entry has 2 to {MAX_LINES} lines"));
    }
    let mut amounts = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let amount = |field: &str, text: &Option<String>, checks: &mut Checks| match text {
            None => Decimal::ZERO,
            Some(text) => match parse(field, text, 2) {
                Ok(v) if v.is_sign_negative() => {
                    checks.problem(&format!("lines[{i}].{field}"), "must not be negative");
                    Decimal::ZERO
                }
                Ok(v) if v >= Decimal::from(10_000_000_000_000_000i64) => {
                    checks.problem(&format!("lines[{i}].{field}"), "is too large");
                    Decimal::ZERO
                }
                Ok(v) => v,
                Err(_) => {
                    checks.problem(
                        &format!("lines[{i}].{field}"),
                        format!("`{text}` is not an amount with at most 2 decimals"),
                    );
                    Decimal::ZERO
                }
            },
        };
        let debit = amount("debit", &line.debit, &mut checks);
        let credit = amount("credit", &line.credit, &mut checks);
        if debit.is_zero() == credit.is_zero() {
            checks.problem(
                &format!("lines[{i}]"),
                "give one positive amount: debit or credit",
            );
        }
        checks.max_len(&format!("lines[{i}].memo"), line.memo.as_deref(), 200);
        amounts.push(Amounts { debit, credit });
    }
    checks.finish("entry", "invalid_entry")?;
    Ok(amounts)
}

/// Checks that debits equal credits and returns the total.
///
/// # Errors
/// A 422 with code `unbalanced` naming both sums and the difference.
pub fn balanced(amounts: &[Amounts]) -> Result<Decimal, Error> {
    let debit: Decimal = amounts.iter().map(|a| a.debit).sum();
    let credit: Decimal = amounts.iter().map(|a| a.credit).sum();
    if debit.max(credit) >= Decimal::from(10_000_000_000_000_000i64) {
        return Err(
            Error::unprocessable("the entry's total must be below 10^16")
                .with_code("invalid_entry")
                .with_field("lines", "the amounts add up to too much"),
        );
    }
    if debit == credit {
        return Ok(debit);
    }
    let difference = (debit - credit).abs();
    let side = if debit > credit {
        "debits exceed credits"
    } else {
        "credits exceed debits"
    };
    Err(Error::unprocessable(format!(
        "the entry does not balance: debits {}, credits {}; {side} by {}",
        fixed(debit, 2),
        fixed(credit, 2),
        fixed(difference, 2)
    ))
    .with_code("unbalanced")
    .with_field("lines", format!("{side} by {}", fixed(difference, 2))))
}

/// An entry ready to post.
#[derive(Debug, Clone)]
pub struct Posting {
    /// The journal.
    pub journal_id: String,
    /// The date.
    pub date: String,
    /// Free text.
    pub reference: Option<String>,
    /// Free text.
    pub memo: Option<String>,
    /// The lines.
    pub lines: Vec<LineInput>,
    /// What posted it.
    pub source: Option<String>,
    /// The entry it reverses.
    pub reversal_of: Option<String>,
    /// A period-closing entry: its lines are left out of profit and loss.
    pub closing: bool,
}

/// Posts `posting`: a new posted entry, or `draft` (a locked draft row) turned posted.
///
/// # Errors
/// 422s for every rule above; 409 when a source already posted.
pub fn post(ctx: &mut Ctx, posting: &Posting, draft: Option<&str>) -> Result<Row<Entry>, Error> {
    let amounts = read_amounts(&posting.lines)?;
    check_header(posting)?;
    open_books(ctx, LockMode::Share)?;
    let rounded;
    let (posting, amounts) = match crate::settings::round_off(ctx, &amounts)? {
        Some(line) => {
            let mut with_line = posting.clone();
            with_line.lines.push(line);
            rounded = with_line;
            (&rounded, read_amounts(&rounded.lines)?)
        }
        None => (posting, amounts),
    };
    let total = balanced(&amounts)?;
    if let Some(period) = closed_period_at(ctx, &posting.date)? {
        return Err(closed(&period, &posting.date));
    }
    JOURNALS
        .get(ctx, &posting.journal_id)
        .map_err(|_| Error::unknown_reference("journal_id", "journal"))?;
    check_accounts_and_parties(ctx, &posting.lines)?;
    let values = json!({
        "journal_id": posting.journal_id,
        "date": posting.date,
        "status": "posted",
        "reference": posting.reference,
        "memo": posting.memo,
        "total": fixed(total, 2),
        "draft_lines": null,
        "source": posting.source,
        "reversal_of": posting.reversal_of,
    });
    let entry = match draft {
        Some(id) => ENTRIES.update(ctx, id, &values)?,
        None => ENTRIES.insert(ctx, &values).map_err(|e| match e.kind {
            DataErrorKind::Conflict => {
                Error::conflict("this source was already posted").with_code("already_posted")
            }
            _ => e.into(),
        })?,
    };
    for (seq, (line, amount)) in posting.lines.iter().zip(&amounts).enumerate() {
        LINES.insert(
            ctx,
            &json!({
                "entry_id": entry.id,
                "seq": seq + 1,
                "account_id": line.account_id,
                "date": posting.date,
                "debit": fixed(amount.debit, 2),
                "credit": fixed(amount.credit, 2),
                "party_id": line.party_id,
                "memo": line.memo,
                "closing": posting.closing.then_some(true),
            }),
        )?;
    }
    Ok(entry)
}

fn check_header(posting: &Posting) -> Result<(), Error> {
    let mut checks = Checks::new();
    if !eerp_sdk::is_date(&posting.date) {
        checks.problem(
            "date",
            format!("`{}` must be a date, YYYY-MM-DD", posting.date),
        );
    }
    checks
        .max_len("reference", posting.reference.as_deref(), 200)
        .max_len("memo", posting.memo.as_deref(), 1000);
    checks.finish("entry", "invalid_entry")
}

/// The 422 for a date inside a closed period.
pub fn closed(period: &str, date: &str) -> Error {
    Error::unprocessable(format!(
        "{date} is in the closed period {period}; post with a date in an open period, or reopen it"
    ))
    .with_code("period_closed")
    .with_field("date", format!("in the closed period {period}"))
}

/// Every line's account is a live leaf account; receivable and payable lines name a
/// live CRM company.
fn check_accounts_and_parties(ctx: &mut Ctx, lines: &[LineInput]) -> Result<(), Error> {
    // Share-locked in id order: an account cannot be deleted, retyped or made a group
    // while an entry is posted to it.
    let ids: BTreeSet<&str> = lines.iter().map(|l| l.account_id.as_str()).collect();
    let mut accounts = Vec::new();
    for id in ids {
        if let Ok(account) = ACCOUNTS.lock_by(ctx, &json!({ "id": id }), LockMode::Share) {
            accounts.push(account);
        }
    }
    let find = |id: &str| accounts.iter().find(|a| a.id == id);
    let mut checks = Checks::new();
    let mut parties = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let field = format!("lines[{i}].account_id");
        let Some(account) = find(&line.account_id) else {
            checks.problem(&field, "no live account with this id");
            continue;
        };
        if account.record.group() {
            checks.problem(
                &field,
                format!(
                    "{} is a group account; post to one of its sub-accounts",
                    account.record.code
                ),
            );
        }
        match (&account.record.kind, &line.party_id) {
            (Some(kind), None) => {
                checks.problem(
                    &format!("lines[{i}].party_id"),
                    format!(
                        "{} is a {kind} account: name the customer or supplier (a CRM company)",
                        account.record.code
                    ),
                );
            }
            (_, Some(party)) => {
                parties.insert(party.as_str());
            }
            _ => {}
        }
    }
    checks.finish("entry", "invalid_entry")?;
    check_parties(ctx, lines, &parties)
}

fn check_parties(
    ctx: &mut Ctx,
    lines: &[LineInput],
    parties: &BTreeSet<&str>,
) -> Result<(), Error> {
    if parties.is_empty() {
        return Ok(());
    }
    let found = COMPANIES
        .list(ctx, by_ids(parties.iter().copied(), parties.len()))
        .map_err(|e| match e.kind {
            DataErrorKind::Forbidden => Error::unprocessable(
                "party_id names a CRM company, and CRM is not enabled for this tenant",
            )
            .with_code("crm_not_enabled"),
            _ => e.into(),
        })?;
    let mut checks = Checks::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(party) = &line.party_id else {
            continue;
        };
        if !found.data.iter().any(|c| c["id"] == party.as_str()) {
            checks.problem(
                &format!("lines[{i}].party_id"),
                "no live CRM company with this id",
            );
        }
    }
    checks.finish("entry", "invalid_entry")
}

/// A list of the rows with these ids (ids that are not uuids match nothing).
fn by_ids<'a>(ids: impl Iterator<Item = &'a str>, count: usize) -> ListQuery {
    let ids: Vec<Value> = ids.filter(|id| is_uuid(id)).map(|id| json!(id)).collect();
    let filter = if ids.is_empty() {
        vec![Filter::new("id", FilterOp::IsNull, true)]
    } else {
        vec![Filter::new("id", FilterOp::In, ids)]
    };
    ListQuery {
        filter,
        limit: Some(count.clamp(1, 500) as u32),
        ..ListQuery::default()
    }
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Adds the entry routes to `module`.
pub fn routes(module: Module) -> Module {
    module
        .get("/entries", "accounting.entries.read", list)
        .summary("List journal entries")
        .lists(entry_list)
        .returns::<Page<Row<Entry>>>()
        .post("/entries", "accounting.entries.create", create)
        .summary("Post a balanced entry, or keep it as a draft")
        .takes::<NewEntry>()
        .creates::<EntryWithLines>()
        .get("/entries/{id}", "accounting.entries.read", get)
        .summary("Read an entry and, when posted, its lines")
        .returns::<EntryWithLines>()
        .patch("/entries/{id}", "accounting.entries.update", update)
        .summary("Change a draft; of a posted entry, only its reference and memo")
        .takes_patch::<DraftPatch>()
        .returns::<Row<Entry>>()
        .delete("/entries/{id}", "accounting.entries.delete", delete)
        .summary("Delete a draft (posted entries are reversed instead: 409)")
        .returns_nothing()
        .post("/entries/{id}/post", "accounting.entries.post", post_draft)
        .summary("Post a draft")
        .returns::<EntryWithLines>()
        .post("/entries/{id}/reverse", "accounting.entries.post", reverse)
        .summary("Post the reversal of a posted entry")
        .takes_optional::<Reversal>()
        .creates::<EntryWithLines>()
}

/// An entry and, once posted, its lines.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EntryWithLines {
    /// The stored entry.
    #[serde(flatten)]
    pub entry: Row<Entry>,
    /// Its posted lines, in order; absent on a draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<Row<Line>>>,
}

fn entry_list() -> ListSpec {
    ListSpec::new("entries")
        .filter_id("journal_id")
        .filter_one_of("status", &ENTRY_STATES)
        .filter_date("date")
        .filter("reference")
        .filter("source")
        .sortable(&["date"])
}

fn list(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(ENTRIES.list(ctx, entry_list().query(req)?)?))
}

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let new = req.json::<NewEntry>()?;
    let posting = Posting {
        journal_id: new.journal_id,
        date: new.date,
        reference: new.reference,
        memo: new.memo,
        lines: new.lines,
        source: None,
        reversal_of: None,
        closing: false,
    };
    if new.draft {
        let entry = save_draft(ctx, &posting, None)?;
        return Ok(Reply::created(with_lines(ctx, entry)?));
    }
    let entry = post(ctx, &posting, None)?;
    Ok(Reply::created(with_lines(ctx, entry)?))
}

/// Stores `posting` as a draft (new, or over the locked draft `id`): amounts and the
/// header are checked, balance and accounts only when it is posted.
fn save_draft(ctx: &mut Ctx, posting: &Posting, id: Option<&str>) -> Result<Row<Entry>, Error> {
    read_amounts(&posting.lines)?;
    check_header(posting)?;
    JOURNALS
        .get(ctx, &posting.journal_id)
        .map_err(|_| Error::unknown_reference("journal_id", "journal"))?;
    let values = json!({
        "journal_id": posting.journal_id,
        "date": posting.date,
        "status": "draft",
        "reference": posting.reference,
        "memo": posting.memo,
        "draft_lines": posting.lines,
    });
    Ok(match id {
        Some(id) => ENTRIES.update(ctx, id, &values)?,
        None => ENTRIES.insert(ctx, &values)?,
    })
}

fn get(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let entry = ENTRIES
        .get(ctx, req.path("id")?)
        .map_err(|_| Error::not_found("no live entry with that id"))?;
    Ok(Reply::ok(with_lines(ctx, entry)?))
}

/// The entry and, when posted, its lines.
fn with_lines(ctx: &mut Ctx, entry: Row<Entry>) -> Result<EntryWithLines, Error> {
    let lines = match entry.record.status.as_str() {
        "posted" => Some(lines_of(ctx, &entry.id)?),
        _ => None,
    };
    Ok(EntryWithLines { entry, lines })
}

/// The posted lines of entry `id`, in their order.
fn lines_of(ctx: &mut Ctx, id: &str) -> Result<Vec<Row<Line>>, Error> {
    let page = LINES.list(
        ctx,
        ListQuery {
            filter: vec![Filter::eq("entry_id", id)],
            order: Some(eerp_sdk::Order {
                column: "seq".into(),
                desc: false,
            }),
            limit: Some(MAX_LINES as u32),
            ..ListQuery::default()
        },
    )?;
    Ok(page.data)
}

fn locked(ctx: &mut Ctx, id: &str) -> Result<Row<Entry>, Error> {
    ENTRIES
        .get_for_update(ctx, id)
        .map_err(|_| Error::not_found("no live entry with that id"))
}

fn immutable() -> Error {
    Error::conflict(
        "posted entries never change; reverse it (POST /entries/{id}/reverse) and post a corrected one",
    )
    .with_code("posted_immutable")
}

/// The body of `PATCH /entries/{id}` (drafts only).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
struct DraftPatch {
    /// The journal.
    #[schemars(extend("format" = "uuid"))]
    journal_id: String,
    /// Accounting date, `YYYY-MM-DD`.
    #[schemars(extend("format" = "date"))]
    date: String,
    /// Free text.
    reference: Option<String>,
    /// Free text.
    memo: Option<String>,
    /// The lines, all of them.
    lines: Vec<LineInput>,
}

fn update(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let entry = locked(ctx, id)?;
    if entry.record.status == "posted" {
        return annotate(ctx, req, &entry);
    }
    let current = json!({
        "journal_id": entry.record.journal_id,
        "date": entry.record.date,
        "reference": entry.record.reference,
        "memo": entry.record.memo,
        "lines": entry.record.draft_lines,
    });
    let patch = req.patch::<DraftPatch>(&current)?.merged;
    let posting = Posting {
        journal_id: patch.journal_id,
        date: patch.date,
        reference: patch.reference,
        memo: patch.memo,
        lines: patch.lines,
        source: None,
        reversal_of: None,
        closing: false,
    };
    Ok(Reply::ok(save_draft(ctx, &posting, Some(id))?))
}

/// What of a posted entry may still change: words, never amounts, accounts or dates
/// (ERPNext's "allow on submit"), in a closed period too, since the figures the close
/// recorded do not move.
const ANNOTATIONS: [&str; 2] = ["reference", "memo"];

/// A patch of a posted entry: only its [`ANNOTATIONS`].
fn annotate(ctx: &mut Ctx, req: &Request, entry: &Row<Entry>) -> Result<Reply, Error> {
    let body: Value = req.json()?;
    let Some(fields) = body.as_object() else {
        return Err(Error::bad_request("the patch must be a JSON object"));
    };
    if let Some(field) = fields.keys().find(|k| !ANNOTATIONS.contains(&k.as_str())) {
        return Err(Error::conflict(format!(
            "`{field}` of a posted entry never changes, only its reference and memo; reverse \
             it (POST /entries/{{id}}/reverse) and post a corrected one"
        ))
        .with_code("posted_immutable"));
    }
    let text = |name: &str| match fields.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(text)) => Ok(Some(Some(text.as_str()))),
        Some(_) => Err(
            Error::unprocessable(format!("`{name}` must be a string or null"))
                .with_field(name, "must be a string or null"),
        ),
    };
    let (reference, memo) = (text("reference")?, text("memo")?);
    let mut checks = Checks::new();
    checks
        .max_len("reference", reference.flatten(), 200)
        .max_len("memo", memo.flatten(), 1000);
    checks.finish("entry", "invalid_entry")?;
    let mut values = serde_json::Map::new();
    for (name, value) in [("reference", reference), ("memo", memo)] {
        if let Some(value) = value {
            values.insert(name.into(), json!(value));
        }
    }
    if values.is_empty() {
        return Ok(Reply::ok(entry.clone()));
    }
    Ok(Reply::ok(ENTRIES.update(ctx, &entry.id, &values)?))
}

fn delete(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    if locked(ctx, id)?.record.status == "posted" {
        return Err(immutable());
    }
    ENTRIES.delete(ctx, id)?;
    Ok(Reply::no_content())
}

fn post_draft(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let entry = locked(ctx, id)?;
    if entry.record.status == "posted" {
        return Err(Error::conflict("the entry is already posted").with_code("already_posted"));
    }
    let posting = Posting {
        journal_id: entry.record.journal_id,
        date: entry.record.date,
        reference: entry.record.reference,
        memo: entry.record.memo,
        lines: entry.record.draft_lines.unwrap_or_default(),
        source: None,
        reversal_of: None,
        closing: false,
    };
    let posted = post(ctx, &posting, Some(id))?;
    Ok(Reply::ok(with_lines(ctx, posted)?))
}

/// The body of `POST /entries/{id}/reverse`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Reversal {
    /// The reversal's date; default: the original's.
    #[schemars(extend("format" = "date"))]
    date: Option<String>,
    /// Default: `Reversal of <id>`.
    memo: Option<String>,
}

fn reverse(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let reversal: Reversal = if req.raw_body() == "null" {
        Reversal::default()
    } else {
        req.json()?
    };
    let entry = locked(ctx, id)?;
    if entry.record.status != "posted" {
        return Err(
            Error::conflict("only a posted entry is reversed; delete a draft instead")
                .with_code("not_posted"),
        );
    }
    if let Some(source) = &entry.record.source {
        return Err(Error::conflict(format!(
            "the entry was posted by {source}; correct it there (a stock adjustment), so the \
             ledger and the module that posted it stay in step"
        ))
        .with_code("posted_by_module"));
    }
    if let Some(by) = &entry.record.reversed_by {
        return Err(
            Error::conflict(format!("the entry was already reversed by {by}"))
                .with_code("already_reversed"),
        );
    }
    let lines = lines_of(ctx, id)?;
    let swapped = lines
        .iter()
        .map(|l| LineInput {
            account_id: l.record.account_id.clone(),
            debit: nonzero(&l.record.credit),
            credit: nonzero(&l.record.debit),
            party_id: l.record.party_id.clone(),
            memo: l.record.memo.clone(),
        })
        .collect();
    let posting = Posting {
        journal_id: entry.record.journal_id.clone(),
        date: reversal.date.unwrap_or_else(|| entry.record.date.clone()),
        reference: entry.record.reference.clone(),
        memo: Some(reversal.memo.unwrap_or_else(|| format!("Reversal of {id}"))),
        lines: swapped,
        source: None,
        reversal_of: Some(id.to_string()),
        closing: false,
    };
    let posted = post(ctx, &posting, None)?;
    ENTRIES.update(ctx, id, &json!({"reversed_by": posted.id}))?;
    Ok(Reply::created(with_lines(ctx, posted)?))
}

fn nonzero(amount: &str) -> Option<String> {
    amount
        .parse::<Decimal>()
        .ok()
        .filter(|a| !a.is_zero())
        .map(|_| amount.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(debit: Option<&str>, credit: Option<&str>) -> LineInput {
        LineInput {
            account_id: "a".into(),
            debit: debit.map(str::to_string),
            credit: credit.map(str::to_string),
            ..LineInput::default()
        }
    }

    #[test]
    fn an_unbalanced_entry_names_the_difference() {
        let amounts = read_amounts(&[line(Some("100.00"), None), line(None, Some("90"))]).unwrap();
        let err = balanced(&amounts).unwrap_err();
        assert_eq!(
            (err.status, err.body.code.as_deref()),
            (422, Some("unbalanced"))
        );
        assert!(
            err.body.detail.contains("debits exceed credits by 10.00"),
            "{}",
            err.body.detail
        );
        let amounts = read_amounts(&[
            line(Some("0.10"), None),
            line(Some("0.20"), None),
            line(None, Some("0.30")),
        ])
        .unwrap();
        assert_eq!(balanced(&amounts).unwrap().to_string(), "0.30");
    }

    #[test]
    fn a_total_beyond_the_column_is_refused_not_overflowed() {
        let big = "9999999999999999.00";
        let amounts = read_amounts(&[
            line(Some(big), None),
            line(Some(big), None),
            line(None, Some(big)),
            line(None, Some(big)),
        ])
        .unwrap();
        let err = balanced(&amounts).unwrap_err();
        assert_eq!(
            (err.status, err.body.errors[0].field.as_str()),
            (422, "lines")
        );
    }

    #[test]
    fn each_line_has_one_positive_amount_to_the_cent() {
        let err = read_amounts(&[
            line(Some("1"), Some("1")),
            line(None, None),
            line(Some("1.005"), None),
            line(Some("-1"), None),
        ])
        .unwrap_err();
        let fields: Vec<&str> = err.body.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "lines[0]",
                "lines[1]",
                "lines[2].debit",
                "lines[2]",
                "lines[3].debit",
                "lines[3]"
            ]
        );
        let err = read_amounts(&[line(Some("1"), None)]).unwrap_err();
        assert_eq!(err.body.errors[0].field, "lines");
    }

    #[test]
    fn ids_that_are_not_uuids_match_nothing() {
        assert!(is_uuid("6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10"));
        assert!(!is_uuid("6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a1"));
        let query = by_ids(["nope"].into_iter(), 1);
        assert_eq!(query.filter[0].op, FilterOp::IsNull);
    }
}
