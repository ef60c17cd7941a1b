//! A module version compiled, checked and pre-linked once, then instantiated per request.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use eerp_abi::manifest::{Capability, Manifest, Route};
use eerp_abi::migration::{Migration, parse_migrations};
use eerp_abi::{ABI_VERSION, exports, unpack};
use eerp_tenancy::id::ModuleName;
use semver::Version;
use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::{Engine, Instance, InstancePre, Linker, Module, ModuleExport, Store};

use super::guest_memory;
use super::host::{self, HostState};
use crate::migrations::{MigrationError, ModuleSchema, SchemaModel};
use crate::sql::is_valid_name;

/// Largest manifest or migration document a module may return, in bytes.
const MAX_DESCRIPTOR_BYTES: usize = 1 << 20;
/// Fuel for reading the manifest and migrations at load time.
const LOAD_FUEL: u64 = 500_000_000;
/// Memory a module may use while being loaded.
const LOAD_MEMORY_BYTES: usize = 64 << 20;

/// Why a module could not be loaded. Each says what to fix in the module.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Not valid wasm, or wasmtime could not compile it.
    #[error("the module does not compile: {0}")]
    Compile(String),
    /// An import that ABI v1 does not define.
    #[error("the module imports `{module}.{name}`, which ABI v1 does not provide")]
    UnknownImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// An import of a capability the manifest did not ask for.
    #[error(
        "the module imports `eerp.{name}` but its manifest does not request the `{}` capability",
        capability.as_str()
    )]
    UngrantedImport {
        /// Import name.
        name: String,
        /// The capability it belongs to.
        capability: Capability,
    },
    /// A required export is missing or has the wrong type, or calling it failed.
    #[error("the module breaks ABI v1: {0}")]
    Abi(String),
    /// The manifest is not valid.
    #[error("the module's manifest is invalid: {0}")]
    Manifest(String),
    /// The migrations are not valid.
    #[error("the module's migrations are invalid: {0}")]
    Migrations(#[from] MigrationError),
}

/// A module ready to serve requests.
pub struct LoadedModule {
    /// Its validated name.
    pub name: ModuleName,
    /// Its version, from the manifest.
    pub version: Version,
    /// SHA-256 of its wasm bytes, lower-case hex.
    pub sha256: String,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its migration steps, oldest first.
    pub migrations: Vec<Migration>,
    /// Its tables, as the migrations leave them.
    pub model: Arc<SchemaModel>,
    /// Its read grants on other modules' tables: (module, table).
    pub grants: Vec<(ModuleName, String)>,
    /// The events it may emit.
    pub events: Arc<[String]>,
    /// Its part of the OpenAPI documents of the tenants it serves.
    pub api: crate::openapi::ModuleApi,
    routes: Vec<RouteTemplate>,
    pre: InstancePre<HostState>,
    /// `None` for a schema-only module (the original EERP's contract), which has no
    /// handlers.
    exports: Option<GuestExports>,
}

/// The name and version an operator gives a module that carries no manifest: one that
/// implements only the original EERP's contract (`memory`, `migrate`, `migrate_len` and
/// optionally `_start`). Such a module loads as a schema-only module: its migrations, no
/// routes, no imports.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// Module name.
    pub name: &'a str,
    /// Semver version.
    pub version: &'a str,
}

/// The exports a request uses, resolved once at load so a request does not look them up
/// by name.
#[derive(Clone, Copy)]
pub struct GuestExports {
    /// `memory`.
    pub memory: ModuleExport,
    /// `eerp_alloc`.
    pub alloc: ModuleExport,
    /// `eerp_handle`.
    pub handle: ModuleExport,
}

impl std::fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModule")
            .field("name", &self.name)
            .field("version", &self.manifest.version)
            .finish()
    }
}

