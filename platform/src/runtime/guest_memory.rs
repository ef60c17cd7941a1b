//! Bounds-checked access to a guest's linear memory.
//!
//! Every pointer and length from a guest is hostile: offsets are checked in `usize`
//! against the memory's *current* size, which is read again on every access because any
//! call into the guest may have grown (and moved) the memory.

use wasmtime::{AsContext, AsContextMut, Memory};

use super::host::HostTrap;

/// Copies `len` bytes at `ptr` out of guest memory.
///
/// # Errors
/// [`HostTrap::BadAbi`] when the range is outside memory or longer than `max_len`.
pub fn read(
    memory: &Memory,
    store: impl AsContext,
    ptr: u32,
    len: u32,
    max_len: usize,
) -> Result<Vec<u8>, HostTrap> {
    let len = len as usize;
    if len > max_len {
        return Err(HostTrap::BadAbi(format!(
            "{len} bytes exceeds the cap of {max_len} bytes"
        )));
    }
    let data = memory.data(&store);
    let start = ptr as usize;
    let end = start
        .checked_add(len)
        .filter(|end| *end <= data.len())
        .ok_or_else(|| out_of_bounds(start, len, data.len()))?;
    Ok(data[start..end].to_vec())
}

/// Writes `bytes` at `ptr` in guest memory.
///
/// # Errors
/// [`HostTrap::BadAbi`] when the range is outside memory.
pub fn write(
    memory: &Memory,
    mut store: impl AsContextMut,
    ptr: u32,
    bytes: &[u8],
) -> Result<(), HostTrap> {
    let size = memory.data_size(&store);
    memory
        .write(&mut store, ptr as usize, bytes)
        .map_err(|_| out_of_bounds(ptr as usize, bytes.len(), size))
}

fn out_of_bounds(start: usize, len: usize, size: usize) -> HostTrap {
    HostTrap::BadAbi(format!(
        "range {start}..{start}+{len} is outside guest memory of {size} bytes"
    ))
}
