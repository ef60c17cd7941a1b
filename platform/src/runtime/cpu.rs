//! The time a future spends being polled: a module call's CPU.
//!
//! A module call is a future: it runs wasm (and the host's synchronous part of a data
//! call) inside `poll`, and returns `Pending` while a data call waits on PostgreSQL. Adding
//! up the time inside its polls therefore counts the guest's compute and leaves out the
//! database waits, whichever worker thread each poll runs on.
//!
//! The first half millisecond of a call is timed with the monotonic clock, the rest with
//! the thread's CPU clock (ADR 019): the monotonic clock is read in user space (vDSO),
//! `CLOCK_THREAD_CPUTIME_ID` is a system call, and two per poll were a tenth of a get by
//! id's CPU. A request-sized call never gets past the monotonic clock; a busy one is
//! measured, and pays back, by the CPU it really used.
//!
//! The same view shares the cores fairly ([`CpuShared`]): a poll is when a sandbox uses a
//! core, so a tenant's sandboxes take one of the tenant's core permits for each poll.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// CPU time the current thread has used so far.
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call, and
    // CLOCK_THREAD_CPUTIME_ID is supported on every Linux (and macOS) we build for.
    #[allow(unsafe_code)]
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

type Acquiring = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// A tenant's share of the cores, as every sandbox of the tenant sees it.
#[derive(Clone)]
pub struct CpuShare {
    /// One permit per core of the tenant's share: a sandbox holds one while it executes.
    pub permits: Arc<Semaphore>,
    /// Tenants of this replica with module calls in flight or just ended
    /// ([`crate::tenants::gate::LINGER`]), this one included.
    pub active_tenants: Arc<AtomicUsize>,
}

impl CpuShare {
    /// A share of `cores` permits, alone on the replica (benchmarks, tools).
    pub fn alone(cores: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(cores)),
            active_tenants: Arc::new(AtomicUsize::new(1)),
        }
    }
}

/// Debt below which a busy call is not made to wait: tokio's timers tick in
/// milliseconds, and shorter waits would round up into far more than the debt.
const MIN_BACKOFF: Duration = Duration::from_millis(2);

/// CPU a call may use before it starts paying back: a request-sized call (a few reads,
/// some JSON) stays well inside it and so never waits, whoever else is busy.
const GRACE: Duration = Duration::from_millis(1);

/// CPU after which a call's polls are timed with the thread's CPU clock (a system call)
/// instead of the monotonic one (vDSO): far above a request-sized call, below [`GRACE`].
const CHEAP_CLOCK_UNTIL: Duration = Duration::from_micros(500);

/// How many times its CPU beyond [`GRACE`] a busy call pays back per other active tenant.
const PAYBACK_PER_OTHER: u32 = 8;

/// How many times its CPU a busy call pays back at most: however many tenants are
/// active, a CPU-bound one keeps a seventeenth of its share.
const MAX_BACKOFF_FACTOR: u32 = 16;

/// How many times a busy tenant pays back what it uses beyond a grace, given the
/// replica's active tenants (itself included): 0 alone.
pub fn payback_factor(active_tenants: &AtomicUsize) -> u32 {
    let others = active_tenants.load(Ordering::Relaxed).saturating_sub(1);
    u32::try_from(others)
        .unwrap_or(u32::MAX)
        .saturating_mul(PAYBACK_PER_OTHER)
        .min(MAX_BACKOFF_FACTOR)
}

