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
    /// Chunk 0 (and whether it came off the disk), already read by the lookup.
    pub(super) first: Option<(Bytes, bool)>,
}

impl ChunkReader {
    async fn read(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let cs = self.meta.chunk_size as u64;
        let n = self.pos / cs;
        let (chunk, from_disk) = match (n, &self.first) {
            (0, Some(first)) => first.clone(),
            _ => {
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
