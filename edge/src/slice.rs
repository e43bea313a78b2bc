//! Large objects in fixed-size slices (what nginx's slice module and ATS's slice plugin do):
//! which route a request takes, which slices it needs, whether a slice's answer may be
//! spliced, and the client's response head. Pure; `slicer.rs` does the I/O through pingora
//! subrequests, so each slice is an ordinary cached object (key: [`slice_key`]) with its own
//! collapsing, freshness and revalidation.
//!
//! When: a GET with `Range` or a HEAD for an object the cache does not hold whole, and any
//! GET of an object whose slices it holds. A range miss so fetches only the slices it touches,
//! and an object no larger than one slice comes whole with its first slice (the small
//! object "fetched whole once"). A GET without `Range` of an object held neither way
//! fetches it whole, as before, and a range of an object held whole is served from it.
//!
//! Never a wrong byte: each slice must be a `206` for exactly its bytes of an object of the
//! same length and validator as the first slice's; anything else fails the response before
//! its head or cuts it after. An upstream that ignores `Range` (a `200`) is served from that
//! whole body, and nothing of it is stored as a slice.
//!
//! [`slice_key`]: crate::cache_key::slice_key

use crate::byteranges::{self, Multipart};
use crate::resume::{Validator, content_range_of};
use http::{HeaderMap, Method, StatusCode, header};
use http_range_header::{ParsedRanges, RangeUnsatisfiableError, SyntacticallyCorrectRange};
use pingora::http::ResponseHeader;
use std::num::NonZeroUsize;

/// Most ranges one `Range` may list; more is refused (416), as the origin does.
const MAX_RANGES: usize = 64;

/// Bytes `first..=last` of an object: its `index`-th slice (the last one may end earlier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Position among the object's slices, from 0.
    pub index: u64,
    /// First byte.
    pub first: u64,
    /// Last byte, if the object is that long.
    pub last: u64,
}

impl Slice {
    /// The slice of `size` bytes that holds byte `offset`.
    pub fn holding(offset: u64, size: u64) -> Slice {
        let index = offset / size;
        let first = index * size;
        Slice {
            index,
            first,
            // A range near u64::MAX (a client may send any number) must not overflow.
            last: first.saturating_add(size - 1),
        }
    }

    /// The slice after this one.
    pub fn next(self) -> Slice {
        Slice::holding(self.last.saturating_add(1), self.last - self.first + 1)
    }

    /// The `Range` value that asks for it.
    pub fn range_value(&self) -> String {
        format!("bytes={}-{}", self.first, self.last)
    }
}

/// How a GET or HEAD is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// As one cached object (pingora's own path).
    Whole,
    /// From slices.
    Sliced,
}

/// The route: `partial` when the request needs only part of the object's bytes (a GET with
/// `Range`, or a HEAD, which needs none: pingora would fetch the whole object to answer
/// it), `whole_held` when the cache holds (or is filling) the whole object, `slices_held`
/// when it holds slices of it.
pub fn route(partial: bool, whole_held: bool, slices_held: bool) -> Route {
    if whole_held {
        Route::Whole
    } else if partial || slices_held {
        Route::Sliced
    } else {
        Route::Whole
    }
}

/// What the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The whole object.
    Whole,
    /// These ranges (not yet checked against the object's length).
    Ranges(ParsedRanges),
}

/// What to answer once the object's length is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `200`, every byte.
    Full,
    /// `206`, bytes `first..=last`.
    Partial { first: u64, last: u64 },
    /// `206` `multipart/byteranges`, these inclusive ranges in ascending order (`byteranges.rs`).
    Multipart(Vec<(u64, u64)>),
    /// `416`.
    Unsatisfiable,
}

