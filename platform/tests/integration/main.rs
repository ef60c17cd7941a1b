//! The platform's integration tests in one binary (each file used to link wasmtime on its
//! own): `eerp dev` and the CLI as a new user runs them, the stable-Rust fuzz target, and
//! the generated hostile-input tests of the SQL the host builds.
// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod dev_command;
mod fuzz;
mod hostile_input;
