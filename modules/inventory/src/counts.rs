//! Stock counts: `POST /counts` sets what is on hand at a location on a date, as a
//! warehouse team reports it after counting. The difference is posted as an adjustment,
//! computed under the item's lock, so it never races with moves in flight. A move dated
//! before the count later changes the difference, never the quantity counted
//! ([`crate::history`]).

use eerp_sdk::decimal::parse;
use eerp_sdk::{Checks, Ctx, Decimal, Error, Module, Reply, Request};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::moves::{self, Kind, MAX_QTY, NewMove, Plan, PostedMove, check_rate};
use crate::valuation::QTY_SCALE;

/// The body of `POST /counts`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCount {
    /// The item counted.
    #[schemars(extend("format" = "uuid"))]
    pub item_id: String,
    /// Where it was counted.
    #[schemars(extend("format" = "uuid"))]
    pub location_id: String,
    /// The quantity found, ≥ 0, at most 6 decimals.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub qty: String,
    /// The rate a surplus comes in at (default: the current rate).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub rate: Option<String>,
    /// Free text: the count sheet's number.
    pub reference: Option<String>,
    /// The day counted, `YYYY-MM-DD`; default today.
    #[schemars(extend("format" = "date"))]
    pub date: Option<String>,
    /// The unit `qty` and `rate` are in: the item's stock unit (the default) or one of
    /// its units.
    pub uom: Option<String>,
}

/// Adds the count route to `module`.
pub fn routes(module: Module) -> Module {
    module
        .post("/counts", "inventory.moves.create", create)
        .summary("Post a stock count: sets what is on hand, the difference as an adjustment")
        .takes::<NewCount>()
        .creates::<PostedMove>()
}

/// Checks a count; returns it as the move it posts and its plan.
///
/// # Errors
/// A 422 naming each invalid field.
pub fn plan(count: NewCount) -> Result<(NewMove, Plan), Error> {
    let mut checks = Checks::new();
    let qty = match parse("qty", &count.qty, QTY_SCALE) {
        Ok(qty) if qty.is_sign_negative() || qty >= Decimal::from(MAX_QTY) => {
            checks.problem("qty", format!("must be from 0 to less than {MAX_QTY}"));
            None
        }
        Ok(qty) => Some(qty),
        Err(_) => {
            checks.problem("qty", "must be a decimal string with at most 6 decimals");
            None
        }
    };
    let rate = check_rate(&mut checks, count.rate.as_deref());
    checks.max_len("reference", count.reference.as_deref(), 200);
    checks.date("date", count.date.as_deref());
    if let Some(uom) = &count.uom {
        checks.text("uom", uom, 1, 16);
    }
    checks.finish("count", "invalid_count")?;
    let plan = Plan {
        kind: Kind::Count,
        qty: qty.unwrap_or_default(),
        rate,
        value: None,
    };
    let new = NewMove {
        kind: "adjustment".into(),
        item_id: count.item_id,
        location_id: count.location_id,
        qty: count.qty,
        rate: count.rate,
        reference: count.reference,
        date: count.date,
        uom: count.uom,
        ..NewMove::default()
    };
    Ok((new, plan))
}

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let (new, plan) = plan(req.json::<NewCount>()?)?;
    moves::post(ctx, &new, &plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_may_be_zero_but_never_negative() {
        let count = |qty: &str| NewCount {
            item_id: "i".into(),
            location_id: "a".into(),
            qty: qty.into(),
            ..NewCount::default()
        };
        let (new, planned) = plan(count("0")).unwrap();
        assert_eq!(
            (new.kind.as_str(), planned.kind, planned.qty),
            ("adjustment", Kind::Count, Decimal::ZERO)
        );
        for bad in ["-1", "x", "1.1234567"] {
            let err = plan(count(bad)).unwrap_err();
            assert_eq!(err.body.errors[0].field, "qty", "{bad}");
        }
    }
}