impl Wanted {
    /// From a request: a GET's one `Range`; one that does not parse is ignored (RFC 9110
    /// section 14.2), leaving the whole object. A HEAD always describes the whole object.
    pub fn of(method: &Method, headers: &HeaderMap) -> Wanted {
        if method != Method::GET {
            return Wanted::Whole;
        }
        let mut values = headers.get_all(header::RANGE).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Wanted::Whole;
        };
        let max = NonZeroUsize::new(MAX_RANGES).unwrap_or(NonZeroUsize::MIN);
        match value
            .to_str()
            .ok()
            .map(|v| http_range_header::parse_range_header_with_max_ranges(v, max))
        {
            Some(Ok(ranges)) => Wanted::Ranges(ranges),
            _ => Wanted::Whole,
        }
    }

    /// The slice to fetch first, before the length is known: the one holding the first
    /// byte asked for; slice 0 when a suffix range needs the length first.
    pub fn first_slice(&self, size: u64) -> Slice {
        let start = match self {
            Wanted::Whole => 0,
            Wanted::Ranges(ranges) => ranges
                .clone()
                .into_ranges()
                .iter()
                .map(|r| match *r {
                    SyntacticallyCorrectRange::FromStart(s) | SyntacticallyCorrectRange::Indexed(s, _) => s,
                    SyntacticallyCorrectRange::FromLast(_) => 0,
                })
                .min()
                .unwrap_or(0),
        };
        Slice::holding(start, size)
    }

    /// The answer for an object of `total` bytes; `if_range_holds` is false when an
    /// `If-Range` names another version (the whole object then, RFC 9110 section 13.1.5).
    /// Several ranges are sent as the parts of a `multipart/byteranges` body, in ascending
    /// order, those that overlap or nearly touch merged (RFC 9110 section 14.2 allows both);
    /// when that leaves one, as a plain `206`.
    pub fn answer(&self, total: u64, if_range_holds: bool) -> Answer {
        let ranges = match self {
            Wanted::Ranges(ranges) if if_range_holds => ranges,
            _ => return Answer::Full,
        };
        match ranges.validate(total) {
            Ok(spans) => {
                let parts = byteranges::coalesce(spans.iter().map(|r| (*r.start(), *r.end())).collect());
                match parts[..] {
                    [] => Answer::Full,
                    [(first, last)] => Answer::Partial { first, last },
                    _ => Answer::Multipart(parts),
                }
            }
            Err(RangeUnsatisfiableError::Unsatisfiable | RangeUnsatisfiableError::Rejected(_)) => {
                Answer::Unsatisfiable
            }
            Err(_) => Answer::Full,
        }
    }
}

impl Answer {
    /// The ranges of the object sent, in order, for an object of `total` bytes (none: no
    /// body).
    pub fn parts(&self, total: u64) -> Vec<(u64, u64)> {
        match self {
            Answer::Full if total > 0 => vec![(0, total - 1)],
            Answer::Partial { first, last } => vec![(*first, *last)],
            Answer::Multipart(parts) => parts.clone(),
            _ => Vec::new(),
        }
    }
}

/// A slice's answer, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceHead {
    /// Offset in the object of the body's first byte.
    pub first: u64,
    /// Body bytes.
    pub len: u64,
    /// The object's length.
    pub total: u64,
    /// The object's validator.
    pub validator: Option<Validator>,
    /// A `200` for the whole object: the upstream ignored `Range`.
    pub whole: bool,
}

/// What earlier slices established: the object's length and validator.
#[derive(Debug, Clone, Copy)]
pub struct Established<'a> {
    /// The object's length.
    pub total: u64,
    /// Its validator.
    pub validator: Option<&'a Validator>,
}

