//! A module written by hand in WAT and assembled by the tests, for the module store,
//! grants and events: any name, version, ABI version, capabilities, grants, events,
//! routes and migrations, so a test can upload v1 and v2 of one module at runtime, or a
//! module broken in exactly one way.
//!
//! Every route and subscription runs an [`Action`]: its data calls in order, then its
//! emits, then a fixed response or the last data reply as the body.

use serde_json::{Value, json};

/// What a handler does.
#[derive(Debug, Clone)]
pub struct Action {
    /// Data API operations, in order.
    pub calls: Vec<Value>,
    /// Events to emit (`{"event", "payload"}`), after the calls.
    pub emits: Vec<Value>,
    /// The response; `None` answers 200 with the last data reply as the body.
    pub response: Option<Value>,
    /// First insert the whole request envelope into table `heard` (column `envelope`,
    /// jsonb; see [`Probe::heard_step`]).
    pub store_request: bool,
}

impl Action {
    /// Answers `response` and does nothing else.
    pub fn answer(response: Value) -> Self {
        Self {
            calls: Vec::new(),
            emits: Vec::new(),
            response: Some(response),
            store_request: false,
        }
    }

    /// Makes `call` and answers 200 with its reply: `{"ok": ...}` or `{"error": ...}`.
    pub fn reply_of(call: Value) -> Self {
        Self {
            calls: vec![call],
            emits: Vec::new(),
            response: None,
            store_request: false,
        }
    }

    /// Also emits `event` with `payload`.
    pub fn emitting(mut self, event: &str, payload: Value) -> Self {
        self.emits.push(json!({"event": event, "payload": payload}));
        self
    }
}

/// A route: method, path, permission suffix (after `<name>.`), what it does.
pub type ProbeRoute = (&'static str, &'static str, &'static str, Action);

/// A probe module to assemble.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Module name.
    pub name: String,
    /// Semver text.
    pub version: String,
    /// ABI version in the manifest.
    pub abi_version: u32,
    /// Capabilities the manifest requests. The module always imports the data API, and
    /// `emit` when `events` is requested.
    pub capabilities: Vec<&'static str>,
    /// Read grants.
    pub grants: Vec<String>,
    /// Events it may emit.
    pub events: Vec<String>,
    /// Routes, in handler-id order.
    pub routes: Vec<ProbeRoute>,
    /// Subscriptions: event name and what its handler does.
    pub subscriptions: Vec<(String, Action)>,
    /// The migration JSON steps.
    pub migrations: Vec<Value>,
}

