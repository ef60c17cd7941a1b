// "asnotes": an EERP ABI v1 module written in AssemblyScript (see docs/abi.md).
// Built with `--runtime stub` (a bump allocator that never frees: the host discards the
// instance after every request) and `--use abort=assembly/index/eerpAbort`, so the only
// imports are the `eerp` ones below.

@external("eerp", "log")
declare function host_log(level: i32, ptr: usize, len: i32): void;
@external("eerp", "data_call")
declare function data_call(ptr: usize, len: i32): i32;
@external("eerp", "data_take")
declare function data_take(dst: usize): void;

const MANIFEST = '{"name":"asnotes","version":"0.1.0","abi_version":1,"routes":['
  + '{"method":"GET","path":"/hello","permission":"asnotes.hello.read"},'
  + '{"method":"POST","path":"/notes","permission":"asnotes.notes.create"},'
  + '{"method":"GET","path":"/notes/count","permission":"asnotes.notes.read"}'
  + '],"capabilities":["log","data"]}';

const MIGRATION = '[{"entity":"notes","version":1,"operations":['
  + '{"type":"add_column","table":"notes","column":"text","sql_type":"TEXT"}]}]';

// Encoded once per instance so that migrate() and migrate_len() describe the same bytes.
const MIGRATION_BYTES = String.UTF8.encode(MIGRATION);

const DEFAULT_TEXT = "hello from AssemblyScript";

// ---- ABI exports -------------------------------------------------------------------

// 0 for sizes no host memory cap allows (the host caps memory at 64 MiB); otherwise the
// stub runtime's bump allocator, which grows memory as needed.
export function eerp_alloc(len: i32): usize {
  if (len < 0 || len > 64 << 20) return 0;
  return heap.alloc(<usize>len);
}

// Nothing is ever freed: the whole instance is dropped after the request.
export function eerp_dealloc(ptr: usize, len: i32): void {}

export function eerp_manifest(): i64 {
  return output(MANIFEST);
}

export function migrate(): usize {
  return changetype<usize>(MIGRATION_BYTES);
}

export function migrate_len(): i32 {
  return MIGRATION_BYTES.byteLength;
}

export function eerp_handle(handler_id: i32, req_ptr: usize, req_len: i32): i64 {
  const reqEnd = req_ptr + <usize>req_len;
  if (handler_id == 0) return respond(200, '{"hello":"from AssemblyScript"}');
  if (handler_id == 1) return createNote(req_ptr, reqEnd);
  if (handler_id == 2) return countNotes();
  return respond(404, '{"title":"Not found","detail":"no handler ' + handler_id.toString() + '"}');
}

// Called instead of AssemblyScript's default `env.abort` import: log, then trap.
function eerpAbort(message: string | null, file: string | null, line: u32, column: u32): void {
  log(0, "asnotes abort: " + (message ? message : "") + " at "
    + (file ? file : "?") + ":" + line.toString() + ":" + column.toString());
  unreachable();
}

// ---- Handlers ----------------------------------------------------------------------

// POST /notes: inserts {"text": body.text} (or a fixed text), answers 201 with the row.
function createNote(req: usize, reqEnd: usize): i64 {
  let text = DEFAULT_TEXT;
  const body = findKey(req, reqEnd, "body");
  if (body < reqEnd) {
    const t = rawString(findKey(body, reqEnd, "text"), reqEnd);
    if (t !== null) text = t;
  }
  log(2, "asnotes: inserting a note");
  // `text` is either ASCII without quotes or the body's raw JSON string content, escapes
  // included, so it can be pasted between quotes unchanged.
  dataCall('{"op":"insert","table":"notes","values":{"text":"' + text + '"}}');
  const ok = findKey(replyPtr, replyEnd, "ok");
  if (ok >= replyEnd) return dataError();
  return respond(201, slice(ok, skipValue(ok, replyEnd)));
}

// GET /notes/count: answers {"count": N} from ok.groups[0].values.count.
function countNotes(): i64 {
  dataCall('{"op":"aggregate","table":"notes","aggregates":[{"func":"count"}]}');
  const ok = findKey(replyPtr, replyEnd, "ok");
  if (ok >= replyEnd) return dataError();
  const group = firstElement(findKey(ok, replyEnd, "groups"), replyEnd);
  const count = findKey(findKey(group, replyEnd, "values"), replyEnd, "count");
  if (count >= replyEnd) {
    return respond(500, '{"title":"Data error","detail":"unexpected aggregate reply"}');
  }
  return respond(200, '{"count":' + slice(count, skipValue(count, replyEnd)) + '}');
}

// 500 from a {"error":{"kind","message"}} reply; kind and message are copied raw.
function dataError(): i64 {
  const err = findKey(replyPtr, replyEnd, "error");
  const kind = rawString(findKey(err, replyEnd, "kind"), replyEnd);
  const message = rawString(findKey(err, replyEnd, "message"), replyEnd);
  return respond(500, '{"title":"Data error","detail":"'
    + (message !== null ? message : "malformed data reply") + '"'
    + (kind !== null ? ',"code":"' + kind + '"' : "") + '}');
}

