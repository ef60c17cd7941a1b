//! Changing what receipts cost after they were posted: landed costs (freight, duty,
//! insurance split over the receipts they belong to, by quantity or by value) and
//! re-pricing a receipt when the supplier's invoice differs from the order.
//!
//! `POST /receipt-costs` records the change and adds it to each receipt's value at the
//! receipt's own date. The item's later lines are then valued again, as a back-dated
//! move would value them ([`crate::history`]): stock still on hand carries the new
//! cost, and issues since then post the difference to cost of goods sold. Accounting
//! gets one `inventory.stock_moved` per receipt: `landed_cost` (stock valuation against
//! landed costs not billed) or a `revaluation` of the receipt (against stock received
//! not billed), both dated at the receipt's date, so the books as of any date agree
//! with the stock ledger.

use std::collections::BTreeMap;

use eerp_sdk::decimal::{fixed, parse, round};
use eerp_sdk::{
    Checks, Ctx, Decimal, Error, Filter, ListQuery, ListSpec, Module, Page, Reply, Request, Row,
    Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::Item;
use crate::history;
use crate::moves::{self, Cause, LEDGER, MAX_VALUE, MOVES, Move, STOCK_MOVED, check_rate};
use crate::valuation::{QTY_SCALE, RATE_SCALE, VALUE_SCALE};

/// Kinds of cost change.
pub const COST_KINDS: [&str; 2] = ["landed_cost", "reprice"];
/// What a landed cost is for.
pub const COST_TYPES: [&str; 4] = ["freight", "duty", "insurance", "other"];
/// How a landed cost is split over its receipts.
pub const SPLITS: [&str; 2] = ["qty", "value"];
/// Most receipts one landed cost is split over.
const MAX_RECEIPTS: usize = 50;

/// The cost changes table.
pub const COSTS: Table<Row<ReceiptCost>> = Table::new("receipt_costs");

/// A stored cost change.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct ReceiptCost {
    /// `landed_cost` or `reprice`.
    pub kind: String,
    /// A landed cost's type: `freight`, `duty`, `insurance` or `other`.
    pub cost_type: Option<String>,
    /// The total it added to the receipts' value (negative when a re-price lowered it).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub amount: String,
    /// How a landed cost was split: `qty` or `value`.
    pub split_by: Option<String>,
    /// Free text: the freight invoice's number.
    pub reference: Option<String>,
    /// What each receipt got.
    pub allocations: Vec<Allocation>,
}

/// One receipt's part of a cost change.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Allocation {
    /// The receipt (a move).
    #[schemars(extend("format" = "uuid"))]
    pub move_id: String,
    /// What its value changed by.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub value: String,
}

/// The body of `POST /receipt-costs`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReceiptCost {
    /// `landed_cost` (split `amount` over `receipts`) or `reprice` (one receipt, a new
    /// `rate`).
    pub kind: String,
    /// The receipts (moves of kind `receipt`): 1 to 50 for a landed cost, 1 to re-price.
    pub receipts: Vec<String>,
    /// A landed cost's total, > 0, to the cent.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub amount: Option<String>,
    /// A landed cost's split: `qty` (default) or `value`.
    pub split_by: Option<String>,
    /// A landed cost's type: `freight` (default), `duty`, `insurance` or `other`.
    pub cost_type: Option<String>,
    /// A re-price's new rate per stock unit.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub rate: Option<String>,
    /// Free text.
    pub reference: Option<String>,
}

/// Adds the cost-change routes to `module`.
pub fn routes(module: Module) -> Module {
    module
        .get("/receipt-costs", "inventory.moves.read", list)
        .summary("List landed costs and re-pricings of receipts")
        .lists(cost_list)
        .returns::<Page<Row<ReceiptCost>>>()
        .post("/receipt-costs", "inventory.moves.create", create)
        .summary("Add a landed cost to receipts, or re-price a receipt, at its date")
        .takes::<NewReceiptCost>()
        .creates::<Row<ReceiptCost>>()
        .get("/receipt-costs/{id}", "inventory.moves.read", get)
        .summary("Read a landed cost or re-pricing")
        .returns::<Row<ReceiptCost>>()
}

fn cost_list() -> ListSpec {
    ListSpec::new("receipt_costs").filter_one_of("kind", &COST_KINDS)
}

fn list(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(COSTS.list(ctx, cost_list().query(req)?)?))
}

