//! Compiled modules, kept so a module version is compiled once rather than at every start.
//!
//! Compiling a module with cranelift takes seconds; loading wasmtime's compiled artefact
//! (`Module::serialize`) takes milliseconds. An artefact is keyed by the SHA-256 of the
//! module's wasm bytes and a digest of the engine's compatibility hash (the wasmtime
//! version and every setting that changes the code), and kept in two places:
//!
//! - `eerp.module_artifacts` in the catalog, beside the module's bytes, so a replica start,
//!   a restart of `eerp dev` and a second replica loading a fresh upload deserialise what
//!   the first one compiled. Each row is signed (HMAC-SHA256) with the replicas' shared
//!   [`ArtifactKey`], which never enters the database; without a key nothing is kept
//!   there;
//! - this process's memory (bounded), so apps started again in one process (the test
//!   suite starts about a hundred, each on a new catalog) compile each module once.
//!
//! An artefact of another engine is never looked up (the key differs), one that fails to
//! deserialise is recompiled and replaced, and a row whose signature does not check is
//! ignored. Only artefacts this platform serialised itself are ever deserialised: see
//! [`deserialize`].

use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use crate::db::Pool;
use crate::runtime::LoadError;
use crate::runtime::loaded::{self, hex};

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

/// The secret the replicas sign kept artefacts with, so that rows someone else wrote into
/// the catalog (a stolen database password, a bug in SQL the host builds) are never run.
/// Every replica of a deployment needs the same one (`--artifact-key`).
#[derive(Clone)]
pub struct ArtifactKey(Arc<[u8]>);

impl ArtifactKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_BYTES: usize = 32;

    /// A key of at least [`ArtifactKey::MIN_BYTES`] bytes.
    ///
    /// # Errors
    /// A shorter one, with what to do.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_BYTES {
            return Err(format!(
                "the artefact key has {} bytes; give at least {} random ones (`openssl rand -hex 32`)",
                bytes.len(),
                Self::MIN_BYTES
            ));
        }
        Ok(Self(bytes.into()))
    }

    /// The signature of `artifact`, kept for the module bytes `sha256` and engine `engine`
    /// (so a signed artefact cannot be moved to another module or engine either).
    fn sign(&self, (sha256, engine): &Key, artifact: &[u8]) -> Hmac<Sha256> {
        // A key of any length is valid for HMAC; `new` only keeps short ones out.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [sha256.as_bytes(), b"\0", engine.as_bytes(), b"\0", artifact] {
            mac.update(part);
        }
        mac
    }
}

impl std::fmt::Debug for ArtifactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArtifactKey(..)")
    }
}

/// The catalog table artefacts are kept in, and the key that signs them.
#[derive(Clone, Copy)]
pub struct Catalog<'a> {
    /// The catalog.
    pub pool: &'a Pool,
    /// Signs and checks its rows.
    pub key: &'a ArtifactKey,
}

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
    hex(&hasher.0.finalize())
}

/// `wasm` (whose SHA-256 is `sha256`) compiled for `engine`: from this process's memory,
/// else from the catalog (with a key), else compiled (off the async workers). A catalog
/// that cannot be read only means compiling.
///
/// # Errors
/// [`LoadError::Compile`] when the module does not compile.
pub async fn compiled(
    catalog: Option<Catalog<'_>>,
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
    if let Some(catalog) = catalog
        && let Some(bytes) = read(catalog, &key).await
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
    /// Called once the version is stored or loaded, so a refused upload leaves no artefact
    /// behind. A failure is logged: the next start compiles again, nothing else is lost.
    pub async fn keep(&self, catalog: Catalog<'_>) {
        let Some(bytes) = &self.artifact else {
            return;
        };
        let mac = catalog
            .key
            .sign(&self.key, bytes)
            .finalize()
            .into_bytes()
            .to_vec();
        let stored = async {
            let conn = catalog.pool.get().await.map_err(|e| e.to_string())?;
            let same = conn
                .query_opt(
                    "SELECT 1 FROM eerp.module_artifacts
                     WHERE sha256 = $1 AND engine = $2 AND artifact_mac = $3",
                    &[&self.key.0, &self.key.1, &mac],
                )
                .await
                .map_err(|e| e.to_string())?;
            if same.is_some() {
                return Ok(0);
            }
            conn.execute(
                "INSERT INTO eerp.module_artifacts (sha256, engine, artifact, artifact_mac)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (sha256, engine) DO UPDATE
                     SET artifact = EXCLUDED.artifact, artifact_mac = EXCLUDED.artifact_mac,
                         created_at = now()",
                &[&self.key.0, &self.key.1, &&bytes[..], &mac],
            )
            .await
            .map_err(|e| e.to_string())
        };
        if let Err(error) = stored.await {
            tracing::warn!(sha256 = %self.key.0, %error, "cannot keep a compiled module in the catalog");
        }
    }
}

