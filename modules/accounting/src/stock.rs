//! Perpetual inventory: the journal entry for each stock move Inventory reports, posted
//! by the handler of `inventory.stock_moved` inside the move's own transaction, so
//! stock value and the ledger cannot drift apart. A receipt debits stock valuation and
//! credits stock received not billed; an issue debits cost of goods sold and credits
//! stock valuation; an adjustment goes against inventory adjustments; a transfer keeps
//! the value inside stock and posts nothing. A `revaluation` (a back-dated move or a
//! re-priced receipt changed a move's value) posts the difference as its move would
//! have, at its date; a `landed_cost` debits stock valuation and credits landed costs
//! not billed, at the receipt's date; a `cancellation` posts the cancelled move's entry
//! the other way round.
//!
//! Every move dated in a closed period is refused, whether or not it posts an entry: a
//! closed period freezes stock as well as the books.
//!
//! The accounts are found by role and created with a default code on first use; the
//! entry's `source` (`inventory.move:<id>`, `inventory.revaluation:<cause>:<id>`) is
//! unique, so a move or a revaluation is never posted twice.

use eerp_sdk::decimal::fixed;
use eerp_sdk::{Ctx, DataErrorKind, Decimal, Error, Event, LockMode, Row};
use serde::Deserialize;
use serde_json::json;

use crate::chart::{ACCOUNTS, Account, JOURNALS};
use crate::entries::{LineInput, Posting, post};

/// The event Inventory emits.
pub const STOCK_MOVED: &str = "inventory.stock_moved";

/// What this handler reads of the event.
#[derive(Debug, Deserialize)]
pub struct StockMoved {
    /// The move.
    pub move_id: String,
    /// `receipt`, `issue`, `transfer` or `adjustment`.
    pub kind: String,
    /// The item's SKU, for the memo.
    pub sku: String,
    /// The value that moved (signed for an adjustment).
    pub value: String,
    /// The move's date.
    pub date: String,
    /// The move's reference.
    pub reference: Option<String>,
    /// The kind of move a revaluation changed or a cancellation undid.
    #[serde(default)]
    pub of_kind: Option<String>,
    /// The back-dated move that caused a revaluation.
    #[serde(default)]
    pub caused_by: Option<String>,
}

/// The (debit role, credit role) of a move of `kind` worth `value`, or `None` when it
/// posts nothing. A revaluation's `value` is the change in stock value of a move of
/// `revalued` kind (negative: more left stock).
pub fn sides(
    kind: &str,
    revalued: Option<&str>,
    value: Decimal,
) -> Option<(&'static str, &'static str)> {
    if value.is_zero() {
        return None;
    }
    let gained = value.is_sign_positive();
    if let ("cancellation", Some(undone)) = (kind, revalued) {
        // The cancelled move's own entry, the other way round.
        return sides(undone, None, value).map(|(debit, credit)| (credit, debit));
    }
    match (kind, revalued) {
        ("receipt", _) => Some(("stock_valuation", "stock_received_not_billed")),
        ("issue", _) => Some(("cogs", "stock_valuation")),
        ("landed_cost", _) if gained => Some(("stock_valuation", "landed_cost_clearing")),
        ("landed_cost", _) => Some(("landed_cost_clearing", "stock_valuation")),
        ("revaluation", Some("receipt")) if gained => {
            Some(("stock_valuation", "stock_received_not_billed"))
        }
        ("revaluation", Some("receipt")) => Some(("stock_received_not_billed", "stock_valuation")),
        ("revaluation", Some("issue")) if gained => Some(("stock_valuation", "cogs")),
        ("revaluation", Some("issue")) => Some(("cogs", "stock_valuation")),
        ("adjustment", _) | ("revaluation", Some("adjustment")) if gained => {
            Some(("stock_valuation", "inventory_adjustment"))
        }
        ("adjustment", _) | ("revaluation", Some("adjustment")) => {
            Some(("inventory_adjustment", "stock_valuation"))
        }
        _ => None,
    }
}

/// Default code, name and type of the account playing `role`.
fn default_account(role: &str) -> (&'static str, &'static str, &'static str) {
    match role {
        "stock_valuation" => ("1400", "Stock valuation", "asset"),
        "stock_received_not_billed" => ("2150", "Stock received not billed", "liability"),
        "cogs" => ("5000", "Cost of goods sold", "expense"),
        "retained_earnings" => ("3200", "Retained earnings", "equity"),
        "round_off" => ("5900", "Rounding differences", "expense"),
        "landed_cost_clearing" => ("2160", "Landed costs not billed", "liability"),
        _ => ("5100", "Inventory adjustments", "expense"),
    }
}

