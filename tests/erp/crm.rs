//! CRM's pipeline over HTTP: stage rules, converting a lead once, activities.

use reqwest::Method;
use serde_json::json;

use super::{Tenant, fields};

#[tokio::test]
async fn opportunities_follow_the_stage_rules() {
    let t = Tenant::with(&["crm"]).await;
    let deal = t
        .create(
            "/crm/opportunities",
            json!({"name": "Globex rollout", "amount": "12000.00"}),
        )
        .await;
    assert_eq!(deal["stage"], "qualification");
    let path = format!("/crm/opportunities/{}", deal["id"].as_str().unwrap());
    let (status, problem) = t
        .call(
            Method::POST,
            "/crm/opportunities",
            Some(json!({"name": "x", "lead_id": deal["id"]})),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["lead_id".to_string()]),
        "{problem}"
    );
    let patch = |body| t.call(Method::PATCH, &path, Some(body));

    let (status, problem) = patch(json!({"stage": "closed"})).await;
    assert_eq!((status, fields(&problem)), (422, vec!["stage".to_string()]));
    let (status, problem) = patch(json!({"stage": "lost"})).await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["lost_reason".to_string()])
    );
    let (status, lost) = patch(json!({"stage": "lost", "lost_reason": "price"})).await;
    assert_eq!(
        (status, lost["probability"].as_i64()),
        (200, Some(0)),
        "{lost}"
    );
    let (status, problem) = patch(json!({"stage": "won"})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("invalid_transition"))
    );
    let (status, reopened) = patch(json!({"stage": "negotiation"})).await;
    assert_eq!(status, 200, "{reopened}");
    assert!(reopened["lost_reason"].is_null(), "{reopened}");
    let (status, won) = patch(json!({"stage": "won"})).await;
    assert_eq!((status, won["probability"].as_i64()), (200, Some(100)));
    let (status, _) = patch(json!({"stage": "proposal"})).await;
    assert_eq!(status, 409, "won is final");
}

#[tokio::test]
async fn converting_a_lead_makes_contact_company_and_opportunity_once() {
    let t = Tenant::with(&["crm"]).await;
    let lead = t
        .create(
            "/crm/leads",
            json!({"name": "Hank Scorpio", "company_name": "Globex", "email": "Hank@Globex.example"}),
        )
        .await;
    let path = format!("/crm/leads/{}/convert", lead["id"].as_str().unwrap());
    let (status, first) = t
        .call(Method::POST, &path, Some(json!({"amount": "5000"})))
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["lead"]["status"], "converted");
    assert_eq!(first["contact"]["email"], "hank@globex.example");
    assert_eq!(first["opportunity"]["name"], "Globex");
    let (status, again) = t.call(Method::POST, &path, None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["opportunity"]["id"], first["opportunity"]["id"]);
    assert_eq!(again["contact"]["id"], first["contact"]["id"]);
    assert_eq!(t.count("crm", "contacts").await, 1);
    assert_eq!(t.count("crm", "companies").await, 1);
    assert_eq!(t.count("crm", "opportunities").await, 1);
    let (status, problem) = t
        .call(
            Method::PATCH,
            &format!("/crm/leads/{}", lead["id"].as_str().unwrap()),
            Some(json!({"notes": "x"})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("invalid_transition"))
    );

    let other = t
        .create(
            "/crm/leads",
            json!({"name": "Someone", "email": "hank@globex.example", "status": "disqualified"}),
        )
        .await;
    let other_path = format!("/crm/leads/{}/convert", other["id"].as_str().unwrap());
    let (status, _) = t.call(Method::POST, &other_path, None).await;
    assert_eq!(status, 409, "a disqualified lead is not converted");
}

#[tokio::test]
async fn activities_attach_to_any_crm_record() {
    let t = Tenant::with(&["crm"]).await;
    let company = t
        .create(
            "/crm/companies",
            json!({"name": "Initech", "is_supplier": true}),
        )
        .await;
    let call = t
        .create(
            "/crm/activities",
            json!({"kind": "call", "subject": "Intro call", "on_type": "company", "on_id": company["id"], "due_on": "2026-12-03"}),
        )
        .await;
    assert_eq!(call["done"], false);
    let listed = t
        .get(&format!(
            "/crm/activities?on_id={}",
            company["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    for (body, field) in [
        (
            json!({"kind": "fax", "subject": "x", "on_type": "company", "on_id": company["id"]}),
            "kind",
        ),
        (
            json!({"kind": "note", "subject": "x", "on_type": "lead", "on_id": company["id"]}),
            "on_id",
        ),
        (
            json!({"kind": "note", "subject": "", "on_type": "company", "on_id": company["id"]}),
            "subject",
        ),
    ] {
        let (status, problem) = t
            .call(Method::POST, "/crm/activities", Some(body.clone()))
            .await;
        assert_eq!(
            (status, fields(&problem)),
            (422, vec![field.to_string()]),
            "{body}: {problem}"
        );
    }
    let suppliers = t.get("/crm/companies?is_supplier=true").await;
    assert_eq!(suppliers["data"][0]["name"], "Initech");
}
