//! `multipart/byteranges` (RFC 9110 section 14.6): the framing around each part of a
//! `206` that answers several ranges, and its exact length, so that the response can carry
//! a `Content-Length`. Pure; the slicer writes the parts' bytes between these frames.

use bytes::Bytes;

/// Ranges whose gap is smaller than this are sent as one part: a part's own framing costs
/// about as much (RFC 9110 section 14.2 lets a server coalesce them).
pub const COALESCE_GAP: u64 = 80;

/// One multipart answer: its boundary, the parts' ranges and the object they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    boundary: String,
    content_type: Option<String>,
    total: u64,
    parts: Vec<(u64, u64)>,
}

impl Multipart {
    /// Parts `parts` (inclusive byte ranges, in the order sent) of a `total`-byte object of
    /// `content_type`, framed with a fresh random boundary.
    pub fn new(parts: Vec<(u64, u64)>, total: u64, content_type: Option<String>) -> Self {
        let boundary = format!("{:016x}", rand::random::<u64>());
        Self {
            boundary,
            content_type,
            total,
            parts,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// What goes before part `i`'s bytes: the boundary and the part's fields.
    pub fn part_head(&self, i: usize) -> Bytes {
        let (first, last) = self.parts[i];
        let mut head = format!("\r\n--{}\r\n", self.boundary);
        if let Some(ct) = &self.content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str(&format!(
            "Content-Range: bytes {first}-{last}/{}\r\n\r\n",
            self.total
        ));
        Bytes::from(head)
    }

    /// What ends the body: the closing boundary.
    pub fn trailer(&self) -> Bytes {
        Bytes::from(format!("\r\n--{}--\r\n", self.boundary))
    }

    /// The body's whole length: every part's framing and bytes, and the trailer.
    pub fn content_length(&self) -> u64 {
        let framing: u64 = (0..self.parts.len())
            .map(|i| self.part_head(i).len() as u64)
            .sum();
        let bytes: u64 = self.parts.iter().map(|(a, b)| b - a + 1).sum();
        framing + bytes + self.trailer().len() as u64
    }
}

/// Inclusive ranges in ascending order with those that overlap, touch or lie within
/// [`COALESCE_GAP`] of each other merged.
pub fn coalesce(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match out.last_mut() {
            Some(prev) if first <= prev.1.saturating_add(COALESCE_GAP) => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn close_or_overlapping_ranges_are_one_part() {
        assert_eq!(coalesce(vec![(500, 599), (0, 9)]), vec![(0, 9), (500, 599)]);
        assert_eq!(coalesce(vec![(0, 99), (50, 150)]), vec![(0, 150)]);
        assert_eq!(coalesce(vec![(0, 99), (100, 199)]), vec![(0, 199)]);
        assert_eq!(
            coalesce(vec![(0, 99), (150, 199)]),
            vec![(0, 199)],
            "a 50-byte gap"
        );
        assert_eq!(
            coalesce(vec![(0, 99), (1000, 1099), (10, 20)]),
            vec![(0, 99), (1000, 1099)]
        );
    }

    /// The framing is RFC 9110's, and the length announced is the length written.
    #[test]
    fn the_body_is_framed_and_its_length_exact() {
        let object: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let parts = vec![(0, 9), (1500, 1999)];
        let m = Multipart::new(parts.clone(), 2000, Some("video/mp4".into()));
        let mut body = Vec::new();
        for (i, (first, last)) in parts.iter().enumerate() {
            body.extend_from_slice(&m.part_head(i));
            body.extend_from_slice(&object[*first as usize..=*last as usize]);
        }
        body.extend_from_slice(&m.trailer());
        assert_eq!(body.len() as u64, m.content_length());
        let boundary = m.content_type().rsplit_once("boundary=").unwrap().1.to_string();
        assert_eq!(boundary.len(), 16);
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!(
            "\r\n--{boundary}\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/2000\r\n\r\n"
        )));
        assert!(text.contains(&format!(
            "\r\n--{boundary}\r\nContent-Type: video/mp4\r\nContent-Range: bytes 1500-1999/2000\r\n\r\n"
        )));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        let untyped = Multipart::new(vec![(0, 0), (5, 5)], 6, None);
        assert!(!String::from_utf8_lossy(&untyped.part_head(0)).contains("Content-Type"));
        assert_ne!(
            untyped.content_type(),
            m.content_type(),
            "a fresh boundary each time"
        );
    }
}
