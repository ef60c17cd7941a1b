//! Reports from the general ledger: trial balance, account ledger, balance sheet and
//! profit and loss. The database sums the lines per account (one aggregate per date
//! range); the module adds the tree and the sections, in plain functions tested natively.

use std::collections::BTreeMap;

use eerp_sdk::decimal::fixed;
use eerp_sdk::{
    Aggregate, AggregateFn, AggregateQuery, Ctx, Decimal, Error, Filter, FilterOp, ListQuery,
    Module, QueryParam, Reply, Request, Row,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chart::{ACCOUNTS, Account};
use crate::entries::{LINES, Line};

/// Debit and credit summed over some lines of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    /// Total debit.
    pub debit: Decimal,
    /// Total credit.
    pub credit: Decimal,
}

/// Sums by account id.
pub type SumMap = BTreeMap<String, Sums>;

impl Sums {
    /// Debit minus credit.
    pub fn net(&self) -> Decimal {
        self.debit - self.credit
    }
}

/// The balance of an account of `account_type` on its normal side: debit − credit for
/// assets and expenses, credit − debit for the others.
pub fn normal(account_type: &str, sums: Sums) -> Decimal {
    match account_type {
        "asset" | "expense" => sums.net(),
        _ => -sums.net(),
    }
}

/// Adds each account's sums to all its ancestors', so a group shows its subtree.
pub fn rolled_up(accounts: &[Row<Account>], sums: &SumMap) -> SumMap {
    let parent: BTreeMap<&str, Option<&str>> = accounts
        .iter()
        .map(|a| (a.id.as_str(), a.record.parent_id.as_deref()))
        .collect();
    let mut total = SumMap::new();
    for (id, s) in sums {
        let mut next = Some(id.as_str());
        let mut depth = 0;
        while let Some(at) = next.filter(|_| depth < 64) {
            let entry = total.entry(at.to_string()).or_default();
            entry.debit += s.debit;
            entry.credit += s.credit;
            next = parent.get(at).copied().flatten();
            depth += 1;
        }
    }
    total
}

/// The trial balance over a date range.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TrialBalance {
    /// First day of the range, if it has one.
    pub from: Option<String>,
    /// Last day of the range, if it has one.
    pub to: Option<String>,
    /// Each leaf account with lines.
    pub accounts: Vec<TrialLine>,
    /// The range's debits and credits, and the sum of the closing balances.
    pub totals: TrialTotals,
    /// Debits equal credits and the closing balances sum to zero.
    pub balanced: bool,
}

/// One account of the trial balance; balances are debit − credit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TrialLine {
    /// The account.
    #[schemars(extend("format" = "uuid"))]
    pub account_id: String,
    /// Its code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub account_type: String,
    /// Balance before the range.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub opening: String,
    /// Debits in the range.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub debit: String,
    /// Credits in the range.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub credit: String,
    /// Balance at the end of the range.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub closing: String,
}

/// Totals of the trial balance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TrialTotals {
    /// Debits in the range.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub debit: String,
    /// Credits in the range.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub credit: String,
    /// Sum of the closing balances.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub closing: String,
}

/// A section of the balance sheet or of profit and loss.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Section {
    /// The accounts of the section's type with a balance, groups rolled up.
    pub accounts: Vec<SectionLine>,
    /// The section's total (for equity, with retained and current earnings).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub total: String,
    /// Equity only: the profit before the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub retained_earnings: Option<String>,
    /// Equity only: the profit of the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub current_earnings: Option<String>,
}

/// One account of a section, its balance on its normal side.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct SectionLine {
    /// The account.
    #[schemars(extend("format" = "uuid"))]
    pub account_id: String,
    /// Its code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its parent.
    #[schemars(extend("format" = "uuid"))]
    pub parent_id: Option<String>,
    /// Whether it is a group (its balance is its subtree's).
    pub is_group: bool,
    /// Its balance.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub balance: String,
}

/// The balance sheet at the end of a range.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct BalanceSheet {
    /// Start of the current period: profit before it is retained earnings.
    pub from: Option<String>,
    /// The date of the balance sheet.
    pub to: Option<String>,
    /// Assets.
    pub assets: Section,
    /// Liabilities.
    pub liabilities: Section,
    /// Equity, with retained and current earnings.
    pub equity: Section,
    /// Assets equal liabilities plus equity.
    pub balanced: bool,
}

