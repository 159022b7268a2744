//! Connections the server dropped while they sat in the pool.
//!
//! A pooled connection is pinged before it is handed out only once it has
//! been idle a while (a ping per statement is a round trip per statement),
//! so after the server closed its connections (a restart, a fail-over,
//! `pg_terminate_backend`) the next statement on each would fail. The
//! listening connection, always waiting on the server, learns of such a loss
//! at once; from then on every pooled connection opened before it is closed
//! instead of handed out, and a new one is opened in its place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When the server was last seen dropping a connection.
pub(super) struct Losses {
    origin: Instant,
    /// Nanoseconds after `origin`; 0 while nothing was lost.
    last: AtomicU64,
}

impl Losses {
    pub(super) fn new() -> Losses {
        Losses {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// The server dropped a connection just now.
    pub(super) fn record(&self) {
        let now = self.origin.elapsed().as_nanos().max(1);
        self.last
            .fetch_max(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Whether a connection opened `age` ago predates the last loss, and so
    /// may have been dropped with it.
    pub(super) fn predates_last(&self, age: Duration) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        let opened = self.origin.elapsed().saturating_sub(age).as_nanos();
        last != 0 && opened < u128::from(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_opened_before_a_loss_are_stale() {
        let losses = Losses::new();
        assert!(
            !losses.predates_last(Duration::from_secs(3600)),
            "nothing lost yet"
        );
        std::thread::sleep(Duration::from_millis(20));
        losses.record();
        assert!(
            losses.predates_last(Duration::from_millis(15)),
            "opened before"
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !losses.predates_last(Duration::from_millis(10)),
            "opened after"
        );
    }
}
