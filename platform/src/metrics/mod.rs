//! Prometheus metrics: every family the platform exports, recorded on the request path
//! and rendered at `/metrics`.
//!
//! Names are in base units with the `eerp_` prefix and `_total` on counters. Labels are
//! bounded: `route` is a route template (from the module manifests and the HTTP table),
//! `module` a loaded module, `method` one of seven or `other`, `outcome` and `kind` fixed
//! sets. `tenant` appears on one family only, `eerp_tenant_invocations_total`, capped to N
//! tenants per replica plus `other` ([`top_tenants`]).
//!
//! - [`top_tenants`]: the capped tenant label.

pub mod top_tenants;

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::runtime::Outcome;
use top_tenants::TopTenants;

/// Every metric family of the process.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route template, method and status class.
    pub http_requests: IntCounterVec,
    /// HTTP latency by route template, method and status class.
    pub http_duration: HistogramVec,
    /// Module invocations by module and outcome.
    pub invocations: IntCounterVec,
    /// Thread CPU seconds while the module's wasm ran, by module.
    pub module_cpu: prometheus::CounterVec,
    /// Seconds spent in the host's data API (database included), by module.
    pub data_api_seconds: prometheus::CounterVec,
    /// Fuel consumed, by module.
    pub fuel: IntCounterVec,
    /// Invocations stopped by the sandbox, by module and kind.
    pub traps: IntCounterVec,
    /// Peak linear memory per invocation, by module.
    pub peak_memory: HistogramVec,
    /// Instantiation time per invocation, by module.
    pub instantiation: HistogramVec,
    /// Data API statement durations, by operation.
    pub query_duration: HistogramVec,
    /// Requests refused by admission control, by reason.
    pub rate_limited: IntCounterVec,
    /// Cache lookups by cache and result.
    pub cache_requests: IntCounterVec,
    /// Module versions loaded, by where their compiled code came from.
    pub module_loads: IntCounterVec,
    /// Tenants in the catalog by status.
    pub tenants: IntGaugeVec,
    /// Sandbox pool occupancy (wasmtime's pooling allocator), by resource.
    pub sandbox_pool: IntGaugeVec,
    /// Sandbox pool capacity (instance slots).
    pub sandbox_slots: IntGauge,
    /// Database pool connections by state (`open`, `in_use`, `idle`, `max`).
    pub db_pool: IntGaugeVec,
    /// Requests waiting for a database connection.
    pub db_pool_waiting: IntGauge,
    /// Catalog refreshes that failed.
    pub scrape_errors: IntCounter,
    /// 1 when the database answered the latest probe and modules are loaded.
    pub ready: IntGauge,
    /// Invocations by tenant (capped) and outcome.
    pub tenant_invocations: IntCounterVec,
    top: TopTenants,
    /// Serialises the catch-ups ([`Metrics::catch_up_cache`]): concurrent scrapes would add
    /// a delta twice.
    catch_up: std::sync::Mutex<()>,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"))
}

