//! Structured logs via `tracing`: JSON lines for operators, readable text for `eerp dev`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stderr. `RUST_LOG` overrides `default`.
/// Calling it twice is harmless (the second call does nothing).
pub fn init(json: bool, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}
