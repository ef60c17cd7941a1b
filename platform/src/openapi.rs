//! The API description a tenant's clients read: one OpenAPI 3.1 document per tenant,
//! built from the manifests of the module versions that tenant is served, with the
//! platform's own parts (the bearer scheme, problem+json errors, permissions).
//!
//! Modules describe their routes with JSON Schemas whose `$ref`s point into their own
//! manifest (`#/$defs/<name>`); here each name becomes `<module>.<name>` under
//! `components/schemas`, so two modules' types never collide. The host never validates
//! requests against these schemas: the module does, and it is the authority.

use std::collections::{BTreeMap, BTreeSet};

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
    let mut components = BTreeMap::new();
    for (name, schema) in &manifest.schemas {
        check_refs(manifest, schema).map_err(|e| format!("schema `{name}`: {e}"))?;
        if let Some(other) = components.insert(component_name(&manifest.name, name), name) {
            return Err(format!(
                "schemas `{other}` and `{name}` would have the same name in the OpenAPI \
                 document; use only letters, digits, `.`, `-` and `_`"
            ));
        }
    }
    let mut ids = BTreeMap::new();
    let mut shapes = BTreeMap::new();
    for route in &manifest.routes {
        let named = || format!("`{} {}`", route.method, route.path);
        check_route(manifest, route).map_err(|e| format!("route {}: {e}", named()))?;
        if let Some(other) = ids.insert(operation_id(&manifest.name, route), named()) {
            return Err(format!(
                "routes {other} and {} would have the same OpenAPI operation id; name \
                 their literal segments apart by more than `-` and `_`",
                named()
            ));
        }
        // OpenAPI has one path item per template shape: `/a/{id}` and `/a/{x}` clash.
        let shape = route
            .path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| if p.starts_with('{') { "{}" } else { p });
        let shape: Vec<&str> = shape.collect();
        if let Some(other) = shapes.insert(shape, route.path.as_str())
            && other != route.path
        {
            return Err(format!(
                "paths `{other}` and `{}` differ only in parameter names; name the \
                 parameters alike",
                route.path
            ));
        }
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

/// Keywords whose values are data, not schemas: a `$ref` inside them is not a reference.
const DATA_KEYWORDS: [&str; 5] = ["const", "default", "enum", "examples", "example"];
/// Keywords whose values are objects of names to schemas.
const NAMED_SCHEMAS: [&str; 4] = [
    "properties",
    "patternProperties",
    "$defs",
    "dependentSchemas",
];

