//! The edge in front of a real origin, both real processes on loopback: misses fill the
//! cache, hits never reach the origin, concurrent misses collapse into one fetch, the cache
//! survives a restart, and corrupt disk entries are refetched, never served.

mod support;

use futures::future::join_all;
use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;
use support::{ServerProcess, base_url, free_port, http1, http2, metric, pattern, sha256, start_origin};
use tempfile::TempDir;

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
        std::fs::write(content.path().join("t/seg-1.m4s"), pattern(3 << 20, 1)).unwrap();
        std::fs::write(content.path().join("t/big.m4s"), pattern(40 << 20, 2)).unwrap();
        std::fs::write(content.path().join("t/meta.json"), b"{\"v\":1}").unwrap();
        let origin = start_origin(content.path());
        let edge = start_edge(&origin, cache.path());
        Cdn {
            origin,
            edge,
            content,
            cache,
        }
    }

    fn restart_edge(&mut self) {
        self.edge.signal("TERM");
        let status = self.edge.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "edge exit {status:?}");
        self.edge = start_edge(&self.origin, self.cache.path());
    }

    async fn origin_fetches(&self) -> f64 {
        metric(
            &self.origin.admin_url("/metrics"),
            "strata_origin_requests_total{status_class=\"2xx\"}",
        )
        .await
    }

    fn file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.content.path().join(rel)).unwrap()
    }
}

fn start_edge(origin: &ServerProcess, cache: &Path) -> ServerProcess {
    support::start_edge(&base_url(origin), cache, &[], &[])
}

