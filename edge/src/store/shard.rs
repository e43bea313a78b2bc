//! One disk of the cache: a foyer hybrid cache (a share of the memory tier in front of that
//! disk), the disk's health and the index of the objects it holds. Without a disk the store
//! is one shard of memory only. Objects are spread over the disks in service by rendezvous
//! hashing of their key ([`route`]), so a disk taken out of service moves only its own objects
//! (to the other disks, as they are fetched again), and a restart finds each object where it
//! was written.

use super::disk::DiskState;
use super::index::KeyIndex;
use bytes::Bytes;
use foyer::{HybridCache, HybridCacheProperties, Location, Source};
use std::hash::BuildHasher;

/// One disk (or the memory tier alone) and what it holds.
pub(super) struct Shard {
    pub cache: HybridCache<String, Bytes>,
    /// The disk's health; `None` for a shard of memory only.
    pub disk: Option<DiskState>,
    /// Keys of the objects stored here.
    pub index: KeyIndex,
}

impl Shard {
    /// Whether this shard has a disk and it is in service.
    pub fn disk_in_service(&self) -> bool {
        self.disk.as_ref().is_some_and(|d| d.in_service())
    }

    /// Whether an entry is held where reads look (no disk read): memory only while the disk
    /// is out of service, since foyer's disk index still lists what the dead disk held.
    pub fn contains(&self, key: &String) -> bool {
        if self.disk.is_some() && !self.disk_in_service() {
            self.cache.memory().contains(key)
        } else {
            self.cache.contains(key)
        }
    }

    /// Stores an entry, on disk too when `to_disk` and the disk is in service.
    pub fn put(&self, key: String, value: Bytes, to_disk: bool) {
        if self.disk.is_some() && (!to_disk || !self.disk_in_service()) {
            let memory_only = HybridCacheProperties::default().with_location(Location::InMem);
            self.cache.insert_with_properties(key, value, memory_only);
        } else {
            self.cache.insert(key, value);
        }
    }

    /// Looks an entry up, saying whether it was read from the disk tier; on a disk out of
    /// service, in memory only. A read error from the disk tier takes the disk out of service.
    pub async fn fetch_with_source(&self, key: &String) -> Option<(Bytes, bool)> {
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

    /// Whether an entry is in either tier. An entry that left the memory tier while its disk
    /// write is still being flushed is in neither index for that moment, so before calling
    /// it missing, wait for the writes in flight to land and look again.
    pub async fn present(&self, key: &String) -> bool {
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
    pub async fn get_entry(&self, key: &String) -> Option<(Bytes, bool)> {
        if let Some(v) = self.fetch_with_source(key).await {
            return Some(v);
        }
        if self.disk_in_service() {
            self.cache.storage().wait().await;
            return self.fetch_with_source(key).await;
        }
        None
    }
}

/// The shard for the object `hex` among `shards` shards, by rendezvous hashing over those
/// `eligible` says may take it (every shard when none may).
pub(super) fn route(hex: &str, shards: usize, eligible: impl Fn(usize) -> bool) -> usize {
    let score = |i: usize| foyer::DefaultHasher::default().hash_one((i, hex));
    let best = |candidates: &mut dyn Iterator<Item = usize>| candidates.max_by_key(|&i| score(i));
    best(&mut (0..shards).filter(|&i| eligible(i)))
        .or_else(|| best(&mut (0..shards)))
        .unwrap_or(0)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn objects_spread_over_the_disks_and_a_lost_disk_moves_only_its_own() {
        let keys: Vec<String> = (0..3000).map(|i| format!("{i:016x}")).collect();
        let all: Vec<usize> = keys.iter().map(|k| route(k, 3, |_| true)).collect();
        for disk in 0..3 {
            let share = all.iter().filter(|&&s| s == disk).count();
            assert!((800..1200).contains(&share), "disk {disk} got {share} of 3000");
        }
        // Disk 1 out of service: its objects move to 0 and 2, nobody else's moves.
        for (key, &before) in keys.iter().zip(&all) {
            let after = route(key, 3, |i| i != 1);
            if before == 1 {
                assert_ne!(after, 1);
            } else {
                assert_eq!(after, before, "{key} moved without reason");
            }
        }
        // No disk in service (or none configured): still one answer, the same as with all.
        assert_eq!(route(&keys[7], 3, |_| false), all[7]);
        assert_eq!(route(&keys[7], 1, |_| true), 0);
    }
}
