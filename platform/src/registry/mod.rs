//! The module versions this process serves, and the catalog's module store behind them.
//!
//! A module version is data: its wasm bytes, hash and manifest are a row of
//! `eerp.module_versions` ([`store`]), uploaded at runtime by an operator or seeded from
//! the modules built into this binary. Every replica loads what the store holds, never a
//! local file the others lack, and reloads when a "modules changed" notification arrives.
//!
//! Compiling is the slow part of loading, so each version's compiled code is kept too
//! ([`artifacts`]): a replica that starts, or loads another's upload, deserialises it.
//!
//! The [`Registry`] is keyed by (module, version): each tenant is served the version it
//! migrated to. Readers clone an `Arc` of the current map and never wait on a loader;
//! loading builds a new map and swaps it in, so requests in flight finish on the version
//! they started with (they hold an `Arc` of it).

pub mod artifacts;
pub mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use semver::Version;

use crate::runtime::LoadedModule;

pub use store::{StoreError, Upload};

/// The business modules built into this binary: (file name, wasm bytes). They are
/// seeded into the module store at start-up, so they load like any uploaded module.
pub const BUILTIN_MODULES: &[(&str, &[u8])] = &[
    ("crm.wasm", include_bytes!(env!("EERP_CRM_WASM"))),
    (
        "inventory.wasm",
        include_bytes!(env!("EERP_INVENTORY_WASM")),
    ),
    (
        "accounting.wasm",
        include_bytes!(env!("EERP_ACCOUNTING_WASM")),
    ),
    ("hr.wasm", include_bytes!(env!("EERP_HR_WASM"))),
];

type ModuleMap = BTreeMap<(String, Version), Arc<LoadedModule>>;

/// The loaded module versions, by (name, version).
#[derive(Debug, Default)]
pub struct Registry {
    current: RwLock<Arc<ModuleMap>>,
    /// Serialises loads, so concurrent requests for a version not yet loaded compile it
    /// once.
    loading: tokio::sync::Mutex<()>,
    /// Versions loaded so far, by where their code came from ([`artifacts::Source`]).
    loads: [AtomicU64; 3],
}

impl Registry {
    /// Version `version` of module `name`, if loaded.
    pub fn get(&self, name: &str, version: &str) -> Option<Arc<LoadedModule>> {
        let version = Version::parse(version).ok()?;
        self.snapshot().get(&(name.to_string(), version)).cloned()
    }

    /// The highest loaded release of module `name` (a pre-release such as `2.0.0-rc.1`
    /// only when there is no release), the default for enabling and fleet runs.
    pub fn newest(&self, name: &str) -> Option<Arc<LoadedModule>> {
        let snapshot = self.snapshot();
        snapshot
            .iter()
            .filter(|((module, _), _)| module == name)
            .max_by(|((_, a), _), ((_, b), _)| (a.pre.is_empty(), a).cmp(&(b.pre.is_empty(), b)))
            .map(|(_, module)| module.clone())
    }

    /// Whether any version of module `name` is loaded.
    pub fn has(&self, name: &str) -> bool {
        self.snapshot().keys().any(|(module, _)| module == name)
    }

    /// Names of the loaded modules, each once.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.snapshot().keys().map(|(n, _)| n.clone()).collect();
        names.dedup();
        names
    }

    /// The highest loaded version of every module.
    pub fn modules(&self) -> Vec<Arc<LoadedModule>> {
        self.names()
            .iter()
            .filter_map(|name| self.newest(name))
            .collect()
    }

    /// Counts a version loaded with code from `source`.
    pub fn record_load(&self, source: artifacts::Source) {
        self.loads[source as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Versions loaded so far, by where their code came from (`compiled`, `catalog`,
    /// `memory`).
    pub fn load_counts(&self) -> [(&'static str, u64); 3] {
        [
            artifacts::Source::Compiled,
            artifacts::Source::Catalog,
            artifacts::Source::Memory,
        ]
        .map(|source| {
            let count = self.loads[source as usize].load(Ordering::Relaxed);
            (source.as_str(), count)
        })
    }

    fn snapshot(&self) -> Arc<ModuleMap> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            // A writer panicked mid-swap; the map it left is still a complete map.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut ModuleMap)) {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = ModuleMap::clone(&guard);
        change(&mut next);
        *guard = Arc::new(next);
    }

    /// Installs `module`, replacing the same (name, version) if it was loaded.
    pub fn install(&self, module: Arc<LoadedModule>) {
        let key = (module.name.to_string(), module.version.clone());
        self.update(|map| {
            map.insert(key, module);
        });
    }

    /// Forgets the versions for which `keep` is false (retired ones).
    fn retain(&self, keep: impl Fn(&str, &Version, &LoadedModule) -> bool) {
        self.update(|map| map.retain(|(name, version), module| keep(name, version, module)));
    }
}
