//! A module that misbehaves on purpose, for the sandbox tests.
//!
//! It implements ABI v1 by hand, without the SDK, both to break the rules where the SDK
//! would not let it and to prove `docs/abi.md` is enough to write a module. Routes, in
//! handler-id order, under `/api/v1/hostile`:
//!
//! | id | route | behaviour |
//! |---|---|---|
//! | 0 | `GET /loop` | spins forever (fuel or wall clock must stop it) |
//! | 1 | `GET /hog` | allocates until memory runs out |
//! | 2 | `GET /recurse` | recurses without bound |
//! | 3 | `GET /bad-pointer` | returns a response pointer outside its memory |
//! | 4 | `GET /oversized` | returns a 2 MiB response |
//! | 5 | `GET /panic` | panics |
//! | 6 | `POST /write-then-trap` | inserts a row, then traps |
//! | 7 | `POST /write` | inserts a row and succeeds |
//! | 8 | `POST /ignore-failure` | inserts a duplicate, ignores the conflict, answers 200 |
//! | 9 | `GET /count` | counts its rows |
//! | 10 | `POST /lock` | locks the row `{"id"}` with `get_for_update` (waits if it is locked) |
//! | 11 | `GET /count-then-loop` | counts its rows, then spins forever |
#![cfg(target_arch = "wasm32")]

use std::alloc::{Layout, alloc};
use std::hint::black_box;

use serde_json::{Value, json};

#[link(wasm_import_module = "eerp")]
unsafe extern "C" {
    fn data_call(ptr: i32, len: i32) -> i32;
    fn data_take(dst: i32);
}

const ROUTES: [(&str, &str); 12] = [
    ("GET", "/loop"),
    ("GET", "/hog"),
    ("GET", "/recurse"),
    ("GET", "/bad-pointer"),
    ("GET", "/oversized"),
    ("GET", "/panic"),
    ("POST", "/write-then-trap"),
    ("POST", "/write"),
    ("POST", "/ignore-failure"),
    ("GET", "/count"),
    ("POST", "/lock"),
    ("GET", "/count-then-loop"),
];

fn pack(ptr: u32, len: u32) -> i64 {
    (((ptr as u64) << 32) | len as u64) as i64
}

/// Hands bytes to the host for the rest of this (single-request) instance.
fn leak(bytes: Vec<u8>) -> i64 {
    let len = bytes.len() as u32;
    let ptr = Box::leak(bytes.into_boxed_slice()).as_ptr() as u32;
    pack(ptr, len)
}

#[unsafe(no_mangle)]
pub extern "C" fn eerp_alloc(len: i32) -> i32 {
    match Layout::from_size_align(len.max(1) as usize, 1) {
        // SAFETY: the layout has a non-zero size.
        Ok(layout) => unsafe { alloc(layout) as i32 },
        Err(_) => 0,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn eerp_dealloc(_ptr: i32, _len: i32) {}

#[unsafe(no_mangle)]
pub extern "C" fn eerp_manifest() -> i64 {
    let routes: Vec<Value> = ROUTES
        .iter()
        .map(|(method, path)| json!({"method": method, "path": path, "permission": "hostile.probe.run"}))
        .collect();
    let manifest = json!({
        "name": "hostile",
        "version": "0.0.1",
        "abi_version": 1,
        "routes": routes,
        "capabilities": ["log", "data"],
    });
    leak(manifest.to_string().into_bytes())
}

fn migration() -> Vec<u8> {
    json!({"entity": "probes", "version": 1, "operations": [{
        "type": "create_table", "table": "probes",
        "columns": [{"name": "note", "type": "text", "not_null": true, "unique": true}]
    }]})
    .to_string()
    .into_bytes()
}

#[unsafe(no_mangle)]
pub extern "C" fn migrate() -> i32 {
    (leak(migration()) >> 32) as i32
}

#[unsafe(no_mangle)]
pub extern "C" fn migrate_len() -> i32 {
    migration().len() as i32
}

fn data(op: Value) -> Value {
    let request = op.to_string();
    // SAFETY: the host reads `request` during the call only.
    let len = unsafe { data_call(request.as_ptr() as i32, request.len() as i32) };
    let mut reply = vec![0u8; len as usize];
    // SAFETY: `reply` has exactly the `len` bytes the host will copy.
    unsafe { data_take(reply.as_mut_ptr() as i32) };
    serde_json::from_slice(&reply).unwrap_or(Value::Null)
}

fn respond(status: u16, body: Value) -> i64 {
    leak(
        json!({"status": status, "body": body})
            .to_string()
            .into_bytes(),
    )
}

fn request_body(ptr: i32, len: i32) -> Value {
    // SAFETY: the host wrote `len` bytes at `ptr`, from `eerp_alloc(len)`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, len as usize) };
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|envelope| envelope.get("body").cloned())
        .unwrap_or(Value::Null)
}

fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    1 + recurse(black_box(depth + 1))
}

#[unsafe(no_mangle)]
pub extern "C" fn eerp_handle(handler: i32, ptr: i32, len: i32) -> i64 {
    let body = request_body(ptr, len);
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or("probe")
            .to_string()
    };
    let note = field("note");
    let insert = || data(json!({"op": "insert", "table": "probes", "values": {"note": note}}));
    let spin = || -> ! {
        let mut spins = 0u64;
        loop {
            spins = black_box(spins.wrapping_add(1));
        }
    };
    match handler {
        0 => spin(),
        1 => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                black_box(&hoard);
            }
        }
        2 => respond(200, json!({ "depth": recurse(0) })),
        3 => pack(0xFFFF_0000, 64),
        4 => leak(vec![b' '; 2 << 20]),
        5 => panic!("hostile module panics on purpose"),
        6 => {
            black_box(insert());
            core::arch::wasm32::unreachable()
        }
        7 => respond(201, insert()),
        8 => {
            let first = insert();
            let second = insert();
            respond(200, json!({ "first": first, "second": second }))
        }
        9 => {
            let counted = data(
                json!({"op": "aggregate", "table": "probes", "aggregates": [{"func": "count"}]}),
            );
            respond(200, counted)
        }
        10 => {
            let locked =
                data(json!({"op": "get_for_update", "table": "probes", "id": field("id")}));
            respond(200, locked)
        }
        11 => {
            black_box(data(
                json!({"op": "aggregate", "table": "probes", "aggregates": [{"func": "count"}]}),
            ));
            spin()
        }
        _ => respond(
            404,
            json!({"title": "Not found", "detail": "no such handler"}),
        ),
    }
}
