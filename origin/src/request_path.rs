//! Turning a request target into a content path that cannot leave the content root.
//!
//! The raw path is percent-decoded once, then checked segment by segment, so encoded forms
//! (`%2e%2e`, `%2f`, `%5c`) are judged by what they decode to. Anything that could climb out
//! of the root, or that a filesystem might read differently than we do, is refused.

use percent_encoding::percent_decode_str;

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRejection {
    /// The path names no object (`/`).
    #[error("no object at this path")]
    Empty,
    /// Percent-decoding gives bytes that are not UTF-8.
    #[error("path is not valid UTF-8 after percent-decoding")]
    NotUtf8,
    /// A `.` or `..` segment, literal or encoded.
    #[error("path contains a `.` or `..` segment")]
    Traversal,
    /// An empty segment (`//`), as in an absolute path smuggled inside the path.
    #[error("path contains an empty segment (`//`) or an absolute path")]
    EmptySegment,
    /// A backslash, NUL or other control character.
    #[error("path contains a backslash or a control character")]
    ForbiddenCharacter,
    /// A segment starting with `.` (such as `.git`): never content.
    #[error("hidden files are not served")]
    Hidden,
}

impl PathRejection {
    /// Whether the path was malformed (400) rather than refused by policy (403/404).
    pub fn status(self) -> http::StatusCode {
        match self {
            PathRejection::Empty => http::StatusCode::NOT_FOUND,
            PathRejection::Hidden => http::StatusCode::FORBIDDEN,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// A validated path relative to the content root, `/`-separated, without a leading slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentPath(String);

impl ContentPath {
    /// Validates the path part of a request target (`uri.path()`).
    pub fn from_request_path(raw: &str) -> Result<Self, PathRejection> {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| PathRejection::NotUtf8)?;
        if decoded.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(PathRejection::ForbiddenCharacter);
        }
        let rest = decoded.strip_prefix('/').unwrap_or(&decoded);
        if rest.is_empty() {
            return Err(PathRejection::Empty);
        }
        for segment in rest.split('/') {
            match segment {
                "" => return Err(PathRejection::EmptySegment),
                "." | ".." => return Err(PathRejection::Traversal),
                s if s.starts_with('.') => return Err(PathRejection::Hidden),
                _ => {}
            }
        }
        Ok(ContentPath(rest.to_string()))
    }

    /// The path as a `/`-separated relative string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file extension, lower-cased, if the last segment has one.
    pub fn extension(&self) -> Option<String> {
        let name = self.0.rsplit('/').next()?;
        let (_, ext) = name.rsplit_once('.')?;
        Some(ext.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn ok(raw: &str) -> String {
        ContentPath::from_request_path(raw).unwrap().as_str().to_string()
    }

    fn err(raw: &str) -> PathRejection {
        ContentPath::from_request_path(raw).unwrap_err()
    }

    #[test]
    fn ordinary_paths_pass_through() {
        assert_eq!(ok("/sample/master.m3u8"), "sample/master.m3u8");
        assert_eq!(ok("/a%20b/seg-1.m4s"), "a b/seg-1.m4s");
        assert_eq!(ok("/t/v..1/x.m4s"), "t/v..1/x.m4s");
    }

    #[test]
    fn literal_and_encoded_traversal_is_refused() {
        for raw in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a/..%2f..%2fetc/passwd",
            "/a/./b",
            "/..",
        ] {
            assert_eq!(err(raw), PathRejection::Traversal, "{raw}");
        }
    }

    #[test]
    fn absolute_paths_and_empty_segments_are_refused() {
        assert_eq!(err("//etc/passwd"), PathRejection::EmptySegment);
        assert_eq!(err("/%2Fetc%2Fpasswd"), PathRejection::EmptySegment);
        assert_eq!(err("/a//b"), PathRejection::EmptySegment);
    }

    #[test]
    fn backslashes_nul_and_bad_utf8_are_refused() {
        assert_eq!(err("/a%5c..%5cb"), PathRejection::ForbiddenCharacter);
        assert_eq!(err("/a%00.m4s"), PathRejection::ForbiddenCharacter);
        assert_eq!(err("/a%ff"), PathRejection::NotUtf8);
    }

    #[test]
    fn hidden_files_and_root_are_refused() {
        assert_eq!(err("/.git/config"), PathRejection::Hidden);
        assert_eq!(err("/"), PathRejection::Empty);
    }

    #[test]
    fn extension_is_lower_cased() {
        let p = ContentPath::from_request_path("/x/Master.M3U8").unwrap();
        assert_eq!(p.extension().as_deref(), Some("m3u8"));
        let p = ContentPath::from_request_path("/x/README").unwrap();
        assert_eq!(p.extension(), None);
    }
}
