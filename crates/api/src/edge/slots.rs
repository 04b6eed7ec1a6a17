//! The connection cap: which connections are open, and which of them may be evicted: those
//! not serving a request (not yet sent one, or idle between two), oldest first. A response's
//! body marks its connection idle again once it has been sent (or dropped).

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use axum::body::{Body, Bytes};
use tokio_util::sync::CancellationToken;

/// The open connections, and which of them are evictable (by when they became so).
pub(super) struct Slots {
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    open: usize,
    next: u64,
    evictable: BTreeMap<u64, CancellationToken>,
}

/// One admitted connection; its slot is given back when dropped.
pub(super) struct Slot {
    /// Its place in `evictable` while it is there.
    place: AtomicU64,
    slots: Arc<Slots>,
    /// Cancelled when a newcomer evicts it.
    pub(super) evicted: CancellationToken,
}

impl Slots {
    pub(super) fn new(max: usize) -> Self {
        Self { max: max.max(1), inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a new connection, evicting the longest-evictable connection when all are
    /// taken; none when every open connection is serving a request.
    pub(super) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut inner = self.lock();
        if inner.open >= self.max {
            let (_, victim) = inner.evictable.pop_first()?;
            // The victim's slot is given back here; its own drop then gives back nothing.
            victim.cancel();
            inner.open -= 1;
        }
        inner.open += 1;
        inner.next += 1;
        let (place, evicted) = (inner.next, CancellationToken::new());
        inner.evictable.insert(place, evicted.clone());
        Some(Slot { place: AtomicU64::new(place), slots: self.clone(), evicted })
    }
}

impl Slot {
    /// A request arrived: not evictable until its answer has been sent.
    pub(super) fn busy(&self) {
        self.slots.lock().evictable.remove(&self.place.load(Ordering::Relaxed));
    }

    /// The answer was sent: evictable again, behind every connection already waiting.
    fn idle(&self) {
        let mut inner = self.slots.lock();
        if self.evicted.is_cancelled() {
            return;
        }
        inner.next += 1;
        let place = inner.next;
        inner.evictable.insert(place, self.evicted.clone());
        self.place.store(place, Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.evictable.remove(&self.place.load(Ordering::Relaxed));
        if !self.evicted.is_cancelled() {
            inner.open -= 1;
        }
    }
}

/// A response body that marks its connection idle once it is done with (sent or dropped).
pub(super) struct Finished {
    inner: Body,
    slot: Arc<Slot>,
}

impl Finished {
    /// Wraps `inner`, the body of an answer on `slot`'s connection.
    pub(super) fn wrap(inner: Body, slot: Arc<Slot>) -> Body {
        Body::new(Self { inner, slot })
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.slot.idle();
    }
}

impl http_body::Body for Finished {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_evicts_the_longest_idle_connection_and_never_a_busy_one() {
        let slots = Arc::new(Slots::new(2));
        let (a, b) = (slots.admit().unwrap(), slots.admit().unwrap());
        let c = slots.admit().expect("evicts a");
        assert!(a.evicted.is_cancelled() && !b.evicted.is_cancelled());
        drop(a);
        assert_eq!(slots.lock().open, 2);
        b.busy();
        c.busy();
        assert!(slots.admit().is_none(), "both are serving requests");
        // b answered and went idle: the next newcomer evicts it, never c.
        b.idle();
        let d = slots.admit().expect("evicts b");
        assert!(b.evicted.is_cancelled() && !c.evicted.is_cancelled());
        drop((b, d));
        assert_eq!(slots.lock().open, 1);
    }
}
