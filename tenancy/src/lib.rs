//! # eerp-tenancy: who is calling, for which tenant, and what they may do
//!
//! This crate owns the parsed identities of EERP: tenant and module names and the schema
//! names built from them ([`id`]), verification of bearer tokens into an [`Identity`] or [`Operator`], with key and
//! token caches ([`identity`]), permissions with wildcards ([`permission`]) and the [`Limits`] of a request
//! with plans and overrides ([`limits`]).
//!
//! It must never do HTTP or run wasm. The request path gets its [`Identity`] (and so its
//! tenant) only from [`Authenticator::verify`]; the struct itself is plain data.
//!
//! ```
//! use eerp_tenancy::id::{ModuleName, TenantSlug, schema_name};
//! let tenant = TenantSlug::parse("acme").unwrap();
//! let module = ModuleName::parse("crm").unwrap();
//! assert_eq!(schema_name(&tenant, &module), "t_acme__crm");
//! ```
#![deny(missing_docs)]

pub mod id;
pub mod identity;
pub mod limits;
pub mod permission;

pub use identity::{
    AuthError, AuthSettings, Authenticator, DevSigner, Identity, IssuerConfig, KeySource, Operator,
};
pub use limits::{LimitOverrides, Limits};
