//! Accounting over HTTP: balanced entries, immutability and reversal, closed periods,
//! parties from CRM, reports, and the perpetual-inventory entries of stock moves.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use super::inventory::{issue_body, issue_until_answered, item_and_location, receive};
use super::{Tenant, fields};

/// A small chart and a general journal; returns (journal id, accounts by code).
async fn chart(t: &Tenant) -> (String, std::collections::BTreeMap<&'static str, String>) {
    let group = t
        .create(
            "/accounting/accounts",
            json!({"code": "1000", "name": "Current assets", "type": "asset", "is_group": true}),
        )
        .await;
    let mut ids = std::collections::BTreeMap::new();
    ids.insert("1000", group["id"].as_str().unwrap().to_string());
    for (code, name, kind, parent) in [
        ("1010", "Cash", "asset", Some(&group["id"])),
        ("3000", "Capital", "equity", None),
        ("4000", "Sales", "income", None),
        ("6000", "Rent", "expense", None),
    ] {
        let account = t
            .create(
                "/accounting/accounts",
                json!({"code": code, "name": name, "type": kind, "parent_id": parent}),
            )
            .await;
        ids.insert(code, account["id"].as_str().unwrap().to_string());
    }
    let journal = t
        .create(
            "/accounting/journals",
            json!({"code": "GEN", "name": "General"}),
        )
        .await;
    (journal["id"].as_str().unwrap().to_string(), ids)
}

fn entry(journal: &str, date: &str, debit: &str, credit: &str, amount: &str) -> Value {
    json!({"journal_id": journal, "date": date, "lines": [
        {"account_id": debit, "debit": amount},
        {"account_id": credit, "credit": amount},
    ]})
}

fn account_row<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {report}"))
}

