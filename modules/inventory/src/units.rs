//! Units of measure: an item is counted in its stock unit (`uom`), and may be bought or
//! sold in others (`box` = 12 `unit`). A move may name one of the item's units; its
//! quantity is converted to the stock unit exactly (decimal, never a float) and its
//! rate divided by the same factor, while the value is computed in the unit the move
//! named, so a box of 12 at 10.00 is worth 10.00 however the rate rounds.

use eerp_sdk::decimal::{parse, round};
use eerp_sdk::{Checks, Ctx, Decimal, Error, ListSpec, Resource, Row, Table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::{ITEMS, Item, hold};
use crate::moves::{MAX_QTY, Plan};
use crate::valuation::{QTY_SCALE, RATE_SCALE, VALUE_SCALE};

/// Decimals of a conversion factor.
pub const FACTOR_SCALE: u32 = 10;

/// Another unit an item is bought or sold in.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Unit {
    /// The item.
    #[schemars(extend("format" = "uuid"))]
    pub item_id: String,
    /// The unit's name (`box`, `pallet`), unique per item; not the item's stock unit.
    pub uom: String,
    /// How many stock units one of it holds, > 0, at most 10 decimals.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub factor: String,
}

/// Units of measure.
#[derive(Debug)]
pub struct Units;

/// The units table.
pub const UNITS: Table<Row<Unit>> = Table::new("units");

impl Resource for Units {
    type Record = Unit;
    const TABLE: Table<Row<Unit>> = UNITS;
    const NAME: &'static str = "unit";

    fn list_spec() -> ListSpec {
        ListSpec::new("units")
            .filter_id("item_id")
            .filter("uom")
            .sortable(&["uom"])
    }

    fn check(ctx: &mut Ctx, mut unit: Unit, _current: Option<&Row<Unit>>) -> Result<Unit, Error> {
        unit.uom = unit.uom.trim().to_string();
        let mut checks = Checks::new();
        checks.text("uom", &unit.uom, 1, 16);
        match parse("factor", &unit.factor, FACTOR_SCALE) {
            Ok(factor) if factor > Decimal::ZERO && factor < Decimal::from(1_000_000_000) => {}
            _ => {
                checks.problem(
                    "factor",
                    "must be a decimal from above 0 to below 1000000000, at most 10 decimals",
                );
            }
        }
        checks.finish("unit", "invalid_unit")?;
        let item = hold(ctx, &ITEMS, &unit.item_id, "item_id", "item")?;
        if unit.uom == stock_unit(&item.record) {
            return Err(Error::unprocessable(format!(
                "`{}` is the item's stock unit already; name the other unit",
                unit.uom
            ))
            .with_field("uom", "is the stock unit"));
        }
        Ok(unit)
    }

    fn conflict() -> Error {
        Error::conflict("the item already has a live unit of this name").with_code("uom_taken")
    }
}

/// The unit an item's stock is counted in.
pub fn stock_unit(item: &Item) -> &str {
    item.uom.as_deref().unwrap_or("unit")
}

/// `plan` in the item's stock unit, when the move names another of its units `uom`.
/// The value (`qty × rate` in the named unit, to the cent) is kept as it is.
///
/// # Errors
/// A 422 when the item has no such unit, or the converted quantity needs more than 6
/// decimals.
pub fn convert(ctx: &mut Ctx, item: &Row<Item>, uom: &str, plan: Plan) -> Result<Plan, Error> {
    if uom == stock_unit(&item.record) {
        return Ok(plan);
    }
    let unit = UNITS
        .get_by(ctx, &json!({"item_id": item.id, "uom": uom}))
        .map_err(|_| {
            Error::unprocessable(format!(
                "item {} has no unit `{uom}`; add it (POST /units) or use its stock unit `{}`",
                item.record.sku,
                stock_unit(&item.record)
            ))
            .with_field("uom", "not a unit of this item")
        })?;
    let factor = crate::history::read("factor", &unit.record.factor)?;
    converted(plan, factor)
}

/// `plan` with its quantity multiplied and its rate divided by `factor`.
///
/// # Errors
/// A 422 when the quantity in stock units needs more than 6 decimals.
pub fn converted(plan: Plan, factor: Decimal) -> Result<Plan, Error> {
    let qty = plan.qty * factor;
    if qty.abs() >= Decimal::from(MAX_QTY) {
        return Err(Error::unprocessable(format!(
            "{} × {} is {} stock units, {MAX_QTY} or more",
            plan.qty.normalize(),
            factor.normalize(),
            qty.normalize()
        ))
        .with_code("invalid_move")
        .with_field("qty", "too large in the stock unit"));
    }
    if round(qty, QTY_SCALE) != qty {
        return Err(Error::unprocessable(format!(
            "{} × {} stock units is {}, more decimals than a quantity holds (6)",
            plan.qty.normalize(),
            factor.normalize(),
            qty.normalize()
        ))
        .with_code("invalid_move")
        .with_field("qty", "needs more than 6 decimals in the stock unit"));
    }
    Ok(Plan {
        kind: plan.kind,
        qty,
        rate: plan.rate.map(|rate| round(rate / factor, RATE_SCALE)),
        value: plan.rate.map(|rate| round(plan.qty * rate, VALUE_SCALE)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moves::Kind;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn a_box_of_twelve_keeps_its_value_whatever_the_rate_rounds_to() {
        let plan = Plan {
            kind: Kind::Receipt,
            qty: d("7"),
            rate: Some(d("10")),
            value: None,
        };
        let stock = converted(plan, d("12")).unwrap();
        assert_eq!(stock.qty, d("84"));
        assert_eq!(stock.rate, Some(d("0.8333333333")));
        assert_eq!(stock.value, Some(d("70.00")));
    }

    #[test]
    fn a_quantity_that_needs_more_than_six_decimals_is_refused() {
        let plan = Plan {
            kind: Kind::Issue,
            qty: d("0.000001"),
            rate: None,
            value: None,
        };
        assert!(converted(plan.clone(), d("0.5")).is_err());
        assert_eq!(converted(plan, d("2")).unwrap().qty, d("0.000002"));
        let many = Plan {
            kind: Kind::Issue,
            qty: d("1000000"),
            rate: None,
            value: None,
        };
        let err = converted(many, d("999999999")).unwrap_err();
        assert_eq!(
            err.body.errors[0].field, "qty",
            "beyond what a quantity holds"
        );
    }
}
