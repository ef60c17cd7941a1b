//! What stock is kept of and where: items, warehouses and their locations, each a
//! [`Resource`] with soft delete and restore. An item or location that still holds stock
//! cannot be deleted.

use eerp_sdk::{Aggregate, Decimal};
use eerp_sdk::{
    AggregateFn, AggregateQuery, Checks, Ctx, Error, Filter, FilterOp, ListSpec, Resource, Row,
    Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::moves::{BALANCES, LEDGER};
use crate::schema::VALUATION_METHODS;

/// An item: something stock is kept of.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Item {
    /// Stock-keeping unit, unique among live items; 1..=64 characters.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit of measure quantities are counted in (`unit`, `kg`, `m`); default `unit`.
    pub uom: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// How its stock is valued: `moving_average` (the default) or `fifo`. Fixed once the
    /// item has moved.
    pub valuation: Option<String>,
}

impl Item {
    /// Whether its stock is valued first in, first out.
    pub fn is_fifo(&self) -> bool {
        self.valuation.as_deref() == Some("fifo")
    }
}

/// A warehouse.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Warehouse {
    /// Short code, unique among live warehouses.
    pub code: String,
    /// Display name.
    pub name: String,
}

/// A location inside a warehouse: where stock actually is.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Location {
    /// The warehouse it belongs to.
    #[schemars(extend("format" = "uuid"))]
    pub warehouse_id: String,
    /// Short code, unique within the warehouse.
    pub code: String,
    /// Display name.
    pub name: String,
}

/// Items.
#[derive(Debug)]
pub struct Items;
/// Warehouses.
#[derive(Debug)]
pub struct Warehouses;
/// Locations.
#[derive(Debug)]
pub struct Locations;

/// The items table.
pub const ITEMS: Table<Row<Item>> = Table::new("items");
/// The warehouses table.
pub const WAREHOUSES: Table<Row<Warehouse>> = Table::new("warehouses");
/// The locations table.
pub const LOCATIONS: Table<Row<Location>> = Table::new("locations");

/// Checks an item and returns it trimmed.
///
/// # Errors
/// A 422 naming each invalid field.
pub fn check_item(mut item: Item) -> Result<Item, Error> {
    item.sku = item.sku.trim().to_string();
    item.name = item.name.trim().to_string();
    let mut checks = Checks::new();
    checks
        .text("sku", &item.sku, 1, 64)
        .text("name", &item.name, 1, 200)
        .max_len("description", item.description.as_deref(), 4000);
    if let Some(uom) = &item.uom {
        checks.text("uom", uom, 1, 16);
    }
    checks.one_of("valuation", item.valuation.as_deref(), &VALUATION_METHODS);
    if item.sku.contains(char::is_whitespace) {
        checks.problem("sku", "must not contain spaces");
    }
    checks.finish("item", "invalid_item")?;
    Ok(item)
}

impl Resource for Items {
    type Record = Item;
    const TABLE: Table<Row<Item>> = ITEMS;
    const NAME: &'static str = "item";

    fn list_spec() -> ListSpec {
        ListSpec::new("items")
            .filter("sku")
            .filter_by("q", "name", FilterOp::Contains)
            .filter_one_of("valuation", &VALUATION_METHODS)
            .sortable(&["sku", "name"])
    }

    fn check(ctx: &mut Ctx, item: Item, current: Option<&Row<Item>>) -> Result<Item, Error> {
        let item = check_item(item)?;
        if let Some(current) = current.filter(|c| c.record.is_fifo() != item.is_fifo()) {
            refuse_if_moved(ctx, current)?;
        }
        if let Some(current) = current.filter(|c| c.record.uom != item.uom) {
            // Quantities already on the ledger are in the old unit.
            return Err(Error::unprocessable(format!(
                "the unit of measure of item {} cannot change once it exists; create a new item",
                current.record.sku
            ))
            .with_field("uom", "cannot change"));
        }
        Ok(item)
    }

    fn check_delete(ctx: &mut Ctx, row: &Row<Item>) -> Result<(), Error> {
        refuse_if_stocked(ctx, "item_id", &row.id, "item")
    }

    fn conflict() -> Error {
        Error::conflict("another live item already has this SKU").with_code("sku_taken")
    }
}

impl Resource for Warehouses {
    type Record = Warehouse;
    const TABLE: Table<Row<Warehouse>> = WAREHOUSES;
    const NAME: &'static str = "warehouse";

    fn list_spec() -> ListSpec {
        ListSpec::new("warehouses")
            .filter("code")
            .sortable(&["code", "name"])
    }

    fn check(
        _ctx: &mut Ctx,
        mut warehouse: Warehouse,
        _current: Option<&Row<Warehouse>>,
    ) -> Result<Warehouse, Error> {
        warehouse.code = warehouse.code.trim().to_string();
        warehouse.name = warehouse.name.trim().to_string();
        let mut checks = Checks::new();
        checks
            .text("code", &warehouse.code, 1, 32)
            .text("name", &warehouse.name, 1, 200);
        checks.finish("warehouse", "invalid_warehouse")?;
        Ok(warehouse)
    }

