//! A module written by hand in WAT and assembled by the tests, for the module store:
//! any name, version, ABI version, capabilities, routes and migrations, so a test can
//! upload v1 and v2 of one module at runtime, or a module broken in exactly one way.
//!
//! Handler ids (route order): 0 answers `{"version": V}`; 1 lists table `items` through
//! the data API (so it waits while a test locks that table), then answers like 0; 2
//! inserts a row into `items` and answers 201; any other id answers like 0.

use serde_json::{Value, json};

/// A probe module to assemble.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Module name.
    pub name: String,
    /// Semver text.
    pub version: String,
    /// ABI version in the manifest.
    pub abi_version: u32,
    /// Capabilities the manifest requests (it always imports the data API).
    pub capabilities: Vec<&'static str>,
    /// Routes: method, path, permission suffix (after `<name>.`).
    pub routes: Vec<(&'static str, &'static str, &'static str)>,
    /// The migration JSON steps.
    pub migrations: Vec<Value>,
}

impl Probe {
    /// `name` at `version` with table `items (label)` and the three routes.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            abi_version: 1,
            capabilities: vec!["log", "data"],
            routes: vec![
                ("GET", "/version", "version.read"),
                ("GET", "/slow", "items.read"),
                ("POST", "/items", "items.create"),
            ],
            migrations: vec![json!({"entity": "items", "version": 1, "operations": [
                {"type": "add_column", "table": "items", "column": "label", "sql_type": "TEXT"}
            ]})],
        }
    }

    /// Adds a migration step.
    pub fn migration(mut self, step: Value) -> Self {
        self.migrations.push(step);
        self
    }

    /// The step that adds table `notes`, as version `version`.
    pub fn notes_step(version: u32, column: &str) -> Value {
        json!({"entity": "notes", "version": version, "operations": [
            {"type": "add_column", "table": "notes", "column": column, "sql_type": "TEXT"}
        ]})
    }

    /// The manifest JSON.
    pub fn manifest(&self) -> Value {
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|(method, path, permission)| {
                json!({"method": method, "path": path,
                       "permission": format!("{}.{permission}", self.name)})
            })
            .collect();
        json!({"name": self.name, "version": self.version, "abi_version": self.abi_version,
               "routes": routes, "capabilities": self.capabilities})
    }

    /// The assembled module.
    pub fn wasm(&self) -> Vec<u8> {
        let manifest = self.manifest().to_string();
        let migrations = Value::Array(self.migrations.clone()).to_string();
        let version = json!({"status": 200, "body": {"version": self.version}}).to_string();
        let created = json!({"status": 201, "body": {"version": self.version}}).to_string();
        let list = r#"{"op":"list","table":"items"}"#;
        let insert = r#"{"op":"insert","table":"items","values":{"label":"x"}}"#;
        let segments = [
            (1024, manifest.as_str()),
            (16384, migrations.as_str()),
            (32768, version.as_str()),
            (33792, created.as_str()),
            (34816, list),
            (35840, insert),
        ];
        let data: String = segments
            .iter()
            .map(|(at, text)| format!("(data (i32.const {at}) \"{}\")\n", escape(text)))
            .collect();
        let len = |i: usize| segments[i].1.len();
        let text = format!(
            r#"(module
  (import "eerp" "data_call" (func $data_call (param i32 i32) (result i32)))
  (import "eerp" "data_take" (func $data_take (param i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  {data}
  (func $alloc (export "eerp_alloc") (param $len i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.lt_s
              (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (local.get $have)) (i32.const 16)) (i32.const 1)))
              (i32.const 0))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func (export "eerp_dealloc") (param i32 i32))
  (func $pack (param $p i32) (param $l i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $l))))
  (func (export "eerp_manifest") (result i64) (call $pack (i32.const 1024) (i32.const {manifest_len})))
  (func (export "migrate") (result i32) (i32.const 16384))
  (func (export "migrate_len") (result i32) (i32.const {migrations_len}))
  (func $data (param $p i32) (param $l i32)
    (call $data_take (call $alloc (call $data_call (local.get $p) (local.get $l)))))
  (func (export "eerp_handle") (param $id i32) (param $req i32) (param $len i32) (result i64)
    (if (i32.eq (local.get $id) (i32.const 1))
      (then (call $data (i32.const 34816) (i32.const {list_len}))))
    (if (i32.eq (local.get $id) (i32.const 2))
      (then
        (call $data (i32.const 35840) (i32.const {insert_len}))
        (return (call $pack (i32.const 33792) (i32.const {created_len})))))
    (call $pack (i32.const 32768) (i32.const {version_len})))
)"#,
            manifest_len = len(0),
            migrations_len = len(1),
            version_len = len(2),
            created_len = len(3),
            list_len = len(4),
            insert_len = len(5),
        );
        wat::parse_str(&text).expect("the probe's WAT assembles")
    }
}

/// Every byte as a `\hh` escape: no quoting rules to get wrong.
fn escape(text: &str) -> String {
    text.bytes().map(|b| format!("\\{b:02x}")).collect()
}