/// Polls a future only while holding one of its tenant's core permits, taken before each
/// poll and given back when the poll returns, and adds up the time of its polls
/// ([`CpuShared::cpu_time`]).
///
/// A sandbox returns from a poll when it waits on the database and at every fuel yield
/// interval, so a tenant with many calls in flight executes wasm on at most as many
/// threads as it has permits; its other sandboxes wait in the semaphore's FIFO queue
/// instead of the executor's run queue, where other tenants' requests would queue behind
/// every one of them.
///
/// While other tenants are active, a call that has used more than [`GRACE`] of CPU also
/// pays back what it uses beyond it: it keeps the tenant's permit idle for
/// [`PAYBACK_PER_OTHER`] times as long as it ran per other active tenant (at most
/// [`MAX_BACKOFF_FACTOR`] times), so beside one other tenant a CPU-bound one gets a ninth
/// of its share. The rest goes to the others' requests, whose cost is mostly not wasm
/// (HTTP, tokens, JSON, PostgreSQL) and which a fair split of the wasm alone would leave
/// starved: the aim is that a light tenant barely notices a heavy one. Request-sized
/// calls never pay back.
///
/// Alone on the replica, a tenant whose permits are all taken polls without one: the
/// share keeps the cores for the others, and there are none (the permits' hand-over
/// between worker threads woke the other thread each time: get by id used 210 µs of CPU
/// with it and 154 µs without; `docs/performance.md`). When another tenant becomes active, the borrowed
/// polls end within a fuel yield interval, and every later poll waits for a permit again.
pub struct CpuShared<F> {
    inner: F,
    share: CpuShare,
    waiting: Option<Acquiring>,
    /// CPU used so far: against [`GRACE`], and the call's CPU time.
    used: Duration,
    debt: Duration,
    cooling: Option<(Option<OwnedSemaphorePermit>, Pin<Box<tokio::time::Sleep>>)>,
    backed_off: Duration,
}

impl<F: Future + Unpin> CpuShared<F> {
    /// Runs `inner` within `share`.
    pub fn new(inner: F, share: CpuShare) -> Self {
        Self {
            inner,
            share,
            waiting: None,
            used: Duration::ZERO,
            debt: Duration::ZERO,
            cooling: None,
            backed_off: Duration::ZERO,
        }
    }

    /// Time inside every poll so far: the call's CPU.
    pub fn cpu_time(&self) -> Duration {
        self.used
    }

    /// Polls `inner` holding `permit` (none: borrowed while alone, or the semaphore closed).
    fn poll_holding(
        &mut self,
        permit: Option<OwnedSemaphorePermit>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        // Past [`CHEAP_CLOCK_UNTIL`] the call is a busy one: its polls are timed with the
        // thread's CPU clock, exact whatever the kernel does meanwhile, and only they pay
        // back. Before it, the monotonic clock spares a request-sized call the system
        // calls; a preemption inside one of those polls inflates the figure but can never
        // make the call pay back for it.
        let exact = self.used >= CHEAP_CLOCK_UNTIL;
        let (result, ran) = if exact {
            let started = thread_cpu_time();
            let result = Pin::new(&mut self.inner).poll(cx);
            (result, thread_cpu_time().saturating_sub(started))
        } else {
            let started = Instant::now();
            let result = Pin::new(&mut self.inner).poll(cx);
            (result, started.elapsed())
        };
        self.used += ran;
        if result.is_ready() || !exact {
            return result;
        }
        let factor = payback_factor(&self.share.active_tenants);
        self.debt += ran.min(self.used.saturating_sub(GRACE)) * factor;
        if self.debt >= MIN_BACKOFF {
            let debt = std::mem::take(&mut self.debt);
            self.backed_off += debt;
            let mut sleep = Box::pin(tokio::time::sleep(debt));
            // Registers the waker, so the call is polled again when the wait is over.
            if sleep.as_mut().poll(cx).is_pending() {
                self.cooling = Some((permit, sleep));
            }
        }
        Poll::Pending
    }
}

