//! Sockets waiting for `connection_init`, and who gives way when there are
//! too many.
//!
//! A socket costs nothing to open and may sit idle until its init timeout.
//! Refusing new sockets once the cap is reached would let anyone who keeps
//! that many idle sockets open (reopening each as it times out) lock every
//! real subscriber out. Instead a new socket is always admitted and, at the
//! cap, the socket that has waited longest is told to go (close 1013, try
//! again later). An idle flood then only evicts itself: a client that sends
//! `connection_init` as soon as it connects is gone from here before the cap
//! many newer sockets could arrive behind it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The sockets waiting for `connection_init`, oldest first.
pub(crate) struct PendingSockets {
    cap: usize,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    /// Arrival number → the socket's eviction signal.
    sockets: BTreeMap<u64, CancellationToken>,
    next: u64,
}

impl PendingSockets {
    /// At most `cap` sockets wait at once (at least one).
    pub(crate) fn new(cap: usize) -> PendingSockets {
        PendingSockets {
            cap: cap.max(1),
            waiting: Mutex::new(Waiting::default()),
        }
    }

    /// Admits a new socket, evicting the one that has waited longest when
    /// `cap` are waiting already.
    pub(crate) fn admit(self: &Arc<Self>) -> Pending {
        let evicted = CancellationToken::new();
        let mut waiting = self.waiting.lock().expect("pending sockets");
        while waiting.sockets.len() >= self.cap {
            match waiting.sockets.pop_first() {
                Some((_, oldest)) => oldest.cancel(),
                None => break,
            }
        }
        let number = waiting.next;
        waiting.next += 1;
        waiting.sockets.insert(number, evicted.clone());
        Pending {
            number,
            evicted,
            sockets: self.clone(),
        }
    }

    /// How many sockets are waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().expect("pending sockets").sockets.len()
    }
}

/// One socket's place among the waiting; dropped when its `connection_init`
/// arrives or it closes.
pub(crate) struct Pending {
    number: u64,
    evicted: CancellationToken,
    sockets: Arc<PendingSockets>,
}

impl Pending {
    /// Resolves when a newer socket took this one's place.
    pub(crate) async fn evicted(&self) {
        self.evicted.cancelled().await
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.sockets.waiting.lock() {
            waiting.sockets.remove(&self.number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_evicted(pending: &Pending) -> bool {
        pending.evicted.is_cancelled()
    }

    #[test]
    fn the_longest_waiting_socket_gives_way_at_the_cap() {
        let sockets = Arc::new(PendingSockets::new(2));
        let first = sockets.admit();
        let second = sockets.admit();
        assert!(!is_evicted(&first) && !is_evicted(&second));
        let third = sockets.admit();
        assert!(is_evicted(&first));
        assert!(!is_evicted(&second) && !is_evicted(&third));
        assert_eq!(sockets.len(), 2);
    }

    #[test]
    fn a_socket_that_initialised_no_longer_counts() {
        let sockets = Arc::new(PendingSockets::new(2));
        let first = sockets.admit();
        let second = sockets.admit();
        drop(first);
        let third = sockets.admit();
        assert!(!is_evicted(&second) && !is_evicted(&third));
        assert_eq!(sockets.len(), 2);
    }
}