#[tokio::test]
async fn balanced_entries_feed_the_reports() {
    let t = Tenant::with(&["accounting"]).await;
    let (gen_journal, a) = chart(&t).await;
    t.create(
        "/accounting/entries",
        entry(
            &gen_journal,
            "2026-11-02",
            &a["1010"],
            &a["3000"],
            "1000.00",
        ),
    )
    .await;
    t.create(
        "/accounting/entries",
        entry(&gen_journal, "2026-11-10", &a["1010"], &a["4000"], "300"),
    )
    .await;
    let rent = t
        .create(
            "/accounting/entries",
            entry(&gen_journal, "2026-11-20", &a["6000"], &a["1010"], "50.00"),
        )
        .await;
    assert_eq!(rent["status"], "posted");
    assert_eq!(rent["lines"].as_array().unwrap().len(), 2);

    let trial = t.get("/accounting/reports/trial-balance").await;
    assert_eq!(trial["balanced"], true, "{trial}");
    assert_eq!(
        (
            trial["totals"]["debit"].as_str(),
            trial["totals"]["credit"].as_str()
        ),
        (Some("1350.00"), Some("1350.00"))
    );
    assert_eq!(account_row(&trial, "1010")["closing"], "1250.00");
    let november = t
        .get("/accounting/reports/trial-balance?from=2026-11-05&to=2026-11-30")
        .await;
    assert_eq!(account_row(&november, "1010")["opening"], "1000.00");

    let pnl = t
        .get("/accounting/reports/profit-and-loss?from=2026-11-01&to=2026-11-30")
        .await;
    assert_eq!(pnl["profit"], "250.00", "{pnl}");
    let sheet = t
        .get("/accounting/reports/balance-sheet?to=2026-11-30")
        .await;
    assert_eq!(sheet["assets"]["total"], "1250.00", "{sheet}");
    assert_eq!(sheet["equity"]["current_earnings"], "250.00");
    assert_eq!(sheet["balanced"], true);

    let ledger = t
        .get(&format!(
            "/accounting/reports/ledger?account_id={}&from=2026-11-05",
            a["1010"]
        ))
        .await;
    assert_eq!(
        (ledger["opening"].as_str(), ledger["closing"].as_str()),
        (Some("1000.00"), Some("1250.00"))
    );
    assert_eq!(ledger["lines"].as_array().unwrap().len(), 2);
    let (status, _) = t
        .call(
            Method::GET,
            "/accounting/reports/trial-balance?from=2026-13-01",
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn refused_entries_say_why_and_change_nothing() {
    let t = Tenant::with(&["accounting"]).await;
    let (gen_journal, a) = chart(&t).await;
    let posted = t
        .create(
            "/accounting/entries",
            entry(&gen_journal, "2026-11-02", &a["1010"], &a["3000"], "100.00"),
        )
        .await;
    let lines_before = t.count("accounting", "lines").await;

    let mut unbalanced = entry(&gen_journal, "2026-11-02", &a["1010"], &a["3000"], "100.00");
    unbalanced["lines"][1]["credit"] = json!("90.00");
    let (status, problem) = t
        .call(Method::POST, "/accounting/entries", Some(unbalanced))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("unbalanced")),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("debits exceed credits by 10.00"),
        "{problem}"
    );

    for (body, field) in [
        (
            entry(&gen_journal, "2026-11-02", &a["1000"], &a["3000"], "1"),
            "lines[0].account_id",
        ),
        (
            entry(
                &gen_journal,
                "2026-11-02",
                "6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10",
                &a["3000"],
                "1",
            ),
            "lines[0].account_id",
        ),
        (
            entry(&gen_journal, "2026-02-30", &a["1010"], &a["3000"], "1"),
            "date",
        ),
        (
            entry(&a["1010"], "2026-11-02", &a["1010"], &a["3000"], "1"),
            "journal_id",
        ),
        (
            entry(&gen_journal, "2026-11-02", &a["1010"], &a["3000"], "1.001"),
            "lines[0].debit",
        ),
    ] {
        let (status, problem) = t
            .call(Method::POST, "/accounting/entries", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert!(
            fields(&problem).contains(&field.to_string()),
            "{field}: {problem}"
        );
    }

    // A posted entry's words may change, never its figures, accounts or date.
    let id = posted["id"].as_str().unwrap();
    let path = format!("/accounting/entries/{id}");
    let (status, noted) = t
        .call(
            Method::PATCH,
            &path,
            Some(json!({"memo": "changed", "reference": "INV-9"})),
        )
        .await;
    assert_eq!(
        (status, noted["memo"].as_str(), noted["reference"].as_str()),
        (200, Some("changed"), Some("INV-9")),
        "{noted}"
    );
    assert_eq!(noted["total"], posted["total"]);
    for change in [
        json!({"date": "2026-11-03"}),
        json!({"memo": "x", "lines": []}),
    ] {
        let (status, problem) = t.call(Method::PATCH, &path, Some(change.clone())).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (409, Some("posted_immutable")),
            "{change}: {problem}"
        );
    }
    let (status, problem) = t
        .call(
            Method::PATCH,
            &path,
            Some(json!({"memo": "m".repeat(1001)})),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["memo".to_string()]),
        "{problem}"
    );
    assert_eq!(t.get(&path).await["memo"], "changed");
    let (status, _) = t
        .call(Method::DELETE, &format!("/accounting/entries/{id}"), None)
        .await;
    assert_eq!(status, 409);
    let (status, problem) = t
        .call(
            Method::DELETE,
            &format!("/accounting/accounts/{}", a["1010"]),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("account_in_use"))
    );
    for change in [json!({"type": "liability"}), json!({"is_group": false})] {
        let path = format!("/accounting/accounts/{}", a["1000"]);
        let (status, problem) = t.call(Method::PATCH, &path, Some(change.clone())).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (409, Some("account_in_use")),
            "{change}: {problem}"
        );
    }
    assert_eq!(t.count("accounting", "lines").await, lines_before);
    assert_eq!(t.count("accounting", "entries").await, 1);

    // With a round-off tolerance of 0.05, 100.00 against 99.97 posts, the 0.03 credited
    // to rounding differences (5900); 100.00 against 99.90 is still refused.
    let (status, problem) = t
        .call(
            Method::PATCH,
            "/accounting/settings",
            Some(json!({"round_off_tolerance": "2"})),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["round_off_tolerance".to_string()])
    );
    let (status, settings) = t
        .call(
            Method::PATCH,
            "/accounting/settings",
            Some(json!({"round_off_tolerance": "0.05"})),
        )
        .await;
    assert_eq!(
        (status, settings["round_off_tolerance"].as_str()),
        (200, Some("0.05"))
    );
    let mut close = entry(&gen_journal, "2026-11-03", &a["1010"], &a["3000"], "100.00");
    close["lines"][1]["credit"] = json!("99.97");
    let rounded = t.create("/accounting/entries", close.clone()).await;
    let last = &rounded["lines"][2];
    assert_eq!(
        (last["credit"].as_str(), rounded["total"].as_str()),
        (Some("0.03"), Some("100.00")),
        "{rounded}"
    );
    close["lines"][1]["credit"] = json!("99.90");
    let (status, problem) = t
        .call(Method::POST, "/accounting/entries", Some(close))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("unbalanced")),
        "{problem}"
    );
}

