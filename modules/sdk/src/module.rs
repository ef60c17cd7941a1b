//! A module's definition: manifest, migrations, the route table, grants, the events it
//! emits and the events it handles.
//!
//! The module function runs on every request (each request is a fresh instance), so the
//! definition is cheap to build: names are `&'static str` and migrations are a function
//! that only runs when the host asks for them at load time.

use eerp_abi::manifest::{Capability, Manifest, Route};
use eerp_abi::migration::Migration;
use eerp_abi::{ABI_VERSION, envelope};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::describe::{self, Body, QueryParam, RouteDoc};
use crate::{Ctx, Error, ListSpec, Reply, Request};

/// A route handler: a plain function of the module.
pub type Handler = fn(&mut Ctx, &Request) -> Result<Reply, Error>;

/// An event handler. Returning an error rolls back the whole request that emitted it.
pub type EventHandler = fn(&mut Ctx, &Event) -> Result<(), Error>;

/// A domain event delivered to a subscription.
#[derive(Debug, Clone)]
pub struct Event {
    name: String,
    payload: Box<RawValue>,
}

impl Event {
    /// An event (the SDK builds these; tests of handlers may too).
    pub fn new(name: impl Into<String>, payload: &impl serde::Serialize) -> Result<Self, Error> {
        let payload = serde_json::value::to_raw_value(payload)
            .map_err(|e| Error::internal(format!("event payload: {e}")))?;
        Ok(Self {
            name: name.into(),
            payload,
        })
    }

    /// `<module>.<name>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The payload as a `T`.
    ///
    /// # Errors
    /// A 500 when the payload is not a `T`: the emitter and the subscriber disagree.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(self.payload.get()).map_err(|e| {
            Error::internal(format!(
                "event `{}` has an unexpected payload: {e}",
                self.name
            ))
        })
    }
}

/// One route: method, path template, permission, handler, and what it says about
/// itself to API clients.
#[derive(Debug, Clone, Copy)]
struct RouteDef {
    method: &'static str,
    path: &'static str,
    permission: &'static str,
    handler: Handler,
    doc: RouteDoc,
}

/// Everything the host needs to know about a module, plus its handlers.
#[derive(Debug, Clone)]
pub struct Module {
    name: &'static str,
    version: &'static str,
    migrations: Option<fn() -> Vec<Migration>>,
    routes: Vec<RouteDef>,
    grants: Vec<&'static str>,
    emits: Vec<&'static str>,
    subscriptions: Vec<(&'static str, EventHandler)>,
}

impl Module {
    /// A module with no routes or migrations yet.
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Self {
            name,
            version,
            migrations: None,
            routes: Vec::new(),
            grants: Vec::new(),
            emits: Vec::new(),
            subscriptions: Vec::new(),
        }
    }

    /// Asks for a read grant on another module's table: `read:<module>.<table>`.
    pub fn grant(mut self, grant: &'static str) -> Self {
        self.grants.push(grant);
        self
    }

    /// Declares an event the module emits, named `<this module>.<event>`.
    pub fn emits(mut self, event: &'static str) -> Self {
        self.emits.push(event);
        self
    }

    /// Handles `event` (any module's) with `handler`, in the emitting request's
    /// transaction.
    pub fn on(mut self, event: &'static str, handler: EventHandler) -> Self {
        self.subscriptions.push((event, handler));
        self
    }

    /// Declares the module's migration steps, oldest first: a function, because the
    /// host needs them only when it loads the module.
    pub fn migrations(mut self, steps: fn() -> Vec<Migration>) -> Self {
        self.migrations = Some(steps);
        self
    }

    /// Adds a route: `method` (upper case), a path template such as `/contacts/{id}`, the
    /// permission a caller needs, and the handler.
    pub fn route(
        mut self,
        method: &'static str,
        path: &'static str,
        permission: &'static str,
        handler: Handler,
    ) -> Self {
        self.routes.push(RouteDef {
            method,
            path,
            permission,
            handler,
            doc: RouteDoc::default(),
        });
        self
    }

