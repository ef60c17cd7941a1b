//! Stock moves, the ledger and balances.
//!
//! A move (receipt, issue, transfer, adjustment) locks its item, so the moves of one item
//! run one at a time and its ledger has one posting order, then the balance row of each
//! (item, location) it touches; computes the new positions at its date with
//! [`crate::valuation`] (a back-dated move values the later ones again: [`crate::history`]);
//! writes the move, one ledger line per location and the balances; and emits
//! `inventory.stock_moved`, all in the request's transaction. Moves and ledger lines are
//! never deleted, and their quantities, rates and dates never change: a mistake is
//! corrected by another move.

use std::collections::BTreeMap;

use eerp_sdk::decimal::{fixed, parse};
use eerp_sdk::{
    Ctx, DataError, Decimal, Error, ListSpec, LockMode, Page, Reply, Request, Row, Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::{Item, LOCATIONS, hold};
use crate::history;
use crate::reservations::RESERVATIONS;
use crate::schema::MOVE_KINDS;
use crate::units;
use crate::valuation::{Change, Layer, Position, QTY_SCALE, RATE_SCALE, Shortage, VALUE_SCALE};

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
pub const MAX_QTY: i64 = 1_000_000_000_000;
const MAX_RATE: i64 = 100_000_000_000_000;
pub const MAX_VALUE: i64 = 10_000_000_000_000_000;

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
    /// FIFO layers on hand, oldest first (FIFO items only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<StoredLayer>>,
}

/// A FIFO layer as stored and shown: what is left of one receipt, at its rate.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct StoredLayer {
    /// Quantity left.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub qty: String,
    /// The rate it came in at.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub rate: String,
}

impl StoredLayer {
    /// The layers of `p`, to store (`None` under moving average).
    pub fn of(p: &Position) -> Option<Vec<StoredLayer>> {
        let layers = p.layers.as_ref()?;
        Some(
            layers
                .iter()
                .map(|l| StoredLayer {
                    qty: fixed(l.qty, QTY_SCALE),
                    rate: fixed(l.rate, RATE_SCALE),
                })
                .collect(),
        )
    }

