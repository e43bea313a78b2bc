//! Serving a hit: a complete object read chunk by chunk (within a range when pingora seeks),
//! or an object still filling, followed as it arrives. A complete object whose stored chunk
//! cannot be read mid-response (corrupt, or evicted past the read-ahead) is continued from an
//! upstream when the proxy gave it a [`Repair`]; without one, the response is cut.

use super::FoyerStore;
use super::entry::StoredMeta;
use super::inflight::PartialReader;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use pingora::{Error, ErrorType, Result};
use pingora_cache::CacheKey;
use pingora_cache::storage::{HandleHit, HitHandler, Storage};
use pingora_cache::trace::SpanHandle;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::Mutex;

/// The bytes a [`Repair`] fetched, as they arrive.
pub type RepairBody = BoxStream<'static, std::result::Result<Bytes, String>>;

/// Where the rest of a stored response comes from when one of its chunks cannot be read
/// after the response has started: the proxy knows the request and its upstreams, the store
/// knows which bytes are missing.
#[async_trait]
pub trait Repair: Send + Sync {
    /// Bytes `first..end` of the stored representation, exactly those or an error.
    async fn fetch(&self, first: u64, end: u64) -> std::result::Result<RepairBody, String>;

    /// Counts how a repair went: `continued` or `failed`.
    fn outcome(&self, continued: bool);
}

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
    /// A chunk the read-ahead could not read, and why: reading it again would only fail
    /// (and count the damage) again.
    pub(super) unreadable: Option<(u64, String)>,
    /// Where to continue from when a chunk cannot be read (`Repair`); asked once per range.
    pub(super) repair: Option<Box<dyn Repair>>,
    /// The upstream's bytes once a repair has begun; the rest of the response comes from
    /// there. In a `Mutex` only to be `Sync` as pingora's hit handlers must be: it is only
    /// ever reached through `&mut self` (`get_mut`), never locked.
    pub(super) repaired: Option<Mutex<RepairBody>>,
}

/// How much of an object the first read takes in hand at once. A chunk present at lookup
/// can be evicted before a slow client gets to it (a cache that turns over quickly, a
/// client that reads slowly): the response would then be cut mid-body. Held chunks cannot
/// go away; a segment (a few MiB) is held whole, larger objects in their first window.
const READ_AHEAD_BYTES: u64 = 8 << 20;