/// The account playing `role`, created with its default code on first use.
pub(crate) fn account_for(ctx: &mut Ctx, role: &str) -> Result<Row<Account>, Error> {
    let (code, name, account_type) = default_account(role);
    ACCOUNTS
        .lock_or_insert(
            ctx,
            &json!({"role": role}),
            &json!({"code": code, "name": name, "type": account_type}),
            LockMode::Share,
        )
        .map_err(|e| match e.kind {
            DataErrorKind::Conflict => Error::conflict(format!(
                "account code {code} is taken by an account without the role `{role}`; give \
                 the account that should take these postings that role (PATCH /accounts/{{id}})"
            ))
            .with_code("account_role_missing"),
            _ => e.into(),
        })
}

/// Handles `inventory.stock_moved`.
///
/// # Errors
/// What posting refuses (a closed period): the stock move is then rolled back too.
pub fn on_stock_moved(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    let moved: StockMoved = event.payload()?;
    let value: Decimal = moved.value.parse().map_err(|_| {
        Error::internal(format!(
            "stock move value `{}` is not a decimal",
            moved.value
        ))
    })?;
    // The books first, as every posting takes them, then the accounts in role order, so
    // two first-ever moves creating the accounts never wait on each other in a cycle.
    crate::periods::open_books(ctx, LockMode::Share)?;
    if let Some(period) = crate::periods::closed_period_at(ctx, &moved.date)? {
        return Err(crate::entries::closed(&period, &moved.date));
    }
    let Some((debit_role, credit_role)) = sides(&moved.kind, moved.of_kind.as_deref(), value)
    else {
        return Ok(());
    };
    let (first, second) = if debit_role < credit_role {
        (debit_role, credit_role)
    } else {
        (credit_role, debit_role)
    };
    let (first, second) = (account_for(ctx, first)?, account_for(ctx, second)?);
    let (debit, credit) = if first.record.role.as_deref() == Some(debit_role) {
        (first, second)
    } else {
        (second, first)
    };
    let journal = JOURNALS.lock_or_insert(
        ctx,
        &json!({"code": "STK"}),
        &json!({"name": "Stock"}),
        LockMode::Share,
    )?;
    let amount = fixed(value.abs(), 2);
    let memo = match &moved.of_kind {
        Some(kind) => format!("{} of {kind} {}", moved.kind, moved.sku),
        None => format!("{} {}", moved.kind, moved.sku),
    };
    let source = match &moved.caused_by {
        Some(cause) => format!("inventory.revaluation:{cause}:{}", moved.move_id),
        None => format!("inventory.move:{}", moved.move_id),
    };
    let line = |account: &Row<Account>, debit: bool| LineInput {
        account_id: account.id.clone(),
        debit: debit.then(|| amount.clone()),
        credit: (!debit).then(|| amount.clone()),
        party_id: None,
        memo: Some(memo.clone()),
    };
    let posting = Posting {
        journal_id: journal.id,
        date: moved.date,
        reference: moved.reference,
        memo: Some(memo.clone()),
        lines: vec![line(&debit, true), line(&credit, false)],
        source: Some(source),
        reversal_of: None,
        closing: false,
    };
    post(ctx, &posting, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_issues_and_adjustments_post_perpetual_entries() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(
            sides("receipt", None, d("10")),
            Some(("stock_valuation", "stock_received_not_billed"))
        );
        assert_eq!(
            sides("issue", None, d("10")),
            Some(("cogs", "stock_valuation"))
        );
        assert_eq!(
            sides("adjustment", None, d("-2")),
            Some(("inventory_adjustment", "stock_valuation"))
        );
        assert_eq!(sides("transfer", None, d("10")), None);
        assert_eq!(sides("receipt", None, Decimal::ZERO), None);
    }

    #[test]
    fn a_revaluation_posts_the_difference_as_its_move_would() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        // An issue that now takes 10 more out of stock costs 10 more.
        assert_eq!(
            sides("revaluation", Some("issue"), d("-10")),
            Some(("cogs", "stock_valuation"))
        );
        assert_eq!(
            sides("revaluation", Some("issue"), d("10")),
            Some(("stock_valuation", "cogs"))
        );
        assert_eq!(
            sides("revaluation", Some("adjustment"), d("-1")),
            Some(("inventory_adjustment", "stock_valuation"))
        );
        assert_eq!(sides("revaluation", Some("transfer"), d("5")), None);
        assert_eq!(
            sides("cancellation", Some("receipt"), d("100")),
            Some(("stock_received_not_billed", "stock_valuation"))
        );
        assert_eq!(
            sides("cancellation", Some("adjustment"), d("-3")),
            Some(("stock_valuation", "inventory_adjustment"))
        );
        // Freight added to a receipt: stock is worth more, the freight is owed.
        assert_eq!(
            sides("landed_cost", None, d("20")),
            Some(("stock_valuation", "landed_cost_clearing"))
        );
        assert_eq!(
            sides("revaluation", Some("receipt"), d("10")),
            Some(("stock_valuation", "stock_received_not_billed"))
        );
    }
}
