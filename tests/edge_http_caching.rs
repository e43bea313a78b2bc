//! The edge's HTTP caching semantics (RFC 9111, RFC 5861, RFC 9213), each rule against a
//! real edge process in front of a scriptable upstream (`support::script_origin`).

mod support;

use futures::StreamExt;
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use support::script_origin::ScriptOrigin;
use support::{ServerProcess, free_port, http1, metric};
use tempfile::TempDir;

struct Bench {
    upstream: ScriptOrigin,
    edge: ServerProcess,
    _cache: TempDir,
}

fn start() -> Bench {
    start_with("")
}

/// An edge whose config file holds `toml` (the usual flags on top).
fn start_with(toml: &str) -> Bench {
    let upstream = ScriptOrigin::start();
    let cache = tempfile::tempdir().unwrap();
    let config = cache.path().join("edge.toml");
    std::fs::write(&config, toml).unwrap();
    let disk = cache.path().join("disk");
    let edge = support::start_edge(
        &upstream.url(),
        &disk,
        &["--config", config.to_str().unwrap()],
        &[],
    );
    Bench {
        upstream,
        edge,
        _cache: cache,
    }
}

const HONOR_REQUESTS: &str = "[cache]\nhonor_request_cache_control = true\n";

/// GET through the edge: (status, cache-status, body as text, all headers).
async fn get(
    b: &Bench,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String, reqwest::header::HeaderMap) {
    get_via(&http1(), b, path_and_query, headers).await
}

/// [`get`] with `client` (HTTP/1.1 or HTTP/2).
async fn get_via(
    client: &reqwest::Client,
    b: &Bench,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String, reqwest::header::HeaderMap) {
    let mut req = client.get(b.edge.url(path_and_query));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let cs = r
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let h = r.headers().clone();
    let body = String::from_utf8_lossy(&r.bytes().await.unwrap()).into_owned();
    (status, cs, body, h)
}

#[tokio::test]
async fn max_age_is_fresh_until_it_expires() {
    let b = start();
    let url = "/fresh?cc=max-age%3D2&stamp=1";
    assert_eq!(get(&b, url, &[]).await.2, "fetch 1");
    let (_, cs, body, h) = get(&b, url, &[]).await;
    assert_eq!(body, "fetch 1");
    assert!(cs.contains("hit"), "{cs}");
    assert!(h.contains_key("age"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        get(&b, url, &[]).await.2,
        "fetch 2",
        "stale after max-age, and no validator: refetched"
    );
    assert_eq!(b.upstream.count("/fresh"), 2);
}

#[tokio::test]
async fn s_maxage_overrides_max_age_for_a_shared_cache() {
    let b = start();
    let url = "/smax?cc=max-age%3D0%2C%20s-maxage%3D60&stamp=1";
    get(&b, url, &[]).await;
    assert_eq!(get(&b, url, &[]).await.2, "fetch 1");
    assert_eq!(b.upstream.count("/smax"), 1);
}

#[tokio::test]
async fn expires_gives_freshness_and_a_past_expires_none() {
    let b = start();
    get(&b, "/exp?expires=60&stamp=1", &[]).await;
    assert_eq!(get(&b, "/exp?expires=60&stamp=1", &[]).await.2, "fetch 1");
    get(&b, "/past?expires=-10&stamp=1", &[]).await;
    assert_eq!(get(&b, "/past?expires=-10&stamp=1", &[]).await.2, "fetch 2");
}

#[tokio::test]
async fn upstream_age_counts_against_freshness() {
    let b = start();
    let url = "/aged?cc=max-age%3D200&age=150&stamp=1";
    get(&b, url, &[]).await;
    let (_, cs, _, h) = get(&b, url, &[]).await;
    let age: u64 = h["age"].to_str().unwrap().parse().unwrap();
    assert!(age >= 150, "Age on a hit includes the upstream's Age: {age}");
    let ttl: i64 = cs
        .rsplit("ttl=")
        .next()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (45..=50).contains(&ttl),
        "200 - 150 seconds of freshness left, got {ttl}: {cs}"
    );
}

#[tokio::test]
async fn responses_without_freshness_no_store_and_private_are_not_reused() {
    let b = start();
    for (name, q) in [
        ("/none", "stamp=1&etag=x"),
        ("/nostore", "cc=no-store%2C%20max-age%3D60&stamp=1"),
        ("/private", "cc=private%2C%20max-age%3D60&stamp=1"),
    ] {
        let url = format!("{name}?{q}");
        assert_eq!(get(&b, &url, &[]).await.2, "fetch 1", "{name}");
        assert_eq!(get(&b, &url, &[]).await.2, "fetch 2", "{name} was reused");
    }
}

