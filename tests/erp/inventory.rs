//! Inventory over HTTP: items and locations, moves on the ledger, moving-average
//! valuation, reservations, and no overselling under concurrent issues.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Tenant, fields};

/// An item and a location of a fresh warehouse.
pub struct Stocked {
    pub item: String,
    pub location: String,
}

pub async fn item_and_location(t: &Tenant, sku: &str) -> Stocked {
    let item = t
        .create(
            "/inventory/items",
            json!({"sku": sku, "name": format!("Item {sku}")}),
        )
        .await;
    let warehouse = t
        .create(
            "/inventory/warehouses",
            json!({"code": format!("W-{sku}"), "name": "Main"}),
        )
        .await;
    let location = location(t, &warehouse, "A").await;
    Stocked {
        item: item["id"].as_str().unwrap().to_string(),
        location,
    }
}

async fn location(t: &Tenant, warehouse: &Value, code: &str) -> String {
    let location = t
        .create(
            "/inventory/locations",
            json!({"warehouse_id": warehouse["id"], "code": code, "name": format!("Bin {code}")}),
        )
        .await;
    location["id"].as_str().unwrap().to_string()
}

pub async fn receive(t: &Tenant, s: &Stocked, qty: &str, rate: &str) -> Value {
    t.create(
        "/inventory/moves",
        json!({"kind": "receipt", "item_id": s.item, "location_id": s.location, "qty": qty, "rate": rate}),
    )
    .await
}

pub fn issue_body(s: &Stocked, qty: &str) -> Value {
    json!({"kind": "issue", "item_id": s.item, "location_id": s.location, "qty": qty})
}

pub async fn balance(t: &Tenant, item: &str, location: &str) -> Value {
    let page = t
        .get(&format!(
            "/inventory/stock?item_id={item}&location_id={location}"
        ))
        .await;
    page["data"][0].clone()
}

#[tokio::test]
async fn receipts_average_the_rate_and_issues_go_out_at_it() {
    let t = Tenant::with(&["inventory"]).await;
    let s = item_and_location(&t, "BOLT").await;
    receive(&t, &s, "10", "100").await;
    receive(&t, &s, "10", "200").await;
    let b = balance(&t, &s.item, &s.location).await;
    assert_eq!(
        (
            b["on_hand"].as_str(),
            b["rate"].as_str(),
            b["value"].as_str()
        ),
        (Some("20.000000"), Some("150.0000000000"), Some("3000.00"))
    );

    let (status, issued) = t
        .call(Method::POST, "/inventory/moves", Some(issue_body(&s, "4")))
        .await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["value"], "600.00");
    assert_eq!(issued["balances"][0]["on_hand"], "16.000000");
    let b = balance(&t, &s.item, &s.location).await;
    assert_eq!(
        (b["on_hand"].as_str(), b["value"].as_str()),
        (Some("16.000000"), Some("2400.00"))
    );

    let ledger = t
        .get(&format!("/inventory/ledger?item_id={}", s.item))
        .await;
    let after: Vec<&str> = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["qty_after"].as_str().unwrap())
        .collect();
    assert_eq!(after, ["10.000000", "20.000000", "16.000000"]);
}