impl ChunkReader {
    async fn read(&mut self) -> Result<Option<Bytes>> {
        if self.repaired.is_some() {
            return self.read_repaired().await;
        }
        if self.pos >= self.end {
            return Ok(None);
        }
        let cs = self.meta.chunk_size as u64;
        let n = self.pos / cs;
        if !self.read_ahead {
            self.read_ahead = true;
            self.fill_ahead(n, cs).await;
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
            None => match self.unreadable.take().filter(|(i, _)| *i == n) {
                Some((_, why)) => return self.repair(why).await,
                None => match self.store.read_chunk(self.shard, &self.hex, &self.meta, n).await {
                    Ok(chunk) => chunk,
                    Err(e) => return self.repair(e.to_string()).await,
                },
            },
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
    /// [`READ_AHEAD_BYTES`], all at once. Those before the first that cannot be read are
    /// kept; that one is remembered for when the response reaches it.
    async fn fill_ahead(&mut self, n: u64, cs: u64) {
        self.ahead.retain(|(i, _)| *i >= n);
        let last = (self.end - 1) / cs;
        let window = (READ_AHEAD_BYTES / cs).max(1);
        let wanted: Vec<u64> = (n..=last.min(n + window - 1))
            .filter(|i| !self.ahead.iter().any(|(held, _)| held == i))
            .collect();
        if wanted.len() < 2 {
            return; // nothing gained over reading it when it is needed
        }
        let (store, shard, hex, meta) = (self.store, self.shard, &self.hex, &self.meta);
        let chunks =
            futures::future::join_all(wanted.iter().map(|i| store.read_chunk(shard, hex, meta, *i))).await;
        // What is held (at most chunk `n`, from the lookup) comes before what was wanted.
        for (i, chunk) in wanted.into_iter().zip(chunks) {
            match chunk {
                Ok(chunk) => self.ahead.push_back((i, chunk)),
                Err(e) => {
                    self.unreadable = Some((i, e.to_string()));
                    break;
                }
            }
        }
    }

    /// The stored copy cannot go on at `self.pos` (`why`): the rest of the response comes
    /// from an upstream if the proxy gave a [`Repair`] and an upstream has exactly those
    /// bytes; otherwise the response is cut (an error), never continued with other bytes.
    async fn repair(&mut self, why: String) -> Result<Option<Bytes>> {
        let Some(repair) = self.repair.as_deref() else {
            return Error::e_explain(ErrorType::InternalError, format!("cached body unusable: {why}"));
        };
        match repair.fetch(self.pos, self.end).await {
            Ok(body) => {
                repair.outcome(true);
                tracing::info!(key = %self.hex, from = self.pos, %why, "stored copy continued from upstream");
                self.repaired = Some(Mutex::new(body));
                self.read_repaired().await
            }
            Err(e) => {
                repair.outcome(false);
                tracing::warn!(key = %self.hex, from = self.pos, %why, upstream = %e, "stored copy cut: no upstream continues it");
                Error::e_explain(
                    ErrorType::InternalError,
                    format!("cached body unusable: {why}; {e}"),
                )
            }
        }
    }

    /// The next bytes of a repair, never past the response's end; an early end is an error.
    async fn read_repaired(&mut self) -> Result<Option<Bytes>> {
        let Some(body) = self
            .repaired
            .as_mut()
            .map(|m| m.get_mut().unwrap_or_else(|p| p.into_inner()))
        else {
            return Ok(None);
        };
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            match body.next().await {
                Some(Ok(data)) if data.is_empty() => continue,
                Some(Ok(mut data)) => {
                    data.truncate((self.end - self.pos).min(data.len() as u64) as usize);
                    self.pos += data.len() as u64;
                    return Ok(Some(data));
                }
                Some(Err(e)) => {
                    return Error::e_explain(ErrorType::ReadError, format!("continuing upstream: {e}"));
                }
                None => {
                    let short = self.end - self.pos;
                    return Error::e_explain(
                        ErrorType::ReadError,
                        format!("continuing upstream ended {short} bytes short"),
                    );
                }
            }
        }
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
        // A repair's bytes were those of the previous range (one part of several).
        self.repaired = None;
        Ok(())
    }
}

pub(super) enum EdgeHit {
    Complete(ChunkReader),
    Partial(PartialReader),
}

/// Gives a hit on a complete object of several chunks the [`Repair`] `make` builds, made only
/// for such a hit (a hit still filling follows its fill instead; chunk 0 is in hand from the
/// lookup); returns whether it was given.
pub fn attach_repair(hit: &mut HitHandler, make: impl FnOnce() -> Option<Box<dyn Repair>>) -> bool {
    match hit.as_any_mut().downcast_mut::<EdgeHit>() {
        Some(EdgeHit::Complete(reader)) if reader.meta.body_len > reader.meta.chunk_size as u64 => {
            reader.repair = make();
            reader.repair.is_some()
        }
        _ => false,
    }
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
    use super::{Repair, RepairBody};
    use crate::metrics::EdgeMetrics;
    use async_trait::async_trait;
    use bytes::Bytes;
    use futures::StreamExt;
    use pingora::http::ResponseHeader;
    use pingora_cache::storage::{HitHandler, Storage};
    use pingora_cache::{CacheKey, CacheMeta};
    use std::sync::{Arc, Mutex};
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

    /// Stores `body` under `path`; returns its key.
    async fn put(store: &'static FoyerStore, path: &str, body: &[u8]) -> CacheKey {
        let key = CacheKey::new(path, "");
        let mut head = ResponseHeader::build(200, None).unwrap();
        head.insert_header("content-length", body.len().to_string())
            .unwrap();
        let now = SystemTime::now();
        let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, head);
        let trace = pingora_cache::trace::Span::inactive().handle();
        let mut miss = store.get_miss_handler(&key, &meta, &trace).await.unwrap();
        miss.write_body(Bytes::copy_from_slice(body), true).await.unwrap();
        miss.finish().await.unwrap();
        key
    }

    /// Removes chunk `n` of the object under `key`, as eviction would; returns where that
    /// chunk began.
    async fn evict_chunk(store: &'static FoyerStore, key: &CacheKey, n: u64) -> usize {
        let hex = pingora_cache::key::CacheHashKey::combined(key);
        let meta = store.find_meta(&hex).await.unwrap().1;
        store.shards[0]
            .cache
            .remove(&FoyerStore::chunk_key(&hex, meta.object_id, n));
        n as usize * meta.chunk_size as usize
    }

