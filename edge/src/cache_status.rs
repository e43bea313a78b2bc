//! The `Cache-Status` response header (RFC 9211): how this cache handled the request.

use pingora_cache::{CachePhase, NoCacheReason};

/// The name this cache uses in `Cache-Status`.
pub const CACHE_NAME: &str = "strata-edge";

/// The outcome label used in `Cache-Status` details and in metrics.
pub fn outcome(phase: &CachePhase) -> &'static str {
    match phase {
        CachePhase::Hit => "hit",
        CachePhase::Miss => "miss",
        CachePhase::Stale | CachePhase::StaleUpdating => "stale",
        CachePhase::Expired | CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => "revalidated",
        CachePhase::Disabled(NoCacheReason::NeverEnabled) | CachePhase::Bypass => "bypass",
        CachePhase::Disabled(_) | CachePhase::Uninit | CachePhase::CacheKey => "uncacheable",
    }
}

/// The `Cache-Status` value for a response, given its phase and, for stored responses, the
/// remaining freshness in seconds (negative when stale).
pub fn header_value(phase: &CachePhase, ttl: Option<i64>) -> String {
    let ttl = ttl.map(|t| format!("; ttl={t}")).unwrap_or_default();
    match phase {
        CachePhase::Hit => format!("{CACHE_NAME}; hit{ttl}"),
        CachePhase::StaleUpdating => format!("{CACHE_NAME}; hit{ttl}; detail=stale-while-revalidate"),
        CachePhase::Stale => format!("{CACHE_NAME}; hit{ttl}; detail=stale-if-error"),
        CachePhase::Miss => format!("{CACHE_NAME}; fwd=miss; stored{ttl}"),
        CachePhase::Expired => format!("{CACHE_NAME}; fwd=stale; stored{ttl}"),
        CachePhase::Revalidated => format!("{CACHE_NAME}; fwd=stale; fwd-status=304{ttl}"),
        CachePhase::RevalidatedNoCache(_) => format!("{CACHE_NAME}; fwd=stale; fwd-status=304"),
        CachePhase::Disabled(NoCacheReason::NeverEnabled) | CachePhase::Bypass => {
            format!("{CACHE_NAME}; fwd=bypass")
        }
        CachePhase::Disabled(reason) => format!("{CACHE_NAME}; fwd=miss; detail={}", reason.as_str()),
        CachePhase::Uninit | CachePhase::CacheKey => format!("{CACHE_NAME}; fwd=miss"),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn hits_and_misses_follow_rfc_9211() {
        assert_eq!(
            header_value(&CachePhase::Hit, Some(60)),
            "strata-edge; hit; ttl=60"
        );
        assert_eq!(
            header_value(&CachePhase::Miss, Some(60)),
            "strata-edge; fwd=miss; stored; ttl=60"
        );
        assert_eq!(
            header_value(&CachePhase::Revalidated, Some(5)),
            "strata-edge; fwd=stale; fwd-status=304; ttl=5"
        );
        assert_eq!(
            header_value(&CachePhase::Disabled(NoCacheReason::NeverEnabled), None),
            "strata-edge; fwd=bypass"
        );
        assert_eq!(
            header_value(&CachePhase::Disabled(NoCacheReason::OriginNotCache), None),
            "strata-edge; fwd=miss; detail=OriginNotCache"
        );
        assert_eq!(outcome(&CachePhase::StaleUpdating), "stale");
    }
}
