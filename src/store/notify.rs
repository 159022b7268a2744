//! Notices between replicas over PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! Two channels: on [`EVENTS_CHANNEL`] the event relay announces the newest
//! cursor it numbered (the events themselves are read from the table), and on
//! [`CANCELS_CHANNEL`] a cancel of a started action names the action, so the
//! replica running its attempt stops it at once.
//!
//! One connection per process listens ([`Store::listen_for_notices`]) and
//! reconnects when it drops; its drop also retires the pooled connections
//! opened before it (see `stale`), which the server most likely dropped too.
//! The event fan-out and the executor subscribe to what it hears
//! ([`Store::events_announced`], [`Store::cancels_announced`]).
//! On SQLite one process owns the database, so there is nothing to hear.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use super::Store;
use crate::error::AppError;

/// The channel on which the relay announces the newest event cursor.
pub(super) const EVENTS_CHANNEL: &str = "actiongate_events";
/// The channel on which a cancel of a started action is announced.
pub(super) const CANCELS_CHANNEL: &str = "actiongate_cancels";
/// Cancel notices kept for a subscriber that has not read them yet.
const CANCELS_BUFFER: usize = 1024;

/// What the listener heard, for its subscribers.
pub(super) struct Notices {
    /// Another replica numbered events, or the listening connection came
    /// back (so what was announced meanwhile is to be read by cursor).
    events: Notify,
    /// Actions whose cancel another replica recorded.
    cancels: broadcast::Sender<Uuid>,
}

impl Notices {
    pub(super) fn new() -> Notices {
        Notices {
            events: Notify::new(),
            cancels: broadcast::channel(CANCELS_BUFFER).0,
        }
    }
}

impl Store {
    /// Listens on both channels until `stop`, reconnecting (with backoff)
    /// whenever the connection fails. Returns at once on SQLite.
    pub(crate) async fn listen_for_notices(&self, stop: &CancellationToken) {
        let Some(pool) = self.postgres_pool().cloned() else {
            return;
        };
        let notices = &self.notices;
        let mut delay = Duration::from_millis(100);
        // After the first connection, every one is a reconnect.
        let mut reconnecting = false;
        while !stop.is_cancelled() {
            let connected = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener
                    .listen_all([EVENTS_CHANNEL, CANCELS_CHANNEL])
                    .await?;
                Ok::<_, sqlx::Error>(listener)
            }
            .await;
            let mut listener = match connected {
                Ok(listener) => listener,
                Err(err) => {
                    warn!(error = %err, ?delay, "LISTEN failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            info!(
                channel = EVENTS_CHANNEL,
                "listening for events of other replicas"
            );
            if reconnecting {
                crate::telemetry::metrics::listener_reconnected();
            }
            reconnecting = true;
            delay = Duration::from_millis(100);
            // Whatever was announced while not listening is read by cursor.
            notices.events.notify_one();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    notification = listener.try_recv() => match notification {
                        Ok(Some(notification)) if notification.channel() == CANCELS_CHANNEL => {
                            if let Ok(id) = notification.payload().parse::<Uuid>() {
                                // No subscriber (no executor here) is no error.
                                let _ = notices.cancels.send(id);
                            }
                        }
                        Ok(Some(_)) => notices.events.notify_one(),
                        Ok(None) => {
                            warn!("the LISTEN connection dropped; reconnecting");
                            self.losses.record();
                            notices.events.notify_one();
                            break;
                        }
                        Err(err) => {
                            warn!(error = %err, "the LISTEN connection failed; reconnecting");
                            self.losses.record();
                            break;
                        }
                    },
                }
            }
        }
    }

    /// Resolves when another replica announced events (or the listener
    /// reconnected) since the last call. For the event fan-out's one reader.
    pub(crate) async fn events_announced(&self) {
        self.notices.events.notified().await;
    }

    /// The ids of actions whose cancel another replica records from now on.
    pub(crate) fn cancels_announced(&self) -> broadcast::Receiver<Uuid> {
        self.notices.cancels.subscribe()
    }
}

/// `NOTIFY channel, payload` through `db`: sent when its transaction commits
/// (at once outside one). Nothing on SQLite.
pub(super) async fn announce<C: ConnectionTrait>(
    db: &C,
    channel: &str,
    payload: String,
) -> Result<(), AppError> {
    let backend = db.get_database_backend();
    if backend == DbBackend::Postgres {
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_notify($1, $2)",
            [channel.into(), payload.into()],
        ))
        .await?;
    }
    Ok(())
}