impl Metrics {
    /// Every family, registered. `top_tenants` caps the tenant label.
    ///
    /// # Panics
    /// Only on a programming error in the definitions below (a bad name or a name
    /// registered twice), which the unit tests exercise.
    pub fn new(top_tenants: usize) -> Self {
        let seconds = prometheus::exponential_buckets(0.000_5, 2.0, 15).unwrap_or_default();
        let metrics = Self {
            registry: Registry::new(),
            http_requests: counter(
                "eerp_http_requests_total",
                "HTTP requests by route template, method and status class.",
                &["route", "method", "status_class"],
            ),
            http_duration: histogram(
                "eerp_http_request_duration_seconds",
                "HTTP request latency in the service, from routing to the response.",
                &["route", "method", "status_class"],
                seconds.clone(),
            ),
            invocations: counter(
                "eerp_module_invocations_total",
                "Module invocations by module and outcome.",
                &["module", "outcome"],
            ),
            module_cpu: prometheus::CounterVec::new(
                Opts::new(
                    "eerp_module_cpu_seconds_total",
                    "Thread CPU seconds while the module call was polled (instantiation, wasm, host work in those polls); database waits excluded.",
                ),
                &["module"],
            )
            .unwrap_or_else(|e| panic!("eerp_module_cpu_seconds_total: {e}")),
            data_api_seconds: prometheus::CounterVec::new(
                Opts::new(
                    "eerp_module_data_api_seconds_total",
                    "Wall seconds modules spent in the host's data API, database included.",
                ),
                &["module"],
            )
            .unwrap_or_else(|e| panic!("eerp_module_data_api_seconds_total: {e}")),
            fuel: counter(
                "eerp_module_fuel_consumed_total",
                "Wasm fuel consumed by module invocations.",
                &["module"],
            ),
            traps: counter(
                "eerp_module_traps_total",
                "Invocations the sandbox stopped, by kind (out_of_fuel, memory_limit, timeout, stack_overflow, trap, bad_abi).",
                &["module", "kind"],
            ),
            peak_memory: histogram(
                "eerp_module_peak_memory_bytes",
                "Peak linear memory of one invocation.",
                &["module"],
                prometheus::exponential_buckets(65_536.0, 2.0, 12).unwrap_or_default(),
            ),
            instantiation: histogram(
                "eerp_module_instantiation_seconds",
                "Time to instantiate a module for one invocation.",
                &["module"],
                prometheus::exponential_buckets(0.000_002, 2.0, 14).unwrap_or_default(),
            ),
            query_duration: histogram(
                "eerp_db_query_duration_seconds",
                "Duration of data API statements, by operation.",
                &["op"],
                seconds,
            ),
            rate_limited: counter(
                "eerp_rate_limited_requests_total",
                "Requests refused by per-tenant admission, by reason (rate, concurrency).",
                &["reason"],
            ),
            cache_requests: counter(
                "eerp_cache_requests_total",
                "Cache lookups by cache (token, tenant) and result (hit, miss).",
                &["cache", "result"],
            ),
            module_loads: counter(
                "eerp_module_loads_total",
                "Module versions loaded, by where their compiled code came from (compiled: cranelift ran; catalog or memory: a kept artefact was deserialised).",
                &["code"],
            ),
            tenants: gauge(
                "eerp_tenants",
                "Tenants in the catalog by status.",
                &["status"],
            ),
            sandbox_pool: gauge(
                "eerp_sandbox_pool_in_use",
                "Sandbox pool slots in use (wasmtime pooling allocator), by resource (instances, memories, tables, stacks).",
                &["resource"],
            ),
            sandbox_slots: IntGauge::new(
                "eerp_sandbox_pool_slots",
                "Sandbox pool capacity: instances that can run at once.",
            )
            .unwrap_or_else(|e| panic!("eerp_sandbox_pool_slots: {e}")),
            db_pool: gauge(
                "eerp_db_pool_connections",
                "Database pool connections by state (open, in_use, idle, max).",
                &["state"],
            ),
            db_pool_waiting: IntGauge::new(
                "eerp_db_pool_waiting_requests",
                "Requests waiting for a database connection.",
            )
            .unwrap_or_else(|e| panic!("eerp_db_pool_waiting_requests: {e}")),
            scrape_errors: IntCounter::new(
                "eerp_metrics_scrape_errors_total",
                "Background catalog reads for metrics that failed (tenant counts are then stale).",
            )
            .unwrap_or_else(|e| panic!("eerp_metrics_scrape_errors_total: {e}")),
            ready: IntGauge::new(
                "eerp_ready",
                "1 when the database answered the latest readiness probe (as /readyz, every few seconds) and modules are loaded; else 0.",
            )
            .unwrap_or_else(|e| panic!("eerp_ready: {e}")),
            tenant_invocations: counter(
                "eerp_tenant_invocations_total",
                "Module invocations by tenant and outcome; up to N tenants per replica have their own label, the rest count as `other`.",
                &["tenant", "outcome"],
            ),
            top: TopTenants::new(top_tenants),
            catch_up: std::sync::Mutex::new(()),
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.http_requests.clone()),
            Box::new(self.http_duration.clone()),
            Box::new(self.invocations.clone()),
            Box::new(self.module_cpu.clone()),
            Box::new(self.data_api_seconds.clone()),
            Box::new(self.fuel.clone()),
            Box::new(self.traps.clone()),
            Box::new(self.peak_memory.clone()),
            Box::new(self.instantiation.clone()),
            Box::new(self.query_duration.clone()),
            Box::new(self.rate_limited.clone()),
            Box::new(self.cache_requests.clone()),
            Box::new(self.module_loads.clone()),
            Box::new(self.tenants.clone()),
            Box::new(self.sandbox_pool.clone()),
            Box::new(self.sandbox_slots.clone()),
            Box::new(self.db_pool.clone()),
            Box::new(self.db_pool_waiting.clone()),
            Box::new(self.scrape_errors.clone()),
            Box::new(self.ready.clone()),
            Box::new(self.tenant_invocations.clone()),
        ];
        for collector in collectors {
            if let Err(e) = self.registry.register(collector) {
                panic!("registering a metric family: {e}");
            }
        }
    }

    /// Creates every per-module series at zero, so each loaded module shows its CPU, fuel,
    /// outcome and trap series before its first call (and `rate()` sees the first one).
    pub fn register_modules(&self, modules: &[String]) {
        for module in modules {
            let module = module.as_str();
            for outcome in Outcome::ALL {
                self.invocations
                    .with_label_values(&[module, outcome.as_str()]);
                if is_trap(outcome.as_str()) {
                    self.traps.with_label_values(&[module, outcome.as_str()]);
                }
            }
            self.module_cpu.with_label_values(&[module]);
            self.data_api_seconds.with_label_values(&[module]);
            self.fuel.with_label_values(&[module]);
        }
    }

    /// Brings `eerp_cache_requests_total` up to `cache`'s own counts (hits, misses).
    pub fn catch_up_cache(&self, cache: &str, (hits, misses): (u64, u64)) {
        let totals = [([cache, "hit"], hits), ([cache, "miss"], misses)];
        self.catch_up_counters(&self.cache_requests, &totals);
    }

    /// Brings `eerp_module_loads_total` up to the registry's counts, by code source.
    pub fn catch_up_module_loads(&self, loads: &[(&str, u64)]) {
        let totals: Vec<_> = loads.iter().map(|&(code, n)| ([code], n)).collect();
        self.catch_up_counters(&self.module_loads, &totals);
    }

    /// Adds to each series of `family` what its total has grown by since the last scrape.
    fn catch_up_counters<const N: usize>(
        &self,
        family: &IntCounterVec,
        totals: &[([&str; N], u64)],
    ) {
        let _serial = match self.catch_up.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (labels, total) in totals {
            let counter = family.with_label_values(labels);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Records one request's module outcome for `module` and `tenant`.
    pub fn record_outcome(&self, module: &str, tenant: Option<&str>, outcome: Outcome) {
        let outcome = outcome.as_str();
        self.invocations.with_label_values(&[module, outcome]).inc();
        if let Some(tenant) = tenant {
            let label = self.top.label(tenant);
            self.tenant_invocations
                .with_label_values(&[label.as_str(), outcome])
                .inc();
        }
        if is_trap(outcome) {
            self.traps.with_label_values(&[module, outcome]).inc();
        }
    }

    /// Records what one module call used.
    pub fn record_usage(&self, module: &str, usage: &Usage) {
        self.module_cpu
            .with_label_values(&[module])
            .inc_by(usage.cpu.as_secs_f64());
        self.data_api_seconds
            .with_label_values(&[module])
            .inc_by(usage.data_api.as_secs_f64());
        self.fuel.with_label_values(&[module]).inc_by(usage.fuel);
        // No instance (the pool was full): nothing to say about memory or instantiation,
        // and zeros would drag the histograms down exactly when the pool saturates.
        if usage.instantiation.is_zero() {
            return;
        }
        self.peak_memory
            .with_label_values(&[module])
            .observe(usage.peak_memory_bytes as f64);
        self.instantiation
            .with_label_values(&[module])
            .observe(usage.instantiation.as_secs_f64());
    }

    /// The text exposition of every family. Promotes newly active tenants first, with
    /// their series created at 0, so their first calls count in `rate()` (a counter that
    /// appears with a value shows no increase).
    pub fn render(&self) -> String {
        for tenant in self.top.promote() {
            for outcome in Outcome::ALL {
                self.tenant_invocations
                    .with_label_values(&[tenant.as_str(), outcome.as_str()]);
            }
        }
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// What one module call used, for [`Metrics::record_usage`].
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Thread CPU while wasm ran.
    pub cpu: Duration,
    /// Time in the data API.
    pub data_api: Duration,
    /// Fuel consumed.
    pub fuel: u64,
    /// Peak linear memory.
    pub peak_memory_bytes: usize,
    /// Instantiation time.
    pub instantiation: Duration,
}

impl Usage {
    /// What one module call used.
    pub fn of(report: &crate::runtime::InvokeReport) -> Self {
        Self {
            cpu: report.cpu_time,
            data_api: report.usage.host_time,
            fuel: report.fuel_used,
            peak_memory_bytes: report.peak_memory_bytes,
            instantiation: report.instantiate_time,
        }
    }
}

/// Outcomes where the sandbox stopped the module.
fn is_trap(outcome: &str) -> bool {
    matches!(
        outcome,
        "out_of_fuel"
            | "memory_limit"
            | "timeout"
            | "stack_overflow"
            | "trap"
            | "bad_abi"
            | "event_limit"
    )
}

/// `2xx`, `4xx`, ... for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_registers_and_renders_with_the_eerp_prefix() {
        let metrics = Metrics::new(3);
        metrics.record_outcome("crm", Some("acme"), Outcome::OutOfFuel);
        metrics
            .http_requests
            .with_label_values(&["/livez", "GET", "2xx"])
            .inc();
        let text = metrics.render();
        assert!(
            text.contains(r#"eerp_module_invocations_total{module="crm",outcome="out_of_fuel"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"eerp_module_traps_total{kind="out_of_fuel",module="crm"} 1"#),
            "{text}"
        );
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split_whitespace().nth(2).unwrap_or_default();
            assert!(name.starts_with("eerp_"), "{line}");
            if line.ends_with("counter") {
                assert!(name.ends_with("_total"), "{line}");
            }
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
