//! Per-tenant admission and shares: a token bucket for the request rate, a semaphore for
//! module calls in flight, and the tenant's share of this replica's cores, database
//! connections and sandbox slots. Rejections become 429 with `Retry-After`.
//!
//! Shares are what keeps one busy tenant from starving the others: whatever it sends, it
//! never executes wasm on more than its share of the cores, never holds more than its
//! share of the pool's connections, and never has more calls in flight than its share of
//! the sandbox slots.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use eerp_tenancy::Limits;

use crate::db::ConnectionShare;
use crate::runtime::cpu::CpuShare;

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

impl Rejected {
    /// The `reason` label of the rate-limited counter: `rate` or `concurrency`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::Rate { .. } => "rate",
            Rejected::Concurrency { .. } => "concurrency",
        }
    }
}

/// How much of this replica's shared resources one tenant may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Sandboxes executing wasm at the same instant (see [`crate::runtime::cpu::CpuShared`]).
    pub cores: u32,
    /// Pooled database connections.
    pub connections: u32,
    /// Module calls in flight, each holding a sandbox slot.
    pub sandboxes: u32,
}

impl Shares {
    /// `fraction` (0 < f <= 1) of `cores`, `connections` and `sandboxes`, at least one each.
    pub fn of(fraction: f64, cores: usize, connections: usize, sandboxes: u32) -> Self {
        let part = |total: f64| ((total * fraction).floor() as u32).max(1);
        Self {
            cores: part(cores as f64),
            connections: part(connections as f64),
            sandboxes: part(f64::from(sandboxes)),
        }
    }
}

/// How long a tenant still counts as active after its last call ended. A tenant sending
/// short requests back to back has no call in flight for much of the time (its requests
/// are in HTTP, in the client, on the wire); a busy neighbour must not take each of those
/// gaps as the tenant having gone and run unchecked through it.
pub const LINGER: Duration = Duration::from_millis(250);

/// Whether a tenant counts in the replica's active tenants, and why.
#[derive(Debug, Default)]
struct Presence {
    in_flight: usize,
    /// Counted in `active_tenants`.
    counted: bool,
    last_end: Option<Instant>,
    /// A task is waiting to stop counting the tenant once it has been idle for [`LINGER`].
    lingering: bool,
}

/// A tenant's presence on the replica, shared by its gate and its admitted calls.
#[derive(Debug)]
struct Activity {
    presence: Mutex<Presence>,
    active_tenants: Arc<AtomicUsize>,
}

