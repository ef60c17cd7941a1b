//! What a route takes and answers, described for API clients: JSON Schemas (2020-12)
//! derived with `schemars` from the same types the handlers read and write, so a
//! description cannot drift from the code by being written twice.
//!
//! A route keeps only function pointers ([`SchemaFn`]): the module definition is built on
//! every request, and the schemas are generated only when the host reads the manifest.

use eerp_abi::manifest::{Parameter, ParameterIn, RouteResponse};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Value, json};

use crate::ListSpec;

/// Generates the schema of one type, registering the types it refers to.
pub(crate) type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// A `$ref` to `T`'s schema (or `T`'s schema itself for inlined types).
pub(crate) fn reference<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// `T`'s own schema, not a reference: the start of a request body's schema.
pub(crate) fn inline<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

/// How a route reads its JSON body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body {
    /// `Request::json::<T>()`: `T` as it deserializes.
    Json(SchemaFn),
    /// `Request::record::<T>()`: `T`, refusing fields it does not have.
    Record(SchemaFn),
    /// `Request::patch::<T>()`: some of `T`'s fields, at least one, no others.
    Patch(SchemaFn),
    /// `Request::json::<T>()` when there is a body; the route also takes none.
    Optional(SchemaFn),
}

/// A query parameter a route reads itself (a list route's come from its [`ListSpec`]).
#[derive(Debug, Clone, Copy)]
pub struct QueryParam {
    name: &'static str,
    required: bool,
    format: Option<&'static str>,
    /// For a whole number from 1 to this.
    maximum: Option<u32>,
    description: &'static str,
}

impl QueryParam {
    /// An optional text parameter.
    pub const fn text(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            required: false,
            format: None,
            maximum: None,
            description,
        }
    }

    /// An optional date, `YYYY-MM-DD`.
    pub const fn date(name: &'static str, description: &'static str) -> Self {
        Self {
            format: Some("date"),
            ..Self::text(name, description)
        }
    }

    /// An optional row id (a uuid).
    pub const fn id(name: &'static str, description: &'static str) -> Self {
        Self {
            format: Some("uuid"),
            ..Self::text(name, description)
        }
    }

    /// An optional whole number from 1 to `maximum`.
    pub const fn count(name: &'static str, maximum: u32, description: &'static str) -> Self {
        Self {
            maximum: Some(maximum),
            ..Self::text(name, description)
        }
    }

    /// Its name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The same parameter, required.
    pub const fn required(self) -> Self {
        Self {
            required: true,
            ..self
        }
    }

    fn parameter(&self) -> Parameter {
        let mut schema = json!({ "type": "string" });
        if let Some(format) = self.format {
            schema["format"] = json!(format);
        }
        if let Some(maximum) = self.maximum {
            schema = json!({ "type": "integer", "minimum": 1, "maximum": maximum });
        }
        Parameter {
            name: self.name.into(),
            location: ParameterIn::Query,
            required: self.required,
            description: self.description.into(),
            schema,
        }
    }
}

/// What a route says about itself besides method, path and permission.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RouteDoc {
    pub summary: &'static str,
    pub body: Option<Body>,
    /// Up to two successful answers (a create that may also find what it would create
    /// answers 201 or 200): status and body schema, none for 204.
    pub answers: [Option<(u16, Option<SchemaFn>)>; 2],
    pub list: Option<fn() -> ListSpec>,
    pub query: &'static [QueryParam],
}

impl RouteDoc {
    /// Adds an answer; a third replaces the second (no route has more than two).
    pub fn answer(&mut self, status: u16, schema: Option<SchemaFn>) {
        let slot = self.answers.iter().position(Option::is_none).unwrap_or(1);
        self.answers[slot] = Some((status, schema));
    }

    pub fn request(&self, generator: &mut SchemaGenerator) -> Option<Value> {
        let schema = match self.body? {
            Body::Json(schema) | Body::Optional(schema) => schema(generator).to_value(),
            Body::Record(schema) => closed(schema(generator), false),
            Body::Patch(schema) => closed(schema(generator), true),
        };
        Some(schema)
    }

    pub fn request_optional(&self) -> bool {
        matches!(self.body, Some(Body::Optional(_)))
    }

    pub fn responses(&self, generator: &mut SchemaGenerator) -> Vec<RouteResponse> {
        self.answers
            .iter()
            .flatten()
            .map(|(status, schema)| RouteResponse {
                status: *status,
                schema: schema.map(|schema| schema(generator).to_value()),
            })
            .collect()
    }

    pub fn parameters(&self, path: &str) -> Vec<Parameter> {
        let mut parameters = path_parameters(path);
        if let Some(spec) = self.list {
            parameters.extend(spec().parameters());
        }
        parameters.extend(self.query.iter().map(QueryParam::parameter));
        parameters
    }
}

/// The generator every schema of one manifest comes from, so they share definitions.
pub(crate) fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|settings| settings.meta_schema = None)
        .into_generator()
}

/// An object schema that refuses other properties; for a patch, none required and at
/// least one given.
fn closed(schema: Schema, patch: bool) -> Value {
    let mut schema = schema.to_value();
    if let Value::Object(object) = &mut schema {
        object.insert("additionalProperties".into(), Value::Bool(false));
        if patch {
            object.remove("required");
            object.insert("minProperties".into(), json!(1));
        }
    }
    schema
}

/// `{name}` segments. Row ids are uuids, so `{id}` is one.
fn path_parameters(path: &str) -> Vec<Parameter> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let (schema, description) = if name == "id" {
                (
                    json!({ "type": "string", "format": "uuid" }),
                    "The row's id.",
                )
            } else {
                (json!({ "type": "string" }), "")
            };
            Parameter {
                name: name.into(),
                location: ParameterIn::Path,
                required: true,
                description: description.into(),
                schema,
            }
        })
        .collect()
}

/// A query parameter of a list route (see `ListSpec::parameters`).
pub(crate) fn list_parameter(name: &str, schema: Value, description: String) -> Parameter {
    Parameter {
        name: name.into(),
        location: ParameterIn::Query,
        required: false,
        description,
        schema,
    }
}

/// `{"type": "string", "enum": [...]}`.
pub(crate) fn one_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Value {
    let values: Vec<&str> = values.into_iter().collect();
    json!({ "type": "string", "enum": values })
}
