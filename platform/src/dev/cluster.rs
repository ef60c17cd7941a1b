//! A private PostgreSQL cluster started from the locally installed server binaries.
//!
//! Used by `eerp dev` when `DATABASE_URL` is unset, and by the test harness. PostgreSQL
//! refuses to run as root, so when this process is root the cluster runs as the
//! `postgres` user (or `nobody`). A small watchdog process stops the cluster when this
//! process dies, however it dies, so no orphan server is left behind.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use thiserror::Error;

/// Why a cluster could not be started.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) were found on PATH or in the usual \
         install directories. Install the PostgreSQL server (Debian/Ubuntu: `apt install \
         postgresql`; Fedora: `dnf install postgresql-server`; macOS: `brew install \
         postgresql@16`), or set DATABASE_URL to an existing server"
    )]
    NoBinaries,
    /// A command failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// What was being done.
        what: String,
        /// Its output or error.
        detail: String,
    },
}

/// Options for [`LocalCluster::start`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterOptions {
    /// Delete the data directory when the cluster stops (test clusters). Ephemeral
    /// clusters also skip fsync and synchronous commit, unless `durable`.
    pub ephemeral: bool,
    /// Keep PostgreSQL's durability settings even for an ephemeral cluster (tests that
    /// crash the server and count what survived).
    pub durable: bool,
    /// More server options (`-c name=value ...`), e.g. to preload Citus.
    pub server_options: &'static str,
}

/// A running private cluster. Dropping it stops the server.
#[derive(Debug)]
pub struct LocalCluster {
    data_dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
    ephemeral: bool,
    server_options: &'static str,
    /// The watchdog waits for its stdin to close, which happens when this process exits
    /// or [`LocalCluster::stop`] drops it.
    watchdog: Mutex<Option<Child>>,
}

impl LocalCluster {
    /// Initialises `data_dir` if needed and starts a server on a free loopback port.
    ///
    /// # Errors
    /// [`ClusterError`] saying what is missing or which step failed.
    pub fn start(data_dir: &Path, options: ClusterOptions) -> Result<Self, ClusterError> {
        let bin_dir = find_bin_dir().ok_or(ClusterError::NoBinaries)?;
        let owner = unprivileged_owner()?;
        let data_dir = absolute(data_dir)?;
        let fresh = !data_dir.join("PG_VERSION").exists();
        let cluster = Self {
            data_dir,
            bin_dir,
            port: free_port()?,
            owner,
            // Only a directory this call initialises may be deleted later.
            ephemeral: options.ephemeral && fresh,
            server_options: options.server_options,
            watchdog: Mutex::new(None),
        };
        cluster.init()?;
        cluster.refuse_if_running()?;
        cluster.launch(options.ephemeral && !options.durable)?;
        cluster.spawn_watchdog()?;
        Ok(cluster)
    }

