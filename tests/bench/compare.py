#!/usr/bin/env python3
"""EERP side by side with a native service (docs/performance.md, "EERP against native").

Runs the same routes, on the same data in the same database, with the same load
generator, against the release `eerp` (via `eerp dev` on PostgreSQL at 127.0.0.1:5432,
the demo tenant with its rate limits lifted) and against `eerp-native-baseline`
(actix-web + deadpool-postgres, prepared hand-written SQL). For each route it prints
requests/s, p50 and p99, CPU per request of the service and of all PostgreSQL processes
(from /proc), and EERP/native, the median of RUNS runs.

    python3 tests/bench/compare.py            # builds both in release first

Environment: CONTACTS (rows seeded, default 100000), RUNS (3), BENCH_SECONDS (10 per run),
CONNECTIONS (32), PG (postgres://postgres@127.0.0.1:5432), ROUTES (comma-separated names,
default all), EERP_BIN (an `eerp` binary to measure instead of building one, to compare
two builds). Loopback only, bounded.
Needs wrk (installed with apt when run as root) and psql.
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG = os.environ.get("PG", "postgres://postgres@127.0.0.1:5432")
CONTACTS = int(os.environ.get("CONTACTS", "100000"))
RUNS = int(os.environ.get("RUNS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
ROUTES = [r for r in os.environ.get("ROUTES", "").split(",") if r]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def sh(*args, **kw):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kw).stdout


def psql(database, sql):
    return sh("psql", "-qAtX", "-v", "ON_ERROR_STOP=1", f"{PG}/{database}", "-c", sql).strip()


def ensure_wrk():
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update"], check=True, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    if not shutil.which("wrk"):
        sys.exit("install wrk (Debian: apt install wrk)")


def cpu_seconds(pids):
    """User + system CPU of `pids` so far, in seconds (gone processes count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / CLOCK_TICKS


def context_switches(pid):
    """Voluntary + involuntary context switches of every thread of `pid` so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def postgres_pids():
    out = subprocess.run(["pgrep", "-x", "postgres"], text=True, capture_output=True).stdout
    return [int(p) for p in out.split()]


def wait_for(url, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer")


def wrk(url, script, token):
    args = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", script]
    if token:
        args += ["-H", f"authorization: Bearer {token}"]
    out = sh(*args, url)
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(percent):
        m = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * unit[m.group(2)] if m else float("nan")

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency(50),
        "p99": latency(99),
        "requests": requests,
        "errors": int(errors.group(1)) if errors else 0,
    }


def measure(url, script, token, service_pid):
    pg = postgres_pids()
    before = (cpu_seconds([service_pid]), cpu_seconds(pg), context_switches(service_pid))
    result = wrk(url, script, token)
    pg_after = cpu_seconds(postgres_pids())
    n = max(result["requests"], 1)
    result["switches"] = (context_switches(service_pid) - before[2]) / n
    result["service_us"] = (cpu_seconds([service_pid]) - before[0]) / n * 1e6
    result["pg_us"] = (pg_after - before[1]) / n * 1e6
    return result


def scripts(folder, ids):
    """wrk scripts per route: (name, path, lua)."""
    id_list = ",".join(f'"{i}"' for i in ids)
    pick = f"ids = {{{id_list}}}\nfunction pick() return ids[math.random(#ids)] end\n"
    routes = {
        "get by id": (
            "/api/v1/crm/contacts/ID",
            pick + 'request = function() return wrk.format("GET", "/api/v1/crm/contacts/" .. pick()) end\n',
        ),
        "list of 20": (
            "/api/v1/crm/contacts?limit=20",
            'request = function() return wrk.format("GET", "/api/v1/crm/contacts?limit=20") end\n',
        ),
        "create": (
            "/api/v1/crm/contacts",
            "counter = 0\nthreads = 0\nsetup = function(thread) threads = threads + 1; thread:set('tid', os.time() * 10 + threads) end\n"
            'request = function()\n  counter = counter + 1\n'
            '  local body = string.format(\'{"name":"Bench %d","email":"b%d-%d@bench.test"}\', counter, tid or 0, counter)\n'
            '  return wrk.format("POST", "/api/v1/crm/contacts", nil, body)\nend\n',
        ),
        "update": (
            "/api/v1/crm/contacts/ID",
            pick + 'request = function()\n'
            '  return wrk.format("PATCH", "/api/v1/crm/contacts/" .. pick(), nil, \'{"phone":"+44 20 7946 0000"}\')\nend\n',
        ),
        "no data call": (
            "/api/v1/crm/contacts/validate",
            'request = function()\n'
            '  return wrk.format("POST", "/api/v1/crm/contacts/validate", nil, \'{"name":"  Ada Lovelace ","email":"ADA@example.com","credit_limit":"1500.00"}\')\nend\n',
        ),
    }
    out = []
    # -H headers live in wrk.headers; wrk.format(.., nil, ..) keeps them.
    json_body = 'wrk.headers["content-type"] = "application/json"\n'
    for name, (path, lua) in routes.items():
        lua = json_body + lua
        file = os.path.join(folder, name.replace(" ", "_") + ".lua")
        with open(file, "w") as f:
            f.write(lua)
        out.append((name, path, file))
    return out


def main():
    ensure_wrk()
    sh("cargo", "build", "--release", "-q", "-p", "eerp-platform", "-p", "eerp-native-baseline",
       "--bin", "eerp", "--bin", "eerp-native-baseline", cwd=ROOT)
    eerp = os.environ.get("EERP_BIN") or os.path.join(ROOT, "target/release/eerp")
    native = os.path.join(ROOT, "target/release/eerp-native-baseline")
    state = tempfile.mkdtemp()
    os.chmod(state, 0o755)  # eerp dev runs initdb as `postgres` when root
    database = f"eerp_compare_{os.getpid()}"
    psql("postgres", f"CREATE DATABASE {database}")
    procs = []
    try:
        env = dict(os.environ, RUST_LOG="warn")
        log = open(os.path.join(state, "dev.log"), "w")
        dev = subprocess.Popen([eerp, "dev", "--port", "18090", "--state-dir", f"{state}/eerp",
                                "--database-url", f"{PG}/{database}"], stdout=log, stderr=log, env=env)
        procs.append(dev)
        token = None
        for _ in range(300):
            text = open(os.path.join(state, "dev.log")).read()
            m = re.search(r"^export TOKEN=(\S+)", text, re.M)
            if m:
                token = m.group(1)
                break
            if dev.poll() is not None:
                sys.exit(text)
            time.sleep(0.2)
        operator = open(f"{state}/eerp/operator-token").read().strip()
        sh(eerp, "limits", "demo", "requests_per_second=1000000", "burst=1000000",
           f"max_concurrent_calls={CONNECTIONS * 2}",
           "--url", "http://127.0.0.1:18090", "--token", operator)
        psql(database, f"""INSERT INTO t_demo__crm.contacts (name, email, phone, company, status, credit_limit)
            SELECT 'Contact ' || n, 'c' || n || '@seed.test', '+1 555 ' || n, 'Company ' || (n % 1000),
                   (ARRAY['lead','prospect','customer','churned'])[1 + n % 4], (n % 10000)::numeric / 4
            FROM generate_series(1, {CONTACTS}) n;
            -- A list's default order; EERP does not create this index itself (yet).
            CREATE INDEX contacts_created_at_id ON t_demo__crm.contacts (created_at, id);
            ANALYZE t_demo__crm.contacts""")
        ids = psql(database, "SELECT id FROM t_demo__crm.contacts ORDER BY random() LIMIT 1000").split()
        baseline = subprocess.Popen([native], env=dict(os.environ, DATABASE_URL=f"{PG}/{database}",
                                    EERP_BENCH_SCHEMA="t_demo__crm", PORT="18100"))
        procs.append(baseline)
        wait_for("http://127.0.0.1:18100/api/v1/crm/contacts?limit=1")
        wait_for("http://127.0.0.1:18090/livez")
        rows = []
        for name, _path, script in scripts(state, ids):
            if ROUTES and name not in ROUTES:
                continue
            runs = {"native": [], "eerp": []}
            for _ in range(RUNS):
                runs["native"].append(measure("http://127.0.0.1:18100", script, None, baseline.pid))
                runs["eerp"].append(measure("http://127.0.0.1:18090", script, token, dev.pid))
            rows.append((name, {k: median_of(v) for k, v in runs.items()}))
        print_table(rows)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        psql("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(state, ignore_errors=True)


def median_of(results):
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def print_table(rows):
    print(f"\n{CONTACTS} contacts, wrk -t2 -c{CONNECTIONS} -d{SECONDS}s, median of {RUNS} runs\n")
    print("| route | | requests/s | p50 ms | p99 ms | service CPU/req µs | PostgreSQL CPU/req µs "
          "| service context switches/req | non-2xx |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        for side in ("native", "eerp"):
            m = r[side]
            print(f"| {name} | {side} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
                  f"{m['service_us']:.0f} | {m['pg_us']:.0f} | {m['switches']:.2f} | {m['errors']:.0f} |")
    print("\n| route | EERP/native requests/s |\n|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['eerp']['rps'] / r['native']['rps']:.2f} |")
    print(json.dumps({name: r for name, r in rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
