//! The stored form of a cached object: one meta entry and numbered body chunks, each with a
//! CRC-32C-style checksum (crc32fast) so that a corrupt or truncated entry is detected and
//! dropped instead of served.
//!
//! Meta: `SEM1 | crc32(rest) | object_id u64 | body_len u64 | chunk_size u32 |
//!        internal_len u32 | internal | header_len u32 | header` (little endian).
//! Chunk: `crc32(data) | data`.
//! The object id is fresh for every fill, and chunk keys carry it, so the chunks of an older
//! or abandoned fill can never be read under a newer meta.

use bytes::{BufMut, Bytes, BytesMut};

const MAGIC: &[u8; 4] = b"SEM1";

/// The decoded meta entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMeta {
    /// Identifies the fill that wrote the chunks.
    pub object_id: u64,
    /// Body length in bytes.
    pub body_len: u64,
    /// Chunk size the body was split with.
    pub chunk_size: u32,
    /// pingora's serialized `CacheMeta`: internal part.
    pub internal: Vec<u8>,
    /// pingora's serialized `CacheMeta`: response header part.
    pub header: Vec<u8>,
}

/// Why a stored entry could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Shorter than its own framing says.
    #[error("entry truncated")]
    Truncated,
    /// Not written by this format.
    #[error("entry has an unknown format")]
    BadMagic,
    /// The checksum does not match the bytes.
    #[error("entry checksum mismatch")]
    Checksum,
}

impl StoredMeta {
    /// Encodes the meta entry.
    pub fn encode(&self) -> Bytes {
        let mut rest = BytesMut::with_capacity(32 + self.internal.len() + self.header.len());
        rest.put_u64_le(self.object_id);
        rest.put_u64_le(self.body_len);
        rest.put_u32_le(self.chunk_size);
        rest.put_u32_le(self.internal.len() as u32);
        rest.put_slice(&self.internal);
        rest.put_u32_le(self.header.len() as u32);
        rest.put_slice(&self.header);
        let mut out = BytesMut::with_capacity(8 + rest.len());
        out.put_slice(MAGIC);
        out.put_u32_le(crc32fast::hash(&rest));
        out.put_slice(&rest);
        out.freeze()
    }

    /// Decodes and verifies a meta entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() < 8 {
            return Err(EntryError::Truncated);
        }
        if &bytes[..4] != MAGIC {
            return Err(EntryError::BadMagic);
        }
        let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
        let rest = &bytes[8..];
        if crc32fast::hash(rest) != crc {
            return Err(EntryError::Checksum);
        }
        let mut r = Reader(rest);
        let object_id = r.u64()?;
        let body_len = r.u64()?;
        let chunk_size = r.u32()?;
        let n = r.u32()? as usize;
        let internal = r.take(n)?.to_vec();
        let n = r.u32()? as usize;
        let header = r.take(n)?.to_vec();
        if chunk_size == 0 {
            return Err(EntryError::Truncated);
        }
        Ok(Self {
            object_id,
            body_len,
            chunk_size,
            internal,
            header,
        })
    }

    /// How many chunks the body has.
    pub fn chunk_count(&self) -> u64 {
        self.body_len.div_ceil(self.chunk_size as u64)
    }
}

/// Frames a body chunk with its checksum.
pub fn encode_chunk(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + data.len());
    out.put_u32_le(crc32fast::hash(data));
    out.put_slice(data);
    out.freeze()
}

/// Verifies a framed chunk and returns its data (zero-copy).
pub fn decode_chunk(framed: &Bytes, expected_len: usize) -> Result<Bytes, EntryError> {
    let data = unframe_chunk(framed, expected_len)?;
    let crc = u32::from_le_bytes(framed[..4].try_into().unwrap());
    if crc32fast::hash(&data) != crc {
        return Err(EntryError::Checksum);
    }
    Ok(data)
}

/// Returns a framed chunk's data after checking only its length. For chunks served from the
/// memory tier, which were framed here or verified when they came off the disk: a profile
/// of hot hits showed the checksum at 12% of the edge's CPU.
pub fn unframe_chunk(framed: &Bytes, expected_len: usize) -> Result<Bytes, EntryError> {
    if framed.len() < 4 || framed.len() - 4 != expected_len {
        return Err(EntryError::Truncated);
    }
    Ok(framed.slice(4..))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        if self.0.len() < n {
            return Err(EntryError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, EntryError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, EntryError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn meta() -> StoredMeta {
        StoredMeta {
            object_id: 7,
            body_len: 3_000_000,
            chunk_size: 1 << 20,
            internal: vec![1, 2, 3],
            header: b"HTTP/1.1 200 OK\r\n".to_vec(),
        }
    }

    #[test]
    fn meta_round_trips() {
        let m = meta();
        assert_eq!(StoredMeta::decode(&m.encode()).unwrap(), m);
        assert_eq!(m.chunk_count(), 3);
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_detected() {
        let enc = meta().encode();
        for i in 0..enc.len() {
            let mut bad = enc.to_vec();
            bad[i] ^= 0x40;
            assert!(StoredMeta::decode(&bad).is_err(), "flip at {i} went unnoticed");
        }
        for cut in 0..enc.len() {
            assert!(
                StoredMeta::decode(&enc[..cut]).is_err(),
                "cut at {cut} went unnoticed"
            );
        }
    }

    #[test]
    fn unframing_checks_the_length_only() {
        let framed = encode_chunk(b"segment bytes");
        assert_eq!(&unframe_chunk(&framed, 13).unwrap()[..], b"segment bytes");
        assert_eq!(unframe_chunk(&framed, 14), Err(EntryError::Truncated));
    }

    #[test]
    fn chunks_verify_their_bytes_and_length() {
        let framed = encode_chunk(b"segment bytes");
        assert_eq!(&decode_chunk(&framed, 13).unwrap()[..], b"segment bytes");
        assert_eq!(decode_chunk(&framed, 12), Err(EntryError::Truncated));
        let mut bad = framed.to_vec();
        bad[6] ^= 1;
        assert_eq!(decode_chunk(&Bytes::from(bad), 13), Err(EntryError::Checksum));
    }
}