/// The result of matching a request against a module's routes.
#[derive(Debug, PartialEq)]
pub enum RouteMatch<'a> {
    /// A route matched.
    Found {
        /// `eerp_handle`'s first argument.
        handler_id: i32,
        /// The route.
        route: &'a Route,
        /// Values of its `{name}` segments.
        params: BTreeMap<String, String>,
    },
    /// The path exists, but not with this method.
    MethodNotAllowed {
        /// Methods the path does accept.
        allowed: Vec<String>,
    },
    /// No route has this path.
    NotFound,
}

#[derive(Debug)]
struct RouteTemplate {
    route: Route,
    segments: Vec<Segment>,
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl LoadedModule {
    /// Compiles `wasm`, reads its manifest and migrations, checks them and its imports,
    /// and pre-links it with the imports of the capabilities it requested.
    ///
    /// # Errors
    /// [`LoadError`] naming what is wrong with the module.
    pub async fn load(engine: &Engine, wasm: &[u8]) -> Result<Self, LoadError> {
        Self::load_as(engine, wasm, None).await
    }

    /// Like [`LoadedModule::load`], for a module that may carry no manifest: `identity`
    /// names it then. A module with a manifest must agree with `identity` when one is
    /// given.
    ///
    /// # Errors
    /// [`LoadError`] naming what is wrong with the module.
    pub async fn load_as(
        engine: &Engine,
        wasm: &[u8],
        identity: Option<Identity<'_>>,
    ) -> Result<Self, LoadError> {
        let module = compile(engine, wasm).await?;
        Self::from_compiled(engine, module, sha256_hex(wasm), identity).await
    }

    /// Like [`LoadedModule::load_as`], for `module` already compiled (or deserialised)
    /// from the wasm bytes whose SHA-256 is `sha256`.
    ///
    /// # Errors
    /// [`LoadError`] naming what is wrong with the module.
    pub async fn from_compiled(
        engine: &Engine,
        module: Module,
        sha256: String,
        identity: Option<Identity<'_>>,
    ) -> Result<Self, LoadError> {
        let known = known_imports(&module)?;
        let (manifest, migrations) = read_descriptors(engine, &module, identity).await?;
        let Checked {
            name,
            version,
            routes,
            grants,
        } = checked(&manifest)?;
        check_imports_granted(&known, &manifest.capabilities)?;
        let model = SchemaModel::from_migrations(&migrations)?;
        let mut linker = Linker::new(engine);
        host::link(&mut linker, &manifest.capabilities)
            .map_err(|e| LoadError::Abi(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Abi(format!("{e:#}")))?;
        let export = |name: &str| {
            module
                .get_export_index(name)
                .ok_or_else(|| LoadError::Abi(format!("the module exports no `{name}`")))
        };
        let exports = match module.get_export_index(exports::HANDLE) {
            None => None,
            Some(handle) => Some(GuestExports {
                memory: export(exports::MEMORY)?,
                alloc: export(exports::ALLOC)?,
                handle,
            }),
        };
        let events = manifest.events.clone().into();
        let api = crate::openapi::ModuleApi::new(&manifest);
        Ok(Self {
            name,
            version,
            sha256,
            manifest,
            migrations,
            model: Arc::new(model),
            grants,
            events,
            api,
            routes,
            pre,
            exports,
        })
    }

    /// What migrations need to know of this version.
    pub fn schema(&self) -> ModuleSchema<'_> {
        ModuleSchema {
            name: &self.name,
            version: &self.version,
            migrations: &self.migrations,
        }
    }

    /// The handler id of subscription `index` (they follow the routes).
    pub fn subscription_handler(&self, event: &str) -> Option<i32> {
        let index = self
            .manifest
            .subscriptions
            .iter()
            .position(|e| e == event)?;
        i32::try_from(self.routes.len() + index).ok()
    }

    /// The pre-linked module, for instantiation.
    pub fn instance_pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// The exports a request calls; `None` for a schema-only module.
    pub fn exports(&self) -> Option<GuestExports> {
        self.exports
    }

    /// Finds the route for `method` and `path` (relative to the module mount). Literal
    /// segments win over parameters, so `/contacts/stats` beats `/contacts/{id}`.
    pub fn match_route(&self, method: &str, path: &str) -> RouteMatch<'_> {
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut best: Option<(usize, usize, BTreeMap<String, String>)> = None;
        let mut allowed = Vec::new();
        for (id, template) in self.routes.iter().enumerate() {
            let Some((literals, params)) = template.matches(&parts) else {
                continue;
            };
            if template.route.method != method {
                allowed.push(template.route.method.clone());
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(_, best_literals, _)| literals > *best_literals)
            {
                best = Some((id, literals, params));
            }
        }
        match best {
            Some((id, _, params)) => RouteMatch::Found {
                handler_id: id as i32,
                route: &self.routes[id].route,
                params,
            },
            None if !allowed.is_empty() => {
                allowed.sort();
                allowed.dedup();
                RouteMatch::MethodNotAllowed { allowed }
            }
            None => RouteMatch::NotFound,
        }
    }
}