/// Profit and loss over a range.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ProfitAndLoss {
    /// First day of the range.
    pub from: Option<String>,
    /// Last day of the range.
    pub to: Option<String>,
    /// Income.
    pub income: Section,
    /// Expenses.
    pub expense: Section,
    /// Income less expenses.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub profit: String,
}

/// One account's lines in a range, a page at a time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AccountLedger {
    /// The account.
    pub account: Row<Account>,
    /// Balance before the range (debit − credit).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub opening: String,
    /// Debits in the range.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub debit: String,
    /// Credits in the range.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub credit: String,
    /// Balance at the end of the range.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub closing: String,
    /// This page's lines, by date.
    pub lines: Vec<Row<Line>>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The trial balance: per leaf account with lines, the balance before the range, the
/// range's debits and credits, and the balance after (all debit − credit).
pub fn trial_balance(
    accounts: &[Row<Account>],
    opening: &SumMap,
    movement: &SumMap,
) -> TrialBalance {
    let mut rows = Vec::new();
    let (mut debit, mut credit, mut closing_sum) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for account in accounts.iter().filter(|a| !a.record.group()) {
        let before = opening.get(&account.id).copied().unwrap_or_default();
        let during = movement.get(&account.id).copied().unwrap_or_default();
        if before == Sums::default() && during == Sums::default() {
            continue;
        }
        let closing = before.net() + during.net();
        debit += during.debit;
        credit += during.credit;
        closing_sum += closing;
        rows.push(TrialLine {
            account_id: account.id.clone(),
            code: account.record.code.clone(),
            name: account.record.name.clone(),
            account_type: account.record.account_type.clone(),
            opening: fixed(before.net(), 2),
            debit: fixed(during.debit, 2),
            credit: fixed(during.credit, 2),
            closing: fixed(closing, 2),
        });
    }
    TrialBalance {
        accounts: rows,
        totals: TrialTotals {
            debit: fixed(debit, 2),
            credit: fixed(credit, 2),
            closing: fixed(closing_sum, 2),
        },
        balanced: debit == credit && closing_sum.is_zero(),
        ..TrialBalance::default()
    }
}

/// One report section: the accounts of `account_type` with a balance, groups rolled up.
fn section(accounts: &[Row<Account>], rolled: &SumMap, account_type: &str) -> (Section, Decimal) {
    let live: std::collections::BTreeSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    let mut rows = Vec::new();
    let mut total = Decimal::ZERO;
    for account in accounts
        .iter()
        .filter(|a| a.record.account_type == account_type)
    {
        let Some(sums) = rolled.get(&account.id) else {
            continue;
        };
        let balance = normal(account_type, *sums);
        // Top level: no parent, or one no longer in the chart.
        if account
            .record
            .parent_id
            .as_deref()
            .is_none_or(|p| !live.contains(p))
        {
            total += balance;
        }
        rows.push(SectionLine {
            account_id: account.id.clone(),
            code: account.record.code.clone(),
            name: account.record.name.clone(),
            parent_id: account.record.parent_id.clone(),
            is_group: account.record.group(),
            balance: fixed(balance, 2),
        });
    }
    let section = Section {
        accounts: rows,
        total: fixed(total, 2),
        ..Section::default()
    };
    (section, total)
}

/// Income less expenses, from sums rolled up or not (top-level accounts only count).
fn profit(accounts: &[Row<Account>], rolled: &SumMap) -> Decimal {
    let (_, income) = section(accounts, rolled, "income");
    let (_, expense) = section(accounts, rolled, "expense");
    income - expense
}

