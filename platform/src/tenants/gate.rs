//! Per-tenant admission: a token bucket for the request rate and a semaphore for module
//! calls running at once. Rejections become 429 with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use eerp_tenancy::Limits;

/// Why a request was not admitted, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Over the request rate.
    Rate {
        /// Until a request would be admitted.
        retry_after: Duration,
    },
    /// Too many module calls of the tenant running already.
    Concurrency {
        /// The limit hit.
        limit: u32,
    },
}

/// The admission state of one tenant on this replica.
pub struct Gate {
    shape: (u32, u32, u32),
    limiter: DefaultDirectRateLimiter,
    calls: Arc<Semaphore>,
}

impl Gate {
    /// A gate for `limits`.
    pub fn new(limits: &Limits) -> Self {
        let nonzero = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(nonzero(limits.requests_per_second))
            .allow_burst(nonzero(limits.burst));
        Self {
            shape: shape(limits),
            limiter: RateLimiter::direct(quota),
            calls: Arc::new(Semaphore::new(limits.max_concurrent_calls as usize)),
        }
    }

    /// Whether this gate was built for `limits` (else it must be replaced).
    pub fn fits(&self, limits: &Limits) -> bool {
        self.shape == shape(limits)
    }

    /// Admits one request, or says why not. The permit is held for the module call.
    ///
    /// # Errors
    /// [`Rejected`] with the wait before a retry can succeed.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Rejected> {
        if let Err(not_until) = self.limiter.check() {
            let retry_after = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Rejected::Rate { retry_after });
        }
        self.calls
            .clone()
            .try_acquire_owned()
            .map_err(|_| Rejected::Concurrency {
                limit: self.shape.2,
            })
    }
}

fn shape(limits: &Limits) -> (u32, u32, u32) {
    (
        limits.requests_per_second,
        limits.burst,
        limits.max_concurrent_calls,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_admitted_then_the_rate_applies_with_a_retry_time() {
        let limits = Limits {
            requests_per_second: 1,
            burst: 3,
            ..Limits::default()
        };
        let gate = Gate::new(&limits);
        let permits: Vec<_> = (0..3).map(|_| gate.admit().unwrap()).collect();
        match gate.admit() {
            Err(Rejected::Rate { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
            }
            other => panic!("expected a rate rejection, got {other:?}"),
        }
        drop(permits);
    }

    #[test]
    fn concurrent_calls_beyond_the_limit_are_refused_until_one_ends() {
        let limits = Limits {
            max_concurrent_calls: 2,
            ..Limits::default()
        };
        let gate = Gate::new(&limits);
        let first = gate.admit().unwrap();
        let _second = gate.admit().unwrap();
        assert_eq!(
            gate.admit().unwrap_err(),
            Rejected::Concurrency { limit: 2 }
        );
        drop(first);
        assert!(gate.admit().is_ok());
    }

    #[test]
    fn a_gate_fits_only_the_limits_it_was_built_for() {
        let gate = Gate::new(&Limits::default());
        assert!(gate.fits(&Limits::default()));
        assert!(!gate.fits(&Limits {
            burst: 1,
            ..Limits::default()
        }));
    }
}
