//! HR over HTTP: the reporting tree without cycles, leave requests that never overlap,
//! and balances that pending requests can never drive negative.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Tenant, fields};

struct People {
    employee: String,
    annual: String,
}

/// An employee with `days` of annual leave.
async fn staffed(t: &Tenant, days: &str) -> People {
    let employee = t
        .create(
            "/hr/employees",
            json!({"name": "Grace Hopper", "email": "grace@example.com"}),
        )
        .await;
    let annual = t
        .create(
            "/hr/leave-types",
            json!({"code": "annual", "name": "Annual leave"}),
        )
        .await;
    let people = People {
        employee: employee["id"].as_str().unwrap().to_string(),
        annual: annual["id"].as_str().unwrap().to_string(),
    };
    t.create(
        "/hr/allocations",
        json!({"employee_id": people.employee, "leave_type_id": people.annual, "days": days}),
    )
    .await;
    people
}

fn request(p: &People, from: &str, to: &str, half_day: bool) -> Value {
    json!({"employee_id": p.employee, "leave_type_id": p.annual, "from_date": from, "to_date": to, "half_day": half_day})
}

async fn act(t: &Tenant, id: &Value, action: &str) -> (u16, Value) {
    let id = id.as_str().unwrap();
    t.call(
        Method::POST,
        &format!("/hr/leave-requests/{id}/{action}"),
        None,
    )
    .await
}

async fn balance(t: &Tenant, p: &People) -> Value {
    let b = t
        .get(&format!("/hr/employees/{}/balances", p.employee))
        .await;
    b["balances"][0].clone()
}

#[tokio::test]
async fn the_balance_is_allocated_less_approved_with_pending_apart() {
    let t = Tenant::with(&["hr"]).await;
    let p = staffed(&t, "30").await;
    // Monday to Thursday: four working days.
    let week = t
        .create(
            "/hr/leave-requests",
            request(&p, "2026-12-07", "2026-12-10", false),
        )
        .await;
    assert_eq!(week["days"], "4.0");
    assert_eq!(act(&t, &week["id"], "submit").await.0, 200);
    let (status, approved) = act(&t, &week["id"], "approve").await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved"))
    );
    let day = t
        .create(
            "/hr/leave-requests",
            request(&p, "2026-12-14", "2026-12-14", false),
        )
        .await;
    act(&t, &day["id"], "submit").await;
    let b = balance(&t, &p).await;
    assert_eq!(
        (
            b["allocated"].as_str(),
            b["approved"].as_str(),
            b["pending"].as_str(),
            b["balance"].as_str()
        ),
        (Some("30.0"), Some("4.0"), Some("1.0"), Some("26.0"))
    );
    // A weekend alone is no request.
    let (status, problem) = t
        .call(
            Method::POST,
            "/hr/leave-requests",
            Some(request(&p, "2026-12-12", "2026-12-13", false)),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["from_date".to_string()])
    );

    // The company's holiday list: Thursday 12-24 a holiday, and a Sunday-to-Thursday
    // week (Friday and Saturday off). Sunday 12-20 to Saturday 12-26 then holds 4 days.
    for holiday in [
        json!({"date": "2026-12-24", "name": "Christmas Eve"}),
        json!({"weekday": "friday", "name": "Weekend"}),
        json!({"weekday": "saturday", "name": "Weekend"}),
    ] {
        t.create("/hr/holidays", holiday).await;
    }
    let (status, problem) = t
        .call(
            Method::POST,
            "/hr/holidays",
            Some(json!({"date": "2026-12-23", "weekday": "monday", "name": "Both"})),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["date".to_string()]),
        "{problem}"
    );
    let mut christmas = request(&p, "2026-12-20", "2026-12-26", false);
    christmas["half_day_date"] = json!("2026-12-25");
    let (status, problem) = t
        .call(Method::POST, "/hr/leave-requests", Some(christmas.clone()))
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["half_day_date".to_string()]),
        "a day off is no half day: {problem}"
    );
    // Its last working day, Wednesday 12-23, as a half day: 3.5.
    christmas["half_day_date"] = json!("2026-12-23");
    let christmas = t.create("/hr/leave-requests", christmas).await;
    assert_eq!(christmas["days"], "3.5");
}