    fn document(mut self, describe: impl FnOnce(&mut RouteDoc)) -> Self {
        if let Some(route) = self.routes.last_mut() {
            describe(&mut route.doc);
        }
        self
    }

    /// Says what the last route added does, in one line, for API clients.
    pub fn summary(self, summary: &'static str) -> Self {
        self.document(|doc| doc.summary = summary)
    }

    /// The last route reads its body with [`Request::json`] as a `T`.
    pub fn takes<T: JsonSchema>(self) -> Self {
        self.document(|doc| doc.body = Some(Body::Json(describe::reference::<T>)))
    }

    /// The last route takes no body, or one it reads with [`Request::json`] as a `T`.
    pub fn takes_optional<T: JsonSchema>(self) -> Self {
        self.document(|doc| doc.body = Some(Body::Optional(describe::reference::<T>)))
    }

    /// The last route reads its body with [`Request::record`] as a `T`.
    pub fn takes_record<T: JsonSchema>(self) -> Self {
        self.document(|doc| doc.body = Some(Body::Record(describe::inline::<T>)))
    }

    /// The last route reads its body with [`Request::patch`] as some fields of a `T`.
    pub fn takes_patch<T: JsonSchema>(self) -> Self {
        self.document(|doc| doc.body = Some(Body::Patch(describe::inline::<T>)))
    }

    /// The last route answers 200 with a `T`.
    pub fn returns<T: JsonSchema>(self) -> Self {
        self.document(|doc| doc.answer(200, Some(describe::reference::<T>)))
    }

    /// The last route answers 201 with the `T` it created.
    pub fn creates<T: JsonSchema>(self) -> Self {
        self.document(|doc| doc.answer(201, Some(describe::reference::<T>)))
    }

    /// The last route answers 204, without a body.
    pub fn returns_nothing(self) -> Self {
        self.document(|doc| doc.answer(204, None))
    }

    /// The last route is a list: its query is what `spec` accepts.
    pub fn lists(self, spec: fn() -> ListSpec) -> Self {
        self.document(|doc| doc.list = Some(spec))
    }

    /// The last route reads these query parameters.
    pub fn query(self, params: &'static [QueryParam]) -> Self {
        self.document(|doc| doc.query = params)
    }

    /// Adds a `GET` route.
    pub fn get(self, path: &'static str, permission: &'static str, handler: Handler) -> Self {
        self.route("GET", path, permission, handler)
    }

    /// Adds a `POST` route.
    pub fn post(self, path: &'static str, permission: &'static str, handler: Handler) -> Self {
        self.route("POST", path, permission, handler)
    }

    /// Adds a `PATCH` route.
    pub fn patch(self, path: &'static str, permission: &'static str, handler: Handler) -> Self {
        self.route("PATCH", path, permission, handler)
    }

    /// Adds a `DELETE` route.
    pub fn delete(self, path: &'static str, permission: &'static str, handler: Handler) -> Self {
        self.route("DELETE", path, permission, handler)
    }

    /// The manifest the host reads at load time.
    pub fn manifest(&self) -> Manifest {
        let mut capabilities = vec![Capability::Log];
        if self.migrations.is_some() || !self.grants.is_empty() {
            capabilities.push(Capability::Data);
        }
        if !self.emits.is_empty() {
            capabilities.push(Capability::Events);
        }
        let mut generator = describe::generator();
        let routes = self
            .routes
            .iter()
            .map(|r| Route {
                method: r.method.to_string(),
                path: r.path.to_string(),
                permission: r.permission.to_string(),
                summary: r.doc.summary.to_string(),
                parameters: r.doc.parameters(r.path),
                request: r.doc.request(&mut generator),
                request_optional: r.doc.request_optional(),
                responses: r.doc.responses(&mut generator),
            })
            .collect();
        Manifest {
            name: self.name.to_string(),
            version: self.version.to_string(),
            abi_version: ABI_VERSION,
            routes,
            capabilities,
            grants: self.grants.iter().map(|g| g.to_string()).collect(),
            events: self.emits.iter().map(|e| e.to_string()).collect(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(e, _)| e.to_string())
                .collect(),
            schemas: generator.take_definitions(true).into_iter().collect(),
        }
    }