#[tokio::test]
async fn drafts_change_until_posted_and_a_reversal_undoes_a_posting() {
    let t = Tenant::with(&["accounting"]).await;
    let (gen_journal, a) = chart(&t).await;
    let mut draft = entry(&gen_journal, "2026-11-03", &a["6000"], &a["1010"], "70.00");
    draft["draft"] = json!(true);
    let draft = t.create("/accounting/entries", draft).await;
    let id = draft["id"].as_str().unwrap();
    assert_eq!(draft["status"], "draft");
    assert_eq!(t.count("accounting", "lines").await, 0);
    let (status, patched) = t
        .call(
            Method::PATCH,
            &format!("/accounting/entries/{id}"),
            Some(json!({"memo": "November rent"})),
        )
        .await;
    assert_eq!(
        (status, patched["memo"].as_str()),
        (200, Some("November rent")),
        "{patched}"
    );
    let (status, posted) = t
        .call(
            Method::POST,
            &format!("/accounting/entries/{id}/post"),
            None,
        )
        .await;
    assert_eq!(
        (status, posted["status"].as_str()),
        (200, Some("posted")),
        "{posted}"
    );

    let (status, reversal) = t
        .call(
            Method::POST,
            &format!("/accounting/entries/{id}/reverse"),
            Some(json!({"date": "2026-11-04"})),
        )
        .await;
    assert_eq!(status, 201, "{reversal}");
    assert_eq!(reversal["reversal_of"], id);
    let trial = t.get("/accounting/reports/trial-balance").await;
    assert_eq!(account_row(&trial, "6000")["closing"], "0.00");
    assert_eq!(account_row(&trial, "6000")["debit"], "70.00");
    let (status, problem) = t
        .call(
            Method::POST,
            &format!("/accounting/entries/{id}/reverse"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("already_reversed"))
    );
    assert_eq!(
        t.get(&format!("/accounting/entries/{id}")).await["reversed_by"],
        reversal["id"]
    );
}

