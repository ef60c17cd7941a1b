//! The OpenAPI document of a tenant: what its modules' manifests describe, for the
//! modules enabled for it, and answers that match it.

use reqwest::Method;
use serde_json::{Value, json};

use super::Tenant;

async fn document(tenant: &Tenant) -> Value {
    let (status, doc) = tenant.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200, "{doc}");
    doc
}

fn modules_of(doc: &Value) -> Vec<&str> {
    doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

/// The component schema a `$ref` points at.
fn resolve<'a>(doc: &'a Value, schema: &Value) -> &'a Value {
    let name = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("not a component ref: {schema}"));
    &doc["components"]["schemas"][name]
}

#[tokio::test]
async fn the_document_covers_the_tenants_modules_and_follows_enabling() {
    let tenant = Tenant::with(&["inventory"]).await;
    let anonymous = tenant
        .app
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(anonymous.status().as_u16(), 401);

    let doc = document(&tenant).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(modules_of(&doc), ["inventory"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let create = &doc["paths"]["/api/v1/inventory/moves"]["post"];
    assert_eq!(create["x-eerp-permission"], "inventory.moves.create");
    assert_eq!(
        create["responses"]["409"]["$ref"],
        "#/components/responses/409"
    );
    let body = resolve(
        &doc,
        &create["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(body["additionalProperties"], false, "{body}");
    assert!(doc["paths"].get("/api/v1/accounting/entries").is_none());

    let (status, _) = tenant
        .app
        .admin(
            Method::PUT,
            &format!("/tenants/{}/modules/accounting", tenant.slug),
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, 200);
    let doc = document(&tenant).await;
    assert_eq!(modules_of(&doc), ["accounting", "inventory"]);
    let trial = &doc["paths"]["/api/v1/accounting/reports/trial-balance"]["get"];
    let params: Vec<&str> = trial["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["from", "to"]);

    let (status, _) = tenant
        .app
        .admin(
            Method::DELETE,
            &format!("/tenants/{}/modules/inventory", tenant.slug),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(modules_of(&document(&tenant).await), ["accounting"]);
}

#[tokio::test]
async fn a_created_row_has_every_field_its_schema_requires() {
    let tenant = Tenant::with(&["inventory"]).await;
    let doc = document(&tenant).await;
    let created = &doc["paths"]["/api/v1/inventory/items"]["post"]["responses"]["201"];
    let schema = resolve(&doc, &created["content"]["application/json"]["schema"]);
    let (status, item) = tenant
        .call(
            Method::POST,
            "/inventory/items",
            Some(json!({"sku": "A-1", "name": "Anvil"})),
        )
        .await;
    assert_eq!(status, 201, "{item}");
    for field in schema["required"].as_array().unwrap() {
        let field = field.as_str().unwrap();
        assert!(item.get(field).is_some(), "{field} missing from {item}");
    }
    for field in item.as_object().unwrap().keys() {
        assert!(
            schema["properties"].get(field).is_some(),
            "{field} is not in the schema: {schema}"
        );
    }
    let link = &created["links"]["inventory_get_items_by_id"];
    assert_eq!(link["parameters"]["id"], "$response.body#/id");
}