/// FIFO per item, as ERPNext's own test: 10 @ 10 then 10 @ 20, an issue of 15 takes the
/// 10 @ 10 layer and 5 of the 20s: 200.00 (moving average would take 225.00), leaving
/// 5 @ 20 on the ledger. A receipt of 5 @ 4 dated before them all is then consumed
/// first: the issue becomes 5 @ 4 + 10 @ 10 = 120.00, leaving 10 @ 20 = 200.00.
#[tokio::test]
async fn fifo_items_consume_their_oldest_layers_first_at_every_date() {
    let t = Tenant::with(&["inventory"]).await;
    let s = item_and_location(&t, "AVG").await;
    let (status, problem) = t
        .call(
            Method::POST,
            "/inventory/items",
            Some(json!({"sku": "BAD", "name": "Bad", "valuation": "lifo"})),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["valuation".to_string()])
    );
    let fifo = t
        .create(
            "/inventory/items",
            json!({"sku": "FIFO", "name": "First in", "valuation": "fifo"}),
        )
        .await;
    let f = Stocked {
        item: fifo["id"].as_str().unwrap().to_string(),
        location: s.location.clone(),
    };
    let receipt = |qty: &str, rate: &str, date: &str| {
        json!({"kind": "receipt", "item_id": f.item, "location_id": f.location,
               "qty": qty, "rate": rate, "date": date})
    };
    t.create("/inventory/moves", receipt("10", "10", "2026-12-02"))
        .await;
    t.create("/inventory/moves", receipt("10", "20", "2026-12-03"))
        .await;
    let mut issue = issue_body(&f, "15");
    issue["date"] = json!("2026-12-04");
    let issued = t.create("/inventory/moves", issue).await;
    assert_eq!(issued["value"], "200.00");
    assert_eq!(issued["balances"][0]["value"], "100.00");
    assert_eq!(
        issued["balances"][0]["layers"],
        json!([{"qty": "5.000000", "rate": "20.0000000000"}])
    );

    t.create("/inventory/moves", receipt("5", "4", "2026-12-01"))
        .await;
    let issued = t
        .get(&format!(
            "/inventory/moves/{}",
            issued["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(issued["value"], "120.00");
    let b = balance(&t, &f.item, &f.location).await;
    assert_eq!(
        (b["on_hand"].as_str(), b["value"].as_str(), &b["layers"]),
        (
            Some("10.000000"),
            Some("200.00"),
            &json!([{"qty": "10.000000", "rate": "20.0000000000"}])
        )
    );
    let lines = ledger_replays(&t, &f.item).await;
    let layers: Vec<usize> = lines
        .iter()
        .map(|l| l["layers"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(
        layers,
        [1, 2, 3, 1],
        "layers after each line, in posting order"
    );

    // Its method is fixed once it has moved; the other item's is not.
    let path = format!("/inventory/items/{}", f.item);
    let body = json!({"valuation": "moving_average"});
    let (status, problem) = t.call(Method::PATCH, &path, Some(body.clone())).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("valuation_fixed")),
        "{problem}"
    );
    let other = t
        .create("/inventory/items", json!({"sku": "LATER", "name": "Later"}))
        .await;
    let path = format!("/inventory/items/{}", other["id"].as_str().unwrap());
    let (status, changed) = t
        .call(Method::PATCH, &path, Some(json!({"valuation": "fifo"})))
        .await;
    assert_eq!(
        (status, changed["valuation"].as_str()),
        (200, Some("fifo")),
        "{changed}"
    );
}

#[tokio::test]
async fn a_transfer_moves_value_exactly_and_the_last_issue_leaves_zero() {
    let t = Tenant::with(&["inventory"]).await;
    let s = item_and_location(&t, "NUT").await;
    let warehouses = t.get("/inventory/warehouses").await;
    let other = location(&t, &warehouses["data"][0], "B").await;
    receive(&t, &s, "3", "33.333333").await;
    for _ in 0..3 {
        t.create(
            "/inventory/moves",
            json!({"kind": "transfer", "item_id": s.item, "location_id": s.location,
                   "to_location_id": other, "qty": "1"}),
        )
        .await;
    }
    let from = balance(&t, &s.item, &s.location).await;
    let to = balance(&t, &s.item, &other).await;
    assert_eq!(
        (from["on_hand"].as_str(), from["value"].as_str()),
        (Some("0.000000"), Some("0.00"))
    );
    assert_eq!(
        (to["on_hand"].as_str(), to["value"].as_str()),
        (Some("3.000000"), Some("100.00"))
    );
    let ledger = t
        .get(&format!("/inventory/ledger?location_id={}", s.location))
        .await;
    let out: Vec<&str> = ledger["data"].as_array().unwrap()[1..]
        .iter()
        .map(|l| l["value_change"].as_str().unwrap())
        .collect();
    assert_eq!(out, ["-33.33", "-33.33", "-33.34"]);

    // Units of measure: a box holds 12. Seven boxes at 10.00 a box are 84 units worth
    // 70.00 (0.8333333333 a unit); a box transferred moves exactly 10.00.
    let unit = json!({"item_id": s.item, "uom": "box", "factor": "12"});
    t.create("/inventory/units", unit.clone()).await;
    let (status, problem) = t.call(Method::POST, "/inventory/units", Some(unit)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("uom_taken")),
        "{problem}"
    );
    let stock_unit = json!({"item_id": s.item, "uom": "unit", "factor": "1"});
    let (status, problem) = t
        .call(Method::POST, "/inventory/units", Some(stock_unit))
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["uom".to_string()]),
        "{problem}"
    );
    let boxes = t
        .create(
            "/inventory/moves",
            json!({"kind": "receipt", "item_id": s.item, "location_id": s.location,
                   "qty": "7", "rate": "10", "uom": "box"}),
        )
        .await;
    assert_eq!(
        (
            boxes["qty"].as_str(),
            boxes["rate"].as_str(),
            boxes["value"].as_str()
        ),
        (Some("84.000000"), Some("0.8333333333"), Some("70.00"))
    );
    assert_eq!(
        (boxes["uom"].as_str(), boxes["uom_qty"].as_str()),
        (Some("box"), Some("7.000000"))
    );
    let one_box = json!({"kind": "transfer", "item_id": s.item, "location_id": s.location,
                         "to_location_id": other, "qty": "1", "uom": "box"});
    let moved = t.create("/inventory/moves", one_box.clone()).await;
    assert_eq!(
        (moved["qty"].as_str(), moved["value"].as_str()),
        (Some("12.000000"), Some("10.00"))
    );
    let to = balance(&t, &s.item, &other).await;
    assert_eq!(
        (to["on_hand"].as_str(), to["value"].as_str()),
        (Some("15.000000"), Some("110.00"))
    );
    // Counted in boxes: 5 boxes found where 72 units (6 boxes) were: 12 out, 10.00.
    let counted = t
        .create(
            "/inventory/counts",
            json!({"item_id": s.item, "location_id": s.location, "qty": "5", "uom": "box"}),
        )
        .await;
    assert_eq!(
        (
            counted["counted"].as_str(),
            counted["qty"].as_str(),
            counted["value"].as_str()
        ),
        (Some("60.000000"), Some("-12.000000"), Some("-10.00"))
    );
    let mut crate_of = one_box;
    crate_of["uom"] = json!("crate");
    let (status, problem) = t
        .call(Method::POST, "/inventory/moves", Some(crate_of))
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["uom".to_string()]),
        "{problem}"
    );
}

