//! The bodies of the exports that [`crate::export!`] defines.
//!
//! Addresses are wasm32 linear-memory offsets carried in `i32`. On a native target these
//! functions exist only so module crates link; nothing calls them there.

use eerp_abi::envelope::Request;
use eerp_abi::pack;

use crate::Module;
use crate::reply::{Error, Reply};

/// `eerp_alloc`: reserve `len` bytes for the host to write into; 0 when `len` is not
/// positive or memory is exhausted.
pub fn alloc(len: i32) -> i32 {
    let Ok(len) = usize::try_from(len) else {
        return 0;
    };
    if len == 0 {
        return 0;
    }
    raw::alloc(len)
}

/// `eerp_dealloc`: release bytes returned by [`alloc`] with the same `len`.
pub fn dealloc(ptr: i32, len: i32) {
    if let (Ok(len), true) = (usize::try_from(len), ptr != 0)
        && len > 0
    {
        raw::dealloc(ptr, len);
    }
}

/// `eerp_manifest`: the manifest JSON, packed.
pub fn manifest(module: &Module) -> i64 {
    leak(serde_json::to_vec(&module.manifest()).unwrap_or_default())
}

/// `migrate`: pointer to the migration JSON. It is built again for `migrate_len`, which
/// yields the same bytes because a module's migrations are a constant.
pub fn migrate_ptr(module: &Module) -> i32 {
    let (ptr, _) = eerp_abi::unpack(leak(module.migration_json()));
    ptr as i32
}

/// `migrate_len`: byte length of the migration JSON.
pub fn migrate_len(module: &Module) -> i32 {
    i32::try_from(module.migration_json().len()).unwrap_or(i32::MAX)
}

/// `eerp_handle`: decode the request, run the handler, encode the response.
pub fn handle(module: &Module, handler_id: i32, req_ptr: i32, req_len: i32) -> i64 {
    let reply = match take_request(req_ptr, req_len) {
        Ok(request) => module.dispatch(handler_id, request),
        Err(err) => Err(err),
    };
    let response = reply.unwrap_or_else(Reply::from);
    leak(serde_json::to_vec(&response.into_response()).unwrap_or_default())
}

fn take_request(ptr: i32, len: i32) -> Result<Request, Error> {
    let bytes = usize::try_from(len)
        .ok()
        .filter(|len| *len > 0 && ptr != 0)
        .map(|len| raw::take(ptr, len))
        .ok_or_else(|| Error::internal("the host passed an empty request envelope"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::internal(format!("the request envelope is not ABI v1 JSON: {e}")))
}

/// Hands `bytes` to the host: they stay allocated for the rest of this instance's life,
/// which is one request.
fn leak(bytes: Vec<u8>) -> i64 {
    let len = u32::try_from(bytes.len()).unwrap_or(0);
    let ptr = raw::leak(bytes);
    pack(ptr, len)
}

#[cfg(target_arch = "wasm32")]
mod raw {
    use std::alloc::{Layout, alloc as std_alloc, dealloc as std_dealloc};

    pub fn alloc(len: usize) -> i32 {
        let Ok(layout) = Layout::from_size_align(len, 1) else {
            return 0;
        };
        // SAFETY: `layout` has a non-zero size (the caller checked `len > 0`).
        let ptr = unsafe { std_alloc(layout) };
        ptr as usize as i32
    }

    pub fn dealloc(ptr: i32, len: usize) {
        let Ok(layout) = Layout::from_size_align(len, 1) else {
            return;
        };
        // SAFETY: the ABI requires `ptr`/`len` to come from `eerp_alloc(len)`, which used
        // this same layout; the host is the only caller.
        unsafe { std_dealloc(ptr as u32 as usize as *mut u8, layout) }
    }

    pub fn take(ptr: i32, len: usize) -> Vec<u8> {
        // SAFETY: the host wrote `len` bytes at `ptr`, a block it got from
        // `eerp_alloc(len)` (size `len`, align 1, as `Vec<u8>` with capacity `len` expects)
        // and hands it over with this call; nothing else refers to it afterwards.
        unsafe { Vec::from_raw_parts(ptr as u32 as usize as *mut u8, len, len) }
    }

    pub fn leak(bytes: Vec<u8>) -> u32 {
        Box::leak(bytes.into_boxed_slice()).as_ptr() as usize as u32
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod raw {
    pub fn alloc(_len: usize) -> i32 {
        0
    }
    pub fn dealloc(_ptr: i32, _len: usize) {}
    pub fn take(_ptr: i32, _len: usize) -> Vec<u8> {
        Vec::new()
    }
    pub fn leak(_bytes: Vec<u8>) -> u32 {
        0
    }
}
