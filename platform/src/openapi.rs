//! The API description a tenant's clients read: one OpenAPI 3.1 document per tenant,
//! built from the manifests of the module versions that tenant is served, with the
//! platform's own parts (the bearer scheme, problem+json errors, permissions).
//!
//! Modules describe their routes with JSON Schemas whose `$ref`s point into their own
//! manifest (`#/$defs/<name>`); here each name becomes `<module>.<name>` under
//! `components/schemas`, so two modules' types never collide. The host never validates
//! requests against these schemas: the module does, and it is the authority.

use std::collections::BTreeSet;

use eerp_abi::manifest::{Manifest, ParameterIn, Route};
use serde_json::{Map, Value, json};

const DEFS: &str = "#/$defs/";
const COMPONENTS: &str = "#/components/schemas/";

/// Errors any module route may answer, with what they mean; routes with a body add
/// [`BODY_ERRORS`].
const ERRORS: [(u16, &str); 10] = [
    (
        400,
        "The request could not be read: a bad query parameter, JSON or field type.",
    ),
    (401, "No valid bearer token, or its tenant does not exist."),
    (
        403,
        "The token lacks the route's permission (`permission` names it), or the tenant is suspended.",
    ),
    (404, "No such row, route or module for this tenant."),
    (
        409,
        "The row's state forbids the change (`code` says which rule).",
    ),
    (
        422,
        "The values break a rule of the module; `errors` names each field.",
    ),
    (
        429,
        "The tenant is over its rate or concurrency limit; retry after `Retry-After`.",
    ),
    (
        500,
        "The module failed (out of fuel or memory, or crashed); nothing was changed.",
    ),
    (
        503,
        "The database or the sandboxes are busy or unreachable; retry after `Retry-After`.",
    ),
    (504, "The module ran out of time; nothing was changed."),
];
const BODY_ERRORS: [(u16, &str); 3] = [
    (408, "The body did not arrive in time."),
    (413, "The body is larger than the tenant may send."),
    (415, "The body is not `application/json`."),
];

/// Checks what a manifest says about its routes for API clients: every `$ref` names one
/// of its schemas, parameters are where the path says, answers are successes.
///
/// # Errors
/// What is wrong, naming the route or schema.
pub fn check(manifest: &Manifest) -> Result<(), String> {
    for (name, schema) in &manifest.schemas {
        check_refs(manifest, schema).map_err(|e| format!("schema `{name}`: {e}"))?;
    }
    for route in &manifest.routes {
        check_route(manifest, route)
            .map_err(|e| format!("route `{} {}`: {e}", route.method, route.path))?;
    }
    Ok(())
}

fn check_route(manifest: &Manifest, route: &Route) -> Result<(), String> {
    let in_path = path_names(&route.path);
    let mut seen = BTreeSet::new();
    for p in &route.parameters {
        if !seen.insert((p.name.as_str(), p.location == ParameterIn::Path)) {
            return Err(format!("parameter `{}` is declared twice", p.name));
        }
        if p.location == ParameterIn::Path && !in_path.contains(&p.name.as_str()) {
            return Err(format!(
                "path parameter `{}` is not a `{{{}}}` of the path",
                p.name, p.name
            ));
        }
        check_refs(manifest, &p.schema)?;
    }
    if let Some(request) = &route.request {
        check_refs(manifest, request)?;
    }
    for response in &route.responses {
        if !(200..300).contains(&response.status) {
            return Err(format!(
                "answer {} is not a success (200..=299); errors are the host's to describe",
                response.status
            ));
        }
        if let Some(schema) = &response.schema {
            check_refs(manifest, schema)?;
        }
    }
    Ok(())
}

fn check_refs(manifest: &Manifest, schema: &Value) -> Result<(), String> {
    match schema {
        Value::Object(object) => {
            if let Some(reference) = object.get("$ref") {
                let name = reference
                    .as_str()
                    .and_then(|r| r.strip_prefix(DEFS))
                    .ok_or_else(|| {
                        format!("`$ref` {reference} must be `#/$defs/<name>` of the manifest")
                    })?;
                if !manifest.schemas.contains_key(&unescape(name)) {
                    return Err(format!(
                        "`$ref` {reference} names a schema the manifest does not have"
                    ));
                }
            }
            object.values().try_for_each(|v| check_refs(manifest, v))
        }
        Value::Array(items) => items.iter().try_for_each(|v| check_refs(manifest, v)),
        _ => Ok(()),
    }
}

