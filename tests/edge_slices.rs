//! Large objects in slices: a range of an object the edge does not hold whole fetches only
//! the 4 MiB slices it touches (with Range requests to the real origin), later requests are
//! served from slices held, a version change between slices cuts the response instead of
//! mixing bytes, purge removes the slices, and an upstream that ignores Range still gets
//! every byte right.

mod support;

use reqwest::StatusCode;
use std::time::Duration;
use support::script_origin::ScriptOrigin;
use support::{
    ServerProcess, base_url, free_port, h3_get, http1, http2, metric, pattern, sha256, start_cache_node,
    start_edge, start_origin, start_tls_edge,
};
use tempfile::TempDir;

const MB: usize = 1 << 20;
const SLICE: usize = 4 * MB;
const TOKEN: &str = "slice-test-admin-token-0123456789";

struct Cdn {
    origin: ServerProcess,
    edge: ServerProcess,
    content: TempDir,
    cache: TempDir,
}

impl Cdn {
    fn start() -> Cdn {
        let content = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(content.path().join("t")).unwrap();
        std::fs::write(content.path().join("t/big.mp4"), pattern(40 * MB, 7)).unwrap();
        std::fs::write(content.path().join("t/small.m4s"), pattern(3 * MB, 8)).unwrap();
        let origin = start_origin(content.path());
        let edge = Self::edge(&origin, &cache);
        Cdn {
            origin,
            edge,
            content,
            cache,
        }
    }

    fn edge(origin: &ServerProcess, cache: &TempDir) -> ServerProcess {
        start_edge(
            &base_url(origin),
            cache.path(),
            &["--slice-kb", "4096"],
            &[("STRATA_EDGE_ADMIN_TOKEN", TOKEN)],
        )
    }

