//! A module's definition: manifest, migrations and the route table.
//!
//! The module function runs on every request (each request is a fresh instance), so the
//! definition is cheap to build: names are `&'static str` and migrations are a function
//! that only runs when the host asks for them at load time.

use eerp_abi::manifest::{Capability, Manifest, Route};
use eerp_abi::migration::Migration;
use eerp_abi::{ABI_VERSION, envelope};

use crate::{Ctx, Error, Reply, Request};

/// A route handler: a plain function of the module.
pub type Handler = fn(&mut Ctx, &Request) -> Result<Reply, Error>;

/// One route: method, path template, permission, handler.
#[derive(Debug, Clone, Copy)]
struct RouteDef {
    method: &'static str,
    path: &'static str,
    permission: &'static str,
    handler: Handler,
}

/// Everything the host needs to know about a module, plus its handlers.
#[derive(Debug, Clone)]
pub struct Module {
    name: &'static str,
    version: &'static str,
    migrations: Option<fn() -> Vec<Migration>>,
    routes: Vec<RouteDef>,
}

impl Module {
    /// A module with no routes or migrations yet.
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Self {
            name,
            version,
            migrations: None,
            routes: Vec::new(),
        }
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
        });
        self
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
        if self.migrations.is_some() {
            capabilities.push(Capability::Data);
        }
        let routes = self
            .routes
            .iter()
            .map(|r| Route {
                method: r.method.to_string(),
                path: r.path.to_string(),
                permission: r.permission.to_string(),
            })
            .collect();
        Manifest {
            name: self.name.to_string(),
            version: self.version.to_string(),
            abi_version: ABI_VERSION,
            routes,
            capabilities,
            grants: Vec::new(),
            events: Vec::new(),
            subscriptions: Vec::new(),
        }
    }

    /// The declared migration steps.
    pub fn migration_steps(&self) -> Vec<Migration> {
        self.migrations.map(|steps| steps()).unwrap_or_default()
    }

    /// The migrations as the JSON array `migrate()` returns.
    pub fn migration_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.migration_steps()).unwrap_or_default()
    }

    /// Runs the handler with id `handler_id` (its index in the route table).
    ///
    /// # Errors
    /// What the handler returned, or a 500 when the id is unknown.
    pub fn dispatch(&self, handler_id: i32, request: envelope::Request) -> Result<Reply, Error> {
        let route = usize::try_from(handler_id)
            .ok()
            .and_then(|id| self.routes.get(id))
            .ok_or_else(|| Error::internal(format!("no handler with id {handler_id}")))?;
        let mut ctx = Ctx::new(request.principal.clone(), request.request_id.clone());
        (route.handler)(&mut ctx, &Request::new(request))
    }
}
