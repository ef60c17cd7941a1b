//! A module's definition: manifest, migrations and the route table.

use eerp_abi::manifest::{Capability, Manifest, Route};
use eerp_abi::migration::Migration;
use eerp_abi::{ABI_VERSION, envelope};

use crate::{Ctx, Error, Reply, Request};

/// A route handler: a plain function of the module.
pub type Handler = fn(&mut Ctx, &Request) -> Result<Reply, Error>;

/// Everything the host needs to know about a module, plus its handlers.
#[derive(Debug, Clone)]
pub struct Module {
    name: String,
    version: String,
    migrations: Vec<Migration>,
    routes: Vec<(Route, Handler)>,
}

impl Module {
    /// A module with no routes or migrations yet.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_string(),
            version: version.to_string(),
            migrations: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Adds a versioned migration step.
    pub fn migration(mut self, step: Migration) -> Self {
        self.migrations.push(step);
        self
    }

    /// Adds a route: `method` (upper case), a path template such as `/contacts/{id}`, the
    /// permission a caller needs, and the handler.
    pub fn route(mut self, method: &str, path: &str, permission: &str, handler: Handler) -> Self {
        let route = Route {
            method: method.to_string(),
            path: path.to_string(),
            permission: permission.to_string(),
        };
        self.routes.push((route, handler));
        self
    }

    /// Adds a `GET` route.
    pub fn get(self, path: &str, permission: &str, handler: Handler) -> Self {
        self.route("GET", path, permission, handler)
    }

    /// Adds a `POST` route.
    pub fn post(self, path: &str, permission: &str, handler: Handler) -> Self {
        self.route("POST", path, permission, handler)
    }

    /// Adds a `PATCH` route.
    pub fn patch(self, path: &str, permission: &str, handler: Handler) -> Self {
        self.route("PATCH", path, permission, handler)
    }

    /// Adds a `DELETE` route.
    pub fn delete(self, path: &str, permission: &str, handler: Handler) -> Self {
        self.route("DELETE", path, permission, handler)
    }

    /// The manifest the host reads at load time.
    pub fn manifest(&self) -> Manifest {
        let mut capabilities = vec![Capability::Log];
        if !self.migrations.is_empty() {
            capabilities.push(Capability::Data);
        }
        Manifest {
            name: self.name.clone(),
            version: self.version.clone(),
            abi_version: ABI_VERSION,
            routes: self.routes.iter().map(|(route, _)| route.clone()).collect(),
            capabilities,
        }
    }

    /// The migrations as the JSON array `migrate()` returns.
    pub fn migration_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.migrations).unwrap_or_default()
    }

    /// The declared migration steps.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// Runs the handler with id `handler_id` (its index in the route table).
    ///
    /// # Errors
    /// What the handler returned, or a 500 when the id is unknown.
    pub fn dispatch(&self, handler_id: i32, request: envelope::Request) -> Result<Reply, Error> {
        let (_, handler) = usize::try_from(handler_id)
            .ok()
            .and_then(|id| self.routes.get(id))
            .ok_or_else(|| Error::internal(format!("no handler with id {handler_id}")))?;
        let mut ctx = Ctx::new(request.principal.clone(), request.request_id.clone());
        handler(&mut ctx, &Request::new(request))
    }
}