/// Checks the answer to a request for `slice`: a `206` for exactly that range (its end
/// clipped to the object's), or a `200` with the whole object; of the same length and
/// validator as `before`, when earlier slices set them.
pub fn check(
    status: StatusCode,
    headers: &HeaderMap,
    slice: Slice,
    before: Option<Established<'_>>,
) -> Result<SliceHead, String> {
    let validator = Validator::of(headers);
    let head = match status {
        StatusCode::PARTIAL_CONTENT => {
            let (value, (first, last, total)) = content_range_of(headers)?;
            let total = total.ok_or_else(|| format!("`{value}` does not give the length"))?;
            if first != slice.first || last != slice.last.min(total.saturating_sub(1)) {
                return Err(format!("`{value}` is not bytes {}-{}", slice.first, slice.last));
            }
            SliceHead {
                first,
                len: last - first + 1,
                total,
                validator,
                whole: false,
            }
        }
        StatusCode::OK => {
            let total = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .ok_or("a 200 without Content-Length")?;
            SliceHead {
                first: 0,
                len: total,
                total,
                validator,
                whole: true,
            }
        }
        other => return Err(format!("answered {other}")),
    };
    if let Some(before) = before {
        if head.total != before.total {
            return Err(format!(
                "the object is {} bytes now, {} before: it changed",
                head.total, before.total
            ));
        }
        if head.validator.as_ref() != before.validator {
            return Err("the object's validator changed".into());
        }
    }
    Ok(head)
}

/// Whether the request's `If-Range` (if any) holds for the object whose slice answered
/// with `object`: a strong entity tag equal to its `ETag`, or a date equal to its
/// `Last-Modified` (RFC 9110 section 13.1.5).
pub fn if_range_holds(request: &HeaderMap, object: &HeaderMap) -> bool {
    let Some(condition) = request.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(condition) = condition.to_str().map(str::trim) else {
        return false;
    };
    let field = if condition.starts_with('"') {
        header::ETAG
    } else if condition.starts_with("W/") {
        return false;
    } else {
        header::LAST_MODIFIED
    };
    object
        .get(field)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == condition)
}

/// Whether a GET's preconditions say the client's copy is current, so that a `304` answers
/// it (RFC 9110 section 13.2.2): its `If-None-Match` names the object's entity tag (weak
/// comparison, section 13.1.2), or, only when it sends no `If-None-Match`, the object was
/// not modified after its `If-Modified-Since` (section 13.1.3).
pub fn not_modified(request: &HeaderMap, object: &HeaderMap) -> bool {
    fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }
    if request.contains_key(header::IF_NONE_MATCH) {
        let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
        let Some(etag) = text(object, header::ETAG) else {
            return false;
        };
        let etag = opaque(etag);
        return request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim() == "*" || opaque(tag) == etag);
    }
    let date = |headers, name| text(headers, name).and_then(|v| httpdate::parse_http_date(v.trim()).ok());
    match (
        date(request, header::IF_MODIFIED_SINCE),
        date(object, header::LAST_MODIFIED),
    ) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// The client's response head: the fields of the first slice's answer, with the status,
/// length and `Content-Range` of `answer` for an object of `total` bytes; for several ranges,
/// the `multipart/byteranges` type and length, and the framing the body must then have.
pub fn client_head(
    slice: &ResponseHeader,
    answer: &Answer,
    total: u64,
) -> pingora::Result<(ResponseHeader, Option<Multipart>)> {
    let mut head = slice.clone();
    for name in [
        header::CONTENT_RANGE,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        head.remove_header(&name);
    }
    let mut multipart = None;
    let (status, length) = match answer {
        Answer::Full => (StatusCode::OK, total),
        &Answer::Partial { first, last } => {
            head.insert_header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{total}"))?;
            (StatusCode::PARTIAL_CONTENT, last - first + 1)
        }
        Answer::Multipart(parts) => {
            // Each part names the object's own type; the response's becomes multipart.
            let object_type = slice
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let framing = Multipart::new(parts.clone(), total, object_type);
            head.insert_header(header::CONTENT_TYPE, framing.content_type())?;
            let length = framing.content_length();
            multipart = Some(framing);
            (StatusCode::PARTIAL_CONTENT, length)
        }
        Answer::Unsatisfiable => {
            head.insert_header(header::CONTENT_RANGE, format!("bytes */{total}"))?;
            (StatusCode::RANGE_NOT_SATISFIABLE, 0)
        }
    };
    head.set_status(status)?;
    head.insert_header(header::CONTENT_LENGTH, length.to_string())?;
    head.insert_header(header::ACCEPT_RANGES, "bytes")?;
    Ok((head, multipart))
}