// ---- Host helpers ------------------------------------------------------------------

function pack(ptr: usize, len: i32): i64 {
  return (<i64>ptr << 32) | <i64><u32>len;
}

// UTF-8 encodes `s` on the heap and returns it packed for the host.
function output(s: string): i64 {
  const bytes = String.UTF8.encode(s);
  return pack(changetype<usize>(bytes), bytes.byteLength);
}

function respond(status: i32, body: string): i64 {
  return output('{"status":' + status.toString() + ',"body":' + body + '}');
}

function log(level: i32, s: string): void {
  const bytes = String.UTF8.encode(s);
  host_log(level, changetype<usize>(bytes), bytes.byteLength);
}

// The last data reply: bytes [replyPtr, replyEnd).
let replyPtr: usize = 0;
let replyEnd: usize = 0;

// One data API call: data_call runs it, then we allocate exactly n bytes for data_take.
function dataCall(op: string): void {
  const req = String.UTF8.encode(op);
  const n = data_call(changetype<usize>(req), req.byteLength);
  replyPtr = heap.alloc(<usize>n);
  data_take(replyPtr);
  replyEnd = replyPtr + <usize>n;
}

// ---- A minimal JSON scanner over UTF-8 bytes in memory -----------------------------
// Positions are addresses; `end` (one past the last byte) also means "not found", and
// every function accepts it, so lookups can be chained without checks in between.

const QUOTE: u8 = 0x22, BACKSLASH: u8 = 0x5c, COLON: u8 = 0x3a, COMMA: u8 = 0x2c;
const LBRACE: u8 = 0x7b, RBRACE: u8 = 0x7d, LBRACKET: u8 = 0x5b, RBRACKET: u8 = 0x5d;

function isSpace(c: u8): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

function ws(p: usize, end: usize): usize {
  while (p < end && isSpace(load<u8>(p))) p++;
  return p;
}

// p at an opening quote; returns the position after the closing quote.
function skipString(p: usize, end: usize): usize {
  p++;
  while (p < end) {
    const c = load<u8>(p);
    if (c == BACKSLASH) p += 2;
    else if (c == QUOTE) return p + 1;
    else p++;
  }
  return end;
}

// p at the start of any JSON value; returns the position just after it.
function skipValue(p: usize, end: usize): usize {
  if (p >= end) return end;
  let c = load<u8>(p);
  if (c == QUOTE) return skipString(p, end);
  if (c == LBRACE || c == LBRACKET) {
    let depth = 0;
    while (p < end) {
      c = load<u8>(p);
      if (c == QUOTE) { p = skipString(p, end); continue; }
      if (c == LBRACE || c == LBRACKET) depth++;
      else if (c == RBRACE || c == RBRACKET) { if (--depth == 0) return p + 1; }
      p++;
    }
    return end;
  }
  while (p < end) { // number, true, false, null
    c = load<u8>(p);
    if (c == COMMA || c == RBRACE || c == RBRACKET || isSpace(c)) break;
    p++;
  }
  return p;
}

// True when the bytes [p, q) equal the ASCII string `key`.
function bytesEqual(p: usize, q: usize, key: string): bool {
  if (<i32>(q - p) != key.length) return false;
  for (let i = 0; i < key.length; i++) {
    if (<i32>load<u8>(p + <usize>i) != key.charCodeAt(i)) return false;
  }
  return true;
}

// p at an object; returns where the value of its top-level member `key` starts.
function findKey(p: usize, end: usize, key: string): usize {
  p = ws(p, end);
  if (p >= end || load<u8>(p) != LBRACE) return end;
  p++;
  while (true) {
    p = ws(p, end);
    if (p >= end || load<u8>(p) != QUOTE) return end;
    const keyEnd = skipString(p, end);
    if (keyEnd >= end) return end;
    const match = bytesEqual(p + 1, keyEnd - 1, key);
    p = ws(keyEnd, end);
    if (p >= end || load<u8>(p) != COLON) return end;
    p = ws(p + 1, end);
    if (match) return p;
    p = ws(skipValue(p, end), end);
    if (p >= end || load<u8>(p) != COMMA) return end;
    p++;
  }
}

// p at an array; returns where its first element starts.
function firstElement(p: usize, end: usize): usize {
  p = ws(p, end);
  if (p >= end || load<u8>(p) != LBRACKET) return end;
  p = ws(p + 1, end);
  return p < end && load<u8>(p) != RBRACKET ? p : end;
}

// The raw content (escapes kept) of the JSON string at p, or null if p is not a string.
function rawString(p: usize, end: usize): string | null {
  if (p >= end || load<u8>(p) != QUOTE) return null;
  const q = skipString(p, end);
  return q < end ? slice(p + 1, q - 1) : null; // a string inside a value never ends at `end`
}

function slice(p: usize, q: usize): string {
  return String.UTF8.decodeUnsafe(p, q - p);
}