/// The balance sheet at a date: assets, liabilities and equity, with the profit since
/// `earnings_since` (the current period) as current earnings and the profit before it
/// as retained earnings, so that assets = liabilities + equity.
pub fn balance_sheet(
    accounts: &[Row<Account>],
    to_date: &SumMap,
    before_period: &SumMap,
) -> BalanceSheet {
    let rolled = rolled_up(accounts, to_date);
    let (assets, assets_total) = section(accounts, &rolled, "asset");
    let (liabilities, liabilities_total) = section(accounts, &rolled, "liability");
    let (mut equity, equity_accounts) = section(accounts, &rolled, "equity");
    let all_profit = profit(accounts, &rolled);
    let retained = profit(accounts, &rolled_up(accounts, before_period));
    let current = all_profit - retained;
    let equity_total = equity_accounts + retained + current;
    equity.retained_earnings = Some(fixed(retained, 2));
    equity.current_earnings = Some(fixed(current, 2));
    equity.total = fixed(equity_total, 2);
    BalanceSheet {
        assets,
        liabilities,
        equity,
        balanced: assets_total == liabilities_total + equity_total,
        ..BalanceSheet::default()
    }
}

/// Profit and loss over a range.
pub fn profit_and_loss(accounts: &[Row<Account>], movement: &SumMap) -> ProfitAndLoss {
    let rolled = rolled_up(accounts, movement);
    let (income, income_total) = section(accounts, &rolled, "income");
    let (expense, expense_total) = section(accounts, &rolled, "expense");
    ProfitAndLoss {
        income,
        expense,
        profit: fixed(income_total - expense_total, 2),
        ..ProfitAndLoss::default()
    }
}

/// Adds the report routes to `module`.
pub fn routes(module: Module) -> Module {
    module
        .get(
            "/reports/trial-balance",
            "accounting.reports.read",
            trial_balance_route,
        )
        .summary("Trial balance: each account's opening, debits, credits and closing")
        .query(RANGE)
        .returns::<TrialBalance>()
        .get("/reports/ledger", "accounting.reports.read", ledger_route)
        .summary("One account's lines in a range, with opening and closing balance")
        .query(LEDGER_QUERY)
        .returns::<AccountLedger>()
        .get(
            "/reports/balance-sheet",
            "accounting.reports.read",
            balance_sheet_route,
        )
        .summary("Balance sheet at `to`, the profit since `from` as current earnings")
        .query(RANGE)
        .returns::<BalanceSheet>()
        .get(
            "/reports/profit-and-loss",
            "accounting.reports.read",
            profit_and_loss_route,
        )
        .summary("Income and expenses over a range")
        .query(RANGE)
        .returns::<ProfitAndLoss>()
}

const RANGE: &[QueryParam] = &[
    QueryParam::date("from", "First day; default: from the first line."),
    QueryParam::date("to", "Last day; default: up to the last line."),
];

const LEDGER_QUERY: &[QueryParam] = &[
    QueryParam::id("account_id", "The account.").required(),
    QueryParam::date("from", "First day; default: from the first line."),
    QueryParam::date("to", "Last day; default: up to the last line."),
    QueryParam::text("cursor", "The `next_cursor` of the previous page."),
    QueryParam::count("limit", 500, "Lines per page."),
];

/// The `from` and `to` query parameters, checked; parameters not in `allowed` are refused.
fn dates<'a>(
    req: &'a Request,
    allowed: &[QueryParam],
) -> Result<(Option<&'a str>, Option<&'a str>), Error> {
    if let Some(unknown) = req
        .query_names()
        .find(|n| !allowed.iter().any(|p| p.name() == *n))
    {
        let names: Vec<&str> = allowed.iter().map(QueryParam::name).collect();
        return Err(Error::bad_request(format!(
            "unknown query parameter `{unknown}`; this report takes {}",
            names.join(", ")
        )));
    }
    let get = |name: &str| -> Result<Option<&'a str>, Error> {
        match req.query(name) {
            Some(d) if !eerp_sdk::is_date(d) => Err(Error::bad_request(format!(
                "{name} `{d}` must be a date, YYYY-MM-DD"
            ))),
            other => Ok(other),
        }
    };
    let (from, to) = (get("from")?, get("to")?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(Error::bad_request("from must not be after to"));
    }
    Ok((from, to))
}

/// All live accounts, every page.
pub(crate) fn all_accounts(ctx: &mut Ctx) -> Result<Vec<Row<Account>>, Error> {
    let mut accounts = Vec::new();
    let mut cursor = None;
    loop {
        let page = ACCOUNTS.list(
            ctx,
            ListQuery {
                limit: Some(500),
                cursor,
                ..ListQuery::default()
            },
        )?;
        accounts.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(accounts),
        }
    }
}