#[tokio::test]
async fn refused_moves_answer_clearly_and_change_nothing() {
    let t = Tenant::with(&["inventory"]).await;
    let s = item_and_location(&t, "GEAR").await;
    receive(&t, &s, "5", "2").await;
    let before = t.count("inventory", "ledger").await;

    let (status, problem) = t
        .call(Method::POST, "/inventory/moves", Some(issue_body(&s, "8")))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "insufficient_stock");
    assert!(
        problem["detail"].as_str().unwrap().contains("5 available"),
        "{problem}"
    );

    for (body, field) in [
        (
            json!({"kind": "receipt", "item_id": s.item, "location_id": s.location, "qty": "1"}),
            "rate",
        ),
        (
            json!({"kind": "issue", "item_id": s.item, "location_id": s.location, "qty": "1.1234567"}),
            "qty",
        ),
        (
            json!({"kind": "issue", "item_id": s.item, "location_id": s.location, "qty": "-1"}),
            "qty",
        ),
        (
            json!({"kind": "borrow", "item_id": s.item, "location_id": s.location, "qty": "1"}),
            "kind",
        ),
        (
            json!({"kind": "transfer", "item_id": s.item, "location_id": s.location, "to_location_id": s.location, "qty": "1"}),
            "to_location_id",
        ),
        (
            json!({"kind": "issue", "item_id": "6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10", "location_id": s.location, "qty": "1"}),
            "item_id",
        ),
        (
            json!({"kind": "receipt", "item_id": s.item, "location_id": s.location, "qty": "1", "rate": "1", "date": "2026-02-30"}),
            "date",
        ),
        (
            json!({"kind": "receipt", "item_id": s.item, "location_id": s.location, "qty": "999999999999", "rate": "100000000000000000000"}),
            "rate",
        ),
        (
            json!({"kind": "receipt", "item_id": s.item, "location_id": s.location, "qty": "999999999999", "rate": "99999999999999"}),
            "qty",
        ),
    ] {
        let (status, problem) = t
            .call(Method::POST, "/inventory/moves", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(fields(&problem), [field], "{body}: {problem}");
    }
    let (status, _) = t
        .call(
            Method::POST,
            "/inventory/moves",
            Some(json!({"kind": "issue", "qty": "1", "colour": "red"})),
        )
        .await;
    assert_eq!(status, 400);

    let moves = t.get("/inventory/moves").await;
    let id = moves["data"][0]["id"].as_str().unwrap();
    let (status, problem) = t
        .call(Method::DELETE, &format!("/inventory/moves/{id}"), None)
        .await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("immutable")));
    let (status, problem) = t
        .call(
            Method::DELETE,
            &format!("/inventory/items/{}", s.item),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("has_stock")),
        "{problem}"
    );
    let (status, problem) = t
        .call(
            Method::POST,
            "/inventory/items",
            Some(json!({"sku": "GEAR", "name": "Again"})),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("sku_taken")));

    assert_eq!(t.count("inventory", "ledger").await, before);
    let b = balance(&t, &s.item, &s.location).await;
    assert_eq!(
        (b["on_hand"].as_str(), b["value"].as_str()),
        (Some("5.000000"), Some("10.00"))
    );
}