impl RouteTemplate {
    /// On a match: the number of literal segments and the parameter values.
    fn matches(&self, parts: &[&str]) -> Option<(usize, BTreeMap<String, String>)> {
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut literals = 0;
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(text) if text == part => literals += 1,
                Segment::Literal(_) => return None,
                Segment::Param(name) => {
                    params.insert(name.clone(), (*part).to_string());
                }
            }
        }
        Some((literals, params))
    }
}

fn parse_route(route: &Route) -> Result<RouteTemplate, LoadError> {
    let bad =
        |why: &str| LoadError::Manifest(format!("route `{} {}`: {why}", route.method, route.path));
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    if !METHODS.contains(&route.method.as_str()) {
        return Err(bad("method must be one of GET, POST, PUT, PATCH, DELETE"));
    }
    if !route.path.starts_with('/') {
        return Err(bad("path must start with `/`"));
    }
    let mut seen = HashSet::new();
    let mut segments = Vec::new();
    for part in route.path.split('/').filter(|s| !s.is_empty()) {
        let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if is_identifier(name) && seen.insert(name.to_string()) => {
                Segment::Param(name.to_string())
            }
            Some(_) => return Err(bad("parameters must be distinct `{name}`s of [a-z0-9_]")),
            None if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
            {
                Segment::Literal(part.to_string())
            }
            None => {
                return Err(bad(
                    "literal segments may use letters, digits, `-`, `_`, `.`",
                ));
            }
        };
        segments.push(segment);
    }
    Ok(RouteTemplate {
        route: route.clone(),
        segments,
    })
}

/// Refuses two routes of one method that match the same paths (`/a/{id}` and `/a/{x}`):
/// only one of them could ever be called.
fn check_overlaps(routes: &[RouteTemplate]) -> Result<(), LoadError> {
    for (i, a) in routes.iter().enumerate() {
        let clash = routes[i + 1..].iter().find(|b| {
            a.route.method == b.route.method
                && a.segments.len() == b.segments.len()
                && a.segments.iter().zip(&b.segments).all(|pair| match pair {
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    (Segment::Param(_), Segment::Param(_)) => true,
                    _ => false,
                })
        });
        if let Some(b) = clash {
            return Err(LoadError::Manifest(format!(
                "routes `{} {}` and `{} {}` match the same paths; give them distinct paths",
                a.route.method, a.route.path, b.route.method, b.route.path
            )));
        }
    }
    Ok(())
}

