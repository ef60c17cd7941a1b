//! The chart of accounts and the journals, each a [`Resource`] with soft delete and
//! restore. Accounts form a tree (`parent_id` names a group account of the same type);
//! only leaf accounts take lines; an account with lines keeps its type and cannot be
//! deleted.

use eerp_sdk::{
    Aggregate, AggregateFn, AggregateQuery, Checks, Ctx, Error, Filter, FilterOp, ListQuery,
    ListSpec, Resource, Row, Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{ACCOUNT_TYPES, PARTY_KINDS};

/// An account of the chart.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Account {
    /// Code, unique among live accounts (`1400`).
    pub code: String,
    /// Display name.
    pub name: String,
    /// `asset`, `liability`, `equity`, `income` or `expense`.
    #[serde(rename = "type")]
    pub account_type: String,
    /// The group account it sits under.
    #[schemars(extend("format" = "uuid"))]
    pub parent_id: Option<String>,
    /// A group only sums its children and takes no lines.
    pub is_group: Option<bool>,
    /// `receivable` (an asset) or `payable` (a liability): its lines name a CRM company.
    pub kind: Option<String>,
    /// What the module itself posts to (`stock_valuation`, `cogs`, ...); unique.
    pub role: Option<String>,
}

/// A journal: a book entries are posted in (`GEN`, `STK`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Journal {
    /// Code, unique among live journals.
    pub code: String,
    /// Display name.
    pub name: String,
}

/// The accounts table.
pub const ACCOUNTS: Table<Row<Account>> = Table::new("accounts");
/// The journals table.
pub const JOURNALS: Table<Row<Journal>> = Table::new("journals");

/// Accounts as a REST resource.
#[derive(Debug)]
pub struct Accounts;
/// Journals as a REST resource.
#[derive(Debug)]
pub struct Journals;

/// Roles an account may play for the module's own postings.
pub const ROLES: [&str; 4] = [
    "stock_valuation",
    "stock_received_not_billed",
    "cogs",
    "inventory_adjustment",
];

impl Account {
    /// Whether it is a group account.
    pub fn group(&self) -> bool {
        self.is_group.unwrap_or(false)
    }
}

/// Checks an account on its own (not its parent): a 422 naming each invalid field.
///
/// # Errors
/// The 422.
pub fn check_account(mut account: Account) -> Result<Account, Error> {
    account.code = account.code.trim().to_string();
    account.name = account.name.trim().to_string();
    let mut checks = Checks::new();
    checks
        .text("code", &account.code, 1, 20)
        .text("name", &account.name, 1, 200)
        .one_of("type", Some(account.account_type.as_str()), &ACCOUNT_TYPES)
        .one_of("kind", account.kind.as_deref(), &PARTY_KINDS)
        .one_of("role", account.role.as_deref(), &ROLES);
    if account.code.contains(char::is_whitespace) {
        checks.problem("code", "must not contain spaces");
    }
    let kind_fits = match account.kind.as_deref() {
        Some("receivable") => account.account_type == "asset",
        Some("payable") => account.account_type == "liability",
        _ => true,
    };
    if !kind_fits {
        checks.problem(
            "kind",
            "a receivable account is an asset and a payable one a liability",
        );
    }
    if account.group() && (account.kind.is_some() || account.role.is_some()) {
        checks.problem(
            "is_group",
            "a group account takes no lines, so it has no kind or role",
        );
    }
    checks.finish("account", "invalid_account")?;
    Ok(account)
}

impl Resource for Accounts {
    type Record = Account;
    const TABLE: Table<Row<Account>> = ACCOUNTS;
    const NAME: &'static str = "account";

    fn list_spec() -> ListSpec {
        ListSpec::new("accounts")
            .filter_one_of("type", &ACCOUNT_TYPES)
            .filter_id("parent_id")
            .filter("code")
            .filter_by("q", "name", FilterOp::Contains)
            .sortable(&["code", "name"])
            .max_limit(500)
    }

    fn check(
        ctx: &mut Ctx,
        account: Account,
        current: Option<&Row<Account>>,
    ) -> Result<Account, Error> {
        let account = check_account(account)?;
        lock_chart(ctx)?;
        if let Some(parent_id) = &account.parent_id {
            check_parent(ctx, &account, parent_id, current.map(|c| c.id.as_str()))?;
        }
        let Some(current) = current else {
            return Ok(account);
        };
        let retyped = current.record.account_type != account.account_type;
        if (retyped || (account.group() && !current.record.group())) && has_lines(ctx, &current.id)?
        {
            return Err(Error::conflict(
                "the account has posted lines, so its type cannot change and it cannot become a group",
            )
            .with_code("account_in_use"));
        }
        if (retyped || (current.record.group() && !account.group()))
            && has_children(ctx, &current.id)?
        {
            return Err(Error::conflict(
                "the group has sub-accounts, so its type cannot change and it stays a group",
            )
            .with_code("account_in_use"));
        }
        Ok(account)
    }