    /// A URL for database `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast shutdown: connections are closed, data is kept unless the
    /// cluster is ephemeral). Safe to call more than once.
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["stop", "-m", "fast", "-w", "-t", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The server is down: release the watchdog and wait until it has finished too, so
        // it cannot touch a cluster started later on the same directory.
        if let Some(mut watchdog) = self.watchdog.lock().ok().and_then(|mut w| w.take()) {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
        if self.ephemeral {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }

    /// Kills the server the way a crash would (`pg_ctl stop -m immediate`): no
    /// checkpoint, clients cut off; the next start recovers from the WAL.
    ///
    /// # Errors
    /// When `pg_ctl` fails.
    pub fn crash(&self) -> Result<(), ClusterError> {
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["stop", "-m", "immediate", "-w", "-t", "30"])
            .output()
            .map_err(|e| io_error("running pg_ctl stop", e))?;
        check(output, "pg_ctl stop -m immediate")
    }

    /// Starts the server again on the same port, durably, after [`LocalCluster::crash`].
    ///
    /// # Errors
    /// When `pg_ctl` fails.
    pub fn start_again(&self) -> Result<(), ClusterError> {
        self.launch(false)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        // PostgreSQL's tools chdir-check the working directory; root's home may be closed.
        command.current_dir(std::env::temp_dir());
        if let Some((uid, gid)) = self.owner {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        command
    }

    fn init(&self) -> Result<(), ClusterError> {
        if self.data_dir.join("PG_VERSION").exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| io_error("creating the data directory", e))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&self.data_dir, Some(uid), Some(gid))
                .map_err(|e| io_error("handing the data directory to the postgres user", e))?;
        }
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(|e| io_error("running initdb", e))?;
        check(output, "initdb")
    }

    /// A live server on this directory belongs to another `eerp dev`: leave it alone.
    fn refuse_if_running(&self) -> Result<(), ClusterError> {
        let running = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("status")
            .output()
            .is_ok_and(|output| output.status.success());
        if running {
            return Err(ClusterError::Command {
                what: format!("starting PostgreSQL in {}", self.data_dir.display()),
                detail: "a server is already running on this directory (another `eerp dev`?); stop it or use another --state-dir".into(),
            });
        }
        Ok(())
    }

    fn launch(&self, fast_and_loose: bool) -> Result<(), ClusterError> {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200 {}",
            self.port, self.server_options
        );
        if fast_and_loose {
            // Test data is thrown away, so durability only costs time.
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let output = {
            use std::os::unix::process::CommandExt;
            self.command("pg_ctl")
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(self.data_dir.join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"])
                // Its own process group: Ctrl-C reaches us, and we stop it in order.
                .process_group(0)
                .output()
                .map_err(|e| io_error("running pg_ctl start", e))?
        };
        check(output, "pg_ctl start")
    }

    /// Stops the server once this process is gone, even after SIGKILL: the watchdog
    /// blocks reading a pipe whose only writer is this process.
    fn spawn_watchdog(&self) -> Result<(), ClusterError> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let remove = if self.ephemeral {
            "rm -rf \"$1\""
        } else {
            "true"
        };
        let script =
            format!("cat >/dev/null; \"$2\" -D \"$1\" stop -m immediate >/dev/null 2>&1; {remove}");
        let mut command = Command::new("sh");
        command
            .args(["-c", &script, "eerp-pg-watchdog"])
            .arg(&self.data_dir)
            .arg(&pg_ctl)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
            if let Some((uid, gid)) = self.owner {
                command.uid(uid).gid(gid);
            }
        }
        let child = command
            .spawn()
            .map_err(|e| io_error("starting the cluster watchdog", e))?;
        if let Ok(mut slot) = self.watchdog.lock() {
            *slot = Some(child);
        }
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where `initdb` and `pg_ctl` live: PATH first, then the usual install directories,
/// newest version first.
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has_tools(dir)) {
        // Debian's /usr/bin/pg_ctl* are wrappers; prefer the real directory when linked.
        let resolved = std::fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| has_tools(d));
        return Some(resolved.unwrap_or(dir));
    }
    let mut candidates: Vec<PathBuf> = [
        "/usr/lib/postgresql",
        "/usr/local/pgsql",
        "/opt/homebrew/opt",
        "/usr/local/opt",
    ]
    .iter()
    .flat_map(|root| std::fs::read_dir(root).into_iter().flatten().flatten())
    .map(|entry| entry.path().join("bin"))
    .chain(
        std::fs::read_dir("/usr")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("pgsql-"))
            .map(|e| e.path().join("bin")),
    )
    .chain([PathBuf::from("/usr/local/pgsql/bin")])
    .filter(|dir| has_tools(dir))
    .collect();
    candidates.sort_by_key(|dir| std::cmp::Reverse(version_of(dir)));
    candidates.into_iter().next()
}

fn version_of(bin_dir: &Path) -> u32 {
    bin_dir
        .components()
        .filter_map(|c| {
            let text = c.as_os_str().to_string_lossy();
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// `Some((uid, gid))` of an unprivileged user when running as root.
fn unprivileged_owner() -> Result<Option<(u32, u32)>, ClusterError> {
    let current = id(&["-u"]).unwrap_or(u32::MAX);
    if current != 0 {
        return Ok(None);
    }
    for user in ["postgres", "nobody"] {
        if let (Some(uid), Some(gid)) = (id(&["-u", user]), id(&["-g", user])) {
            return Ok(Some((uid, gid)));
        }
    }
    Err(ClusterError::Command {
        what: "finding an unprivileged user to run PostgreSQL as (it refuses root)".into(),
        detail: "neither `postgres` nor `nobody` exists; create one or set DATABASE_URL".into(),
    })
}

fn id(args: &[&str]) -> Option<u32> {
    let output = Command::new("id").args(args).output().ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

fn free_port() -> Result<u16, ClusterError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| io_error("finding a free port", e))
}

fn absolute(path: &Path) -> Result<PathBuf, ClusterError> {
    std::path::absolute(path).map_err(|e| io_error("resolving the data directory", e))
}

fn check(output: std::process::Output, what: &str) -> Result<(), ClusterError> {
    if output.status.success() {
        return Ok(());
    }
    Err(ClusterError::Command {
        what: what.to_string(),
        detail: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

fn io_error(what: &str, e: std::io::Error) -> ClusterError {
    ClusterError::Command {
        what: what.to_string(),
        detail: e.to_string(),
    }
}
