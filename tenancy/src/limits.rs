//! Per-tenant limits on what one request may consume.

use std::time::Duration;

/// What one request of a tenant may use. Every field states its unit; the defaults suit a
/// small business tenant on a 2-core node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel (about one unit per instruction) per request. At the limit the module is
    /// stopped with `out_of_fuel`. Default 50,000,000 (a few ms of guest CPU).
    pub fuel_per_request: u64,
    /// Bytes of linear memory the module may have. A larger `memory.grow` fails and the
    /// request ends as `memory_limit`. Default 32 MiB.
    pub max_memory_bytes: usize,
    /// Wall-clock time for the whole module call, database waits included. At the limit
    /// the call is cancelled and rolled back as `timeout`. Default 5 s.
    pub wall_time: Duration,
    /// Largest request body, in bytes; larger bodies get 413. Default 256 KiB.
    pub max_request_bytes: usize,
    /// Largest response a module may return, in bytes; more is `bad_abi`. Default 1 MiB.
    pub max_response_bytes: usize,
    /// Data API calls per request; more fail with `limit_exceeded`. Default 200.
    pub max_data_calls: u32,
    /// Rows the data API may return per request, all calls together. Default 5,000.
    pub max_rows_returned: u64,
    /// Bytes of rows the data API may return per request. Default 4 MiB.
    pub max_bytes_returned: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel_per_request: 50_000_000,
            max_memory_bytes: 32 << 20,
            wall_time: Duration::from_secs(5),
            max_request_bytes: 256 << 10,
            max_response_bytes: 1 << 20,
            max_data_calls: 200,
            max_rows_returned: 5_000,
            max_bytes_returned: 4 << 20,
        }
    }
}