/// Calls `f` on `schema` and each of its subschemas (never on data such as a `default`).
fn visit(schema: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    match schema {
        Value::Object(object) => {
            f(object);
            for (key, value) in object.iter_mut() {
                match (key.as_str(), value) {
                    (key, _) if DATA_KEYWORDS.contains(&key) => {}
                    (key, Value::Object(named)) if NAMED_SCHEMAS.contains(&key) => {
                        named.values_mut().for_each(|v| visit(v, f));
                    }
                    (_, value) => visit(value, f),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| visit(v, f)),
        _ => {}
    }
}

fn check_refs(manifest: &Manifest, schema: &Value) -> Result<(), String> {
    let mut problem = None;
    visit(&mut schema.clone(), &mut |object| {
        let Some(Value::String(reference)) = object.get("$ref") else {
            return;
        };
        let found = reference
            .strip_prefix(DEFS)
            .map(|name| manifest.schemas.contains_key(&unescape(name)));
        let why = match found {
            Some(true) => return,
            Some(false) => "names a schema the manifest does not have",
            None => "must be `#/$defs/<name>` of the manifest",
        };
        problem.get_or_insert_with(|| format!("`$ref` \"{reference}\" {why}"));
    });
    problem.map_or(Ok(()), Err)
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
    let mut schema = schema.clone();
    visit(&mut schema, &mut |object| {
        let Some(Value::String(reference)) = object.get_mut("$ref") else {
            return;
        };
        if let Some(name) = reference.strip_prefix(DEFS) {
            *reference = format!("{COMPONENTS}{}", component_name(module, &unescape(name)));
        }
    });
    schema
}

/// One module version's part of every document that includes it: built once, when the
/// version is loaded, so a document costs a merge of these.
#[derive(Debug, Clone, Default)]
pub struct ModuleApi {
    name: String,
    version: String,
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
}

impl ModuleApi {
    /// The part of a (checked) manifest.
    pub fn new(manifest: &Manifest) -> Self {
        let module = manifest.name.as_str();
        let schemas = manifest
            .schemas
            .iter()
            .map(|(name, schema)| (component_name(module, name), relinked(module, schema)))
            .collect();
        let ids: Vec<String> = manifest
            .routes
            .iter()
            .map(|r| operation_id(module, r))
            .collect();
        let mut paths = Map::new();
        for route in &manifest.routes {
            let mut operation = operation(module, route);
            if let Some(links) = links(route, &manifest.routes, &ids) {
                operation["responses"]["201"]["links"] = links;
            }
            let item = paths
                .entry(format!("/api/v1/{module}{}", route.path))
                .or_insert_with(|| Value::Object(Map::new()));
            item[route.method.to_ascii_lowercase()] = operation;
        }
        Self {
            name: module.to_string(),
            version: manifest.version.clone(),
            paths,
            schemas,
        }
    }
}

/// The OpenAPI 3.1 document for `tenant`, which is served `modules` (in any order).
pub fn document(tenant: &str, host_version: &str, modules: &[&ModuleApi]) -> Value {
    let mut modules = modules.to_vec();
    modules.sort_by(|a, b| a.name.cmp(&b.name));
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert("Problem".into(), problem_schema());
    let mut tags = Vec::new();
    for api in &modules {
        tags.push(json!({
            "name": api.name,
            "description": format!("The {} module, version {}.", api.name, api.version),
        }));
        schemas.extend(api.schemas.clone());
        paths.extend(api.paths.clone());
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
        .map(|api| format!("{} {}", api.name, api.version))
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
    // A route that says nothing about itself may take and answer anything; one that
    // describes itself but declares no success never succeeds (it always refuses).
    let described =
        !route.summary.is_empty() || route.request.is_some() || !route.responses.is_empty();
    let takes_body = route.request.is_some()
        || (!described && ["POST", "PUT", "PATCH"].contains(&route.method.as_str()));
    if takes_body {
        let schema = route.request.as_ref().map(relink).unwrap_or(json!({}));
        operation.insert(
            "requestBody".into(),
            json!({
                "required": route.request.is_some() && !route.request_optional,
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
/// them to reach the row they made. `ids` are the routes' operation ids.
fn links(route: &Route, routes: &[Route], ids: &[String]) -> Option<Value> {
    route.responses.iter().find(|r| r.status == 201)?;
    let below = format!("{}/{{id}}", route.path.trim_end_matches('/'));
    let below_slash = format!("{below}/");
    let links: Map<String, Value> = routes
        .iter()
        .zip(ids)
        .filter(|(r, _)| r.path == below || r.path.starts_with(&below_slash))
        .map(|(_, id)| {
            let link = json!({
                "operationId": id,
                "parameters": { "id": "$response.body#/id" },
            });
            (id.clone(), link)
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

    fn doc(manifests: &[Manifest]) -> Value {
        let apis: Vec<ModuleApi> = manifests.iter().map(ModuleApi::new).collect();
        document("acme", "0.1.0", &apis.iter().collect::<Vec<_>>())
    }

    fn route(method: &str, path: &str) -> Route {
        Route {
            method: method.into(),
            path: path.into(),
            permission: "shop.x.read".into(),
            ..Route::default()
        }
    }

    #[test]
    fn schemas_are_named_per_module_and_refs_follow() {
        let doc = doc(&[manifest("shop"), manifest("crm")]);
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
        let doc = doc(&[m]);
        let links = &doc["paths"]["/api/v1/shop/things"]["post"]["responses"]["201"]["links"];
        assert_eq!(
            links["shop_get_things_by_id"]["parameters"]["id"],
            "$response.body#/id"
        );
        assert_eq!(links.as_object().unwrap().len(), 1, "not /legacy: {links}");
    }

    #[test]
    fn an_undescribed_route_takes_and_answers_any_json() {
        let doc = doc(&[manifest("shop")]);
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

    #[test]
    fn what_would_make_an_invalid_document_is_refused_at_load() {
        let mut m = manifest("shop");
        m.routes
            .extend([route("GET", "/a-b"), route("GET", "/a_b")]);
        assert!(check(&m).unwrap_err().contains("same OpenAPI operation id"));

        let mut m = manifest("shop");
        m.routes.push(route("DELETE", "/things/{thing}"));
        assert!(
            check(&m)
                .unwrap_err()
                .contains("differ only in parameter names")
        );

        let mut m = manifest("shop");
        m.schemas.insert("Part B".into(), json!({}));
        m.schemas.insert("Part_B".into(), json!({}));
        assert!(check(&m).unwrap_err().contains("the same name"));
    }

    #[test]
    fn a_ref_in_data_or_a_property_named_ref_is_not_a_reference() {
        let mut m = manifest("shop");
        m.schemas.insert(
            "Odd".into(),
            json!({
                "properties": { "$ref": { "type": "string", "default": { "$ref": "x" } } },
                "examples": [{ "$ref": "y" }]
            }),
        );
        assert_eq!(check(&m), Ok(()));
        let odd = &doc(&[m])["components"]["schemas"]["shop.Odd"];
        assert_eq!(odd["properties"]["$ref"]["default"]["$ref"], "x");
    }

    #[test]
    fn a_described_route_without_a_success_never_succeeds_and_optional_bodies_say_so() {
        let mut m = manifest("shop");
        m.routes.push(Route {
            summary: "Refused: things are never deleted".into(),
            ..route("DELETE", "/things/{id}")
        });
        m.routes.push(Route {
            request: Some(json!({ "type": "object" })),
            request_optional: true,
            responses: vec![RouteResponse {
                status: 204,
                schema: None,
            }],
            ..route("POST", "/things/{id}/poke")
        });
        let doc = doc(&[m]);
        let delete = &doc["paths"]["/api/v1/shop/things/{id}"]["delete"]["responses"];
        assert!(
            delete
                .as_object()
                .unwrap()
                .keys()
                .all(|s| s.starts_with(['4', '5']))
        );
        let poke = &doc["paths"]["/api/v1/shop/things/{id}/poke"]["post"];
        assert_eq!(poke["requestBody"]["required"], false);
    }
}
