//! Whether and for how long a response may be stored (RFC 9111 section 3 and 4.2), with the
//! targeted fields of RFC 9213 taking precedence over `Cache-Control` for this cache.
//!
//! Precedence: `Strata-Cache-Control` (ours alone), then `CDN-Cache-Control` (every CDN),
//! then `Cache-Control`, then `Expires`. No heuristic freshness: a response without explicit
//! freshness is not stored, and neither is one with `Vary: *`. An upstream `Age` counts
//! against a `max-age`/`s-maxage` lifetime (RFC 9111 section 4.2.3), so an object that spent
//! time in another cache is not kept fresh for longer than its origin allowed. `Strata-Cache-Control` is removed before the response is
//! stored or forwarded; `CDN-Cache-Control` is passed on, since a cache further down a CDN
//! chain is its audience too.

use pingora::http::ResponseHeader;
use pingora_cache::cache_control::{CacheControl, DirectiveKey, InterpretCacheControl};
use pingora_cache::filters::resp_cacheable;
use pingora_cache::{CacheMeta, CacheMetaDefaults, NoCacheReason, RespCacheable};
use std::time::Duration;

/// Strata's own targeted cache-control field.
pub const STRATA_CACHE_CONTROL: &str = "strata-cache-control";
/// RFC 9213's field for all CDN caches.
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// No status is fresh without explicit freshness information, and no stale serving is
/// allowed unless the response grants it (`stale-while-revalidate`, `stale-if-error`).
static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(|_| None, 0, 0);

/// Decides whether `resp` may be stored, and its freshness.
pub fn decide(resp: &ResponseHeader, authorization_present: bool) -> RespCacheable {
    let cc = governing(resp);
    if vary_names(resp).any(|name| name == "*") {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    // Our own field stays in the stored head (a 304 that omits it keeps its freshness, and
    // `stale_forbidden` can read it); it is stripped from every response the edge sends.
    let stored = resp.clone();
    let lifetime_from_directive = cc.as_ref().is_some_and(|c| c.fresh_duration().is_some());
    match resp_cacheable(cc.as_ref(), stored, authorization_present, &DEFAULTS) {
        RespCacheable::Cacheable(meta) if lifetime_from_directive => match upstream_age(resp) {
            Some(age) => RespCacheable::Cacheable(aged(meta, age)),
            None => RespCacheable::Cacheable(meta),
        },
        other => other,
    }
}

/// The `Cache-Control` that governs this cache: ours, else RFC 9213's, else the plain one.
fn governing(resp: &ResponseHeader) -> Option<CacheControl> {
    [STRATA_CACHE_CONTROL, CDN_CACHE_CONTROL]
        .iter()
        .find_map(|name| CacheControl::from_resp_headers_named(name, resp))
        .or_else(|| CacheControl::from_resp_headers(resp))
}

/// Whether a stored response may never be served stale without revalidation, even to a
/// client that accepts it (`max-stale`): `must-revalidate`, `proxy-revalidate`, `s-maxage`
/// (RFC 9111 sections 4.2.4, 5.2.2.2, 5.2.2.8, 5.2.2.10) or `no-cache` in the field that
/// governs this cache.
pub fn stale_forbidden(resp: &ResponseHeader) -> bool {
    governing(resp).is_some_and(|cc| {
        cc.must_revalidate()
            || cc.proxy_revalidate()
            || cc.no_cache()
            || cc.has_directive(&DirectiveKey::SMaxAge)
    })
}

/// The request header names a response varies on, lower-cased (`*` included as is).
pub fn vary_names(resp: &ResponseHeader) -> impl Iterator<Item = String> + '_ {
    resp.headers
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
}

/// The `Age` the upstream reported, if it sent exactly one valid value.
fn upstream_age(resp: &ResponseHeader) -> Option<Duration> {
    let mut values = resp.headers.get_all(http::header::AGE).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return None;
    };
    v.to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|a| *a > 0)
        .map(Duration::from_secs)
}

