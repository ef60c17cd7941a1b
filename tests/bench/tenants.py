#!/usr/bin/env python3
"""EERP with many tenants (docs/performance.md, "Scaling with tenants").

Provisions TENANTS tenants (default 10000) on a release `eerp serve` over the admin API,
seeds five contacts in each, and runs get by id and list of 20 with requests spread
round-robin over the first 10, 1,000 and all of them (`tests/bench/tenants.lua`), each
after warm-up runs until requests/s stops rising (PostgreSQL's backends build their
catalog caches and prepare statements for the tenants they serve). Prints requests/s,
p50, p99, CPU per request of the service and of PostgreSQL, and each figure against 10
tenants', the median of RUNS runs, for every per-connection statement cache size in
STATEMENT_CACHES (the service restarted for each); and the service's resident memory
with 10 tenants known to it against all of them, per tenant. Then the same runs against
the native baseline (`tests/bench/native`), told each request's schema in a header, so
that PostgreSQL's own cost of many schemas is measured apart from EERP's: EERP/native
for each tenant count.

    python3 tests/bench/tenants.py           # builds eerp, eerp-load and the baseline first

Environment: TENANTS (10000), MODULES (modules each tenant gets, default crm; "plan" for
the plan's four), STATEMENT_CACHES (2048,128,0), NATIVE (1; 0 skips the baseline),
RUNS (3), BENCH_SECONDS (10),
WARM_UP_RUNS (at most; 12), CONNECTIONS (32), PG (postgres://postgres@127.0.0.1:5432),
EERP_BIN (an `eerp` to measure instead of the one built). Loopback only, bounded. Needs
wrk (installed with apt when run as root) and psql.
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the shared measuring helpers)
from compare import PG, ROOT, psql, sh  # noqa: E402

TENANTS = int(os.environ.get("TENANTS", "10000"))
MODULES = os.environ.get("MODULES", "crm")
CACHES = [int(c) for c in os.environ.get("STATEMENT_CACHES", "2048,128,0").split(",") if c]
NATIVE = os.environ.get("NATIVE", "1") != "0"
WARM_UP_RUNS = int(os.environ.get("WARM_UP_RUNS", "12"))
SETS = [n for n in (10, 1000, 10000) if n < TENANTS] + [TENANTS]
SECRET = "bench-secret-bench-secret-bench-secret"
PORT = 18190
URL = f"http://127.0.0.1:{PORT}"
NATIVE_PORT = PORT + 10
NATIVE_URL = f"http://127.0.0.1:{NATIVE_PORT}"
LUA = os.path.join(ROOT, "tests/bench/tenants.lua")


def resident_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def serve(eerp, database, cache, log):
    env = dict(os.environ, RUST_LOG="warn", EERP_JWT_HS256_SECRET=SECRET,
               EERP_DB_STATEMENT_CACHE=str(cache))
    proc = subprocess.Popen([eerp, "serve", "--database-url", f"{PG}/{database}",
                             "--host", "127.0.0.1", "--port", str(PORT), "--ops-port", str(PORT + 1),
                             "--jwt-issuer", "eerp-bench", "--jwt-algorithms", "HS256"],
                            stdout=log, stderr=log, env=env)
    compare.wait_for(f"http://127.0.0.1:{PORT + 1}/livez")
    return proc


def serve_native(database):
    native = os.path.join(ROOT, "target/release/eerp-native-baseline")
    proc = subprocess.Popen([native], env=dict(os.environ, DATABASE_URL=f"{PG}/{database}",
                            EERP_BENCH_SCHEMA="t_s_1__crm", PORT=str(NATIVE_PORT)))
    compare.wait_for(f"{NATIVE_URL}/api/v1/crm/contacts?limit=1")
    return proc


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def provision(load, database):
    """Creates the tenants, five contacts each; returns "<token> <id> <schema>" lines,
    tenant 1 first."""
    modules = [] if MODULES == "plan" else ["--modules", MODULES]
    print(sh(load, "--secret", SECRET, "provision", "--url", URL, "--count", str(TENANTS),
             "--concurrency", "4", "--prefix", "s", *modules).strip(), file=sys.stderr)
    psql(database, "CREATE TABLE bench_ids (n int PRIMARY KEY, id text)")
    # One transaction per tenant: one for all would lock every tenant's table and indexes
    # at once, far beyond max_locks_per_transaction.
    psql(database, r"""
        DO $$
        DECLARE s text;
        BEGIN
          FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\_s\_%\_\_crm' LOOP
            EXECUTE format($f$INSERT INTO %I.contacts (name, email, status)
                SELECT 'Contact ' || k, 'c' || k || '@seed.test', 'lead' FROM generate_series(1, 5) k$f$, s);
            EXECUTE format($f$INSERT INTO bench_ids SELECT %s, id::text FROM %I.contacts LIMIT 1$f$,
                substring(s from '^t_s_(\d+)__crm$'), s);
            COMMIT;
          END LOOP;
        END $$""")
    ids = dict(line.split("|") for line in psql(database, "SELECT n, id FROM bench_ids").split())
    tokens = sh(load, "--secret", SECRET, "tokens", "--count", str(TENANTS), "--prefix", "s").split()
    missing = [n for n in range(1, TENANTS + 1) if str(n) not in ids]
    if missing:
        sys.exit(f"{len(missing)} tenants have no CRM schema (first: s_{missing[0]})")
    return [f"{tokens[n - 1]} {ids[str(n)]} t_s_{n}__crm" for n in range(1, TENANTS + 1)]


def warm_up(url):
    """Runs until requests/s stops rising (two runs in a row not 10 % above the best so
    far, or WARM_UP_RUNS runs): every backend builds its catalog caches and prepares its
    statements for the tenants it serves, which takes minutes with 10,000 tenants.
    Returns the runs it took."""
    best, flat = 0.0, 0
    for runs in range(1, WARM_UP_RUNS + 1):
        now = compare.wrk(url, LUA, None)["rps"]
        flat = flat + 1 if now < best * 1.1 else 0
        best = max(best, now)
        if flat == 2:
            return runs
    return WARM_UP_RUNS


def run(folder, lines, count, route, pid, url=URL):
    """Measures `route` over the first `count` tenants. EERP's requests carry only their
    token; the native baseline's (`url` not EERP's) the schema as well."""
    tokens = os.path.join(folder, f"tokens{count}.txt")
    keep = 3 if url != URL else 2
    with open(tokens, "w") as f:
        f.write("\n".join(" ".join(line.split()[:keep]) for line in lines[:count]) + "\n")
    os.environ.update(TOKENS=tokens, ROUTE=route)
    warm = warm_up(url)
    results = [compare.measure(url, LUA, None, pid) for _ in range(compare.RUNS)]
    result = {key: statistics.median(r[key] for r in results) for key in results[0]}
    result["warm"] = warm
    return result


def main():
    compare.ensure_wrk()
    sh("cargo", "build", "--release", "-q", "-p", "eerp-platform", "-p", "eerp-e2e",
       "-p", "eerp-native-baseline", "--features", "eerp-e2e/bench", "--bin", "eerp", "--bin", "eerp-load",
       "--bin", "eerp-native-baseline", cwd=ROOT)
    eerp = os.environ.get("EERP_BIN") or os.path.join(ROOT, "target/release/eerp")
    load = os.path.join(ROOT, "target/release/eerp-load")
    folder = tempfile.mkdtemp()
    database = f"eerp_tenants_{os.getpid()}"
    psql("postgres", f"CREATE DATABASE {database}")
    log = open(os.path.join(folder, "serve.log"), "w")
    rows, memory = [], []
    proc = None
    try:
        proc = serve(eerp, database, CACHES[0], log)
        operator = sh(load, "--secret", SECRET, "operator-token").strip()
        sh(eerp, "plan", "set", "standard", "requests_per_second=1000000", "burst=1000000",
           f"max_concurrent_calls={compare.CONNECTIONS * 2}", "--url", URL, "--token", operator)
        lines = provision(load, database)
        # Every cache size is measured on a fresh service: memory is compared from there.
        stop(proc)
        proc = None
        for cache in CACHES:
            if proc is None:
                proc = serve(eerp, database, cache, log)
            rss = []
            for count in SETS:
                for route in ("get", "list"):
                    rows.append((cache, count, route, run(folder, lines, count, route, proc.pid)))
                rss.append(resident_kib(proc.pid))
            memory.append((cache, rss))
            stop(proc)
            proc = None
        if NATIVE:
            proc = serve_native(database)
            for count in SETS:
                for route in ("get", "list"):
                    m = run(folder, lines, count, route, proc.pid, NATIVE_URL)
                    rows.append(("native", count, route, m))
            stop(proc)
            proc = None
        print_tables(rows, memory)
    finally:
        if proc is not None:
            stop(proc)
        psql("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def print_tables(rows, memory):
    print(f"\n{TENANTS} tenants provisioned (modules: {MODULES}), five contacts each, "
          f"wrk -t2 -c{compare.CONNECTIONS} -d{compare.SECONDS}s, median of {compare.RUNS} runs\n")
    print("| statement cache (or native) | tenants | route | requests/s | p50 ms | p99 ms | service CPU/req µs "
          "| PostgreSQL CPU/req µs | non-2xx | warm-up runs | requests/s vs 10 | p50 vs 10 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    base = {(c, r): m for c, n, r, m in rows if n == SETS[0]}
    for cache, count, route, m in rows:
        b = base[(cache, route)]
        print(f"| {cache} | {count:,} | {route} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
              f"{m['service_us']:.0f} | {m['pg_us']:.0f} | {m['errors']:.0f} | {m['warm']} | "
              f"{m['rps'] / b['rps']:.2f} | {m['p50'] / b['p50']:.2f} |")
    native = {(n, r): m for c, n, r, m in rows if c == "native"}
    if native:
        print("\n| statement cache | tenants | route | EERP/native requests/s | EERP/native p50 |"
              "\n|---|---|---|---|---|")
        for cache, count, route, m in rows:
            if cache != "native":
                b = native[(count, route)]
                print(f"| {cache} | {count:,} | {route} | {m['rps'] / b['rps']:.2f} | "
                      f"{m['p50'] / b['p50']:.2f} |")
    print("\n| statement cache | resident MiB with " + " / ".join(f"{n:,}" for n in SETS)
          + " tenants served | per tenant beyond the first 10, KiB |\n|---|---|---|")
    for cache, rss in memory:
        per = (rss[-1] - rss[0]) / (SETS[-1] - SETS[0])
        print(f"| {cache} | " + " / ".join(f"{k / 1024:.0f}" for k in rss) + f" | {per:.1f} |")


if __name__ == "__main__":
    main()
