//! Reservations: stock set aside for a later issue. Reserving locks the balance like a
//! move does, so reserved never exceeds on hand; an issue naming the reservation
//! consumes it, and releasing gives the rest back.

use eerp_sdk::decimal::{fixed, parse};
use eerp_sdk::{Checks, Ctx, Error, ListSpec, Module, Page, Reply, Request, Row, Table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::{ITEMS, LOCATIONS, hold};
use crate::moves::{lock_balance, shortage, store_balance};
use crate::schema::RESERVATION_STATES;
use crate::valuation::QTY_SCALE;

/// The reservations table.
pub const RESERVATIONS: Table<Row<Reservation>> = Table::new("reservations");

/// A stored reservation.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Reservation {
    /// The item.
    #[schemars(extend("format" = "uuid"))]
    pub item_id: String,
    /// Where the stock is.
    #[schemars(extend("format" = "uuid"))]
    pub location_id: String,
    /// Quantity reserved.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub qty: String,
    /// Quantity not yet issued or released.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub remaining: String,
    /// `active`, `released` or `consumed`.
    pub status: String,
    /// Free text: the order it is for.
    pub reference: Option<String>,
}

/// The body of `POST /reservations`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewReservation {
    /// The item.
    #[schemars(extend("format" = "uuid"))]
    item_id: String,
    /// Where the stock is.
    #[schemars(extend("format" = "uuid"))]
    location_id: String,
    /// Quantity, > 0, at most 6 decimals; at most what is available.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    qty: String,
    /// Free text: the order it is for.
    reference: Option<String>,
}

/// Adds the reservation routes to `module`.
pub fn routes(module: Module) -> Module {
    module
        .get("/reservations", "inventory.reservations.read", list)
        .summary("List reservations")
        .lists(reservation_list)
        .returns::<Page<Row<Reservation>>>()
        .post("/reservations", "inventory.reservations.create", create)
        .summary("Reserve stock for a later issue")
        .takes::<NewReservation>()
        .creates::<Row<Reservation>>()
        .get("/reservations/{id}", "inventory.reservations.read", get)
        .summary("Read a reservation")
        .returns::<Row<Reservation>>()
        .post(
            "/reservations/{id}/release",
            "inventory.reservations.update",
            release,
        )
        .summary("Give back what an active reservation still holds")
        .returns::<Row<Reservation>>()
}

fn reservation_list() -> ListSpec {
    ListSpec::new("reservations")
        .filter_id("item_id")
        .filter_id("location_id")
        .filter_one_of("status", &RESERVATION_STATES)
}

fn list(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    Ok(Reply::ok(
        RESERVATIONS.list(ctx, reservation_list().query(req)?)?,
    ))
}

fn get(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let row = RESERVATIONS
        .get(ctx, req.path("id")?)
        .map_err(|_| Error::not_found("no reservation with that id"))?;
    Ok(Reply::ok(row))
}

fn create(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let new = req.json::<NewReservation>()?;
    let mut checks = Checks::new();
    checks.max_len("reference", new.reference.as_deref(), 200);
    let qty = match parse("qty", &new.qty, QTY_SCALE) {
        Ok(qty) if qty.is_sign_positive() && !qty.is_zero() => Some(qty),
        _ => {
            checks.problem(
                "qty",
                "must be a decimal greater than 0, at most 6 decimals",
            );
            None
        }
    };
    checks.finish("reservation", "invalid_reservation")?;
    let qty = qty.unwrap_or_default();
    hold(ctx, &ITEMS, &new.item_id, "item_id", "item")?;
    hold(ctx, &LOCATIONS, &new.location_id, "location_id", "location")?;
    let (balance, position) = lock_balance(ctx, &new.item_id, &new.location_id, false)?;
    let after = position.reserve(qty).map_err(|s| shortage(s, qty))?;
    store_balance(ctx, &balance, &after)?;
    let row = RESERVATIONS.insert(
        ctx,
        &json!({
            "item_id": new.item_id,
            "location_id": new.location_id,
            "qty": fixed(qty, QTY_SCALE),
            "remaining": fixed(qty, QTY_SCALE),
            "reference": new.reference,
        }),
    )?;
    Ok(Reply::created(row))
}

fn release(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let reservation = RESERVATIONS
        .get_for_update(ctx, id)
        .map_err(|_| Error::not_found("no reservation with that id"))?;
    let r = &reservation.record;
    if r.status != "active" {
        return Err(
            Error::conflict(format!("the reservation is already {}", r.status))
                .with_code("reservation_closed"),
        );
    }
    let remaining = crate::history::read("remaining", &r.remaining)?;
    let (balance, position) = lock_balance(ctx, &r.item_id, &r.location_id, false)?;
    store_balance(ctx, &balance, &position.release(remaining))?;
    let row = RESERVATIONS.update(
        ctx,
        id,
        &json!({"status": "released", "remaining": fixed(Default::default(), QTY_SCALE)}),
    )?;
    Ok(Reply::ok(row))
}
