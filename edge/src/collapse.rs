//! Request collapsing: pingora's cache lock, made aware of fills the store already has.
//!
//! pingora looks in storage first and takes the lock after a miss. A request whose lookup
//! ran just before another request's fill registered, and whose lock call comes just after
//! that fill released the lock (it does so as soon as readers can stream), would become a
//! second writer and fetch the object again. This lock closes that gap: when the store
//! already holds a fill or a finished object for the key, the caller gets a read lock that
//! is already done, so pingora looks again and follows the fill instead of fetching.

use crate::store::FoyerStore;
use http::Extensions;
use pingora_cache::CacheKey;
use pingora_cache::lock::{CacheKeyLock, CacheLock, LockStatus, Locked, WritePermit};
use std::time::Duration;

/// pingora's `CacheLock` plus a look at what the store is filling.
pub struct FillAwareLock {
    inner: Box<CacheLock>,
    store: &'static FoyerStore,
    age_timeout: Duration,
}

impl FillAwareLock {
    /// A lock whose writers time out after `age_timeout`.
    pub fn new(store: &'static FoyerStore, age_timeout: Duration) -> Self {
        Self {
            inner: CacheLock::new_boxed(age_timeout),
            store,
            age_timeout,
        }
    }

    /// A read lock that is already released as done: the caller looks up again at once.
    fn look_again(&self) -> Locked {
        let (mut permit, stub) = WritePermit::new(self.age_timeout, false, Extensions::new());
        let read = stub.read_lock();
        permit.unlock(LockStatus::Done);
        Locked::Read(read)
    }
}

impl CacheKeyLock for FillAwareLock {
    fn lock(&self, key: &CacheKey, stale_writer: bool) -> Locked {
        // A stale writer revalidates an object it found: the store having it is expected.
        if stale_writer {
            return self.inner.lock(key, stale_writer);
        }
        if self.store.has_object_or_fill(key) {
            return self.look_again();
        }
        match self.inner.lock(key, stale_writer) {
            Locked::Write(permit) if self.store.has_object_or_fill(key) => {
                // The fill appeared between the check above and taking the lock.
                self.inner.release(key, permit, LockStatus::Done);
                self.look_again()
            }
            locked => locked,
        }
    }

    fn release(&self, key: &CacheKey, permit: WritePermit, reason: LockStatus) {
        self.inner.release(key, permit, reason)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::metrics::EdgeMetrics;
    use crate::store::StoreSettings;
    use pingora::http::ResponseHeader;
    use pingora_cache::CacheMeta;
    use pingora_cache::storage::Storage;
    use pingora_cache::trace::Span;
    use std::time::SystemTime;
    use strata_contracts::config::edge::Eviction;

    async fn memory_store() -> &'static FoyerStore {
        let registry = prometheus::Registry::new();
        let settings = StoreSettings {
            metric_prefix: "strata_edge".into(),
            memory_bytes: 8 << 20,
            disks: Vec::new(),
            eviction: Eviction::S3fifo,
            chunk_size: 64 << 10,
            write_buffer_bytes: 1 << 20,
            disk_admission_requests: 1,
            disk_admission_window: 1000,
            disk_admission_by_size: false,
        };
        let metrics = EdgeMetrics::register(&registry, "strata_edge").unwrap();
        let store = FoyerStore::open(&settings, metrics, &registry, tokio::runtime::Handle::current())
            .await
            .unwrap();
        Box::leak(Box::new(store))
    }

    fn meta() -> CacheMeta {
        let now = SystemTime::now();
        CacheMeta::new(
            now + Duration::from_secs(60),
            now,
            0,
            0,
            ResponseHeader::build(200, None).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_request_that_finds_a_fill_at_lock_time_follows_it() {
        let store = memory_store().await;
        let lock = FillAwareLock::new(store, Duration::from_secs(10));
        let key = CacheKey::new("edge.example/a.m4s", "");
        match lock.lock(&key, false) {
            Locked::Write(permit) => lock.release(&key, permit, LockStatus::Done),
            Locked::Read(_) => panic!("nothing is filling: the first request writes"),
        }
        // Another request starts filling the key (and, streaming, released its lock).
        let span = Span::inactive().handle();
        let _fill = store.get_miss_handler(&key, &meta(), &span).await.unwrap();
        match lock.lock(&key, false) {
            Locked::Read(read) => assert_eq!(read.lock_status(), LockStatus::Done, "look again at once"),
            Locked::Write(_) => panic!("a second writer would fetch the object again"),
        }
        // Revalidating writers are not redirected.
        match lock.lock(&key, true) {
            Locked::Write(permit) => lock.release(&key, permit, LockStatus::Done),
            Locked::Read(_) => panic!("a revalidation must be allowed to write"),
        }
    }
}
