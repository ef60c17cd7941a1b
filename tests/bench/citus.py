#!/usr/bin/env python3
"""EERP on Citus (docs/scaling.md, "Measured"): what routing through a coordinator costs,
and how long moving one tenant takes.

Starts three throwaway PostgreSQL 15 clusters with Citus (built by ../shared/citus/build.sh,
which this runs first) on loopback: a coordinator and two workers. A release `eerp serve`
serves the coordinator. TENANTS tenants (default 20) are provisioned with CRM while
schema-based sharding is off, so their schemas are plain schemas on the coordinator; get
by id is measured round-robin over them (`tests/bench/tenants.lua`). Then every schema is
distributed (`citus_schema_distribute`, which spreads them over the workers) and the same
load runs again. Then what a write costs when it spans two nodes, as a request touching
two modules of a tenant whose schemas sit on different workers does: pgbench transactions
inserting one contact into each of two schemas on the same worker, against two schemas on
different workers (two-phase commit). Last, tenant 1, seeded with MOVE_ROWS contacts
(100,000), is moved to the other worker with `citus_schema_move(..., 'block_writes')`, timed.

    python3 tests/bench/citus.py          # builds eerp and eerp-load in release first

Environment: TENANTS (20), MOVE_ROWS (100000), RUNS (3), BENCH_SECONDS (10), CONNECTIONS
(32), EERP_BIN. Loopback only, bounded. Needs wrk, psql and root or an unprivileged user
able to run initdb (as root it runs PostgreSQL as `postgres`).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the shared measuring helpers)
from compare import ROOT, sh  # noqa: E402
import tenants  # noqa: E402  (serving and stopping eerp)

TENANTS = int(os.environ.get("TENANTS", "20"))
MOVE_ROWS = int(os.environ.get("MOVE_ROWS", "100000"))
BIN = "/usr/lib/postgresql/15/bin"
PORTS = {"coordinator": 18300, "worker1": 18301, "worker2": 18302}
CITUS = "-c shared_preload_libraries=citus -c max_prepared_transactions=100"


def as_postgres(command, check=True):
    """Runs a shell command as `postgres` when root (initdb refuses root), else as is."""
    args = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
    return subprocess.run(args, check=check, capture_output=True, text=True)


def url(name, database="eerp"):
    return f"postgres://postgres@127.0.0.1:{PORTS[name]}/{database}"


def psql(name, sql):
    return sh("psql", "-qAtX", "-v", "ON_ERROR_STOP=1", url(name), "-c", sql).strip()


def start_clusters(folder):
    for name, port in PORTS.items():
        data = os.path.join(folder, name)
        as_postgres(f"{BIN}/initdb -D {data} -U postgres -A trust --no-sync")
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= {CITUS}"
        as_postgres(f"{BIN}/pg_ctl -D {data} -l {data}.log -w -o '{options}' start")
        sh("psql", "-qAtX", url(name, "postgres"), "-c", "CREATE DATABASE eerp")
        psql(name, "CREATE EXTENSION citus")
    psql("coordinator", f"SELECT citus_set_coordinator_host('127.0.0.1', {PORTS['coordinator']})")
    for worker in ("worker1", "worker2"):
        psql("coordinator", f"SELECT citus_add_node('127.0.0.1', {PORTS[worker]})")


def stop_clusters(folder):
    for name in PORTS:
        as_postgres(f"{BIN}/pg_ctl -D {folder}/{name} -m fast stop", check=False)


def measure(folder, lines, pid):
    tokens = os.path.join(folder, "tokens.txt")
    with open(tokens, "w") as f:
        f.write("\n".join(" ".join(line.split()[:2]) for line in lines) + "\n")
    os.environ.update(TOKENS=tokens, ROUTE="get")
    compare.wrk(tenants.URL, tenants.LUA, None)  # warm-up
    runs = [compare.measure(tenants.URL, tenants.LUA, None, pid) for _ in range(compare.RUNS)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def placements():
    return psql("coordinator", """SELECT string_agg(nodeport::text || ':' || n, ', ' ORDER BY nodeport)
        FROM (SELECT nodeport, count(DISTINCT s.schema_name) n FROM citus_schemas s
              JOIN citus_shards h ON h.table_name::text LIKE s.schema_name::text || '.%'
              GROUP BY nodeport) x""")


def write_pair(folder, first, second):
    """Transactions per second of pgbench transactions inserting into both schemas."""
    script = os.path.join(folder, "pair.sql")
    with open(script, "w") as f:
        f.write(f"""BEGIN;