/// `read:<module>.<table>` grants on other modules.
fn parse_grants(
    own: &ModuleName,
    grants: &[String],
) -> Result<Vec<(ModuleName, String)>, LoadError> {
    grants
        .iter()
        .map(|grant| {
            let bad = |why: &str| {
                LoadError::Manifest(format!(
                    "grant `{grant}`: {why}; write grants as `read:<module>.<table>`, e.g. `read:crm.contacts`"
                ))
            };
            let target = grant.strip_prefix("read:").ok_or_else(|| bad("only `read:` grants exist"))?;
            let (module, table) = target.split_once('.').ok_or_else(|| bad("it names no table"))?;
            let module = ModuleName::parse(module).map_err(|e| bad(&e.to_string()))?;
            if &module == own {
                return Err(bad("a module needs no grant on its own tables"));
            }
            if !is_valid_name(table) {
                return Err(bad("the table name is not a valid name"));
            }
            Ok((module, table.to_string()))
        })
        .collect()
}

/// Emitted events are `<this module>.<name>`; subscriptions name any module's events,
/// each once.
fn check_events(own: &ModuleName, manifest: &Manifest) -> Result<(), LoadError> {
    let well_formed = |event: &str| {
        event
            .split_once('.')
            .is_some_and(|(module, name)| ModuleName::parse(module).is_ok() && is_valid_name(name))
    };
    let prefix = format!("{own}.");
    for event in &manifest.events {
        if !well_formed(event) || !event.starts_with(&prefix) {
            return Err(LoadError::Manifest(format!(
                "event `{event}`: a module emits events named `{prefix}<name>` (lower-case letters, digits, `_`)"
            )));
        }
    }
    if !manifest.events.is_empty() && !manifest.capabilities.contains(&Capability::Events) {
        return Err(LoadError::Manifest(
            "the manifest declares events but not the `events` capability that emits them".into(),
        ));
    }
    let mut seen = HashSet::new();
    for event in &manifest.subscriptions {
        if !well_formed(event) || !seen.insert(event.as_str()) {
            return Err(LoadError::Manifest(format!(
                "subscription `{event}`: name each event once, as `<module>.<name>`"
            )));
        }
    }
    Ok(())
}

/// Compiles off the async worker: cranelift can take a while on a large module.
pub(crate) async fn compile(engine: &Engine, wasm: &[u8]) -> Result<Module, LoadError> {
    let (engine, wasm) = (engine.clone(), wasm.to_vec());
    tokio::task::spawn_blocking(move || Module::new(&engine, &wasm))
        .await
        .map_err(|e| LoadError::Compile(format!("the compiler task failed: {e}")))?
        .map_err(|e| LoadError::Compile(format!("{e:#}")))
}

/// SHA-256 of `wasm`, lower-case hex: how a module version's bytes are named.
pub fn sha256_hex(wasm: &[u8]) -> String {
    hex(&Sha256::digest(wasm))
}

/// `bytes` in lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The capabilities the module's imports need; fails on imports ABI v1 does not know.
fn known_imports(module: &Module) -> Result<Vec<(String, Capability)>, LoadError> {
    module
        .imports()
        .map(|import| {
            host::capability_of(import.module(), import.name())
                .map(|capability| (import.name().to_string(), capability))
                .ok_or_else(|| LoadError::UnknownImport {
                    module: import.module().to_string(),
                    name: import.name().to_string(),
                })
        })
        .collect()
}

fn check_imports_granted(
    imports: &[(String, Capability)],
    granted: &[Capability],
) -> Result<(), LoadError> {
    match imports.iter().find(|(_, cap)| !granted.contains(cap)) {
        Some((name, capability)) => Err(LoadError::UngrantedImport {
            name: name.clone(),
            capability: *capability,
        }),
        None => Ok(()),
    }
}

/// What a manifest declares, checked.
struct Checked {
    name: ModuleName,
    version: Version,
    routes: Vec<RouteTemplate>,
    grants: Vec<(ModuleName, String)>,
}

