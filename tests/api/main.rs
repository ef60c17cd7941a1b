//! End-to-end tests: the real app over HTTP against real PostgreSQL.

mod auth;
mod bad_input;
mod contacts;
mod fleet;
mod isolation;
mod limits;
mod migrations;
mod sandbox;
mod tenancy;
mod tokens;
