//! What a request's own `Cache-Control` asks of this cache (RFC 9111 section 5.2.1).
//! Only `only-if-cached` is acted on unless the config turns the rest on
//! (`cache.honor_request_cache_control`): the RFC lets a shared cache treat them as
//! preferences, and a browser with its cache disabled sends `no-cache` on every request.
//!
//! - `no-cache`, and `max-age` / `min-fresh` that a stored response does not satisfy: the
//!   stored response is revalidated (or refetched) before it is used.
//! - `only-if-cached`: a request the cache cannot answer by itself gets 504, never a fetch.
//! - `no-store`: neither the response to this request is stored nor a stored one used.
//! - `max-stale` (with seconds, or without: any staleness): a stored response stale by no
//!   more than that is served as it is, unless its own directives forbid serving it stale
//!   (`must-revalidate`, `proxy-revalidate`, `s-maxage`, `no-cache`: they win, section 4.2.4).

use crate::cacheability;
use pingora::http::RequestHeader;
use pingora_cache::cache_control::{CacheControl, DirectiveKey};
use pingora_cache::{CacheMeta, ForcedFreshness};
use std::time::SystemTime;

/// The request directives this cache acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `no-cache`.
    pub no_cache: bool,
    /// `no-store`.
    pub no_store: bool,
    /// `only-if-cached`.
    pub only_if_cached: bool,
    /// `max-age`, seconds.
    pub max_age: Option<u32>,
    /// `min-fresh`, seconds.
    pub min_fresh: Option<u32>,
    /// `max-stale`, seconds; `u32::MAX` when it has no value (any staleness).
    pub max_stale: Option<u32>,
}

impl RequestDirectives {
    /// Reads the directives of a request (none when it has no `Cache-Control`).
    pub fn of(req: &RequestHeader) -> Self {
        let Some(cc) = CacheControl::from_req_headers(req) else {
            return Self::default();
        };
        let seconds = |name: &str| -> Option<u32> {
            match cc.directives.get(&DirectiveKey::from_lowercase(name)) {
                Some(Some(v)) => v.parse_as_delta_seconds().ok(),
                _ => None,
            }
        };
        Self {
            no_cache: cc.no_cache(),
            no_store: cc.no_store(),
            only_if_cached: cc.only_if_cached(),
            max_age: seconds("max-age"),
            min_fresh: seconds("min-fresh"),
            max_stale: match cc.directives.get(&DirectiveKey::from_lowercase("max-stale")) {
                Some(None) => Some(u32::MAX),
                Some(Some(v)) => v.parse_as_delta_seconds().ok(),
                None => None,
            },
        }
    }

    /// Whether a stored response `meta` must be revalidated before it answers this request.
    pub fn on_hit(&self, meta: &CacheMeta, now: SystemTime) -> Option<ForcedFreshness> {
        let too_old = self
            .max_age
            .is_some_and(|max| meta.age().as_secs() > u64::from(max));
        let too_close_to_expiry = self.min_fresh.is_some_and(|min| {
            meta.fresh_until()
                .duration_since(now)
                .map_or(true, |left| left.as_secs() < u64::from(min))
        });
        if self.no_cache || too_old || too_close_to_expiry {
            return Some(ForcedFreshness::ForceExpired);
        }
        self.takes_stale(meta, now).then_some(ForcedFreshness::ForceFresh)
    }

    /// Whether `meta`, stale now, may answer this request as it is (`max-stale`).
    fn takes_stale(&self, meta: &CacheMeta, now: SystemTime) -> bool {
        let Some(max_stale) = self.max_stale else {
            return false;
        };
        let Ok(stale_for) = now.duration_since(meta.fresh_until()) else {
            return false; // still fresh: nothing to decide
        };
        stale_for.as_secs() <= u64::from(max_stale) && !cacheability::stale_forbidden(meta.response_header())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use pingora::http::ResponseHeader;
    use std::time::Duration;

    fn req(cc: &str) -> RequestDirectives {
        let mut r = RequestHeader::build("GET", b"/a.m4s", None).unwrap();
        r.insert_header("cache-control", cc).unwrap();
        RequestDirectives::of(&r)
    }

    /// Stored `age` seconds ago, fresh for `left` more seconds.
    fn meta(age: u64, left: u64) -> CacheMeta {
        let now = SystemTime::now();
        CacheMeta::new(
            now + Duration::from_secs(left),
            now - Duration::from_secs(age),
            0,
            0,
            ResponseHeader::build(200, None).unwrap(),
        )
    }

    #[test]
    fn no_cache_always_revalidates() {
        assert!(req("no-cache").on_hit(&meta(0, 600), SystemTime::now()).is_some());
        assert!(req("").on_hit(&meta(0, 600), SystemTime::now()).is_none());
    }

    #[test]
    fn max_age_and_min_fresh_bound_what_is_reused() {
        let now = SystemTime::now();
        assert!(req("max-age=10").on_hit(&meta(30, 600), now).is_some());
        assert!(req("max-age=60").on_hit(&meta(30, 600), now).is_none());
        assert!(req("min-fresh=700").on_hit(&meta(0, 600), now).is_some());
        assert!(req("min-fresh=100").on_hit(&meta(0, 600), now).is_none());
    }

    /// Stored `age` seconds ago, stale for `stale` seconds, with `cc`.
    fn stale_meta(age: u64, stale: u64, cc: &str) -> CacheMeta {
        let now = SystemTime::now();
        let mut head = ResponseHeader::build(200, None).unwrap();
        head.insert_header("cache-control", cc).unwrap();
        CacheMeta::new(
            now - Duration::from_secs(stale),
            now - Duration::from_secs(age),
            0,
            0,
            head,
        )
    }

    #[test]
    fn max_stale_takes_a_stale_response_within_its_bound_unless_the_response_forbids_it() {
        let now = SystemTime::now();
        let fresh_anyway = Some(ForcedFreshness::ForceFresh);
        let m = stale_meta(100, 40, "max-age=60");
        assert_eq!(req("max-stale=60").on_hit(&m, now), fresh_anyway);
        assert_eq!(
            req("max-stale").on_hit(&m, now),
            fresh_anyway,
            "no value: any staleness"
        );
        assert_eq!(
            req("max-stale=10").on_hit(&m, now),
            None,
            "too stale: pingora revalidates"
        );
        assert_eq!(req("").on_hit(&m, now), None);
        for cc in [
            "max-age=60, must-revalidate",
            "s-maxage=60",
            "max-age=60, proxy-revalidate",
        ] {
            assert_eq!(
                req("max-stale").on_hit(&stale_meta(100, 40, cc), now),
                None,
                "{cc}"
            );
        }
        // Other request directives still force a revalidation.
        assert_eq!(
            req("max-stale, no-cache").on_hit(&m, now),
            Some(ForcedFreshness::ForceExpired)
        );
        // A fresh response is not touched.
        assert_eq!(req("max-stale=60").on_hit(&meta(0, 600), now), None);
    }

    #[test]
    fn flags_are_read() {
        let d = req("only-if-cached, no-store");
        assert!(d.only_if_cached && d.no_store && !d.no_cache);
        assert_eq!(
            RequestDirectives::of(&RequestHeader::build("GET", b"/", None).unwrap()),
            RequestDirectives::default()
        );
    }
}