/// Lines summed per account over `filter`.
pub(crate) fn sums(ctx: &mut Ctx, filter: Vec<Filter>) -> Result<SumMap, Error> {
    let result = LINES.aggregate(
        ctx,
        AggregateQuery {
            filter,
            group_by: vec!["account_id".into()],
            aggregates: vec![
                Aggregate {
                    func: AggregateFn::Sum,
                    column: Some("debit".into()),
                },
                Aggregate {
                    func: AggregateFn::Sum,
                    column: Some("credit".into()),
                },
            ],
            ..AggregateQuery::default()
        },
    )?;
    let decimal = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| s.parse::<Decimal>().ok())
            .unwrap_or_default()
    };
    Ok(result
        .groups
        .into_iter()
        .filter_map(|g| {
            let id = g.key.get("account_id")?.as_str()?.to_string();
            let sums = Sums {
                debit: decimal(g.values.get("sum_debit")),
                credit: decimal(g.values.get("sum_credit")),
            };
            Some((id, sums))
        })
        .collect())
}

fn until(to: Option<&str>) -> Vec<Filter> {
    to.map(|t| vec![Filter::new("date", FilterOp::Lte, t)])
        .unwrap_or_default()
}

fn before(from: Option<&str>) -> Option<Vec<Filter>> {
    from.map(|f| vec![Filter::new("date", FilterOp::Lt, f)])
}

fn trial_balance_route(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let (from, to) = dates(req, RANGE)?;
    let accounts = all_accounts(ctx)?;
    let opening = match before(from) {
        Some(filter) => sums(ctx, filter)?,
        None => SumMap::new(),
    };
    let mut during = until(to);
    if let Some(f) = from {
        during.push(Filter::new("date", FilterOp::Gte, f));
    }
    let movement = sums(ctx, during)?;
    let mut report = trial_balance(&accounts, &opening, &movement);
    report.from = from.map(str::to_string);
    report.to = to.map(str::to_string);
    Ok(Reply::ok(report))
}

fn balance_sheet_route(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let (from, to) = dates(req, RANGE)?;
    let accounts = all_accounts(ctx)?;
    let to_date = sums(ctx, until(to))?;
    let before_period = match before(from) {
        Some(filter) => sums(ctx, filter)?,
        None => SumMap::new(),
    };
    let mut report = balance_sheet(&accounts, &to_date, &before_period);
    report.from = from.map(str::to_string);
    report.to = to.map(str::to_string);
    Ok(Reply::ok(report))
}

fn profit_and_loss_route(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let (from, to) = dates(req, RANGE)?;
    let accounts = all_accounts(ctx)?;
    let mut during = until(to);
    if let Some(f) = from {
        during.push(Filter::new("date", FilterOp::Gte, f));
    }
    // What the period earned, not that it was closed.
    during.push(Filter::new("closing", FilterOp::IsNull, true));
    let mut report = profit_and_loss(&accounts, &sums(ctx, during)?);
    report.from = from.map(str::to_string);
    report.to = to.map(str::to_string);
    Ok(Reply::ok(report))
}

