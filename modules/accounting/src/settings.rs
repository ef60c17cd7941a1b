//! The tenant's accounting settings, kept on its books row: today the round-off
//! tolerance. An entry whose debits and credits differ by no more than it is posted
//! with one more line, on the round-off account (role `round_off`, 5900 by default),
//! taking the difference; beyond it, the entry is refused as unbalanced. Zero, the
//! default, turns round-off off.

use eerp_sdk::decimal::{fixed, parse};
use eerp_sdk::{Checks, Ctx, Decimal, Error, LockMode, Module, Reply, Request, Row, Table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::entries::{Amounts, LineInput};

/// The books table, as settings.
const BOOKS: Table<Row<Settings>> = Table::new("books");

/// Largest round-off tolerance a tenant may set.
const MAX_TOLERANCE: i64 = 1;

/// The accounting settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Settings {
    /// Largest difference between debits and credits posted to the round-off account,
    /// from 0.00 (off, the default) to 1.00.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub round_off_tolerance: Option<String>,
}

/// Adds the settings routes to `module`.
pub fn routes(module: Module) -> Module {
    module
        .get("/settings", "accounting.settings.read", get)
        .summary("Read the accounting settings")
        .returns::<Settings>()
        .patch("/settings", "accounting.settings.update", update)
        .summary("Change the accounting settings (the round-off tolerance)")
        .takes_patch::<Settings>()
        .returns::<Settings>()
}

fn books(ctx: &mut Ctx, mode: LockMode) -> Result<Row<Settings>, Error> {
    let key = json!({"singleton": "x"});
    Ok(BOOKS.lock_or_insert(ctx, &key, &key, mode)?)
}

fn shown(row: Row<Settings>) -> Settings {
    Settings {
        round_off_tolerance: Some(
            row.record
                .round_off_tolerance
                .unwrap_or_else(|| "0.00".into()),
        ),
    }
}

fn get(ctx: &mut Ctx, _req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(shown(books(ctx, LockMode::Share)?)))
}

fn update(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    // Alone on the books, as a period close: no posting sees half a change.
    let row = books(ctx, LockMode::Update)?;
    let patch = req.patch::<Settings>(&json!(row.record))?.merged;
    let mut checks = Checks::new();
    let tolerance = patch
        .round_off_tolerance
        .as_deref()
        .map(|t| parse("round_off_tolerance", t, 2));
    match tolerance {
        Some(Ok(t)) if t >= Decimal::ZERO && t <= Decimal::from(MAX_TOLERANCE) => {}
        None => {}
        Some(_) => {
            checks.problem(
                "round_off_tolerance",
                format!("must be a decimal from 0.00 to {MAX_TOLERANCE}.00"),
            );
        }
    }
    checks.finish("settings", "invalid_settings")?;
    let values =
        json!({"round_off_tolerance": tolerance.and_then(Result::ok).map(|t| fixed(t, 2))});
    Ok(Reply::ok(shown(BOOKS.update(ctx, &row.id, &values)?)))
}

/// The round-off line `lines` need to balance, when the tenant's tolerance covers the
/// difference of `amounts`; `None` when they balance or it does not.
///
/// # Errors
/// When the data API fails.
pub fn round_off(ctx: &mut Ctx, amounts: &[Amounts]) -> Result<Option<LineInput>, Error> {
    let debit: Decimal = amounts.iter().map(|a| a.debit).sum();
    let credit: Decimal = amounts.iter().map(|a| a.credit).sum();
    let difference = debit - credit;
    if difference.is_zero() {
        return Ok(None);
    }
    let tolerance = books(ctx, LockMode::Share)?
        .record
        .round_off_tolerance
        .and_then(|t| t.parse::<Decimal>().ok())
        .unwrap_or_default();
    if difference.abs() > tolerance {
        return Ok(None);
    }
    let account = crate::stock::account_for(ctx, "round_off")?;
    let amount = fixed(difference.abs(), 2);
    Ok(Some(LineInput {
        account_id: account.id,
        debit: difference.is_sign_negative().then(|| amount.clone()),
        credit: difference.is_sign_positive().then_some(amount),
        party_id: None,
        memo: Some("round-off".into()),
    }))
}