fn get(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = COSTS
        .get(ctx, req.path("id")?)
        .map_err(|_| Error::not_found("no receipt cost with that id"))?;
    Ok(Reply::ok(row))
}

/// What a checked request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Split `amount` over the receipts by `split_by`.
    Landed {
        /// The total.
        amount: Decimal,
        /// Split by value rather than quantity.
        by_value: bool,
    },
    /// Set the receipt's rate.
    Reprice {
        /// The new rate.
        rate: Decimal,
    },
}

/// Checks the body.
///
/// # Errors
/// A 422 naming each invalid field.
pub fn check(new: &NewReceiptCost) -> Result<Change, Error> {
    let mut checks = Checks::new();
    checks.one_of("kind", Some(new.kind.as_str()), &COST_KINDS);
    checks.one_of("split_by", new.split_by.as_deref(), &SPLITS);
    checks.one_of("cost_type", new.cost_type.as_deref(), &COST_TYPES);
    checks.max_len("reference", new.reference.as_deref(), 200);
    let mut ids = new.receipts.clone();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != new.receipts.len() {
        checks.problem("receipts", "names a receipt twice");
    }
    let reprice = new.kind == "reprice";
    let most = if reprice { 1 } else { MAX_RECEIPTS };
    if new.receipts.is_empty() || new.receipts.len() > most {
        checks.problem("receipts", format!("must name 1 to {most} receipts"));
    }
    let rate = check_rate(&mut checks, new.rate.as_deref());
    let amount = match new
        .amount
        .as_deref()
        .map(|a| parse("amount", a, VALUE_SCALE))
    {
        Some(Ok(amount)) if amount > Decimal::ZERO && amount < Decimal::from(MAX_VALUE) => {
            Some(amount)
        }
        Some(_) => {
            checks.problem(
                "amount",
                format!("must be a decimal above 0 and below {MAX_VALUE}, at most 2 decimals"),
            );
            None
        }
        None => None,
    };
    if reprice {
        for (field, given) in [
            ("amount", new.amount.is_some()),
            ("split_by", new.split_by.is_some()),
            ("cost_type", new.cost_type.is_some()),
        ] {
            if given {
                checks.problem(field, "only a landed cost has it");
            }
        }
        if new.rate.is_none() {
            checks.problem("rate", "a re-price needs the new rate");
        }
    } else {
        if new.amount.is_none() {
            checks.problem("amount", "a landed cost needs its amount");
        }
        if new.rate.is_some() {
            checks.problem("rate", "only a re-price has a rate");
        }
    }
    checks.finish("receipt cost", "invalid_receipt_cost")?;
    Ok(match (rate, amount) {
        (Some(rate), _) if reprice => Change::Reprice { rate },
        (_, Some(amount)) => Change::Landed {
            amount,
            by_value: new.split_by.as_deref() == Some("value"),
        },
        _ => return Err(Error::internal("a checked receipt cost lacks its figure")),
    })
}

