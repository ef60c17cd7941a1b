//! Stock moves, the append-only ledger and balances.
//!
//! A move (receipt, issue, transfer, adjustment) locks the balance row of each
//! (item, location) it touches, in location-id order so two moves never wait on each
//! other in a cycle; computes the new positions with [`crate::valuation`]; writes the
//! move, one ledger line per location and the balances; and emits
//! `inventory.stock_moved`, all in the request's transaction. Moves and ledger lines are
//! never changed or deleted: a mistake is corrected by another move.

use eerp_sdk::decimal::{fixed, parse};
use eerp_sdk::{
    Ctx, DataError, Decimal, Error, ListSpec, LockMode, Page, Reply, Request, Row, Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::{ITEMS, LOCATIONS, hold};
use crate::reservations::{RESERVATIONS, Reservation};
use crate::schema::MOVE_KINDS;
use crate::valuation::{Change, Position, QTY_SCALE, RATE_SCALE, Shortage, VALUE_SCALE};

/// Emitted after every move, with the value that moved: what Accounting posts.
pub const STOCK_MOVED: &str = "inventory.stock_moved";

/// The balances table: one row per (item, location).
pub const BALANCES: Table<Row<Balance>> = Table::new("balances");
/// The moves table.
pub const MOVES: Table<Row<Move>> = Table::new("moves");
/// The ledger table.
pub const LEDGER: Table<Row<LedgerLine>> = Table::new("ledger");

/// Bounds of the columns: a quantity (numeric(18,6)), a rate (numeric(24,10)) and a
/// value (numeric(18,2)) stay below these, so no arithmetic on them can overflow.
const MAX_QTY: i64 = 1_000_000_000_000;
const MAX_RATE: i64 = 100_000_000_000_000;
const MAX_VALUE: i64 = 10_000_000_000_000_000;

/// What one item holds at one location.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Balance {
    /// The item.
    #[schemars(extend("format" = "uuid"))]
    pub item_id: String,
    /// The location.
    #[schemars(extend("format" = "uuid"))]
    pub location_id: String,
    /// On hand.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub on_hand: String,
    /// Reserved.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub reserved: String,
    /// Moving-average rate.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub rate: String,
    /// Stock value.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub value: String,
}

/// A stored move.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Move {
    /// `receipt`, `issue`, `transfer` or `adjustment`.
    pub kind: String,
    /// The item moved.
    #[schemars(extend("format" = "uuid"))]
    pub item_id: String,
    /// Where stock came in, went out or was adjusted; a transfer's source.
    #[schemars(extend("format" = "uuid"))]
    pub location_id: String,
    /// A transfer's destination.
    #[schemars(extend("format" = "uuid"))]
    pub to_location_id: Option<String>,
    /// Quantity; an adjustment's is signed.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub qty: String,
    /// The rate it moved at.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub rate: String,
    /// The value that moved, in cents; an adjustment's is signed.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub value: String,
    /// The reservation an issue consumed.
    #[schemars(extend("format" = "uuid"))]
    pub reservation_id: Option<String>,
    /// Free text: an order or delivery number.
    pub reference: Option<String>,
    /// Posting date.
    #[schemars(extend("format" = "date"))]
    pub date: String,
}

/// One line of the stock ledger.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct LedgerLine {
    /// The move.
    #[schemars(extend("format" = "uuid"))]
    pub move_id: String,
    /// The item.
    #[schemars(extend("format" = "uuid"))]
    pub item_id: String,
    /// The location.
    #[schemars(extend("format" = "uuid"))]
    pub location_id: String,
    /// Quantity in (positive) or out.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub qty_change: String,
    /// Value in or out.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub value_change: String,
    /// The rate it moved at.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub rate: String,
    /// On hand after the line.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub qty_after: String,
    /// Value after the line.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub value_after: String,
    /// Posting date.
    #[schemars(extend("format" = "date"))]
    pub date: String,
}

/// The body of `POST /moves`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMove {
    /// `receipt`, `issue`, `transfer` or `adjustment`.
    pub kind: String,
    /// The item.
    #[schemars(extend("format" = "uuid"))]
    pub item_id: String,
    /// Where stock comes in, goes out, is adjusted; a transfer's source.
    #[schemars(extend("format" = "uuid"))]
    pub location_id: String,
    /// A transfer's destination.
    #[schemars(extend("format" = "uuid"))]
    pub to_location_id: Option<String>,
    /// Quantity, > 0 (an adjustment's is signed and not 0), at most 6 decimals.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub qty: String,
    /// A receipt's rate (required), or a positive adjustment's (default: the current).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub rate: Option<String>,
    /// The reservation an issue consumes.
    #[schemars(extend("format" = "uuid"))]
    pub reservation_id: Option<String>,
    /// Free text.
    pub reference: Option<String>,
    /// Posting date, `YYYY-MM-DD`; default today.
    #[schemars(extend("format" = "date"))]
    pub date: Option<String>,
}

