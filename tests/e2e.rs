//! The end-to-end suite in one test binary: the real app over HTTP against real
//! PostgreSQL. One binary links wasmtime and the platform once, and its tests run side by
//! side (`cargo test -p eerp-e2e --test e2e erp::` runs the ERP modules' tests alone).
//! The reliability suite has a binary of its own: its tests load the machine on purpose
//! and must not share it.
// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod api;
mod crash;
mod dashboards;
mod erp;
