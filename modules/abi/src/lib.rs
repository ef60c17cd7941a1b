//! # eerp-abi: the contract between the EERP host and its wasm modules
//!
//! This crate owns the *shape* of everything that crosses the sandbox boundary in ABI v1,
//! and nothing else: export and import names, the request/response envelopes, the module
//! manifest, the migration JSON (both the original EERP format and the richer one) and the
//! data API operations. It builds for the host and for `wasm32-unknown-unknown` and depends
//! only on `serde`.
//!
//! It must never depend on wasmtime, actix or a database driver: a module author pulls it
//! in through the SDK, and a host in another language could re-implement it from
//! `docs/abi.md` alone.
//!
//! ```
//! use eerp_abi::{pack, unpack};
//! let packed = pack(1024, 37);
//! assert_eq!(unpack(packed), (1024, 37));
//! ```
//!
//! Decisions, with reasons:
//! - Envelopes are JSON, because every language that targets wasm can produce it.
//! - Results come back as one packed `i64` (`ptr << 32 | len`), not multi-value, so guests
//!   written in languages whose toolchains cannot export multi-value functions still work.
//! - Unknown fields are rejected everywhere the host parses guest output, so a typo in a
//!   manifest or migration fails loudly at load instead of being ignored.
#![deny(missing_docs)]

pub mod data;
pub mod envelope;
pub mod manifest;
pub mod migration;

/// The ABI version this crate describes. A module declares it in its manifest.
pub const ABI_VERSION: u32 = 1;

/// The wasm import module every host function lives in.
pub const IMPORT_MODULE: &str = "eerp";

/// Names of the functions a module exports.
pub mod exports {
    /// `memory`: the module's linear memory.
    pub const MEMORY: &str = "memory";
    /// `eerp_alloc(len: i32) -> i32`: reserve `len` bytes and return their address.
    pub const ALLOC: &str = "eerp_alloc";
    /// `eerp_dealloc(ptr: i32, len: i32)`: release bytes from `eerp_alloc`.
    pub const DEALLOC: &str = "eerp_dealloc";
    /// `eerp_manifest() -> i64`: packed pointer and length of the manifest JSON.
    pub const MANIFEST: &str = "eerp_manifest";
    /// `migrate() -> i32`: pointer to the migration JSON (original EERP ABI).
    pub const MIGRATE: &str = "migrate";
    /// `migrate_len() -> i32`: byte length of the migration JSON (original EERP ABI).
    pub const MIGRATE_LEN: &str = "migrate_len";
    /// `eerp_handle(handler_id: i32, req_ptr: i32, req_len: i32) -> i64`: run a route.
    pub const HANDLE: &str = "eerp_handle";
    /// `_start()`: run once at load, only for a schema-only module (original EERP).
    pub const START: &str = "_start";
}

/// Names of the host functions in the `eerp` import module.
pub mod imports {
    /// `log(level: i32, ptr: i32, len: i32)`: write a UTF-8 line to the host's log.
    pub const LOG: &str = "log";
    /// `data_call(req_ptr: i32, req_len: i32) -> i32`: run one data API operation and
    /// return the byte length of its JSON result, which the host holds until `data_take`.
    pub const DATA_CALL: &str = "data_call";
    /// `data_take(dst_ptr: i32)`: copy the held result of the last `data_call` to `dst_ptr`.
    pub const DATA_TAKE: &str = "data_take";
    /// `emit(ptr: i32, len: i32)`: queue the event `{"event": name, "payload": any}`; its
    /// subscribers run after this handler returns, in the same transaction.
    pub const EMIT: &str = "emit";
}

/// Log levels accepted by the `log` import.
pub mod log_level {
    /// Errors the module wants an operator to see.
    pub const ERROR: i32 = 0;
    /// Something odd that did not stop the request.
    pub const WARN: i32 = 1;
    /// Routine information.
    pub const INFO: i32 = 2;
    /// Detail for debugging.
    pub const DEBUG: i32 = 3;
}

/// Packs a guest pointer and length into the `i64` that `eerp_handle` and
/// `eerp_manifest` return: the pointer in the high 32 bits, the length in the low 32.
pub fn pack(ptr: u32, len: u32) -> i64 {
    (((ptr as u64) << 32) | len as u64) as i64
}

/// Splits a packed `i64` back into `(ptr, len)`. Never fails: any bit pattern is some
/// pointer and length, which the host then bounds-checks.
pub fn unpack(packed: i64) -> (u32, u32) {
    let bits = packed as u64;
    ((bits >> 32) as u32, (bits & 0xffff_ffff) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips_extremes() {
        for (ptr, len) in [(0, 0), (u32::MAX, u32::MAX), (1, u32::MAX), (u32::MAX, 0)] {
            assert_eq!(unpack(pack(ptr, len)), (ptr, len));
        }
    }

    #[test]
    fn pointer_lives_in_high_bits() {
        assert_eq!(pack(2, 3), (2i64 << 32) | 3);
    }
}