/// `amount` split in proportion to `bases`, to the cent; the last share takes what
/// rounding left, so the shares always sum to `amount`. `None` when the bases sum to 0.
pub fn allocate(amount: Decimal, bases: &[Decimal]) -> Option<Vec<Decimal>> {
    let total: Decimal = bases.iter().sum();
    if total <= Decimal::ZERO {
        return None;
    }
    // base / total is at most 1, so no product exceeds `amount`.
    let mut shares: Vec<Decimal> = bases
        .iter()
        .map(|base| round(amount * (base / total), VALUE_SCALE))
        .collect();
    let rest = amount - shares.iter().sum::<Decimal>();
    if let Some(last) = shares.last_mut() {
        *last += rest;
    }
    Some(shares)
}

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let new = req.json::<NewReceiptCost>()?;
    let change = check(&new)?;
    // The items first, in id order, so two cost changes never wait on each other in a
    // cycle; the receipts are read again under those locks.
    let mut items = Vec::new();
    for id in &new.receipts {
        items.push(receipt(ctx, id)?.record.item_id);
    }
    items.sort_unstable();
    items.dedup();
    let mut locked = BTreeMap::new();
    for item in &items {
        let (row, end) = moves::lock_item(ctx, item)?;
        // Numbers an older Inventory's lines, if this is the item's first change.
        end.resolve(ctx, item)?;
        locked.insert(item.clone(), row);
    }
    let receipts = new
        .receipts
        .iter()
        .map(|id| receipt(ctx, id))
        .collect::<Result<Vec<_>, Error>>()?;
    let deltas = deltas(&change, &receipts)?;
    for (r, delta) in receipts.iter().zip(&deltas) {
        if history::read("value", &r.record.value)? + delta >= Decimal::from(MAX_VALUE) {
            return Err(too_large("amount"));
        }
    }
    let total: Decimal = deltas.iter().sum();
    let allocations: Vec<Allocation> = receipts
        .iter()
        .zip(&deltas)
        .map(|(r, delta)| Allocation {
            move_id: r.id.clone(),
            value: fixed(*delta, VALUE_SCALE),
        })
        .collect();
    let stored = COSTS.insert(
        ctx,
        &json!({
            "kind": new.kind,
            "cost_type": match change {
                Change::Landed { .. } => Some(new.cost_type.as_deref().unwrap_or("freight")),
                Change::Reprice { .. } => None,
            },
            "amount": fixed(total, VALUE_SCALE),
            "split_by": match change {
                Change::Landed { .. } => Some(new.split_by.as_deref().unwrap_or("qty")),
                Change::Reprice { .. } => None,
            },
            "reference": new.reference,
            "allocations": allocations,
        }),
    )?;
    for (item_id, item) in &locked {
        let of_item: BTreeMap<String, Decimal> = receipts
            .iter()
            .zip(&deltas)
            .filter(|(r, _)| &r.record.item_id == item_id)
            .map(|(r, delta)| (r.id.clone(), *delta))
            .collect();
        let cause = Cause {
            id: &stored.id,
            what: "this change to the receipts' cost",
            adjusted: &of_item,
        };
        apply(ctx, item, &cause)?;
    }
    for (r, delta) in receipts.iter().zip(&deltas) {
        book(
            ctx,
            &locked[&r.record.item_id],
            &stored.id,
            r,
            *delta,
            &change,
        )?;
    }
    Ok(Reply::created(stored))
}

/// The receipt `id`, or a 422 naming the field.
fn receipt(ctx: &mut Ctx, id: &str) -> Result<Row<Move>, Error> {
    let m = MOVES
        .get(ctx, id)
        .map_err(|_| Error::unknown_reference("receipts", "receipt"))?;
    if m.record.kind != "receipt" {
        return Err(Error::unprocessable(format!(
            "move {id} is a {}, not a receipt; costs are added to receipts only",
            m.record.kind
        ))
        .with_field("receipts", "names a move that is not a receipt"));
    }
    if m.record.cancelled_by.is_some() || m.record.reverses.is_some() {
        return Err(Error::conflict(format!(
            "receipt {id} is cancelled or cancels another; costs go on receipts that stand"
        ))
        .with_code("receipt_cancelled"));
    }
    Ok(m)
}

/// What each receipt's value changes by.
fn deltas(change: &Change, receipts: &[Row<Move>]) -> Result<Vec<Decimal>, Error> {
    let qty = |r: &Row<Move>| history::read("qty", &r.record.qty);
    let value = |r: &Row<Move>| history::read("value", &r.record.value);
    match change {
        Change::Reprice { rate } => {
            let r = &receipts[0];
            let landed = r.record.landed()?;
            let repriced = qty(r)?
                .checked_mul(*rate)
                .map(|v| round(v, VALUE_SCALE) + landed)
                .filter(|v| *v < Decimal::from(MAX_VALUE))
                .ok_or_else(|| too_large("rate"))?;
            Ok(vec![repriced - value(r)?])
        }
        Change::Landed { amount, by_value } => {
            let field = if *by_value { "value" } else { "qty" };
            let bases = receipts
                .iter()
                .map(|r| if *by_value { value(r) } else { qty(r) })
                .collect::<Result<Vec<_>, Error>>()?;
            allocate(*amount, &bases).ok_or_else(|| {
                Error::unprocessable(format!(
                    "the receipts' {field} sums to 0: nothing to split the amount by; split by \
                     the other"
                ))
                .with_field("split_by", "its basis sums to 0")
            })
        }
    }
}

/// The 422 for a change that would take a receipt's value to [`MAX_VALUE`] or more.
fn too_large(field: &str) -> Error {
    Error::unprocessable(format!(
        "the receipt's value would reach {MAX_VALUE} or more, more than a value holds"
    ))
    .with_code("invalid_receipt_cost")
    .with_field(field, "too large")
}