#[tokio::test]
async fn a_closed_period_refuses_postings_dated_in_it() {
    let t = Tenant::with(&["accounting"]).await;
    let (gen_journal, a) = chart(&t).await;
    let period = t
        .create(
            "/accounting/periods",
            json!({"name": "2026-11", "start_date": "2026-11-01", "end_date": "2026-11-30"}),
        )
        .await;
    let (status, _) = t
        .call(
            Method::POST,
            "/accounting/periods",
            Some(json!({"name": "late", "start_date": "2026-11-30", "end_date": "2026-12-31"})),
        )
        .await;
    assert_eq!(status, 409);
    let posted = t
        .create(
            "/accounting/entries",
            entry(&gen_journal, "2026-11-15", &a["1010"], &a["3000"], "10"),
        )
        .await;
    // Sales of 500 and rent of 120 in November: a profit of 380, which the closing
    // entry moves to retained earnings (3200, made on first use).
    for (debit, credit, amount) in [("1010", "4000", "500"), ("6000", "1010", "120")] {
        t.create(
            "/accounting/entries",
            entry(&gen_journal, "2026-11-12", &a[debit], &a[credit], amount),
        )
        .await;
    }
    let id = period["id"].as_str().unwrap();
    let (status, closed) = t
        .call(
            Method::POST,
            &format!("/accounting/periods/{id}/close"),
            Some(json!({"closing_entry": true})),
        )
        .await;
    assert_eq!(status, 200, "{closed}");
    // Three entries and the closing one (debiting sales 500): 10 + 500 + 120 + 500.
    assert_eq!(
        (
            closed["closed_entries"].as_i64(),
            closed["closed_debit"].as_str()
        ),
        (Some(4), Some("1130.00"))
    );
    let november = "from=2026-11-01&to=2026-11-30";
    let trial = t
        .get(&format!("/accounting/reports/trial-balance?{november}"))
        .await;
    assert_eq!(trial["balanced"], true, "{trial}");
    for (code, closing) in [("4000", "0.00"), ("6000", "0.00"), ("3200", "-380.00")] {
        assert_eq!(account_row(&trial, code)["closing"], closing, "{code}");
    }
    let earned = t
        .get(&format!("/accounting/reports/profit-and-loss?{november}"))
        .await;
    assert_eq!(earned["profit"], "380.00", "{earned}");

    let (status, problem) = t
        .call(
            Method::POST,
            "/accounting/entries",
            Some(entry(
                &gen_journal,
                "2026-11-20",
                &a["1010"],
                &a["3000"],
                "5",
            )),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("period_closed")),
        "{problem}"
    );
    assert_eq!(fields(&problem), ["date"]);
    let posted_id = posted["id"].as_str().unwrap();
    let (status, _) = t
        .call(
            Method::POST,
            &format!("/accounting/entries/{posted_id}/reverse"),
            None,
        )
        .await;
    assert_eq!(
        status, 422,
        "a reversal dated in the closed period is refused too"
    );
    t.create(
        "/accounting/entries",
        entry(&gen_journal, "2026-12-01", &a["1010"], &a["3000"], "5"),
    )
    .await;

    let (status, _) = t
        .call(
            Method::POST,
            &format!("/accounting/periods/{id}/reopen"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    t.create(
        "/accounting/entries",
        entry(&gen_journal, "2026-11-20", &a["1010"], &a["3000"], "5"),
    )
    .await;
}

#[tokio::test]
async fn receivable_lines_name_a_crm_company() {
    let t = Tenant::with(&["crm", "accounting"]).await;
    let (gen_journal, a) = chart(&t).await;
    let receivable = t
        .create(
            "/accounting/accounts",
            json!({"code": "1200", "name": "Receivables", "type": "asset", "kind": "receivable"}),
        )
        .await;
    let receivable = receivable["id"].as_str().unwrap();
    let invoice = entry(&gen_journal, "2026-11-05", receivable, &a["4000"], "120.00");
    let (status, problem) = t
        .call(Method::POST, "/accounting/entries", Some(invoice.clone()))
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["lines[0].party_id".to_string()]),
        "{problem}"
    );

    let mut unknown = invoice.clone();
    unknown["lines"][0]["party_id"] = json!("6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10");
    let (status, problem) = t
        .call(Method::POST, "/accounting/entries", Some(unknown))
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["lines[0].party_id".to_string()]),
        "{problem}"
    );

    let company = t
        .create(
            "/crm/companies",
            json!({"name": "Globex", "is_customer": true}),
        )
        .await;
    let mut billed = invoice;
    billed["lines"][0]["party_id"] = company["id"].clone();
    let posted = t.create("/accounting/entries", billed).await;
    assert_eq!(posted["lines"][0]["party_id"], company["id"]);

    let without_crm = Tenant::on(t.app, "solo", &["accounting"]).await;
    let (gen_journal, _) = chart(&without_crm).await;
    let receivable = without_crm
        .create(
            "/accounting/accounts",
            json!({"code": "1200", "name": "Receivables", "type": "asset", "kind": "receivable"}),
        )
        .await;
    let mut body = entry(
        &gen_journal,
        "2026-11-05",
        receivable["id"].as_str().unwrap(),
        receivable["id"].as_str().unwrap(),
        "1",
    );
    body["lines"][0]["party_id"] = company["id"].clone();
    body["lines"][1]["party_id"] = company["id"].clone();
    let (status, problem) = without_crm
        .call(Method::POST, "/accounting/entries", Some(body))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("crm_not_enabled")),
        "{problem}"
    );
}