/// A JSON-pointer segment back to the name it encodes.
fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// The `{name}`s of a path template.
fn path_names(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The name a module's schema has in the document: `<module>.<name>`, with characters
/// OpenAPI does not allow in component names replaced.
fn component_name(module: &str, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    format!("{module}.{name}")
}

/// `schema` with its `$ref`s pointed at the document's components.
fn relinked(module: &str, schema: &Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value.as_str()) {
                        ("$ref", Some(r)) => match r.strip_prefix(DEFS) {
                            Some(name) => json!(format!(
                                "{COMPONENTS}{}",
                                component_name(module, &unescape(name))
                            )),
                            None => value.clone(),
                        },
                        _ => relinked(module, value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| relinked(module, v)).collect()),
        other => other.clone(),
    }
}

/// The OpenAPI 3.1 document for `tenant`, which is served `modules` (in any order).
pub fn document(tenant: &str, host_version: &str, modules: &[&Manifest]) -> Value {
    let mut modules = modules.to_vec();
    modules.sort_by(|a, b| a.name.cmp(&b.name));
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert("Problem".into(), problem_schema());
    let mut tags = Vec::new();
    for manifest in &modules {
        let module = manifest.name.as_str();
        tags.push(json!({
            "name": module,
            "description": format!("The {module} module, version {}.", manifest.version),
        }));
        for (name, schema) in &manifest.schemas {
            schemas.insert(component_name(module, name), relinked(module, schema));
        }
        for route in &manifest.routes {
            let path = format!("/api/v1/{module}{}", route.path);
            let item = paths
                .entry(path)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(item) = item {
                let mut operation = operation(module, route);
                if let Some(links) = links(module, route, &manifest.routes) {
                    operation["responses"]["201"]["links"] = links;
                }
                item.insert(route.method.to_ascii_lowercase(), operation);
            }
        }
    }
    let mut responses = Map::new();
    for (status, description) in ERRORS.iter().chain(&BODY_ERRORS) {
        responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {
                    "application/problem+json": { "schema": { "$ref": format!("{COMPONENTS}Problem") } }
                }
            }),
        );
    }
    let served: Vec<String> = modules
        .iter()
        .map(|m| format!("{} {}", m.name, m.version))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("EERP API of tenant {tenant}"),
            "version": host_version,
            "description": format!(
                "The routes of the modules enabled for this tenant ({}). Every request needs \
                 a bearer token of the tenant; each operation names the permission it needs \
                 (`x-eerp-permission`). Errors are RFC 9457 problem+json.",
                if served.is_empty() { "none".to_string() } else { served.join(", ") }
            ),
        },
        "security": [{ "bearer": [] }],
        "tags": tags,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
            },
            "schemas": schemas,
            "responses": responses,
        },
    })
}

fn operation(module: &str, route: &Route) -> Value {
    let relink = |schema: &Value| relinked(module, schema);
    let mut operation = Map::new();
    operation.insert("operationId".into(), json!(operation_id(module, route)));
    operation.insert("tags".into(), json!([module]));
    if !route.summary.is_empty() {
        operation.insert("summary".into(), json!(route.summary));
    }
    operation.insert(
        "description".into(),
        json!(format!("Needs the `{}` permission.", route.permission)),
    );
    operation.insert("x-eerp-permission".into(), json!(route.permission));
    operation.insert(
        "parameters".into(),
        Value::Array(parameters(route, &relink)),
    );
    let described = route.request.is_some() || !route.responses.is_empty();
    let takes_body = route.request.is_some()
        || (!described && ["POST", "PUT", "PATCH"].contains(&route.method.as_str()));
    if takes_body {
        let schema = route.request.as_ref().map(relink).unwrap_or(json!({}));
        operation.insert(
            "requestBody".into(),
            json!({
                "required": route.request.is_some(),
                "content": { "application/json": { "schema": schema } }
            }),
        );
    }
    let mut responses = Map::new();
    for answer in &route.responses {
        let mut response = json!({ "description": success_text(answer.status) });
        if let Some(schema) = &answer.schema {
            response["content"] = json!({ "application/json": { "schema": relink(schema) } });
        }
        responses.insert(answer.status.to_string(), response);
    }
    if !described {
        responses.insert(
            "200".into(),
            json!({
                "description": "The module's answer (it does not describe it).",
                "content": { "application/json": { "schema": {} } }
            }),
        );
    }
    let errors = ERRORS
        .iter()
        .chain(BODY_ERRORS.iter().filter(|_| takes_body));
    for (status, _) in errors {
        responses.insert(
            status.to_string(),
            json!({ "$ref": format!("#/components/responses/{status}") }),
        );
    }
    operation.insert("responses".into(), Value::Object(responses));
    Value::Object(operation)
}