/// A checked move request.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What kind.
    pub kind: Kind,
    /// Quantity (signed for adjustments).
    pub qty: Decimal,
    /// Rate given.
    pub rate: Option<Decimal>,
}

/// Kinds of move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Stock comes in at a rate.
    Receipt,
    /// Stock goes out at the current rate.
    Issue,
    /// Stock and its value move between two locations.
    Transfer,
    /// A count correction, in or out.
    Adjustment,
}

/// Checks a move request's fields.
///
/// # Errors
/// A 422 naming each invalid field.
pub fn plan(new: &NewMove) -> Result<Plan, Error> {
    let mut checks = eerp_sdk::Checks::new();
    let kind = match new.kind.as_str() {
        "receipt" => Some(Kind::Receipt),
        "issue" => Some(Kind::Issue),
        "transfer" => Some(Kind::Transfer),
        "adjustment" => Some(Kind::Adjustment),
        _ => None,
    };
    checks.one_of("kind", Some(new.kind.as_str()), &MOVE_KINDS);
    checks.max_len("reference", new.reference.as_deref(), 200);
    let qty = match parse("qty", &new.qty, QTY_SCALE) {
        Ok(qty) if qty.is_zero() || (qty.is_sign_negative() && kind != Some(Kind::Adjustment)) => {
            checks.problem(
                "qty",
                "must be greater than 0 (only an adjustment may be negative)",
            );
            None
        }
        Ok(qty) if qty.abs() >= Decimal::from(MAX_QTY) => {
            checks.problem("qty", format!("must be less than {MAX_QTY}"));
            None
        }
        Ok(qty) => Some(qty),
        Err(_) => {
            checks.problem("qty", "must be a decimal string with at most 6 decimals");
            None
        }
    };
    let rate = match new.rate.as_deref().map(|r| parse("rate", r, RATE_SCALE)) {
        Some(Ok(rate)) if rate.is_sign_negative() => {
            checks.problem("rate", "must not be negative");
            None
        }
        Some(Ok(rate)) if rate >= Decimal::from(MAX_RATE) => {
            checks.problem("rate", format!("must be less than {MAX_RATE}"));
            None
        }
        Some(Ok(rate)) => Some(rate),
        Some(Err(_)) => {
            checks.problem("rate", "must be a decimal string with at most 10 decimals");
            None
        }
        None => None,
    };
    match kind {
        Some(Kind::Receipt) if new.rate.is_none() => {
            checks.problem("rate", "a receipt needs the rate it comes in at");
        }
        Some(Kind::Transfer) if new.to_location_id.is_none() => {
            checks.problem("to_location_id", "a transfer needs a destination");
        }
        Some(Kind::Transfer) if new.to_location_id.as_ref() == Some(&new.location_id) => {
            checks.problem("to_location_id", "must differ from location_id");
        }
        Some(k) if k != Kind::Transfer && new.to_location_id.is_some() => {
            checks.problem("to_location_id", "only a transfer has a destination");
        }
        Some(k) if k != Kind::Issue && new.reservation_id.is_some() => {
            checks.problem("reservation_id", "only an issue consumes a reservation");
        }
        Some(Kind::Issue | Kind::Transfer) if new.rate.is_some() => {
            checks.problem("rate", "stock goes out at the current rate; leave rate out");
        }
        _ => {}
    }
    checks.date("date", new.date.as_deref());
    checks.finish("move", "invalid_move")?;
    match (kind, qty) {
        (Some(kind), Some(qty)) => Ok(Plan { kind, qty, rate }),
        _ => Err(Error::internal("a checked move lacks its kind or quantity")),
    }
}

impl Balance {
    fn position(&self) -> Result<Position, Error> {
        let read = |field: &str, text: &str| {
            text.parse::<Decimal>().map_err(|_| {
                Error::internal(format!("stored balance {field} `{text}` is not a decimal"))
            })
        };
        Ok(Position {
            on_hand: read("on_hand", &self.on_hand)?,
            reserved: read("reserved", &self.reserved)?,
            rate: read("rate", &self.rate)?,
            value: read("value", &self.value)?,
        })
    }
}