#[tokio::test]
async fn stock_moves_post_their_valuation_entries_in_the_same_transaction() {
    let t = Tenant::with(&["inventory", "accounting"]).await;
    let s = item_and_location(&t, "WIDGET").await;
    let receipt = receive(&t, &s, "10", "100").await;
    t.create("/inventory/moves", issue_body(&s, "3")).await;
    let (status, problem) = t
        .call(Method::POST, "/inventory/moves", Some(issue_body(&s, "8")))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("insufficient_stock"))
    );

    let trial = t.get("/accounting/reports/trial-balance").await;
    assert_eq!(trial["balanced"], true, "{trial}");
    assert_eq!(account_row(&trial, "1400")["closing"], "700.00");
    assert_eq!(account_row(&trial, "2150")["closing"], "-1000.00");
    assert_eq!(account_row(&trial, "5000")["closing"], "300.00");
    let source = format!("inventory.move:{}", receipt["id"].as_str().unwrap());
    let entries = t.get(&format!("/accounting/entries?source={source}")).await;
    assert_eq!(entries["data"][0]["total"], "1000.00");
    let posted = entries["data"][0]["id"].as_str().unwrap();
    let reverse = format!("/accounting/entries/{posted}/reverse");
    let (status, problem) = t.call(Method::POST, &reverse, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("posted_by_module")),
        "{problem}"
    );

    // A move dated in a closed period is refused as a whole: no stock moves either.
    // (Stock received on 10-01, so that an issue dated 10-15 has stock to take.)
    t.create(
        "/inventory/moves",
        json!({"kind": "receipt", "item_id": s.item, "location_id": s.location,
               "qty": "5", "rate": "2", "date": "2026-10-01"}),
    )
    .await;
    let period = t
        .create(
            "/accounting/periods",
            json!({"name": "2026-10", "start_date": "2026-10-01", "end_date": "2026-10-31"}),
        )
        .await;
    let id = period["id"].as_str().unwrap();
    t.call(
        Method::POST,
        &format!("/accounting/periods/{id}/close"),
        None,
    )
    .await;
    let ledger_before = t.count("inventory", "ledger").await;
    let mut late = issue_body(&s, "1");
    late["date"] = json!("2026-10-15");
    let (status, problem) = t.call(Method::POST, "/inventory/moves", Some(late)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("period_closed")),
        "{problem}"
    );
    assert_eq!(t.count("inventory", "ledger").await, ledger_before);
    let stock = t.get(&format!("/inventory/stock?item_id={}", s.item)).await;
    assert_eq!(stock["data"][0]["on_hand"], "12.000000");
    // Defect 2 of issue 26: so is every move that posts no entry, a transfer and a
    // receipt at rate 0 included.
    let warehouses = t.get("/inventory/warehouses").await;
    let other = t
        .create(
            "/inventory/locations",
            json!({"warehouse_id": warehouses["data"][0]["id"], "code": "B", "name": "Bin B"}),
        )
        .await;
    for body in [
        json!({"kind": "transfer", "item_id": s.item, "location_id": s.location,
               "to_location_id": other["id"], "qty": "1", "date": "2026-10-15"}),
        json!({"kind": "receipt", "item_id": s.item, "location_id": s.location,
               "qty": "1", "rate": "0", "date": "2026-10-31"}),
    ] {
        let (status, problem) = t.call(Method::POST, "/inventory/moves", Some(body)).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("period_closed")),
            "{problem}"
        );
    }
    assert_eq!(t.count("inventory", "ledger").await, ledger_before);
}

