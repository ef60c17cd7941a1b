"""Writes the Grafana dashboards in this folder: edit here, run `python3 dashboards/generate.py`,
commit the JSON. `cargo test` lints the result and checks every metric it uses."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
def panel(i, title, desc, unit, targets, x, y, w=12, h=8):
    return {
        "id": i, "type": "timeseries", "title": title, "description": desc,
        "datasource": DS, "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(65 + n), "expr": e, "legendFormat": l, "datasource": DS}
                    for n, (e, l) in enumerate(targets)],
    }
def dashboard(uid, title, desc, panels, extra_vars=()):
    return {
        "uid": uid, "title": title, "description": desc, "editable": False,
        "schemaVersion": 39, "version": 1, "tags": ["eerp"], "timezone": "utc",
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
        "templating": {"list": [{
            "name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1}] + list(extra_vars)},
        "annotations": {"list": []}, "links": [], "panels": panels,
    }
def grid(specs):
    out = []
    for n, s in enumerate(specs):
        out.append(panel(n + 1, *s, x=(n % 2) * 12, y=(n // 2) * 8))
    return out
R = "[$__rate_interval]"
overview = dashboard("eerp-overview", "EERP / Platform overview",
    "Is the platform healthy and is it saturated? Requests, latency, outcomes, pools, caches, tenants.", grid([
    ("Requests by status class", "HTTP requests per second of every route, by status class (2xx, 4xx, 5xx).", "reqps",
     [(f"sum by (status_class) (rate(eerp_http_requests_total{R}))", "{{status_class}}")]),
    ("Module route latency", "p50 and p99 latency of /api/v1 module routes (fast 4xx answers left out), measured around the handler.", "s",
     [(f'histogram_quantile(0.5, sum by (le) (rate(eerp_http_request_duration_seconds_bucket{{route=~"/api/.*",status_class!="4xx"}}{R})))', "p50"),
      (f'histogram_quantile(0.99, sum by (le) (rate(eerp_http_request_duration_seconds_bucket{{route=~"/api/.*",status_class!="4xx"}}{R})))', "p99")]),
    ("Module outcomes", "Module invocations per second by outcome (ok, module_error, out_of_fuel, timeout, rate_limited, ...).", "ops",
     [(f"sum by (outcome) (rate(eerp_module_invocations_total{R}))", "{{outcome}}")]),
    ("Sandbox pool", "Sandbox instances in use against the pool's slots, summed over replicas. Full pool = 503 pool-exhausted.", "short",
     [('sum(eerp_sandbox_pool_in_use{resource="instances"})', "in use"), ("sum(eerp_sandbox_pool_slots)", "slots")]),
    ("Database pool", "Connections by state (open, idle, max) and requests waiting for one, summed over replicas.", "short",
     [("sum by (state) (eerp_db_pool_connections)", "{{state}}"), ("sum(eerp_db_pool_waiting_requests)", "waiting")]),
    ("Rate-limited requests", "Requests refused with 429 by per-tenant admission, by reason (rate, concurrency).", "reqps",
     [(f"sum by (reason) (rate(eerp_rate_limited_requests_total{R}))", "{{reason}}")]),
    ("Cache hit ratio", "Share of lookups answered from the per-replica caches (verified tokens, tenant entries).", "percentunit",
     [(f'sum by (cache) (rate(eerp_cache_requests_total{{result="hit"}}{R})) / sum by (cache) (rate(eerp_cache_requests_total{R}))', "{{cache}}")]),
    ("Tenants by status", "Tenants in the catalog by status (one replica's count; all replicas read the same catalog).", "short",
     [("max by (status) (eerp_tenants)", "{{status}}")]),
    ("Ready replicas", "Replicas whose database answered and that have modules loaded (eerp_ready), against replicas scraped.", "short",
     [("sum(eerp_ready)", "ready"), ("count(eerp_ready)", "scraped")]),
    ("Data API statement latency", "p99 duration of the data API's SQL statements by operation.", "s",
     [(f"histogram_quantile(0.99, sum by (le, op) (rate(eerp_db_query_duration_seconds_bucket{R})))", "{{op}}")]),
]))
modules = dashboard("eerp-modules", "EERP / Module runtime",
    "Which module burns CPU, traps, hits limits or slows down.", grid([
    ("CPU by module", "CPU cores used while module wasm runs (thread CPU time; database waits excluded).", "short",
     [(f"sum by (module) (rate(eerp_module_cpu_seconds_total{R}))", "{{module}}")]),
    ("Data API time by module", "Seconds per second modules spend in the host's data API, database included.", "short",
     [(f"sum by (module) (rate(eerp_module_data_api_seconds_total{R}))", "{{module}}")]),
    ("Fuel by module", "Wasm fuel consumed per second (about one unit per instruction).", "short",
     [(f"sum by (module) (rate(eerp_module_fuel_consumed_total{R}))", "{{module}}")]),
    ("Traps by module and kind", "Calls the sandbox stopped per second: out_of_fuel, memory_limit, timeout, stack_overflow, trap, bad_abi.", "ops",
     [(f"sum by (module, kind) (rate(eerp_module_traps_total{R}))", "{{module}} {{kind}}")]),
    ("Outcomes by module", "Module invocations per second by module and outcome.", "ops",
     [(f"sum by (module, outcome) (rate(eerp_module_invocations_total{R}))", "{{module}} {{outcome}}")]),
    ("CPU per call", "Average CPU seconds per call that ran (requests refused before running not counted), by module.", "s",
     [(f'sum by (module) (rate(eerp_module_cpu_seconds_total{R})) / sum by (module) (rate(eerp_module_invocations_total{{outcome!~"rate_limited|pool_exhausted"}}{R}))', "{{module}}")]),
    ("Peak memory p95", "95th percentile of a call's peak linear memory, by module.", "bytes",
     [(f"histogram_quantile(0.95, sum by (le, module) (rate(eerp_module_peak_memory_bytes_bucket{R})))", "{{module}}")]),
    ("Instantiation p99", "99th percentile of the time to instantiate a module for a call.", "s",
     [(f"histogram_quantile(0.99, sum by (le, module) (rate(eerp_module_instantiation_seconds_bucket{R})))", "{{module}}")]),
]))
tenant_var = {"name": "tenant", "label": "Tenant", "type": "query", "datasource": DS,
    "definition": "label_values(eerp_tenant_invocations_total, tenant)",
    "query": {"query": "label_values(eerp_tenant_invocations_total, tenant)", "refId": "tenant"},
    "refresh": 2, "includeAll": False, "multi": False, "sort": 1, "current": {}, "hide": 0}
tenant = dashboard("eerp-tenant", "EERP / Tenant drill-down",
    "One tenant's calls, failures and rejections. Only the first N active tenants of each replica have their own label; the rest are `other`.", grid([
    ("Calls by outcome", "Module invocations per second of $tenant by outcome.", "ops",
     [(f'sum by (outcome) (rate(eerp_tenant_invocations_total{{tenant="$tenant"}}{R}))', "{{outcome}}")]),
    ("Failure ratio", "Share of $tenant's calls that did not end ok (module errors, limits, traps, rejections).", "percentunit",
     [(f'sum(rate(eerp_tenant_invocations_total{{tenant="$tenant",outcome!="ok"}}{R})) / sum(rate(eerp_tenant_invocations_total{{tenant="$tenant"}}{R}))', "failures")]),
    ("Limits hit", "Calls of $tenant per second stopped by its limits: fuel, memory, wall time, rate and concurrency.", "ops",
     [(f'sum by (outcome) (rate(eerp_tenant_invocations_total{{tenant="$tenant",outcome=~"out_of_fuel|memory_limit|timeout|rate_limited"}}{R}))', "{{outcome}}")]),
    ("Most active tenants", "The ten labels with the most calls per second (tenants without their own label are `other`).", "ops",
     [(f"topk(10, sum by (tenant) (rate(eerp_tenant_invocations_total{R})))", "{{tenant}}")]),
]), extra_vars=[tenant_var])
for name, d in [("eerp-overview", overview), ("eerp-modules", modules), ("eerp-tenant", tenant)]:
    with open(os.path.join(HERE, f"{name}.json"), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")