#[tokio::test]
async fn a_miss_fills_the_cache_and_hits_never_reach_the_origin() {
    let cdn = Cdn::start();
    let expected = sha256(&cdn.file("t/seg-1.m4s"));
    let before = cdn.origin_fetches().await;
    for (i, client) in [http1(), http1(), http2()].iter().enumerate() {
        let r = client.get(cdn.edge.url("/t/seg-1.m4s")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let status = r.headers()["cache-status"].to_str().unwrap().to_string();
        if i == 0 {
            assert!(status.starts_with("strata-edge; fwd=miss; stored"), "{status}");
        } else {
            assert!(status.starts_with("strata-edge; hit"), "{status}");
            assert!(r.headers().contains_key("age"), "hits carry Age");
        }
        assert_eq!(sha256(&r.bytes().await.unwrap()), expected);
    }
    assert_eq!(
        cdn.origin_fetches().await - before,
        1.0,
        "one origin fetch for three requests"
    );
    let page = cdn.edge.admin_url("/metrics");
    assert_eq!(
        metric(&page, "strata_edge_requests_total{cache_status=\"hit\"}").await,
        2.0
    );
    let from_memory = metric(&page, "strata_edge_cache_read_bytes_total{tier=\"memory\"}").await;
    assert_eq!(
        from_memory,
        2.0 * (3 << 20) as f64,
        "both hits came from the memory tier"
    );
    let latency = format!(
        "strata_edge_upstream_response_seconds_count{{kind=\"origin\",upstream=\"{}\"}}",
        base_url(&cdn.origin)
    );
    assert_eq!(metric(&page, &latency).await, 1.0);
}

#[tokio::test]
async fn cmcd_and_tokens_do_not_split_the_cache() {
    let cdn = Cdn::start();
    let before = cdn.origin_fetches().await;
    for query in [
        "",
        "?CMCD=br%3D3200%2Cbl%3D2000",
        "?token=abc&CMCD=sid%3D%22x%22",
        "?CMCD=bl%3D9",
    ] {
        let r = http1()
            .get(cdn.edge.url(&format!("/t/seg-1.m4s{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
    }
    assert_eq!(cdn.origin_fetches().await - before, 1.0);
    // A parameter that selects content does split it.
    http1()
        .get(cdn.edge.url("/t/seg-1.m4s?v=2"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(cdn.origin_fetches().await - before, 2.0);
}

#[tokio::test]
async fn concurrent_misses_collapse_into_one_origin_fetch() {
    let cdn = Cdn::start();
    let expected = sha256(&cdn.file("t/big.m4s"));
    let before = cdn.origin_fetches().await;
    let client = http1();
    let requests = (0..40).map(|_| {
        let c = client.clone();
        let url = cdn.edge.url("/t/big.m4s");
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            sha256(&r.bytes().await.unwrap())
        }
    });
    let bodies = join_all(requests).await;
    assert!(
        bodies.iter().all(|b| *b == expected),
        "every client got the whole object"
    );
    let fetches = cdn.origin_fetches().await - before;
    if fetches != 1.0 {
        let page = http1()
            .get(cdn.edge.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let edge: Vec<&str> = page.lines().filter(|l| l.starts_with("strata_edge")).collect();
        let logs: Vec<String> = cdn
            .edge
            .drain_logs()
            .into_iter()
            .filter(|l| !l.contains("\"request\""))
            .collect();
        panic!(
            "the origin saw {fetches} fetches\n{}\n{}",
            edge.join("\n"),
            logs.join("\n")
        );
    }
    let collapsed = metric(
        &cdn.edge.admin_url("/metrics"),
        "strata_edge_collapsed_requests_total",
    )
    .await;
    assert!(collapsed >= 1.0, "some requests followed the fill: {collapsed}");
}

/// Sends `GET url` over a fresh HTTP/1.1 connection (with `extra` header lines) and hands
/// back the connection, nothing read: a client that reads when the test says so.
async fn raw_get(url: &str, extra: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    conn
}

/// GETs `url` over HTTP/1.1 and HTTP/2 at once; each must answer 200 with its whole body
/// within 20 s.
async fn follow_over_h1_and_h2(url: &str) -> (bytes::Bytes, bytes::Bytes) {
    let follow = |client: reqwest::Client| async move {
        let r = client
            .get(url)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.expect("the whole body within 20 s")
    };
    tokio::join!(follow(http1()), follow(http2()))
}

#[tokio::test]
async fn a_miss_whose_client_stops_reading_holds_up_neither_the_fill_nor_its_followers() {
    use tokio::io::AsyncReadExt;
    let cdn = Cdn::start();
    // 40 MiB: far more than the two sockets' buffers hold between the edge and the client.
    let data = cdn.file("t/big.m4s");
    let before = cdn.origin_fetches().await;
    let url = cdn.edge.url("/t/big.m4s");
    // The miss's client sends its request, then reads nothing for now.
    let mut stalled = raw_get(&url, "Connection: close\r\n").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Requests for the same object, over HTTP/1.1 and HTTP/2, follow the fill: they get all
    // of it at the upstream's pace, not at the stalled client's (which would be never).
    let (one, two) = follow_over_h1_and_h2(&url).await;
    assert!(one == data && two == data, "followers got the whole object");
    assert_eq!(cdn.origin_fetches().await - before, 1.0, "one fill for all three");
    // The stalled client reads now: its response is whole and right too.
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut got))
        .await
        .expect("the stalled client's response ends")
        .unwrap();
    let at = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&got[..at]).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") && head.contains("fwd=miss"),
        "{head}"
    );
    assert!(
        got[at..] == data[..],
        "the stalled client's body: {} of {} bytes",
        got.len() - at,
        data.len()
    );
}

/// curl over cleartext HTTP/2 fetching `url` at a byte a second (so its stream window shuts
/// and stays shut), giving up after `max_secs`.
fn stalled_h2_client(url: &str, max_secs: u32) -> std::process::Child {
    std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "--limit-rate",
            "1",
            "--max-time",
        ])
        .arg(max_secs.to_string())
        .args(["-o", "/dev/null", url])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("curl is installed")
}