/// Defect 1 of issue 26: a back-dated move is valued at its own date, never leaves a
/// balance negative on any date, and values the later moves of its item again, posting
/// the difference. Figures by hand:
/// - 10 @ 10 on 12-04 (100.00), 10 @ 30 on 12-07 (300.00);
/// - an issue of 15 dated 12-05 is refused: only 10 were on hand that day;
/// - an issue of 5 dated 12-05 goes out at 10: 50.00; 15 left, 350.00 (rate 23.33…);
/// - an issue of 3 on 12-08 goes out at 23.3333333333: 70.00; 12 left, 280.00;
/// - a receipt of 5 @ 40 dated 12-06 makes 12-06 10 @ 25, 12-07 20 @ 27.5, so the
///   12-08 issue now takes 82.50: 12.50 more cost of goods sold; 17 left, 467.50;
/// - an issue of 6 dated 12-04 would leave 4 for the 12-05 issue of 5: refused.
#[tokio::test]
async fn back_dated_moves_are_valued_at_their_date_and_value_later_moves_again() {
    let t = Tenant::with(&["inventory", "accounting"]).await;
    let s = item_and_location(&t, "DATED").await;
    let dated = |mut body: Value, date: &str| {
        body["date"] = json!(date);
        body
    };
    let receipt = |qty: &str, rate: &str, date: &str| {
        json!({"kind": "receipt", "item_id": s.item, "location_id": s.location,
               "qty": qty, "rate": rate, "date": date})
    };
    t.create("/inventory/moves", receipt("10", "10", "2026-12-04"))
        .await;
    t.create("/inventory/moves", receipt("10", "30", "2026-12-07"))
        .await;
    let (status, problem) = t
        .call(
            Method::POST,
            "/inventory/moves",
            Some(dated(issue_body(&s, "15"), "2026-12-05")),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("insufficient_stock")),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("2026-12-05"),
        "{problem}"
    );

    let early = t
        .create("/inventory/moves", dated(issue_body(&s, "5"), "2026-12-05"))
        .await;
    assert_eq!(early["value"], "50.00");
    assert_eq!(early["balances"][0]["value"], "350.00");
    let late = t
        .create("/inventory/moves", dated(issue_body(&s, "3"), "2026-12-08"))
        .await;
    assert_eq!(late["value"], "70.00");
    let as_of = |date: &'static str| {
        let t = &t;
        async move {
            let trial = t
                .get(&format!("/accounting/reports/trial-balance?to={date}"))
                .await;
            account_row(&trial, "1400")["closing"].clone()
        }
    };
    assert_eq!(as_of("2026-12-05").await, "50.00");

    t.create("/inventory/moves", receipt("5", "40", "2026-12-06"))
        .await;
    let late = t
        .get(&format!(
            "/inventory/moves/{}",
            late["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(late["value"], "82.50");
    let b = super::inventory::balance(&t, &s.item, &s.location).await;
    assert_eq!(
        (b["on_hand"].as_str(), b["value"].as_str()),
        (Some("17.000000"), Some("467.50"))
    );
    let trial = t.get("/accounting/reports/trial-balance").await;
    assert_eq!(trial["balanced"], true, "{trial}");
    assert_eq!(account_row(&trial, "1400")["closing"], "467.50");
    assert_eq!(account_row(&trial, "5000")["closing"], "132.50");
    assert_eq!(as_of("2026-12-06").await, "250.00");
    let revaluations = t
        .count(
            "accounting",
            "entries WHERE source LIKE 'inventory.revaluation:%' AND date = '2026-12-08'",
        )
        .await;
    assert_eq!(revaluations, 1);

    let ledger_before = t.count("inventory", "ledger").await;
    let (status, problem) = t
        .call(
            Method::POST,
            "/inventory/moves",
            Some(dated(issue_body(&s, "6"), "2026-12-04")),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("breaks_later_move")),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(early["id"].as_str().unwrap()),
        "{problem}"
    );
    assert_eq!(t.count("inventory", "ledger").await, ledger_before);

    // A count sets what is on hand: 15 found on 12-09 of 17 @ 27.5 posts -2 (55.00 to
    // inventory adjustments). A receipt of 2 @ 27.5 dated 12-08 then leaves 19 at the
    // count, which now takes 4 out (110.00), and 15 are still on hand.
    let count = json!({"item_id": s.item, "location_id": s.location, "qty": "15",
                       "date": "2026-12-09"});
    let counted = t.create("/inventory/counts", count).await;
    assert_eq!(
        (counted["qty"].as_str(), counted["value"].as_str()),
        (Some("-2.000000"), Some("-55.00"))
    );
    t.create("/inventory/moves", receipt("2", "27.5", "2026-12-08"))
        .await;
    let counted = t
        .get(&format!(
            "/inventory/moves/{}",
            counted["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (
            counted["counted"].as_str(),
            counted["qty"].as_str(),
            counted["value"].as_str()
        ),
        (Some("15.000000"), Some("-4.000000"), Some("-110.00"))
    );
    let b = super::inventory::balance(&t, &s.item, &s.location).await;
    assert_eq!(
        (b["on_hand"].as_str(), b["value"].as_str()),
        (Some("15.000000"), Some("412.50"))
    );
    let trial = t.get("/accounting/reports/trial-balance").await;
    assert_eq!(trial["balanced"], true, "{trial}");
    assert_eq!(account_row(&trial, "1400")["closing"], "412.50");
    assert_eq!(account_row(&trial, "5100")["closing"], "110.00");

    let lines = super::inventory::ledger_replays(&t, &s.item).await;
    let dates: Vec<&str> = lines.iter().map(|l| l["date"].as_str().unwrap()).collect();
    assert_eq!(
        dates,
        [
            "2026-12-04",
            "2026-12-05",
            "2026-12-06",
            "2026-12-07",
            "2026-12-08",
            "2026-12-08",
            "2026-12-09"
        ]
    );
}

/// Landed costs and re-pricing change a receipt's value at its date; what was issued
/// since is valued again. Figures by hand:
/// - A 10 @ 10 on 12-01 (100.00), B 30 @ 20 on 12-02 (600.00), an issue of 20 on 12-03
///   at 17.5: 350.00, leaving 20 @ 17.5;
/// - 80.00 of freight split by quantity: A 20.00, B 60.00, so 12-02 holds 40 worth
///   780.00 (19.5) and the issue takes 390.00 (40.00 more cost of goods sold);
/// - A re-priced at 11: 110.00 + its 20.00 of freight = 130.00, so 12-02 holds 790.00
///   (19.75) and the issue takes 395.00; 20 @ 19.75 = 395.00 left.
#[tokio::test]
async fn landed_costs_and_re_pricing_value_receipts_and_later_issues_again() {
    let t = Tenant::with(&["inventory", "accounting"]).await;
    let s = item_and_location(&t, "LANDED").await;
    let receipt = |qty: &str, rate: &str, date: &str| {
        json!({"kind": "receipt", "item_id": s.item, "location_id": s.location,
               "qty": qty, "rate": rate, "date": date})
    };
    let a = t
        .create("/inventory/moves", receipt("10", "10", "2026-12-01"))
        .await;
    let b = t
        .create("/inventory/moves", receipt("30", "20", "2026-12-02"))
        .await;
    let mut issue = issue_body(&s, "20");
    issue["date"] = json!("2026-12-03");
    let issued = t.create("/inventory/moves", issue).await;
    assert_eq!(issued["value"], "350.00");
    let receipts = json!([a["id"], b["id"]]);

    let (status, problem) = t
        .call(
            Method::POST,
            "/inventory/receipt-costs",
            Some(json!({"kind": "landed_cost", "receipts": [issued["id"]], "amount": "80"})),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["receipts".to_string()]),
        "{problem}"
    );
    let freight = t
        .create(
            "/inventory/receipt-costs",
            json!({"kind": "landed_cost", "receipts": receipts, "amount": "80",
                   "reference": "FRT-7"}),
        )
        .await;
    let shares: Vec<&str> = freight["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"].as_str().unwrap())
        .collect();
    assert_eq!(shares, ["20.00", "60.00"]);
    assert_eq!(
        (freight["split_by"].as_str(), freight["cost_type"].as_str()),
        (Some("qty"), Some("freight"))
    );
    let moved = |m: &Value| format!("/inventory/moves/{}", m["id"].as_str().unwrap());
    assert_eq!(t.get(&moved(&issued)).await["value"], "390.00");
    let trial = t.get("/accounting/reports/trial-balance").await;
    assert_eq!(trial["balanced"], true, "{trial}");
    for (code, closing) in [("1400", "390.00"), ("2160", "-80.00"), ("5000", "390.00")] {
        assert_eq!(account_row(&trial, code)["closing"], closing, "{code}");
    }

    t.create(
        "/inventory/receipt-costs",
        json!({"kind": "reprice", "receipts": [a["id"]], "rate": "11"}),
    )
    .await;
    let a = t.get(&moved(&a)).await;
    assert_eq!(
        (
            a["rate"].as_str(),
            a["value"].as_str(),
            a["landed"].as_str()
        ),
        (Some("11.0000000000"), Some("130.00"), Some("20.00"))
    );
    assert_eq!(t.get(&moved(&issued)).await["value"], "395.00");
    let stock = super::inventory::balance(&t, &s.item, &s.location).await;
    assert_eq!(
        (stock["on_hand"].as_str(), stock["value"].as_str()),
        (Some("20.000000"), Some("395.00"))
    );
    let trial = t.get("/accounting/reports/trial-balance").await;
    assert_eq!(trial["balanced"], true, "{trial}");
    for (code, closing) in [("1400", "395.00"), ("2150", "-710.00"), ("5000", "395.00")] {
        assert_eq!(account_row(&trial, code)["closing"], closing, "{code}");
    }

    // Cancelling the issue puts its 20 back at 19.75 (790.00) and its cost of goods sold
    // with it. Cancelling B then takes out its 600.00 and its 60.00 of freight: A's 10
    // are left, 130.00.
    let cancel = |m: &Value| format!("/inventory/moves/{}/cancel", m["id"].as_str().unwrap());
    let undone = t.create(&cancel(&issued), json!(null)).await;
    assert_eq!(undone["reverses"], issued["id"]);
    assert_eq!(undone["balances"][0]["value"], "790.00");
    for (path, code) in [
        (cancel(&issued), "already_cancelled"),
        (cancel(&undone), "is_cancellation"),
    ] {
        let (status, problem) = t.call(Method::POST, &path, None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (409, Some(code)),
            "{problem}"
        );
    }
    t.create(&cancel(&b), json!(null)).await;
    let freight_on_b = json!({"kind": "landed_cost", "receipts": [b["id"]], "amount": "5"});
    let (status, problem) = t
        .call(Method::POST, "/inventory/receipt-costs", Some(freight_on_b))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("receipt_cancelled")),
        "{problem}"
    );
    let left = super::inventory::balance(&t, &s.item, &s.location).await;
    assert_eq!(
        (left["on_hand"].as_str(), left["value"].as_str()),
        (Some("10.000000"), Some("130.00"))
    );
    let trial = t.get("/accounting/reports/trial-balance").await;
    assert_eq!(trial["balanced"], true, "{trial}");
    for (code, closing) in [
        ("1400", "130.00"),
        ("2150", "-110.00"),
        ("2160", "-20.00"),
        ("5000", "0.00"),
    ] {
        assert_eq!(account_row(&trial, code)["closing"], closing, "{code}");
    }
    super::inventory::ledger_replays(&t, &s.item).await;
}