#[tokio::test]
async fn an_expired_response_is_revalidated_and_the_304_updates_it() {
    let b = start();
    let url = "/reval?cc=max-age%3D1&etag=v1&stamp=1";
    let (_, _, body, h) = get(&b, url, &[]).await;
    assert_eq!(
        (body.as_str(), h["x-origin-count"].to_str().unwrap()),
        ("fetch 1", "1")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, cs, body, _) = get(&b, url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "fetch 1", "the stored body is reused after a 304");
    assert!(cs.contains("fwd-status=304") || cs.contains("fwd=stale"), "{cs}");
    assert_eq!(b.upstream.count("/reval"), 2, "one conditional request");
    // The 304's headers replaced the stored ones.
    let (_, cs, _, h) = get(&b, url, &[]).await;
    assert!(cs.contains("hit"), "{cs}");
    assert_eq!(h["x-origin-count"], "2");
}

#[tokio::test]
async fn no_cache_stores_but_revalidates_every_time() {
    let b = start();
    let url = "/nocache?cc=no-cache%2C%20max-age%3D60&etag=n1&stamp=1";
    get(&b, url, &[]).await;
    assert_eq!(get(&b, url, &[]).await.2, "fetch 1");
    assert_eq!(
        b.upstream.count("/nocache"),
        2,
        "each use went back to the upstream"
    );
}

