// Checks build/asnotes.wasm against ABI v1 without the Rust host: the exact imports and
// exports (with signatures, read from the binary), then a simulated host calling the
// manifest, the migrations and each handler with stub `eerp` imports.
// Run: ./build.sh && node check.mjs
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const bytes = readFileSync(new URL("./build/asnotes.wasm", import.meta.url));
let passed = 0, failed = 0;
function check(name, fn) {
  try { fn(); passed++; console.log(`ok   ${name}`); }
  catch (e) { failed++; console.log(`FAIL ${name}\n${e.stack}`); }
}

// ---- Signatures from the binary (the JS API does not expose function types) --------
function signatures(buf) {
  let p = 8;
  const u32 = () => { let r = 0, s = 0, b; do { b = buf[p++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; };
  const name = () => { const n = u32(); const s = buf.subarray(p, p + n).toString(); p += n; return s; };
  const vt = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64" };
  const types = [], funcs = [], imports = {}, exports = {};
  while (p < buf.length) {
    const id = buf[p++], size = u32(), end = p + size;
    if (id === 1) for (let n = u32(); n--;) { p++; const ps = [...Array(u32())].map(() => vt[buf[p++]]); const rs = [...Array(u32())].map(() => vt[buf[p++]]); types.push(`(${ps}) -> (${rs})`); }
    if (id === 2) for (let n = u32(); n--;) { const k = `${name()}.${name()}`, kind = buf[p++]; if (kind === 0) { const t = types[u32()]; imports[k] = t; funcs.push(t); } else { imports[k] = `kind ${kind}`; break; } }
    if (id === 3) for (let n = u32(); n--;) funcs.push(types[u32()]);
    if (id === 7) for (let n = u32(); n--;) { const k = name(), kind = buf[p++], i = u32(); exports[k] = kind === 0 ? funcs[i] : kind === 2 ? "memory" : `kind ${kind}`; }
    p = end;
  }
  return { imports, exports };
}

const sig = signatures(bytes);
check("imports are exactly the eerp ones it uses", () => assert.deepEqual(sig.imports, {
  "eerp.log": "(i32,i32,i32) -> ()",
  "eerp.data_call": "(i32,i32) -> (i32)",
  "eerp.data_take": "(i32) -> ()",
}));
check("exports are exactly the ABI v1 ones", () => assert.deepEqual(sig.exports, {
  memory: "memory",
  eerp_alloc: "(i32) -> (i32)",
  eerp_dealloc: "(i32,i32) -> ()",
  eerp_manifest: "() -> (i64)",
  migrate: "() -> (i32)",
  migrate_len: "() -> (i32)",
  eerp_handle: "(i32,i32,i32) -> (i64)",
}));

// ---- A simulated host ----------------------------------------------------------------
const module = new WebAssembly.Module(bytes);
const enc = new TextEncoder(), dec = new TextDecoder("utf-8", { fatal: true });

// A fresh instance, as the host makes per request. `reply(op)` answers data calls.
function instance(reply) {
  const host = { logs: [], calls: [], pending: null };
  const mem = () => new Uint8Array(host.exports.memory.buffer);
  const eerp = {
    log(level, ptr, len) { host.logs.push([level, dec.decode(mem().slice(ptr, ptr + len))]); },
    data_call(ptr, len) {
      if (!reply) throw new Error("data_call not allowed here");
      assert.equal(host.pending, null, "data_call with a reply not taken");
      const op = JSON.parse(dec.decode(mem().slice(ptr, ptr + len)));
      host.calls.push(op);
      host.pending = enc.encode(JSON.stringify(reply(op)));
      return host.pending.length;
    },
    data_take(dst) {
      assert.notEqual(host.pending, null, "data_take without a pending reply");
      mem().set(host.pending, dst); // throws RangeError when out of bounds, like the host
      host.pending = null;
    },
  };
  host.exports = new WebAssembly.Instance(module, { eerp }).exports;
  host.read = (ptr, len) => dec.decode(mem().slice(ptr, ptr + len));
  host.unpack = (packed) => host.read(Number(BigInt.asUintN(64, packed) >> 32n), Number(BigInt.asUintN(32, packed)));
  host.handle = (id, envelope) => {
    const req = enc.encode(typeof envelope === "string" ? envelope : JSON.stringify(envelope));
    const ptr = host.exports.eerp_alloc(req.length);
    assert.ok(ptr > 0, "eerp_alloc returned 0");
    mem().set(req, ptr);
    return JSON.parse(host.unpack(host.exports.eerp_handle(id, ptr, req.length)));
  };
  return host;
}

const envelope = (method, route, body, query = {}) => ({
  method, route, params: {}, query, body,
  principal: { subject: "user-1", roles: ["admin"] }, request_id: "req-1",
});

check("manifest and migrations load without calling imports", () => {
  const host = instance(null);
  const manifest = JSON.parse(host.unpack(host.exports.eerp_manifest()));
  assert.deepEqual(manifest, {
    name: "asnotes", version: "0.1.0", abi_version: 1,
    routes: [
      { method: "GET", path: "/hello", permission: "asnotes.hello.read" },
      { method: "POST", path: "/notes", permission: "asnotes.notes.create" },
      { method: "GET", path: "/notes/count", permission: "asnotes.notes.read" },
    ],
    capabilities: ["log", "data"],
  });
  const ptr = host.exports.migrate(), len = host.exports.migrate_len();
  assert.deepEqual(JSON.parse(host.read(ptr, len)), [{ entity: "notes", version: 1, operations: [
    { type: "add_column", table: "notes", column: "text", sql_type: "TEXT" }] }]);
  assert.deepEqual(host.logs, []);
});

check("GET /hello answers without data calls", () => {
  const host = instance(() => assert.fail("no data call expected"));
  assert.deepEqual(host.handle(0, envelope("GET", "/hello", null)),
    { status: 200, body: { hello: "from AssemblyScript" } });
});

const row = { id: "x", text: "t", created_at: "2026-01-01T00:00:00+00:00" };
check("POST /notes inserts body.text and answers 201 with the row", () => {
  const host = instance(() => ({ ok: row }));
  const text = 'buy "milk" ü \\ done';
  // A query key named "body" must not be mistaken for the envelope's body.
  const res = host.handle(1, envelope("POST", "/notes", { other: { text: "no" }, text }, { body: "x" }));
  assert.deepEqual(host.calls, [{ op: "insert", table: "notes", values: { text } }]);
  assert.deepEqual(res, { status: 201, body: row });
  assert.deepEqual(host.logs, [[2, "asnotes: inserting a note"]]);
});

check("POST /notes without a text inserts the fixed text", () => {
  const host = instance(() => ({ ok: row }));
  host.handle(1, envelope("POST", "/notes", null));
  assert.deepEqual(host.calls[0].values, { text: "hello from AssemblyScript" });
});

check("POST /notes answers 500 on a data error", () => {
  const host = instance(() => ({ error: { kind: "invalid", message: 'unknown column "x"' } }));
  assert.deepEqual(host.handle(1, envelope("POST", "/notes", { text: "a" })), { status: 500,
    body: { title: "Data error", detail: 'unknown column "x"', code: "invalid" } });
});

check("GET /notes/count answers the count", () => {
  const host = instance(() => ({ ok: { groups: [{ key: {}, values: { count: 3 } }] } }));
  assert.deepEqual(host.handle(2, envelope("GET", "/notes/count", null)), { status: 200, body: { count: 3 } });
  assert.deepEqual(host.calls, [{ op: "aggregate", table: "notes", aggregates: [{ func: "count" }] }]);
});

check("a near-1 MiB request grows memory and still works", () => {
  const host = instance(() => ({ ok: row }));
  const big = "a".repeat(1000 * 1024);
  const res = host.handle(1, envelope("POST", "/notes", { pad: big, text: "end" }));
  assert.equal(res.status, 201);
  assert.equal(host.calls[0].values.text, "end");
});

check("eerp_alloc returns 0 for an impossible size", () => {
  assert.equal(instance(null).exports.eerp_alloc(0x7fffffff), 0);
  assert.ok(instance(null).exports.eerp_alloc(0) > 0);
});

check("an unknown handler id answers 404", () => {
  assert.equal(instance(null).handle(7, envelope("GET", "/x", null)).status, 404);
});

console.log(`${bytes.length} bytes; imports: ${Object.keys(sig.imports).join(", ")}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