    /// Reads a hit to its end: the bytes, and the error that cut it if one did.
    async fn drain(hit: &mut pingora_cache::storage::HitHandler) -> (Vec<u8>, Option<String>) {
        let mut got = Vec::new();
        loop {
            match hit.read_body().await {
                Ok(Some(piece)) => got.extend_from_slice(&piece),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
    }

    /// What a stand-in upstream was asked, and how its repairs went.
    #[derive(Default)]
    struct Calls {
        asked: Vec<(u64, u64)>,
        outcomes: Vec<bool>,
    }

    /// A stand-in upstream holding the object: answers `first..end`, or `short` bytes fewer.
    struct Upstream {
        body: Vec<u8>,
        short: usize,
        calls: Arc<Mutex<Calls>>,
    }

    #[async_trait]
    impl Repair for Upstream {
        async fn fetch(&self, first: u64, end: u64) -> Result<RepairBody, String> {
            self.calls.lock().unwrap().asked.push((first, end));
            let bytes = Bytes::copy_from_slice(&self.body[first as usize..end as usize - self.short]);
            // In two pieces, as a network would give them.
            let (a, b) = (bytes.slice(..bytes.len() / 2), bytes.slice(bytes.len() / 2..));
            Ok(futures::stream::iter([Ok(a), Ok(b)]).boxed())
        }

        fn outcome(&self, continued: bool) {
            self.calls.lock().unwrap().outcomes.push(continued);
        }
    }

    fn upstream(body: &[u8], short: usize) -> (Box<dyn Repair>, Arc<Mutex<Calls>>) {
        let calls = Arc::new(Mutex::new(Calls::default()));
        let repair = Upstream {
            body: body.to_vec(),
            short,
            calls: Arc::clone(&calls),
        };
        (Box::new(repair), calls)
    }

    /// A hit on a stored object of six chunks and a bit whose chunk 3 went away after the
    /// lookup, given a stand-in upstream that answers `short` bytes fewer than asked (none:
    /// no upstream): the hit, the object's bytes, where chunk 3 began and what the upstream
    /// was asked.
    async fn damaged_hit(
        path: &str,
        short: Option<usize>,
    ) -> (HitHandler, Vec<u8>, usize, Arc<Mutex<Calls>>) {
        let store = store().await;
        let body: Vec<u8> = (0..6 * CHUNK as u32 + 100).map(|i| (i % 251) as u8).collect();
        let key = put(store, path, &body).await;
        let trace = pingora_cache::trace::Span::inactive().handle();
        let (_, mut hit) = store.lookup(&key, &trace).await.unwrap().expect("a hit");
        let missing = evict_chunk(store, &key, 3).await;
        let (repair, calls) = upstream(&body, short.unwrap_or(0));
        if short.is_some() {
            assert!(super::attach_repair(&mut hit, || Some(repair)));
        }
        (hit, body, missing, calls)
    }

    /// A chunk that cannot be read once the response has started is fetched from the
    /// upstream, exactly the bytes missing and no more, and the response goes on whole.
    #[tokio::test]
    async fn a_missing_chunk_mid_response_is_continued_from_the_upstream() {
        let (mut hit, body, missing, calls) = damaged_hit("/whole.m4s", Some(0)).await;
        let (got, cut) = drain(&mut hit).await;
        assert_eq!(cut, None);
        assert!(got == body, "the bytes are the object's");
        let calls = calls.lock().unwrap();
        assert_eq!(calls.asked, vec![(missing as u64, body.len() as u64)]);
        assert_eq!(calls.outcomes, vec![true]);
    }

    /// Within a range, only the rest of that range is asked for.
    #[tokio::test]
    async fn a_range_is_continued_with_the_rest_of_the_range_only() {
        let (mut hit, body, missing, calls) = damaged_hit("/ranged.m4s", Some(0)).await;
        let end = missing + CHUNK / 2;
        hit.seek(100, Some(end)).unwrap();
        let (got, cut) = drain(&mut hit).await;
        assert_eq!(cut, None);
        assert!(got == body[100..end], "the range's bytes");
        assert_eq!(calls.lock().unwrap().asked, vec![(missing as u64, end as u64)]);
    }

    /// The parts of a multipart answer are seeks one after another: a part after a repaired
    /// one reads the stored bytes again, and a part that meets the gap is repaired on its own.
    #[tokio::test]
    async fn each_part_of_several_is_repaired_on_its_own() {
        let (mut hit, body, missing, calls) = damaged_hit("/parts.m4s", Some(0)).await;
        let parts = [
            (missing - 10, missing + 10),
            (5, 15),
            (missing + 100, missing + 200),
        ];
        for (from, to) in parts {
            hit.seek_multipart(from, Some(to)).unwrap();
            let (got, cut) = drain(&mut hit).await;
            assert_eq!(cut, None);
            assert!(got == body[from..to], "part {from}-{to}");
        }
        let calls = calls.lock().unwrap();
        let asked = [(missing, missing + 10), (missing + 100, missing + 200)];
        assert_eq!(calls.asked, asked.map(|(a, b)| (a as u64, b as u64)));
    }

    /// Without a way back to an upstream, or when the upstream's answer falls short, the
    /// response is cut after the bytes that were right: never padded, never other bytes.
    #[tokio::test]
    async fn without_a_full_continuation_the_response_is_cut() {
        let (mut hit, body, missing, _) = damaged_hit("/no-repair.m4s", None).await;
        let (got, cut) = drain(&mut hit).await;
        assert!(cut.unwrap().contains("chunk 3 is missing"));
        assert!(got == body[..missing], "what was sent was right");

        let (mut hit, body, _, _) = damaged_hit("/short.m4s", Some(10)).await;
        let (got, cut) = drain(&mut hit).await;
        assert!(cut.unwrap().contains("10 bytes short"));
        assert!(got == body[..body.len() - 10], "what was sent was right");
    }

    /// A chunk that goes away while a response is being sent (evicted under a quickly
    /// turning cache, here removed by hand) does not cut that response: the first read took
    /// the object's chunks in hand.
    #[tokio::test]
    async fn a_chunk_evicted_mid_response_does_not_cut_it() {
        let store = store().await;
        let body: Vec<u8> = (0..5 * CHUNK as u32 + 100).map(|i| (i % 251) as u8).collect();
        let key = put(store, "/seg.m4s", &body).await;
        let trace = pingora_cache::trace::Span::inactive().handle();
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
