//! Compiled modules, kept so a module version is compiled once rather than at every start.
//!
//! Compiling a module with cranelift takes seconds; loading wasmtime's compiled artefact
//! (`Module::serialize`) takes milliseconds. An artefact is keyed by the SHA-256 of the
//! module's wasm bytes and a digest of the engine's compatibility hash (the wasmtime
//! version and every setting that changes the code), and kept in two places:
//!
//! - `eerp.module_artifacts` in the catalog, beside the module's bytes, so a replica start,
//!   a restart of `eerp dev` and a second replica loading a fresh upload deserialise what
//!   the first one compiled;
//! - this process's memory (bounded), so apps started again in one process (the test
//!   suite starts about a hundred, each on a new catalog) compile each module once.
//!
//! An artefact of another engine is never looked up (the key differs), one that fails to
//! deserialise is recompiled and replaced, and a row whose bytes do not match the digest
//! stored with them is ignored. Only artefacts this platform serialised itself are ever
//! deserialised: see [`deserialize`].

use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use crate::db::Pool;
use crate::runtime::LoadError;
use crate::runtime::loaded::sha256_hex;

/// Memory kept for artefacts in one process (each is a few MiB).
const MEMORY_BYTES: u64 = 256 << 20;

type Key = (String, String);

/// Artefacts this process serialised or read, by (wasm SHA-256, engine key).
static MEMORY: LazyLock<moka::sync::Cache<Key, Arc<[u8]>>> = LazyLock::new(|| {
    moka::sync::Cache::builder()
        .max_capacity(MEMORY_BYTES)
        .weigher(|_, bytes: &Arc<[u8]>| u32::try_from(bytes.len()).unwrap_or(u32::MAX))
        .build()
});

/// Where a module's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This process had it in memory.
    Memory,
    /// The catalog had it.
    Catalog,
    /// It was compiled now.
    Compiled,
}

impl Source {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Memory => "memory",
            Source::Catalog => "catalog",
            Source::Compiled => "compiled",
        }
    }
}

/// A module compiled for an engine, and an artefact not yet in the catalog.
pub struct Compiled {
    /// The module.
    pub module: Module,
    /// Where its code came from.
    pub source: Source,
    key: Key,
    /// The artefact, for [`Compiled::keep`], unless it was read from the catalog.
    artifact: Option<Arc<[u8]>>,
}