/// The meta as if the response had been created `age` ago: both its creation time (from
/// which hits compute their `Age`) and its freshness move back by that much.
fn aged(meta: CacheMeta, age: Duration) -> CacheMeta {
    let created = meta.created().checked_sub(age).unwrap_or(meta.created());
    let fresh_until = meta.fresh_until().checked_sub(age).unwrap_or(created);
    CacheMeta::new(
        fresh_until,
        created,
        meta.stale_while_revalidate_sec(),
        meta.stale_if_error_sec(),
        meta.response_header_copy(),
    )
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
                // Whole seconds left, rounded up; 0 once stale.
                Some(
                    meta.fresh_until()
                        .duration_since(SystemTime::now())
                        .map_or(0, |d| d.as_secs() + 1),
                )
            }
            RespCacheable::Uncacheable(_) => None,
        }
    }

    #[test]
    fn max_age_and_s_maxage() {
        assert_eq!(
            ttl(&decide(&resp(&[("cache-control", "max-age=60")]), false)),
            Some(60)
        );
        assert_eq!(
            ttl(&decide(
                &resp(&[("cache-control", "max-age=60, s-maxage=600")]),
                false
            )),
            Some(600)
        );
    }

    #[test]
    fn no_freshness_means_not_stored() {
        assert_eq!(ttl(&decide(&resp(&[]), false)), None);
        assert_eq!(ttl(&decide(&resp(&[("etag", "\"x\"")]), false)), None);
    }

    #[test]
    fn no_store_and_private_are_not_stored() {
        assert_eq!(
            ttl(&decide(
                &resp(&[("cache-control", "no-store, max-age=60")]),
                false
            )),
            None
        );
        assert_eq!(
            ttl(&decide(&resp(&[("cache-control", "private, max-age=60")]), false)),
            None
        );
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
                assert!(
                    h.headers.get(STRATA_CACHE_CONTROL).is_some(),
                    "ours is stored (and stripped on the way out)"
                );
                assert!(
                    h.headers.get(CDN_CACHE_CONTROL).is_some(),
                    "CDN-Cache-Control is passed on"
                );
            }
            _ => unreachable!(),
        }
        let r = resp(&[("cache-control", "max-age=60"), ("cdn-cache-control", "no-store")]);
        assert_eq!(ttl(&decide(&r, false)), None);
    }

    #[test]
    fn upstream_age_shortens_a_max_age_lifetime() {
        assert_eq!(
            ttl(&decide(
                &resp(&[("cache-control", "max-age=200"), ("age", "150")]),
                false
            )),
            Some(50)
        );
        assert_eq!(
            ttl(&decide(
                &resp(&[("cache-control", "max-age=100"), ("age", "150")]),
                false
            )),
            Some(0)
        );
        let d = decide(&resp(&[("cache-control", "max-age=200"), ("age", "150")]), false);
        match d {
            RespCacheable::Cacheable(meta) => assert!(meta.age().as_secs() >= 150),
            _ => unreachable!(),
        }
    }

    #[test]
    fn stale_is_forbidden_by_the_revalidate_directives_of_the_governing_field() {
        for cc in [
            "max-age=60, must-revalidate",
            "max-age=60, proxy-revalidate",
            "s-maxage=60",
            "no-cache",
        ] {
            assert!(stale_forbidden(&resp(&[("cache-control", cc)])), "{cc}");
        }
        assert!(!stale_forbidden(&resp(&[("cache-control", "max-age=60")])));
        assert!(!stale_forbidden(&resp(&[(
            "expires",
            "Thu, 01 Jan 2099 00:00:00 GMT"
        )])));
        // The targeted field governs: ours over CDN-Cache-Control over Cache-Control.
        assert!(stale_forbidden(&resp(&[
            ("cache-control", "max-age=60"),
            ("strata-cache-control", "max-age=60, must-revalidate"),
        ])));
        assert!(!stale_forbidden(&resp(&[
            ("cache-control", "max-age=60, must-revalidate"),
            ("cdn-cache-control", "max-age=60"),
        ])));
    }

    #[test]
    fn vary_star_is_never_stored() {
        assert_eq!(
            ttl(&decide(
                &resp(&[("cache-control", "max-age=60"), ("vary", "Accept, *")]),
                false
            )),
            None
        );
        assert!(
            ttl(&decide(
                &resp(&[("cache-control", "max-age=60"), ("vary", "Accept-Language")]),
                false
            ))
            .is_some()
        );
    }

    #[test]
    fn authorization_needs_explicit_permission() {
        assert_eq!(
            ttl(&decide(&resp(&[("cache-control", "max-age=60")]), true)),
            None
        );
        assert_eq!(
            ttl(&decide(&resp(&[("cache-control", "public, max-age=60")]), true)),
            Some(60)
        );
    }
}