INSERT INTO {first}.contacts (name) VALUES ('pair');
INSERT INTO {second}.contacts (name) VALUES ('pair');
COMMIT;
""")
    out = sh(f"{BIN}/pgbench", "-n", "-c", "4", "-j", "2", "-T", str(compare.SECONDS), "-f", script, url("coordinator"))
    return float(next(line.split("=")[1].split()[0] for line in out.splitlines() if line.startswith("tps")))


def main():
    compare.ensure_wrk()
    subprocess.run([os.path.join(ROOT, "..", "shared", "citus", "build.sh")], check=True)
    sh("cargo", "build", "--release", "-q", "-p", "eerp-platform", "-p", "eerp-e2e",
       "--features", "eerp-e2e/bench", "--bin", "eerp", "--bin", "eerp-load", cwd=ROOT)
    eerp = os.environ.get("EERP_BIN") or os.path.join(ROOT, "target/release/eerp")
    load = os.path.join(ROOT, "target/release/eerp-load")
    folder = tempfile.mkdtemp()
    os.chmod(folder, 0o777)
    log = open(os.path.join(folder, "serve.log"), "w")
    proc = None
    try:
        start_clusters(folder)
        tenants.PG = f"postgres://postgres@127.0.0.1:{PORTS['coordinator']}"
        proc = tenants.serve(eerp, "eerp", 128, log)
        operator = sh(load, "--secret", tenants.SECRET, "operator-token").strip()
        sh(eerp, "plan", "set", "standard", "requests_per_second=1000000", "burst=1000000",
           f"max_concurrent_calls={compare.CONNECTIONS * 2}", "--url", tenants.URL, "--token", operator)
        sh(load, "--secret", tenants.SECRET, "provision", "--url", tenants.URL, "--count", str(TENANTS),
           "--concurrency", "4", "--prefix", "s", "--modules", "crm")
        ids = []
        for n in range(1, TENANTS + 1):
            rows = MOVE_ROWS if n == 1 else 5
            psql("coordinator", f"""INSERT INTO t_s_{n}__crm.contacts (name, email, status)
                SELECT 'Contact ' || k, 'c' || k || '@seed.test', 'lead' FROM generate_series(1, {rows}) k""")
            ids.append(psql("coordinator", f"SELECT id FROM t_s_{n}__crm.contacts LIMIT 1"))
        tokens = sh(load, "--secret", tenants.SECRET, "tokens", "--count", str(TENANTS), "--prefix", "s").split()
        lines = [f"{tokens[n]} {ids[n]}" for n in range(TENANTS)]

        local = measure(folder, lines, proc.pid)
        for n in range(1, TENANTS + 1):
            psql("coordinator", f"SELECT citus_schema_distribute('t_s_{n}__crm')")
        spread = placements()
        distributed = measure(folder, lines, proc.pid)

        node = {n: int(psql("coordinator", f"""SELECT nodeport FROM citus_shards
            WHERE table_name::text = 't_s_{n}__crm.contacts'""")) for n in range(2, TENANTS + 1)}
        same = next((a, b) for a in node for b in node if a < b and node[a] == node[b])
        apart = next((a, b) for a in node for b in node if a < b and node[a] != node[b])
        pairs = {label: write_pair(folder, f"t_s_{a}__crm", f"t_s_{b}__crm")
                 for label, (a, b) in (("same worker", same), ("two workers", apart))}

        source = psql("coordinator", """SELECT nodeport FROM citus_shards
            WHERE table_name::text = 't_s_1__crm.contacts'""")
        target = PORTS["worker2"] if int(source) == PORTS["worker1"] else PORTS["worker1"]
        started = time.monotonic()
        psql("coordinator", f"SELECT citus_schema_move('t_s_1__crm', '127.0.0.1', {target}, 'block_writes')")
        moved = time.monotonic() - started

        print(f"\n{TENANTS} tenants with CRM, get by id round-robin, wrk -t2 -c{compare.CONNECTIONS} "
              f"-d{compare.SECONDS}s, median of {compare.RUNS} runs\n")
        print("| tenants' schemas | requests/s | p50 ms | p99 ms | service CPU/req µs | PostgreSQL CPU/req µs (all nodes) |")
        print("|---|---|---|---|---|---|")
        for label, m in (("on the coordinator (local)", local), (f"distributed ({spread})", distributed)):
            print(f"| {label} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
                  f"{m['service_us']:.0f} | {m['pg_us']:.0f} |")
        print(f"\nspread / local: {distributed['rps'] / local['rps']:.2f}")
        print(f"\npgbench -c4 -j2 -T{compare.SECONDS}, one transaction inserting into two schemas:")
        for label, tps in pairs.items():
            print(f"- {label}: {tps:,.0f} transactions/s")
        print(f"moving tenant s_1 ({MOVE_ROWS:,} contacts) from port {source} to {target}: {moved:.1f} s")
    finally:
        if proc is not None:
            tenants.stop(proc)
        stop_clusters(folder)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