/// A hex digest of the engine's compatibility hash: artefacts of engines with the same
/// key load in each other, those of any other engine are never looked up.
pub fn engine_key(engine: &Engine) -> String {
    /// Feeds what `Hash` writes into SHA-256, which, unlike `DefaultHasher`, is the same
    /// in every process and Rust version.
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `wasm` (whose SHA-256 is `sha256`) compiled for `engine`: from this process's memory,
/// else from the catalog, else compiled (off the async workers). A catalog that cannot
/// be read only means compiling.
///
/// # Errors
/// [`LoadError::Compile`] when the module does not compile.
pub async fn compiled(
    catalog: Option<&Pool>,
    engine: &Engine,
    wasm: &[u8],
    sha256: &str,
) -> Result<Compiled, LoadError> {
    let key = (sha256.to_string(), engine_key(engine));
    if let Some(bytes) = MEMORY.get(&key)
        && let Some(module) = deserialize(engine, &bytes)
    {
        return Ok(Compiled {
            module,
            source: Source::Memory,
            key,
            artifact: Some(bytes),
        });
    }
    if let Some(pool) = catalog
        && let Some(bytes) = read(pool, &key).await
        && let Some(module) = deserialize(engine, &bytes)
    {
        MEMORY.insert(key.clone(), bytes);
        return Ok(Compiled {
            module,
            source: Source::Catalog,
            key,
            artifact: None,
        });
    }
    let (module, artifact) = compile(engine, wasm).await?;
    if let Some(bytes) = &artifact {
        MEMORY.insert(key.clone(), bytes.clone());
    }
    Ok(Compiled {
        module,
        source: Source::Compiled,
        key,
        artifact,
    })
}

impl Compiled {
    /// Stores the artefact in the catalog unless it came from there or is there already.
    /// Called once the module is known to load, so a refused upload leaves no artefact
    /// behind. A failure is logged: the next start compiles again, nothing else is lost.
    pub async fn keep(&self, pool: &Pool) {
        let Some(bytes) = &self.artifact else {
            return;
        };
        let digest = sha256_hex(bytes);
        let stored = async {
            let conn = pool.get().await.map_err(|e| e.to_string())?;
            let same = conn
                .query_opt(
                    "SELECT 1 FROM eerp.module_artifacts
                     WHERE sha256 = $1 AND engine = $2 AND artifact_sha256 = $3",
                    &[&self.key.0, &self.key.1, &digest],
                )
                .await
                .map_err(|e| e.to_string())?;
            if same.is_some() {
                return Ok(0);
            }
            conn.execute(
                "INSERT INTO eerp.module_artifacts (sha256, engine, artifact, artifact_sha256)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (sha256, engine) DO UPDATE
                     SET artifact = EXCLUDED.artifact, artifact_sha256 = EXCLUDED.artifact_sha256,
                         created_at = now()",
                &[&self.key.0, &self.key.1, &&bytes[..], &digest],
            )
            .await
            .map_err(|e| e.to_string())
        };
        if let Err(error) = stored.await {
            tracing::warn!(sha256 = %self.key.0, %error, "cannot keep a compiled module in the catalog");
        }
    }
}

/// The catalog's artefact for `key`, when it has one whose bytes match their digest.
async fn read(pool: &Pool, key: &Key) -> Option<Arc<[u8]>> {
    let conn = pool.get().await.ok()?;
    let row = conn
        .query_opt(
            "SELECT artifact, artifact_sha256 FROM eerp.module_artifacts
             WHERE sha256 = $1 AND engine = $2",
            &[&key.0, &key.1],
        )
        .await
        .inspect_err(
            |e| tracing::warn!(error = %e, "cannot read compiled modules from the catalog"),
        )
        .ok()??;
    let (bytes, digest): (&[u8], &str) = (row.get(0), row.get(1));
    if sha256_hex(bytes) != digest {
        tracing::warn!(sha256 = %key.0, "a compiled module in the catalog does not match its digest; compiling again");
        return None;
    }
    Some(bytes.into())
}

/// Compiles `wasm` off the async workers (cranelift can take seconds on a large module)
/// and serialises the result. A module that compiles but does not serialise is still
/// served; it is compiled again at the next start.
async fn compile(engine: &Engine, wasm: &[u8]) -> Result<(Module, Option<Arc<[u8]>>), LoadError> {
    let (engine, wasm) = (engine.clone(), wasm.to_vec());
    let module = tokio::task::spawn_blocking(move || Module::new(&engine, &wasm))
        .await
        .map_err(|e| LoadError::Compile(format!("the compiler task failed: {e}")))?
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    let bytes = module
        .serialize()
        .inspect_err(|e| tracing::warn!(error = %e, "cannot serialise a compiled module"))
        .ok()
        .map(Arc::from);
    Ok((module, bytes))
}

/// Rebuilds a module from an artefact; `None` (logged) when wasmtime refuses it, which it
/// does for artefacts of another wasmtime version or configuration.
fn deserialize(engine: &Engine, bytes: &[u8]) -> Option<Module> {
    // SAFETY: `Module::deserialize` trusts its input to be `Module::serialize`'s output,
    // unmodified. Every artefact reaching this point is:
    // - one this process serialised itself (`MEMORY` is private to this module and filled
    //   only by `compile` and by catalog reads that follow), or
    // - a row of `eerp.module_artifacts` whose bytes match the digest stored with them.
    //   Only `Compiled::keep` writes that table, with what `compile` serialised; no admin
    //   route, CLI command or module can write there (modules never send SQL, and the data
    //   API reaches only tenant schemas). Whoever can write the catalog database with the
    //   platform's credentials can therefore run code in every replica: those credentials
    //   are as sensitive as the binary itself (docs/operations.md says so).
    // Artefacts of another wasmtime version or engine configuration have another key and
    // are not looked up; wasmtime checks both again and refuses them with an error.
    #[allow(unsafe_code)]
    let module = unsafe { Module::deserialize(engine, bytes) };
    module
        .inspect_err(
            |e| tracing::warn!(error = %e, "a compiled module does not load; compiling again"),
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{EngineSettings, build_engine};

    const WAT: &str = r#"(module (func (export "answer") (result i32) i32.const 42))"#;

    fn engine(pool_slots: u32, guards: bool) -> Engine {
        build_engine(&EngineSettings {
            pool_slots,
            virtual_memory_guards: guards,
            ..EngineSettings::default()
        })
        .unwrap()
    }

    #[test]
    fn the_engine_key_follows_what_changes_the_code() {
        // Pool sizes do not change compiled code; bounds checks instead of guard pages do.
        assert_eq!(engine_key(&engine(4, false)), engine_key(&engine(8, false)));
        assert_ne!(engine_key(&engine(4, false)), engine_key(&engine(4, true)));
        assert_eq!(engine_key(&engine(4, false)).len(), 64);
    }

    #[tokio::test]
    async fn a_second_load_in_the_process_deserialises_what_the_first_compiled() {
        let wasm = wat::parse_str(WAT).unwrap();
        let sha256 = sha256_hex(&wasm);
        let first = compiled(None, &engine(4, false), &wasm, &sha256)
            .await
            .unwrap();
        assert_eq!(first.source, Source::Compiled);
        // Another engine with the same key reuses the artefact.
        let second = compiled(None, &engine(8, false), &wasm, &sha256)
            .await
            .unwrap();
        assert_eq!(second.source, Source::Memory);
        assert_eq!(first.artifact, second.artifact);
        // An engine with other code generation compiles its own.
        let other = compiled(None, &engine(4, true), &wasm, &sha256)
            .await
            .unwrap();
        assert_eq!(other.source, Source::Compiled);
    }

    #[test]
    fn an_artefact_of_another_engine_configuration_is_refused() {
        let wasm = wat::parse_str(WAT).unwrap();
        let bytes = Module::new(&engine(4, false), &wasm)
            .unwrap()
            .serialize()
            .unwrap();
        assert!(deserialize(&engine(4, false), &bytes).is_some());
        assert!(deserialize(&engine(4, true), &bytes).is_none());
    }
}