/// Fifty one-unit issues against ten on hand with Accounting enabled: ten succeed, and
/// the valuation entries sum to exactly the value that left stock.
#[tokio::test]
async fn concurrent_issues_post_one_valuation_entry_each() {
    let t = Tenant::with(&["inventory", "accounting"]).await;
    let s = item_and_location(&t, "LAST").await;
    receive(&t, &s, "10", "3.33").await;
    let t = Arc::new(t);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (t, body) = (t.clone(), issue_body(&s, "1"));
            tokio::spawn(async move { issue_until_answered(&t, body).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((ok, refused), (10, 40), "{statuses:?}");
    let trial = t.get("/accounting/reports/trial-balance").await;
    assert_eq!(account_row(&trial, "5000")["closing"], "33.30");
    assert_eq!(account_row(&trial, "1400")["closing"], "0.00");
    let issued = t
        .app
        .scalar(&format!(
            "SELECT (-sum(value_change) * 100)::bigint FROM \"t_{}__inventory\".ledger WHERE qty_change < 0",
            t.slug
        ))
        .await;
    assert_eq!(issued, 3330);
    assert_eq!(
        t.count("accounting", "entries WHERE source LIKE 'inventory.move:%'")
            .await,
        11
    );
}

/// Twenty postings into a period while it is being closed: each is posted before the
/// close (and counted by it) or refused; none lands after it.
#[tokio::test]
async fn postings_racing_a_close_land_before_it_or_not_at_all() {
    let t = Tenant::with(&["accounting"]).await;
    let (gen_journal, a) = chart(&t).await;
    let period = t
        .create(
            "/accounting/periods",
            json!({"name": "2026-11", "start_date": "2026-11-01", "end_date": "2026-11-30"}),
        )
        .await;
    let id = period["id"].as_str().unwrap().to_string();
    let t = Arc::new(t);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let poster = t.clone();
        let body = entry(
            &gen_journal,
            "2026-11-10",
            &a["1010"],
            &a["3000"],
            &format!("{}.00", i + 1),
        );
        tasks.push(tokio::spawn(async move {
            let answer =
                poster.call_until_admitted(Method::POST, "/accounting/entries", Some(body));
            answer.await.0
        }));
        if i == 5 {
            let (t, id) = (t.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let path = format!("/accounting/periods/{id}/close");
                t.call_until_admitted(Method::POST, &path, None).await.0 + 1000
            }));
        }
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert!(
        statuses.contains(&1200),
        "the close succeeded: {statuses:?}"
    );
    let posted = statuses.iter().filter(|s| **s == 201).count() as i64;
    let refused = statuses.iter().filter(|s| **s == 422).count() as i64;
    assert_eq!(posted + refused, 20, "{statuses:?}");
    let closed = t.get(&format!("/accounting/periods/{id}")).await;
    assert_eq!(
        closed["closed_entries"].as_i64(),
        Some(posted),
        "{closed} {statuses:?}"
    );
    assert_eq!(
        t.count("accounting", "entries WHERE date = '2026-11-10'")
            .await,
        posted
    );
}
