//! The one wasmtime Engine of the process.

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Engine tuning. Every knob's effect was measured; see `docs/performance.md`.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Instances that can run at once (pool slots for instances, memories, tables and
    /// stacks). A request that finds the pool full ends as `pool_exhausted` (503).
    /// Default 128.
    pub pool_slots: u32,
    /// Largest linear memory any tenant may be granted, in bytes; per-tenant caps are
    /// enforced below this by the limiter. Default 64 MiB.
    pub max_memory_bytes: usize,
    /// Bytes of each linear memory kept resident and reset with `memset` instead of
    /// `madvise` when a slot is reused. Default 1 MiB.
    pub keep_resident_bytes: usize,
    /// Initialise memories copy-on-write from the module image instead of copying its
    /// data segments on every instantiation. Default on.
    pub memory_init_cow: bool,
    /// Wasm stack per call, in bytes; deeper recursion traps as `stack_overflow`.
    /// Default 512 KiB.
    pub max_wasm_stack: usize,
    /// Bytes of each async fiber stack kept resident between uses instead of being
    /// returned to the kernel, so calls do not page-fault on a fresh stack. Default 128 KiB.
    pub stack_keep_resident_bytes: usize,
    /// Catch out-of-bounds accesses with guard pages and signals instead of explicit
    /// bounds checks in guest code. Default off: with guard pages, every request whose
    /// guest grows its memory pays `mprotect` calls and TLB flushes to grow and reset it,
    /// which cost more than the bounds checks save for request-sized work.
    pub virtual_memory_guards: bool,
    /// Find the pages a call dirtied with the kernel's `PAGEMAP_SCAN` (where it has it)
    /// and reset only those, instead of all the resident bytes. Default on.
    pub pagemap_scan: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            pool_slots: 128,
            max_memory_bytes: 64 << 20,
            keep_resident_bytes: 1 << 20,
            memory_init_cow: true,
            max_wasm_stack: 512 << 10,
            stack_keep_resident_bytes: 128 << 10,
            virtual_memory_guards: false,
            pagemap_scan: true,
        }
    }
}

/// Builds the Engine: fuel metering on, pooling allocator sized by `settings`.
///
/// # Errors
/// When wasmtime rejects the configuration, e.g. not enough address space for the pool.
pub fn build_engine(settings: &EngineSettings) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(settings.pool_slots)
        .total_memories(settings.pool_slots)
        .total_tables(settings.pool_slots)
        .total_stacks(settings.pool_slots)
        .max_memory_size(settings.max_memory_bytes)
        .linear_memory_keep_resident(settings.keep_resident_bytes)
        .table_keep_resident(settings.keep_resident_bytes / 4)
        .async_stack_keep_resident(settings.stack_keep_resident_bytes)
        .pagemap_scan(if settings.pagemap_scan {
            Enabled::Auto
        } else {
            Enabled::No
        });
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .max_wasm_stack(settings.max_wasm_stack)
        .memory_init_cow(settings.memory_init_cow)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if !settings.virtual_memory_guards {
        config
            .signals_based_traps(false)
            .memory_guard_size(0)
            .guard_before_linear_memory(false)
            .memory_reservation(settings.max_memory_bytes as u64);
    }
    Engine::new(&config)
}