#[tokio::test]
async fn an_h2_miss_whose_client_stops_reading_holds_up_neither_the_fill_nor_its_followers() {
    let cdn = Cdn::start();
    let data = cdn.file("t/big.m4s");
    let before = cdn.origin_fetches().await;
    let url = cdn.edge.url("/t/big.m4s");
    // The miss's client speaks HTTP/2 and stops taking bytes: its window shuts long before
    // 40 MiB, and the send timeout (30 s by default) is far off.
    let mut stalled = stalled_h2_client(&url, 40);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (one, two) = follow_over_h1_and_h2(&url).await;
    let _ = stalled.kill();
    let _ = stalled.wait();
    assert!(one == data && two == data, "followers got the whole object");
    assert_eq!(cdn.origin_fetches().await - before, 1.0, "one fill for all three");
    // An HTTP/2 client that reads along gets its whole miss, from a client nobody here wrote.
    let other = pattern(40 << 20, 5);
    std::fs::write(cdn.content.path().join("t/other.m4s"), &other).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "--max-time", "20"])
        .arg(cdn.edge.url("/t/other.m4s"))
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == other,
        "the h2 miss: {} of {} bytes",
        out.stdout.len(),
        other.len()
    );
}

#[tokio::test]
async fn clients_that_stop_reading_are_let_go_after_the_send_timeout_and_fills_go_on() {
    let content = tempfile::tempdir().unwrap();
    let data = pattern(40 << 20, 3);
    std::fs::write(content.path().join("big.m4s"), &data).unwrap();
    let origin = start_origin(content.path());
    let cache = tempfile::tempdir().unwrap();
    let config = cache.path().join("edge.toml");
    std::fs::write(&config, "client_send_timeout_secs = 2\n").unwrap();
    let edge = support::start_edge(
        &base_url(&origin),
        &cache.path().join("disk"),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let url = edge.url("/big.m4s");
    // The miss's client: HTTP/2, taking a byte a second, so its stream window stays shut and
    // the edge's writes to it wait; the fill goes on without it.
    let mut stalled = stalled_h2_client(&url, 12);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = http1()
        .get(&url)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.expect("the follower's whole body within 20 s");
    assert!(body == data, "the follower got the whole object");
    // The stalled client is let go 2 s after its window shut, well before it gives up by
    // itself (12 s).
    let mut logs = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !logs.iter().any(|l: &String| l.contains("WriteTimedout")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the edge did not let the stalled client go: {logs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        logs.extend(edge.drain_logs());
    }
    let _ = stalled.kill();
    let _ = stalled.wait();
    let fetches = metric(
        &origin.admin_url("/metrics"),
        "strata_origin_requests_total{status_class=\"2xx\"}",
    )
    .await;
    assert_eq!(fetches, 1.0, "one fill for both");
    // A hit's client over HTTP/1.1 that takes nothing is let go too: the edge closes the
    // connection after the send timeout, with the body cut (never a short body as a whole).
    use tokio::io::AsyncReadExt;
    let mut idle = raw_get(&url, "").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut got))
        .await
        .expect("the edge closed the connection")
        .unwrap();
    assert!(got.len() < data.len(), "cut after {} bytes", got.len());
    let aborted = metric(
        &edge.admin_url("/metrics"),
        "strata_edge_requests_total{cache_status=\"client_abort\"}",
    )
    .await;
    assert!(
        aborted >= 1.0,
        "counted as the client's doing, not an error: {aborted}"
    );
    // Nor logged as the edge's error: the access log line says it.
    logs.extend(edge.drain_logs());
    let errors: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "clients that went away logged as errors: {errors:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("\"cache\":\"client_abort\"") && l.contains("WriteTimedout")),
        "the access log says why: {logs:?}"
    );
}

