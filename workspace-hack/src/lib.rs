//! # eerp-workspace-hack: one set of features for the whole workspace
//!
//! Empty on purpose: its `Cargo.toml` is the point. It turns on, for `eerp-platform`, the
//! features of shared third-party crates that the tests' dependencies would turn on, so
//! `cargo run -- dev` and `cargo test` compile each crate once (`.ci/features.py` checks
//! the list). It must never hold code, and no crate should `use` it.