impl Balance {
    /// What `item_id` holds at `location_id` when its position is `p`.
    fn at(item_id: &str, location_id: &str, p: &Position) -> Self {
        Self {
            item_id: item_id.to_string(),
            location_id: location_id.to_string(),
            on_hand: fixed(p.on_hand, QTY_SCALE),
            reserved: fixed(p.reserved, QTY_SCALE),
            rate: fixed(p.rate, RATE_SCALE),
            value: fixed(p.value, VALUE_SCALE),
        }
    }
}

/// Locks the balance of `item_id` at `location_id`, creating an empty one first.
pub fn lock_balance(
    ctx: &mut Ctx,
    item_id: &str,
    location_id: &str,
) -> Result<(Row<Balance>, Position), Error> {
    let key = json!({"item_id": item_id, "location_id": location_id});
    let row = BALANCES.lock_or_insert(ctx, &key, &key, LockMode::Update)?;
    let position = row.record.position()?;
    Ok((row, position))
}

/// Writes `after` to the balance row `row`.
pub fn store_balance(ctx: &mut Ctx, row: &Row<Balance>, after: &Position) -> Result<(), Error> {
    let b = Balance::at(&row.record.item_id, &row.record.location_id, after);
    let values =
        json!({"on_hand": b.on_hand, "reserved": b.reserved, "rate": b.rate, "value": b.value});
    BALANCES.update(ctx, &row.id, &values)?;
    Ok(())
}

/// The 409 for an issue beyond what is available.
pub fn shortage(short: Shortage, qty: Decimal) -> Error {
    Error::conflict(format!(
        "cannot take {} out: {} available ({} on hand, {} reserved)",
        qty.normalize(),
        short.available.normalize(),
        short.on_hand.normalize(),
        short.reserved.normalize()
    ))
    .with_code("insufficient_stock")
}

/// A posted move with the balances it left.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PostedMove {
    /// The stored move.
    #[serde(flatten)]
    pub stored: Row<Move>,
    /// The balance of each location it touched, after it.
    pub balances: Vec<BalanceAfter>,
}

/// A balance as a move left it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BalanceAfter {
    /// The balance.
    #[serde(flatten)]
    pub balance: Balance,
    /// On hand less reserved.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub available: String,
}

/// A balance row with what is available of it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StockLine {
    /// The stored balance.
    #[serde(flatten)]
    pub balance: Row<Balance>,
    /// On hand less reserved.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub available: String,
}

/// Adds the move routes to `module`.
pub fn routes(module: eerp_sdk::Module) -> eerp_sdk::Module {
    module
        .emits(STOCK_MOVED)
        .get("/moves", "inventory.moves.read", list)
        .summary("List stock moves")
        .lists(move_list)
        .returns::<Page<Row<Move>>>()
        .post("/moves", "inventory.moves.create", create)
        .summary("Post a receipt, issue, transfer or adjustment")
        .takes::<NewMove>()
        .creates::<PostedMove>()
        .get("/moves/{id}", "inventory.moves.read", get)
        .summary("Read a stock move")
        .returns::<Row<Move>>()
        .delete("/moves/{id}", "inventory.moves.delete", refuse_delete)
        .summary("Refused (409): moves are never deleted")
        .get("/ledger", "inventory.moves.read", ledger)
        .summary("List stock ledger lines")
        .lists(ledger_list)
        .returns::<Page<Row<LedgerLine>>>()
        .get("/stock", "inventory.stock.read", stock)
        .summary("List balances per item and location")
        .lists(stock_list)
        .returns::<Page<StockLine>>()
}

fn move_list() -> ListSpec {
    ListSpec::new("moves")
        .filter_id("item_id")
        .filter_id("location_id")
        .filter_one_of("kind", &MOVE_KINDS)
        .filter_date("date")
        .sortable(&["date"])
}

fn ledger_list() -> ListSpec {
    ListSpec::new("ledger")
        .filter_id("item_id")
        .filter_id("location_id")
        .filter_id("move_id")
        .sortable(&["date"])
}

fn stock_list() -> ListSpec {
    ListSpec::new("balances")
        .filter_id("item_id")
        .filter_id("location_id")
        .sortable(&["on_hand", "value"])
}

fn list(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(MOVES.list(ctx, move_list().query(req)?)?))
}

fn get(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = MOVES
        .get(ctx, req.path("id")?)
        .map_err(|e| not_found(e, "move"))?;
    Ok(Reply::ok(row))
}

fn refuse_delete(_ctx: &mut Ctx, _req: &Request) -> Result<Reply, Error> {
    Err(Error::conflict(
        "stock moves and their ledger lines are never deleted; correct a move with another \
         one (an adjustment, or the opposite transfer)",
    )
    .with_code("immutable"))
}

fn ledger(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(LEDGER.list(ctx, ledger_list().query(req)?)?))
}

