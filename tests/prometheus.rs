//! End to end with a real Prometheus (Debian's `prometheus` package): it scrapes the running
//! service on loopback while traffic flows, then every query of every dashboard panel must
//! parse and return data, and every alert expression must parse. `promtool` checks a real
//! scrape and the alert rules, and runs their unit tests.
//!
//! Needs `prometheus` and `promtool` on PATH, so it is behind a feature that `.ci/run`
//! turns on: `cargo test -p eerp-e2e --features prometheus-e2e --test prometheus`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eerp_e2e::observability::{
    alert_rules, app_after_workload, concrete, dashboards_dir, drive_workload, panel_queries,
};
use serde_json::Value;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dashboards_dir().join("alerts"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (apt install prometheus)");
    if let (Some(mut pipe), Some(text)) = (child.stdin.take(), stdin) {
        pipe.write_all(text.as_bytes())
            .expect("promtool reads stdin");
    }
    let output = child.wait_with_output().expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn query(client: &reqwest::Client, base: &str, expr: &str) -> Value {
    client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .expect("Prometheus answers")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn a_real_prometheus_answers_every_panel_and_alert_query() {
    let (app, scrape) = app_after_workload().await;

    // promtool on a real scrape and on the rules.
    let (ok, out) = promtool(&["check", "metrics"], Some(&scrape));
    assert!(ok && out.trim().is_empty(), "promtool check metrics: {out}");
    let (ok, out) = promtool(&["check", "rules", "eerp.rules.yml"], None);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "eerp.rules.test.yml"], None);
    assert!(ok, "{out}");

    // Prometheus scraping the app every second.
    let dir =
        std::env::temp_dir().join(format!("eerp-prometheus-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let target = app.ops_address.trim_start_matches("http://");
    let rules = dashboards_dir().join("alerts/eerp.rules.yml");
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         rule_files: ['{}']\n\
         scrape_configs:\n  - job_name: eerp\n    static_configs: [{{targets: ['{target}']}}]\n",
        rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("config written");
    let port = free_port();
    let _prometheus = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus is installed (apt install prometheus)");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = client.get(format!("{base}/-/ready")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            let up = query(&client, &base, r#"up{job="eerp"}"#).await;
            if up["data"]["result"][0]["value"][1] == "1" {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus never scraped the app"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The first scrapes promoted `acme` to its own tenant label; more traffic now, then
    // enough scrapes for rates over 30 s windows.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drive_workload(&app, "acme").await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    for (dashboard, title, expr) in panel_queries() {
        let expr = concrete(&expr, "30s", "acme");
        let answer = query(&client, &base, &expr).await;
        assert_eq!(
            answer["status"], "success",
            "{dashboard}/{title}: {expr}: {answer}"
        );
        // A series whose every value is NaN (0/0, a quantile of nothing) shows nothing.
        let finite = answer["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|series| series["value"][1].as_str())
            .any(|v| v.parse::<f64>().is_ok_and(f64::is_finite));
        assert!(
            finite,
            "{dashboard}/{title} shows nothing: {expr}: {answer}"
        );
    }
    for (alert, expr) in alert_rules() {
        let answer = query(&client, &base, &expr).await;
        assert_eq!(
            answer["status"], "success",
            "alert {alert}: {expr}: {answer}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
