//! The capped `tenant` label: up to N tenants get their own series, everyone else is
//! counted as `other`.
//!
//! Promotion is sticky and happens at scrape time: the most active unpromoted tenants since
//! the last scrape take the free slots and keep them until the process restarts. A promoted
//! tenant's series counts from its promotion on, and `other` keeps what came before, so every
//! series only ever grows (no counter resets for `rate()` to misread). With 10,000 tenants
//! the family has at most (N + 1) × outcomes series.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The label for everything outside the top N.
pub const OTHER: &str = "other";

/// Unpromoted tenants tracked between scrapes at most; beyond it new ones are not tracked
/// (they still count in `other`), which bounds the memory a flood of tenants can take.
const MAX_PENDING: usize = 100_000;

#[derive(Default)]
struct State {
    promoted: HashSet<String>,
    pending: HashMap<String, u64>,
}

/// Which tenants have their own label.
pub struct TopTenants {
    slots: usize,
    state: Mutex<State>,
}

impl TopTenants {
    /// At most `slots` tenants get their own label.
    pub fn new(slots: usize) -> Self {
        Self {
            slots,
            state: Mutex::new(State::default()),
        }
    }

    /// The label to count one invocation of `tenant` under.
    pub fn label(&self, tenant: &str) -> String {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.promoted.contains(tenant) {
            return tenant.to_string();
        }
        if state.promoted.len() < self.slots {
            let full = state.pending.len() >= MAX_PENDING;
            match state.pending.get_mut(tenant) {
                Some(count) => *count += 1,
                None if !full => {
                    state.pending.insert(tenant.to_string(), 1);
                }
                None => {}
            }
        }
        OTHER.to_string()
    }

    /// Gives free slots to the most active pending tenants, forgets the rest, and returns
    /// the tenants promoted now.
    pub fn promote(&self) -> Vec<String> {
        let lock = || match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut pending: Vec<(String, u64)> = {
            let mut state = lock();
            if state.promoted.len() >= self.slots {
                return Vec::new();
            }
            std::mem::take(&mut state.pending).into_iter().collect()
        };
        // Sorted outside the lock every request takes. Most active first; ties by name so
        // the choice does not depend on hash order.
        pending.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut state = lock();
        let free = self.slots.saturating_sub(state.promoted.len());
        let promoted: Vec<String> = pending.into_iter().take(free).map(|(t, _)| t).collect();
        state.promoted.extend(promoted.iter().cloned());
        promoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_active_get_the_slots_and_keep_them() {
        let top = TopTenants::new(2);
        for _ in 0..5 {
            assert_eq!(top.label("busy"), OTHER, "not promoted before a scrape");
        }
        for _ in 0..3 {
            top.label("medium");
        }
        top.label("quiet");
        assert_eq!(top.promote(), ["busy", "medium"]);
        assert_eq!(top.label("busy"), "busy");
        assert_eq!(top.label("medium"), "medium");
        assert_eq!(top.label("quiet"), OTHER);
        for _ in 0..100 {
            top.label("newcomer");
        }
        top.promote();
        assert_eq!(top.label("newcomer"), OTHER, "no slot left");
        assert_eq!(top.label("busy"), "busy", "slots are kept");
    }
}
