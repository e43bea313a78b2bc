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
mod shard;

use crate::cache_key::SLICE_MARK;
use crate::metrics::EdgeMetrics;
use admission::Admission;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use disk::{DiskMetrics, DiskState};
use entry::{StoredMeta, decode_chunk, encode_chunk, unframe_chunk};
use fill::{ChunkWriter, fresh_object_id};
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCacheBuilder, HybridCachePolicy, LfuConfig,
    LruConfig, RecoverMode, S3FifoConfig,
};
use hit::{ChunkReader, EdgeHit};
pub use hit::{Repair, RepairBody, attach_repair};
use index::KeyIndex;
use inflight::Inflight;
use parking_lot::RwLock;
use pingora::{Error, ErrorType, Result};
use pingora_cache::key::CacheHashKey;
use pingora_cache::storage::{HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta};
use shard::{Shard, route};
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

/// The chunk size (slot, bytes) when the config leaves it to the store, for disks whose
/// smallest is `smallest_disk` bytes (`None`: memory only). Larger chunks mean larger socket
/// writes on every hit, which the hot benchmark rewards (+60% requests/s with 1 MiB over
/// 256 KiB on a 2 GB disk); but on a small disk, whose blocks are small, they waste block
/// room and cost hit ratio, so small disks keep 256 KiB (bench/README.md).
pub fn auto_chunk_size(smallest_disk: Option<usize>) -> usize {
    const SMALL: usize = 256 * 1024;
    const LARGE: usize = 1024 * 1024;
    match smallest_disk {
        Some(bytes) if block_size(bytes, LARGE - CHUNK_SLACK) < MAX_BLOCK => SMALL,
        _ => LARGE,
    }
}

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
    /// Memory tier, bytes (shared evenly by the disks).
    pub memory_bytes: usize,
    /// The disk tier: each disk's directory and size in bytes; none for memory only.
    pub disks: Vec<(PathBuf, usize)>,
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
    /// Whether `disk_admission_requests` is per MiB of body.
    pub disk_admission_by_size: bool,
}

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cache: {0}")]
pub struct StoreOpenError(String);

