//! The origin over real sockets: a `strata origin` process on loopback, spoken to over
//! HTTP/1.1 and HTTP/2 (reqwest/hyper) and raw TCP for what URL libraries would rewrite.

mod support;

use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;
use support::raw_http;
use support::{ServerProcess, http1, http2, pattern, sha256};
use tempfile::TempDir;

/// A content root with one file per served type, a live and a VOD playlist, and a link
/// that points outside the root.
fn content_root() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("t")).unwrap();
    for (i, ext) in ["m4s", "mp4", "m4a", "m4v", "ts", "vtt", "json", "bin"]
        .iter()
        .enumerate()
    {
        std::fs::write(root.join(format!("t/file.{ext}")), pattern(1000 + i, i as u64)).unwrap();
    }
    std::fs::write(
        root.join("t/vod.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile.m4s\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    std::fs::write(
        root.join("t/live.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:9\n#EXTINF:2.0,\nfile.m4s\n",
    )
    .unwrap();
    std::fs::write(
        root.join("t/vod.mpd"),
        r#"<?xml version="1.0"?><MPD type="static"></MPD>"#,
    )
    .unwrap();
    std::fs::write(root.join("t/live.mpd"), r#"<MPD type="dynamic"></MPD>"#).unwrap();
    std::fs::write(root.join("t/big.m4s"), pattern(8 << 20, 99)).unwrap();
    let outside = root
        .parent()
        .unwrap()
        .join(format!("{}-outside", root.file_name().unwrap().to_str().unwrap()));
    std::fs::write(&outside, b"secret outside the root").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("t/leak.json")).unwrap();
    dir
}

fn start(root: &Path) -> ServerProcess {
    support::start_origin(&root)
}

fn file(root: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(root.join(rel)).unwrap()
}

#[tokio::test]
async fn content_types_and_cache_control_per_class_over_h1_and_h2() {
    let dir = content_root();
    let origin = start(dir.path());
    let cases = [
        ("t/file.m4s", "video/iso.segment", "immutable"),
        ("t/file.mp4", "video/mp4", "immutable"),
        ("t/file.m4a", "audio/mp4", "immutable"),
        ("t/file.m4v", "video/mp4", "immutable"),
        ("t/file.ts", "video/mp2t", "immutable"),
        ("t/file.vtt", "text/vtt", "immutable"),
        ("t/file.json", "application/json", "max-age=300"),
        ("t/file.bin", "application/octet-stream", "max-age=300"),
        ("t/vod.m3u8", "application/vnd.apple.mpegurl", "max-age=3600"),
        ("t/live.m3u8", "application/vnd.apple.mpegurl", "max-age=1"),
        ("t/vod.mpd", "application/dash+xml", "max-age=3600"),
        ("t/live.mpd", "application/dash+xml", "max-age=1"),
    ];
    for (client, version) in [
        (http1(), reqwest::Version::HTTP_11),
        (http2(), reqwest::Version::HTTP_2),
    ] {
        for (path, mime, cc) in cases {
            let r = client.get(origin.url(&format!("/{path}"))).send().await.unwrap();
            assert_eq!(r.version(), version);
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(r.headers()["content-type"], mime, "{path}");
            let got_cc = r.headers()["cache-control"].to_str().unwrap().to_string();
            assert!(got_cc.contains(cc), "{path}: cache-control {got_cc}");
            assert!(
                r.headers()["etag"].to_str().unwrap().starts_with('"'),
                "strong etag for {path}"
            );
            assert!(r.headers().contains_key("last-modified"));
            let body = r.bytes().await.unwrap();
            assert_eq!(sha256(&body), sha256(&file(dir.path(), path)), "{path} body");
        }
    }
}

#[tokio::test]
async fn conditional_requests_answer_304_and_412() {
    let dir = content_root();
    let origin = start(dir.path());
    let c = http1();
    let url = origin.url("/t/file.m4s");
    let first = c.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].clone();
    let last_modified = first.headers()["last-modified"].clone();

    let r = c
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"], etag);
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(r.bytes().await.unwrap().is_empty());

    let r = c
        .head(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    let r = c
        .get(&url)
        .header("if-modified-since", last_modified.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    let r = c
        .get(&url)
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = c
        .get(&url)
        .header("if-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert!(r.text().await.unwrap().contains("precondition"));

    let r = c
        .get(&url)
        .header("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);

    // A changed file gets a new validator, so the old one no longer yields 304.
    std::fs::remove_file(dir.path().join("t/file.m4s")).unwrap();
    std::fs::write(dir.path().join("t/file.m4s"), b"replaced").unwrap();
    let r = c
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(r.headers()["etag"], etag);
    assert_eq!(&r.bytes().await.unwrap()[..], b"replaced");
}

#[tokio::test]
async fn head_describes_without_a_body() {
    let dir = content_root();
    let origin = start(dir.path());
    for c in [http1(), http2()] {
        let r = c.head(origin.url("/t/big.m4s")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-length"], (8u64 << 20).to_string().as_str());
        assert_eq!(r.headers()["accept-ranges"], "bytes");
        assert!(r.bytes().await.unwrap().is_empty());
    }
    // Range is for GET only: a HEAD with Range still describes the whole object.
    let r = http1()
        .head(origin.url("/t/big.m4s"))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn single_suffix_open_and_unsatisfiable_ranges() {
    let dir = content_root();
    let origin = start(dir.path());
    let data = file(dir.path(), "t/big.m4s");
    let n = data.len();
    for c in [http1(), http2()] {
        let url = origin.url("/t/big.m4s");
        for (range, from, to) in [
            ("bytes=0-99", 0, 99),
            ("bytes=1000000-2999999", 1_000_000, 2_999_999),
            ("bytes=-500", n - 500, n - 1),
            ("bytes=8388000-", 8_388_000, n - 1),
            ("bytes=8388000-99999999", 8_388_000, n - 1),
        ] {
            let r = c.get(&url).header("range", range).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(
                r.headers()["content-range"],
                format!("bytes {from}-{to}/{n}").as_str(),
                "{range}"
            );
            let body = r.bytes().await.unwrap();
            assert_eq!(body.len(), to - from + 1, "{range}");
            assert_eq!(&body[..], &data[from..=to], "{range}");
        }
        let r = c
            .get(&url)
            .header("range", format!("bytes={n}-"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()["content-range"], format!("bytes */{n}").as_str());
        assert!(r.text().await.unwrap().contains("range"));

        // A malformed Range is ignored (RFC 9110 14.2): the whole object.
        let r = c.get(&url).header("range", "bytes=banana").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.unwrap().len(), n);

        // If-Range with a stale validator: the whole object; with the current one: the range.
        let r = c
            .get(&url)
            .header("range", "bytes=0-9")
            .header("if-range", "\"old\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()["etag"].clone();
        let r = c
            .get(&url)
            .header("range", "bytes=0-9")
            .header("if-range", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    }
}

/// Splits a multipart/byteranges body into (content-range, bytes) parts.
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type.split("boundary=").nth(1).unwrap();
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let start = find(rest, delim.as_bytes()).expect("delimiter") + delim.len();
        rest = &rest[start..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part has a Content-Range")
            .to_string();
        let bytes_start = head_end + 4;
        let next = find(&rest[bytes_start..], format!("\r\n{delim}").as_bytes()).unwrap();
        parts.push((range, rest[bytes_start..bytes_start + next].to_vec()));
        rest = &rest[bytes_start + next + 2..];
    }
    parts
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn multiple_ranges_come_as_multipart_byteranges() {
    let dir = content_root();
    let origin = start(dir.path());
    let data = file(dir.path(), "t/big.m4s");
    let n = data.len();
    for c in [http1(), http2()] {
        let r = c
            .get(origin.url("/t/big.m4s"))
            .header("range", "bytes=0-99, 5000000-5000999, -10")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
        let declared: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), declared);
        let parts = parse_multipart(&ct, &body);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].0, format!("bytes 0-99/{n}"));
        assert_eq!(parts[0].1, &data[0..=99]);
        assert_eq!(parts[1].0, format!("bytes 5000000-5000999/{n}"));
        assert_eq!(parts[1].1, &data[5_000_000..=5_000_999]);
        assert_eq!(parts[2].0, format!("bytes {}-{}/{n}", n - 10, n - 1));
        assert_eq!(parts[2].1, &data[n - 10..]);
    }
    // More ranges than the limit (16 by default) are refused.
    let many: Vec<String> = (0..20).map(|i| format!("{}-{}", i * 100, i * 100 + 9)).collect();
    let r = http1()
        .get(origin.url("/t/big.m4s"))
        .header("range", format!("bytes={}", many.join(",")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

#[test]
fn traversal_in_every_spelling_is_refused_and_never_leaks() {
    let dir = content_root();
    let origin = start(dir.path());
    for target in [
        "/../../../../etc/passwd",
        "/t/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/t/..%2f..%2fetc%2fpasswd",
        "/t/%2e%2e%5c%2e%2e%5cetc%5cpasswd",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/t/file.m4s%00.json",
        "/.hidden",
    ] {
        let r = raw_http::get(origin.data_addr, target);
        assert!((400..500).contains(&r.status), "{target}: got {}", r.status);
        assert!(!r.text().contains("root:"), "{target} leaked /etc/passwd");
        assert!(
            r.text().contains(&r.status.to_string()),
            "{target}: the body gives a reason: {}",
            r.text()
        );
    }
    // An absolute path maps into the root, where there is no /etc/passwd.
    let r = raw_http::get(origin.data_addr, "/etc/passwd");
    assert_eq!(r.status, 404);
    // A symbolic link inside the root that points outside it is not followed.
    let r = raw_http::get(origin.data_addr, "/t/leak.json");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("secret"));
    assert!(r.text().contains("outside the content root"));
}

#[test]
fn other_methods_get_405_with_allow() {
    let dir = content_root();
    let origin = start(dir.path());
    for method in ["POST", "PUT", "DELETE", "PATCH", "PURGE"] {
        let req = format!(
            "{method} /t/file.m4s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let r = raw_http::exchange(origin.data_addr, req.as_bytes());
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD"));
        assert!(r.text().contains("only GET and HEAD"));
    }
    // The file is untouched.
    assert_eq!(file(dir.path(), "t/file.m4s").len(), 1000);
}

#[test]
fn oversized_headers_get_431() {
    let dir = content_root();
    let origin = start(dir.path());
    // Above the configured limit (16 KiB): our own check, with a reason.
    let big = "x".repeat(20 * 1024);
    let req = format!("GET /t/file.m4s HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let r = raw_http::exchange(origin.data_addr, req.as_bytes());
    assert_eq!(r.status, 431);
    assert!(r.text().contains("limit is 16384"), "{}", r.text());
    // Far above it: the HTTP/1 parser refuses before the request is complete.
    let huge = "x".repeat(200 * 1024);
    let req = format!("GET /t/file.m4s HTTP/1.1\r\nHost: t\r\nX-Big: {huge}\r\nConnection: close\r\n\r\n");
    let r = raw_http::exchange(origin.data_addr, req.as_bytes());
    assert_eq!(r.status, 431);
}

#[tokio::test]
async fn cors_lets_browser_players_read_content() {
    let dir = content_root();
    let origin = start(dir.path());
    let c = http1();
    let r = c
        .get(origin.url("/t/vod.m3u8"))
        .header("origin", "https://player.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = c
        .request(reqwest::Method::OPTIONS, origin.url("/t/file.m4s"))
        .header("origin", "https://player.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Range")
    );
}

#[tokio::test]
async fn metrics_and_health_live_on_the_admin_listener() {
    let dir = content_root();
    let origin = start(dir.path());
    let c = http1();
    for _ in 0..3 {
        let r = c.get(origin.url("/t/file.m4s")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
    }
    assert_eq!(
        c.get(origin.url("/t/missing.m4s")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    // The content listener has no /metrics: it is just a missing object there.
    assert_eq!(
        c.get(origin.url("/metrics")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let text = c
        .get(origin.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle} missing in:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(value("strata_origin_requests_total{status_class=\"2xx\"}") >= 3.0);
    assert!(value("strata_origin_requests_total{status_class=\"4xx\"}") >= 2.0);
    assert!(value("strata_origin_response_bytes_total") >= 3000.0);
    assert!(value("strata_origin_request_duration_seconds_count") >= 5.0);
    assert!(text.contains("strata_build_info{role=\"origin\""));

    let r = c.get(origin.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["role"], "origin");

    // Storage gone: health says so, with the reason.
    let root = dir.path().to_path_buf();
    let moved = root.with_extension("moved");
    std::fs::rename(&root, &moved).unwrap();
    let r = c.get(origin.admin_url("/healthz")).send().await.unwrap();
    std::fs::rename(&moved, &root).unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["status"], "unhealthy");
    assert!(v["reason"].as_str().unwrap().contains("storage unavailable"));
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_download_then_exits_zero() {
    let dir = content_root();
    // Larger than loopback socket buffers, so the origin is still sending when told to stop.
    std::fs::write(dir.path().join("t/huge.m4s"), pattern(48 << 20, 7)).unwrap();
    let mut origin = start(dir.path());
    let expected = sha256(&file(dir.path(), "t/huge.m4s"));
    let r = http1().get(origin.url("/t/huge.m4s")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    use futures::StreamExt;
    let mut body = Vec::new();
    // Read a little, then ask the origin to stop while most of the body is still unsent.
    body.extend_from_slice(&stream.next().await.unwrap().unwrap());
    origin.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused once draining has begun.
    assert!(
        std::net::TcpStream::connect(origin.data_addr).is_err(),
        "listener closed while draining"
    );
    assert!(
        origin.child.try_wait().unwrap().is_none(),
        "the origin waits for the in-flight response"
    );
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.expect("the in-flight body completes"));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(sha256(&body), expected, "the whole body arrived intact");
    let status = origin.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
}