#[tokio::test]
async fn requests_never_overlap_but_two_half_days_share_a_date() {
    let t = Tenant::with(&["hr"]).await;
    let p = staffed(&t, "30").await;
    let week = t
        .create(
            "/hr/leave-requests",
            request(&p, "2026-12-07", "2026-12-11", false),
        )
        .await;
    act(&t, &week["id"], "submit").await;
    act(&t, &week["id"], "approve").await;
    let before = t.count("hr", "leave_requests").await;
    let (status, problem) = t
        .call(
            Method::POST,
            "/hr/leave-requests",
            Some(request(&p, "2026-12-11", "2026-12-14", false)),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("leave_overlap")),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("approved leave from 2026-12-07"),
        "{problem}"
    );
    assert_eq!(t.count("hr", "leave_requests").await, before);

    t.create(
        "/hr/leave-requests",
        request(&p, "2026-12-15", "2026-12-15", true),
    )
    .await;
    let afternoon = t
        .create(
            "/hr/leave-requests",
            request(&p, "2026-12-15", "2026-12-15", true),
        )
        .await;
    assert_eq!(afternoon["days"], "0.5");
    for half_day in [true, false] {
        let (status, _) = t
            .call(
                Method::POST,
                "/hr/leave-requests",
                Some(request(&p, "2026-12-15", "2026-12-15", half_day)),
            )
            .await;
        assert_eq!(
            status, 409,
            "a third claim on 2026-12-15 (half day: {half_day})"
        );
    }
    // Cancelling frees the dates.
    assert_eq!(act(&t, &week["id"], "cancel").await.0, 200);
    t.create(
        "/hr/leave-requests",
        request(&p, "2026-12-11", "2026-12-14", false),
    )
    .await;
}

#[tokio::test]
async fn pending_requests_never_drive_the_balance_negative() {
    let t = Tenant::with(&["hr"]).await;
    let p = staffed(&t, "2").await;
    let two = t
        .create(
            "/hr/leave-requests",
            request(&p, "2026-12-07", "2026-12-08", false),
        )
        .await;
    assert_eq!(act(&t, &two["id"], "submit").await.0, 200);
    let one = t
        .create(
            "/hr/leave-requests",
            request(&p, "2026-12-09", "2026-12-09", false),
        )
        .await;
    let (status, problem) = act(&t, &one["id"], "submit").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("insufficient_balance")),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("2 pending"),
        "{problem}"
    );
    assert_eq!(act(&t, &two["id"], "approve").await.0, 200);

    let allocations = t
        .get(&format!("/hr/allocations?employee_id={}", p.employee))
        .await;
    let allocation = allocations["data"][0]["id"].as_str().unwrap().to_string();
    let (status, problem) = t
        .call(
            Method::PATCH,
            &format!("/hr/allocations/{allocation}"),
            Some(json!({"days": "1"})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("insufficient_balance"))
    );
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/hr/allocations/{allocation}"),
            None,
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(balance(&t, &p).await["balance"], "0.0");
}

