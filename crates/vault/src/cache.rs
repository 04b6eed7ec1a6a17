//! The in-process cache of unwrapped workspace keys.
//!
//! Bounded by age, uses and entries, single-flight on a miss (concurrent jobs for one cold
//! workspace share one unwrap call), and zeroized on eviction: a [`DataKey`] wipes itself when
//! its last holder drops it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::OnceCell;

use crate::{DataKey, KeyContext};

/// How long and how much a cached key may be used.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Age after which a key is unwrapped again.
    pub ttl: Duration,
    /// Uses after which a key is unwrapped again.
    pub max_uses: u64,
    /// The most keys held at once.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(300), max_uses: 100_000, max_entries: 1_000 }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls made to the key provider to unwrap a key.
    pub provider_calls: u64,
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that had to unwrap (or wait for another caller's unwrap).
    pub misses: u64,
}

struct Entry {
    created: Instant,
    uses: AtomicU64,
    key: OnceCell<Arc<DataKey>>,
}

pub(crate) struct KeyCache {
    limits: CacheLimits,
    entries: Mutex<HashMap<KeyContext, Arc<Entry>>>,
    provider_calls: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl KeyCache {
    pub(crate) fn new(limits: CacheLimits) -> Self {
        Self {
            limits,
            entries: Mutex::new(HashMap::new()),
            provider_calls: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The key for `ctx`, unwrapping it with `load` at most once across concurrent callers.
    pub(crate) async fn get_or_load<F, Fut, E>(&self, ctx: KeyContext, load: F) -> Result<Arc<DataKey>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<DataKey, E>>,
    {
        let entry = self.entry(ctx);
        if let Some(key) = entry.key.get() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(key.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        entry
            .key
            .get_or_try_init(|| async {
                self.provider_calls.fetch_add(1, Ordering::Relaxed);
                load().await.map(Arc::new)
            })
            .await
            .cloned()
    }

    /// The live entry for `ctx`, replacing one that is stale and making room if full.
    fn entry(&self, ctx: KeyContext) -> Arc<Entry> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get(&ctx) {
            let fresh = e.created.elapsed() < self.limits.ttl;
            if fresh && e.uses.fetch_add(1, Ordering::Relaxed) < self.limits.max_uses {
                return e.clone();
            }
        }
        let full = map.len() >= self.limits.max_entries && !map.contains_key(&ctx);
        if let Some(oldest) = full.then(|| map.iter().min_by_key(|(_, e)| e.created).map(|(k, _)| *k)).flatten() {
            map.remove(&oldest);
        }
        let e = Arc::new(Entry { created: Instant::now(), uses: AtomicU64::new(1), key: OnceCell::new() });
        map.insert(ctx, e.clone());
        e
    }

    /// Drops every cached key of a workspace (after its keys are destroyed).
    pub(crate) fn forget(&self, pred: impl Fn(&KeyContext) -> bool) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| !pred(k));
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            provider_calls: self.provider_calls.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}
