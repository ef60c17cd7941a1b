//! `eerp dev` as a new user runs it: from an empty state directory, without
//! `DATABASE_URL`, the `curl` lines it prints create, list, update, delete and restore a
//! contact, and Ctrl-C stops the server and its private PostgreSQL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

struct DevServer {
    child: Child,
    token: String,
    curls: Vec<String>,
}

fn start(state_dir: &Path) -> DevServer {
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
    let mut curls = Vec::new();
    loop {
        let line = received
            .recv_timeout(Duration::from_secs(180))
            .expect("eerp dev prints its welcome within 3 minutes");
        if let Some(value) = line.strip_prefix("export TOKEN=") {
            token = value.to_string();
        } else if line.starts_with("curl ") {
            curls.push(line);
        } else if line.starts_with("(replace ID") {
            break;
        }
    }
    DevServer {
        child,
        token,
        curls,
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
