//! Updating a stored response from a `304 Not Modified` (RFC 9111 section 4.3.4): every
//! field the 304 carries replaces the stored one, except those that describe the stored
//! body itself or the connection.

use pingora::http::ResponseHeader;

/// Fields a 304 must not change on the stored response.
const KEEP_STORED: [&str; 8] = [
    "content-length",
    "content-range",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "trailer",
    "upgrade",
];

/// The stored response header with the 304's fields applied.
pub fn merge_304(stored: &ResponseHeader, not_modified: &ResponseHeader) -> ResponseHeader {
    let mut merged = stored.clone();
    let names: Vec<&http::HeaderName> = not_modified.headers.keys().collect();
    for name in names {
        if KEEP_STORED.contains(&name.as_str()) {
            continue;
        }
        let _ = merged.remove_header(name);
        for value in not_modified.headers.get_all(name) {
            let _ = merged.append_header(name.clone(), value.clone());
        }
    }
    merged
}

#[cfg(test)]
mod test {
    use super::*;

    fn header(status: u16, fields: &[(&'static str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(status, None).unwrap();
        for (k, v) in fields {
            h.append_header(*k, *v).unwrap();
        }
        h
    }

    #[test]
    fn the_304s_fields_replace_the_stored_ones() {
        let stored = header(
            200,
            &[
                ("content-length", "10"),
                ("x-v", "1"),
                ("etag", "\"a\""),
                ("cache-control", "max-age=1"),
            ],
        );
        let fresh = header(
            304,
            &[
                ("x-v", "2"),
                ("cache-control", "max-age=60"),
                ("content-length", "0"),
            ],
        );
        let m = merge_304(&stored, &fresh);
        assert_eq!(m.status, 200);
        assert_eq!(m.headers["x-v"], "2");
        assert_eq!(m.headers["cache-control"], "max-age=60");
        assert_eq!(
            m.headers["content-length"], "10",
            "the stored body's length stays"
        );
        assert_eq!(m.headers["etag"], "\"a\"", "fields the 304 does not carry stay");
    }
}
