//! Per-tenant limits on what one request, and one tenant at a time, may consume.
//!
//! The effective limits of a tenant are layered: the platform defaults ([`Limits::default`]
//! or the operator's configured base), then the tenant's plan (a named [`LimitOverrides`]
//! preset), then the tenant's own overrides. Each layer only names the fields it changes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Module calls of the tenant running at once on one replica; more get 429. Default 32.
    pub max_concurrent_calls: u32,
    /// Sustained requests per second per replica (token bucket); more get 429. Default 200.
    pub requests_per_second: u32,
    /// Requests the bucket holds for bursts. Default 400.
    pub burst: u32,
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
            max_concurrent_calls: 32,
            requests_per_second: 200,
            burst: 400,
            max_request_bytes: 256 << 10,
            max_response_bytes: 1 << 20,
            max_data_calls: 200,
            max_rows_returned: 5_000,
            max_bytes_returned: 4 << 20,
        }
    }
}

/// A partial set of limits: a plan's preset or a tenant's own overrides. This is also the
/// JSON shape of limits in the admin API (where every field is filled for effective limits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// See [`Limits::fuel_per_request`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_request: Option<u64>,
    /// See [`Limits::max_memory_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_bytes: Option<u64>,
    /// See [`Limits::wall_time`], in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_ms: Option<u64>,
    /// See [`Limits::max_concurrent_calls`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
    /// See [`Limits::requests_per_second`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// See [`Limits::burst`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// See [`Limits::max_request_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    /// See [`Limits::max_response_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// See [`Limits::max_data_calls`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_data_calls: Option<u32>,
}

/// The most fuel any request may be given: about ten seconds of guest code.
pub const MAX_FUEL_PER_REQUEST: u64 = 20_000_000_000;

/// The largest request or response body any tenant may be allowed: the ABI's envelope
/// carries at most 1 MiB either way.
pub const MAX_BODY_BYTES: u64 = 1 << 20;

/// The highest values an operator may set; they come from how the engine was configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceilings {
    /// The sandbox pool's per-instance memory reservation.
    pub max_memory_bytes: u64,
}

impl LimitOverrides {
    /// Checks that every given value is usable: positive, and memory within `ceilings`.
    ///
    /// # Errors
    /// A message naming the first bad field and what to send instead.
    pub fn validate(&self, ceilings: Ceilings) -> Result<(), String> {
        let positive = [
            ("fuel_per_request", self.fuel_per_request),
            ("max_memory_bytes", self.max_memory_bytes),
            ("wall_time_ms", self.wall_time_ms),
            (
                "max_concurrent_calls",
                self.max_concurrent_calls.map(u64::from),
            ),
            (
                "requests_per_second",
                self.requests_per_second.map(u64::from),
            ),
            ("burst", self.burst.map(u64::from)),
            ("max_request_bytes", self.max_request_bytes),
            ("max_response_bytes", self.max_response_bytes),
            ("max_data_calls", self.max_data_calls.map(u64::from)),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == Some(0)) {
            return Err(format!("`{name}` must be greater than 0"));
        }
        if let Some(bytes) = self.max_memory_bytes
            && bytes > ceilings.max_memory_bytes
        {
            return Err(format!(
                "`max_memory_bytes` {bytes} is above this deployment's ceiling of {} bytes",
                ceilings.max_memory_bytes
            ));
        }
        let bounded = [
            (
                "fuel_per_request",
                self.fuel_per_request,
                MAX_FUEL_PER_REQUEST,
            ),
            ("wall_time_ms", self.wall_time_ms, 300_000),
            (
                "max_concurrent_calls",
                self.max_concurrent_calls.map(u64::from),
                10_000,
            ),
            (
                "requests_per_second",
                self.requests_per_second.map(u64::from),
                1_000_000,
            ),
            ("burst", self.burst.map(u64::from), 1_000_000),
            ("max_request_bytes", self.max_request_bytes, MAX_BODY_BYTES),
            (
                "max_response_bytes",
                self.max_response_bytes,
                MAX_BODY_BYTES,
            ),
            (
                "max_data_calls",
                self.max_data_calls.map(u64::from),
                100_000,
            ),
        ];
        for (name, value, max) in bounded {
            if let Some(value) = value
                && value > max
            {
                return Err(format!(
                    "`{name}` {value} is above the platform's maximum of {max}"
                ));
            }
        }
        Ok(())
    }

    /// Limits as stored in the catalog. Unlike input from an operator, fields this version
    /// does not know are ignored: a newer replica may have written them during a rolling
    /// upgrade.
    ///
    /// # Errors
    /// When a known field has the wrong type.
    pub fn from_stored(mut value: serde_json::Value) -> Result<Self, serde_json::Error> {
        let known = serde_json::to_value(Limits::default().as_overrides())?;
        if let (Some(stored), Some(known)) = (value.as_object_mut(), known.as_object()) {
            stored.retain(|field, _| known.contains_key(field));
        }
        serde_json::from_value(value)
    }

