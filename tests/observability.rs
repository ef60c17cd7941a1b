//! The dashboards and alert rules under `dashboards/`, read for the tests that check them
//! against the service's real metrics (and, with the `prometheus-e2e` feature, a real
//! Prometheus).

use std::collections::BTreeSet;
use std::path::PathBuf;

use promql_parser::parser::{Expr, parse};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;

/// The `dashboards/` folder.
pub fn dashboards_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards"))
}

/// Every dashboard: (file name, JSON).
pub fn dashboards() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dashboards_dir()).expect("dashboards/ exists") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("readable");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            found.push((name, json));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every panel query: (dashboard, panel title, expression as written).
pub fn panel_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    for (name, dashboard) in dashboards() {
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default().to_string();
                queries.push((name.clone(), title.clone(), expr));
            }
        }
    }
    queries
}

/// Every alert rule: (alert name, expression). The rules file keeps each `expr` on one line.
pub fn alert_rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dashboards_dir().join("alerts/eerp.rules.yml"))
        .expect("the rules file exists");
    let mut rules = Vec::new();
    let mut alert = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert:") {
            alert = name.trim().to_string();
        } else if let Some(expr) = line.strip_prefix("expr:") {
            rules.push((alert.clone(), expr.trim().to_string()));
        }
    }
    rules
}

/// `expr` with Grafana's variables replaced so that it is plain PromQL.
pub fn concrete(expr: &str, rate_interval: &str, tenant: &str) -> String {
    expr.replace("$__rate_interval", rate_interval)
        .replace("$tenant", tenant)
}

/// The metric names `expr` selects.
///
/// # Panics
/// When `expr` is not valid PromQL.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(v) => Some(v),
                Expr::MatrixSelector(m) => Some(&m.vs),
                _ => None,
            };
            if let Some(name) = selector.and_then(|s| s.name.clone()) {
                self.0.insert(name);
            }
            Ok(true)
        }
    }
    let parsed = parse(expr).unwrap_or_else(|e| panic!("not PromQL: {expr}: {e}"));
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &parsed).unwrap_or_else(|e| panic!("{e}"));
    names.0
}

/// The app with the hostile module and tenant `acme` after [`drive_workload`], and a scrape
/// of its `/metrics` taken then.
pub async fn app_after_workload() -> (crate::TestApp, String) {
    let app = crate::spawn_app_with(crate::TestOptions {
        hostile: true,
        ..crate::TestOptions::default()
    })
    .await;
    app.create_tenant("acme").await;
    drive_workload(&app, "acme").await;
    let scrape = app.metrics().await;
    (app, scrape)
}

/// Traffic that makes every family the dashboards read have samples: CRM calls, the
/// hostile module's out-of-fuel loop and memory hog, and a burst over `tenant`'s rate.
pub async fn drive_workload(app: &crate::TestApp, tenant: &str) {
    use reqwest::Method;
    use serde_json::json;
    let slug = eerp_tenancy::id::TenantSlug::parse(tenant).expect("a valid slug");
    let token = app.token(&slug, &["admin"]);
    let contact = json!({"name": "Ada Lovelace"});
    let calls = [
        (Method::POST, "/api/v1/crm/contacts", Some(&contact)),
        (Method::GET, "/api/v1/crm/contacts", None),
        (Method::GET, "/api/v1/crm/contacts/stats", None),
        (Method::GET, "/api/v1/hostile/count", None),
        (Method::GET, "/api/v1/hostile/loop", None),
        (Method::GET, "/api/v1/hostile/hog", None),
    ];
    for (method, path, body) in calls {
        app.send(method, path, Some(&token), body).await;
    }
    let limits = json!({"limits": {"requests_per_second": 1, "burst": 1}});
    let path = format!("/tenants/{tenant}/limits");
    let (status, answer) = app.admin(Method::PUT, &path, Some(&limits)).await;
    assert_eq!(status, 200, "{answer}");
    for _ in 0..3 {
        app.send(Method::GET, "/api/v1/hostile/count", Some(&token), None)
            .await;
    }
    let (status, _) = app
        .admin(Method::PUT, &path, Some(&json!({"limits": {}})))
        .await;
    assert_eq!(status, 200);
}
