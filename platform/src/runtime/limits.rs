//! The per-Store resource limiter.
//!
//! A refused `memory.grow` returns -1 to the guest; a Rust guest then aborts through
//! `unreachable`, which looks exactly like a panic. The limiter therefore records that it
//! refused, and the outcome is classified from that flag (wasmtime#3772).

use wasmtime::ResourceLimiter;

/// Caps one Store's memories and tables and remembers its peak.
#[derive(Debug, Clone)]
pub struct MemoryLimiter {
    cap_bytes: usize,
    peak_bytes: usize,
    cap_hit: bool,
}

/// Table elements one instance may have; Rust guests need a handful.
const MAX_TABLE_ELEMENTS: usize = 10_000;

impl MemoryLimiter {
    /// A limiter allowing `cap_bytes` of linear memory.
    pub fn new(cap_bytes: usize) -> Self {
        Self {
            cap_bytes,
            peak_bytes: 0,
            cap_hit: false,
        }
    }

    /// Largest size linear memory reached, in bytes.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    /// Whether a grow (or the initial allocation) was refused for exceeding the cap.
    pub fn cap_hit(&self) -> bool {
        self.cap_hit
    }

    /// The cap, in bytes.
    pub fn cap_bytes(&self) -> usize {
        self.cap_bytes
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap_bytes {
            self.cap_hit = true;
            return Ok(false);
        }
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusing_a_grow_is_remembered_and_peak_tracks_granted_sizes() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 65_536, None).unwrap());
        assert!(limiter.memory_growing(65_536, 1 << 20, None).unwrap());
        assert!(!limiter.cap_hit());
        assert!(
            !limiter
                .memory_growing(1 << 20, (1 << 20) + 65_536, None)
                .unwrap()
        );
        assert!(limiter.cap_hit());
        assert_eq!(limiter.peak_bytes(), 1 << 20);
    }

    #[test]
    fn module_maximum_refusal_is_not_a_cap_hit() {
        let mut limiter = MemoryLimiter::new(1 << 30);
        assert!(!limiter.memory_growing(0, 2 << 20, Some(1 << 20)).unwrap());
        assert!(!limiter.cap_hit());
    }
}