/// What a client can do next with the row a create answers: every route under
/// `<its path>/{id}`, with `id` taken from the answer. Clients (and schemathesis) follow
/// them to reach the row they made.
fn links(module: &str, route: &Route, routes: &[Route]) -> Option<Value> {
    route.responses.iter().find(|r| r.status == 201)?;
    let below = format!("{}/{{id}}", route.path.trim_end_matches('/'));
    let links: Map<String, Value> = routes
        .iter()
        .filter(|r| r.path == below || r.path.starts_with(&format!("{below}/")))
        .map(|r| {
            let id = operation_id(module, r);
            let link = json!({
                "operationId": id,
                "parameters": { "id": "$response.body#/id" },
            });
            (id, link)
        })
        .collect();
    (!links.is_empty()).then_some(Value::Object(links))
}

/// Path parameters from the template (described as the module declares them, or as
/// plain strings), then the declared query parameters.
fn parameters(route: &Route, relink: &dyn Fn(&Value) -> Value) -> Vec<Value> {
    let declared = |name: &str, location: ParameterIn| {
        route
            .parameters
            .iter()
            .find(|p| p.name == name && p.location == location)
    };
    let mut parameters: Vec<Value> = path_names(&route.path)
        .into_iter()
        .map(|name| {
            let p = declared(name, ParameterIn::Path);
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "description": p.map(|p| p.description.as_str()).unwrap_or(""),
                "schema": p.map(|p| relink(&p.schema)).unwrap_or(json!({ "type": "string" })),
            })
        })
        .collect();
    parameters.extend(
        route
            .parameters
            .iter()
            .filter(|p| p.location == ParameterIn::Query)
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "description": p.description,
                    "schema": relink(&p.schema),
                })
            }),
    );
    parameters
}

/// `crm_get_contacts_by_id`: unique per (module, method, path), usable as an identifier.
fn operation_id(module: &str, route: &Route) -> String {
    let mut id = format!("{module}_{}", route.method.to_ascii_lowercase());
    for part in route.path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => {
                id.push_str("by_");
                id.push_str(name);
            }
            None => id.extend(
                part.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
            ),
        }
    }
    id
}

