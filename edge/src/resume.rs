//! Resuming a response whose upstream failed mid-body: what to ask the next upstream for, and
//! whether its answer continues the same bytes. Pure; the relay (`relay.rs`) does the I/O.
//!
//! Only a complete `200` with a strong validator is resumed: the next upstream is asked for
//! `Range: bytes=<delivered>-` with `If-Range` carrying the validator (RFC 9110 sections
//! 14.2 and 13.1.5), and its `206` is spliced on only if it starts at exactly that byte,
//! ends where the original would have, and carries the same validator. Anything else is a
//! cut transfer, never a wrong byte.

use http::{HeaderMap, StatusCode, header};

/// What identifies one representation's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validator {
    /// A strong entity tag, quotes included.
    ETag(String),
    /// A `Last-Modified` date, as sent.
    LastModified(String),
}

impl Validator {
    /// The validator of a response, if it has one usable with `If-Range`: a strong ETag
    /// (weak ones are not allowed there), else `Last-Modified`.
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        match text(header::ETAG) {
            Some(tag) if tag.starts_with('"') && tag.len() >= 2 && tag.ends_with('"') => {
                Some(Self::ETag(tag.to_string()))
            }
            _ => text(header::LAST_MODIFIED).map(|d| Self::LastModified(d.to_string())),
        }
    }

    /// The `If-Range` value.
    pub fn if_range(&self) -> &str {
        match self {
            Self::ETag(t) | Self::LastModified(t) => t,
        }
    }
}

/// The `Range` value that asks for the rest of an object after `delivered` bytes.
pub fn range_after(delivered: u64) -> String {
    format!("bytes={delivered}-")
}

/// The `Range` value that asks for bytes `first..end` (`end` exclusive, after `first`).
pub fn range_between(first: u64, end: u64) -> String {
    format!("bytes={first}-{}", end - 1)
}

/// Whether a response to [`range_after`] continues the original: `Ok` when it is a `206`
/// for exactly bytes `delivered..total` of the same representation.
pub fn continues(
    status: StatusCode,
    headers: &HeaderMap,
    delivered: u64,
    total: Option<u64>,
    original: &Validator,
) -> Result<(), String> {
    let (range, (_, last, complete)) = same_bytes_from(status, headers, delivered, original)?;
    if let Some(total) = total
        && (last + 1 != total || complete.is_some_and(|c| c != total))
    {
        return Err(format!("`{range}` does not end the {total}-byte object"));
    }
    Ok(())
}

/// Whether a response to [`range_between`] is exactly bytes `first..end` of the same
/// `total`-byte representation: a stored copy may then be continued with it.
pub fn answers_between(
    status: StatusCode,
    headers: &HeaderMap,
    first: u64,
    end: u64,
    total: u64,
    original: &Validator,
) -> Result<(), String> {
    let (range, (_, last, complete)) = same_bytes_from(status, headers, first, original)?;
    if last + 1 != end || complete != Some(total) {
        return Err(format!("`{range}` is not bytes {first}-{} of {total}", end - 1));
    }
    Ok(())
}

/// A `206` of the `original` representation that starts at byte `first`: its
/// `Content-Range`, for the caller to check where it ends.
fn same_bytes_from<'h>(
    status: StatusCode,
    headers: &'h HeaderMap,
    first: u64,
    original: &Validator,
) -> Result<(&'h str, ContentRange), String> {
    if status != StatusCode::PARTIAL_CONTENT {
        return Err(format!("answered {status}, not 206"));
    }
    if Validator::of(headers).as_ref() != Some(original) {
        return Err("the representation changed (validator differs)".into());
    }
    let (range, parsed) = content_range_of(headers)?;
    if parsed.0 != first {
        return Err(format!("starts at byte {}, not {first}", parsed.0));
    }
    Ok((range, parsed))
}

/// A `Content-Range`'s first and last byte and the complete length (`None` for `*`).
pub(crate) type ContentRange = (u64, u64, Option<u64>);

/// A response's `Content-Range`: its text (for messages) and its parts, or why there is none
/// to use.
pub(crate) fn content_range_of(headers: &HeaderMap) -> Result<(&str, ContentRange), String> {
    let value = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or("no Content-Range")?;
    let parsed = parse_content_range(value).ok_or_else(|| format!("bad Content-Range `{value}`"))?;
    Ok((value, parsed))
}