/// One account's lines in a range (a page, `cursor` for the next), with the balance
/// before the range and the range's totals.
fn ledger_route(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let (from, to) = dates(req, LEDGER_QUERY)?;
    let account_id = req
        .query("account_id")
        .ok_or_else(|| Error::bad_request("the ledger needs account_id"))?;
    let account = ACCOUNTS
        .get(ctx, account_id)
        .map_err(|_| Error::not_found("no live account with that id"))?;
    let mut range = until(to);
    range.push(Filter::eq("account_id", account_id));
    if let Some(f) = from {
        range.push(Filter::new("date", FilterOp::Gte, f));
    }
    let opening = match before(from) {
        Some(mut filter) => {
            filter.push(Filter::eq("account_id", account_id));
            sums(ctx, filter)?.remove(account_id).unwrap_or_default()
        }
        None => Sums::default(),
    };
    let totals = sums(ctx, range.clone())?
        .remove(account_id)
        .unwrap_or_default();
    let limit = match req.query("limit") {
        Some(l) => Some(
            l.parse::<u32>()
                .ok()
                .filter(|n| (1..=500).contains(n))
                .ok_or_else(|| {
                    Error::bad_request(format!("limit `{l}` must be a whole number from 1 to 500"))
                })?,
        ),
        None => None,
    };
    let page = LINES.list(
        ctx,
        ListQuery {
            filter: range,
            order: Some(eerp_sdk::Order {
                column: "date".into(),
                desc: false,
            }),
            limit,
            cursor: req.query("cursor").map(str::to_string),
            ..ListQuery::default()
        },
    )?;
    Ok(Reply::ok(AccountLedger {
        account,
        opening: fixed(opening.net(), 2),
        debit: fixed(totals.debit, 2),
        credit: fixed(totals.credit, 2),
        closing: fixed(opening.net() + totals.net(), 2),
        lines: page.data,
        next_cursor: page.next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(
        id: &str,
        code: &str,
        account_type: &str,
        parent: Option<&str>,
        group: bool,
    ) -> Row<Account> {
        Row {
            id: id.into(),
            record: Account {
                code: code.into(),
                name: code.into(),
                account_type: account_type.into(),
                parent_id: parent.map(str::to_string),
                is_group: Some(group),
                ..Account::default()
            },
            created_at: String::new(),
            updated_at: String::new(),
            deleted_at: None,
        }
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn sums(entries: &[(&str, &str, &str)]) -> SumMap {
        entries
            .iter()
            .map(|(id, debit, credit)| {
                (
                    id.to_string(),
                    Sums {
                        debit: d(debit),
                        credit: d(credit),
                    },
                )
            })
            .collect()
    }

    fn chart() -> Vec<Row<Account>> {
        vec![
            account("assets", "1000", "asset", None, true),
            account("cash", "1010", "asset", Some("assets"), false),
            account("stock", "1400", "asset", Some("assets"), false),
            account("loan", "2000", "liability", None, false),
            account("capital", "3000", "equity", None, false),
            account("sales", "4000", "income", None, false),
            account("cogs", "5000", "expense", None, false),
        ]
    }

    #[test]
    fn the_balance_sheet_balances_with_the_periods_profit_as_current_earnings() {
        // Capital 1000 in cash; loan 500; buy stock 600; sell for 300 what cost 200;
        // last year: sales 100 in cash.
        let to_date = sums(&[
            ("cash", "1900", "600"),
            ("stock", "600", "200"),
            ("loan", "0", "500"),
            ("capital", "0", "1000"),
            ("sales", "0", "400"),
            ("cogs", "200", "0"),
        ]);
        let last_year = sums(&[("cash", "100", "0"), ("sales", "0", "100")]);
        let report = balance_sheet(&chart(), &to_date, &last_year);
        let report = serde_json::to_value(report).unwrap();
        assert_eq!(report["assets"]["total"], "1700.00");
        assert_eq!(report["equity"]["retained_earnings"], "100.00");
        assert_eq!(report["equity"]["current_earnings"], "100.00");
        assert_eq!(report["equity"]["total"], "1200.00");
        assert_eq!(report["balanced"], true);
        let group = &report["assets"]["accounts"][0];
        assert_eq!(
            (group["code"].as_str(), group["balance"].as_str()),
            (Some("1000"), Some("1700.00"))
        );
    }

    #[test]
    fn profit_and_loss_is_income_less_expenses() {
        let movement = sums(&[("sales", "10", "400"), ("cogs", "200", "0")]);
        let report = profit_and_loss(&chart(), &movement);
        let report = serde_json::to_value(report).unwrap();
        assert_eq!(report["income"]["total"], "390.00");
        assert_eq!(report["profit"], "190.00");
    }

    #[test]
    fn the_trial_balance_lists_leaves_with_lines_and_its_totals_agree() {
        let opening = sums(&[("cash", "1000", "0"), ("capital", "0", "1000")]);
        let movement = sums(&[("stock", "600", "0"), ("cash", "0", "600")]);
        let report = trial_balance(&chart(), &opening, &movement);
        let report = serde_json::to_value(report).unwrap();
        let codes: Vec<&str> = report["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["1010", "1400", "3000"]);
        assert_eq!(report["accounts"][0]["closing"], "400.00");
        assert_eq!(
            (
                report["totals"]["debit"].as_str(),
                report["totals"]["credit"].as_str()
            ),
            (Some("600.00"), Some("600.00"))
        );
        assert_eq!(report["balanced"], true);
    }
}
