//! Whether and for how long a response may be stored (RFC 9111 section 3 and 4.2), with the
//! targeted fields of RFC 9213 taking precedence over `Cache-Control` for this cache.
//!
//! Precedence: `Strata-Cache-Control` (ours alone), then `CDN-Cache-Control` (every CDN),
//! then `Cache-Control`, then `Expires`. No heuristic freshness: a response without explicit
//! freshness is not stored. `Strata-Cache-Control` is removed before the response is
//! stored or forwarded; `CDN-Cache-Control` is passed on, since a cache further down a CDN
//! chain is its audience too.

use pingora_cache::cache_control::CacheControl;
use pingora_cache::filters::resp_cacheable;
use pingora_cache::{CacheMetaDefaults, RespCacheable};
use pingora::http::ResponseHeader;

/// Strata's own targeted cache-control field.
pub const STRATA_CACHE_CONTROL: &str = "strata-cache-control";
/// RFC 9213's field for all CDN caches.
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// No status is fresh without explicit freshness information, and no stale serving is
/// allowed unless the response grants it (`stale-while-revalidate`, `stale-if-error`).
static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(|_| None, 0, 0);

/// Decides whether `resp` may be stored, and its freshness.
pub fn decide(resp: &ResponseHeader, authorization_present: bool) -> RespCacheable {
    let cc = [STRATA_CACHE_CONTROL, CDN_CACHE_CONTROL]
        .iter()
        .find_map(|name| CacheControl::from_resp_headers_named(name, resp))
        .or_else(|| CacheControl::from_resp_headers(resp));
    let mut stored = resp.clone();
    let _ = stored.remove_header(STRATA_CACHE_CONTROL);
    resp_cacheable(cc.as_ref(), stored, authorization_present, &DEFAULTS)
}

#[cfg(test)]
mod test {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn resp(headers: &[(&'static str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (k, v) in headers {
            r.append_header(*k, *v).unwrap();
        }
        r
    }

    fn ttl(r: &RespCacheable) -> Option<u64> {
        match r {
            RespCacheable::Cacheable(meta) => {
                Some(meta.fresh_until().duration_since(SystemTime::now()).unwrap_or_default().as_secs() + 1)
            }
            RespCacheable::Uncacheable(_) => None,
        }
    }

    #[test]
    fn max_age_and_s_maxage() {
        assert_eq!(ttl(&decide(&resp(&[("cache-control", "max-age=60")]), false)), Some(60));
        assert_eq!(ttl(&decide(&resp(&[("cache-control", "max-age=60, s-maxage=600")]), false)), Some(600));
    }

    #[test]
    fn no_freshness_means_not_stored() {
        assert_eq!(ttl(&decide(&resp(&[]), false)), None);
        assert_eq!(ttl(&decide(&resp(&[("etag", "\"x\"")]), false)), None);
    }

    #[test]
    fn no_store_and_private_are_not_stored() {
        assert_eq!(ttl(&decide(&resp(&[("cache-control", "no-store, max-age=60")]), false)), None);
        assert_eq!(ttl(&decide(&resp(&[("cache-control", "private, max-age=60")]), false)), None);
    }

    #[test]
    fn expires_is_used_without_cache_control() {
        let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let t = ttl(&decide(&resp(&[("expires", &at)]), false)).unwrap();
        assert!((110..=121).contains(&t), "{t}");
    }

    #[test]
    fn targeted_fields_take_precedence() {
        let r = resp(&[("cache-control", "no-store"), ("cdn-cache-control", "max-age=30")]);
        assert_eq!(ttl(&decide(&r, false)), Some(30));
        let r = resp(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=30"),
            ("strata-cache-control", "max-age=300"),
        ]);
        let d = decide(&r, false);
        assert_eq!(ttl(&d), Some(300));
        match d {
            RespCacheable::Cacheable(meta) => {
                let h = meta.response_header();
                assert!(h.headers.get(STRATA_CACHE_CONTROL).is_none(), "ours is not stored");
                assert!(h.headers.get(CDN_CACHE_CONTROL).is_some(), "CDN-Cache-Control is passed on");
            }
            _ => unreachable!(),
        }
        let r = resp(&[("cache-control", "max-age=60"), ("cdn-cache-control", "no-store")]);
        assert_eq!(ttl(&decide(&r, false)), None);
    }

    #[test]
    fn authorization_needs_explicit_permission() {
        assert_eq!(ttl(&decide(&resp(&[("cache-control", "max-age=60")]), true)), None);
        assert_eq!(ttl(&decide(&resp(&[("cache-control", "public, max-age=60")]), true)), Some(60));
    }
}