    fn check_delete(ctx: &mut Ctx, row: &Row<Account>) -> Result<(), Error> {
        lock_chart(ctx)?;
        if has_lines(ctx, &row.id)? {
            return Err(
                Error::conflict("the account has posted lines; it stays in the chart")
                    .with_code("account_in_use"),
            );
        }
        if has_children(ctx, &row.id)? {
            return Err(
                Error::conflict("the account has sub-accounts; move or delete them first")
                    .with_code("account_in_use"),
            );
        }
        Ok(())
    }

    fn check_restore(ctx: &mut Ctx, row: &Row<Account>) -> Result<(), Error> {
        lock_chart(ctx)?;
        match &row.record.parent_id {
            Some(parent) if ACCOUNTS.get(ctx, parent).is_err() => Err(Error::conflict(
                "the account's parent is deleted; restore the parent first",
            )
            .with_code("parent_deleted")),
            _ => Ok(()),
        }
    }

    fn conflict() -> Error {
        Error::conflict("another live account already has this code or role").with_code("duplicate")
    }
}

/// The parent must be a live group of the same type, and not the account itself or
/// one of its descendants.
fn check_parent(
    ctx: &mut Ctx,
    account: &Account,
    parent_id: &str,
    own_id: Option<&str>,
) -> Result<(), Error> {
    let bad = |message: &str| {
        Error::unprocessable(format!("parent_id: {message}"))
            .with_code("invalid_account")
            .with_field("parent_id", message.to_string())
    };
    let mut next = Some(parent_id.to_string());
    let mut depth = 0;
    while let Some(id) = next {
        if Some(id.as_str()) == own_id {
            return Err(bad(
                "an account cannot sit under itself or its own sub-account",
            ));
        }
        depth += 1;
        if depth > 32 {
            return Err(bad("the account tree is more than 32 levels deep"));
        }
        let parent = ACCOUNTS
            .get(ctx, &id)
            .map_err(|_| bad("no live account with this id"))?;
        if id == parent_id {
            if !parent.record.group() {
                return Err(bad("the parent must be a group account (is_group: true)"));
            }
            if parent.record.account_type != account.account_type {
                return Err(bad("the parent must have the same type"));
            }
        }
        next = parent.record.parent_id;
    }
    Ok(())
}

/// Locks the chart (its one row), so tree changes happen one at a time and two of them
/// cannot close a cycle between them.
fn lock_chart(ctx: &mut Ctx) -> Result<(), Error> {
    let key = serde_json::json!({"singleton": "x"});
    CHART.lock_or_insert(ctx, &key, &key, eerp_sdk::LockMode::Update)?;
    Ok(())
}

const CHART: Table<Row<serde_json::Value>> = Table::new("chart");

/// Whether account `id` has live sub-accounts.
fn has_children(ctx: &mut Ctx, id: &str) -> Result<bool, Error> {
    let children = ACCOUNTS.list(
        ctx,
        ListQuery {
            filter: vec![Filter::eq("parent_id", id)],
            limit: Some(1),
            ..ListQuery::default()
        },
    )?;
    Ok(!children.data.is_empty())
}

/// Whether any line is posted to account `id`.
pub fn has_lines(ctx: &mut Ctx, id: &str) -> Result<bool, Error> {
    let result = crate::entries::LINES.aggregate(
        ctx,
        AggregateQuery {
            filter: vec![Filter::eq("account_id", id)],
            aggregates: vec![Aggregate {
                func: AggregateFn::Count,
                column: None,
            }],
            ..AggregateQuery::default()
        },
    )?;
    let count = result
        .first("count")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    Ok(count > 0)
}

impl Resource for Journals {
    type Record = Journal;
    const TABLE: Table<Row<Journal>> = JOURNALS;
    const NAME: &'static str = "journal";

    fn list_spec() -> ListSpec {
        ListSpec::new("journals").filter("code").sortable(&["code"])
    }

    fn check(
        _ctx: &mut Ctx,
        mut journal: Journal,
        _current: Option<&Row<Journal>>,
    ) -> Result<Journal, Error> {
        journal.code = journal.code.trim().to_string();
        journal.name = journal.name.trim().to_string();
        let mut checks = Checks::new();
        checks
            .text("code", &journal.code, 1, 16)
            .text("name", &journal.name, 1, 200);
        checks.finish("journal", "invalid_journal")?;
        Ok(journal)
    }

    fn conflict() -> Error {
        Error::conflict("another live journal already has this code").with_code("duplicate")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(code: &str, account_type: &str) -> Account {
        Account {
            code: code.into(),
            name: "Cash".into(),
            account_type: account_type.into(),
            ..Account::default()
        }
    }

    #[test]
    fn an_account_names_every_problem() {
        let mut bad = account("1 000", "cash");
        bad.kind = Some("receivable".into());
        let err = check_account(bad).unwrap_err();
        let fields: Vec<&str> = err.body.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["type", "code", "kind"]);
        let mut receivable = account("1200", "asset");
        receivable.kind = Some("receivable".into());
        assert!(check_account(receivable).is_ok());
        let mut group = account("1000", "asset");
        group.is_group = Some(true);
        group.role = Some("cogs".into());
        assert!(check_account(group).is_err());
    }
}