    fn check_delete(ctx: &mut Ctx, row: &Row<Warehouse>) -> Result<(), Error> {
        let locations = LOCATIONS.list(
            ctx,
            eerp_sdk::ListQuery {
                filter: vec![Filter::eq("warehouse_id", row.id.as_str())],
                limit: Some(1),
                ..eerp_sdk::ListQuery::default()
            },
        )?;
        if locations.data.is_empty() {
            return Ok(());
        }
        Err(
            Error::conflict("the warehouse still has live locations; delete them first")
                .with_code("has_locations"),
        )
    }

    fn conflict() -> Error {
        Error::conflict("another live warehouse already has this code").with_code("code_taken")
    }
}

impl Resource for Locations {
    type Record = Location;
    const TABLE: Table<Row<Location>> = LOCATIONS;
    const NAME: &'static str = "location";

    fn list_spec() -> ListSpec {
        ListSpec::new("locations")
            .filter_id("warehouse_id")
            .filter("code")
            .sortable(&["code", "name"])
    }

    fn check(
        ctx: &mut Ctx,
        mut location: Location,
        current: Option<&Row<Location>>,
    ) -> Result<Location, Error> {
        location.code = location.code.trim().to_string();
        location.name = location.name.trim().to_string();
        let mut checks = Checks::new();
        checks
            .text("code", &location.code, 1, 32)
            .text("name", &location.name, 1, 200);
        checks.finish("location", "invalid_location")?;
        if let Some(current) = current.filter(|c| c.record.warehouse_id != location.warehouse_id) {
            refuse_if_stocked(ctx, "location_id", &current.id, "location")?;
        }
        hold(
            ctx,
            &WAREHOUSES,
            &location.warehouse_id,
            "warehouse_id",
            "warehouse",
        )?;
        Ok(location)
    }

    fn check_delete(ctx: &mut Ctx, row: &Row<Location>) -> Result<(), Error> {
        refuse_if_stocked(ctx, "location_id", &row.id, "location")
    }

    fn check_restore(ctx: &mut Ctx, row: &Row<Location>) -> Result<(), Error> {
        hold(
            ctx,
            &WAREHOUSES,
            &row.record.warehouse_id,
            "warehouse_id",
            "warehouse",
        )?;
        Ok(())
    }

    fn conflict() -> Error {
        Error::conflict("the warehouse already has a live location with this code")
            .with_code("code_taken")
    }
}

/// The live row `id` of `table`, share-locked until the request ends: a delete (which
/// locks it alone) waits for the request, and a request after the delete sees it gone.
///
/// # Errors
/// A 422 naming `field` when there is no such live row.
pub fn hold<T: serde::de::DeserializeOwned>(
    ctx: &mut Ctx,
    table: &Table<Row<T>>,
    id: &str,
    field: &str,
    what: &str,
) -> Result<Row<T>, Error> {
    table
        .lock_by(
            ctx,
            &serde_json::json!({ "id": id }),
            eerp_sdk::LockMode::Share,
        )
        .map_err(|_| Error::unknown_reference(field, what))
}

/// A 409 when the item has ledger lines: they were valued by its method.
fn refuse_if_moved(ctx: &mut Ctx, item: &Row<Item>) -> Result<(), Error> {
    let lines = LEDGER.list(
        ctx,
        eerp_sdk::ListQuery {
            filter: vec![Filter::eq("item_id", item.id.as_str())],
            limit: Some(1),
            ..eerp_sdk::ListQuery::default()
        },
    )?;
    if lines.data.is_empty() {
        return Ok(());
    }
    Err(Error::conflict(format!(
        "item {} has moved stock, valued by its current method; its valuation cannot change \
         now (create a new item for the other method)",
        item.record.sku
    ))
    .with_code("valuation_fixed"))
}

/// A 409 when any balance of `column = id` holds stock.
fn refuse_if_stocked(ctx: &mut Ctx, column: &str, id: &str, what: &str) -> Result<(), Error> {
    let held = BALANCES.aggregate(
        ctx,
        AggregateQuery {
            filter: vec![Filter::eq(column, id)],
            aggregates: vec![Aggregate {
                func: AggregateFn::Sum,
                column: Some("on_hand".into()),
            }],
            ..AggregateQuery::default()
        },
    )?;
    let on_hand = held
        .first("sum_on_hand")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<Decimal>().ok())
        .unwrap_or_default();
    if on_hand.is_zero() {
        return Ok(());
    }
    Err(Error::conflict(format!(
        "the {what} still holds {} on hand; issue or transfer it first",
        on_hand.normalize()
    ))
    .with_code("has_stock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_trimmed_and_every_problem_named() {
        let item = check_item(Item {
            sku: " A-1 ".into(),
            name: " Bolt ".into(),
            ..Item::default()
        })
        .unwrap();
        assert_eq!((item.sku.as_str(), item.name.as_str()), ("A-1", "Bolt"));
        let err = check_item(Item {
            sku: "A 1".into(),
            name: String::new(),
            uom: Some(String::new()),
            ..Item::default()
        })
        .unwrap_err();
        let fields: Vec<&str> = err.body.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "uom", "sku"]);
    }
}
