//! The segment cache: pingora-cache's `Storage` over a foyer hybrid cache (memory in front
//! of disk).
//!
//! pingora-cache runs the HTTP state machine (lock, freshness, revalidation, stale, ranges);
//! this module only stores and finds bytes. Each object is a meta entry plus body chunks
//! ([`entry`]); objects still arriving from upstream live in [`inflight`] so that other
//! requests stream them while they fill. Eviction is foyer's alone.

mod admission;
mod disk;
mod entry;
mod fill;
mod hit;
mod index;
mod inflight;

use crate::metrics::EdgeMetrics;
use admission::Admission;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use disk::DiskState;
use entry::{StoredMeta, decode_chunk, encode_chunk, unframe_chunk};
use fill::{ChunkWriter, fresh_object_id};
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder, HybridCachePolicy,
    HybridCacheProperties, LfuConfig, Location, LruConfig, RecoverMode, S3FifoConfig, Source,
};
use hit::{ChunkReader, EdgeHit};
use index::KeyIndex;
use inflight::Inflight;
use parking_lot::RwLock;
use pingora::{Error, ErrorType, Result};
use pingora_cache::key::CacheHashKey;
use pingora_cache::storage::{HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta};
use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_contracts::api::edge::{Inventory, InventoryItem};
use strata_contracts::config::edge::Eviction;

/// foyer's disk tier evicts a whole block at a time, so on a small disk fewer, larger blocks
/// make eviction coarse: aim for this many blocks, within the bounds below.
const TARGET_BLOCKS: usize = 64;
/// Largest block (foyer's default, and the largest entry it can hold).
const MAX_BLOCK: usize = 16 * 1024 * 1024;

/// Room a chunk leaves in its slot of `chunk_kb` for foyer's entry header, our key and
/// framing, a block's 4 KiB index and foyer's 4 KiB alignment, so that whole chunks pack a
/// disk block: with a payload of exactly 1 MiB, each chunk took a 2 MiB block alone and half
/// the disk sat empty.
const CHUNK_SLACK: usize = 16 * 1024;

/// The disk block size for a disk tier of `disk_bytes` holding chunks of `chunk_size`.
fn block_size(disk_bytes: usize, chunk_size: usize) -> usize {
    // A block must hold at least one chunk and its framing.
    let min = (chunk_size + 64 * 1024).next_power_of_two();
    (disk_bytes / TARGET_BLOCKS)
        .next_power_of_two()
        .clamp(min, MAX_BLOCK.max(min))
}

/// How the cache is laid out.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Prefix of the store's metric names (`strata_edge`, `strata_midtier`).
    pub metric_prefix: String,
    /// Memory tier, bytes.
    pub memory_bytes: usize,
    /// Disk tier directory and size in bytes; `None` for memory only.
    pub disk: Option<(PathBuf, usize)>,
    /// Memory-tier eviction policy.
    pub eviction: Eviction,
    /// Body chunk size, bytes.
    pub chunk_size: usize,
    /// Disk write buffer, bytes.
    pub write_buffer_bytes: usize,
    /// Requests an object needs (recently) before it is written to disk; 1 writes every
    /// object (`admission`).
    pub disk_admission_requests: u32,
    /// Requests after which every object's count is halved.
    pub disk_admission_window: u64,
}

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cache: {0}")]
pub struct StoreOpenError(String);

/// The segment cache.
pub struct FoyerStore {
    cache: HybridCache<String, Bytes>,
    /// Fills in progress: key hex -> write id -> object.
    inflight: RwLock<HashMap<String, HashMap<u64, Arc<Inflight>>>>,
    next_write: AtomicU64,
    chunk_size: usize,
    metrics: EdgeMetrics,
    index: KeyIndex,
    /// The disk tier's health; `None` when the cache runs in memory only.
    disk: Option<DiskState>,
    /// Configured size of both tiers, bytes.
    capacity: u64,
    /// Which objects go to disk.
    admission: Admission,
}