impl Activity {
    fn presence(&self) -> MutexGuard<'_, Presence> {
        // The state stays consistent whatever panicked while holding it: every change
        // under the lock is a plain assignment.
        self.presence.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn call_started(&self) {
        let mut presence = self.presence();
        presence.in_flight += 1;
        if !presence.counted {
            presence.counted = true;
            self.active_tenants.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn call_ended(self: &Arc<Self>) {
        let mut presence = self.presence();
        presence.in_flight = presence.in_flight.saturating_sub(1);
        if presence.in_flight > 0 {
            return;
        }
        presence.last_end = Some(Instant::now());
        if presence.lingering {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                presence.lingering = true;
                let ended = LingerEnded(self.clone());
                drop(runtime.spawn(self.clone().linger(ended)));
            }
            // No timers outside a runtime (tools, unit tests): gone at once.
            Err(_) => self.stop_counting(&mut presence),
        }
    }

    fn stop_counting(&self, presence: &mut Presence) {
        if std::mem::take(&mut presence.counted) {
            self.active_tenants.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Stops counting the tenant once no call of it has run for [`LINGER`]; one such
    /// task per tenant at a time, so a tenant pays at most one per [`LINGER`].
    ///
    /// `_ended` is part of the task from its spawn: should the task be dropped before it
    /// ends, even unpolled (its runtime stopping), the tenant does not stay counted.
    async fn linger(self: Arc<Self>, _ended: LingerEnded) {
        let mut wait = LINGER;
        loop {
            tokio::time::sleep(wait).await;
            let mut presence = self.presence();
            let idle = presence.last_end.map(|at| at.elapsed()).unwrap_or(LINGER);
            if presence.in_flight > 0 || idle >= LINGER {
                if presence.in_flight == 0 {
                    self.stop_counting(&mut presence);
                }
                presence.lingering = false;
                return;
            }
            wait = LINGER - idle;
        }
    }
}

/// Ends a tenant's linger however its task ends.
struct LingerEnded(Arc<Activity>);

impl Drop for LingerEnded {
    fn drop(&mut self) {
        let mut presence = self.0.presence();
        if std::mem::take(&mut presence.lingering) && presence.in_flight == 0 {
            self.0.stop_counting(&mut presence);
        }
    }
}

/// A module call admitted for its tenant. While any of a tenant's calls is admitted, and
/// for [`LINGER`] after the last one, the tenant counts as active on the replica (which
/// busy calls of others back off for).
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    activity: Arc<Activity>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.activity.call_ended();
    }
}

/// The admission state of one tenant on this replica.
pub struct Gate {
    shape: (u32, u32, u32),
    limiter: DefaultDirectRateLimiter,
    calls: Arc<Semaphore>,
    call_limit: u32,
    sandbox_share: u32,
    activity: Arc<Activity>,
    cpu: CpuShare,
    connections: ConnectionShare,
}

impl Gate {
    /// A gate for `limits`, within `shares`; `active_tenants` counts the replica's
    /// tenants with calls in flight or ended within [`LINGER`].
    pub fn new(limits: &Limits, shares: Shares, active_tenants: Arc<AtomicUsize>) -> Self {
        let nonzero = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(nonzero(limits.requests_per_second))
            .allow_burst(nonzero(limits.burst));
        let call_limit = limits.max_concurrent_calls.min(shares.sandboxes);
        Self {
            shape: shape(limits),
            limiter: RateLimiter::direct(quota),
            calls: Arc::new(Semaphore::new(call_limit as usize)),
            call_limit,
            sandbox_share: shares.sandboxes,
            activity: Arc::new(Activity {
                presence: Mutex::default(),
                active_tenants: active_tenants.clone(),
            }),
            cpu: CpuShare {
                permits: Arc::new(Semaphore::new(shares.cores as usize)),
                active_tenants: active_tenants.clone(),
            },
            connections: ConnectionShare {
                permits: Arc::new(Semaphore::new(shares.connections as usize)),
                size: shares.connections,
                active_tenants,
            },
        }
    }

    /// A gate for the tenant's new `limits` that keeps its shares: the permits its
    /// requests in flight hold still count, so a change of limits never lets the tenant
    /// hold two shares at once.
    pub fn rebuilt(&self, limits: &Limits) -> Self {
        let shares = Shares {
            cores: 0,
            connections: 0,
            sandboxes: self.sandbox_share,
        };
        Self {
            activity: self.activity.clone(),
            cpu: self.cpu.clone(),
            connections: self.connections.clone(),
            ..Self::new(limits, shares, self.cpu.active_tenants.clone())
        }
    }

    /// The tenant's share of the cores.
    pub fn cpu(&self) -> CpuShare {
        self.cpu.clone()
    }

    /// The tenant's share of the pool's connections.
    pub fn connection_share(&self) -> ConnectionShare {
        self.connections.clone()
    }

    /// Whether this gate was built for `limits` (else it must be replaced).
    pub fn fits(&self, limits: &Limits) -> bool {
        self.shape == shape(limits)
    }

