//! How a module call ended.

use std::time::Duration;

use thiserror::Error;
use wasmtime::{PoolConcurrencyLimitError, Trap};

use super::host::HostTrap;

/// The outcome classes of the design, as they appear in the request log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 2xx/3xx from the module, writes committed.
    Ok,
    /// 4xx/5xx from the module, writes rolled back.
    ModuleError,
    /// The fuel budget ran out.
    OutOfFuel,
    /// The module wanted more memory than its cap.
    MemoryLimit,
    /// The wall-clock limit passed (database waits included).
    Timeout,
    /// The wasm stack overflowed.
    StackOverflow,
    /// Any other trap: panic, unreachable, out-of-bounds access, division by zero.
    Trap,
    /// The module broke ABI v1: bad pointer, oversized or malformed response.
    BadAbi,
    /// Domain events nested too deep or fanned out too far (an event loop).
    EventLimit,
    /// A data call read past the request's row or byte cap and was stopped there.
    DataLimit,
    /// No sandbox slot was free.
    PoolExhausted,
    /// Too many requests (reserved for admission control).
    RateLimited,
    /// The database failed.
    DbError,
}

impl Outcome {
    /// Every outcome, for metrics that show each one from the start.
    pub const ALL: [Outcome; 13] = [
        Outcome::Ok,
        Outcome::ModuleError,
        Outcome::OutOfFuel,
        Outcome::MemoryLimit,
        Outcome::Timeout,
        Outcome::StackOverflow,
        Outcome::Trap,
        Outcome::BadAbi,
        Outcome::EventLimit,
        Outcome::DataLimit,
        Outcome::PoolExhausted,
        Outcome::RateLimited,
        Outcome::DbError,
    ];

    /// The label used in logs (problem type slugs spell it with `-`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ModuleError => "module_error",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::Timeout => "timeout",
            Outcome::StackOverflow => "stack_overflow",
            Outcome::Trap => "trap",
            Outcome::BadAbi => "bad_abi",
            Outcome::EventLimit => "event_limit",
            Outcome::DataLimit => "data_limit",
            Outcome::PoolExhausted => "pool_exhausted",
            Outcome::RateLimited => "rate_limited",
            Outcome::DbError => "db_error",
        }
    }
}

/// Why a module call did not produce a response.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// The fuel budget ran out.
    #[error("the module used its whole fuel budget of {budget} units")]
    OutOfFuel {
        /// The budget.
        budget: u64,
    },
    /// A memory grow beyond the cap was refused.
    #[error("the module tried to use more than its memory cap of {cap_bytes} bytes")]
    MemoryLimit {
        /// The cap.
        cap_bytes: usize,
    },
    /// The wall-clock limit passed.
    #[error("the module did not finish within {0:?}")]
    Timeout(Duration),
    /// The wasm stack overflowed.
    #[error("the module overflowed its stack (unbounded recursion?)")]
    StackOverflow,
    /// Another trap.
    #[error("the module trapped: {0}")]
    Trap(String),
    /// ABI v1 was broken.
    #[error("the module broke ABI v1: {0}")]
    BadAbi(String),
    /// Events nested deeper or fanned out further than the platform allows.
    #[error("domain events were stopped: {0}")]
    EventLimit(String),
    /// The sandbox pool was full.
    #[error("no sandbox slot is free; retry shortly")]
    PoolExhausted,
    /// The database failed.
    #[error("the database failed: {0}")]
    Db(String),
}

impl InvokeError {
    /// The outcome class.
    pub fn outcome(&self) -> Outcome {
        match self {
            InvokeError::OutOfFuel { .. } => Outcome::OutOfFuel,
            InvokeError::MemoryLimit { .. } => Outcome::MemoryLimit,
            InvokeError::Timeout(_) => Outcome::Timeout,
            InvokeError::StackOverflow => Outcome::StackOverflow,
            InvokeError::Trap(_) => Outcome::Trap,
            InvokeError::BadAbi(_) => Outcome::BadAbi,
            InvokeError::EventLimit(_) => Outcome::EventLimit,
            InvokeError::PoolExhausted => Outcome::PoolExhausted,
            InvokeError::Db(_) => Outcome::DbError,
        }
    }

    /// Classifies an error from instantiating or calling the module, from typed errors
    /// only. Host failures, a full pool and running out of fuel or stack are what they
    /// say; any other trap after a refused memory grow is the memory limit, because a
    /// guest that cannot grow usually aborts through `unreachable`.
    pub fn classify(err: &wasmtime::Error, cap_hit: bool, cap_bytes: usize, fuel: u64) -> Self {
        if let Some(host) = err.downcast_ref::<HostTrap>() {
            return match host {
                HostTrap::BadAbi(detail) => InvokeError::BadAbi(detail.clone()),
                HostTrap::Db(detail) => InvokeError::Db(detail.clone()),
                HostTrap::Timeout(limit) => InvokeError::Timeout(*limit),
                HostTrap::EventLimit(detail) => InvokeError::EventLimit(detail.clone()),
            };
        }
        if err.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
            return InvokeError::PoolExhausted;
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => InvokeError::OutOfFuel { budget: fuel },
            Some(Trap::StackOverflow) => InvokeError::StackOverflow,
            _ if cap_hit => InvokeError::MemoryLimit { cap_bytes },
            Some(trap) => InvokeError::Trap(trap.to_string()),
            None => InvokeError::Trap(format!("{err:#}")),
        }
    }
}