#[tokio::test]
async fn ranges_are_served_on_a_miss_and_from_the_cache() {
    let cdn = Cdn::start();
    let data = cdn.file("t/big.m4s");
    let n = data.len();
    for (range, from, to) in [
        ("bytes=0-99", 0, 99),
        ("bytes=5000000-7000000", 5_000_000, 7_000_000),
        ("bytes=-10", n - 10, n - 1),
    ] {
        let r = http1()
            .get(cdn.edge.url("/t/big.m4s"))
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {from}-{to}/{n}").as_str()
        );
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), to - from + 1, "{range}");
        assert_eq!(&body[..], &data[from..=to], "{range}");
    }
    let r = http1()
        .get(cdn.edge.url("/t/big.m4s"))
        .header("range", format!("bytes={n}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn a_restarted_edge_serves_its_disk_cache_without_refetching() {
    let mut cdn = Cdn::start();
    let expected = sha256(&cdn.file("t/big.m4s"));
    let r = http1().get(cdn.edge.url("/t/big.m4s")).send().await.unwrap();
    assert_eq!(sha256(&r.bytes().await.unwrap()), expected);
    let before = cdn.origin_fetches().await;
    cdn.restart_edge();
    let r = http1().get(cdn.edge.url("/t/big.m4s")).send().await.unwrap();
    let status = r.headers()["cache-status"].to_str().unwrap().to_string();
    assert_eq!(sha256(&r.bytes().await.unwrap()), expected);
    assert!(status.starts_with("strata-edge; hit"), "{status}");
    assert_eq!(cdn.origin_fetches().await, before, "no refetch after restart");
    let from_disk = metric(
        &cdn.edge.admin_url("/metrics"),
        "strata_edge_cache_read_bytes_total{tier=\"disk\"}",
    )
    .await;
    assert_eq!(
        from_disk,
        (40 << 20) as f64,
        "after a restart the body came off the disk tier"
    );
}

#[tokio::test]
async fn corrupt_disk_entries_are_refetched_never_served() {
    let mut cdn = Cdn::start();
    let data = cdn.file("t/big.m4s");
    let expected = sha256(&data);
    http1()
        .get(cdn.edge.url("/t/big.m4s"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    cdn.edge.signal("TERM");
    assert!(cdn.edge.wait_exit(Duration::from_secs(20)).success());
    // Damage the body bytes inside the cache's data blocks (not the block headers, which
    // would only make foyer skip whole blocks at recovery).
    let mut flipped = 0;
    for file in walk(cdn.cache.path()) {
        let mut bytes = std::fs::read(&file).unwrap();
        for off in [3 << 20, (8 << 20) + 777, (13 << 20) + 5] {
            if off < bytes.len() && bytes[off - 4096..off + 4096].iter().any(|b| *b != 0) {
                bytes[off] ^= 0xFF;
                flipped += 1;
            }
        }
        std::fs::write(&file, bytes).unwrap();
    }
    assert!(flipped >= 3, "the cache files held the object ({flipped} flips)");
    let before = cdn.origin_fetches().await;
    cdn.edge = start_edge(&cdn.origin, cdn.cache.path());
    // The first read meets the damage: before its head went out (the object is a miss), or
    // after (the edge continues the response from the origin with exactly the bytes its
    // stored copy could not give). Either way the client gets the whole, right body.
    let r = http1().get(cdn.edge.url("/t/big.m4s")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let status = r.headers()["cache-status"].to_str().unwrap().to_string();
    assert_eq!(
        sha256(&r.bytes().await.unwrap()),
        expected,
        "the first response after the damage is whole and right ({status})"
    );
    let metrics = cdn.edge.admin_url("/metrics");
    let continued = metric(&metrics, "strata_edge_hit_repairs_total{result=\"continued\"}").await;
    if status.starts_with("strata-edge; hit") {
        assert!(
            continued >= 1.0,
            "a hit that met damage was continued from the origin"
        );
    }
    assert_eq!(
        metric(&metrics, "strata_edge_hit_repairs_total{result=\"failed\"}").await,
        0.0
    );
    let r = http1().get(cdn.edge.url("/t/big.m4s")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        sha256(&r.bytes().await.unwrap()),
        expected,
        "the damaged object was refetched"
    );
    assert!(
        cdn.origin_fetches().await - before >= 1.0,
        "the object came from the origin again"
    );
    let dropped = metric(&metrics, "strata_edge_cache_corrupt_entries_total").await;
    assert!(dropped >= 1.0, "the damage was noticed and counted");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn responses_without_freshness_or_with_no_store_are_not_stored() {
    let cdn = Cdn::start();
    // The origin's JSON class is cacheable (max-age=300): a baseline.
    let before = cdn.origin_fetches().await;
    for _ in 0..2 {
        http1()
            .get(cdn.edge.url("/t/meta.json"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    assert_eq!(cdn.origin_fetches().await - before, 1.0);
    // Non-GET methods pass through uncached.
    let r = http1().post(cdn.edge.url("/t/meta.json")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "the origin's own answer comes through"
    );
    assert!(
        r.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("fwd=bypass")
    );
    // A missing object is not stored either (the origin says no-store).
    for _ in 0..2 {
        let r = http1().get(cdn.edge.url("/t/missing.m4s")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let not_found = metric(
        &cdn.origin.admin_url("/metrics"),
        "strata_origin_requests_total{status_class=\"4xx\"}",
    )
    .await;
    assert_eq!(not_found, 3.0, "both 404s and the POST reached the origin");
}

#[tokio::test]
async fn when_the_disk_disappears_the_edge_goes_on_from_memory_and_says_so() {
    let content = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(content.path().join("t")).unwrap();
    for i in 0..3 {
        std::fs::write(
            content.path().join(format!("t/s{i}.m4s")),
            pattern(400_000, 10 + i),
        )
        .unwrap();
    }
    let origin = start_origin(content.path());
    let cache_parent = tempfile::tempdir().unwrap();
    let cache_dir = cache_parent.path().join("disk");
    let config = cache_parent.path().join("edge.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &config,
        format!(
            "listen = \"{listen}\"\nadmin_listen = \"127.0.0.1:0\"\nupstream = \"http://{}\"\n\
             [cache]\ndir = \"{}\"\nmemory_mb = 64\ndisk_mb = 256\ndisk_check_ms = 200\n",
            origin.data_addr,
            cache_dir.display()
        ),
    )
    .unwrap();
    let mut edge = ServerProcess::start("edge", &["--config", config.to_str().unwrap()], &[]);
    // s0 and s2 on disk; after a restart only s0 is read back into memory.
    statuses(&edge, &["/t/s0.m4s".to_string(), "/t/s2.m4s".to_string()]).await;
    graceful_restart(&mut edge);
    let get = |path: &str| {
        let url = edge.url(path);
        async move {
            let r = http1().get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let cs = r.headers()["cache-status"].to_str().unwrap().to_string();
            (cs, sha256(&r.bytes().await.unwrap()))
        }
    };
    let digest = |i: u64| sha256(&std::fs::read(content.path().join(format!("t/s{i}.m4s"))).unwrap());
    assert_eq!(get("/t/s0.m4s").await.1, digest(0));

    std::fs::remove_dir_all(&cache_dir).unwrap();
    let health = degraded_health(&edge).await;
    assert!(
        health["reason"].as_str().unwrap().contains("out of service"),
        "{health}"
    );
    let in_service = format!("strata_edge_disk_in_service{{disk=\"{}\"}}", cache_dir.display());
    assert_eq!(metric(&edge.admin_url("/metrics"), &in_service).await, 0.0);

    // Still serving: what memory holds, and new objects (kept in memory from now on).
    assert_eq!(get("/t/s0.m4s").await.1, digest(0));
    let (cs, body) = get("/t/s1.m4s").await;
    assert!(cs.starts_with("strata-edge; fwd=miss; stored"), "{cs}");
    assert_eq!(body, digest(1));
    let (cs, body) = get("/t/s1.m4s").await;
    assert!(cs.starts_with("strata-edge; hit"), "{cs}");
    assert_eq!(body, digest(1));
    // s2 was only on the lost disk: fetched again and cached in memory, not passed through
    // uncached on every request (foyer's disk index still lists it).
    let (cs, body) = get("/t/s2.m4s").await;
    assert!(cs.starts_with("strata-edge; fwd=miss; stored"), "{cs}");
    assert_eq!(body, digest(2));
    let (cs, _) = get("/t/s2.m4s").await;
    assert!(cs.starts_with("strata-edge; hit"), "{cs}");
    assert!(
        !cache_dir.exists(),
        "nothing was written to the disk path once it was out of service"
    );
}

/// An edge with two disks spreads objects over both and keeps them across a restart; when one
/// disk disappears, the edge says which, goes on serving, and stores what it fetches next on
/// the disk that is left.
#[tokio::test]
async fn objects_spread_over_several_disks_and_a_lost_disk_leaves_the_others_serving() {
    let content = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(content.path().join("t")).unwrap();
    let n = 24u64;
    for i in 0..n {
        std::fs::write(
            content.path().join(format!("t/s{i}.m4s")),
            pattern(200_000, 30 + i),
        )
        .unwrap();
    }
    let origin = start_origin(content.path());
    let parent = tempfile::tempdir().unwrap();
    let disks = [parent.path().join("nvme0"), parent.path().join("nvme1")];
    let config = parent.path().join("edge.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &config,
        format!(
            "listen = \"{listen}\"\nadmin_listen = \"127.0.0.1:0\"\nupstream = \"http://{}\"\n\
             [cache]\nmemory_mb = 1\ndisk_check_ms = 200\n\
             [[cache.disks]]\npath = \"{}\"\nsize_mb = 128\n\
             [[cache.disks]]\npath = \"{}\"\nsize_mb = 128\n",
            origin.data_addr,
            disks[0].display(),
            disks[1].display()
        ),
    )
    .unwrap();
    let mut edge = ServerProcess::start("edge", &["--config", config.to_str().unwrap()], &[]);
    let paths: Vec<String> = (0..n).map(|i| format!("/t/s{i}.m4s")).collect();
    let digest = |i: u64| sha256(&std::fs::read(content.path().join(format!("t/s{i}.m4s"))).unwrap());
    let body_digest = |edge: &ServerProcess, path: &str| {
        let url = edge.url(path);
        async move {
            let r = http1().get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            sha256(&r.bytes().await.unwrap())
        }
    };
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(body_digest(&edge, p).await, digest(i as u64));
    }
    // Both disks took a share, each object on one (each disk keeps its own index).
    graceful_restart(&mut edge);
    let held = |d: &std::path::Path| {
        let index = std::fs::read_to_string(d.join("strata-index.log")).unwrap_or_default();
        index.lines().filter(|l| l.starts_with('+')).count() as u64
    };
    let shares = [held(&disks[0]), held(&disks[1])];
    assert!(shares.iter().all(|&s| s >= 3), "{shares:?} of {n}");
    assert_eq!(shares[0] + shares[1], n, "{shares:?}");
    // A restart finds every object on its disk.
    let after_restart = statuses(&edge, &paths).await;
    assert!(
        after_restart.iter().all(|s| s.starts_with("strata-edge; hit")),
        "{after_restart:?}"
    );
    let fetched = "strata_origin_requests_total{status_class=\"2xx\"}";
    let origin_page = origin.admin_url("/metrics");
    assert_eq!(
        metric(&origin_page, fetched).await,
        n as f64,
        "each object fetched once"
    );
    let page = edge.admin_url("/metrics");

    // nvme1 disappears: health names it, its gauge drops, nvme0's stays.
    std::fs::remove_dir_all(&disks[1]).unwrap();
    let health = degraded_health(&edge).await;
    let reason = health["reason"].as_str().unwrap();
    assert!(reason.contains("nvme1") && !reason.contains("nvme0"), "{health}");
    let gauge = |d: &std::path::Path| format!("strata_edge_disk_in_service{{disk=\"{}\"}}", d.display());
    assert_eq!(metric(&page, &gauge(&disks[1])).await, 0.0);
    assert_eq!(metric(&page, &gauge(&disks[0])).await, 1.0);
    // Every object is still served with the origin's bytes: nvme0's from nvme0, nvme1's from
    // what its share of memory still holds, or fetched again and stored on nvme0.
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(body_digest(&edge, p).await, digest(i as u64), "{p}");
    }
    let refetched = metric(&origin_page, fetched).await - n as f64;
    assert!(
        refetched >= 1.0 && refetched <= shares[1] as f64,
        "only the lost disk's objects are fetched again: {refetched}, it held {}",
        shares[1]
    );
    let again = statuses(&edge, &paths).await;
    assert!(
        again.iter().all(|s| s.starts_with("strata-edge; hit")),
        "{again:?}"
    );
    assert!(!disks[1].exists(), "nothing was written to the lost disk's path");
    graceful_restart(&mut edge);
    assert_eq!(
        held(&disks[0]),
        shares[0] + refetched as u64,
        "what was fetched again went to the disk that is left"
    );
}

/// The edge's `/healthz` once it reports "degraded" (a disk out of service), within 10 s.
async fn degraded_health(edge: &ServerProcess) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = http1().get(edge.admin_url("/healthz")).send().await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        if v["status"] == "degraded" {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no disk was taken out of service: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the edge as an operator would (its disk writes land) and starts it again.
fn graceful_restart(edge: &mut ServerProcess) {
    edge.signal("TERM");
    assert!(edge.wait_exit(Duration::from_secs(20)).success());
    edge.restart();
}

/// Edge requests for `paths`, each with its `Cache-Status`.
async fn statuses(edge: &ServerProcess, paths: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in paths {
        let r = http1().get(edge.url(p)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p}");
        out.push(r.headers()["cache-status"].to_str().unwrap().to_string());
        r.bytes().await.unwrap();
    }
    out
}

#[tokio::test]
async fn the_disk_tier_holds_as_much_as_its_size_says() {
    // 26 objects of 2 MiB (52 MiB) on a 64 MiB disk, behind 8 MiB of memory: all of them
    // must still be on disk after a restart. (When a chunk's payload filled its whole slot,
    // foyer's entry header pushed each entry past it, blocks were left part empty, and 23 of
    // the 26 were lost.)
    let content = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let paths: Vec<String> = (0..26).map(|i| format!("/t/s-{i}.m4s")).collect();
    std::fs::create_dir_all(content.path().join("t")).unwrap();
    for (i, p) in paths.iter().enumerate() {
        std::fs::write(content.path().join(&p[1..]), pattern(2 << 20, i as u64)).unwrap();
    }
    let origin = start_origin(content.path());
    let flags = ["--memory-mb", "8", "--disk-mb", "64"];
    let mut edge = support::start_edge(&base_url(&origin), cache.path(), &flags, &[]);
    assert!(
        statuses(&edge, &paths)
            .await
            .iter()
            .all(|s| s.contains("fwd=miss"))
    );
    graceful_restart(&mut edge);
    let after = statuses(&edge, &paths).await;
    let missing: Vec<_> = paths
        .iter()
        .zip(&after)
        .filter(|(_, s)| !s.contains("; hit"))
        .collect();
    assert!(missing.is_empty(), "{} of 26 lost: {missing:?}", missing.len());
}

#[tokio::test]
async fn with_disk_admission_an_object_reaches_disk_once_it_earns_it() {
    let content = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(content.path().join("t")).unwrap();
    for name in ["once", "twice", "prewarmed"] {
        std::fs::write(content.path().join(format!("t/{name}.m4s")), pattern(400_000, 7)).unwrap();
    }
    for i in 0..30 {
        std::fs::write(
            content.path().join(format!("t/fill-{i}.m4s")),
            pattern(2 << 20, i),
        )
        .unwrap();
    }
    let origin = start_origin(content.path());
    let mut edge = support::start_edge(
        &base_url(&origin),
        cache.path(),
        // 5 requests per MiB (by size, the default): 2 for these 400 KB objects.
        &["--disk-admission", "5", "--disk-mb", "64"],
        &[],
    );
    // While the disk has room every object goes there: fill it past 90% first, so that
    // admission has something to choose.
    let fill: Vec<String> = (0..30).map(|i| format!("/t/fill-{i}.m4s")).collect();
    statuses(&edge, &fill).await;
    let [once, twice] = ["/t/once.m4s".to_string(), "/t/twice.m4s".to_string()];
    // One request each: both stored in memory only. The second request for `twice` is a
    // memory hit that earns it the disk: it is written there then.
    let first = statuses(&edge, &[once.clone(), twice.clone(), twice.clone()]).await;
    assert!(
        first[0].contains("fwd=miss") && first[1].contains("fwd=miss") && first[2].contains("; hit"),
        "{first:?}"
    );
    let promotions = metric(
        &edge.admin_url("/metrics"),
        "strata_edge_cache_disk_promotions_total",
    )
    .await;
    assert_eq!(promotions, 1.0);
    // A pre-warm fetch puts its object on disk with its one request.
    let r = http1()
        .get(edge.url("/t/prewarmed.m4s"))
        .header("strata-prewarm", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap();
    graceful_restart(&mut edge);
    let after = statuses(&edge, &[once, twice, "/t/prewarmed.m4s".to_string()]).await;
    // The fill objects were asked for once (their threshold is 10) but written while the
    // disk had room: those the disk's FIFO kept are hits after the restart.
    let filled = statuses(&edge, &fill[10..28]).await;
    let kept = filled.iter().filter(|s| s.contains("; hit")).count();
    assert!(
        kept >= 5,
        "objects asked for once while the disk had room were written to it: {filled:?}"
    );
    assert!(
        after[0].contains("fwd=miss"),
        "an object asked for once was kept off the disk: {after:?}"
    );
    assert!(
        after[1].contains("; hit"),
        "the object that earned the disk survives a restart: {after:?}"
    );
    assert!(
        after[2].contains("; hit"),
        "a pre-warmed object survives a restart: {after:?}"
    );
}

#[tokio::test]
async fn evicted_objects_leave_the_key_index() {
    // 40 objects of 1 MB through a 16 MB memory-only cache: most are evicted, and the
    // index's background sweep forgets them (it would otherwise list every key ever stored).
    let origin = support::script_origin::ScriptOrigin::start();
    let cache = tempfile::tempdir().unwrap();
    let edge = support::start_edge(
        &format!("http://{}", origin.addr),
        cache.path(),
        &["--memory-mb", "16", "--disk-mb", "0"],
        &[],
    );
    for i in 0..40 {
        let r = http1()
            .get(edge.url(&format!("/o{i}?len=1000000&cc=max-age%3D600")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), 1_000_000);
    }
    let url = edge.admin_url("/metrics");
    let mut listed = f64::MAX;
    for _ in 0..100 {
        listed = metric(&url, "strata_edge_cache_indexed_objects").await;
        if (1.0..30.0).contains(&listed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At most 16 bodies fit; a few more metas (small entries) may outlive their bodies.
    assert!(
        (1.0..30.0).contains(&listed),
        "the index lists {listed} of the 40 objects; a 16 MB cache holds about 16 of 1 MB"
    );
}