    /// Admits one request, or says why not. The permit is held for the module call.
    ///
    /// # Errors
    /// [`Rejected`] with the wait before a retry can succeed.
    pub fn admit(&self) -> Result<Admitted, Rejected> {
        if let Err(not_until) = self.limiter.check() {
            let retry_after = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Rejected::Rate { retry_after });
        }
        let permit = self
            .calls
            .clone()
            .try_acquire_owned()
            .map_err(|_| Rejected::Concurrency {
                limit: self.call_limit,
            })?;
        self.activity.call_started();
        Ok(Admitted {
            _permit: permit,
            activity: self.activity.clone(),
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

    const WIDE: Shares = Shares {
        cores: 8,
        connections: 64,
        sandboxes: 1024,
    };

    #[test]
    fn shares_are_a_fraction_of_each_resource_and_never_zero() {
        assert_eq!(
            Shares::of(0.5, 2, 16, 128),
            Shares {
                cores: 1,
                connections: 8,
                sandboxes: 64
            }
        );
        assert_eq!(
            Shares::of(0.25, 1, 1, 1),
            Shares {
                cores: 1,
                connections: 1,
                sandboxes: 1
            }
        );
    }

    #[test]
    fn calls_in_flight_are_capped_by_the_sandbox_share_too() {
        let gate = Gate::new(
            &Limits::default(),
            Shares {
                sandboxes: 1,
                ..WIDE
            },
            Arc::default(),
        );
        let _only = gate.admit().unwrap();
        assert_eq!(
            gate.admit().unwrap_err(),
            Rejected::Concurrency { limit: 1 }
        );
    }

    #[test]
    fn the_burst_is_admitted_then_the_rate_applies_with_a_retry_time() {
        let limits = Limits {
            requests_per_second: 1,
            burst: 3,
            ..Limits::default()
        };
        let gate = Gate::new(&limits, WIDE, Arc::default());
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
        let gate = Gate::new(&limits, WIDE, Arc::default());
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
    fn a_tenant_is_active_while_any_of_its_calls_is() {
        let active = Arc::new(AtomicUsize::new(0));
        let first = Gate::new(&Limits::default(), WIDE, active.clone());
        let second = Gate::new(&Limits::default(), WIDE, active.clone());
        let a = first.admit().unwrap();
        let b = first.admit().unwrap();
        let c = second.admit().unwrap();
        assert_eq!(active.load(Ordering::SeqCst), 2);
        drop(a);
        assert_eq!(
            active.load(Ordering::SeqCst),
            2,
            "one of its calls is still in flight"
        );
        drop((b, c));
        assert_eq!(active.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_tenant_stays_active_for_a_moment_after_its_last_call() {
        let active = Arc::new(AtomicUsize::new(0));
        let gate = Gate::new(&Limits::default(), WIDE, active.clone());
        drop(gate.admit().unwrap());
        tokio::time::sleep(LINGER / 5).await;
        // A call in the gap: still counted once, and from its end on.
        drop(gate.admit().unwrap());
        let last_end = Instant::now();
        assert_eq!(
            active.load(Ordering::SeqCst),
            1,
            "still active between calls"
        );
        while active.load(Ordering::SeqCst) > 0 {
            assert!(
                last_end.elapsed() < Duration::from_secs(5),
                "never went idle"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // `last_end` was taken just after the gate's own: allow for the difference.
        assert!(
            last_end.elapsed() + Duration::from_millis(5) >= LINGER,
            "counted until idle for LINGER after the last call"
        );
        let _again = gate.admit().unwrap();
        assert_eq!(active.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_tenant_is_not_left_active_when_its_linger_task_is_dropped() {
        let active = Arc::new(AtomicUsize::new(0));
        let gate = Gate::new(&Limits::default(), WIDE, active.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async { drop(gate.admit().unwrap()) });
        assert_eq!(active.load(Ordering::SeqCst), 1, "lingering");
        // The linger task never ran: dropped with its runtime.
        drop(runtime);
        assert_eq!(active.load(Ordering::SeqCst), 0);
        drop(gate.admit().unwrap());
        assert_eq!(
            active.load(Ordering::SeqCst),
            0,
            "and counted normally afterwards"
        );
    }

    #[test]
    fn new_limits_keep_the_shares_already_held() {
        let active = Arc::new(AtomicUsize::new(0));
        let gate = Gate::new(
            &Limits::default(),
            Shares {
                connections: 1,
                ..WIDE
            },
            active.clone(),
        );
        let held = gate.connection_share().permits.try_acquire_owned().unwrap();
        let _call = gate.admit().unwrap();
        let rebuilt = gate.rebuilt(&Limits {
            burst: 1,
            ..Limits::default()
        });
        assert!(rebuilt.fits(&Limits {
            burst: 1,
            ..Limits::default()
        }));
        assert!(
            rebuilt
                .connection_share()
                .permits
                .try_acquire_owned()
                .is_err(),
            "the connection held under the old limits still counts"
        );
        let _again = rebuilt.admit().unwrap();
        assert_eq!(active.load(Ordering::SeqCst), 1, "one tenant, counted once");
        drop(held);
        assert!(
            rebuilt
                .connection_share()
                .permits
                .try_acquire_owned()
                .is_ok()
        );
    }

    #[test]
    fn a_gate_fits_only_the_limits_it_was_built_for() {
        let gate = Gate::new(&Limits::default(), WIDE, Arc::default());
        assert!(gate.fits(&Limits::default()));
        assert!(!gate.fits(&Limits {
            burst: 1,
            ..Limits::default()
        }));
    }
}