    /// Routes, as `METHOD /path`, that do not say what they do or what they answer on
    /// success: a module's test asserts there are none (or only those that always refuse).
    pub fn undescribed_routes(&self) -> Vec<String> {
        self.routes
            .iter()
            .filter(|r| r.doc.summary.is_empty() || r.doc.answers[0].is_none())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// The declared migration steps.
    pub fn migration_steps(&self) -> Vec<Migration> {
        self.migrations.map(|steps| steps()).unwrap_or_default()
    }

    /// The migrations as the JSON array `migrate()` returns.
    pub fn migration_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.migration_steps()).unwrap_or_default()
    }

    /// Runs the handler with id `handler_id`: a route's index, or `routes + i` for
    /// subscription `i`.
    ///
    /// # Errors
    /// What the handler returned, or a 500 when the id is unknown.
    pub fn dispatch(&self, handler_id: i32, request: envelope::Request) -> Result<Reply, Error> {
        let unknown = || Error::internal(format!("no handler with id {handler_id}"));
        let id = usize::try_from(handler_id).map_err(|_| unknown())?;
        let mut ctx = Ctx::new(request.principal.clone(), request.request_id.clone());
        if let Some(route) = self.routes.get(id) {
            return (route.handler)(&mut ctx, &Request::new(request));
        }
        let (_, handler) = self
            .subscriptions
            .get(id - self.routes.len())
            .ok_or_else(unknown)?;
        let event = Event {
            name: request.route,
            payload: request.body,
        };
        handler(&mut ctx, &event).map(|()| Reply::no_content())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eerp_abi::manifest::EVENT_METHOD;

    fn noop(_ctx: &mut Ctx, _req: &Request) -> Result<Reply, Error> {
        Ok(Reply::no_content())
    }

    fn refuse_big(_ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
        let n: u32 = event.payload::<serde_json::Value>()?["n"]
            .as_u64()
            .unwrap_or(0) as u32;
        if n > 10 {
            return Err(Error::unprocessable(format!("{} too big", event.name())));
        }
        Ok(())
    }

    fn module() -> Module {
        Module::new("stock", "1.0.0")
            .get("/a", "stock.a.read", noop)
            .emits("stock.moved")
            .grant("read:crm.contacts")
            .on("billing.posted", refuse_big)
    }

    fn event(n: u32) -> envelope::Request {
        envelope::Request {
            method: EVENT_METHOD.into(),
            route: "billing.posted".into(),
            params: Default::default(),
            query: Default::default(),
            body: serde_json::value::to_raw_value(&serde_json::json!({ "n": n })).unwrap(),
            principal: envelope::Principal {
                subject: "u".into(),
                roles: vec![],
            },
            request_id: "r".into(),
        }
    }

    #[test]
    fn the_manifest_carries_grants_events_and_subscriptions() {
        let manifest = module().manifest();
        assert_eq!(manifest.grants, ["read:crm.contacts"]);
        assert_eq!(manifest.events, ["stock.moved"]);
        assert_eq!(manifest.subscriptions, ["billing.posted"]);
        assert_eq!(
            manifest.capabilities,
            [Capability::Log, Capability::Data, Capability::Events]
        );
    }

    #[test]
    fn subscriptions_follow_the_routes_in_handler_ids() {
        let module = module();
        assert_eq!(module.dispatch(1, event(3)).unwrap().status(), 204);
        let err = module.dispatch(1, event(30)).unwrap_err();
        assert_eq!(
            (err.status, err.body.detail.as_str()),
            (422, "billing.posted too big")
        );
        assert_eq!(module.dispatch(2, event(3)).unwrap_err().status, 500);
    }

    #[test]
    fn emitted_events_are_recorded_natively() {
        let mut ctx = Ctx::new(
            envelope::Principal {
                subject: "u".into(),
                roles: vec![],
            },
            "r".into(),
        );
        ctx.emit("stock.moved", &serde_json::json!({"qty": "2"}))
            .unwrap();
        assert_eq!(ctx.emitted()[0].0, "stock.moved");
        assert_eq!(ctx.emitted()[0].1["qty"], "2");
    }
}