/// Every check of a manifest that needs no wasm: names, version, routes and their
/// overlaps, grants and events.
fn checked(manifest: &Manifest) -> Result<Checked, LoadError> {
    let (name, version) = check_manifest(manifest)?;
    let routes = manifest
        .routes
        .iter()
        .map(parse_route)
        .collect::<Result<Vec<_>, _>>()?;
    check_overlaps(&routes)?;
    let grants = parse_grants(&name, &manifest.grants)?;
    check_events(&name, manifest)?;
    crate::openapi::check(manifest).map_err(LoadError::Manifest)?;
    Ok(Checked {
        name,
        version,
        routes,
        grants,
    })
}

/// Checks manifest JSON as an upload would, without a module around it (for the fuzz
/// target and tools).
///
/// # Errors
/// [`LoadError::Manifest`] (or another load error) naming the first problem.
pub fn check_manifest_json(bytes: &[u8]) -> Result<(), LoadError> {
    let manifest: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| LoadError::Manifest(format!("not ABI v1 manifest JSON: {e}")))?;
    checked(&manifest).map(drop)
}

fn check_manifest(manifest: &Manifest) -> Result<(ModuleName, Version), LoadError> {
    if manifest.abi_version != ABI_VERSION {
        return Err(LoadError::Manifest(format!(
            "abi_version is {}, this host speaks ABI {ABI_VERSION}",
            manifest.abi_version
        )));
    }
    let name = ModuleName::parse(&manifest.name).map_err(|e| LoadError::Manifest(e.to_string()))?;
    let version = Version::parse(&manifest.version).map_err(|e| {
        LoadError::Manifest(format!(
            "version `{}` is not a semantic version like 1.2.0: {e}",
            manifest.version
        ))
    })?;
    let prefix = format!("{name}.");
    if let Some(route) = manifest
        .routes
        .iter()
        .find(|r| !r.permission.starts_with(&prefix))
    {
        return Err(LoadError::Manifest(format!(
            "route `{} {}` has permission `{}`; a module's permissions start with `{prefix}`",
            route.method, route.path, route.permission
        )));
    }
    Ok((name, version))
}

/// Instantiates the module once, with every known import linked (the data imports trap
/// if called, as there is no request), to read its manifest and migrations. A module
/// without a manifest is the original EERP's contract: it needs `identity`, and its
/// `_start`, when exported, runs once first, as the original host ran it.
async fn read_descriptors(
    engine: &Engine,
    module: &Module,
    identity: Option<Identity<'_>>,
) -> Result<(Manifest, Vec<Migration>), LoadError> {
    let abi = |e: wasmtime::Error| LoadError::Abi(format!("{e:#}"));
    let mut linker = Linker::new(engine);
    host::link(
        &mut linker,
        &[Capability::Log, Capability::Data, Capability::Events],
    )
    .map_err(abi)?;
    let mut store = Store::new(engine, HostState::for_loading(LOAD_MEMORY_BYTES));
    store.limiter(|state| &mut state.limiter);
    store.set_fuel(LOAD_FUEL).map_err(abi)?;
    // Loading may happen on a request worker (a version loaded on demand): yield as a
    // request does, so a module that burns its load fuel cannot hold the thread.
    store
        .fuel_async_yield_interval(Some(super::invoke::FUEL_YIELD_INTERVAL))
        .map_err(abi)?;
    let instance = linker
        .instantiate_async(&mut store, module)
        .await
        .map_err(abi)?;

    let manifest = match (module.get_export(exports::MANIFEST), identity) {
        (Some(_), identity) => {
            let manifest_fn = instance
                .get_typed_func::<(), i64>(&mut store, exports::MANIFEST)
                .map_err(abi)?;
            let (ptr, len) = unpack(manifest_fn.call_async(&mut store, ()).await.map_err(abi)?);
            let bytes = read_export_bytes(&instance, &mut store, ptr, len)?;
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| LoadError::Manifest(format!("not ABI v1 manifest JSON: {e}")))?;
            check_identity(&manifest, identity)?;
            manifest
        }
        (None, Some(identity)) => {
            if let Ok(start) = instance.get_typed_func::<(), ()>(&mut store, exports::START) {
                start
                    .call_async(&mut store, ())
                    .await
                    .map_err(|e| LoadError::Abi(format!("`_start` failed: {e:#}")))?;
            }
            schema_only_manifest(identity)
        }
        (None, None) => {
            return Err(LoadError::Abi(format!(
                "the module exports no `{}`; a module with only the original EERP's exports \
                 (memory, migrate, migrate_len) is a schema-only module: upload it with its \
                 name and version (`?name=..&version=..`, or a module.json beside it)",
                exports::MANIFEST
            )));
        }
    };

    let migrate = instance
        .get_typed_func::<(), i32>(&mut store, exports::MIGRATE)
        .map_err(abi)?;
    let migrate_len = instance
        .get_typed_func::<(), i32>(&mut store, exports::MIGRATE_LEN)
        .map_err(abi)?;
    let ptr = migrate.call_async(&mut store, ()).await.map_err(abi)? as u32;
    let len = migrate_len.call_async(&mut store, ()).await.map_err(abi)? as u32;
    let bytes = read_export_bytes(&instance, &mut store, ptr, len)?;
    let migrations = parse_migrations(&bytes).map_err(|e| MigrationError::Json(e.to_string()))?;

    if module.get_export(exports::MANIFEST).is_some() {
        check_request_exports(&instance, &mut store)?;
    }
    Ok((manifest, migrations))
}

