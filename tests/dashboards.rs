//! The dashboards and alert rules: Grafana lint rules, valid PromQL, and every metric they
//! read is one the service really exports (a renamed metric fails here).

use std::collections::BTreeSet;

use eerp_e2e::observability::{
    alert_rules, app_after_workload, concrete, dashboards, metric_names, panel_queries,
};

#[test]
fn dashboards_follow_the_house_rules() {
    let found = dashboards();
    assert_eq!(found.len(), 3, "overview, modules and tenant dashboards");
    let mut uids = BTreeSet::new();
    for (name, dashboard) in &found {
        assert_eq!(
            dashboard["uid"],
            name.as_str(),
            "{name}: the uid is the file name"
        );
        assert!(uids.insert(name.clone()));
        assert_eq!(
            dashboard["editable"], false,
            "{name}: provisioned read-only"
        );
        let variables = dashboard["templating"]["list"]
            .as_array()
            .expect("variables");
        assert!(
            variables.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: a `datasource` variable"
        );
        for panel in dashboard["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or_default();
            let described = panel["description"].as_str().is_some_and(|d| d.len() > 20);
            assert!(described, "{name}/{title}: a description");
            let unit = &panel["fieldConfig"]["defaults"]["unit"];
            assert!(
                unit.as_str().is_some_and(|u| !u.is_empty()),
                "{name}/{title}: a unit"
            );
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name}/{title}"
            );
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert_eq!(
                    target["datasource"]["uid"], "${datasource}",
                    "{name}/{title}"
                );
                if expr.contains("rate(") {
                    assert!(
                        expr.contains("[$__rate_interval]") && !expr.contains("m])"),
                        "{name}/{title}: rates over $__rate_interval only: {expr}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn every_metric_in_dashboards_and_alerts_is_exported() {
    let (_app, text) = app_after_workload().await;
    let mut exported = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split_whitespace().skip(2);
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        exported.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                exported.insert(format!("{name}{suffix}"));
            }
        }
    }
    // Prometheus's own series.
    exported.insert("up".into());

    let mut used = Vec::new();
    for (dashboard, title, expr) in panel_queries() {
        used.push((
            format!("{dashboard}/{title}"),
            concrete(&expr, "1m", "acme"),
        ));
    }
    for (alert, expr) in alert_rules() {
        used.push((format!("alert {alert}"), expr));
    }
    assert!(used.len() > 25, "all queries were found: {}", used.len());
    for (place, expr) in &used {
        for name in metric_names(expr) {
            assert!(
                exported.contains(&name),
                "{place} reads `{name}`, which /metrics does not export"
            );
        }
    }
}