fn stock(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let page = BALANCES.list(ctx, stock_list().query(req)?)?;
    let data = page
        .data
        .into_iter()
        .map(|balance| {
            let available = fixed(balance.record.position()?.available(), QTY_SCALE);
            Ok(StockLine { available, balance })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Reply::ok(Page {
        data,
        next_cursor: page.next_cursor,
    }))
}

fn not_found(err: DataError, what: &str) -> Error {
    if err.kind == eerp_sdk::DataErrorKind::NotFound {
        return Error::not_found(format!("no {what} with that id"));
    }
    err.into()
}

/// One location's side of a move: its locked balance, before and after.
struct Side {
    row: Row<Balance>,
    after: Position,
    change: Change,
}

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let new = req.json::<NewMove>()?;
    let plan = plan(&new)?;
    // Share-locked, so the item and locations cannot be deleted while stock moves.
    let item = hold(ctx, &ITEMS, &new.item_id, "item_id", "item")?;
    let mut locations = vec![("location_id", new.location_id.clone())];
    if let Some(to) = &new.to_location_id {
        locations.push(("to_location_id", to.clone()));
    }
    for (field, id) in &locations {
        hold(ctx, &LOCATIONS, id, field, "location")?;
    }
    let reservation = match &new.reservation_id {
        Some(id) => Some(consume(ctx, id, &new, plan.qty)?),
        None => None,
    };
    // Lock in location-id order, whatever the move's direction.
    let mut order: Vec<&str> = locations.iter().map(|(_, id)| id.as_str()).collect();
    order.sort_unstable();
    let mut locked = Vec::new();
    for location in order {
        locked.push(lock_balance(ctx, &new.item_id, location)?);
    }
    let balance_at = |id: &str| locked.iter().find(|(row, _)| row.record.location_id == id);
    let (source_row, source) = balance_at(&new.location_id)
        .cloned()
        .ok_or_else(|| Error::internal("the source balance was not locked"))?;
    let releasing = reservation.as_ref().map_or(Decimal::ZERO, |(_, q)| *q);
    let mut sides = Vec::new();
    match plan.kind {
        Kind::Receipt => {
            let rate = plan.rate.unwrap_or_default();
            let (after, change) = source.receive(plan.qty, rate);
            sides.push(Side {
                row: source_row,
                after,
                change,
            });
        }
        Kind::Issue => {
            let (after, change) = source
                .issue(plan.qty, releasing)
                .map_err(|s| shortage(s, plan.qty))?;
            sides.push(Side {
                row: source_row,
                after,
                change,
            });
        }
        Kind::Adjustment if plan.qty.is_sign_positive() => {
            let rate = plan.rate.unwrap_or(source.rate);
            let (after, change) = source.receive(plan.qty, rate);
            sides.push(Side {
                row: source_row,
                after,
                change,
            });
        }
        Kind::Adjustment => {
            let qty = plan.qty.abs();
            let (after, change) = source
                .issue(qty, Decimal::ZERO)
                .map_err(|s| shortage(s, qty))?;
            sides.push(Side {
                row: source_row,
                after,
                change,
            });
        }
        Kind::Transfer => {
            let (after, out) = source
                .issue(plan.qty, Decimal::ZERO)
                .map_err(|s| shortage(s, plan.qty))?;
            let to = new.to_location_id.as_deref().unwrap_or_default();
            let (dest_row, dest) = balance_at(to)
                .cloned()
                .ok_or_else(|| Error::internal("the destination balance was not locked"))?;
            let (dest_after, into) = dest.receive_valued(plan.qty, out.rate, -out.value);
            sides.push(Side {
                row: source_row,
                after,
                change: out,
            });
            sides.push(Side {
                row: dest_row,
                after: dest_after,
                change: into,
            });
        }
    }
    let too_large = sides.iter().any(|s| {
        s.change.value.abs() >= Decimal::from(MAX_VALUE)
            || s.after.value >= Decimal::from(MAX_VALUE)
            || s.after.on_hand >= Decimal::from(MAX_QTY)
    });
    if too_large {
        return Err(Error::unprocessable(format!(
            "the move would take a value to {MAX_VALUE} or more, or a location's quantity to \
             {MAX_QTY} or more"
        ))
        .with_code("invalid_move")
        .with_field("qty", "too large to record"));
    }
    let first = sides[0].change;
    let (qty, value) = match plan.kind {
        Kind::Adjustment => (first.qty, first.value),
        _ => (plan.qty, first.value.abs()),
    };
    let mut values = json!({
        "kind": new.kind,
        "item_id": new.item_id,
        "location_id": new.location_id,
        "to_location_id": new.to_location_id,
        "qty": fixed(qty, QTY_SCALE),
        "rate": fixed(first.rate, RATE_SCALE),
        "value": fixed(value, VALUE_SCALE),
        "reservation_id": new.reservation_id,
        "reference": new.reference,
    });
    if let Some(date) = &new.date {
        values["date"] = json!(date);
    }
    let stored = MOVES.insert(ctx, &values)?;
    for side in &sides {
        LEDGER.insert(
            ctx,
            &json!({
                "move_id": stored.id,
                "item_id": new.item_id,
                "location_id": side.row.record.location_id,
                "qty_change": fixed(side.change.qty, QTY_SCALE),
                "value_change": fixed(side.change.value, VALUE_SCALE),
                "rate": fixed(side.change.rate, RATE_SCALE),
                "qty_after": fixed(side.after.on_hand, QTY_SCALE),
                "value_after": fixed(side.after.value, VALUE_SCALE),
                "date": stored.record.date,
            }),
        )?;
        store_balance(ctx, &side.row, &side.after)?;
    }
    ctx.emit(
        STOCK_MOVED,
        &json!({
            "move_id": stored.id,
            "kind": stored.record.kind,
            "item_id": item.id,
            "sku": item.record.sku,
            "qty": stored.record.qty,
            "value": stored.record.value,
            "date": stored.record.date,
            "reference": stored.record.reference,
        }),
    )?;
    let balances = sides
        .iter()
        .map(|s| BalanceAfter {
            balance: Balance::at(&s.row.record.item_id, &s.row.record.location_id, &s.after),
            available: fixed(s.after.available(), QTY_SCALE),
        })
        .collect();
    Ok(Reply::created(PostedMove { stored, balances }))
}