/// The catalog's artefact for `key`, when it has one signed with this key.
async fn read(catalog: Catalog<'_>, key: &Key) -> Option<Arc<[u8]>> {
    let conn = catalog.pool.get().await.ok()?;
    let row = conn
        .query_opt(
            "SELECT artifact, artifact_mac FROM eerp.module_artifacts
             WHERE sha256 = $1 AND engine = $2",
            &[&key.0, &key.1],
        )
        .await
        .inspect_err(
            |e| tracing::warn!(error = %e, "cannot read compiled modules from the catalog"),
        )
        .ok()??;
    let (bytes, mac): (&[u8], &[u8]) = (row.try_get(0).ok()?, row.try_get(1).ok()?);
    // `verify_slice` compares in constant time.
    if catalog.key.sign(key, bytes).verify_slice(mac).is_err() {
        tracing::warn!(sha256 = %key.0, "a compiled module in the catalog is not signed with this replica's artefact key; compiling again");
        return None;
    }
    Some(bytes.into())
}

/// Compiles `wasm` and serialises the result. A module that compiles but does not
/// serialise is still served; it is compiled again at the next start.
async fn compile(engine: &Engine, wasm: &[u8]) -> Result<(Module, Option<Arc<[u8]>>), LoadError> {
    let module = loaded::compile(engine, wasm).await?;
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
    // - a row of `eerp.module_artifacts` whose HMAC-SHA256, over the module's hash, the
    //   engine key and the bytes, checks with the replicas' `ArtifactKey`. Only
    //   `Compiled::keep` signs, and only what `compile` serialised. The key is in the
    //   replicas' configuration, never in the database, so someone who can write the
    //   catalog (a stolen password, a bug in SQL the host builds) cannot forge a row; a
    //   forged or damaged one is refused before it gets here. Whoever holds the key can:
    //   it is as sensitive as the binary (docs/operations.md says so).
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
    use crate::runtime::loaded::sha256_hex;
    use crate::runtime::{EngineSettings, build_engine};

    const WAT: &str = r#"(module (func (export "answer") (result i32) i32.const 42))"#;

    #[test]
    fn a_signature_binds_key_module_engine_and_bytes() {
        let key = ArtifactKey::new([7u8; 32]).unwrap();
        let other = ArtifactKey::new([8u8; 32]).unwrap();
        let at = ("aa".to_string(), "e1".to_string());
        let mac = key.sign(&at, b"code").finalize().into_bytes();
        assert!(key.sign(&at, b"code").verify_slice(&mac).is_ok());
        assert!(other.sign(&at, b"code").verify_slice(&mac).is_err());
        assert!(key.sign(&at, b"c0de").verify_slice(&mac).is_err());
        let elsewhere = ("bb".to_string(), "e1".to_string());
        assert!(key.sign(&elsewhere, b"code").verify_slice(&mac).is_err());
        assert!(
            ArtifactKey::new(vec![1u8; 31]).is_err(),
            "short keys are refused"
        );
    }

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