/// A module that names itself must not contradict the name and version it was stored
/// under.
fn check_identity(manifest: &Manifest, identity: Option<Identity<'_>>) -> Result<(), LoadError> {
    let Some(identity) = identity else {
        return Ok(());
    };
    let same_version = Version::parse(identity.version)
        .ok()
        .zip(Version::parse(&manifest.version).ok())
        .is_some_and(|(a, b)| a == b);
    if manifest.name == identity.name && same_version {
        return Ok(());
    }
    Err(LoadError::Manifest(format!(
        "the module's manifest names it `{}` {}, not `{}` {}; leave the name and version \
         out for a module with a manifest",
        manifest.name, manifest.version, identity.name, identity.version
    )))
}

/// The manifest of a schema-only module: a name, a version, no routes, no capabilities.
fn schema_only_manifest(identity: Identity<'_>) -> Manifest {
    Manifest {
        name: identity.name.to_string(),
        version: identity.version.to_string(),
        abi_version: ABI_VERSION,
        routes: Vec::new(),
        capabilities: Vec::new(),
        grants: Vec::new(),
        events: Vec::new(),
        subscriptions: Vec::new(),
        schemas: Default::default(),
    }
}

fn check_request_exports(
    instance: &Instance,
    store: &mut Store<HostState>,
) -> Result<(), LoadError> {
    for (name, check) in [
        (
            exports::ALLOC,
            instance
                .get_typed_func::<i32, i32>(&mut *store, exports::ALLOC)
                .err(),
        ),
        (
            exports::DEALLOC,
            instance
                .get_typed_func::<(i32, i32), ()>(&mut *store, exports::DEALLOC)
                .err(),
        ),
        (
            exports::HANDLE,
            instance
                .get_typed_func::<(i32, i32, i32), i64>(&mut *store, exports::HANDLE)
                .err(),
        ),
    ] {
        if let Some(e) = check {
            return Err(LoadError::Abi(format!("export `{name}`: {e:#}")));
        }
    }
    Ok(())
}

fn read_export_bytes(
    instance: &Instance,
    store: &mut Store<HostState>,
    ptr: u32,
    len: u32,
) -> Result<Vec<u8>, LoadError> {
    let memory = instance
        .get_memory(&mut *store, exports::MEMORY)
        .ok_or_else(|| LoadError::Abi("the module exports no `memory`".into()))?;
    guest_memory::read(&memory, &*store, ptr, len, MAX_DESCRIPTOR_BYTES)
        .map_err(|e| LoadError::Abi(e.to_string()))
}
