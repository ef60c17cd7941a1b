//! `/metrics` after scripted workloads: counters move exactly as the requests say, for the
//! right module, outcome and tenant; module CPU follows the work done, not the waiting.

use std::collections::HashMap;
use std::time::Duration;

use eerp_e2e::{TestApp, TestOptions, spawn_app_with};
use eerp_tenancy::Limits;
use reqwest::Method;
use serde_json::json;

/// One scrape: `name{labels}` (labels sorted, as the exposition writes them) -> value.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let text = app.metrics().await;
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(scrape: &HashMap<String, f64>, series: &str) -> f64 {
    scrape.get(series).copied().unwrap_or(0.0)
}

async fn hostile_app() -> TestApp {
    spawn_app_with(TestOptions {
        hostile: true,
        ..TestOptions::default()
    })
    .await
}

async fn get(app: &TestApp, token: &str, route: &str) -> u16 {
    let path = format!("/api/v1/hostile{route}");
    app.send(Method::GET, &path, Some(token), None)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_scripted_workload_moves_exactly_the_expected_series() {
    let app = hostile_app().await;
    let fresh = scrape(&app).await;
    for module in ["crm", "hostile"] {
        for series in [
            format!(r#"eerp_module_cpu_seconds_total{{module="{module}"}}"#),
            format!(r#"eerp_module_fuel_consumed_total{{module="{module}"}}"#),
            format!(r#"eerp_module_traps_total{{kind="trap",module="{module}"}}"#),
        ] {
            assert_eq!(
                fresh.get(&series),
                Some(&0.0),
                "{series} exists from the start"
            );
        }
    }
    let acme = app.admin_of("acme").await;
    let bursty = app.admin_of("bursty").await;
    let limits = json!({"limits": {"requests_per_second": 1, "burst": 2}});
    let (status, _) = app
        .admin(Method::PUT, "/tenants/bursty/limits", Some(&limits))
        .await;
    assert_eq!(status, 200);

    for _ in 0..3 {
        assert_eq!(get(&app, &acme, "/count").await, 200);
    }
    assert_eq!(get(&app, &acme, "/loop").await, 500);
    assert_eq!(get(&app, &acme, "/hog").await, 500);
    let burst: Vec<u16> =
        futures_util::future::join_all((0..5).map(|_| get(&app, &bursty, "/count"))).await;
    // Two fit the burst; the rest are refused unless a second passed meanwhile (a slow
    // machine), so the counters are compared with what the client saw.
    let refused = burst.iter().filter(|s| **s == 429).count() as f64;
    assert!(refused >= 1.0, "{burst:?}");
    let admitted = 5.0 - refused;

    // Tenant counts are read in the background (every 100 ms in tests).
    let started = std::time::Instant::now();
    let mut m = scrape(&app).await;
    while value(&m, r#"eerp_tenants{status="active"}"#) != 2.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tenant counts never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = scrape(&app).await;
    }
    let inv = |outcome: &str| {
        value(
            &m,
            &format!(r#"eerp_module_invocations_total{{module="hostile",outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(
        inv("ok"),
        3.0 + admitted,
        "3 from acme, the rest from bursty's burst"
    );
    assert_eq!(inv("out_of_fuel"), 1.0);
    assert_eq!(inv("memory_limit"), 1.0);
    assert_eq!(inv("rate_limited"), refused);
    assert_eq!(inv("trap"), 0.0);
    assert_eq!(
        value(
            &m,
            r#"eerp_module_invocations_total{module="crm",outcome="ok"}"#
        ),
        0.0
    );
    let trap = |kind: &str| {
        value(
            &m,
            &format!(r#"eerp_module_traps_total{{kind="{kind}",module="hostile"}}"#),
        )
    };
    assert_eq!((trap("out_of_fuel"), trap("memory_limit")), (1.0, 1.0));
    assert_eq!(
        value(&m, r#"eerp_rate_limited_requests_total{reason="rate"}"#),
        refused
    );
    let count_route = r#"eerp_http_requests_total{method="GET",route="/api/v1/hostile/count",status_class="2xx"}"#;
    assert_eq!(value(&m, count_route), 3.0 + admitted);
    let limited = r#"eerp_http_requests_total{method="GET",route="/api/v1/hostile/count",status_class="4xx"}"#;
    assert_eq!(value(&m, limited), refused);
    let fuel = value(&m, r#"eerp_module_fuel_consumed_total{module="hostile"}"#);
    assert!(
        fuel >= Limits::default().fuel_per_request as f64,
        "the loop alone used it all"
    );
    assert!(value(&m, r#"eerp_module_cpu_seconds_total{module="hostile"}"#) > 0.0);
    assert_eq!(
        value(
            &m,
            r#"eerp_module_peak_memory_bytes_count{module="hostile"}"#
        ),
        5.0 + admitted,
        "every call that got an instance"
    );
    assert_eq!(
        value(
            &m,
            r#"eerp_db_query_duration_seconds_count{op="aggregate"}"#
        ),
        3.0 + admitted
    );
    // Before the first scrape no tenant had its own label yet.
    let other_ok = r#"eerp_tenant_invocations_total{outcome="ok",tenant="other"}"#;
    assert_eq!(value(&m, other_ok), 3.0 + admitted);

    // The scrape promoted both (the cap is 20): from now on they count under their names.
    assert_eq!(get(&app, &acme, "/count").await, 200);
    let m = scrape(&app).await;
    assert_eq!(
        value(
            &m,
            r#"eerp_tenant_invocations_total{outcome="ok",tenant="acme"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&m, other_ok),
        3.0 + admitted,
        "other keeps what came before"
    );
    assert_eq!(
        value(
            &m,
            r#"eerp_module_invocations_total{module="hostile",outcome="ok"}"#
        ),
        4.0 + admitted
    );
}

async fn cpu_seconds(app: &TestApp) -> f64 {
    value(
        &scrape(app).await,
        r#"eerp_module_cpu_seconds_total{module="hostile"}"#,
    )
}

#[tokio::test]
async fn module_cpu_follows_the_work_and_not_the_database_wait() {
    let app = hostile_app().await;
    let token = app.admin_of("acme").await;
    // `/loop` spins until its fuel runs out: four times the fuel, about four times the CPU.
    let mut per_fuel = Vec::new();
    for fuel in [20_000_000u64, 80_000_000] {
        let limits = json!({"limits": {"fuel_per_request": fuel}});
        app.admin(Method::PUT, "/tenants/acme/limits", Some(&limits))
            .await;
        let before = cpu_seconds(&app).await;
        assert_eq!(get(&app, &token, "/loop").await, 500);
        per_fuel.push(cpu_seconds(&app).await - before);
    }
    let ratio = per_fuel[1] / per_fuel[0];
    assert!(
        (2.0..8.0).contains(&ratio),
        "CPU {per_fuel:?} for 4x the fuel"
    );

    // `/lock` waits on a row another session holds: a second of waiting, little CPU.
    let created = app
        .send(
            Method::POST,
            "/api/v1/hostile/write",
            Some(&token),
            Some(&json!({"note": "x"})),
        )
        .await;
    let row: serde_json::Value = created.json().await.unwrap();
    let id = row["ok"]["id"].as_str().unwrap().to_string();
    let mut holder = app.state.pool.get().await.unwrap();
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM t_acme__hostile.probes WHERE id = $1::text::uuid FOR UPDATE",
        &[&id],
    )
    .await
    .unwrap();
    let before = cpu_seconds(&app).await;
    let body = json!({"id": id});
    let waiting = app.send(
        Method::POST,
        "/api/v1/hostile/lock",
        Some(&token),
        Some(&body),
    );
    let blocked = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
        app.database
    );
    let release = async {
        // The second of waiting starts once the module's statement waits on the lock.
        let started = std::time::Instant::now();
        while app.scalar(&blocked).await == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the call never waited"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.rollback().await.unwrap();
    };
    let (response, ()) = tokio::join!(waiting, release);
    assert_eq!(response.status(), 200);
    let waited_cpu = cpu_seconds(&app).await - before;
    assert!(
        waited_cpu < 0.1,
        "{waited_cpu} s of CPU for a request that waited 1 s"
    );
    assert!(
        waited_cpu < per_fuel[0],
        "waiting costs less than computing"
    );
    let m = scrape(&app).await;
    assert!(
        value(
            &m,
            r#"eerp_module_data_api_seconds_total{module="hostile"}"#
        ) >= 0.9
    );
}

/// Paths under `/api/v1` are split into module and route by the host, not by a pattern:
/// those that name no module, an unknown one or no route of a known one are 404
/// problems, a module route still matches, and none of the misses turns the caller's path
/// into a label value.
#[tokio::test]
async fn module_paths_that_match_nothing_are_404_problems_under_bounded_labels() {
    let app = hostile_app().await;
    let acme = app.admin_of("acme").await;
    for (path, problem) in [
        ("/api/v1", "not-found"),
        ("/api/v1/", "not-found"),
        ("/api/v1//count", "not-found"),
        ("/api/v1/made-up-module/x", "unknown-module"),
        ("/api/v1/hostile/no/such/route", "not-found"),
    ] {
        let response = app.send(Method::GET, path, Some(&acme), None).await;
        assert_eq!(response.status().as_u16(), 404, "{path}");
        let body: serde_json::Value = response.json().await.expect("a problem body");
        assert_eq!(
            body["type"],
            format!("https://eerp.dev/problems/{problem}"),
            "{path}: {body}"
        );
    }
    assert_eq!(get(&app, &acme, "/count").await, 200);
    let m = scrape(&app).await;
    let routes: Vec<&str> = m
        .keys()
        .filter(|series| series.starts_with("eerp_http_requests_total{"))
        .filter_map(|series| series.split("route=\"").nth(1)?.split('"').next())
        .collect();
    assert!(routes.contains(&"/api/v1/hostile/count"), "{routes:?}");
    assert!(routes.contains(&"/api/v1/{module}/unmatched"), "{routes:?}");
    for leaked in ["made-up-module", "no/such/route", "//count"] {
        assert!(
            routes.iter().all(|route| !route.contains(leaked)),
            "a path became a label: {routes:?}"
        );
    }
}
