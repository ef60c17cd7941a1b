//! Cache invalidation across replicas with PostgreSQL `LISTEN/NOTIFY`.
//!
//! Every catalog change an operator makes sends a notification on [`CHANNEL`] in the same
//! transaction, so it is delivered only if the change committed. Each replica keeps one
//! dedicated connection listening (not a pooled one: `LISTEN` is session state): a tenant
//! change drops that tenant from its [`TenantDirectory`], a module change wakes the
//! registry's catalog sync. After a reconnect it does both for everything, since
//! notifications sent meanwhile are lost.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use futures_util::StreamExt;
use tokio::sync::{Notify, oneshot};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::tenants::TenantDirectory;

/// The notification channel.
pub const CHANNEL: &str = "eerp_catalog";

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One tenant's record, limits, modules or roles.
    Tenant(String),
    /// Something many tenants share (a plan).
    All,
    /// The module store: a version was uploaded, replaced or retired.
    Modules,
}

impl Change {
    fn payload(&self) -> String {
        match self {
            Change::Tenant(slug) => format!("tenant:{slug}"),
            Change::All => "all".into(),
            Change::Modules => "modules".into(),
        }
    }

    fn parse(payload: &str) -> Change {
        if payload == "modules" {
            return Change::Modules;
        }
        match payload.strip_prefix("tenant:") {
            Some(slug) => Change::Tenant(slug.to_string()),
            None => Change::All,
        }
    }
}

/// Announces `change`; delivered when the surrounding transaction commits.
///
/// # Errors
/// When the database refuses.
pub async fn announce(
    client: &impl GenericClient,
    change: &Change,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &change.payload()])
        .await
        .map(|_| ())
}

/// Who hears of changes: the tenant directory, and the registry's sync task through a
/// [`Notify`] (many module changes in a row wake it once).
#[derive(Clone)]
pub struct Listeners {
    /// Tenant entries to drop.
    pub directory: Arc<TenantDirectory>,
    /// Woken when the module store changed.
    pub modules: Arc<Notify>,
}

/// Listens for changes until the process ends, reconnecting with a pause. Resolves once
/// the first `LISTEN` is in place, so a replica that has started does not miss changes.
pub async fn spawn_listener(database_url: String, listeners: Listeners) {
    let (ready, listening) = oneshot::channel();
    tokio::spawn(listen_forever(database_url, listeners, ready));
    // If the first connection fails the listener keeps retrying; start anyway.
    let _ = tokio::time::timeout(Duration::from_secs(5), listening).await;
}

async fn listen_forever(database_url: String, listeners: Listeners, ready: oneshot::Sender<()>) {
    let mut ready = Some(ready);
    loop {
        if let Err(e) = listen_once(&database_url, &listeners, &mut ready).await {
            tracing::warn!(error = %e, "cache invalidation listener lost its connection; reconnecting");
        }
        listeners.directory.invalidate_all();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    database_url: &str,
    listeners: &Listeners,
    ready: &mut Option<oneshot::Sender<()>>,
) -> Result<(), tokio_postgres::Error> {
    let directory = &listeners.directory;
    let mut config: tokio_postgres::Config = database_url.parse()?;
    // A half-open connection would lose every notification silently until the kernel's
    // default keepalive (about 2 hours) noticed; probe after 30 s idle instead.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    let (client, mut connection) = config.connect(NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&sql);
    // The connection must be polled for the LISTEN to complete.
    tokio::pin!(listen);
    loop {
        tokio::select! {
            done = &mut listen => { done?; break; }
            message = messages.next() => match message {
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
    directory.invalidate_all();
    listeners.modules.notify_one();
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    while let Some(message) = messages.next().await {
        if let AsyncMessage::Notification(note) = message? {
            match Change::parse(note.payload()) {
                Change::Tenant(slug) => directory.invalidate(&slug).await,
                Change::All => directory.invalidate_all(),
                Change::Modules => listeners.modules.notify_one(),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for change in [Change::Tenant("acme".into()), Change::All, Change::Modules] {
            assert_eq!(Change::parse(&change.payload()), change);
        }
    }
}
