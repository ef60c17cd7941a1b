//! End-to-end tests: the real app over HTTP against real PostgreSQL.

mod auth;
mod bad_input;
mod contacts;
mod migrations;
mod sandbox;
