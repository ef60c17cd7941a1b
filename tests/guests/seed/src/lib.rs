//! A module of the original EERP's contract, and nothing more: it exports `memory`,
//! `migrate`, `migrate_len` and `_start`, imports nothing, and its migration is the
//! original's own format, as its `vente_particulier` module emits it (with the `data` key
//! the original's proof of concept adds).
//!
//! `_start` writes the migration JSON into a buffer that `migrate` then points at: if the
//! host did not run `_start` once first, as the original host does, the buffer is empty
//! and the module fails to load. That is how the tests see that it ran.

use std::sync::atomic::{AtomicUsize, Ordering};

const MIGRATIONS: &str = r#"[{"entity":"vente","version":1,"operations":[{"type":"add_column","table":"vente","column":"type_client","sql_type":"TEXT","nullable":true},{"type":"add_column","table":"vente","column":"montant","sql_type":"NUMERIC(12,2)","nullable":false,"index":true}],"data":{"source":"vente_particulier"}},{"entity":"vente","version":2,"operations":[{"type":"create_index","table":"vente","column":"type_client","index_type":"hash"}]}]"#;

static mut BUFFER: [u8; 1024] = [0; 1024];
static WRITTEN: AtomicUsize = AtomicUsize::new(0);

/// Fills the buffer, as a program's entry point would set up its state.
#[unsafe(no_mangle)]
pub extern "C" fn _start() {
    let bytes = MIGRATIONS.as_bytes();
    // SAFETY: wasm32 modules are single-threaded and the host calls `_start` once, before
    // `migrate`; nothing else refers to the buffer while it is written.
    unsafe {
        let buffer = &mut *std::ptr::addr_of_mut!(BUFFER);
        buffer[..bytes.len()].copy_from_slice(bytes);
    }
    WRITTEN.store(bytes.len(), Ordering::Relaxed);
}

/// Pointer to the migration JSON.
#[unsafe(no_mangle)]
pub extern "C" fn migrate() -> i32 {
    std::ptr::addr_of!(BUFFER) as usize as i32
}

/// Byte length of the migration JSON: 0 until `_start` ran.
#[unsafe(no_mangle)]
pub extern "C" fn migrate_len() -> i32 {
    WRITTEN.load(Ordering::Relaxed) as i32
}