    /// `self` with the fields `other` sets replaced by `other`'s values.
    pub fn merged(&self, other: &LimitOverrides) -> LimitOverrides {
        LimitOverrides {
            fuel_per_request: other.fuel_per_request.or(self.fuel_per_request),
            max_memory_bytes: other.max_memory_bytes.or(self.max_memory_bytes),
            wall_time_ms: other.wall_time_ms.or(self.wall_time_ms),
            max_concurrent_calls: other.max_concurrent_calls.or(self.max_concurrent_calls),
            requests_per_second: other.requests_per_second.or(self.requests_per_second),
            burst: other.burst.or(self.burst),
            max_request_bytes: other.max_request_bytes.or(self.max_request_bytes),
            max_response_bytes: other.max_response_bytes.or(self.max_response_bytes),
            max_data_calls: other.max_data_calls.or(self.max_data_calls),
        }
    }
}

impl Limits {
    /// These limits with `overrides` applied.
    pub fn with(&self, overrides: &LimitOverrides) -> Limits {
        let size = |v: Option<u64>, base: usize| v.map_or(base, |v| v as usize);
        Limits {
            fuel_per_request: overrides.fuel_per_request.unwrap_or(self.fuel_per_request),
            max_memory_bytes: size(overrides.max_memory_bytes, self.max_memory_bytes),
            wall_time: overrides
                .wall_time_ms
                .map_or(self.wall_time, Duration::from_millis),
            max_concurrent_calls: overrides
                .max_concurrent_calls
                .unwrap_or(self.max_concurrent_calls),
            requests_per_second: overrides
                .requests_per_second
                .unwrap_or(self.requests_per_second),
            burst: overrides.burst.unwrap_or(self.burst),
            max_request_bytes: size(overrides.max_request_bytes, self.max_request_bytes),
            max_response_bytes: size(overrides.max_response_bytes, self.max_response_bytes),
            max_data_calls: overrides.max_data_calls.unwrap_or(self.max_data_calls),
            ..self.clone()
        }
    }

    /// Every adjustable field, filled: the JSON the admin API shows as effective limits.
    pub fn as_overrides(&self) -> LimitOverrides {
        LimitOverrides {
            fuel_per_request: Some(self.fuel_per_request),
            max_memory_bytes: Some(self.max_memory_bytes as u64),
            wall_time_ms: Some(self.wall_time.as_millis() as u64),
            max_concurrent_calls: Some(self.max_concurrent_calls),
            requests_per_second: Some(self.requests_per_second),
            burst: Some(self.burst),
            max_request_bytes: Some(self.max_request_bytes as u64),
            max_response_bytes: Some(self.max_response_bytes as u64),
            max_data_calls: Some(self.max_data_calls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_overrides_win_over_the_plan_which_wins_over_defaults() {
        let plan = LimitOverrides {
            fuel_per_request: Some(10),
            burst: Some(5),
            ..Default::default()
        };
        let tenant = LimitOverrides {
            fuel_per_request: Some(7),
            ..Default::default()
        };
        let limits = Limits::default().with(&plan.merged(&tenant));
        assert_eq!(limits.fuel_per_request, 7);
        assert_eq!(limits.burst, 5);
        assert_eq!(limits.max_data_calls, Limits::default().max_data_calls);
    }

    #[test]
    fn effective_limits_round_trip_through_their_json_shape() {
        let limits = Limits {
            wall_time: Duration::from_millis(1500),
            ..Limits::default()
        };
        assert_eq!(Limits::default().with(&limits.as_overrides()), limits);
    }

    #[test]
    fn zero_unknown_and_oversized_values_are_refused_by_name() {
        let ceilings = Ceilings {
            max_memory_bytes: 64 << 20,
        };
        let zero = LimitOverrides {
            burst: Some(0),
            ..Default::default()
        };
        assert!(zero.validate(ceilings).unwrap_err().contains("burst"));
        let huge = LimitOverrides {
            max_memory_bytes: Some(1 << 40),
            ..Default::default()
        };
        assert!(huge.validate(ceilings).unwrap_err().contains("ceiling"));
        for too_much in [
            LimitOverrides {
                max_request_bytes: Some(MAX_BODY_BYTES + 1),
                ..Default::default()
            },
            LimitOverrides {
                fuel_per_request: Some(u64::MAX),
                ..Default::default()
            },
            LimitOverrides {
                max_concurrent_calls: Some(u32::MAX),
                ..Default::default()
            },
        ] {
            let refused = too_much.validate(ceilings).unwrap_err();
            assert!(refused.contains("platform's maximum"), "{refused}");
        }
        let at_most = LimitOverrides {
            max_request_bytes: Some(MAX_BODY_BYTES),
            ..Default::default()
        };
        assert!(at_most.validate(ceilings).is_ok());
        let unknown = serde_json::from_str::<LimitOverrides>(r#"{"fuel": 1}"#);
        assert!(unknown.unwrap_err().to_string().contains("fuel"));
        let stored = LimitOverrides::from_stored(serde_json::json!({"fuel": 1, "burst": 9}));
        assert_eq!(
            stored.unwrap().burst,
            Some(9),
            "stored limits skip unknown fields"
        );
    }
}
