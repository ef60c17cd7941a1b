//! `eerp dev` as a new user runs it: from an empty state directory, without
//! `DATABASE_URL`, the `curl` lines it prints create, list, update, delete and restore a
//! contact, and Ctrl-C stops the server and its private PostgreSQL. Then the README's
//! operator walk-through with the `eerp` CLI against it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

struct DevServer {
    /// Held while this server runs (see [`ONE_AT_A_TIME`]).
    _serial: std::sync::MutexGuard<'static, ()>,
    child: Child,
    base: String,
    /// Where `/metrics` is served (the operations port).
    ops: String,
    state_dir: std::path::PathBuf,
    token: String,
    curls: Vec<String>,
}

/// One `eerp dev` at a time: each starts a private PostgreSQL, and starting several at
/// once on the 2-core CI machine made one fail to start now and then.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn start(state_dir: &Path) -> DevServer {
    let serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_eerp"))
        .args(["dev", "--port", "0", "--state-dir"])
        .arg(state_dir)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the eerp binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut token = String::new();
    let mut base = String::new();
    let mut ops = String::new();
    let mut curls = Vec::new();
    loop {
        let line = received
            .recv_timeout(Duration::from_secs(180))
            .expect("eerp dev prints its welcome within 3 minutes");
        if let Some(rest) = line.strip_prefix("EERP dev server on ") {
            base = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        } else if let Some(rest) = line.strip_prefix("Metrics and readiness on ") {
            ops = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches("/metrics")
                .to_string();
        } else if let Some(value) = line.strip_prefix("export TOKEN=") {
            token = value.to_string();
        } else if line.starts_with("curl ") {
            curls.push(line);
        } else if line.starts_with("(replace ID") {
            break;
        }
    }
    DevServer {
        child,
        base,
        ops,
        state_dir: state_dir.to_path_buf(),
        token,
        curls,
        _serial: serial,
    }
}

