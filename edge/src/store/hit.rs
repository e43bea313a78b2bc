//! Serving a hit: a complete object read chunk by chunk (within a range when pingora seeks),
//! or an object still filling, followed as it arrives.

use super::FoyerStore;
use super::entry::StoredMeta;
use super::inflight::PartialReader;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::{Error, ErrorType, Result};
use pingora_cache::CacheKey;
use pingora_cache::storage::{HandleHit, Storage};
use pingora_cache::trace::SpanHandle;
use std::any::Any;
use std::collections::VecDeque;

/// Reading a complete object, chunk by chunk, within an optional range.
pub(super) struct ChunkReader {
    pub(super) store: &'static FoyerStore,
    /// The shard (disk) holding the object.
    pub(super) shard: usize,
    pub(super) hex: String,
    pub(super) meta: StoredMeta,
    pub(super) pos: u64,
    /// Exclusive end.
    pub(super) end: u64,
    /// Chunks in hand, by index, in order, with whether they came off the disk: chunk 0
    /// from the lookup, then those the first read takes ahead.
    pub(super) ahead: VecDeque<(u64, (Bytes, bool))>,
    /// Whether the read-ahead has been made.
    pub(super) read_ahead: bool,
}

/// How much of an object the first read takes in hand at once. A chunk present at lookup
/// can be evicted before a slow client gets to it (a cache that turns over quickly, a
/// client that reads slowly): the response would then be cut mid-body. Held chunks cannot
/// go away; a segment (a few MiB) is held whole, larger objects in their first window.
const READ_AHEAD_BYTES: u64 = 8 << 20;

impl ChunkReader {
    async fn read(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let cs = self.meta.chunk_size as u64;
        let n = self.pos / cs;
        if !self.read_ahead {
            self.read_ahead = true;
            self.fill_ahead(n, cs).await?;
        }
        while self.ahead.front().is_some_and(|(i, _)| *i < n) {
            self.ahead.pop_front();
        }
        let held = if self.ahead.front().is_some_and(|(i, _)| *i == n) {
            self.ahead.pop_front()
        } else {
            None
        };
        let (chunk, from_disk) = match held {
            Some((_, chunk)) => chunk,
            None => {
                self.store
                    .read_chunk(self.shard, &self.hex, &self.meta, n)
                    .await?
            }
        };
        let base = n * cs;
        let start = (self.pos - base) as usize;
        let stop = ((self.end - base) as usize).min(chunk.len());
        self.pos = base + stop as u64;
        let tier = if from_disk { "disk" } else { "memory" };
        self.store
            .metrics
            .cache_read_bytes
            .with_label_values(&[tier])
            .inc_by((stop - start) as u64);
        Ok(Some(chunk.slice(start..stop)))
    }

    /// Reads the chunks from `n` on that the response needs and does not hold yet, up to
    /// [`READ_AHEAD_BYTES`], all at once.
    async fn fill_ahead(&mut self, n: u64, cs: u64) -> Result<()> {
        self.ahead.retain(|(i, _)| *i >= n);
        let last = (self.end - 1) / cs;
        let window = (READ_AHEAD_BYTES / cs).max(1);
        let wanted: Vec<u64> = (n..=last.min(n + window - 1))
            .filter(|i| !self.ahead.iter().any(|(held, _)| held == i))
            .collect();
        if wanted.len() < 2 {
            return Ok(()); // nothing gained over reading it when it is needed
        }
        let (store, shard, hex, meta) = (self.store, self.shard, &self.hex, &self.meta);
        let chunks =
            futures::future::try_join_all(wanted.iter().map(|i| store.read_chunk(shard, hex, meta, *i)))
                .await?;
        // What is held (at most chunk `n`, from the lookup) comes before what was wanted.
        self.ahead.extend(wanted.into_iter().zip(chunks));
        Ok(())
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.meta.body_len;
        if start as u64 >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start {start} beyond body of {len}"),
            );
        }
        self.pos = start as u64;
        self.end = end.map_or(len, |e| (e as u64).min(len));
        Ok(())
    }
}