impl<F: Future + Unpin> Future for CpuShared<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some((_, sleep)) = this.cooling.as_mut() {
            std::task::ready!(sleep.as_mut().poll(cx));
            this.cooling = None;
        }
        if this.waiting.is_none() {
            match this.share.permits.clone().try_acquire_owned() {
                Ok(permit) => return this.poll_holding(Some(permit), cx),
                Err(_) if this.share.active_tenants.load(Ordering::Relaxed) <= 1 => {
                    return this.poll_holding(None, cx);
                }
                Err(_) => {
                    this.waiting = Some(Box::pin(this.share.permits.clone().acquire_owned()));
                }
            }
        }
        let Some(waiting) = this.waiting.as_mut() else {
            return Poll::Pending;
        };
        let acquired = std::task::ready!(waiting.as_mut().poll(cx));
        this.waiting = None;
        // Never closed; should it be, running unshared beats never running.
        this.poll_holding(acquired.ok(), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts how many of its futures are inside a poll at once.
    struct Busy {
        polls_left: u32,
        /// CPU each poll spins for.
        spin: Duration,
        inside: Arc<std::sync::atomic::AtomicU32>,
        most: Arc<std::sync::atomic::AtomicU32>,
    }

    impl Future for Busy {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.inside.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            let started = thread_cpu_time();
            while thread_cpu_time() - started < self.spin {
                std::hint::spin_loop();
            }
            self.inside.fetch_sub(1, SeqCst);
            self.polls_left -= 1;
            if self.polls_left == 0 {
                return Poll::Ready(());
            }
            // Like a fuel yield: runnable again at once.
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// The most of 8 busy calls of one tenant with a share of one core that were inside a
    /// poll at once, with `active` tenants on the replica; each call's CPU time must be
    /// that of its polls.
    async fn most_at_once(active: usize) -> (u32, CpuShare) {
        let inside = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let most = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let share = CpuShare::alone(1);
        share
            .active_tenants
            .store(active, std::sync::atomic::Ordering::SeqCst);
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let busy = Busy {
                    polls_left: 5,
                    spin: Duration::from_millis(2),
                    inside: inside.clone(),
                    most: most.clone(),
                };
                let mut call = CpuShared::new(busy, share.clone());
                tokio::spawn(async move {
                    (&mut call).await;
                    call.cpu_time()
                })
            })
            .collect();
        for call in calls {
            let cpu = call.await.unwrap();
            assert!(
                cpu >= Duration::from_millis(10),
                "five polls of 2 ms: {cpu:?}"
            );
        }
        (most.load(std::sync::atomic::Ordering::SeqCst), share)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn beside_another_tenant_a_tenant_never_polls_more_sandboxes_at_once_than_its_share() {
        let (most, share) = most_at_once(2).await;
        assert_eq!(most, 1);
        assert_eq!(
            share.permits.available_permits(),
            1,
            "every permit came back"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn alone_a_tenant_uses_more_cores_than_its_share() {
        let (most, share) = most_at_once(1).await;
        assert!(most > 1, "borrowed cores nobody else wanted: {most}");
        assert_eq!(share.permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_busy_call_backs_off_while_other_tenants_are_active_and_not_when_alone() {
        let backed_off = |active: usize, spin: Duration| async move {
            let share = CpuShare::alone(1);
            share
                .active_tenants
                .store(active, std::sync::atomic::Ordering::SeqCst);
            let busy = Busy {
                polls_left: 10,
                spin,
                inside: Arc::default(),
                most: Arc::default(),
            };
            let mut call = CpuShared::new(busy, share);
            (&mut call).await;
            call.backed_off
        };
        let busy = Duration::from_millis(2);
        assert_eq!(
            backed_off(1, busy).await,
            Duration::ZERO,
            "alone, nothing to pay back"
        );
        // Nine polls of 2 ms of CPU returned Pending; the first was timed by the cheap
        // clock and pays nothing, the other eight (16 ms, all beyond the grace) are paid
        // back eight times per other tenant, and sixteen times at most.
        assert!(backed_off(2, busy).await >= Duration::from_millis(128));
        assert!(backed_off(9, busy).await >= Duration::from_millis(256));
        assert_eq!(
            backed_off(9, Duration::from_micros(50)).await,
            Duration::ZERO,
            "a request-sized call never pays back"
        );
    }
}