impl FoyerStore {
    /// Opens (and on disk, recovers) the cache. Foyer's background tasks run on `spawner`,
    /// which must live as long as the process.
    pub async fn open(
        settings: &StoreSettings,
        metrics: EdgeMetrics,
        registry: &prometheus::Registry,
        spawner: tokio::runtime::Handle,
    ) -> Result<Self, StoreOpenError> {
        let err = |e: foyer::Error| StoreOpenError(e.to_string());
        let builder = HybridCacheBuilder::new()
            .with_name("edge")
            .with_policy(HybridCachePolicy::WriteOnInsertion)
            .with_metrics_registry(Box::new(
                mixtrics::registry::prometheus_0_14::PrometheusMetricsRegistry::new(registry.clone()),
            ))
            .memory(settings.memory_bytes)
            .with_weighter(|k: &String, v: &Bytes| k.len() + v.len());
        let builder = match settings.eviction {
            Eviction::S3fifo => builder.with_eviction_config(S3FifoConfig::default()),
            Eviction::Lru => builder.with_eviction_config(LruConfig::default()),
            Eviction::Lfu => builder.with_eviction_config(LfuConfig::default()),
        };
        let mut storage = builder
            .storage()
            .with_spawner(spawner.into())
            .with_recover_mode(RecoverMode::Quiet);
        if let Some((dir, bytes)) = &settings.disk {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreOpenError(format!("cache.dir {}: {e}", dir.display())))?;
            let device = FsDeviceBuilder::new(dir)
                .with_capacity(*bytes)
                .build()
                .map_err(err)?;
            storage = storage.with_engine_config(
                BlockEngineConfig::new(device)
                    .with_block_size(block_size(*bytes, settings.chunk_size - CHUNK_SLACK))
                    .with_buffer_pool_size(settings.write_buffer_bytes)
                    // Removals (purges, corrupt entries) must not come back after a restart.
                    .with_tombstone_log(true),
            );
        }
        let cache = storage.build().await.map_err(err)?;
        let disk = match &settings.disk {
            Some((dir, _)) => Some(
                DiskState::new(dir.clone(), registry, &settings.metric_prefix)
                    .map_err(|e| StoreOpenError(e.to_string()))?,
            ),
            None => None,
        };
        let index = match &settings.disk {
            Some((dir, _)) => {
                let alive = |hex: &str| cache.contains(&Self::meta_key(hex));
                KeyIndex::open(&dir.join("strata-index.log"), alive)
                    .map_err(|e| StoreOpenError(format!("cache index in {}: {e}", dir.display())))?
            }
            None => KeyIndex::in_memory(),
        };
        Ok(Self {
            cache,
            inflight: RwLock::new(HashMap::new()),
            next_write: AtomicU64::new(1),
            chunk_size: settings.chunk_size - CHUNK_SLACK,
            metrics,
            index,
            disk,
            capacity: (settings.memory_bytes + settings.disk.as_ref().map_or(0, |(_, size)| *size)) as u64,
            admission: Admission::new(settings.disk_admission_requests, settings.disk_admission_window),
        })
    }

    /// Configured size of both tiers, bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity
    }

    /// Capacity not taken by stored objects (bodies as indexed; an estimate, since an object
    /// may be held in both tiers).
    pub fn free_bytes(&self) -> u64 {
        self.capacity.saturating_sub(self.inventory("/", 0).bytes)
    }

    /// Probes the disk every `every` on `spawner`, taking it out of service on failure.
    pub fn watch_disk(&'static self, spawner: &tokio::runtime::Handle, every: std::time::Duration) {
        let Some(disk) = &self.disk else { return };
        spawner.spawn(async move {
            let mut tick = tokio::time::interval(every);
            while disk.in_service() {
                tick.tick().await;
                let result = tokio::task::spawn_blocking(|| self.disk.as_ref().map(|d| d.probe())).await;
                match result {
                    Ok(Some(Err(e))) => disk.failed(&format!("probe: {e}")),
                    Err(e) => disk.failed(&format!("probe task: {e}")),
                    _ => {}
                }
            }
        });
    }

    /// `Err` with the reason when the disk tier is out of service.
    pub fn disk_health(&self) -> Result<(), String> {
        match &self.disk {
            Some(d) if !d.in_service() => Err(d.reason().unwrap_or_default()),
            _ => Ok(()),
        }
    }

    fn disk_in_service(&self) -> bool {
        self.disk.as_ref().is_some_and(|d| d.in_service())
    }

    /// Stores an entry, on disk too when `to_disk` and the disk is in service.
    fn put(&self, key: String, value: Bytes, to_disk: bool) {
        if self.disk.is_some() && (!to_disk || !self.disk_in_service()) {
            let memory_only = HybridCacheProperties::default().with_location(Location::InMem);
            self.cache.insert_with_properties(key, value, memory_only);
        } else {
            self.cache.insert(key, value);
        }
    }

    /// Looks an entry up, saying whether it was read from the disk tier; on a disk out of
    /// service, in memory only. A read error from the disk tier takes the disk out of service.
    async fn fetch_with_source(&self, key: &String) -> Option<(Bytes, bool)> {
        if self.disk.is_some() && !self.disk_in_service() {
            return self.cache.memory().get(key).map(|e| (e.value().clone(), false));
        }
        match self.cache.get(key).await {
            Ok(found) => found.map(|e| (e.value().clone(), e.source() == Source::Disk)),
            Err(e) => {
                if let Some(d) = &self.disk {
                    d.failed(&format!("read: {e}"));
                }
                None
            }
        }
    }

    async fn fetch(&self, key: &String) -> Option<Bytes> {
        self.fetch_with_source(key).await.map(|(value, _)| value)
    }

    /// Removes one stored object (meta first, then its chunks); false if it was not there.
    async fn remove_object(&self, hex: &str) -> bool {
        self.index.forget(hex);
        let Some(stored) = self.read_meta(hex).await else {
            return false;
        };
        // The meta goes first: from then on the object is a miss, whatever the chunks do.
        self.cache.remove(&Self::meta_key(hex));
        for n in 0..stored.chunk_count() {
            self.cache.remove(&Self::chunk_key(hex, stored.object_id, n));
        }
        true
    }

    /// Purges every stored variant of the primary key `key` (host + path + kept query).
    pub async fn purge_key(&self, key: &str) -> u64 {
        let mut hexes: Vec<String> = self.index.variants(key).into_iter().map(|v| v.hex).collect();
        // The plain (no Vary) entry, even if the index does not know it.
        let plain = CacheKey::new(key, "").combined();
        if !hexes.contains(&plain) {
            hexes.push(plain);
        }
        let mut purged = 0;
        for hex in hexes {
            if self.remove_object(&hex).await {
                purged += 1;
            }
        }
        purged
    }

    /// Purges every stored object whose path starts with `path_prefix`, on any host.
    pub async fn purge_prefix(&self, path_prefix: &str) -> u64 {
        let mut purged = 0;
        for (_, variants) in self.index.under(path_prefix) {
            for v in variants {
                if self.remove_object(&v.hex).await {
                    purged += 1;
                }
            }
        }
        purged
    }

    /// What the cache holds under a path prefix, at most `limit` objects listed.
    pub fn inventory(&self, path_prefix: &str, limit: usize) -> Inventory {
        let mut inv = Inventory {
            prefix: path_prefix.to_string(),
            ..Inventory::default()
        };
        for (key, variants) in self.index.under(path_prefix) {
            let present: Vec<_> = variants
                .into_iter()
                .filter(|v| self.cache.contains(&Self::meta_key(&v.hex)))
                .collect();
            if present.is_empty() {
                continue;
            }
            let bytes: u64 = present.iter().map(|v| v.bytes).sum();
            inv.count += 1;
            inv.bytes += bytes;
            if inv.objects.len() < limit {
                inv.objects.push(InventoryItem {
                    key,
                    bytes,
                    variants: present.len() as u32,
                });
            } else {
                inv.truncated = true;
            }
        }
        inv
    }

    /// Flushes pending disk writes and stops foyer's tasks.
    pub async fn close(&self) {
        if let Err(e) = self.cache.close().await {
            tracing::warn!(error = %e, "closing the cache");
        }
    }

    fn meta_key(hex: &str) -> String {
        format!("m{hex}")
    }

    fn chunk_key(hex: &str, object_id: u64, n: u64) -> String {
        format!("c{hex}.{object_id:x}.{n}")
    }

    /// Reads and verifies a meta entry. A corrupt one is removed and counted.
    async fn read_meta(&self, hex: &str) -> Option<StoredMeta> {
        let entry = self.fetch(&Self::meta_key(hex)).await?;
        match StoredMeta::decode(&entry) {
            Ok(m) => Some(m),
            Err(e) => {
                self.drop_corrupt(hex, &format!("meta: {e}"));
                None
            }
        }
    }

    /// Whether an entry is in either tier. An entry that left the memory tier while its disk
    /// write is still being flushed is in neither index for that moment, so before calling
    /// it missing, wait for the writes in flight to land and look again.
    async fn present(&self, key: &String) -> bool {
        if !self.disk_in_service() {
            return self.cache.memory().contains(key);
        }
        if self.cache.contains(key) {
            return true;
        }
        self.cache.storage().wait().await;
        self.cache.contains(key)
    }

    /// Gets an entry and whether it came from disk, with the same second look as
    /// [`Self::present`].
    async fn get_entry(&self, key: &String) -> Option<(Bytes, bool)> {
        if let Some(v) = self.fetch_with_source(key).await {
            return Some(v);
        }
        if self.disk_in_service() {
            self.cache.storage().wait().await;
            return self.fetch_with_source(key).await;
        }
        None
    }

    /// Reads chunk `n` of an object, and whether it came off the disk (where its checksum is
    /// verified).
    async fn read_chunk(&self, hex: &str, meta: &StoredMeta, n: u64) -> Result<(Bytes, bool)> {
        let key = Self::chunk_key(hex, meta.object_id, n);
        let expected = chunk_len(meta, n);
        let checked = |(framed, from_disk): (Bytes, bool)| {
            let data = if from_disk {
                decode_chunk(&framed, expected)
            } else {
                unframe_chunk(&framed, expected)
            };
            data.map(|d| (d, from_disk))
        };
        let problem = match self.get_entry(&key).await.map(checked) {
            Some(result) => match result {
                Ok(data) => return Ok(data),
                Err(e) => format!("chunk {n}: {e}"),
            },
            None => format!("chunk {n} is missing"),
        };
        self.drop_corrupt(hex, &problem);
        Error::e_explain(
            ErrorType::InternalError,
            format!("cached body unusable: {problem}"),
        )
    }

    /// Forgets an object whose stored form cannot be trusted, so the next request refetches.
    fn drop_corrupt(&self, hex: &str, why: &str) {
        tracing::warn!(key = hex, why, "dropping a corrupt or incomplete cache entry");
        self.metrics.corrupt_entries.inc();
        self.cache.remove(&Self::meta_key(hex));
        self.index.forget(hex);
    }

    fn put_chunk(&self, hex: &str, object_id: u64, n: u64, data: &[u8], to_disk: bool) {
        self.put(Self::chunk_key(hex, object_id, n), encode_chunk(data), to_disk);
    }

    /// Writes an object held in memory only to disk too, chunks first and its meta last, when
    /// it has just earned the disk (`admission`). Entries already gone from memory leave it
    /// as it was.
    fn promote(&self, hex: &str, stored: &StoredMeta) {
        if !self.disk_in_service() || self.cache.storage().may_contains(&Self::meta_key(hex)) {
            return;
        }
        let mut entries = Vec::new();
        for n in 0..stored.chunk_count() {
            let key = Self::chunk_key(hex, stored.object_id, n);
            let Some(e) = self.cache.memory().get(&key) else {
                return;
            };
            entries.push((key, e.value().clone()));
        }
        let meta = Self::meta_key(hex);
        let Some(m) = self.cache.memory().get(&meta) else {
            return;
        };
        entries.push((meta, m.value().clone()));
        for (key, value) in entries {
            self.cache.insert(key, value);
        }
        self.metrics.disk_promotions.inc();
    }

    fn unregister(&self, hex: &str, write_id: u64) {
        let mut map = self.inflight.write();
        if let Some(writes) = map.get_mut(hex) {
            writes.remove(&write_id);
            if writes.is_empty() {
                map.remove(hex);
            }
        }
    }

    /// A pre-warm fetch asks for `key`: the object goes to disk at once, whatever its count.
    pub fn prefer_disk(&self, key: &CacheKey) {
        self.admission.prefer(&key.combined());
    }

    /// Whether the store is filling, or holds, an object for this key (no disk read).
    pub fn has_object_or_fill(&self, key: &CacheKey) -> bool {
        let hex = key.combined();
        self.inflight.read().contains_key(&hex) || self.cache.contains(&Self::meta_key(&hex))
    }

    fn partial_hit(&self, obj: &Arc<Inflight>) -> Result<Option<(CacheMeta, HitHandler)>> {
        let meta = CacheMeta::deserialize(&obj.meta.0, &obj.meta.1)?;
        self.metrics.collapsed.inc();
        Ok(Some((meta, Box::new(EdgeHit::Partial(obj.reader())))))
    }
}

