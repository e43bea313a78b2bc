//! Filling an object from upstream: bytes go to the in-flight object (for followers) and, in
//! chunks, to foyer; the meta entry is written last.

use super::FoyerStore;
use super::entry::StoredMeta;
use super::inflight::Inflight;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::Result;
use pingora_cache::storage::{HandleMiss, MissFinishType};
use std::sync::Arc;

/// A unique id for a fill, even across restarts (the clock) and within one (the counter).
pub(super) fn fresh_object_id(write_id: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    nanos ^ write_id.rotate_left(48)
}

/// Writing a fill: readers follow `obj`; chunks go to foyer as they complete; the meta entry
/// is written last, so an object is visible in the cache only once all its chunks are.
pub(super) struct ChunkWriter {
    pub(super) store: &'static FoyerStore,
    /// The shard (disk) the object is written to, chosen when the fill began.
    pub(super) shard: usize,
    /// The primary key, for the index.
    pub(super) primary: String,
    pub(super) hex: String,
    pub(super) write_id: u64,
    pub(super) write_tag: [u8; 8],
    pub(super) object_id: u64,
    /// Whether the object has earned the disk (`admission`); else memory only.
    pub(super) to_disk: bool,
    pub(super) obj: Arc<Inflight>,
    pub(super) pending: BytesMut,
    pub(super) next_chunk: u64,
    pub(super) written: u64,
    pub(super) finished: bool,
}

#[async_trait]
impl HandleMiss for ChunkWriter {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.written += data.len() as u64;
        self.pending.extend_from_slice(&data);
        self.obj.append(data);
        let cs = self.store.chunk_size;
        while self.pending.len() >= cs {
            let chunk = self.pending.split_to(cs);
            self.store_chunk(&chunk);
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        if !self.pending.is_empty() {
            let chunk = self.pending.split();
            self.store_chunk(&chunk);
        }
        let stored = StoredMeta {
            object_id: self.object_id,
            body_len: self.written,
            chunk_size: self.store.chunk_size as u32,
            internal: self.obj.meta.0.clone(),
            header: self.obj.meta.1.clone(),
        };
        let shard = &self.store.shards[self.shard];
        shard.put(FoyerStore::meta_key(&self.hex), stored.encode(), self.to_disk);
        shard.index.record(&self.primary, &self.hex, self.written);
        self.obj.finish();
        self.store.unregister(&self.hex, self.write_id);
        self.finished = true;
        Ok(MissFinishType::Created(self.written as usize))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(&self.write_tag)
    }
}

impl ChunkWriter {
    /// Hands the next chunk to foyer.
    fn store_chunk(&mut self, chunk: &[u8]) {
        self.store.put_chunk(
            self.shard,
            &self.hex,
            self.object_id,
            self.next_chunk,
            chunk,
            self.to_disk,
        );
        self.next_chunk += 1;
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Readers following this fill get an error, not a short body.
            self.obj.fail();
            self.store.unregister(&self.hex, self.write_id);
        }
    }
}
