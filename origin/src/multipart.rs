//! The `multipart/byteranges` framing of a multi-range 206 (RFC 9110 section 14.6).
//!
//! The layout is computed up front, so the exact `Content-Length` is known before the first
//! byte is read from storage; the body then streams each part's bytes between the framing.

use bytes::Bytes;
use std::ops::RangeInclusive;

/// The framing of a multipart body: the bytes around each range, and the total length.
#[derive(Debug, Clone)]
pub struct MultipartLayout {
    /// `Content-Type` of the whole response, with its boundary.
    pub content_type: String,
    /// For each range, the part header sent before its bytes.
    pub parts: Vec<(Bytes, RangeInclusive<u64>)>,
    /// The closing delimiter, sent after the last part.
    pub closing: Bytes,
    /// Exact length of the whole body.
    pub content_length: u64,
}

/// Lays out a multipart body for `ranges` of a `size`-byte representation of `part_type`.
pub fn layout(ranges: &[RangeInclusive<u64>], size: u64, part_type: &str, boundary: &str) -> MultipartLayout {
    let mut parts = Vec::with_capacity(ranges.len());
    let mut content_length = 0u64;
    for (i, r) in ranges.iter().enumerate() {
        // Every part but the first starts with the CRLF that ends the previous part's bytes.
        let lead = if i == 0 { "" } else { "\r\n" };
        let header = format!(
            "{lead}--{boundary}\r\nContent-Type: {part_type}\r\nContent-Range: bytes {}-{}/{size}\r\n\r\n",
            r.start(),
            r.end()
        );
        content_length += header.len() as u64 + (r.end() - r.start() + 1);
        parts.push((Bytes::from(header), r.clone()));
    }
    let closing = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    content_length += closing.len() as u64;
    MultipartLayout {
        content_type: format!("multipart/byteranges; boundary={boundary}"),
        parts,
        closing,
        content_length,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn assemble(l: &MultipartLayout, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (header, r) in &l.parts {
            out.extend_from_slice(header);
            out.extend_from_slice(&data[*r.start() as usize..=*r.end() as usize]);
        }
        out.extend_from_slice(&l.closing);
        out
    }

    #[test]
    fn content_length_matches_the_assembled_body() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let l = layout(&[0..=9, 500..=999], 1000, "video/mp4", "B0UNDARY");
        assert_eq!(assemble(&l, &data).len() as u64, l.content_length);
    }

    #[test]
    fn framing_follows_rfc_9110() {
        let data = b"0123456789";
        let l = layout(&[0..=1, 8..=9], 10, "text/plain", "XYZ");
        let body = String::from_utf8(assemble(&l, data)).unwrap();
        assert_eq!(
            body,
            "--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\r\n\
             --XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\r\n--XYZ--\r\n"
        );
        assert_eq!(l.content_type, "multipart/byteranges; boundary=XYZ");
    }
}
