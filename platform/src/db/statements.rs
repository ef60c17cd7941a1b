//! Prepared statements cached on one connection.
//!
//! Keyed by the statement's text, which names the tenant's schema, so a statement can
//! never run against another tenant's tables. Bounded: past its capacity the statement
//! used least recently is closed. A text is prepared only the second time the connection
//! sees it: with many tenants round-robin over few connections most texts are seen once,
//! and preparing those would add a round trip (and a close) to every request instead of
//! saving one parse and plan.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};

/// What to do with a statement text.
#[derive(Debug, PartialEq)]
pub enum Lookup<S> {
    /// Prepared on this connection before: run this.
    Prepared(S),
    /// Seen once before: prepare it, run it and [`Statements::insert`] it.
    Prepare,
    /// New to this connection (or the cache is off): run it unprepared.
    RunUnprepared,
}

/// The statements of one connection.
pub struct Statements<S = tokio_postgres::Statement> {
    capacity: usize,
    /// Text -> statement and when it was last used.
    prepared: HashMap<String, (S, u64)>,
    /// Hashes of texts run once, unprepared, oldest first (a collision only makes a text
    /// be prepared on its first use).
    seen: VecDeque<u64>,
    hasher: RandomState,
    clock: u64,
}

impl<S: Clone> Statements<S> {
    /// A cache of at most `capacity` statements (0 prepares nothing).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            prepared: HashMap::new(),
            seen: VecDeque::new(),
            hasher: RandomState::new(),
            clock: 0,
        }
    }

    /// What to do with `sql`; remembers that it was seen.
    pub fn lookup(&mut self, sql: &str) -> Lookup<S> {
        if self.capacity == 0 {
            return Lookup::RunUnprepared;
        }
        self.clock += 1;
        if let Some((statement, used)) = self.prepared.get_mut(sql) {
            *used = self.clock;
            return Lookup::Prepared(statement.clone());
        }
        let hash = self.hasher.hash_one(sql);
        if let Some(at) = self.seen.iter().position(|seen| *seen == hash) {
            self.seen.remove(at);
            return Lookup::Prepare;
        }
        // Twice the capacity: a text must come back before that many others did.
        if self.seen.len() >= 2 * self.capacity {
            self.seen.pop_front();
        }
        self.seen.push_back(hash);
        Lookup::RunUnprepared
    }

    /// Keeps `statement`, prepared for `sql`, closing the least recently used one if the
    /// cache is full.
    pub fn insert(&mut self, sql: &str, statement: S) {
        if self.capacity == 0 {
            return;
        }
        if self.prepared.len() >= self.capacity {
            let oldest = self
                .prepared
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(text, _)| text.clone());
            if let Some(oldest) = oldest {
                // Dropping a tokio-postgres statement closes it on the server.
                self.prepared.remove(&oldest);
            }
        }
        self.prepared
            .insert(sql.to_string(), (statement, self.clock));
    }

    /// Drops the statement of `sql`, which the server no longer knows.
    pub fn forget(&mut self, sql: &str) {
        self.prepared.remove(sql);
    }

    /// Statements prepared now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.prepared.len()
    }

    /// Whether no statement is prepared.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.prepared.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `sql` as a connection would, "preparing" it as its own number.
    fn run(cache: &mut Statements<usize>, sql: &str, id: usize) -> Lookup<usize> {
        let lookup = cache.lookup(sql);
        if lookup == Lookup::Prepare {
            cache.insert(sql, id);
        }
        lookup
    }

    #[test]
    fn a_text_is_prepared_the_second_time_and_reused_after() {
        let mut cache = Statements::new(4);
        assert_eq!(run(&mut cache, "SELECT 1", 1), Lookup::RunUnprepared);
        assert_eq!(run(&mut cache, "SELECT 1", 1), Lookup::Prepare);
        assert_eq!(run(&mut cache, "SELECT 1", 1), Lookup::Prepared(1));
        assert_eq!(run(&mut cache, "SELECT 2", 2), Lookup::RunUnprepared);
    }

    #[test]
    fn the_least_recently_used_statement_goes_when_full() {
        let mut cache = Statements::new(2);
        for (id, sql) in ["a", "b", "a", "b"].iter().enumerate() {
            run(&mut cache, sql, id);
        }
        assert_eq!(cache.len(), 2);
        assert!(matches!(cache.lookup("a"), Lookup::Prepared(_)));
        run(&mut cache, "c", 9);
        run(&mut cache, "c", 9);
        assert_eq!(cache.len(), 2, "bounded");
        assert!(
            matches!(cache.lookup("a"), Lookup::Prepared(_)),
            "used last"
        );
        assert_eq!(
            cache.lookup("b"),
            Lookup::RunUnprepared,
            "evicted, seen anew"
        );
        assert_eq!(cache.lookup("c"), Lookup::Prepared(9));
        cache.forget("c");
        assert_eq!(cache.lookup("c"), Lookup::RunUnprepared, "forgotten");
    }

    #[test]
    fn texts_that_do_not_come_back_soon_are_never_prepared() {
        // More tenants than the connection remembers, round-robin: no prepare, no close.
        let mut cache = Statements::new(8);
        for round in 0..3 {
            for tenant in 0..100 {
                let lookup = run(&mut cache, &format!("SELECT * FROM t{tenant}"), round);
                assert_eq!(lookup, Lookup::RunUnprepared);
            }
        }
        assert!(cache.is_empty());
    }

    #[test]
    fn capacity_zero_prepares_nothing() {
        let mut cache = Statements::new(0);
        for _ in 0..3 {
            assert_eq!(run(&mut cache, "SELECT 1", 1), Lookup::RunUnprepared);
        }
        assert!(cache.is_empty());
    }
}