#[tokio::test]
async fn targeted_cache_control_takes_precedence() {
    let b = start();
    let url = "/cdn?cc=no-store&cdn=max-age%3D60&stamp=1";
    get(&b, url, &[]).await;
    assert_eq!(
        get(&b, url, &[]).await.2,
        "fetch 1",
        "CDN-Cache-Control allowed storing"
    );
    let url = "/ours?cc=max-age%3D60&cdn=no-store&scc=max-age%3D60&stamp=1";
    get(&b, url, &[]).await;
    let (_, _, body, h) = get(&b, url, &[]).await;
    assert_eq!(
        body, "fetch 1",
        "Strata-Cache-Control wins over CDN-Cache-Control"
    );
    assert!(
        !h.contains_key("strata-cache-control"),
        "our field is not passed on"
    );
    assert!(
        h.contains_key("cdn-cache-control"),
        "CDN-Cache-Control is passed on"
    );
    let url = "/cdnno?cc=max-age%3D60&cdn=no-store&stamp=1";
    get(&b, url, &[]).await;
    assert_eq!(
        get(&b, url, &[]).await.2,
        "fetch 2",
        "CDN-Cache-Control: no-store wins over Cache-Control"
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_once_and_refreshes_in_the_background() {
    stale_while_revalidate_over(http1()).await;
}

#[tokio::test]
async fn stale_while_revalidate_refreshes_for_http2_clients_too() {
    // pingora builds the background refresh from the request as HTTP/1.1 text, which an
    // HTTP/2 request (`HTTP/2` in its request line, no Host) did not survive.
    stale_while_revalidate_over(support::http2()).await;
}

async fn stale_while_revalidate_over(client: reqwest::Client) {
    let b = start();
    let get = |b, url, h| get_via(&client, b, url, h);
    let url = "/swr?cc=max-age%3D1%2C%20stale-while-revalidate%3D30&stamp=1";
    get(&b, url, &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, cs, body, _) = get(&b, url, &[]).await;
    assert_eq!(body, "fetch 1", "served stale at once");
    assert!(cs.contains("stale-while-revalidate"), "{cs}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.upstream.count("/swr") < 2 {
        assert!(Instant::now() < deadline, "no background refresh");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get(&b, url, &[]).await.2,
        "fetch 2",
        "the refreshed copy is served next"
    );
    assert_eq!(b.upstream.count("/swr"), 2, "refreshed once");
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_upstream_fails() {
    let b = start();
    let sie = "/sie?cc=max-age%3D1%2C%20stale-if-error%3D60&stamp=1";
    let plain = "/plain?cc=max-age%3D1&stamp=1";
    get(&b, sie, &[]).await;
    get(&b, plain, &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.upstream.set_failing(true);
    let (status, cs, body, _) = get(&b, sie, &[]).await;
    assert_eq!((status, body.as_str()), (200, "fetch 1"), "stale served: {cs}");
    assert!(cs.contains("stale-if-error"), "{cs}");
    let (status, _, _, _) = get(&b, plain, &[]).await;
    assert_eq!(
        status, 503,
        "without stale-if-error the upstream's error comes through"
    );
}

#[tokio::test]
async fn vary_keeps_one_variant_per_request_header_value() {
    let b = start();
    let url = "/vary?cc=max-age%3D60&vary=Accept-Language";
    assert_eq!(
        get(&b, url, &[("accept-language", "en")]).await.2,
        "Accept-Language=en"
    );
    assert_eq!(
        get(&b, url, &[("accept-language", "fr")]).await.2,
        "Accept-Language=fr"
    );
    let (_, cs, body, _) = get(&b, url, &[("accept-language", "en")]).await;
    assert_eq!(body, "Accept-Language=en");
    assert!(cs.contains("hit"), "{cs}");
    assert_eq!(b.upstream.count("/vary"), 2);
}

#[tokio::test]
async fn waiters_get_bytes_while_the_fill_is_still_arriving() {
    let b = start();
    // 2 MB in 64 KiB pieces, 60 ms apart: the fill takes about 2 s.
    let url = b.edge.url("/slow?cc=max-age%3D60&len=2000000&trickle_ms=60");
    let started = Instant::now();
    let client = http1();
    let clients = (0..200).map(|_| {
        let url = url.clone();
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            let mut stream = r.bytes_stream();
            let mut first = None;
            let mut len = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap();
                if first.is_none() && !chunk.is_empty() {
                    first = Some(started.elapsed());
                }
                len += chunk.len();
            }
            (first.unwrap(), started.elapsed(), len)
        }
    });
    let results = futures::future::join_all(clients).await;
    let earliest_end = results.iter().map(|r| r.1).min().unwrap();
    for (first, _, len) in &results {
        assert_eq!(*len, 2_000_000);
        // Nobody waited for the whole object (about 1.9 s of trickle) before its first bytes.
        assert!(
            *first < earliest_end / 2,
            "first bytes at {first:?}, the first client was done at {earliest_end:?}"
        );
    }
    assert_eq!(b.upstream.count("/slow"), 1, "one upstream fetch for 200 clients");
    assert!(results.iter().all(|r| r.2 == 2_000_000));
}

#[tokio::test]
async fn a_range_arriving_mid_fill_gets_its_206() {
    let b = start();
    let url = b.edge.url("/fill?cc=max-age%3D60&len=2000000&trickle_ms=60");
    let filler = tokio::spawn({
        let url = url.clone();
        async move {
            http1()
                .get(url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = http1()
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/2000000");
    assert_eq!(r.bytes().await.unwrap().len(), 100);
    assert_eq!(filler.await.unwrap(), 2_000_000);
    assert_eq!(b.upstream.count("/fill"), 1);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_clean_502() {
    let cache = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let edge = support::start_edge(&dead, cache.path(), &["--disk-mb", "0"], &[]);
    let r = http1().get(edge.url("/x.m4s")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let retries = support::metric(&edge.admin_url("/metrics"), "strata_edge_upstream_retries_total").await;
    assert_eq!(
        retries, 2.0,
        "two more connect attempts (the default), then the 502"
    );
}

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_the_stored_response() {
    let b = start();
    let url = "/inv?cc=max-age%3D600&stamp=1";
    assert_eq!(get(&b, url, &[]).await.2, "fetch 1");
    assert_eq!(get(&b, url, &[]).await.2, "fetch 1");
    let r = http1().post(b.edge.url(url)).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("fwd=bypass")
    );
    assert_eq!(
        get(&b, url, &[]).await.2,
        "fetch 3",
        "the POST invalidated the stored GET response"
    );
    let n = support::metric(&b.edge.admin_url("/metrics"), "strata_edge_invalidations_total").await;
    assert_eq!(n, 1.0);
}

#[tokio::test]
async fn request_no_cache_and_max_age_make_the_edge_revalidate() {
    let b = start_with(HONOR_REQUESTS);
    let url = "/rq?cc=max-age%3D600&etag=r1&stamp=1";
    get(&b, url, &[]).await;
    assert!(get(&b, url, &[]).await.1.contains("hit"));
    let (_, cs, body, _) = get(&b, url, &[("cache-control", "no-cache")]).await;
    assert_eq!(body, "fetch 1", "revalidated, the stored body still good");
    assert!(cs.contains("fwd=stale"), "{cs}");
    assert_eq!(b.upstream.count("/rq"), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    get(&b, url, &[("cache-control", "max-age=0")]).await;
    assert_eq!(
        b.upstream.count("/rq"),
        3,
        "max-age=0 would not take a response a second old"
    );
    get(&b, url, &[("cache-control", "max-age=600")]).await;
    assert_eq!(b.upstream.count("/rq"), 3);
}

#[tokio::test]
async fn max_stale_takes_a_stale_copy_within_its_bound_unless_the_response_forbids_it() {
    let b = start_with(HONOR_REQUESTS);
    let url = "/ms?cc=max-age%3D1&etag=s1&stamp=1";
    let strict = "/msr?cc=max-age%3D1%2C%20must-revalidate&etag=s2&stamp=1";
    get(&b, url, &[]).await;
    get(&b, strict, &[]).await;
    tokio::time::sleep(Duration::from_millis(2300)).await; // both stale by over a second
    let (status, cs, body, h) = get(&b, url, &[("cache-control", "max-stale=60")]).await;
    assert_eq!((status, body.as_str()), (200, "fetch 1"));
    assert!(cs.contains("hit") && !cs.contains("fwd="), "{cs}");
    let age: u64 = h["age"].to_str().unwrap().parse().unwrap();
    assert!(age >= 2, "the Age of a stale copy tells its age: {age}");
    get(&b, url, &[("cache-control", "max-stale")]).await;
    assert_eq!(
        b.upstream.count("/ms"),
        1,
        "max-stale (any) and max-stale=60 took the stale copy"
    );
    // Stale by more than max-stale allows: revalidated.
    let (_, cs, _, _) = get(&b, url, &[("cache-control", "max-stale=0")]).await;
    assert!(cs.contains("fwd=stale"), "{cs}");
    assert_eq!(b.upstream.count("/ms"), 2);
    // must-revalidate wins over the client's max-stale.
    let (_, cs, _, _) = get(&b, strict, &[("cache-control", "max-stale")]).await;
    assert!(cs.contains("fwd=stale"), "{cs}");
    assert_eq!(b.upstream.count("/msr"), 2);
}

#[tokio::test]
async fn only_if_cached_answers_504_instead_of_fetching() {
    let b = start();
    let (status, cs, _, _) = get(
        &b,
        "/oic?cc=max-age%3D600",
        &[("cache-control", "only-if-cached")],
    )
    .await;
    assert_eq!(status, 504, "{cs}");
    assert_eq!(b.upstream.count("/oic"), 0);
    get(&b, "/oic?cc=max-age%3D600", &[]).await;
    let (status, _, _, _) = get(
        &b,
        "/oic?cc=max-age%3D600",
        &[("cache-control", "only-if-cached")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(b.upstream.count("/oic"), 1);
}

#[tokio::test]
async fn a_no_store_request_is_neither_served_from_nor_stored_in_the_cache() {
    let b = start_with(HONOR_REQUESTS);
    let url = "/ns?cc=max-age%3D600&stamp=1";
    assert_eq!(get(&b, url, &[("cache-control", "no-store")]).await.2, "fetch 1");
    assert_eq!(
        get(&b, url, &[]).await.2,
        "fetch 2",
        "the no-store response was not kept"
    );
    assert_eq!(get(&b, url, &[]).await.2, "fetch 2");
}

#[tokio::test]
async fn must_revalidate_and_proxy_revalidate_forbid_serving_stale_on_error() {
    let b = start();
    for (name, cc) in [("/mr", "must-revalidate"), ("/pr", "proxy-revalidate")] {
        let url = format!("{name}?cc=max-age%3D1%2C%20{cc}%2C%20stale-if-error%3D60&stamp=1");
        get(&b, &url, &[]).await;
        b.upstream.set_failing(false);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        b.upstream.set_failing(true);
        let (status, cs, body, _) = get(&b, &url, &[]).await;
        assert_ne!(body, "fetch 1", "{cc}: stale served ({status}, {cs})");
        assert!(status >= 500, "{cc}: {status}");
        b.upstream.set_failing(false);
    }
}

#[tokio::test]
async fn by_default_a_client_cannot_force_the_edge_back_to_the_origin() {
    let b = start();
    let url = "/nc?cc=max-age%3D600&etag=d1&stamp=1";
    get(&b, url, &[]).await;
    for cc in ["no-cache", "max-age=0", "no-store"] {
        let (_, cs, body, _) = get(&b, url, &[("cache-control", cc), ("pragma", "no-cache")]).await;
        assert!(cs.contains("hit"), "{cc}: {cs}");
        assert_eq!(body, "fetch 1");
    }
    assert_eq!(b.upstream.count("/nc"), 1);
    // Nor take a stale copy the origin's freshness says must be revalidated.
    let url = "/ncs?cc=max-age%3D1&etag=d2&stamp=1";
    get(&b, url, &[]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, cs, _, _) = get(&b, url, &[("cache-control", "max-stale")]).await;
    assert!(cs.contains("fwd=stale"), "{cs}");
    assert_eq!(b.upstream.count("/ncs"), 2);
}

#[tokio::test]
async fn a_stalled_upstream_never_leaves_clients_hanging() {
    // The upstream sends its head and a first piece, then stalls for 30 s per piece; the
    // edge's read timeout (400 ms here) ends the fill, and every client, writer and
    // followers alike, is released with an error instead of waiting.
    let b = start_with("[upstream_timeouts]\nread_ms = 400\n[collapse]\nwait_timeout_ms = 1000\n");
    let url = b.edge.url("/stall?cc=max-age%3D60&len=300000&trickle_ms=30000");
    let started = Instant::now();
    let clients = (0..5).map(|_| {
        let url = url.clone();
        async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            match client.get(url).send().await {
                Ok(r) => r.bytes().await.map(|b| b.len()).unwrap_or(0),
                Err(_) => 0,
            }
        }
    });
    let lens = futures::future::join_all(clients).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "clients were held for {took:?}");
    assert!(
        lens.iter().all(|l| *l < 300_000),
        "no client may see a complete body: {lens:?}"
    );
}

/// Six GETs of `url`, the first 100 ms ahead so that it becomes the writer and the others
/// wait on it; each one's status and body length (0 when the body failed).
async fn six_requests_the_first_one_ahead(url: &str) -> Vec<(u16, usize)> {
    let client = http1();
    let requests = (0..6).map(|i| {
        let (client, url) = (client.clone(), url.to_string());
        async move {
            tokio::time::sleep(Duration::from_millis(if i == 0 { 0 } else { 100 })).await;
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.map(|b| b.len()).unwrap_or(0))
        }
    });
    futures::future::join_all(requests).await
}

#[tokio::test]
async fn when_the_first_fetch_fails_a_waiting_request_takes_over() {
    // Without retries, the writer's failure is its own; a waiter becomes the next writer.
    let b = start_with("[upstream_timeouts]\nretries = 0\n");
    // The first request for the path reaches the upstream after 300 ms and has its
    // connection dropped; the others are waiting on the cache lock by then.
    let url = b
        .edge
        .url("/takeover?cc=max-age%3D60&len=100000&delay_ms=300&fail_first=1");
    let results = six_requests_the_first_one_ahead(&url).await;
    let ok = results
        .iter()
        .filter(|(s, len)| *s == 200 && *len == 100_000)
        .count();
    assert_eq!(
        results[0].0, 502,
        "the first request's own fetch failed: {results:?}"
    );
    assert_eq!(ok, 5, "every waiter was served by the second fetch: {results:?}");
    assert_eq!(
        b.upstream.count("/takeover"),
        2,
        "one failed fetch, one that a waiter took over"
    );
}

#[tokio::test]
async fn a_fetch_that_fails_before_its_head_is_retried_and_nobody_sees_the_failure() {
    let b = start();
    let url = b
        .edge
        .url("/retried?cc=max-age%3D60&len=100000&delay_ms=300&fail_first=1");
    let results = six_requests_the_first_one_ahead(&url).await;
    assert!(
        results.iter().all(|&(s, len)| s == 200 && len == 100_000),
        "every request was served: {results:?}"
    );
    assert_eq!(b.upstream.count("/retried"), 2, "the failed fetch and its retry");
    let retries = metric(
        &b.edge.admin_url("/metrics"),
        "strata_edge_upstream_retries_total",
    )
    .await;
    assert_eq!(retries, 1.0);
}

#[tokio::test]
async fn via_names_the_protocol_the_client_spoke() {
    // The request is shown to pingora as HTTP/1.1 whatever the client spoke (subrequests
    // need it); the upstream must still learn the client's protocol from Via.
    let b = start();
    for (client, version, path) in [(http1(), "1.1", "/via1"), (support::http2(), "2", "/via2")] {
        let url = format!("{path}?vary=Via&cc=no-store");
        let (_, _, body, _) = get_via(&client, &b, &url, &[]).await;
        assert!(body.starts_with(&format!("Via={version} ")), "{version}: {body}");
    }
}