    fn file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.content.path().join(rel)).unwrap()
    }

    /// (requests, body bytes) the origin has answered with 2xx, once the edge's fills have
    /// settled: a slice is read to its end after the client got its part.
    async fn origin_sent(&self) -> (f64, f64) {
        let url = self.origin.admin_url("/metrics");
        let read = || async {
            (
                metric(&url, "strata_origin_requests_total{status_class=\"2xx\"}").await,
                metric(&url, "strata_origin_response_bytes_total").await,
            )
        };
        let mut last = read().await;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = read().await;
            if now == last {
                break;
            }
            last = now;
        }
        last
    }

    async fn edge_metric(&self, sample: &str) -> f64 {
        metric(&self.edge.admin_url("/metrics"), sample).await
    }

    /// GETs bytes `from..=to` of `path`, checking the 206 and its bytes; returns the
    /// Cache-Status.
    async fn range(&self, client: &reqwest::Client, path: &str, from: usize, to: usize) -> String {
        self.range_as(client, path, &format!("bytes={from}-{to}"), from, to)
            .await
    }

    /// GETs `path` from the edge with the Range `range`.
    async fn send_range(&self, client: &reqwest::Client, path: &str, range: &str) -> reqwest::Response {
        client
            .get(self.edge.url(path))
            .header("range", range)
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` with the Range `range`, checking a 206 for exactly `from..=to` of the
    /// file; returns the Cache-Status.
    async fn range_as(
        &self,
        client: &reqwest::Client,
        path: &str,
        range: &str,
        from: usize,
        to: usize,
    ) -> String {
        let data = self.file(path.trim_start_matches('/'));
        let r = self.send_range(client, path, range).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {from}-{to}/{}", data.len()).as_str(),
            "{range}"
        );
        let status = r.headers()["cache-status"].to_str().unwrap().to_string();
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), to - from + 1, "{range}");
        assert!(
            body[..] == data[from..=to],
            "{range}: the bytes differ from the origin's"
        );
        status
    }
}

#[tokio::test]
async fn a_range_miss_fetches_only_the_slices_it_touches() {
    let mut cdn = Cdn::start();
    let n = 40 * MB;
    let before = cdn.origin_sent().await;

    // Bytes 5,000,000-7,000,000 lie in slice 1: one 4 MiB Range request upstream.
    let status = cdn.range(&http1(), "/t/big.mp4", 5_000_000, 7_000_000).await;
    assert!(status.contains("fwd=miss"), "{status}");
    let after = cdn.origin_sent().await;
    assert_eq!(after.0 - before.0, 1.0, "one origin request");
    assert_eq!(
        after.1 - before.1,
        SLICE as f64,
        "exactly one slice from the origin"
    );

    // The same range again, and another inside slice 1 (over HTTP/2): from the cache.
    let status = cdn.range(&http1(), "/t/big.mp4", 5_000_000, 7_000_000).await;
    assert!(status.contains("hit"), "{status}");
    cdn.range(&http2(), "/t/big.mp4", SLICE, SLICE + 99).await;
    assert_eq!(
        cdn.origin_sent().await,
        after,
        "no origin request for held slices"
    );

    // Across a slice boundary: slices 2 and 3.
    cdn.range(&http1(), "/t/big.mp4", 9_000_000, 13_000_000).await;
    let after = cdn.origin_sent().await;
    assert_eq!(after.1 - before.1, (3 * SLICE) as f64, "slices 1, 2 and 3");

    // A suffix needs the length first (slice 0), then the last slice (9).
    cdn.range_as(&http1(), "/t/big.mp4", "bytes=-10", n - 10, n - 1)
        .await;
    let after = cdn.origin_sent().await;
    assert_eq!(after.1 - before.1, (5 * SLICE) as f64, "slices 0 and 9 added");

    // The whole object now comes from the slices held plus the five missing ones.
    let r = http1().get(cdn.edge.url("/t/big.mp4")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], n.to_string().as_str());
    assert_eq!(
        sha256(&r.bytes().await.unwrap()),
        sha256(&cdn.file("t/big.mp4")),
        "the whole object, byte-exact"
    );
    let after = cdn.origin_sent().await;
    assert_eq!(after.1 - before.1, n as f64, "every slice fetched exactly once");
    assert_eq!(after.0 - before.0, 10.0, "ten slices, ten origin requests");

    // Past the end: 416 with the length (the origin's, for the slice past the end).
    let r = cdn
        .send_range(&http1(), "/t/big.mp4", &format!("bytes={n}-"))
        .await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], format!("bytes */{n}").as_str());
    // A first byte past any object (near u64::MAX): the same answer, no overflow.
    let r = cdn
        .send_range(&http1(), "/t/big.mp4", "bytes=18446744073709551615-")
        .await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // A HEAD describes the object from its slices.
    let r = http1().head(cdn.edge.url("/t/big.mp4")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], n.to_string().as_str());

    let sliced = cdn.edge_metric("strata_edge_sliced_responses_total").await;
    assert!(sliced >= 7.0, "sliced responses counted: {sliced}");
    let slice_hits = cdn
        .edge_metric("strata_edge_slice_requests_total{outcome=\"hit\"}")
        .await;
    assert!(slice_hits >= 5.0, "slice hits counted: {slice_hits}");

    // Slices are on disk: a restarted edge serves them without the origin.
    let after = cdn.origin_sent().await;
    cdn.edge.signal("TERM");
    assert!(cdn.edge.wait_exit(Duration::from_secs(20)).success());
    cdn.edge = Cdn::edge(&cdn.origin, &cdn.cache);
    let status = cdn.range(&http1(), "/t/big.mp4", 30_000_000, 30_000_099).await;
    assert!(status.contains("hit"), "{status}");
    assert_eq!(
        cdn.origin_sent().await,
        after,
        "no origin request after the restart"
    );

    // Purging the URL removes every slice: the next range goes to the origin again.
    let purge = http1()
        .post(cdn.edge.admin_url("/v1/purge"))
        .bearer_auth(TOKEN)
        .body(format!(r#"{{"urls":["{}"]}}"#, cdn.edge.url("/t/big.mp4")))
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), StatusCode::OK);
    let purged: serde_json::Value = purge.json().await.unwrap();
    assert_eq!(purged["purged"], 10, "the ten slices: {purged}");
    let status = cdn.range(&http1(), "/t/big.mp4", 30_000_000, 30_000_099).await;
    assert!(status.contains("fwd=miss"), "{status}");
}

#[tokio::test]
async fn concurrent_ranges_of_one_cold_slice_make_one_origin_request() {
    let cdn = Cdn::start();
    let data = cdn.file("t/big.mp4");
    let before = cdn.origin_sent().await;
    // 40 clients, 40 different ranges, all inside slice 2 (8-12 MiB).
    let fetches = (0..40u64).map(|i| {
        let from = 8 * MB as u64 + i * 100_000;
        let to = from + 49_999;
        let url = cdn.edge.url("/t/big.mp4");
        async move {
            let r = http1()
                .get(url)
                .header("range", format!("bytes={from}-{to}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
            (from as usize, to as usize, r.bytes().await.unwrap())
        }
    });
    for (from, to, body) in futures::future::join_all(fetches).await {
        assert!(body[..] == data[from..=to], "bytes {from}-{to} differ");
    }
    let after = cdn.origin_sent().await;
    assert_eq!(after.0 - before.0, 1.0, "one origin request for the slice");
    assert_eq!(after.1 - before.1, SLICE as f64);
}

#[tokio::test]
async fn a_head_of_a_cold_large_object_fetches_one_slice_not_the_object() {
    let cdn = Cdn::start();
    let before = cdn.origin_sent().await;
    let r = http1().head(cdn.edge.url("/t/big.mp4")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], (40 * MB).to_string().as_str());
    let after = cdn.origin_sent().await;
    assert_eq!(after.1 - before.1, SLICE as f64, "slice 0 only, not 40 MB");
    // The GET that follows fetches the other nine.
    let r = http1().get(cdn.edge.url("/t/big.mp4")).send().await.unwrap();
    assert_eq!(sha256(&r.bytes().await.unwrap()), sha256(&cdn.file("t/big.mp4")));
    let after = cdn.origin_sent().await;
    assert_eq!(after.1 - before.1, (40 * MB) as f64, "every byte fetched once");
}

#[tokio::test]
async fn a_small_object_comes_whole_with_its_first_slice() {
    let cdn = Cdn::start();
    let data = cdn.file("t/small.m4s");
    let before = cdn.origin_sent().await;
    cdn.range(&http1(), "/t/small.m4s", 0, 99).await;
    let after = cdn.origin_sent().await;
    assert_eq!(after.0 - before.0, 1.0);
    assert_eq!(
        after.1 - before.1,
        data.len() as f64,
        "the whole 3 MB object, once"
    );
    cdn.range(&http1(), "/t/small.m4s", 1_000_000, 1_000_099).await;
    let r = http1().get(cdn.edge.url("/t/small.m4s")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["cache-status"].to_str().unwrap().contains("hit"));
    assert_eq!(sha256(&r.bytes().await.unwrap()), sha256(&data));
    assert_eq!(cdn.origin_sent().await, after, "served from the one slice");
}

#[tokio::test]
async fn an_object_that_changes_between_slices_is_cut_never_mixed() {
    let cdn = Cdn::start();
    // Slice 1 of the first version is held.
    cdn.range(&http1(), "/t/big.mp4", 5_000_000, 5_000_099).await;
    // The origin's file changes (another length, so another validator too).
    let v2 = pattern(40 * MB + 1, 9);
    std::fs::write(cdn.content.path().join("t/big.mp4"), &v2).unwrap();
    // The whole object: slice 0 comes from the new version, slice 1 from the cache is the
    // old one. The response must fail, not splice the two.
    let r = http1().get(cdn.edge.url("/t/big.mp4")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await;
    assert!(body.is_err(), "a response mixing two versions must be cut");
    assert_eq!(cdn.edge_metric("strata_edge_slice_mismatches_total").await, 1.0);
    // The slices were dropped: the next request is the new version, whole and exact.
    let mut whole = None;
    for _ in 0..50 {
        // The drop runs in the background; give it a moment.
        let r = http1().get(cdn.edge.url("/t/big.mp4")).send().await.unwrap();
        if let Ok(b) = r.bytes().await {
            whole = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let whole = whole.expect("the new version is served once the old slices are gone");
    assert_eq!(sha256(&whole), sha256(&v2));
}

#[tokio::test]
async fn an_origin_outage_fails_or_cuts_the_response_and_keeps_the_slices_held() {
    let mut cdn = Cdn::start();
    cdn.range(&http1(), "/t/big.mp4", 5_000_000, 5_000_099).await;
    cdn.origin.signal("TERM");
    assert!(cdn.origin.wait_exit(Duration::from_secs(20)).success());
    // Nothing held for slice 0: a 502 that says why.
    let r = cdn.send_range(&http1(), "/t/big.mp4", "bytes=0-99").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let text = r.text().await.unwrap();
    assert!(text.contains("failed"), "{text}");
    // Slice 1 is held, slice 2 is not: the response starts, then is cut.
    let r = cdn
        .send_range(&http1(), "/t/big.mp4", "bytes=5000000-9999999")
        .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert!(
        r.bytes().await.is_err(),
        "a response missing its second slice must be cut"
    );
    assert_eq!(
        cdn.edge_metric("strata_edge_slice_mismatches_total").await,
        0.0,
        "an outage is not a new version"
    );
    // What was held is still served.
    let status = cdn.range(&http1(), "/t/big.mp4", 6_000_000, 6_000_099).await;
    assert!(status.contains("hit"), "{status}");
}

#[tokio::test]
async fn an_upstream_that_ignores_range_is_served_exactly_and_then_cached_whole() {
    let origin = ScriptOrigin::start();
    let cache = tempfile::tempdir().unwrap();
    let edge = start_edge(
        &format!("http://{}", origin.addr),
        cache.path(),
        &["--slice-kb", "1024"],
        &[],
    );
    let path = "/x.mp4?len=3000000&cc=max-age%3D60";
    let data = pattern(3_000_000, "/x.mp4".len() as u64);
    let get = |range: &'static str| {
        let url = edge.url(path);
        async move {
            let r = http1().get(url).header("range", range).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            let status = r.headers()["cache-status"].to_str().unwrap().to_string();
            (status, r.bytes().await.unwrap())
        }
    };
    // The upstream answers the slice's Range with its whole 200: the range is cut from it.
    let (_, body) = get("bytes=2000000-2000099").await;
    assert!(body[..] == data[2_000_000..=2_000_099]);
    assert_eq!(origin.count("/x.mp4"), 1);
    // Then the object is fetched whole and cached as such.
    let (_, body) = get("bytes=100-199").await;
    assert!(body[..] == data[100..=199]);
    assert_eq!(origin.count("/x.mp4"), 2);
    let (status, body) = get("bytes=2999000-2999999").await;
    assert!(body[..] == data[2_999_000..]);
    assert!(status.contains("hit"), "{status}");
    assert_eq!(origin.count("/x.mp4"), 2, "held whole now");
}

/// Several ranges of an object held in slices come as `multipart/byteranges` (RFC 9110
/// section 14.6): parts in ascending order, ranges a few bytes apart merged, each part from
/// the slices that hold it, and only those slices fetched. Read with Python's email parser.
#[tokio::test]
async fn several_ranges_of_a_sliced_object_come_as_multipart_byteranges() {
    let cdn = Cdn::start();
    let data = cdn.file("t/big.mp4");
    let n = data.len();
    let before = cdn.origin_sent().await;
    let wanted = [(0, 199), (30_000_000, 30_000_999), (n - 10, n - 1)];
    for client in [http1(), http2()] {
        let r = cdn
            .send_range(
                &client,
                "/t/big.mp4",
                "bytes=30000000-30000999, 0-99, 120-199, -10",
            )
            .await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert!(r.headers().get("content-range").is_none());
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
        let declared: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), declared, "Content-Length is the body's");
        let parts = support::parse_byteranges(&ct, &body);
        assert_eq!(parts.len(), wanted.len());
        for ((range, part_type, bytes), (from, to)) in parts.iter().zip(wanted) {
            assert_eq!(range, &format!("bytes {from}-{to}/{n}"));
            assert_eq!(part_type.as_deref(), Some("video/mp4"));
            assert!(bytes[..] == data[from..=to], "{range}: the origin's bytes");
        }
    }
    // Slices 0, 7 and 9 of ten, once: the second client's parts were hits.
    let after = cdn.origin_sent().await;
    assert_eq!(after.0 - before.0, 3.0, "one origin request per slice touched");
    assert!(after.1 - before.1 <= (3 * SLICE) as f64);
}

/// Parts that fall in one slice are sent from one read of it, in order, not from a read of
/// the slice per part.
#[tokio::test]
async fn parts_that_share_a_slice_are_sent_from_one_read_of_it() {
    let cdn = Cdn::start();
    let data = cdn.file("t/big.mp4");
    let wanted = [
        (0, 99),
        (1_000_000, 1_000_099),
        (2_000_000, 2_000_099),
        (SLICE + 5, SLICE + 10),
    ];
    let spec: Vec<String> = wanted.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    for (round, client) in [("cold", http1()), ("warm", http2())] {
        let reads = |outcome: &'static str| {
            cdn.edge_metric(match outcome {
                "hit" => "strata_edge_slice_requests_total{outcome=\"hit\"}",
                _ => "strata_edge_slice_requests_total{outcome=\"miss\"}",
            })
        };
        let before = reads("hit").await + reads("miss").await;
        let r = cdn
            .send_range(&client, "/t/big.mp4", &format!("bytes={}", spec.join(",")))
            .await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let body = r.bytes().await.unwrap();
        let parts = support::parse_byteranges(&ct, &body);
        assert_eq!(parts.len(), wanted.len(), "{round}");
        for ((range, _, bytes), (from, to)) in parts.iter().zip(wanted) {
            assert!(
                bytes[..] == data[from..=to],
                "{round} {range}: the origin's bytes"
            );
        }
        let read = reads("hit").await + reads("miss").await - before;
        assert_eq!(read, 2.0, "{round}: slices 0 and 1, each read once");
    }
}

/// A slice damaged on disk, found after its response began, is continued from the origin
/// with exactly the bytes it could not give (at the slice's place in the object), and then
/// refetched: the client gets every byte right, not a cut transfer.
#[tokio::test]
async fn a_slice_damaged_on_disk_is_continued_from_the_origin() {
    let mut cdn = Cdn::start();
    let data = cdn.file("t/big.mp4");
    cdn.range(&http1(), "/t/big.mp4", SLICE, 2 * SLICE - 1).await;
    cdn.edge.signal("TERM");
    assert!(cdn.edge.wait_exit(Duration::from_secs(20)).success());
    // The slice's chunks fill the start of one cache file in order (its meta is written
    // last, after them): a byte in the middle of that run is in a later chunk, so the
    // lookup (which reads chunk 0 and the meta) still finds the slice.
    let (file, extent) = std::fs::read_dir(cdn.cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("foyer-storage")
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let used = bytes
                .chunks(4096)
                .take_while(|b| b.iter().any(|x| *x != 0))
                .count()
                * 4096;
            (p, used)
        })
        .max_by_key(|(_, used)| *used)
        .unwrap();
    assert!(
        extent >= 2 * MB,
        "the slice's chunks are in {file:?} ({extent} bytes)"
    );
    let mut bytes = std::fs::read(&file).unwrap();
    // A byte of the body (random bytes), not of the zero padding between entries.
    let at = (extent / 2..extent)
        .find(|&i| bytes[i..i + 64].iter().all(|b| *b != 0))
        .unwrap();
    bytes[at] ^= 0xFF;
    std::fs::write(&file, bytes).unwrap();
    cdn.edge = Cdn::edge(&cdn.origin, &cdn.cache);
    let before = cdn.origin_sent().await;

    let r = cdn
        .send_range(
            &http1(),
            "/t/big.mp4",
            &format!("bytes={SLICE}-{}", 2 * SLICE - 1),
        )
        .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let status = r.headers()["cache-status"].to_str().unwrap().to_string();
    let body = r.bytes().await.unwrap();
    assert!(status.contains("hit"), "the damage is past the lookup: {status}");
    assert_eq!(body.len(), SLICE);
    assert!(body[..] == data[SLICE..2 * SLICE], "the object's bytes");
    let repaired = "strata_edge_hit_repairs_total{result=\"continued\"}";
    assert_eq!(cdn.edge_metric(repaired).await, 1.0);
    assert!(cdn.edge_metric("strata_edge_cache_corrupt_entries_total").await >= 1.0);
    let after = cdn.origin_sent().await;
    assert_eq!(
        after.0 - before.0,
        1.0,
        "one origin request, for the missing bytes"
    );
    assert!(after.1 - before.1 < SLICE as f64, "only the missing bytes came");
    // The damaged slice was dropped: the next request fetches it again, whole and right.
    let status = cdn.range(&http1(), "/t/big.mp4", SLICE, 2 * SLICE - 1).await;
    assert!(status.contains("fwd=miss"), "{status}");
}

#[tokio::test]
async fn sliced_ranges_are_served_over_http3_from_the_same_slices() {
    let cdn = Cdn::start();
    let data = cdn.file("t/big.mp4");
    let tls = start_tls_edge(&cdn.origin, &["--slice-kb", "4096"]);
    // Cold, all at once on one QUIC connection: within one slice, across two, a suffix, and
    // the same range twice (the two collapse onto one slice fetch).
    let ranges = [
        (5_000_000, 5_999_999),
        (8_000_000, 9_000_000),
        (data.len() - 1000, data.len() - 1),
        (20_000_000, 20_000_099),
        (20_000_000, 20_000_099),
    ];
    let urls: Vec<String> = ranges
        .iter()
        .enumerate()
        .map(|(i, (from, to))| match i {
            2 => format!("{}|bytes=-1000", tls.https("/t/big.mp4")),
            _ => format!("{}|bytes={from}-{to}", tls.https("/t/big.mp4")),
        })
        .collect();
    let results = tokio::task::spawn_blocking(move || h3_get(&urls)).await.unwrap();
    for (r, (from, to)) in results.iter().zip(ranges) {
        assert_eq!(r["status"], 206, "{r}");
        assert_eq!(
            r["headers"]["content-range"],
            format!("bytes {from}-{to}/{}", data.len()),
            "{r}"
        );
        assert_eq!(r["sha256"], sha256(&data[from..=to]), "{r}");
        assert!(
            r["headers"].get("alt-svc").is_none(),
            "no Alt-Svc to a client on HTTP/3: {r}"
        );
    }
    let sliced = metric(
        &tls.edge.admin_url("/metrics"),
        "strata_edge_sliced_responses_total",
    )
    .await;
    assert_eq!(sliced, 5.0);
}

#[tokio::test]
async fn edges_and_their_mid_tier_slice_alike_so_the_origin_sends_each_slice_once() {
    let cdn = Cdn::start();
    let data = cdn.file("t/big.mp4");
    let mid_cache = tempfile::tempdir().unwrap();
    let mid = start_cache_node(
        "midtier",
        &base_url(&cdn.origin),
        mid_cache.path(),
        &["--slice-kb", "4096"],
        &[],
    );
    let mid_url = base_url(&mid);
    let edges: Vec<(TempDir, ServerProcess)> = (0..2)
        .map(|i| {
            let cache = tempfile::tempdir().unwrap();
            let listen = format!("127.0.0.{}:{}", 20 + i, free_port());
            let edge = start_edge(
                &base_url(&cdn.origin),
                cache.path(),
                &["--slice-kb", "4096", "--listen", &listen, "--parent", &mid_url],
                &[],
            );
            (cache, edge)
        })
        .collect();
    let before = cdn.origin_sent().await;
    for (_, edge) in &edges {
        // One content name for both edges, as players reach them (the mid-tier keys by it).
        let r = http1()
            .get(edge.url("/t/big.mp4"))
            .header("host", "video.example")
            .header("range", "bytes=13000000-13999999")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes 13000000-13999999/{}", data.len()).as_str()
        );
        let body = r.bytes().await.unwrap();
        assert!(body[..] == data[13_000_000..=13_999_999]);
    }
    let after = cdn.origin_sent().await;
    assert_eq!(after.0 - before.0, 1.0, "the origin saw one request");
    assert_eq!(after.1 - before.1, SLICE as f64, "for one slice");
    let mid_slices = metric(
        &mid.admin_url("/metrics"),
        "strata_midtier_sliced_responses_total",
    )
    .await;
    assert_eq!(
        mid_slices, 2.0,
        "each edge's slice request was one slice at the mid-tier"
    );
}