/// `bytes FIRST-LAST/COMPLETE` (COMPLETE may be `*`).
fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, complete) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    let complete = match complete.trim() {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    (first <= last).then_some((first, last, complete))
}

#[cfg(test)]
mod test {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn validators_prefer_a_strong_etag_and_refuse_weak_ones() {
        let v = Validator::of(&headers(&[
            ("etag", "\"abc\""),
            ("last-modified", "Sun, 29 Nov 2026 06:00:00 GMT"),
        ]));
        assert_eq!(v, Some(Validator::ETag("\"abc\"".into())));
        let v = Validator::of(&headers(&[
            ("etag", "W/\"abc\""),
            ("last-modified", "Sun, 29 Nov 2026 06:00:00 GMT"),
        ]));
        assert_eq!(v.unwrap().if_range(), "Sun, 29 Nov 2026 06:00:00 GMT");
        assert_eq!(Validator::of(&headers(&[("etag", "W/\"abc\"")])), None);
    }

    #[test]
    fn a_resumed_response_must_continue_exactly() {
        let v = Validator::ETag("\"v1\"".into());
        let ok = headers(&[("etag", "\"v1\""), ("content-range", "bytes 5000-19999/20000")]);
        assert_eq!(range_after(5000), "bytes=5000-");
        assert_eq!(
            continues(StatusCode::PARTIAL_CONTENT, &ok, 5000, Some(20000), &v),
            Ok(())
        );
        // A 200 means If-Range failed or ranges are not supported: splicing it would repeat bytes.
        assert!(continues(StatusCode::OK, &ok, 5000, Some(20000), &v).is_err());
        let changed = headers(&[("etag", "\"v2\""), ("content-range", "bytes 5000-19999/20000")]);
        assert!(continues(StatusCode::PARTIAL_CONTENT, &changed, 5000, Some(20000), &v).is_err());
        let shifted = headers(&[("etag", "\"v1\""), ("content-range", "bytes 4096-19999/20000")]);
        assert!(continues(StatusCode::PARTIAL_CONTENT, &shifted, 5000, Some(20000), &v).is_err());
        let short = headers(&[("etag", "\"v1\""), ("content-range", "bytes 5000-9999/20000")]);
        assert!(continues(StatusCode::PARTIAL_CONTENT, &short, 5000, Some(20000), &v).is_err());
        let other_size = headers(&[("etag", "\"v1\""), ("content-range", "bytes 5000-19999/30000")]);
        assert!(continues(StatusCode::PARTIAL_CONTENT, &other_size, 5000, Some(20000), &v).is_err());
        let unknown = headers(&[("etag", "\"v1\""), ("content-range", "bytes 5000-19999/*")]);
        assert_eq!(
            continues(StatusCode::PARTIAL_CONTENT, &unknown, 5000, Some(20000), &v),
            Ok(())
        );
        let garbage = headers(&[("etag", "\"v1\""), ("content-range", "bytes 9-2/20000")]);
        assert!(continues(StatusCode::PARTIAL_CONTENT, &garbage, 9, Some(20000), &v).is_err());
    }

    #[test]
    fn a_stored_copy_is_continued_only_with_exactly_its_missing_bytes() {
        let v = Validator::ETag("\"v1\"".into());
        assert_eq!(range_between(65536, 131072), "bytes=65536-131071");
        let answer = |range: &str, etag: &str| headers(&[("etag", etag), ("content-range", range)]);
        let ok = answer("bytes 65536-131071/200000", "\"v1\"");
        let check = |status, h: &HeaderMap| answers_between(status, h, 65536, 131072, 200000, &v);
        assert_eq!(check(StatusCode::PARTIAL_CONTENT, &ok), Ok(()));
        assert!(
            check(StatusCode::OK, &ok).is_err(),
            "a whole 200 is not the range"
        );
        for (range, etag) in [
            ("bytes 65536-131071/200000", "\"v2\""), // another representation
            ("bytes 0-131071/200000", "\"v1\""),     // starts elsewhere
            ("bytes 65536-199999/200000", "\"v1\""), // ends elsewhere
            ("bytes 65536-131071/300000", "\"v1\""), // another size
            ("bytes 65536-131071/*", "\"v1\""),      // size unknown: cannot be the same
        ] {
            assert!(
                check(StatusCode::PARTIAL_CONTENT, &answer(range, etag)).is_err(),
                "{range} {etag}"
            );
        }
    }
}