#[tokio::test]
async fn transitions_follow_the_workflow() {
    let t = Tenant::with(&["hr"]).await;
    let p = staffed(&t, "10").await;
    let r = t
        .create(
            "/hr/leave-requests",
            request(&p, "2026-12-07", "2026-12-07", false),
        )
        .await;
    let (status, problem) = act(&t, &r["id"], "approve").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("invalid_transition"))
    );
    let id = r["id"].as_str().unwrap();
    let (status, changed) = t
        .call(
            Method::PATCH,
            &format!("/hr/leave-requests/{id}"),
            Some(json!({"to_date": "2026-12-08"})),
        )
        .await;
    assert_eq!(
        (status, changed["days"].as_str()),
        (200, Some("2.0")),
        "{changed}"
    );
    act(&t, &r["id"], "submit").await;
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/hr/leave-requests/{id}"),
            Some(json!({"reason": "late"})),
        )
        .await;
    assert_eq!(status, 409, "only a draft changes");
    assert_eq!(act(&t, &r["id"], "reject").await.0, 200);
    assert_eq!(act(&t, &r["id"], "approve").await.0, 409);
    assert_eq!(act(&t, &r["id"], "cancel").await.0, 409);

    // A leave type needing two approvals: the first approver cannot give the second.
    let two = t
        .create(
            "/hr/leave-types",
            json!({"code": "study", "name": "Study leave", "approvals": 2}),
        )
        .await;
    t.create(
        "/hr/allocations",
        json!({"employee_id": p.employee, "leave_type_id": two["id"], "days": "5"}),
    )
    .await;
    let mut body = request(&p, "2026-12-15", "2026-12-15", false);
    body["leave_type_id"] = two["id"].clone();
    let study = t.create("/hr/leave-requests", body).await;
    act(&t, &study["id"], "submit").await;
    let (status, first) = act(&t, &study["id"], "approve").await;
    assert_eq!(
        (
            status,
            first["status"].as_str(),
            first["first_approved_by"].as_str()
        ),
        (200, Some("submitted"), Some("test-user")),
        "{first}"
    );
    let (status, problem) = act(&t, &study["id"], "approve").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("second_approver_needed"))
    );
    let slug = eerp_tenancy::id::TenantSlug::parse(&t.slug).unwrap();
    let manager = t.app.token_as(&slug, "second-approver", &["admin"]);
    let path = format!(
        "/api/v1/hr/leave-requests/{}/approve",
        study["id"].as_str().unwrap()
    );
    let response = t.app.send(Method::POST, &path, Some(&manager), None).await;
    let (status, _, second) = eerp_e2e::status_and_json(response).await;
    assert_eq!(
        (status, second["status"].as_str()),
        (200, Some("approved")),
        "{second}"
    );
}

#[tokio::test]
async fn reporting_lines_and_departments_never_form_a_cycle() {
    let t = Tenant::with(&["hr"]).await;
    let a = t.create("/hr/employees", json!({"name": "A"})).await;
    let b = t
        .create("/hr/employees", json!({"name": "B", "manager_id": a["id"]}))
        .await;
    let c = t
        .create("/hr/employees", json!({"name": "C", "manager_id": b["id"]}))
        .await;
    let a_id = a["id"].as_str().unwrap();
    for manager in [&c["id"], &a["id"]] {
        let (status, problem) = t
            .call(
                Method::PATCH,
                &format!("/hr/employees/{a_id}"),
                Some(json!({"manager_id": manager})),
            )
            .await;
        assert_eq!(
            (status, fields(&problem)),
            (422, vec!["manager_id".to_string()]),
            "{problem}"
        );
    }
    let top = t
        .create(
            "/hr/departments",
            json!({"code": "ops", "name": "Operations"}),
        )
        .await;
    let sub = t
        .create(
            "/hr/departments",
            json!({"code": "wh", "name": "Warehouse", "parent_id": top["id"]}),
        )
        .await;
    let top_id = top["id"].as_str().unwrap();
    let (status, problem) = t
        .call(
            Method::PATCH,
            &format!("/hr/departments/{top_id}"),
            Some(json!({"parent_id": sub["id"]})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("cycle")),
        "{problem}"
    );
    assert_eq!(
        t.get(&format!("/hr/employees/{a_id}")).await["manager_id"],
        Value::Null
    );
}

/// Ten overlapping requests of one employee at once: exactly one is accepted.
#[tokio::test]
async fn concurrent_overlapping_requests_admit_one() {
    let t = Tenant::with(&["hr"]).await;
    let p = staffed(&t, "30").await;
    let body = request(&p, "2026-12-07", "2026-12-09", false);
    let t = Arc::new(t);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (t, body) = (t.clone(), body.clone());
            tokio::spawn(async move {
                t.call_until_admitted(Method::POST, "/hr/leave-requests", Some(body))
                    .await
                    .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
}
