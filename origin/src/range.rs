//! Byte ranges (RFC 9110 section 14): which part of a representation a GET asks for.
//!
//! Parsing and validation are http-range-header's; the policy here is what to do with each
//! outcome: a syntactically invalid header is ignored (200), a satisfiable one is served
//! (206), and an unsatisfiable, abusive or overlapping one is refused (416).

use crate::conditional::Validators;
use headers::{HeaderMapExt, IfRange, LastModified};
use http::HeaderMap;
use http_range_header::{RangeUnsatisfiableError, parse_range_header_with_max_ranges};
use std::num::NonZeroUsize;
use std::ops::RangeInclusive;

/// What to send for a GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangePlan {
    /// The whole representation (200).
    Full,
    /// These ranges, in the order asked (206; multipart when more than one).
    Partial(Vec<RangeInclusive<u64>>),
    /// Refuse with 416, for this reason.
    Unsatisfiable(&'static str),
}

/// Decides what to send for a GET of a representation of `size` bytes.
pub fn plan(headers: &HeaderMap, size: u64, v: &Validators, max_ranges: usize) -> RangePlan {
    let mut values = headers.get_all(http::header::RANGE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return RangePlan::Full;
    };
    let Ok(value) = value.to_str() else {
        return RangePlan::Full;
    };
    if let Some(if_range) = headers.typed_get::<IfRange>() {
        let last_modified = LastModified::from(v.last_modified);
        if if_range.is_modified(Some(&v.etag), Some(&last_modified)) {
            return RangePlan::Full;
        }
    }
    let max = NonZeroUsize::new(max_ranges).unwrap_or(NonZeroUsize::MIN);
    let validated = parse_range_header_with_max_ranges(value, max).and_then(|p| p.validate(size));
    match validated {
        Ok(ranges) if ranges.is_empty() => RangePlan::Full,
        Ok(ranges) => RangePlan::Partial(ranges),
        Err(RangeUnsatisfiableError::Unsatisfiable) => {
            RangePlan::Unsatisfiable("no requested range overlaps the representation")
        }
        Err(RangeUnsatisfiableError::Rejected(_)) => {
            RangePlan::Unsatisfiable("too many, overlapping or oversized ranges")
        }
        Err(_) => RangePlan::Full,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::conditional::fixtures::{headers, validators as v};

    fn plan_for(range: &str, size: u64) -> RangePlan {
        plan(&headers(&[("range", range)]), size, &v(), 16)
    }

    #[test]
    fn single_suffix_and_open_ranges() {
        assert_eq!(plan_for("bytes=0-99", 1000), RangePlan::Partial(vec![0..=99]));
        assert_eq!(plan_for("bytes=-100", 1000), RangePlan::Partial(vec![900..=999]));
        assert_eq!(plan_for("bytes=990-", 1000), RangePlan::Partial(vec![990..=999]));
        assert_eq!(
            plan_for("bytes=900-5000", 1000),
            RangePlan::Partial(vec![900..=999])
        );
        assert_eq!(plan_for("bytes=-5000", 1000), RangePlan::Partial(vec![0..=999]));
    }

    #[test]
    fn multiple_ranges_keep_their_order() {
        assert_eq!(
            plan_for("bytes=500-599, 0-9", 1000),
            RangePlan::Partial(vec![500..=599, 0..=9])
        );
    }

    #[test]
    fn beyond_the_end_is_unsatisfiable() {
        assert!(matches!(
            plan_for("bytes=1000-", 1000),
            RangePlan::Unsatisfiable(_)
        ));
        assert!(matches!(
            plan_for("bytes=2000-3000", 1000),
            RangePlan::Unsatisfiable(_)
        ));
    }

    #[test]
    fn too_many_ranges_are_refused() {
        let many = (0..20)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>();
        let value = format!("bytes={}", many.join(","));
        assert!(matches!(plan_for(&value, 1000), RangePlan::Unsatisfiable(_)));
    }

    #[test]
    fn malformed_range_is_ignored() {
        assert_eq!(plan_for("bytes=abc", 1000), RangePlan::Full);
        assert_eq!(plan_for("items=0-1", 1000), RangePlan::Full);
        assert_eq!(plan(&HeaderMap::new(), 1000, &v(), 16), RangePlan::Full);
    }

    #[test]
    fn if_range_with_stale_validator_sends_everything() {
        let stale = headers(&[("range", "bytes=0-9"), ("if-range", "\"old\"")]);
        assert_eq!(plan(&stale, 1000, &v(), 16), RangePlan::Full);
        let current = headers(&[("range", "bytes=0-9"), ("if-range", "\"abc\"")]);
        assert_eq!(plan(&current, 1000, &v(), 16), RangePlan::Partial(vec![0..=9]));
    }
}