/// Locks the reservation an issue consumes and returns it with the quantity it gives up.
fn consume(
    ctx: &mut Ctx,
    id: &str,
    new: &NewMove,
    qty: Decimal,
) -> Result<(Row<Reservation>, Decimal), Error> {
    let reservation = RESERVATIONS
        .get_for_update(ctx, id)
        .map_err(|_| Error::unknown_reference("reservation_id", "reservation"))?;
    let r = &reservation.record;
    if r.status != "active" {
        return Err(
            Error::conflict(format!("the reservation is {}, not active", r.status))
                .with_code("reservation_closed"),
        );
    }
    if r.item_id != new.item_id || r.location_id != new.location_id {
        return Err(Error::unprocessable(
            "the reservation is for another item or location than this issue",
        )
        .with_field("reservation_id", "reserves another item or location"));
    }
    let remaining: Decimal = r.remaining.parse().unwrap_or_default();
    let used = qty.min(remaining);
    let left = remaining - used;
    RESERVATIONS.update(
        ctx,
        id,
        &json!({
            "remaining": fixed(left, QTY_SCALE),
            "status": if left.is_zero() { "consumed" } else { "active" },
        }),
    )?;
    Ok((reservation, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: &str, qty: &str) -> NewMove {
        NewMove {
            kind: kind.into(),
            item_id: "i".into(),
            location_id: "a".into(),
            qty: qty.into(),
            ..NewMove::default()
        }
    }

    fn fields(err: Error) -> Vec<String> {
        err.body.errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_receipt_needs_a_rate_and_a_positive_quantity() {
        assert_eq!(fields(plan(&new("receipt", "5")).unwrap_err()), ["rate"]);
        let mut receipt = new("receipt", "0");
        receipt.rate = Some("-1".into());
        assert_eq!(fields(plan(&receipt).unwrap_err()), ["qty", "rate"]);
        receipt.qty = "2.5".into();
        receipt.rate = Some("10.25".into());
        let ok = plan(&receipt).unwrap();
        assert_eq!((ok.kind, ok.qty.to_string()), (Kind::Receipt, "2.5".into()));
    }

    #[test]
    fn only_adjustments_go_negative_and_only_transfers_have_a_destination() {
        assert_eq!(fields(plan(&new("issue", "-1")).unwrap_err()), ["qty"]);
        assert_eq!(
            plan(&new("adjustment", "-1")).unwrap().qty.to_string(),
            "-1"
        );
        let mut issue = new("issue", "1");
        issue.to_location_id = Some("b".into());
        assert_eq!(fields(plan(&issue).unwrap_err()), ["to_location_id"]);
        let mut transfer = new("transfer", "1");
        transfer.to_location_id = Some("a".into());
        assert_eq!(fields(plan(&transfer).unwrap_err()), ["to_location_id"]);
        assert_eq!(fields(plan(&new("teleport", "1")).unwrap_err()), ["kind"]);
    }
}
