//! Thread CPU time spent while a future is being polled.
//!
//! A module call is a future: it runs wasm (and the host's synchronous part of a data
//! call) inside `poll`, and returns `Pending` while a data call waits on PostgreSQL. Adding
//! up the calling thread's CPU clock across polls therefore counts the guest's compute and
//! leaves out the database waits, whichever worker thread each poll runs on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

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

/// Wraps a future and adds the thread CPU time of each of its polls to `spent`.
pub struct CpuTimed<'a, F> {
    inner: Pin<&'a mut F>,
    spent: &'a mut Duration,
}

impl<'a, F: Future> CpuTimed<'a, F> {
    /// Measures `inner`, adding to `spent`.
    pub fn new(inner: Pin<&'a mut F>, spent: &'a mut Duration) -> Self {
        Self { inner, spent }
    }
}

impl<F: Future> Future for CpuTimed<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = thread_cpu_time();
        let result = self.inner.as_mut().poll(cx);
        let used = thread_cpu_time().saturating_sub(started);
        *self.spent += used;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn busy_polls_count_and_sleeping_does_not() {
        let mut spent = Duration::ZERO;
        // Burn 30 ms of this thread's CPU (by its own clock, so a busy machine does not
        // change the amount), then wait 300 ms without using any.
        let work = async {
            let started = thread_cpu_time();
            let mut x = 0u64;
            while thread_cpu_time() - started < Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        tokio::pin!(work);
        CpuTimed::new(work, &mut spent).await;
        assert!(spent >= Duration::from_millis(30), "{spent:?}");
        assert!(
            spent < Duration::from_millis(300),
            "the wait is not CPU: {spent:?}"
        );
    }
}