impl Probe {
    /// `name` at `version` with table `items (label)` and three routes: `GET /version`
    /// answers the version, `GET /slow` lists `items` first (so it waits while a test
    /// locks that table), `POST /items` inserts a row and answers 201.
    pub fn new(name: &str, version: &str) -> Self {
        let answer = json!({"status": 200, "body": {"version": version}});
        let slow = Action {
            calls: vec![json!({"op": "list", "table": "items"})],
            ..Action::answer(answer.clone())
        };
        let insert = Action {
            calls: vec![json!({"op": "insert", "table": "items", "values": {"label": name}})],
            ..Action::answer(json!({"status": 201, "body": {"version": version}}))
        };
        Self {
            name: name.into(),
            version: version.into(),
            abi_version: 1,
            capabilities: vec!["log", "data"],
            grants: Vec::new(),
            events: Vec::new(),
            routes: vec![
                ("GET", "/version", "version.read", Action::answer(answer)),
                ("GET", "/slow", "items.read", slow),
                ("POST", "/items", "items.create", insert),
            ],
            subscriptions: Vec::new(),
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

    /// Adds a route.
    pub fn route(mut self, method: &'static str, path: &'static str, action: Action) -> Self {
        self.routes.push((method, path, "items.read", action));
        self
    }

    /// Subscribes to `event`.
    pub fn on(mut self, event: &str, action: Action) -> Self {
        self.subscriptions.push((event.to_string(), action));
        self
    }

    /// The step that adds table `notes`, as version `version`.
    pub fn notes_step(version: u32, column: &str) -> Value {
        json!({"entity": "notes", "version": version, "operations": [
            {"type": "add_column", "table": "notes", "column": column, "sql_type": "TEXT"}
        ]})
    }

    /// The step that adds table `heard (envelope jsonb)`, as version `version`.
    pub fn heard_step(version: u32) -> Value {
        json!({"entity": "heard", "version": version, "operations": [
            {"type": "add_column", "table": "heard", "column": "envelope", "sql_type": "jsonb"}
        ]})
    }

    /// The manifest JSON.
    pub fn manifest(&self) -> Value {
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|(method, path, permission, _)| {
                json!({"method": method, "path": path,
                       "permission": format!("{}.{permission}", self.name)})
            })
            .collect();
        let subscriptions: Vec<&str> = self.subscriptions.iter().map(|(e, _)| e.as_str()).collect();
        json!({"name": self.name, "version": self.version, "abi_version": self.abi_version,
               "routes": routes, "capabilities": self.capabilities, "grants": self.grants,
               "events": self.events, "subscriptions": subscriptions})
    }

    /// The assembled module.
    pub fn wasm(&self) -> Vec<u8> {
        let mut data = Segments::default();
        let manifest = data.put(&self.manifest().to_string());
        let migrations = data.put(&Value::Array(self.migrations.clone()).to_string());
        let prefix = data.put(r#"{"status":200,"body":"#);
        let store = data.put(r#"{"op":"insert","table":"heard","values":{"envelope":"#);
        let actions = self
            .routes
            .iter()
            .map(|(_, _, _, action)| action)
            .chain(self.subscriptions.iter().map(|(_, action)| action));
        let handlers: Vec<String> = actions
            .enumerate()
            .map(|(id, action)| handler(id, action, &mut data, prefix, store))
            .collect();
        let dispatch: String = (0..handlers.len())
            .map(|id| {
                format!(
                    "(if (i32.eq (local.get $id) (i32.const {id})) \
                     (then (return (call $h{id} (local.get $req) (local.get $len)))))\n"
                )
            })
            .collect();
        let emit_import = if self.capabilities.contains(&"events") {
            r#"(import "eerp" "emit" (func $emit (param i32 i32)))"#
        } else {
            ""
        };
        let heap = data.end.div_ceil(65536) * 65536;
        let pages = heap / 65536 + 1;
        let text = format!(
            r#"(module
  (import "eerp" "data_call" (func $data_call (param i32 i32) (result i32)))
  (import "eerp" "data_take" (func $data_take (param i32)))
  {emit_import}
  (memory (export "memory") {pages})
  (global $heap (mut i32) (i32.const {heap}))
  {segments}
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
  (func (export "eerp_manifest") (result i64) (call $pack (i32.const {m_at}) (i32.const {m_len})))
  (func (export "migrate") (result i32) (i32.const {g_at}))
  (func (export "migrate_len") (result i32) (i32.const {g_len}))
  {handlers}
  (func (export "eerp_handle") (param $id i32) (param $req i32) (param $len i32) (result i64)
    {dispatch}
    unreachable)
)"#,
            segments = data.text,
            handlers = handlers.join("\n"),
            m_at = manifest.0,
            m_len = manifest.1,
            g_at = migrations.0,
            g_len = migrations.1,
        );
        wat::parse_str(&text).expect("the probe's WAT assembles")
    }
}

/// Data segments laid out one after another.
#[derive(Default)]
struct Segments {
    text: String,
    end: usize,
}

impl Segments {
    /// Places `text` and returns its address and length.
    fn put(&mut self, text: &str) -> (usize, usize) {
        let at = self.end.max(1024);
        self.text
            .push_str(&format!("(data (i32.const {at}) \"{}\")\n", escape(text)));
        self.end = (at + text.len()).div_ceil(8) * 8;
        (at, text.len())
    }
}

/// The function `$h<id>` running `action`. A reply is taken into a buffer that starts
/// with room for the response prefix, so it can be answered as the body.
fn handler(
    id: usize,
    action: &Action,
    data: &mut Segments,
    prefix: (usize, usize),
    store: (usize, usize),
) -> String {
    let (prefix_at, prefix_len) = prefix;
    let mut body = String::new();
    if action.store_request {
        let (store_at, store_len) = store;
        body.push_str(&format!(
            "(local.set $q (call $alloc (i32.add (local.get $len) (i32.const {room}))))
             (memory.copy (local.get $q) (i32.const {store_at}) (i32.const {store_len}))
             (memory.copy (i32.add (local.get $q) (i32.const {store_len})) (local.get $req) (local.get $len))
             (i32.store16 (i32.add (local.get $q) (i32.add (local.get $len) (i32.const {store_len}))) (i32.const 32125))
             (local.set $n (call $data_call (local.get $q) (i32.add (local.get $len) (i32.const {room}))))
             (local.set $p (call $alloc (i32.add (local.get $n) (i32.const {reply_room}))))
             (call $data_take (i32.add (local.get $p) (i32.const {prefix_len})))\n",
            room = store_len + 2,
            reply_room = prefix_len + 1
        ));
    }
    for call in &action.calls {
        let (at, len) = data.put(&call.to_string());
        body.push_str(&format!(
            "(local.set $n (call $data_call (i32.const {at}) (i32.const {len})))
             (local.set $p (call $alloc (i32.add (local.get $n) (i32.const {room}))))
             (call $data_take (i32.add (local.get $p) (i32.const {prefix_len})))\n",
            room = prefix_len + 1
        ));
    }
    for emit in &action.emits {
        let (at, len) = data.put(&emit.to_string());
        body.push_str(&format!(
            "(call $emit (i32.const {at}) (i32.const {len}))\n"
        ));
    }
    match &action.response {
        Some(response) => {
            let (at, len) = data.put(&response.to_string());
            body.push_str(&format!("(call $pack (i32.const {at}) (i32.const {len}))"));
        }
        None => body.push_str(&format!(
            "(memory.copy (local.get $p) (i32.const {prefix_at}) (i32.const {prefix_len}))
             (i32.store8 (i32.add (local.get $p) (i32.add (local.get $n) (i32.const {prefix_len}))) (i32.const 125))
             (call $pack (local.get $p) (i32.add (local.get $n) (i32.const {total})))",
            total = prefix_len + 1
        )),
    }
    format!(
        "(func $h{id} (param $req i32) (param $len i32) (result i64) \
         (local $n i32) (local $p i32) (local $q i32)\n{body})"
    )
}

/// Every byte as a `\hh` escape: no quoting rules to get wrong.
fn escape(text: &str) -> String {
    text.bytes().map(|b| format!("\\{b:02x}")).collect()
}
