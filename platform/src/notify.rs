//! Cache invalidation across replicas with PostgreSQL `LISTEN/NOTIFY`.
//!
//! Every catalog change an operator makes sends a notification on [`CHANNEL`] in the same
//! transaction, so it is delivered only if the change committed. Each replica keeps one
//! dedicated connection listening (not a pooled one: `LISTEN` is session state) and passes
//! what it hears to the application ([`crate::startup`] drops tenant entries and wakes the
//! module store's sync). After a reconnect everything starts over ([`Heard::Resync`]),
//! since notifications sent meanwhile are lost.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, GenericClient, NoTls};

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

/// What the listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// One announced change.
    Change(Change),
    /// The listener (re)connected or lost its connection: changes may have been missed,
    /// so every cache should start over.
    Resync,
}

/// Listens for changes until the process ends, reconnecting with a pause, and passes
/// what it hears on. Resolves once the first `LISTEN` is in place, so a replica that has
/// started does not miss changes.
pub async fn spawn_listener(database_url: String) -> mpsc::UnboundedReceiver<Heard> {
    let (ready, listening) = oneshot::channel();
    let (sink, heard) = mpsc::unbounded_channel();
    tokio::spawn(listen_forever(database_url, sink, ready));
    // If the first connection fails the listener keeps retrying; start anyway.
    let _ = tokio::time::timeout(Duration::from_secs(5), listening).await;
    heard
}

async fn listen_forever(
    database_url: String,
    sink: mpsc::UnboundedSender<Heard>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        if let Err(e) = listen_once(&database_url, &sink, &mut ready).await {
            tracing::warn!(error = %e, "cache invalidation listener lost its connection; reconnecting");
        }
        if sink.send(Heard::Resync).is_err() {
            return; // nobody listens any more: the app is gone
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    database_url: &str,
    sink: &mpsc::UnboundedSender<Heard>,
    ready: &mut Option<oneshot::Sender<()>>,
) -> Result<(), tokio_postgres::Error> {
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
    if sink.send(Heard::Resync).is_err() {
        return Ok(());
    }
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    while let Some(message) = messages.next().await {
        if let AsyncMessage::Notification(note) = message?
            && sink
                .send(Heard::Change(Change::parse(note.payload())))
                .is_err()
        {
            return Ok(());
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