#[cfg(test)]
#[test]
fn block_size_follows_the_disk_within_bounds() {
    const MB: usize = 1024 * 1024;
    assert_eq!(block_size(128 * MB, MB), 2 * MB);
    assert_eq!(block_size(500_000 * MB, MB), 16 * MB);
    assert_eq!(
        block_size(64 * MB, MB),
        2 * MB,
        "never smaller than a chunk and its framing"
    );
    assert_eq!(block_size(64 * MB, 16 * MB), 32 * MB, "a chunk always fits");
}

fn chunk_len(meta: &StoredMeta, n: u64) -> usize {
    let cs = meta.chunk_size as u64;
    (meta.body_len - n * cs).min(cs) as usize
}

#[async_trait]
impl Storage for FoyerStore {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hex = key.combined();
        let earned_disk = self.admission.record(&hex);
        // A fill in progress is the newest version: prefer it, so an expired object being
        // refetched is not served while its replacement streams in.
        let filling = self
            .inflight
            .read()
            .get(&hex)
            .and_then(|w| w.values().next().cloned());
        if let Some(obj) = filling {
            return self.partial_hit(&obj);
        }
        let Some(stored) = self.read_meta(&hex).await else {
            return Ok(None);
        };
        // Read the first chunk now: an object whose body is gone is a clean miss here,
        // rather than a response that breaks after its headers were sent.
        let first = if stored.body_len > 0 {
            match self.read_chunk(&hex, &stored, 0).await {
                Ok(c) => Some(c),
                Err(_) => return Ok(None),
            }
        } else {
            None
        };
        // The other chunks are checked for presence in foyer's index (no disk read), so an
        // object that lost a chunk to eviction is a miss too. Corruption inside a chunk
        // is only found when it is read; see `read_chunk`.
        for n in 1..stored.chunk_count() {
            if !self.present(&Self::chunk_key(&hex, stored.object_id, n)).await {
                self.drop_corrupt(&hex, &format!("chunk {n} is missing"));
                return Ok(None);
            }
        }
        let meta = match CacheMeta::deserialize(&stored.internal, &stored.header) {
            Ok(m) => m,
            Err(e) => {
                self.drop_corrupt(&hex, &format!("meta does not deserialize: {e}"));
                return Ok(None);
            }
        };
        if earned_disk {
            self.promote(&hex, &stored);
        }
        let end = stored.body_len;
        Ok(Some((
            meta,
            Box::new(EdgeHit::Complete(ChunkReader {
                store: self,
                hex,
                meta: stored,
                pos: 0,
                end,
                first,
            })),
        )))
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(id) = tag.and_then(|t| t.try_into().ok()).map(u64::from_le_bytes) else {
            return self.lookup(key, trace).await;
        };
        let obj = self
            .inflight
            .read()
            .get(&key.combined())
            .and_then(|w| w.get(&id).cloned());
        match obj {
            Some(obj) => {
                let meta = CacheMeta::deserialize(&obj.meta.0, &obj.meta.1)?;
                Ok(Some((meta, Box::new(EdgeHit::Partial(obj.reader())))))
            }
            None => self.lookup(key, trace).await,
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let hex = key.combined();
        let to_disk = self.admission.admits(&hex);
        let write_id = self.next_write.fetch_add(1, Ordering::Relaxed);
        let obj = Arc::new(Inflight::new(meta.serialize()?));
        self.inflight
            .write()
            .entry(hex.clone())
            .or_default()
            .insert(write_id, obj.clone());
        Ok(Box::new(ChunkWriter {
            store: self,
            primary: key.primary_key_str().unwrap_or_default().to_string(),
            hex,
            write_id,
            write_tag: write_id.to_le_bytes(),
            object_id: fresh_object_id(write_id),
            to_disk,
            obj,
            pending: BytesMut::new(),
            next_chunk: 0,
            written: 0,
            finished: false,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hex = target.key().combined();
        Ok(if self.remove_object(&hex).await {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let hex = key.combined();
        let Some(mut stored) = self.read_meta(&hex).await else {
            return Ok(false);
        };
        let (internal, header) = meta.serialize()?;
        stored.internal = internal;
        stored.header = header;
        let on_disk = self.cache.storage().may_contains(&Self::meta_key(&hex));
        self.put(
            Self::meta_key(&hex),
            stored.encode(),
            on_disk || self.admission.admits(&hex),
        );
        Ok(true)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
