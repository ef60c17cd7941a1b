//! The wasm sandbox: one Engine, modules compiled once, a fresh Store per request.
//!
//! - [`engine`]: the process-wide Engine (pooling allocator, fuel) and its tuning knobs.
//! - [`loaded`]: a module compiled, checked and pre-linked (`InstancePre`) once per version.
//! - [`invoke`]: one request in one fresh Store, with fuel, memory cap and wall clock.
//! - [`limits`]: the memory limiter that remembers whether the cap was hit.
//! - [`outcome`]: how a call ended, classified from typed errors, never from messages.
//! - [`guest_memory`]: bounds-checked reads and writes of guest memory.
//! - [`host`]: the `eerp` imports, one capability per file, and the state of a Store.
//! - [`cpu`]: the CPU time of a call's polls, and each tenant's fair share of the cores.

pub mod cpu;
pub mod engine;
pub mod guest_memory;
pub mod host;
pub mod invoke;
pub mod limits;
pub mod loaded;
pub mod outcome;

pub use engine::{EngineSettings, build_engine};
pub use invoke::{Invocation, InvokeReport, invoke};
pub use loaded::{Identity, LoadError, LoadedModule, RouteMatch};
pub use outcome::{InvokeError, Outcome};