#[tokio::test]
async fn reservations_hold_stock_back_from_other_issues() {
    let t = Tenant::with(&["inventory"]).await;
    let s = item_and_location(&t, "PIPE").await;
    receive(&t, &s, "10", "3").await;
    let reservation = t
        .create(
            "/inventory/reservations",
            json!({"item_id": s.item, "location_id": s.location, "qty": "8", "reference": "SO-1"}),
        )
        .await;
    let (status, problem) = t
        .call(Method::POST, "/inventory/moves", Some(issue_body(&s, "3")))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("8 reserved"),
        "{problem}"
    );
    let (status, _) = t
        .call(
            Method::POST,
            "/inventory/reservations",
            Some(json!({"item_id": s.item, "location_id": s.location, "qty": "3"})),
        )
        .await;
    assert_eq!(status, 409);

    let mut with_reservation = issue_body(&s, "5");
    with_reservation["reservation_id"] = reservation["id"].clone();
    t.create("/inventory/moves", with_reservation).await;
    let b = balance(&t, &s.item, &s.location).await;
    assert_eq!(
        (
            b["on_hand"].as_str(),
            b["reserved"].as_str(),
            b["available"].as_str()
        ),
        (Some("5.000000"), Some("3.000000"), Some("2.000000"))
    );

    let id = reservation["id"].as_str().unwrap();
    let (status, released) = t
        .call(
            Method::POST,
            &format!("/inventory/reservations/{id}/release"),
            None,
        )
        .await;
    assert_eq!(
        (status, released["status"].as_str()),
        (200, Some("released"))
    );
    let (status, _) = t
        .call(
            Method::POST,
            &format!("/inventory/reservations/{id}/release"),
            None,
        )
        .await;
    assert_eq!(status, 409);
    let b = balance(&t, &s.item, &s.location).await;
    assert_eq!(b["available"], "5.000000");
}

