//! # eerp-sdk: write an EERP module as plain Rust functions
//!
//! The SDK owns the guest side of ABI v1 (`docs/abi.md`): the exports the host calls, the
//! allocation pair, decoding the request envelope, routing to a handler by id, encoding the
//! response, and the client of the host's data API. It is the only crate of a module that
//! touches raw pointers; a module author writes none.
//!
//! Principal types:
//! - [`Module`]: name, version, migrations, routes, read grants, the events it emits and
//!   the events it handles, built by a function of the module. Each route can describe
//!   its body, answers and query (`takes`, `returns`, `lists`, ...) with types deriving
//!   `schemars::JsonSchema`, for the tenant's OpenAPI document.
//! - [`Ctx`]: what a handler gets besides the request: the caller, the data API and
//!   [`Ctx::emit`].
//! - [`Table`] and [`Granted`]: typed rows of the module's own tables (read and write)
//!   and of another module's (read, through a grant).
//! - [`Request`], [`Reply`] and [`Error`]: a handler's input, success and failure;
//!   [`ListSpec`] turns a list route's query string into a query, [`Request::patch`] a
//!   `PATCH` body into the record type the create route takes, and [`Checks`] reports
//!   every invalid field at once.
//!
//! ```
//! use eerp_sdk::{Ctx, Error, Module, Reply, Request};
//!
//! fn hello(_ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
//!     let name = req.query("name").unwrap_or("world");
//!     Ok(Reply::ok(serde_json::json!({ "hello": name })))
//! }
//!
//! pub fn module() -> Module {
//!     Module::new("greeter", "0.1.0").get("/hello", "greeter.hello.read", hello)
//! }
//! // In the module's lib.rs: eerp_sdk::export!(module);
//! # assert_eq!(module().manifest().routes.len(), 1);
//! ```
//!
//! Decisions, with reasons:
//! - Handlers are plain `fn`s taking `&mut Ctx`, so business logic compiles and
//!   unit-tests natively; only [`Ctx`]'s data calls need the host (natively they return
//!   [`DataErrorKind::Unavailable`]); emitted events are recorded for tests.
//! - One record type serves create and patch: a patch is merged onto the stored row and
//!   validated like a new record, so no module writes a second all-`Option` type.
//! - 400 means the request could not be read (not JSON, unknown field, wrong type, a
//!   value the column cannot hold, a bad cursor); 422 means it was read and its values
//!   break a rule of the module ([`Checks`]).
//! - Route descriptions are function pointers until the host reads the manifest: the
//!   module definition is built on every request, its JSON Schemas only at load.
//! - Every request runs in a fresh instance, so the SDK never frees what it hands back:
//!   the host drops the whole instance after reading the response.
#![deny(missing_docs)]

mod data;
pub mod decimal;
mod describe;
mod exports;
mod host;
mod list;
mod module;
mod reply;
mod request;
pub mod resource;
mod table;
mod validate;

pub use data::Ctx;
pub use decimal::Decimal;
pub use describe::QueryParam;
pub use eerp_abi as abi;
pub use eerp_abi::data::{
    Aggregate, AggregateFn, AggregateQuery, AggregateResult, DataError, DataErrorKind, Filter,
    FilterOp, ListPage, ListQuery, LockMode, Order,
};
pub use eerp_abi::envelope::{FieldError, Principal};
pub use eerp_abi::migration::{
    AddColumn, Check, CheckOp, Column, ColumnDefault, CreateIndex, CreateTable, DefaultFunction,
    IndexType, Migration, Operation,
};
pub use list::ListSpec;
pub use module::{Event, EventHandler, Handler, Module};
pub use reply::{Error, Reply};
pub use request::{Patch, Request};
pub use resource::Resource;
pub use table::{Granted, Page, Row, Table};
pub use validate::{Checks, is_date};

/// Write a line to the host's log, tagged with the request id, tenant and module.
pub mod log {
    use eerp_abi::log_level;

    /// Log at error level.
    pub fn error(message: &str) {
        crate::host::log(log_level::ERROR, message);
    }
    /// Log at warn level.
    pub fn warn(message: &str) {
        crate::host::log(log_level::WARN, message);
    }
    /// Log at info level.
    pub fn info(message: &str) {
        crate::host::log(log_level::INFO, message);
    }
    /// Log at debug level.
    pub fn debug(message: &str) {
        crate::host::log(log_level::DEBUG, message);
    }
}

/// Not public API: what [`export!`] expands to calls these.
#[doc(hidden)]
pub mod __private {
    pub use crate::exports::{alloc, dealloc, handle, manifest, migrate_len, migrate_ptr};
}

/// Exports ABI v1 from a module crate. Give it a function returning the [`Module`].
///
/// ```text
/// eerp_sdk::export!(crate::module);
/// ```
#[macro_export]
macro_rules! export {
    ($module:path) => {
        #[allow(
            unsafe_code,
            reason = "exported symbol names are the ABI; the SDK owns them"
        )]
        #[unsafe(no_mangle)]
        pub extern "C" fn eerp_alloc(len: i32) -> i32 {
            $crate::__private::alloc(len)
        }

        #[allow(
            unsafe_code,
            reason = "exported symbol names are the ABI; the SDK owns them"
        )]
        #[unsafe(no_mangle)]
        pub extern "C" fn eerp_dealloc(ptr: i32, len: i32) {
            $crate::__private::dealloc(ptr, len)
        }

        #[allow(
            unsafe_code,
            reason = "exported symbol names are the ABI; the SDK owns them"
        )]
        #[unsafe(no_mangle)]
        pub extern "C" fn eerp_manifest() -> i64 {
            $crate::__private::manifest(&$module())
        }

        #[allow(
            unsafe_code,
            reason = "exported symbol names are the ABI; the SDK owns them"
        )]
        #[unsafe(no_mangle)]
        pub extern "C" fn migrate() -> i32 {
            $crate::__private::migrate_ptr(&$module())
        }

        #[allow(
            unsafe_code,
            reason = "exported symbol names are the ABI; the SDK owns them"
        )]
        #[unsafe(no_mangle)]
        pub extern "C" fn migrate_len() -> i32 {
            $crate::__private::migrate_len(&$module())
        }

        #[allow(
            unsafe_code,
            reason = "exported symbol names are the ABI; the SDK owns them"
        )]
        #[unsafe(no_mangle)]
        pub extern "C" fn eerp_handle(handler_id: i32, req_ptr: i32, req_len: i32) -> i64 {
            $crate::__private::handle(&$module(), handler_id, req_ptr, req_len)
        }
    };
}