/// The `304` for a request whose `If-None-Match` matched: the slice's fields that describe
/// the object, no body.
pub fn not_modified_head(slice: &ResponseHeader) -> pingora::Result<ResponseHeader> {
    let mut head = slice.clone();
    for name in [
        header::CONTENT_RANGE,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONTENT_TYPE,
    ] {
        head.remove_header(&name);
    }
    head.set_status(StatusCode::NOT_MODIFIED)?;
    Ok(head)
}

#[cfg(test)]
mod test {
    use super::*;

    const MB: u64 = 1 << 20;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn wanted(range: &str) -> Wanted {
        Wanted::of(&Method::GET, &headers(&[("range", range)]))
    }

    #[test]
    fn slices_tile_the_object() {
        let s = Slice::holding(5_000_000, 4 * MB);
        assert_eq!((s.index, s.first, s.last), (1, 4 * MB, 8 * MB - 1));
        assert_eq!(s.next(), Slice::holding(8 * MB, 4 * MB));
        assert_eq!(s.range_value(), format!("bytes={}-{}", 4 * MB, 8 * MB - 1));
        assert_eq!(Slice::holding(0, 4 * MB).index, 0);
        assert_eq!(Slice::holding(4 * MB - 1, 4 * MB).index, 0);
        // Absurd offsets from a client do not overflow.
        let end = Slice::holding(u64::MAX, 4 * MB);
        assert_eq!(end.last, u64::MAX);
        assert!(end.next().first >= end.first);
        assert_eq!(
            wanted("bytes=99999999999999999999-").first_slice(4 * MB).last,
            u64::MAX
        );
    }

    #[test]
    fn ranges_go_to_slices_unless_the_whole_object_is_held() {
        assert_eq!(route(true, false, false), Route::Sliced, "a range (or HEAD) miss");
        assert_eq!(route(true, true, false), Route::Whole, "held whole");
        assert_eq!(route(true, true, true), Route::Whole, "held whole wins");
        assert_eq!(
            route(false, false, true),
            Route::Sliced,
            "a GET of a sliced object"
        );
        assert_eq!(route(false, false, false), Route::Whole, "a plain miss");
    }

    #[test]
    fn the_first_slice_holds_the_first_byte_asked_for() {
        assert_eq!(wanted("bytes=5000000-7000000").first_slice(4 * MB).index, 1);
        assert_eq!(wanted("bytes=9000000-").first_slice(4 * MB).index, 2);
        assert_eq!(wanted("bytes=-100").first_slice(4 * MB).index, 0, "length first");
        assert_eq!(
            wanted("bytes=9000000-9000010, 100-200").first_slice(4 * MB).index,
            0
        );
        assert_eq!(Wanted::Whole.first_slice(4 * MB).index, 0);
    }

