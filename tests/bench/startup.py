#!/usr/bin/env python3
"""How long a replica takes to be ready, and to load another replica's upload
(docs/performance.md, "Build and test times" and ADR 023).

On a new database of PostgreSQL at PG: starts `eerp serve` (with an artefact key) with
the four built-in modules and times from the process start to `/readyz` answering 200,
first on an empty catalog (every module compiled, as every start was before kept code),
then RUNS more times (their compiled code kept in the catalog). Then, with two replicas up, uploads a module (tests' seed module, or MODULE) to
the first and times until the second has loaded it, reading how from its metrics.

    python3 tests/bench/startup.py                      # target/debug/eerp
    EERP_BIN=target/release/eerp python3 tests/bench/startup.py

Environment: EERP_BIN, PG (postgres://postgres@127.0.0.1:5432), RUNS (5), MODULE (a
.wasm with a manifest). Loopback only; the database is dropped at the end.
"""

import base64
import glob
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

BIN = os.environ.get("EERP_BIN", "target/debug/eerp")
PG = os.environ.get("PG", "postgres://postgres@127.0.0.1:5432")
RUNS = int(os.environ.get("RUNS", "5"))
ISSUER, SECRET = "https://bench.invalid", "startup-bench-secret-startup-bench-secret"
ARTIFACT_KEY = "startup-bench-artifact-key-startup-bench-artifact-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def operator_token():
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "eerp-admin", "sub": "bench", "roles": ["operator"],
              "iat": now, "exp": now + 600}
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def get(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


class Replica:
    def __init__(self, database_url):
        self.port, self.ops = free_port(), free_port()
        env = dict(os.environ, RUST_LOG="warn", DATABASE_URL=database_url,
                   EERP_JWT_HS256_SECRET=SECRET, EERP_ARTIFACT_KEY=ARTIFACT_KEY)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [BIN, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--ops-port", str(self.ops), "--jwt-issuer", ISSUER, "--jwt-algorithms", "HS256"],
            env=env, stdout=subprocess.DEVNULL)

    def wait_ready(self):
        deadline = self.started + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"eerp serve exited with {self.process.returncode}")
            if get(f"http://127.0.0.1:{self.ops}/readyz")[0] == 200:
                return time.monotonic() - self.started
            time.sleep(0.005)
        sys.exit("eerp serve was not ready within 300 s")

    def loads(self):
        _, text = get(f"http://127.0.0.1:{self.ops}/metrics")
        counts = {}
        for line in text.splitlines():
            if line.startswith("eerp_module_loads_total{"):
                code = line.split('code="', 1)[1].split('"', 1)[0]
                counts[code] = int(float(line.rsplit(" ", 1)[1]))
        return counts

    def stop(self):
        self.process.send_signal(2)
        self.process.wait(timeout=60)


def psql(sql):
    subprocess.run(["psql", f"{PG}/postgres", "-qc", sql], check=True)


def main():
    module = os.environ.get("MODULE") or next(iter(sorted(glob.glob(
        "target/guests/wasm32-unknown-unknown/wasm-guest/eerp_guest_hostile.wasm"))), None)
    database = f"eerp_startup_{os.getpid()}"
    psql(f"CREATE DATABASE {database}")
    url = f"{PG}/{database}"
    try:
        ready = []
        for run in range(RUNS + 1):
            replica = Replica(url)
            seconds = replica.wait_ready()
            loads = replica.loads()
            replica.stop()
            ready.append(seconds)
            print(f"start {run + 1}: ready in {seconds * 1000:.0f} ms, modules {loads}")
        print(f"{BIN}: first start (compiling) {ready[0] * 1000:.0f} ms; "
              f"with kept code, median of {RUNS} {statistics.median(ready[1:]) * 1000:.0f} ms")
        if not module:
            print("no module to upload (build the tests first, or set MODULE)")
            return
        first, second = Replica(url), Replica(url)
        first.wait_ready()
        second.wait_ready()
        before = sum(second.loads().values())
        with open(module, "rb") as f:
            wasm = f.read()
        request = urllib.request.Request(
            f"http://127.0.0.1:{first.port}/admin/v1/modules", data=wasm, method="POST",
            headers={"authorization": f"Bearer {operator_token()}",
                     "content-type": "application/wasm"})
        sent = time.monotonic()
        with urllib.request.urlopen(request, timeout=120) as answer:
            stored = time.monotonic()
            print(f"upload of {os.path.basename(module)} to replica 1: {answer.status} in "
                  f"{(stored - sent) * 1000:.0f} ms (checks, compile, dry run)")
        while sum(second.loads().values()) == before:
            if time.monotonic() - sent > 120:
                sys.exit("replica 2 did not load the upload within 120 s")
            time.sleep(0.005)
        print(f"replica 2 loaded it {(time.monotonic() - stored) * 1000:.0f} ms after the "
              f"upload was answered; its loads: {second.loads()}")
        first.stop()
        second.stop()
    finally:
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
