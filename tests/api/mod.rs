//! End-to-end tests: the real app over HTTP against real PostgreSQL.

mod auth;
mod bad_input;
mod contacts;
mod cross_module;
mod fleet;
mod foreign_modules;
mod idempotency;
mod isolation;
mod jwks;
mod limits;
mod metrics;
mod migrations;
mod modules;
mod sandbox;
mod tenancy;
mod tokens;