    #[test]
    fn answers_follow_rfc_9110() {
        let total = 10 * MB;
        assert_eq!(
            wanted("bytes=100-199").answer(total, true),
            Answer::Partial {
                first: 100,
                last: 199
            }
        );
        assert_eq!(
            wanted("bytes=-10").answer(total, true),
            Answer::Partial {
                first: total - 10,
                last: total - 1
            }
        );
        assert_eq!(
            wanted("bytes=100-").answer(total, true),
            Answer::Partial {
                first: 100,
                last: total - 1
            }
        );
        assert_eq!(
            wanted("bytes=100-99999999999").answer(total, true),
            Answer::Partial {
                first: 100,
                last: total - 1
            }
        );
        assert_eq!(
            wanted("bytes=500-599, 0-9").answer(total, true),
            Answer::Multipart(vec![(0, 9), (500, 599)]),
            "several ranges: parts in ascending order"
        );
        assert_eq!(
            wanted("bytes=0-9, 20-29").answer(total, true),
            Answer::Partial { first: 0, last: 29 },
            "ranges a few bytes apart: one"
        );
        assert_eq!(
            wanted(&format!("bytes={total}-")).answer(total, true),
            Answer::Unsatisfiable
        );
        assert_eq!(
            wanted("bytes=0-99, 50-150").answer(total, true),
            Answer::Partial { first: 0, last: 150 },
            "two overlapping ranges coalesce"
        );
        assert_eq!(
            wanted("bytes=100-199").answer(total, false),
            Answer::Full,
            "If-Range failed"
        );
        assert_eq!(
            wanted("items=1-2").answer(total, true),
            Answer::Full,
            "not bytes: ignored"
        );
        assert_eq!(
            wanted("bytes=9-2").answer(total, true),
            Answer::Full,
            "malformed: ignored"
        );
        assert_eq!(
            Wanted::of(&Method::HEAD, &headers(&[("range", "bytes=0-1")])),
            Wanted::Whole
        );
        assert_eq!(Answer::Full.parts(total), vec![(0, total - 1)]);
        assert_eq!(Answer::Full.parts(0), vec![]);
        assert_eq!(Answer::Unsatisfiable.parts(total), vec![]);
        assert_eq!(
            Answer::Multipart(vec![(0, 9), (500, 599)]).parts(total),
            vec![(0, 9), (500, 599)]
        );
    }

    #[test]
    fn only_exact_slices_of_one_version_are_spliced() {
        let s = Slice::holding(4 * MB, 4 * MB);
        let total = 10 * MB;
        let range = |r: &str| headers(&[("etag", "\"v1\""), ("content-range", r)]);
        let ok = range(&format!("bytes {}-{}/{total}", 4 * MB, 8 * MB - 1));
        let head = check(StatusCode::PARTIAL_CONTENT, &ok, s, None).unwrap();
        assert_eq!((head.first, head.len, head.total), (4 * MB, 4 * MB, total));
        let v1 = Validator::ETag("\"v1\"".into());
        let before = Some(Established {
            total,
            validator: Some(&v1),
        });
        assert!(check(StatusCode::PARTIAL_CONTENT, &ok, s, before).is_ok());
        // The last slice ends with the object.
        let last = Slice::holding(8 * MB, 4 * MB);
        let tail = range(&format!("bytes {}-{}/{total}", 8 * MB, total - 1));
        assert_eq!(
            check(StatusCode::PARTIAL_CONTENT, &tail, last, before)
                .unwrap()
                .len,
            2 * MB
        );
        for (why, bad) in [
            (
                "shifted",
                range(&format!("bytes {}-{}/{total}", 4 * MB + 1, 8 * MB - 1)),
            ),
            ("short", range(&format!("bytes {}-{}/{total}", 4 * MB, 6 * MB))),
            (
                "unknown length",
                range(&format!("bytes {}-{}/*", 4 * MB, 8 * MB - 1)),
            ),
            ("no range", headers(&[("etag", "\"v1\"")])),
        ] {
            assert!(
                check(StatusCode::PARTIAL_CONTENT, &bad, s, None).is_err(),
                "{why}"
            );
        }
        let longer = range(&format!("bytes {}-{}/{}", 4 * MB, 8 * MB - 1, total + 1));
        assert!(
            check(StatusCode::PARTIAL_CONTENT, &longer, s, before).is_err(),
            "length changed"
        );
        let other = headers(&[
            ("etag", "\"v2\""),
            (
                "content-range",
                &format!("bytes {}-{}/{total}", 4 * MB, 8 * MB - 1),
            ),
        ]);
        assert!(
            check(StatusCode::PARTIAL_CONTENT, &other, s, before).is_err(),
            "new version"
        );
        assert!(check(StatusCode::NOT_FOUND, &ok, s, None).is_err());
        // An upstream that ignores Range: the whole object, from byte 0.
        let whole = headers(&[("etag", "\"v1\""), ("content-length", &total.to_string())]);
        let head = check(StatusCode::OK, &whole, s, None).unwrap();
        assert!(head.whole);
        assert_eq!((head.first, head.len), (0, total));
        assert!(
            check(StatusCode::OK, &headers(&[]), s, None).is_err(),
            "no length"
        );
    }