    /// Reads stored layers back; `fifo` says whether the item has any.
    ///
    /// # Errors
    /// A stored figure that is not a decimal.
    pub fn read(stored: Option<&[StoredLayer]>, fifo: bool) -> Result<Option<Vec<Layer>>, Error> {
        if !fifo {
            return Ok(None);
        }
        stored
            .unwrap_or_default()
            .iter()
            .map(|l| {
                Ok(Layer {
                    qty: history::read("layer qty", &l.qty)?,
                    rate: history::read("layer rate", &l.rate)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()
            .map(Some)
    }
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
    /// A stock count's counted quantity (the adjustment is the difference).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub counted: Option<String>,
    /// The rate a stock count's surplus comes in at, when the count named one.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub count_rate: Option<String>,
    /// The unit the move was posted in, when not the item's stock unit (`qty` and
    /// `rate` are in the stock unit).
    pub uom: Option<String>,
    /// The quantity in that unit.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub uom_qty: Option<String>,
    /// What landed costs added to a receipt's value (`/receipt-costs`).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub landed: Option<String>,
    /// The move this one cancels (its exact opposite, on the same date).
    #[schemars(extend("format" = "uuid"))]
    pub reverses: Option<String>,
    /// The move that cancelled this one.
    #[schemars(extend("format" = "uuid"))]
    pub cancelled_by: Option<String>,
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
    /// The item's posting sequence: its ledger ordered by `seq` replays every running
    /// balance. Lines are ordered by date, then by when they were posted.
    pub seq: Option<i64>,
    /// Rate after the line (moving average; under FIFO, value per unit).
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub rate_after: Option<String>,
    /// FIFO layers left at the location after the line (FIFO items only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<StoredLayer>>,
    /// A line of a cancelled move or of its cancellation: the pair leaves every
    /// position as it was before them, and a cancelled move's line keeps the figures it
    /// was posted with.
    pub cancelled: Option<bool>,
}

impl Move {
    /// What landed costs added to this receipt's value (0 for none).
    ///
    /// # Errors
    /// When the stored figure is not a decimal.
    pub fn landed(&self) -> Result<Decimal, Error> {
        self.landed
            .as_deref()
            .map_or(Ok(Decimal::ZERO), |l| history::read("landed", l))
    }
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
    /// The unit `qty` and `rate` are in: the item's stock unit (the default) or one of
    /// its units (`GET /units?item_id=`).
    pub uom: Option<String>,
}

/// A checked move request.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What kind.
    pub kind: Kind,
    /// Quantity (signed for adjustments), in the stock unit.
    pub qty: Decimal,
    /// Rate given, per stock unit.
    pub rate: Option<Decimal>,
    /// The value coming in, when computed in another unit than the stock unit.
    pub value: Option<Decimal>,
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
    /// A stock count: sets what is on hand, stored as the adjustment of the difference.
    Count,
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
    if let Some(uom) = &new.uom {
        checks.text("uom", uom, 1, 16);
    }
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
    let rate = check_rate(&mut checks, new.rate.as_deref());
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
        (Some(kind), Some(qty)) => Ok(Plan {
            kind,
            qty,
            rate,
            value: None,
        }),
        _ => Err(Error::internal("a checked move lacks its kind or quantity")),
    }
}

/// Checks an optional `rate`: a decimal of at most 10 decimals, from 0 to below
/// [`MAX_RATE`].
pub fn check_rate(checks: &mut eerp_sdk::Checks, rate: Option<&str>) -> Option<Decimal> {
    match rate.map(|r| parse("rate", r, RATE_SCALE)) {
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
    }
}

impl Balance {
    /// Its position; `fifo` says whether its item is valued FIFO.
    fn position(&self, fifo: bool) -> Result<Position, Error> {
        let read = |field: &str, text: &str| history::read(&format!("balance {field}"), text);
        Ok(Position {
            on_hand: read("on_hand", &self.on_hand)?,
            reserved: read("reserved", &self.reserved)?,
            rate: read("rate", &self.rate)?,
            value: read("value", &self.value)?,
            layers: StoredLayer::read(self.layers.as_deref(), fifo)?,
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
            layers: StoredLayer::of(p),
        }
    }
}

/// Locks the balance of `item_id` at `location_id`, creating an empty one first. With
/// `fifo` false its position has no layers, and storing it leaves them as they are.
pub fn lock_balance(
    ctx: &mut Ctx,
    item_id: &str,
    location_id: &str,
    fifo: bool,
) -> Result<(Row<Balance>, Position), Error> {
    let key = json!({"item_id": item_id, "location_id": location_id});
    let row = BALANCES.lock_or_insert(ctx, &key, &key, LockMode::Update)?;
    let position = row.record.position(fifo)?;
    Ok((row, position))
}

/// Writes `after` to the balance row `row` (its layers only when it has some).
pub fn store_balance(ctx: &mut Ctx, row: &Row<Balance>, after: &Position) -> Result<(), Error> {
    let b = Balance::at(&row.record.item_id, &row.record.location_id, after);
    let mut values =
        json!({"on_hand": b.on_hand, "reserved": b.reserved, "rate": b.rate, "value": b.value});
    if let Some(layers) = b.layers {
        values["layers"] = json!(layers);
    }
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
        .post("/moves/{id}/cancel", "inventory.moves.create", cancel)
        .summary("Cancel a move: its exact opposite, on the same date, and the reversing entry")
        .creates::<PostedMove>()
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
        .sortable(&["date", "seq"])
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
        "stock moves and their ledger lines are never deleted; cancel the move instead \
         (POST /moves/{id}/cancel), which posts its exact opposite",
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
            let available = fixed(balance.record.position(false)?.available(), QTY_SCALE);
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

/// One location's side of a move: the change and the position it leaves.
struct Side {
    location: String,
    after: Position,
    change: Change,
}

/// The sides of the move `plan` given the positions `before` it; `releasing` is what its
/// reservation gives up.
fn sides(
    plan: &Plan,
    new: &NewMove,
    before: &BTreeMap<String, Position>,
    releasing: Decimal,
) -> Result<Vec<Side>, Error> {
    let position = |id: &str| before.get(id).cloned().unwrap_or_default();
    let source = position(&new.location_id);
    let side = |(after, change): (Position, Change)| Side {
        location: new.location_id.clone(),
        after,
        change,
    };
    let out = |qty: Decimal, releasing: Decimal| {
        source.issue(qty, releasing).map_err(|s| shortage(s, qty))
    };
    let receive = |rate: Decimal| match plan.value {
        Some(value) => source.receive_valued(plan.qty, rate, value),
        None => source.receive(plan.qty, rate),
    };
    Ok(match plan.kind {
        Kind::Receipt => vec![side(receive(plan.rate.unwrap_or_default()))],
        Kind::Issue => vec![side(out(plan.qty, releasing)?)],
        Kind::Adjustment if plan.qty.is_sign_positive() => {
            vec![side(receive(plan.rate.unwrap_or(source.rate)))]
        }
        Kind::Adjustment => vec![side(out(plan.qty.abs(), Decimal::ZERO)?)],
        Kind::Count => vec![side(
            source
                .count(plan.qty, plan.rate)
                .map_err(|s| shortage(s, source.on_hand - plan.qty))?,
        )],
        Kind::Transfer => {
            let (after, taken) = out(plan.qty, Decimal::ZERO)?;
            let to = new.to_location_id.clone().unwrap_or_default();
            let (to_after, brought) =
                position(&to).receive_valued(plan.qty, taken.rate, -taken.value);
            vec![
                side((after, taken)),
                Side {
                    location: to,
                    after: to_after,
                    change: brought,
                },
            ]
        }
    })
}

/// Locks the item for the whole move: every move of an item waits for the one before
/// it, whatever its locations, so the item's ledger has one posting order (`seq`).
pub(crate) fn lock_item(ctx: &mut Ctx, id: &str) -> Result<(Row<Item>, history::End), Error> {
    /// The item row as a move reads it: the item and where its ledger ends.
    #[derive(Deserialize)]
    struct Locked {
        #[serde(flatten)]
        item: Item,
        #[serde(flatten)]
        end: history::End,
    }
    let row: Row<Locked> = Table::new("items")
        .lock_by(ctx, &json!({ "id": id }), LockMode::Update)
        .map_err(|e| match e.kind {
            eerp_sdk::DataErrorKind::NotFound | eerp_sdk::DataErrorKind::Invalid => {
                Error::unknown_reference("item_id", "item")
            }
            _ => e.into(),
        })?;
    let Row {
        id,
        record: Locked { item, end },
        created_at,
        updated_at,
        deleted_at,
    } = row;
    let item = Row {
        id,
        record: item,
        created_at,
        updated_at,
        deleted_at,
    };
    Ok((item, end))
}

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let new = req.json::<NewMove>()?;
    let plan = plan(&new)?;
    post(ctx, &new, &plan)
}

/// Posts the checked move `new` (planned as `plan`) at its date.
///
/// # Errors
/// Unknown references (422), a shortage at its date or on a later line (409), and
/// whatever a subscriber to `inventory.stock_moved` refuses (a closed period).
pub fn post(ctx: &mut Ctx, new: &NewMove, plan: &Plan) -> Result<Reply, Error> {
    let (item, end) = lock_item(ctx, &new.item_id)?;
    let plan = &match &new.uom {
        Some(uom) => units::convert(ctx, &item, uom, plan.clone())?,
        None => plan.clone(),
    };
    let fifo = item.record.is_fifo();
    // Share-locked, so the locations cannot be deleted while stock moves.
    let mut locations = vec![("location_id", new.location_id.clone())];
    if let Some(to) = &new.to_location_id {
        locations.push(("to_location_id", to.clone()));
    }
    for (field, id) in &locations {
        hold(ctx, &LOCATIONS, id, field, "location")?;
    }
    let releasing = match &new.reservation_id {
        Some(id) => consume(ctx, id, new, plan.qty)?,
        None => Decimal::ZERO,
    };
    let mut balances = BTreeMap::new();
    for (_, location) in &locations {
        let (row, position) = lock_balance(ctx, &new.item_id, location, fifo)?;
        balances.insert(location.clone(), (row, position));
    }
    // Stored first for its date (the database's today when the request names none);
    // its rate and value follow once they are known.
    let stored = MOVES.insert(ctx, &move_values(new, plan))?;
    let date = stored.record.date.clone();
    let end = end.resolve(ctx, &item.id)?;
    let slot = history::slot(ctx, &item.id, &date, &end)?;
    let mut before = BTreeMap::new();
    for (location, (_, now)) in &balances {
        let position = if slot.is_back_dated() {
            history::position_at(ctx, &new.item_id, location, slot.after_seq, fifo)?
        } else {
            now.clone()
        };
        before.insert(location.clone(), position);
    }
    // A back-dated issue takes from what was on hand at its date; what is reserved
    // today is checked against what is left at the end.
    let at_date = if slot.is_back_dated() {
        Decimal::ZERO
    } else {
        releasing
    };
    let sides = sides(plan, new, &before, at_date).map_err(|e| at(e, &slot, &date))?;
    refuse_too_large(&sides)?;
    let mut positions = write_lines(ctx, &stored, &sides, slot.after_seq)?;
    if slot.is_back_dated() {
        let cause = Cause {
            id: &stored.id,
            what: &format!("a move dated {date}"),
            adjusted: &BTreeMap::new(),
        };
        repost(ctx, &item, &cause, &slot, sides.len(), &mut positions)?;
    }
    let mut left = Vec::new();
    for (location, after) in &positions {
        let releasing = if *location == new.location_id {
            releasing
        } else {
            Decimal::ZERO
        };
        left.push(store_final(
            ctx,
            &new.item_id,
            location,
            after,
            releasing,
            &mut balances,
        )?);
    }
    end.after(sides.len(), &date).keep(ctx, &item.id)?;
    let first = sides[0].change;
    let (qty, value) = match plan.kind {
        Kind::Adjustment | Kind::Count => (first.qty, first.value),
        _ => (plan.qty, first.value.abs()),
    };
    let stored = MOVES.update(
        ctx,
        &stored.id,
        &json!({
            "qty": fixed(qty, QTY_SCALE),
            "rate": fixed(first.rate, RATE_SCALE),
            "value": fixed(value, VALUE_SCALE),
        }),
    )?;
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
        .filter_map(|s| {
            left.iter()
                .find(|b| b.balance.location_id == s.location)
                .cloned()
        })
        .collect();
    Ok(Reply::created(PostedMove { stored, balances }))
}

/// The move row of `new` as first stored: its rate and value are written once known.
fn move_values(new: &NewMove, plan: &Plan) -> serde_json::Value {
    let mut values = json!({
        "kind": new.kind,
        "item_id": new.item_id,
        "location_id": new.location_id,
        "to_location_id": new.to_location_id,
        "qty": fixed(plan.qty, QTY_SCALE),
        "rate": "0",
        "value": "0",
        "reservation_id": new.reservation_id,
        "reference": new.reference,
        "date": new.date,
    });
    if plan.value.is_some() || new.uom.is_some() {
        values["uom"] = json!(new.uom);
        values["uom_qty"] = json!(new.qty);
    }
    if plan.kind == Kind::Count {
        values["counted"] = json!(fixed(plan.qty, QTY_SCALE));
        values["count_rate"] = json!(plan.rate.map(|r| fixed(r, RATE_SCALE)));
    }
    values
}

/// Writes the ledger lines of `stored`'s `sides` from `seq + 1` on; returns each
/// location's position after them.
fn write_lines(
    ctx: &mut Ctx,
    stored: &Row<Move>,
    sides: &[Side],
    mut seq: i64,
) -> Result<BTreeMap<String, Position>, Error> {
    let mut positions = BTreeMap::new();
    for side in sides {
        seq += 1;
        let mut line = history::line_values(seq, &side.change, &side.after);
        line["move_id"] = json!(stored.id);
        line["item_id"] = json!(stored.record.item_id);
        line["location_id"] = json!(side.location);
        line["date"] = json!(stored.record.date);
        LEDGER.insert(ctx, &line)?;
        positions.insert(side.location.clone(), side.after.clone());
    }
    Ok(positions)
}

/// A shortage at a back-dated move's own date says so.
fn at(err: Error, slot: &history::Slot, date: &str) -> Error {
    if !slot.is_back_dated() {
        return err;
    }
    let detail = format!("{} on {date}, the move's date", err.body.detail);
    Error::conflict(detail).with_code("insufficient_stock")
}

fn refuse_too_large(sides: &[Side]) -> Result<(), Error> {
    let too_large = sides.iter().any(|s| {
        s.change.value.abs() >= Decimal::from(MAX_VALUE)
            || s.after.value >= Decimal::from(MAX_VALUE)
            || s.after.on_hand >= Decimal::from(MAX_QTY)
    });
    if !too_large {
        return Ok(());
    }
    Err(Error::unprocessable(format!(
        "the move would take a value to {MAX_VALUE} or more, or a location's quantity to \
         {MAX_QTY} or more"
    ))
    .with_code("invalid_move")
    .with_field("qty", "too large to record"))
}

/// Writes a location's position after the move (and any lines it valued again) to its
/// balance, which keeps what is reserved there less what this move released; refuses
/// when less would be on hand than stays reserved.
pub(crate) fn store_final(
    ctx: &mut Ctx,
    item_id: &str,
    location: &str,
    after: &Position,
    releasing: Decimal,
    balances: &mut BTreeMap<String, (Row<Balance>, Position)>,
) -> Result<BalanceAfter, Error> {
    if !balances.contains_key(location) {
        let locked = lock_balance(ctx, item_id, location, after.layers.is_some())?;
        balances.insert(location.to_string(), locked);
    }
    let (row, now) = &balances[location];
    let reserved = now.reserved - releasing;
    if after.on_hand < reserved {
        return Err(shortage(
            Shortage {
                available: (now.available() + releasing).max(Decimal::ZERO),
                on_hand: now.on_hand,
                reserved,
            },
            now.on_hand - after.on_hand,
        ));
    }
    let after = Position {
        reserved,
        ..after.clone()
    };
    store_balance(ctx, row, &after)?;
    Ok(BalanceAfter {
        balance: Balance::at(item_id, location, &after),
        available: fixed(after.available(), QTY_SCALE),
    })
}

/// What values an item's later lines again: its id (a move, a cost change), words for
/// a refusal ("a move dated 2026-12-05"), and the receipts whose value it changes, by
/// move id.
pub(crate) struct Cause<'a> {
    pub id: &'a str,
    pub what: &'a str,
    pub adjusted: &'a BTreeMap<String, Decimal>,
}

/// Values the lines of `slot` again (moving them up by `inserted`, after a back-dated
/// move), each receipt `cause` adjusts with its new value, and posts the difference of
/// every later move whose value changed.
pub(crate) fn repost(
    ctx: &mut Ctx,
    item: &Row<Item>,
    cause: &Cause,
    slot: &history::Slot,
    inserted: usize,
    positions: &mut BTreeMap<String, Position>,
) -> Result<(), Error> {
    let moves = history::moves_of(ctx, &slot.later)?;
    let mut lines = Vec::with_capacity(slot.later.len());
    for line in &slot.later {
        let m = moves
            .get(&line.record.move_id)
            .ok_or_else(|| Error::internal("a ledger line's move is missing"))?;
        let mut posted = history::posted(&m.record, line)?;
        if let Some(delta) = cause.adjusted.get(&line.record.move_id) {
            posted.value += delta;
            posted.rate = eerp_sdk::decimal::round(posted.value / posted.qty, RATE_SCALE);
        }
        lines.push(posted);
        let location = &line.record.location_id;
        if !positions.contains_key(location) {
            let fifo = item.record.is_fifo();
            let at = history::position_at(ctx, &item.id, location, slot.after_seq, fifo)?;
            positions.insert(location.clone(), at);
        }
    }
    let replayed = history::replay(positions, &lines).map_err(|broken| {
        let line = &slot.later[broken.index];
        let kind = moves
            .get(&line.record.move_id)
            .map_or("move", |m| m.record.kind.as_str());
        Error::conflict(format!(
            "{} would leave {} on hand at location {} before the {kind} {} dated {}, which \
             takes {}; date it after that move, or correct that one first",
            cause.what,
            broken.on_hand.normalize(),
            line.record.location_id,
            line.record.move_id,
            line.record.date,
            lines[broken.index].qty.abs().normalize(),
        ))
        .with_code("breaks_later_move")
    })?;
    let shift = i64::try_from(inserted).unwrap_or(i64::MAX);
    // Per later move: the change in its value, and a count's new difference.
    let mut revalued: BTreeMap<&str, (Decimal, Option<Decimal>)> = BTreeMap::new();
    for ((line, posted), again) in slot.later.iter().zip(&lines).zip(&replayed) {
        let seq = line.record.seq.unwrap_or_default() + shift;
        if posted.flow == history::Flow::Cancelled {
            LEDGER.update(ctx, &line.id, &json!({"seq": seq}))?;
            continue;
        }
        LEDGER.update(
            ctx,
            &line.id,
            &history::line_values(seq, &again.change, &again.after),
        )?;
        let delta = again.change.value - posted.value;
        let entry = revalued.entry(line.record.move_id.as_str());
        match posted.flow {
            history::Flow::Out if !delta.is_zero() => entry.or_default().0 += delta,
            history::Flow::Count { .. } if again.change.qty != posted.qty || !delta.is_zero() => {
                *entry.or_default() = (delta, Some(again.change.qty));
            }
            _ => {}
        }
    }
    for (move_id, (delta, qty)) in revalued {
        let Some(m) = moves.get(move_id) else {
            continue;
        };
        revalue(ctx, item, cause, m, delta, qty)?;
    }
    Ok(())
}

/// Changes the value of move `m` by `delta` (signed like its ledger line: more out is
/// negative), and a count's difference to `qty`, and tells Accounting.
fn revalue(
    ctx: &mut Ctx,
    item: &Row<Item>,
    cause: &Cause,
    m: &Row<Move>,
    delta: Decimal,
    qty: Option<Decimal>,
) -> Result<(), Error> {
    let stored = history::read("value", &m.record.value)?;
    // An adjustment's value is signed; an issue's and a transfer's are what left.
    let value = if m.record.kind == "adjustment" {
        stored + delta
    } else {
        stored - delta
    };
    let mut values = json!({"value": fixed(value, VALUE_SCALE)});
    if let Some(qty) = qty {
        values["qty"] = json!(fixed(qty, QTY_SCALE));
    }
    MOVES.update(ctx, &m.id, &values)?;
    // A count whose difference changed is told even at no value: a closed period
    // refuses it.
    if delta.is_zero() && qty.is_none() {
        return Ok(());
    }
    ctx.emit(
        STOCK_MOVED,
        &json!({
            "move_id": m.id,
            "kind": "revaluation",
            "of_kind": m.record.kind,
            "caused_by": cause.id,
            "item_id": item.id,
            "sku": item.record.sku,
            "qty": "0",
            "value": fixed(delta, VALUE_SCALE),
            "date": m.record.date,
            "reference": m.record.reference,
        }),
    )?;
    Ok(())
}

/// `POST /moves/{id}/cancel`: posts the move's exact opposite right after it, on its
/// date, so every location is as it was before the move; the item's later lines are
/// then valued again, as after a back-dated move. A reservation the move consumed stays
/// consumed.
fn cancel(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let found = MOVES.get(ctx, id).map_err(|e| not_found(e, "move"))?;
    let (item, end) = lock_item(ctx, &found.record.item_id)?;
    let m = MOVES
        .get_for_update(ctx, id)
        .map_err(|e| not_found(e, "move"))?;
    if let Some(by) = &m.record.cancelled_by {
        return Err(
            Error::conflict(format!("the move was already cancelled by move {by}"))
                .with_code("already_cancelled"),
        );
    }
    if m.record.reverses.is_some() {
        return Err(Error::conflict(
            "this move is a cancellation; post the original move again instead",
        )
        .with_code("is_cancellation"));
    }
    let end = end.resolve(ctx, &item.id)?;
    let lines = LEDGER.list(
        ctx,
        eerp_sdk::ListQuery {
            filter: vec![eerp_sdk::Filter::eq("move_id", id)],
            order: Some(eerp_sdk::Order {
                column: "seq".into(),
                desc: false,
            }),
            ..eerp_sdk::ListQuery::default()
        },
    )?;
    let seqs: Vec<i64> = lines.data.iter().filter_map(|l| l.record.seq).collect();
    let (Some(first), Some(last)) = (seqs.iter().min(), seqs.iter().max()) else {
        return Err(Error::internal("the move has no ledger lines"));
    };
    let fifo = item.record.is_fifo();
    let what = format!("cancelling the move of {}", m.record.date);
    let later = history::lines_after(ctx, &item.id, *last, &what)?;
    let mut values = json!({
        "kind": m.record.kind,
        "item_id": m.record.item_id,
        "location_id": m.record.location_id,
        "to_location_id": m.record.to_location_id,
        "qty": m.record.qty,
        "rate": m.record.rate,
        "value": m.record.value,
        "reference": m.record.reference,
        "date": m.record.date,
        "reverses": m.id,
    });
    if let Some(counted) = &m.record.counted {
        values["counted"] = json!(counted);
    }
    let stored = MOVES.insert(ctx, &values)?;
    let mut positions = BTreeMap::new();
    let mut seq = *last;
    for line in &lines.data {
        let l = &line.record;
        let was = history::position_at(ctx, &item.id, &l.location_id, first - 1, fifo)?;
        let change = Change {
            qty: -history::read("qty_change", &l.qty_change)?,
            value: -history::read("value_change", &l.value_change)?,
            rate: history::read("rate", &l.rate)?,
        };
        seq += 1;
        let mut values = history::line_values(seq, &change, &was);
        values["move_id"] = json!(stored.id);
        values["item_id"] = json!(item.id);
        values["location_id"] = json!(l.location_id);
        values["date"] = json!(l.date);
        values["cancelled"] = json!(true);
        LEDGER.insert(ctx, &values)?;
        LEDGER.update(ctx, &line.id, &json!({"cancelled": true}))?;
        positions.insert(l.location_id.clone(), was);
    }
    let cause = Cause {
        id: &stored.id,
        what: &what,
        adjusted: &BTreeMap::new(),
    };
    let slot = history::Slot {
        after_seq: *last,
        later,
    };
    repost(ctx, &item, &cause, &slot, lines.data.len(), &mut positions)?;
    end.after(lines.data.len(), &m.record.date)
        .keep(ctx, &item.id)?;
    let mut balances = BTreeMap::new();
    let mut left = Vec::new();
    for (location, after) in &positions {
        left.push(store_final(
            ctx,
            &item.id,
            location,
            after,
            Decimal::ZERO,
            &mut balances,
        )?);
    }
    MOVES.update(ctx, &m.id, &json!({"cancelled_by": stored.id}))?;
    // A receipt's landed costs go back where they came from, the rest as it was posted.
    let landed = m.record.landed()?;
    let value = history::read("value", &m.record.value)? - landed;
    let event = |kind: &str, value: Decimal| {
        json!({
            "move_id": stored.id,
            "kind": kind,
            "of_kind": m.record.kind,
            "item_id": item.id,
            "sku": item.record.sku,
            "qty": stored.record.qty,
            "value": fixed(value, VALUE_SCALE),
            "date": stored.record.date,
            "reference": stored.record.reference,
        })
    };
    ctx.emit(STOCK_MOVED, &event("cancellation", value))?;
    if !landed.is_zero() {
        let mut undone = event("landed_cost", -landed);
        undone["caused_by"] = json!(m.id);
        ctx.emit(STOCK_MOVED, &undone)?;
    }
    let touched: Vec<&str> = lines
        .data
        .iter()
        .map(|l| l.record.location_id.as_str())
        .collect();
    let balances = left
        .into_iter()
        .filter(|b| touched.contains(&b.balance.location_id.as_str()))
        .collect();
    Ok(Reply::created(PostedMove { stored, balances }))
}

/// Locks the reservation an issue consumes and returns the quantity it gives up.
fn consume(ctx: &mut Ctx, id: &str, new: &NewMove, qty: Decimal) -> Result<Decimal, Error> {
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
    let remaining = history::read("remaining", &r.remaining)?;
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
    Ok(used)
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