impl DevServer {
    /// Runs the printed line that contains `marker`, with `ID` replaced.
    fn run(&self, marker: &str, id: &str) -> Value {
        let line = self
            .curls
            .iter()
            .find(|line| line.contains(marker))
            .unwrap_or_else(|| {
                panic!("no printed curl line contains `{marker}`: {:?}", self.curls)
            });
        let line = line.replace("/contacts/ID", &format!("/contacts/{id}"));
        let output = Command::new("sh")
            .args(["-c", &line])
            .env("TOKEN", &self.token)
            .output()
            .expect("sh and curl run");
        assert!(output.status.success(), "`{line}` failed: {output:?}");
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    /// Runs `eerp <args>` against this server; returns success and stdout + stderr.
    fn eerp(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_eerp"))
            .args(args)
            .args(["--url", &self.base])
            .env("EERP_STATE_DIR", &self.state_dir)
            .env_remove("EERP_OPERATOR_TOKEN")
            .output()
            .expect("the eerp binary runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// `curl`s `path` with `token`; returns the status and the JSON answer.
    fn call(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
        let mut command = Command::new("curl");
        command
            .args(["-s", "-X", method, "-w", "\n%{http_code}"])
            .arg(format!("{}{path}", self.base))
            .args(["-H", &format!("authorization: Bearer {token}")]);
        if let Some(body) = body {
            command.args(["-H", "content-type: application/json", "-d", body]);
        }
        let output = command.output().expect("curl runs");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let (json, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(json).unwrap_or(Value::Null),
        )
    }

    fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill runs");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("eerp dev did not stop within 60 s of Ctrl-C");
    }
}

#[test]
fn printed_curl_lines_work_and_ctrl_c_stops_everything() {
    let state_dir = std::env::temp_dir().join(format!("eerp-dev-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let mut server = start(&state_dir);

    let created = server.run("-X POST", "");
    let id = created["id"]
        .as_str()
        .expect("create answers the contact")
        .to_string();
    assert_eq!(created["credit_limit"], "1500.00");

    let listed = server.run("contacts?limit=10", "");
    assert!(
        listed["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|c| c["id"] == id.as_str()))
    );

    let updated = server.run("-X PATCH", &id);
    assert_eq!(updated["status"], "customer");

    assert_eq!(
        server.run("-X DELETE", &id),
        Value::Null,
        "delete answers 204"
    );
    let listed = server.run("contacts?limit=10", "");
    assert!(
        listed["data"]
            .as_array()
            .is_some_and(|d| d.iter().all(|c| c["id"] != id.as_str()))
    );

    let restored = server.run("/restore", &id);
    assert_eq!(restored["id"], id.as_str());
    assert_eq!(restored["deleted_at"], Value::Null);

    let stats = server.run("/stats", "");
    assert_eq!(stats["by_status"][0]["values"]["count"], 1);

    // The README's metrics check: CPU, fuel and trap series of the module after traffic.
    let metrics = Command::new("curl")
        .args(["-s", &format!("{}/metrics", server.ops)])
        .output()
        .expect("curl runs");
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    for family in [
        "eerp_module_cpu_seconds_total{module=\"crm\"}",
        "eerp_module_fuel_consumed_total{module=\"crm\"}",
        "eerp_module_traps_total{kind=\"out_of_fuel\",module=\"crm\"}",
        "eerp_module_invocations_total{module=\"crm\",outcome=\"ok\"}",
    ] {
        assert!(metrics.contains(family), "/metrics lacks {family}");
    }
    let fuel_line = metrics
        .lines()
        .find(|l| l.starts_with("eerp_module_fuel_consumed_total{module=\"crm\"}"))
        .unwrap_or_default();
    assert!(
        !fuel_line.ends_with(" 0"),
        "the calls above consumed fuel: {fuel_line}"
    );

    let status = server.interrupt();
    assert!(
        status.success(),
        "eerp dev exits cleanly on Ctrl-C: {status}"
    );
    assert!(
        !state_dir.join("pgdata/postmaster.pid").exists(),
        "the private PostgreSQL was stopped"
    );
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// The README's operator walk-through: two tenants made with the CLI, each sees only its
/// own contacts, suspension gives 403, and a lowered fuel limit fails one tenant's heavy
/// route while the other is unaffected.
#[test]
fn the_operator_cli_walk_through_from_the_readme() {
    let state_dir = std::env::temp_dir().join(format!("eerp-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let mut server = start(&state_dir);
    let dir = state_dir.to_str().expect("a UTF-8 temp dir");

    for slug in ["acme", "globex"] {
        let (ok, out) = server.eerp(&["tenant", "create", slug]);
        assert!(ok, "tenant create {slug}: {out}");
        assert!(out.contains("\"status\": \"active\""), "{out}");
    }
    let token = |tenant: &str| {
        let (ok, out) = server.eerp(&["token", "--tenant", tenant, "--state-dir", dir]);
        assert!(ok, "token: {out}");
        out.trim().to_string()
    };
    let (acme, globex) = (token("acme"), token("globex"));
    let contacts = "/api/v1/crm/contacts";
    let (status, _) = server.call("POST", contacts, &acme, Some(r#"{"name":"Ada Lovelace"}"#));
    assert_eq!(status, 201);
    let (status, _) = server.call(
        "POST",
        contacts,
        &globex,
        Some(r#"{"name":"Grace Hopper"}"#),
    );
    assert_eq!(status, 201);
    let (_, listed) = server.call("GET", contacts, &acme, None);
    let names: Vec<&str> = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Ada Lovelace"], "acme sees only its own contacts");

    let (ok, out) = server.eerp(&["tenant", "suspend", "globex"]);
    assert!(ok, "{out}");
    let (status, problem) = server.call("GET", contacts, &globex, None);
    assert_eq!(status, 403, "{problem}");
    let (ok, out) = server.eerp(&["tenant", "resume", "globex"]);
    assert!(ok, "{out}");

    let (ok, out) = server.eerp(&["limits", "globex", "fuel_per_request=20000"]);
    assert!(ok, "{out}");
    let heavy = "/api/v1/crm/contacts/duplicates";
    let (status, problem) = server.call("GET", heavy, &globex, None);
    assert_eq!(status, 500, "{problem}");
    assert_eq!(problem["type"], "https://eerp.dev/problems/out-of-fuel");
    let (status, _) = server.call("GET", heavy, &acme, None);
    assert_eq!(status, 200, "acme is unaffected");

    let (ok, out) = server.eerp(&["tenant", "list"]);
    assert!(
        ok && out.contains("acme") && out.contains("globex") && out.contains("demo"),
        "{out}"
    );
    let (ok, out) = server.eerp(&["migrate-all", "crm", "--workers", "2"]);
    assert!(ok && out.contains("0 failed"), "{out}");
    let (ok, out) = server.eerp(&["audit", "--tenant", "globex"]);
    assert!(
        ok && out.contains("tenant.limits") && out.contains("dev-operator"),
        "{out}"
    );
    let (ok, out) = server.eerp(&["tenant", "suspend", "nobody"]);
    assert!(!ok && out.contains("no tenant `nobody`"), "{out}");

    assert!(server.interrupt().success());
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// The module walk-through of the README, as a module author does it with `eerp dev`
/// running: `eerp module new hello`, test and build it, upload it, enable it for the demo
/// tenant and call its route, served without a restart; then change it, upload 0.2.0,
/// upgrade the tenant and see the new behaviour.
#[test]
fn the_module_author_walk_through_from_the_readme() {
    let state_dir = std::env::temp_dir().join(format!("eerp-module-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let mut server = start(&state_dir);
    let crate_dir = state_dir.join("hello");
    let crate_path = crate_dir.to_str().expect("a UTF-8 temp dir");
    let (ok, out) = server.eerp(&["module", "new", "hello", "--dir", crate_path]);
    assert!(ok, "module new: {out}");

    // Builds share one target directory across runs, so only the first one compiles the SDK.
    let cargo = |args: &[&str]| {
        let output = Command::new(env!("CARGO"))
            .args(args)
            .current_dir(&crate_dir)
            .env(
                "CARGO_TARGET_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../target/scaffold"),
            )
            .output()
            .expect("cargo runs");
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "cargo {args:?}: {text}");
        text
    };
    let tested = cargo(&["test"]);
    assert!(
        tested.contains("3 passed"),
        "the scaffold's unit tests run: {tested}"
    );
    let build = ["build", "--release", "--target", "wasm32-unknown-unknown"];
    let wasm = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/scaffold/wasm32-unknown-unknown/release/hello.wasm"
    );
    cargo(&build);
    let (ok, out) = server.eerp(&["module", "upload", wasm]);
    assert!(ok, "module upload: {out}");
    let (ok, out) = server.eerp(&["module", "enable", "demo", "hello"]);
    assert!(ok, "module enable: {out}");
    let greetings = "/api/v1/hello/greetings";
    let (status, created) =
        server.call("POST", greetings, &server.token, Some(r#"{"name":"Ada"}"#));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["message"], "Hello, Ada!");

    // Change it, release 0.2.0, move the demo tenant to it.
    let lib = crate_dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&lib).expect("lib.rs");
    std::fs::write(&lib, code.replace("\"Hello, {}!\"", "\"Bonjour, {}!\"")).expect("edited");
    let manifest = crate_dir.join("Cargo.toml");
    let toml = std::fs::read_to_string(&manifest).expect("Cargo.toml");
    std::fs::write(
        &manifest,
        toml.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1),
    )
    .expect("bumped");
    cargo(&build);
    let (ok, out) = server.eerp(&["module", "upload", wasm]);
    assert!(ok, "module upload 0.2.0: {out}");
    let (status, still) = server.call("POST", greetings, &server.token, Some(r#"{"name":"Ada"}"#));
    assert_eq!(
        (status, &still["message"]),
        (201, &Value::from("Hello, Ada!")),
        "uploading alone changes nobody's version"
    );
    let (ok, out) = server.eerp(&["module", "upgrade", "demo", "hello", "0.2.0"]);
    assert!(ok, "module upgrade: {out}");
    let (status, upgraded) =
        server.call("POST", greetings, &server.token, Some(r#"{"name":"Ada"}"#));
    assert_eq!(status, 201, "{upgraded}");
    assert_eq!(upgraded["message"], "Bonjour, Ada!");
    let (ok, out) = server.eerp(&["module", "list"]);
    assert!(
        ok && out.contains("hello") && out.contains("0.2.0"),
        "{out}"
    );

    assert!(server.interrupt().success());
    let _ = std::fs::remove_dir_all(&state_dir);
}