    #[test]
    fn if_range_and_if_none_match() {
        let object = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", "Sun, 29 Nov 2026 06:00:00 GMT"),
        ]);
        let holds = |v: &str| if_range_holds(&headers(&[("if-range", v)]), &object);
        assert!(if_range_holds(&headers(&[]), &object));
        assert!(holds("\"v1\""));
        assert!(!holds("\"v0\""));
        assert!(!holds("W/\"v1\""), "weak tags never match If-Range");
        assert!(holds("Sun, 29 Nov 2026 06:00:00 GMT"));
        assert!(!holds("Sat, 28 Nov 2026 06:00:00 GMT"));
        let inm = |v: &str| not_modified(&headers(&[("if-none-match", v)]), &object);
        assert!(inm("\"v1\""));
        assert!(inm("W/\"v1\""), "weak comparison");
        assert!(inm("\"v0\", \"v1\""));
        assert!(inm("*"));
        assert!(!inm("\"v0\""));
        assert!(!not_modified(&headers(&[]), &object));
        let ims = |v: &str| not_modified(&headers(&[("if-modified-since", v)]), &object);
        assert!(ims("Sun, 29 Nov 2026 06:00:00 GMT"), "not modified since then");
        assert!(ims("Mon, 30 Nov 2026 06:00:00 GMT"));
        assert!(!ims("Sat, 28 Nov 2026 06:00:00 GMT"), "modified after");
        assert!(!ims("yesterday"), "not a date: no 304");
        let both = headers(&[
            ("if-none-match", "\"v0\""),
            ("if-modified-since", "Mon, 30 Nov 2026 06:00:00 GMT"),
        ]);
        assert!(
            !not_modified(&both, &object),
            "If-None-Match decides when present"
        );
    }

    #[test]
    fn the_client_head_describes_what_is_sent() {
        let mut slice = ResponseHeader::build(206, None).unwrap();
        slice.insert_header("content-range", "bytes 0-99/1000").unwrap();
        slice.insert_header("content-length", "100").unwrap();
        slice.insert_header("etag", "\"v1\"").unwrap();
        slice.insert_header("content-type", "video/mp4").unwrap();
        let (full, framing) = client_head(&slice, &Answer::Full, 1000).unwrap();
        assert_eq!(full.status, StatusCode::OK);
        assert_eq!(full.headers["content-length"], "1000");
        assert!(full.headers.get("content-range").is_none());
        assert_eq!(full.headers["etag"], "\"v1\"");
        assert_eq!(framing, None);
        let (part, _) = client_head(&slice, &Answer::Partial { first: 10, last: 19 }, 1000).unwrap();
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.headers["content-range"], "bytes 10-19/1000");
        assert_eq!(part.headers["content-length"], "10");
        let (parts, framing) =
            client_head(&slice, &Answer::Multipart(vec![(0, 9), (500, 599)]), 1000).unwrap();
        let framing = framing.expect("the parts' framing");
        assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
        assert!(parts.headers.get("content-range").is_none());
        assert_eq!(parts.headers["content-type"], framing.content_type().as_str());
        assert_eq!(
            parts.headers["content-length"],
            framing.content_length().to_string().as_str()
        );
        assert!(String::from_utf8_lossy(&framing.part_head(0)).contains("Content-Type: video/mp4\r\n"));
        let (none, _) = client_head(&slice, &Answer::Unsatisfiable, 1000).unwrap();
        assert_eq!(none.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(none.headers["content-range"], "bytes */1000");
        let nm = not_modified_head(&slice).unwrap();
        assert_eq!(nm.status, StatusCode::NOT_MODIFIED);
        assert!(nm.headers.get("content-length").is_none());
    }
}