fn success_text(status: u16) -> &'static str {
    match status {
        201 => "Created.",
        202 => "Accepted.",
        204 => "Done; no body.",
        _ => "OK.",
    }
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "An RFC 9457 problem.",
        "required": ["type", "title", "status", "detail", "request_id"],
        "properties": {
            "type": { "type": "string", "format": "uri", "description": "Stable URI of the kind of problem (docs/problems.md)." },
            "title": { "type": "string", "description": "The kind of problem, in words." },
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "detail": { "type": "string", "description": "What was wrong and what to do." },
            "request_id": { "type": "string", "description": "Quote it to an operator." },
            "code": { "type": "string", "description": "The module's reason, for programs (`insufficient_stock`)." },
            "errors": {
                "type": "array",
                "description": "Each invalid field.",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": { "type": "string" },
                        "message": { "type": "string" }
                    }
                }
            },
            "permission": { "type": "string", "description": "The permission the token lacks." }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eerp_abi::manifest::{Parameter, RouteResponse};

    fn manifest(name: &str) -> Manifest {
        serde_json::from_value(json!({
            "name": name,
            "version": "1.2.0",
            "abi_version": eerp_abi::ABI_VERSION,
            "routes": [
                {
                    "method": "GET", "path": "/things/{id}", "permission": format!("{name}.things.read"),
                    "summary": "Read a thing",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }],
                    "responses": [{ "status": 200, "schema": { "$ref": "#/$defs/Thing" } }]
                },
                { "method": "POST", "path": "/legacy", "permission": format!("{name}.legacy.create") }
            ],
            "schemas": {
                "Thing": { "type": "object", "properties": { "parts": { "type": "array", "items": { "$ref": "#/$defs/Part" } } } },
                "Part": { "type": "string" }
            }
        }))
        .unwrap()
    }

    #[test]
    fn schemas_are_named_per_module_and_refs_follow() {
        let doc = document("acme", "0.1.0", &[&manifest("shop"), &manifest("crm")]);
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["shop.Thing"]["properties"]["parts"]["items"]["$ref"],
            "#/components/schemas/shop.Part"
        );
        assert!(schemas.get("crm.Thing").is_some());
        let get = &doc["paths"]["/api/v1/shop/things/{id}"]["get"];
        assert_eq!(get["operationId"], "shop_get_things_by_id");
        assert_eq!(get["x-eerp-permission"], "shop.things.read");
        assert_eq!(get["parameters"][0]["schema"]["format"], "uuid");
        assert_eq!(
            get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/shop.Thing"
        );
        assert_eq!(
            get["responses"]["403"]["$ref"],
            "#/components/responses/403"
        );
        assert!(get["responses"].get("415").is_none());
        assert_eq!(doc["tags"][0]["name"], "crm", "modules in name order");
    }

    #[test]
    fn a_create_links_to_the_routes_of_the_row_it_made() {
        let mut m = manifest("shop");
        m.routes.push(Route {
            method: "POST".into(),
            path: "/things".into(),
            permission: "shop.things.create".into(),
            responses: vec![RouteResponse {
                status: 201,
                schema: Some(json!({ "$ref": "#/$defs/Thing" })),
            }],
            ..Route::default()
        });
        let doc = document("acme", "0.1.0", &[&m]);
        let links = &doc["paths"]["/api/v1/shop/things"]["post"]["responses"]["201"]["links"];
        assert_eq!(
            links["shop_get_things_by_id"]["parameters"]["id"],
            "$response.body#/id"
        );
        assert_eq!(links.as_object().unwrap().len(), 1, "not /legacy: {links}");
    }

    #[test]
    fn an_undescribed_route_takes_and_answers_any_json() {
        let doc = document("acme", "0.1.0", &[&manifest("shop")]);
        let post = &doc["paths"]["/api/v1/shop/legacy"]["post"];
        assert_eq!(post["requestBody"]["required"], false);
        assert_eq!(
            post["responses"]["200"]["content"]["application/json"]["schema"],
            json!({})
        );
        assert_eq!(
            post["responses"]["415"]["$ref"],
            "#/components/responses/415"
        );
    }

    #[test]
    fn dangling_refs_misplaced_parameters_and_error_answers_are_refused() {
        assert_eq!(check(&manifest("shop")), Ok(()));
        let mut m = manifest("shop");
        m.schemas.remove("Part");
        assert!(check(&m).unwrap_err().contains("schema `Thing`"));

        let mut m = manifest("shop");
        m.routes[0].parameters.push(Parameter {
            name: "other".into(),
            location: ParameterIn::Path,
            required: true,
            description: String::new(),
            schema: json!({}),
        });
        assert!(
            check(&m)
                .unwrap_err()
                .contains("`other` is not a `{other}`")
        );

        let mut m = manifest("shop");
        m.routes[1].responses.push(RouteResponse {
            status: 404,
            schema: None,
        });
        assert!(check(&m).unwrap_err().contains("answer 404"));

        let mut m = manifest("shop");
        m.routes[1].request = Some(json!({ "$ref": "https://example.com/x" }));
        assert!(check(&m).unwrap_err().contains("must be `#/$defs/<name>`"));
    }
}