#[tokio::test]
async fn items_page_soft_delete_and_restore() {
    let t = Tenant::with(&["inventory"]).await;
    for sku in ["A-1", "A-2", "A-3"] {
        t.create("/inventory/items", json!({"sku": sku, "name": sku}))
            .await;
    }
    let first = t.get("/inventory/items?order=sku&limit=2").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = t
        .get(&format!(
            "/inventory/items?order=sku&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(second["data"][0]["sku"], "A-3");
    assert!(second["next_cursor"].is_null());

    let id = first["data"][0]["id"].as_str().unwrap();
    let (status, _) = t
        .call(Method::DELETE, &format!("/inventory/items/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        t.get("/inventory/items").await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (status, _) = t
        .call(Method::GET, &format!("/inventory/items/{id}"), None)
        .await;
    assert_eq!(status, 404);
    let all = t.get("/inventory/items?include_deleted=true").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    let (status, restored) = t
        .call(
            Method::POST,
            &format!("/inventory/items/{id}/restore"),
            None,
        )
        .await;
    assert_eq!((status, restored["sku"].as_str()), (200, Some("A-1")));

    let (status, problem) = t
        .call(
            Method::PATCH,
            &format!("/inventory/items/{id}"),
            Some(json!({"uom": "kg"})),
        )
        .await;
    assert_eq!((status, fields(&problem)), (422, vec!["uom".to_string()]));
    let (status, patched) = t
        .call(
            Method::PATCH,
            &format!("/inventory/items/{id}"),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!((status, patched["name"].as_str()), (200, Some("Renamed")));
    let (status, problem) = t
        .call(Method::GET, "/inventory/items?colour=red", None)
        .await;
    assert_eq!(status, 400, "{problem}");

    // A warehouse with live locations stays; a location does not come back into a
    // deleted warehouse.
    let s = item_and_location(&t, "B-1").await;
    let location = t.get(&format!("/inventory/locations/{}", s.location)).await;
    let warehouse = location["warehouse_id"].as_str().unwrap();
    let (status, problem) = t
        .call(
            Method::DELETE,
            &format!("/inventory/warehouses/{warehouse}"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("has_locations"))
    );
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("/inventory/locations/{}", s.location),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("/inventory/warehouses/{warehouse}"),
            None
        )
        .await
        .0,
        204
    );
    let (status, problem) = t
        .call(
            Method::POST,
            &format!("/inventory/locations/{}/restore", s.location),
            None,
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["warehouse_id".to_string()]),
        "{problem}"
    );
}

/// Fifty issues of one unit each against ten on hand, all at once: exactly ten succeed.
#[tokio::test]
async fn concurrent_issues_never_oversell() {
    let t = Tenant::with(&["inventory"]).await;
    let s = item_and_location(&t, "LAST").await;
    receive(&t, &s, "10", "7.5").await;
    let t = std::sync::Arc::new(t);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let t = t.clone();
        let body = issue_body(&s, "1");
        tasks.push(tokio::spawn(
            async move { issue_until_answered(&t, body).await },
        ));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((ok, refused), (10, 40), "{statuses:?}");
    let b = balance(&t, &s.item, &s.location).await;
    assert_eq!(
        (b["on_hand"].as_str(), b["value"].as_str()),
        (Some("0.000000"), Some("0.00"))
    );
    assert_eq!(
        t.count("inventory", "ledger WHERE qty_change < 0").await,
        10
    );
    assert_eq!(t.count("inventory", "moves WHERE kind = 'issue'").await, 10);
    // Defect 3 of issue 26: in posting order the running balance goes 10, 9, ..., 0.
    let after: Vec<String> = ledger_replays(&t, &s.item)
        .await
        .iter()
        .map(|l| l["qty_after"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..=10).rev().map(|n| format!("{n}.000000")).collect();
    assert_eq!(after, expected);
}

/// The item's ledger in posting order (`order=seq`), checked line by line: `seq` counts
/// 1, 2, 3, ...; dates never go back; every line's running quantity and value (per
/// location) are the previous line's plus its change.
pub async fn ledger_replays(t: &Tenant, item: &str) -> Vec<Value> {
    let page = t
        .get(&format!(
            "/inventory/ledger?item_id={item}&order=seq&limit=200"
        ))
        .await;
    assert_eq!(
        page["next_cursor"],
        Value::Null,
        "one page holds the ledger"
    );
    let lines = page["data"].as_array().unwrap().clone();
    let mut running = std::collections::BTreeMap::new();
    let mut last_date = String::new();
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"].as_i64(), Some(n as i64 + 1), "{line}");
        let date = line["date"].as_str().unwrap().to_string();
        assert!(date >= last_date, "{line} goes back in time");
        last_date = date;
        // A cancelled move and its cancellation leave the running figures as they were.
        if line["cancelled"] == true {
            continue;
        }
        let d = |field: &str| line[field].as_str().unwrap().parse::<f64>().unwrap();
        let (qty, value) = running
            .entry(line["location_id"].as_str().unwrap().to_string())
            .or_insert((0.0, 0.0));
        *qty += d("qty_change");
        *value += d("value_change");
        assert!(
            (*qty - d("qty_after")).abs() < 1e-6,
            "{line}: qty after {qty}"
        );
        assert!(
            (*value - d("value_after")).abs() < 0.005,
            "{line}: value after {value}"
        );
    }
    lines
}

/// Sends one issue, as a client would: again while it is rate-limited (see
/// [`Tenant::call_until_admitted`]); returns the status of the real answer.
pub async fn issue_until_answered(t: &Tenant, body: Value) -> u16 {
    t.call_until_admitted(Method::POST, "/inventory/moves", Some(body))
        .await
        .0
}
