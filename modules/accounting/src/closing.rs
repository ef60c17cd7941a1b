//! The period-closing entry: every income and expense account's balance for the period,
//! moved to retained earnings, dated the period's last day. Posted by
//! `POST /periods/{id}/close` with `{"closing_entry": true}`, in the close's own
//! transaction, just before the period is closed.
//!
//! Its lines are marked `closing`: the profit and loss report leaves them out (it shows
//! what the period earned, not that it was closed), while the balance sheet and the trial
//! balance count them (retained earnings hold the result from then on). A period closed
//! again after a reopen moves only what was posted since, since the earlier closing
//! entry's lines are in the period too.

use eerp_sdk::decimal::fixed;
use eerp_sdk::{Ctx, Decimal, Error, Filter, FilterOp, LockMode, Row};
use serde_json::json;

use crate::chart::{Account, JOURNALS};
use crate::entries::{Entry, LineInput, Posting, post};
use crate::periods::Period;
use crate::reports::{SumMap, all_accounts, sums};

/// The lines moving each income and expense account's `movement` to the account
/// `retained`: each account's balance reversed, and the difference (the period's profit
/// or loss) on retained earnings. Empty when there is nothing to move.
pub fn closing_lines(
    accounts: &[Row<Account>],
    movement: &SumMap,
    retained: &str,
) -> Vec<LineInput> {
    let mut lines = Vec::new();
    let mut profit = Decimal::ZERO;
    for account in accounts {
        let kind = account.record.account_type.as_str();
        if kind != "income" && kind != "expense" {
            continue;
        }
        let Some(net) = movement.get(&account.id).map(|s| s.net()) else {
            continue;
        };
        if net.is_zero() {
            continue;
        }
        profit -= net;
        lines.push(line(&account.id, -net));
    }
    if !lines.is_empty() && !profit.is_zero() {
        lines.push(line(retained, -profit));
    }
    lines
}

/// A line of `amount` on `account`: a debit when positive, a credit when negative.
fn line(account: &str, amount: Decimal) -> LineInput {
    let text = fixed(amount.abs(), 2);
    LineInput {
        account_id: account.to_string(),
        debit: amount.is_sign_positive().then(|| text.clone()),
        credit: amount.is_sign_negative().then_some(text),
        party_id: None,
        memo: Some("period closing".into()),
    }
}

/// Posts the closing entry of `period` (its books locked by the caller), or nothing when
/// no income or expense account moved in it.
///
/// # Errors
/// When the data API or posting fails.
pub fn post_closing_entry(
    ctx: &mut Ctx,
    period: &Row<Period>,
) -> Result<Option<Row<Entry>>, Error> {
    let p = &period.record;
    let range = vec![
        Filter::new("date", FilterOp::Gte, p.start_date.as_str()),
        Filter::new("date", FilterOp::Lte, p.end_date.as_str()),
    ];
    let movement = sums(ctx, range)?;
    let accounts = all_accounts(ctx)?;
    let retained = crate::stock::account_for(ctx, "retained_earnings")?;
    let lines = closing_lines(&accounts, &movement, &retained.id);
    if lines.is_empty() {
        return Ok(None);
    }
    let journal = JOURNALS.lock_or_insert(
        ctx,
        &json!({"code": "CLS"}),
        &json!({"name": "Period closing"}),
        LockMode::Share,
    )?;
    let posting = Posting {
        journal_id: journal.id,
        date: p.end_date.clone(),
        reference: Some(p.name.clone()),
        memo: Some(format!("Closing of period {}", p.name)),
        lines,
        source: None,
        reversal_of: None,
        closing: true,
    };
    let entry = post(ctx, &posting, None)?;
    Ok(Some(entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::Sums;

    fn account(id: &str, kind: &str) -> Row<Account> {
        Row {
            id: id.into(),
            record: Account {
                code: id.into(),
                name: id.into(),
                account_type: kind.into(),
                ..Account::default()
            },
            created_at: String::new(),
            updated_at: String::new(),
            deleted_at: None,
        }
    }

    #[test]
    fn income_and_expenses_move_to_retained_earnings() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let accounts = [
            account("cash", "asset"),
            account("sales", "income"),
            account("rent", "expense"),
        ];
        // Sales 500 (credit), rent 120 (debit), cash untouched: profit 380.
        let movement = SumMap::from([
            (
                "cash".into(),
                Sums {
                    debit: d("380"),
                    credit: Decimal::ZERO,
                },
            ),
            (
                "sales".into(),
                Sums {
                    debit: Decimal::ZERO,
                    credit: d("500"),
                },
            ),
            (
                "rent".into(),
                Sums {
                    debit: d("120"),
                    credit: Decimal::ZERO,
                },
            ),
        ]);
        let lines = closing_lines(&accounts, &movement, "re");
        let shown: Vec<(&str, Option<&str>, Option<&str>)> = lines
            .iter()
            .map(|l| {
                (
                    l.account_id.as_str(),
                    l.debit.as_deref(),
                    l.credit.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("sales", Some("500.00"), None),
                ("rent", None, Some("120.00")),
                ("re", None, Some("380.00"))
            ]
        );
        assert!(closing_lines(&accounts[..1], &movement, "re").is_empty());
    }
}