pub(super) enum EdgeHit {
    Complete(ChunkReader),
    Partial(PartialReader),
}

#[async_trait]
impl HandleHit for EdgeHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            EdgeHit::Complete(c) => c.read().await,
            EdgeHit::Partial(p) => p
                .read()
                .await
                .or_else(|e| Error::e_explain(ErrorType::InternalError, e.to_string())),
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    /// `end` is exclusive, as pingora's range filter passes it.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        match self {
            EdgeHit::Complete(c) => c.seek(start, end),
            EdgeHit::Partial(p) => {
                p.seek(start as u64, end.map(|e| e as u64));
                Ok(())
            }
        }
    }

    fn get_eviction_weight(&self) -> usize {
        match self {
            EdgeHit::Complete(c) => c.meta.body_len as usize,
            EdgeHit::Partial(_) => 0,
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod test {
    use super::super::{FoyerStore, StoreSettings};
    use crate::metrics::EdgeMetrics;
    use bytes::Bytes;
    use pingora::http::ResponseHeader;
    use pingora_cache::storage::Storage;
    use pingora_cache::{CacheKey, CacheMeta};
    use std::time::{Duration, SystemTime};
    use strata_contracts::config::edge::Eviction;

    const CHUNK: usize = 64 * 1024;

    async fn store() -> &'static FoyerStore {
        let registry = prometheus::Registry::new();
        let metrics = EdgeMetrics::register(&registry, "strata_edge").unwrap();
        let settings = StoreSettings {
            metric_prefix: "strata_edge".into(),
            memory_bytes: 64 << 20,
            disks: Vec::new(),
            eviction: Eviction::Lru,
            chunk_size: CHUNK,
            write_buffer_bytes: 16 << 20,
            disk_admission_requests: 1,
            disk_admission_window: 0,
            disk_admission_by_size: false,
        };
        let store = FoyerStore::open(&settings, metrics, &registry, tokio::runtime::Handle::current())
            .await
            .unwrap();
        Box::leak(Box::new(store))
    }

    /// A chunk that goes away while a response is being sent (evicted under a quickly
    /// turning cache, here removed by hand) does not cut that response: the first read took
    /// the object's chunks in hand.
    #[tokio::test]
    async fn a_chunk_evicted_mid_response_does_not_cut_it() {
        let store = store().await;
        let body: Vec<u8> = (0..5 * CHUNK as u32 + 100).map(|i| (i % 251) as u8).collect();
        let key = CacheKey::new("/seg.m4s", "");
        let mut head = ResponseHeader::build(200, None).unwrap();
        head.insert_header("content-length", body.len().to_string())
            .unwrap();
        let now = SystemTime::now();
        let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, head);
        let trace = pingora_cache::trace::Span::inactive().handle();
        let mut miss = store.get_miss_handler(&key, &meta, &trace).await.unwrap();
        miss.write_body(Bytes::from(body.clone()), true).await.unwrap();
        miss.finish().await.unwrap();

        let (_, mut hit) = store.lookup(&key, &trace).await.unwrap().expect("a hit");
        let mut got = hit.read_body().await.unwrap().unwrap().to_vec();
        // Every chunk after the one just read disappears from the cache.
        let hex = pingora_cache::key::CacheHashKey::combined(&key);
        let meta = store.find_meta(&hex).await.unwrap().1;
        for n in 1..meta.chunk_count() {
            store.shards[0]
                .cache
                .remove(&FoyerStore::chunk_key(&hex, meta.object_id, n));
        }
        while let Some(piece) = hit.read_body().await.unwrap() {
            got.extend_from_slice(&piece);
        }
        assert_eq!(got.len(), body.len());
        assert!(got == body, "the bytes are the object's");
        // The next lookup finds the object incomplete: a miss, never a cut response.
        assert!(store.lookup(&key, &trace).await.unwrap().is_none());
    }
}