/// The segment cache.
pub struct FoyerStore {
    /// One per disk (one of memory only without disks); objects are routed by `shard::route`.
    shards: Vec<Shard>,
    /// Fills in progress: key hex -> write id -> object.
    inflight: RwLock<HashMap<String, HashMap<u64, Arc<Inflight>>>>,
    next_write: AtomicU64,
    chunk_size: usize,
    metrics: EdgeMetrics,
    /// Configured size of both tiers, bytes.
    capacity: u64,
    /// The disks' size together, bytes.
    disk_capacity: u64,
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
        let disk_metrics = DiskMetrics::register(registry, &settings.metric_prefix)
            .map_err(|e| StoreOpenError(e.to_string()))?;
        // One registry handle for every shard: foyer's metrics are registered once and told
        // apart by the cache's name.
        let foyer_metrics =
            mixtrics::registry::prometheus_0_14::PrometheusMetricsRegistry::new(registry.clone());
        let disks: Vec<Option<&(PathBuf, usize)>> = if settings.disks.is_empty() {
            vec![None]
        } else {
            settings.disks.iter().map(Some).collect()
        };
        let memory_share = settings.memory_bytes / disks.len();
        let mut shards = Vec::with_capacity(disks.len());
        for (i, disk) in disks.iter().enumerate() {
            let name = if disks.len() == 1 {
                "edge".to_string()
            } else {
                format!("edge-disk{i}")
            };
            let cache =
                Self::open_shard_cache(settings, &name, memory_share, *disk, &foyer_metrics, &spawner)
                    .await?;
            let (disk, index) = match disk {
                Some((dir, _)) => {
                    let alive = |hex: &str| cache.contains(&Self::meta_key(hex));
                    let index = KeyIndex::open(&dir.join("strata-index.log"), alive)
                        .map_err(|e| StoreOpenError(format!("cache index in {}: {e}", dir.display())))?;
                    (Some(DiskState::new(dir.clone(), &disk_metrics)), index)
                }
                None => (None, KeyIndex::in_memory()),
            };
            shards.push(Shard { cache, disk, index });
        }
        Ok(Self {
            shards,
            inflight: RwLock::new(HashMap::new()),
            next_write: AtomicU64::new(1),
            chunk_size: settings.chunk_size - CHUNK_SLACK,
            metrics,
            capacity: (settings.memory_bytes + settings.disks.iter().map(|(_, size)| size).sum::<usize>())
                as u64,
            disk_capacity: settings.disks.iter().map(|(_, size)| *size as u64).sum(),
            admission: Admission::with_size(
                settings.disk_admission_requests,
                settings.disk_admission_by_size,
                settings.disk_admission_window,
            ),
        })
    }

    /// One shard's foyer cache: `memory` bytes in front of `disk` (if any).
    async fn open_shard_cache(
        settings: &StoreSettings,
        name: &str,
        memory: usize,
        disk: Option<&(PathBuf, usize)>,
        foyer_metrics: &mixtrics::registry::prometheus_0_14::PrometheusMetricsRegistry,
        spawner: &tokio::runtime::Handle,
    ) -> Result<foyer::HybridCache<String, Bytes>, StoreOpenError> {
        let err = |e: foyer::Error| StoreOpenError(e.to_string());
        let builder = HybridCacheBuilder::new()
            .with_name(name.to_string())
            .with_policy(HybridCachePolicy::WriteOnInsertion)
            .with_metrics_registry(Box::new(foyer_metrics.clone()))
            .memory(memory)
            .with_weighter(|k: &String, v: &Bytes| k.len() + v.len());
        let builder = match settings.eviction {
            Eviction::S3fifo => builder.with_eviction_config(S3FifoConfig::default()),
            Eviction::Lru => builder.with_eviction_config(LruConfig::default()),
            Eviction::Lfu => builder.with_eviction_config(LfuConfig::default()),
        };
        let mut storage = builder
            .storage()
            .with_spawner(spawner.clone().into())
            .with_recover_mode(RecoverMode::Quiet);
        if let Some((dir, bytes)) = disk {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreOpenError(format!("cache disk {}: {e}", dir.display())))?;
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
        storage.build().await.map_err(err)
    }

    /// The shard that stores `hex` now: by rendezvous over the disks in service.
    fn shard_of(&self, hex: &str) -> usize {
        route(hex, self.shards.len(), |i| self.shards[i].disk_in_service())
    }

    /// The shards that may hold `hex`, most likely first: where it goes now, then, when a disk
    /// left service since, where it went before (whose memory tier may still hold it).
    fn shards_for(&self, hex: &str) -> impl Iterator<Item = usize> + use<> {
        let now = self.shard_of(hex);
        let before = route(hex, self.shards.len(), |_| true);
        std::iter::once(now).chain((before != now).then_some(before))
    }

    /// Configured size of both tiers, bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity
    }

    /// Capacity not taken by stored objects (bodies as indexed; an estimate, since an object
    /// may be held in both tiers, and an evicted one counts until the index sweep finds it).
    pub fn free_bytes(&self) -> u64 {
        let held: u64 = self.shards.iter().map(|s| s.index.bytes()).sum();
        self.capacity.saturating_sub(held)
    }

    /// Whether the disks still have room (under 90% of their size held, by the key index):
    /// until then there is nothing to choose between and every object is written, so that
    /// an empty cache fills at once; disk admission chooses only once keeping one object
    /// means evicting another.
    fn disk_has_room(&self) -> bool {
        if !self.admission.is_selective() || self.disk_capacity == 0 {
            return false;
        }
        let held: u64 = self.shards.iter().map(|s| s.index.bytes()).sum();
        held < self.disk_capacity / 10 * 9
    }

    /// Walks each shard's key index on `spawner`, `batch` keys every `every`, forgetting the
    /// objects foyer has evicted: without it the index (and its journal) would keep every key
    /// ever stored until a restart.
    pub fn sweep_index(
        &'static self,
        spawner: &tokio::runtime::Handle,
        every: std::time::Duration,
        batch: usize,
    ) {
        for shard in &self.shards {
            spawner.spawn(async move {
                let mut tick = tokio::time::interval(every);
                let mut cursor: Option<String> = None;
                loop {
                    tick.tick().await;
                    if shard.disk.as_ref().is_some_and(|d| !d.in_service()) {
                        // Its objects cannot be looked up now, but they are not gone: a disk
                        // back in service after a restart brings them back, and a purge by
                        // prefix must still find them.
                        continue;
                    }
                    cursor = shard.index.sweep(cursor.as_deref(), batch, |hex| {
                        shard.contains(&Self::meta_key(hex))
                    });
                    let objects: usize = self.shards.iter().map(|s| s.index.variant_count()).sum();
                    self.metrics.indexed_objects.set(objects as i64);
                }
            });
        }
    }

    /// Probes each disk every `every` on `spawner`, taking it out of service on failure.
    pub fn watch_disk(&'static self, spawner: &tokio::runtime::Handle, every: std::time::Duration) {
        for shard in &self.shards {
            let Some(disk) = &shard.disk else { continue };
            spawner.spawn(async move {
                let mut tick = tokio::time::interval(every);
                while disk.in_service() {
                    tick.tick().await;
                    match tokio::task::spawn_blocking(|| disk.probe()).await {
                        Ok(Err(e)) => disk.failed(&format!("probe: {e}")),
                        Err(e) => disk.failed(&format!("probe task: {e}")),
                        Ok(Ok(())) => {}
                    }
                }
            });
        }
    }

    /// `Err` naming the disks out of service, with their reasons, when there is any.
    pub fn disk_health(&self) -> Result<(), String> {
        let out: Vec<String> = self
            .shards
            .iter()
            .filter_map(|s| s.disk.as_ref())
            .filter(|d| !d.in_service())
            .map(|d| d.reason().unwrap_or_default())
            .collect();
        if out.is_empty() {
            Ok(())
        } else {
            Err(out.join("; "))
        }
    }

    /// Removes one stored object (meta first, then its chunks) from every shard that has it;
    /// false if none had.
    async fn remove_object(&self, hex: &str) -> bool {
        let mut removed = false;
        for shard in &self.shards {
            shard.index.forget(hex);
            let Some(stored) = Self::read_meta_in(shard, &self.metrics, hex).await else {
                continue;
            };
            // The meta goes first: from then on the object is a miss, whatever the chunks do.
            shard.cache.remove(&Self::meta_key(hex));
            for n in 0..stored.chunk_count() {
                shard.cache.remove(&Self::chunk_key(hex, stored.object_id, n));
            }
            removed = true;
        }
        removed
    }

    /// Purges every stored variant of the primary key `key` (host + path + kept query), and
    /// every slice of it.
    pub async fn purge_key(&self, key: &str) -> u64 {
        let slices = format!("{key}{SLICE_MARK}");
        let mut hexes: Vec<String> = self
            .shards
            .iter()
            .flat_map(|s| {
                let mut held = s.index.variants(key);
                held.extend(s.index.starting_with(&slices).into_iter().flat_map(|(_, v)| v));
                held
            })
            .map(|v| v.hex)
            .collect();
        // The plain (no Vary) entry, even if no index knows it.
        hexes.push(CacheKey::new(key, "").combined());
        hexes.sort();
        hexes.dedup();
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
        for shard in &self.shards {
            for (_, variants) in shard.index.under(path_prefix) {
                for v in variants {
                    if self.remove_object(&v.hex).await {
                        purged += 1;
                    }
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
        // key -> (bytes, variants) over every shard, in key order.
        let mut held: std::collections::BTreeMap<String, (u64, u32)> = std::collections::BTreeMap::new();
        for shard in &self.shards {
            for (key, variants) in shard.index.under(path_prefix) {
                let present: Vec<_> = variants
                    .into_iter()
                    .filter(|v| shard.contains(&Self::meta_key(&v.hex)))
                    .collect();
                if present.is_empty() {
                    continue;
                }
                let entry = held.entry(key).or_default();
                entry.0 += present.iter().map(|v| v.bytes).sum::<u64>();
                entry.1 += present.len() as u32;
            }
        }
        for (key, (bytes, variants)) in held {
            inv.count += 1;
            inv.bytes += bytes;
            if inv.objects.len() < limit {
                inv.objects.push(InventoryItem { key, bytes, variants });
            } else {
                inv.truncated = true;
            }
        }
        inv
    }

    /// Flushes pending disk writes and stops foyer's tasks.
    pub async fn close(&self) {
        for shard in &self.shards {
            if let Err(e) = shard.cache.close().await {
                tracing::warn!(error = %e, "closing the cache");
            }
        }
    }

    fn meta_key(hex: &str) -> String {
        format!("m{hex}")
    }

    fn chunk_key(hex: &str, object_id: u64, n: u64) -> String {
        format!("c{hex}.{object_id:x}.{n}")
    }

    /// Reads and verifies a meta entry in `shard`. A corrupt one is removed and counted.
    async fn read_meta_in(shard: &Shard, metrics: &EdgeMetrics, hex: &str) -> Option<StoredMeta> {
        let entry = shard.fetch_with_source(&Self::meta_key(hex)).await?.0;
        match StoredMeta::decode(&entry) {
            Ok(m) => Some(m),
            Err(e) => {
                Self::drop_corrupt_in(shard, metrics, hex, &format!("meta: {e}"));
                None
            }
        }
    }

    /// The object's meta and the shard holding it, looking where it may be.
    async fn find_meta(&self, hex: &str) -> Option<(usize, StoredMeta)> {
        for i in self.shards_for(hex) {
            if let Some(m) = Self::read_meta_in(&self.shards[i], &self.metrics, hex).await {
                return Some((i, m));
            }
        }
        None
    }

    /// Reads chunk `n` of an object in shard `shard`, and whether it came off the disk (where
    /// its checksum is verified).
    async fn read_chunk(&self, shard: usize, hex: &str, meta: &StoredMeta, n: u64) -> Result<(Bytes, bool)> {
        let shard = &self.shards[shard];
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
        let problem = match shard.get_entry(&key).await.map(checked) {
            Some(result) => match result {
                Ok(data) => return Ok(data),
                Err(e) => format!("chunk {n}: {e}"),
            },
            None => format!("chunk {n} is missing"),
        };
        Self::drop_corrupt_in(shard, &self.metrics, hex, &problem);
        Error::e_explain(
            ErrorType::InternalError,
            format!("cached body unusable: {problem}"),
        )
    }

    /// Forgets an object whose stored form cannot be trusted, so the next request refetches.
    fn drop_corrupt_in(shard: &Shard, metrics: &EdgeMetrics, hex: &str, why: &str) {
        tracing::warn!(key = hex, why, "dropping a corrupt or incomplete cache entry");
        metrics.corrupt_entries.inc();
        shard.cache.remove(&Self::meta_key(hex));
        shard.index.forget(hex);
    }

    fn put_chunk(&self, shard: usize, hex: &str, object_id: u64, n: u64, data: &[u8], to_disk: bool) {
        self.shards[shard].put(Self::chunk_key(hex, object_id, n), encode_chunk(data), to_disk);
    }

    /// Writes an object held in memory only to disk too, chunks first and its meta last, when
    /// it has just earned the disk (`admission`). Entries already gone from memory leave it
    /// as it was.
    fn promote(&self, shard: usize, hex: &str, stored: &StoredMeta) {
        let shard = &self.shards[shard];
        if !shard.disk_in_service() || shard.cache.storage().may_contains(&Self::meta_key(hex)) {
            return;
        }
        let mut entries = Vec::new();
        for n in 0..stored.chunk_count() {
            let key = Self::chunk_key(hex, stored.object_id, n);
            let Some(e) = shard.cache.memory().get(&key) else {
                return;
            };
            entries.push((key, e.value().clone()));
        }
        let meta = Self::meta_key(hex);
        let Some(m) = shard.cache.memory().get(&meta) else {
            return;
        };
        entries.push((meta, m.value().clone()));
        for (key, value) in entries {
            shard.cache.insert(key, value);
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

    /// Whether the store holds slices of the object keyed `primary` (by its key index, which
    /// may briefly list evicted ones).
    pub fn holds_slices_of(&self, primary: &str) -> bool {
        let slices = format!("{primary}{SLICE_MARK}");
        self.shards.iter().any(|s| s.index.any_starting_with(&slices))
    }

    /// Whether the store is filling, or holds, an object for this key (no disk read).
    pub fn has_object_or_fill(&self, key: &CacheKey) -> bool {
        let hex = key.combined();
        self.inflight.read().contains_key(&hex)
            || self
                .shards_for(&hex)
                .any(|i| self.shards[i].contains(&Self::meta_key(&hex)))
    }

    fn partial_hit(&self, obj: &Arc<Inflight>) -> Result<Option<(CacheMeta, HitHandler)>> {
        let meta = CacheMeta::deserialize(&obj.meta.0, &obj.meta.1)?;
        self.metrics.collapsed.inc();
        Ok(Some((meta, Box::new(EdgeHit::Partial(obj.reader())))))
    }
}

#[cfg(test)]
#[test]
fn chunks_are_large_where_disk_blocks_are_and_small_on_small_disks() {
    const MB: usize = 1024 * 1024;
    assert_eq!(auto_chunk_size(None), MB, "memory only");
    assert_eq!(auto_chunk_size(Some(2048 * MB)), MB);
    assert_eq!(
        auto_chunk_size(Some(1024 * MB)),
        MB,
        "1 GiB: 16 MiB blocks already"
    );
    assert_eq!(auto_chunk_size(Some(512 * MB)), 256 * 1024);
    assert_eq!(auto_chunk_size(Some(128 * MB)), 256 * 1024);
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
        let requests = self.admission.record(&hex);
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
        let Some((shard, stored)) = self.find_meta(&hex).await else {
            return Ok(None);
        };
        // Read the first chunk now: an object whose body is gone is a clean miss here,
        // rather than a response that breaks after its headers were sent.
        let first = if stored.body_len > 0 {
            match self.read_chunk(shard, &hex, &stored, 0).await {
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
            if !self.shards[shard]
                .present(&Self::chunk_key(&hex, stored.object_id, n))
                .await
            {
                Self::drop_corrupt_in(
                    &self.shards[shard],
                    &self.metrics,
                    &hex,
                    &format!("chunk {n} is missing"),
                );
                return Ok(None);
            }
        }
        let meta = match CacheMeta::deserialize(&stored.internal, &stored.header) {
            Ok(m) => m,
            Err(e) => {
                Self::drop_corrupt_in(
                    &self.shards[shard],
                    &self.metrics,
                    &hex,
                    &format!("meta does not deserialize: {e}"),
                );
                return Ok(None);
            }
        };
        if self.admission.earned_now(requests, stored.body_len) {
            self.promote(shard, &hex, &stored);
        }
        let end = stored.body_len;
        Ok(Some((
            meta,
            Box::new(EdgeHit::Complete(ChunkReader {
                store: self,
                shard,
                hex,
                meta: stored,
                pos: 0,
                end,
                ahead: first.map(|chunk| (0, chunk)).into_iter().collect(),
                read_ahead: false,
                unreadable: None,
                repair: None,
                repaired: None,
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
        let length = meta
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let to_disk = self.disk_has_room() || self.admission.admits(&hex, length);
        let write_id = self.next_write.fetch_add(1, Ordering::Relaxed);
        let obj = Arc::new(Inflight::new(meta.serialize()?));
        self.inflight
            .write()
            .entry(hex.clone())
            .or_default()
            .insert(write_id, obj.clone());
        Ok(Box::new(ChunkWriter {
            store: self,
            shard: self.shard_of(&hex),
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
        let Some((shard, mut stored)) = self.find_meta(&hex).await else {
            return Ok(false);
        };
        let (internal, header) = meta.serialize()?;
        stored.internal = internal;
        stored.header = header;
        let shard = &self.shards[shard];
        let on_disk = shard.cache.storage().may_contains(&Self::meta_key(&hex));
        shard.put(
            Self::meta_key(&hex),
            stored.encode(),
            on_disk || self.admission.admits(&hex, Some(stored.body_len)),
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
