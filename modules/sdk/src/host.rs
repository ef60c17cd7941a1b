//! The `eerp` imports, and their stand-ins on native targets.

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "eerp")]
    unsafe extern "C" {
        #[link_name = "log"]
        fn eerp_log(level: i32, ptr: i32, len: i32);
        #[link_name = "data_call"]
        fn eerp_data_call(ptr: i32, len: i32) -> i32;
        #[link_name = "data_take"]
        fn eerp_data_take(dst: i32);
        #[link_name = "emit"]
        fn eerp_emit(ptr: i32, len: i32);
    }

    pub fn emit(event: &[u8]) {
        let len = i32::try_from(event.len()).unwrap_or(i32::MAX);
        // SAFETY: the host reads at most `len` bytes of a live slice, during this call only.
        unsafe { eerp_emit(event.as_ptr() as usize as i32, len) }
    }

    pub fn log(level: i32, message: &str) {
        let len = i32::try_from(message.len()).unwrap_or(i32::MAX);
        // SAFETY: the host reads at most `len` bytes from a live `&str`, and only during
        // this call.
        unsafe { eerp_log(level, message.as_ptr() as usize as i32, len) }
    }

    /// Sends one data API request; returns the reply bytes, or `None` when the host
    /// answered with a negative length (it never should).
    pub fn data_call(request: &[u8]) -> Option<Vec<u8>> {
        let len = i32::try_from(request.len()).ok()?;
        // SAFETY: the host reads `len` bytes of a live slice during this call only.
        let reply_len = unsafe { eerp_data_call(request.as_ptr() as usize as i32, len) };
        let reply_len = usize::try_from(reply_len).ok()?;
        let mut reply = vec![0u8; reply_len];
        // SAFETY: `reply` has exactly `reply_len` writable bytes, the length the host just
        // reported for the reply it will copy.
        unsafe { eerp_data_take(reply.as_mut_ptr() as usize as i32) };
        Some(reply)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imports {
    /// Natively there is no host log; write to stderr so tests can show it.
    pub fn log(level: i32, message: &str) {
        eprintln!("[eerp log {level}] {message}");
    }

    /// Natively there is no host: every data call fails as unavailable.
    pub fn data_call(_request: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// Natively events go nowhere; `Ctx` records them for tests.
    pub fn emit(_event: &[u8]) {}
}

pub use imports::{data_call, emit, log};
