//! The `Cache-Status` response header (RFC 9211): how this cache handled the request.

use pingora_cache::{CachePhase, NoCacheReason};

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

/// The `Cache-Status` member this cache (named `name`: `strata-edge`, `strata-midtier`)
/// adds to a response, given its phase and, for stored responses, the remaining freshness in
/// seconds (negative when stale). Members of caches nearer the origin stay before it.
pub fn header_value(name: &str, phase: &CachePhase, ttl: Option<i64>) -> String {
    let ttl = ttl.map(|t| format!("; ttl={t}")).unwrap_or_default();
    match phase {
        CachePhase::Hit => format!("{name}; hit{ttl}"),
        CachePhase::StaleUpdating => format!("{name}; hit{ttl}; detail=stale-while-revalidate"),
        CachePhase::Stale => format!("{name}; hit{ttl}; detail=stale-if-error"),
        CachePhase::Miss => format!("{name}; fwd=miss; stored{ttl}"),
        CachePhase::Expired => format!("{name}; fwd=stale; stored{ttl}"),
        CachePhase::Revalidated => format!("{name}; fwd=stale; fwd-status=304{ttl}"),
        CachePhase::RevalidatedNoCache(_) => format!("{name}; fwd=stale; fwd-status=304"),
        CachePhase::Disabled(NoCacheReason::NeverEnabled) | CachePhase::Bypass => {
            format!("{name}; fwd=bypass")
        }
        CachePhase::Disabled(reason) => format!("{name}; fwd=miss; detail={}", reason.as_str()),
        CachePhase::Uninit | CachePhase::CacheKey => format!("{name}; fwd=miss"),
    }
}

/// Whether the `Cache-Status` field `value` says the cache named `name` answered from what
/// it stored (a hit, fresh or stale), reading that cache's own (last) member.
pub fn is_hit(value: &str, name: &str) -> bool {
    value
        .rsplit(',')
        .map(str::trim)
        .find(|member| member.split(';').next().map(str::trim) == Some(name))
        .is_some_and(|member| member.split(';').skip(1).any(|p| p.trim() == "hit"))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn hits_and_misses_follow_rfc_9211() {
        assert_eq!(
            header_value("strata-edge", &CachePhase::Hit, Some(60)),
            "strata-edge; hit; ttl=60"
        );
        assert_eq!(
            header_value("strata-edge", &CachePhase::Miss, Some(60)),
            "strata-edge; fwd=miss; stored; ttl=60"
        );
        assert_eq!(
            header_value("strata-edge", &CachePhase::Revalidated, Some(5)),
            "strata-edge; fwd=stale; fwd-status=304; ttl=5"
        );
        assert_eq!(
            header_value(
                "strata-edge",
                &CachePhase::Disabled(NoCacheReason::NeverEnabled),
                None
            ),
            "strata-edge; fwd=bypass"
        );
        assert_eq!(
            header_value(
                "strata-edge",
                &CachePhase::Disabled(NoCacheReason::OriginNotCache),
                None
            ),
            "strata-edge; fwd=miss; detail=OriginNotCache"
        );
        assert_eq!(outcome(&CachePhase::StaleUpdating), "stale");
    }

    #[test]
    fn a_hit_is_read_from_this_caches_own_member() {
        assert!(is_hit("strata-edge; hit; ttl=60", "strata-edge"));
        assert!(is_hit(
            "strata-midtier; fwd=miss, strata-edge; hit",
            "strata-edge"
        ));
        assert!(!is_hit(
            "strata-midtier; hit, strata-edge; fwd=miss; stored",
            "strata-edge"
        ));
        assert!(!is_hit("strata-edge-2; hit", "strata-edge"));
        assert!(!is_hit("", "strata-edge"));
    }
}
