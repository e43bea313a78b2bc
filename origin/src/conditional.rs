//! Conditional requests (RFC 9110 section 13): which of `If-Match`, `If-Unmodified-Since`,
//! `If-None-Match` and `If-Modified-Since` decide, and in what order.

use headers::{ETag, HeaderMapExt, IfMatch, IfModifiedSince, IfNoneMatch, IfUnmodifiedSince};
use http::HeaderMap;
use std::time::SystemTime;

/// The validators of the selected representation.
#[derive(Debug, Clone)]
pub struct Validators {
    /// Strong entity tag.
    pub etag: ETag,
    /// Modification time.
    pub last_modified: SystemTime,
}

/// The outcome of evaluating preconditions for a GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No precondition stops the request.
    Proceed,
    /// The client's copy is current: answer 304.
    NotModified,
    /// A precondition failed: answer 412.
    Failed,
}

/// Evaluates the preconditions of a GET or HEAD in the order of RFC 9110 section 13.2.2.
pub fn evaluate(headers: &HeaderMap, v: &Validators) -> Precondition {
    if let Some(if_match) = headers.typed_get::<IfMatch>() {
        if !if_match.precondition_passes(&v.etag) {
            return Precondition::Failed;
        }
    } else if let Some(ius) = headers.typed_get::<IfUnmodifiedSince>()
        && !ius.precondition_passes(v.last_modified)
    {
        return Precondition::Failed;
    }
    if let Some(inm) = headers.typed_get::<IfNoneMatch>() {
        if !inm.precondition_passes(&v.etag) {
            return Precondition::NotModified;
        }
    } else if let Some(ims) = headers.typed_get::<IfModifiedSince>()
        && !ims.is_modified(v.last_modified)
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Validators and request headers shared by the tests of the request-evaluation modules.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use http::HeaderValue;
    use std::time::{Duration, UNIX_EPOCH};

    /// `"abc"`, last modified at 2023-11-14 22:13:20 UTC.
    pub fn validators() -> Validators {
        Validators {
            etag: "\"abc\"".parse().unwrap(),
            last_modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    /// A header map from name/value pairs.
    pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }
}

#[cfg(test)]
mod test {
    use super::fixtures::{headers as with, validators};
    use super::*;

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const EARLIER: &str = "Tue, 14 Nov 2023 22:13:19 GMT";

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(evaluate(&HeaderMap::new(), &validators()), Precondition::Proceed);
    }

    #[test]
    fn matching_if_none_match_is_not_modified() {
        let v = validators();
        assert_eq!(
            evaluate(&with(&[("if-none-match", "\"abc\"")]), &v),
            Precondition::NotModified
        );
        assert_eq!(
            evaluate(&with(&[("if-none-match", "W/\"abc\"")]), &v),
            Precondition::NotModified
        );
        assert_eq!(
            evaluate(&with(&[("if-none-match", "*")]), &v),
            Precondition::NotModified
        );
        assert_eq!(
            evaluate(&with(&[("if-none-match", "\"zzz\"")]), &v),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_none_match_overrides_if_modified_since() {
        let h = with(&[("if-none-match", "\"zzz\""), ("if-modified-since", LM)]);
        assert_eq!(evaluate(&h, &validators()), Precondition::Proceed);
    }

    #[test]
    fn if_modified_since_compares_seconds() {
        let v = validators();
        assert_eq!(
            evaluate(&with(&[("if-modified-since", LM)]), &v),
            Precondition::NotModified
        );
        assert_eq!(
            evaluate(&with(&[("if-modified-since", EARLIER)]), &v),
            Precondition::Proceed
        );
    }

    #[test]
    fn failed_if_match_and_if_unmodified_since_are_412() {
        let v = validators();
        assert_eq!(
            evaluate(&with(&[("if-match", "\"zzz\"")]), &v),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&with(&[("if-match", "\"abc\"")]), &v),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&with(&[("if-unmodified-since", EARLIER)]), &v),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&with(&[("if-unmodified-since", LM)]), &v),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_match_takes_precedence_over_if_unmodified_since() {
        let h = with(&[("if-match", "\"abc\""), ("if-unmodified-since", EARLIER)]);
        assert_eq!(evaluate(&h, &validators()), Precondition::Proceed);
    }
}