/// Values `cause`'s receipts of `item` and every line after the first of them again.
fn apply(ctx: &mut Ctx, item: &Row<Item>, cause: &Cause) -> Result<(), Error> {
    let mut first = i64::MAX;
    for move_id in cause.adjusted.keys() {
        let lines = LEDGER.list(
            ctx,
            ListQuery {
                filter: vec![Filter::eq("move_id", move_id.as_str())],
                ..ListQuery::default()
            },
        )?;
        for line in lines.data {
            first = first.min(line.record.seq.unwrap_or_default());
        }
    }
    let after_seq = first.saturating_sub(1);
    let slot = history::Slot {
        after_seq,
        later: history::lines_after(ctx, &item.id, after_seq, cause.what)?,
    };
    let mut positions = BTreeMap::new();
    moves::repost(ctx, item, cause, &slot, 0, &mut positions)?;
    let mut balances = BTreeMap::new();
    for (location, after) in &positions {
        moves::store_final(ctx, &item.id, location, after, Decimal::ZERO, &mut balances)?;
    }
    Ok(())
}

/// Writes the receipt's new value (and rate, or landed cost) and tells Accounting.
fn book(
    ctx: &mut Ctx,
    item: &Row<Item>,
    cause_id: &str,
    r: &Row<Move>,
    delta: Decimal,
    change: &Change,
) -> Result<(), Error> {
    let value = history::read("value", &r.record.value)? + delta;
    let mut values = json!({"value": fixed(value, VALUE_SCALE)});
    let kind = match change {
        Change::Reprice { rate } => {
            values["rate"] = json!(fixed(*rate, RATE_SCALE));
            json!({"kind": "revaluation", "of_kind": "receipt"})
        }
        Change::Landed { .. } => {
            let landed = r.record.landed()?;
            values["landed"] = json!(fixed(landed + delta, VALUE_SCALE));
            json!({"kind": "landed_cost"})
        }
    };
    MOVES.update(ctx, &r.id, &values)?;
    if delta.is_zero() {
        return Ok(());
    }
    let mut event = json!({
        "move_id": r.id,
        "caused_by": cause_id,
        "item_id": item.id,
        "sku": item.record.sku,
        "qty": fixed(Decimal::ZERO, QTY_SCALE),
        "value": fixed(delta, VALUE_SCALE),
        "date": r.record.date,
        "reference": r.record.reference,
    });
    if let (Some(event), Some(kind)) = (event.as_object_mut(), kind.as_object()) {
        event.extend(kind.clone());
    }
    ctx.emit(STOCK_MOVED, &event)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn a_landed_cost_is_split_to_the_cent_and_sums_to_its_amount() {
        assert_eq!(
            allocate(d("80"), &[d("10"), d("30")]),
            Some(vec![d("20"), d("60")])
        );
        // By value 100 and 600: 11.43 and the 68.57 rounding leaves.
        assert_eq!(
            allocate(d("80"), &[d("100"), d("600")]),
            Some(vec![d("11.43"), d("68.57")])
        );
        let thirds = allocate(d("100"), &[d("1"), d("1"), d("1")]).unwrap();
        assert_eq!(thirds, [d("33.33"), d("33.33"), d("33.34")]);
        assert_eq!(allocate(d("5"), &[Decimal::ZERO]), None);
        // The largest amount over the largest values: no overflow, still the amount.
        let most = d("9999999999999999.99");
        let big = allocate(most, &[d("99999999999999.99"), d("1")]).unwrap();
        assert_eq!(big.iter().sum::<Decimal>(), most);
    }

    #[test]
    fn a_reprice_names_one_receipt_and_a_rate_and_nothing_else() {
        let reprice = NewReceiptCost {
            kind: "reprice".into(),
            receipts: vec!["a".into(), "b".into()],
            amount: Some("5".into()),
            ..NewReceiptCost::default()
        };
        let fields: Vec<String> = check(&reprice)
            .unwrap_err()
            .body
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["receipts", "amount", "rate"]);
        let landed = NewReceiptCost {
            kind: "landed_cost".into(),
            receipts: vec!["a".into()],
            amount: Some("80".into()),
            split_by: Some("value".into()),
            ..NewReceiptCost::default()
        };
        assert_eq!(
            check(&landed).unwrap(),
            Change::Landed {
                amount: d("80"),
                by_value: true
            }
        );
    }
}
