//! The edge through clients we did not write: curl (HTTP/1.1 and HTTP/2 with prior
//! knowledge) and h2load (many HTTP/2 streams at once), against a real origin.

mod support;

use std::process::Command;
use support::{ServerProcess, base_url, pattern, sha256, sha256_file};

fn cdn() -> (tempfile::TempDir, tempfile::TempDir, ServerProcess, ServerProcess) {
    let content = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(content.path().join("t")).unwrap();
    for i in 0..8 {
        std::fs::write(
            content.path().join(format!("t/seg-{i}.m4s")),
            pattern(300_000 + i * 1000, i as u64),
        )
        .unwrap();
    }
    let origin = support::start_origin(&content.path());
    let cache = tempfile::tempdir().unwrap();
    let edge = support::start_edge(&base_url(&origin), cache.path(), &[], &[]);
    (content, cache, origin, edge)
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "20", "-D", "/dev/stderr"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stderr).to_ascii_lowercase(),
        out.stdout,
    )
}

#[test]
fn curl_gets_identical_bytes_over_h1_and_h2c_miss_and_hit() {
    let (content, _cache, _origin, edge) = cdn();
    let url = edge.url("/t/seg-3.m4s");
    let expected = sha256_file(&content.path().join("t/seg-3.m4s"));
    let (head, body) = curl(&["--http1.1", &url]);
    assert!(head.contains("cache-status: strata-edge; fwd=miss"), "{head}");
    assert_eq!(sha256(&body), expected);
    let (head, body) = curl(&["--http2-prior-knowledge", &url]);
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("cache-status: strata-edge; hit"), "{head}");
    assert_eq!(sha256(&body), expected);
    let (head, body) = curl(&["--http2-prior-knowledge", "-r", "1000-1999", &url]);
    assert!(head.starts_with("http/2 206"), "{head}");
    let data = std::fs::read(content.path().join("t/seg-3.m4s")).unwrap();
    assert_eq!(body, &data[1000..2000]);
    let (head, body) = curl(&["--http1.1", "-r", "0-9,2000-2009", &url]);
    assert!(
        head.contains("206") && head.contains("multipart/byteranges"),
        "{head}"
    );
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(&format!("bytes 0-9/{}", data.len())), "{text}");
    assert!(
        text.contains(&format!("bytes 2000-2009/{}", data.len())),
        "{text}"
    );
    let has = |part: &[u8]| body.windows(part.len()).any(|w| w == part);
    assert!(
        has(&data[0..10]) && has(&data[2000..2010]),
        "both ranges' bytes are in the body"
    );
    let (head, body) = curl(&["--http1.1", "-I", &url]);
    assert!(
        head.contains(&format!("content-length: {}", data.len())),
        "{head}"
    );
    assert_eq!(
        String::from_utf8_lossy(&body).to_ascii_lowercase(),
        head,
        "HEAD has no body"
    );
}

#[test]
fn h2load_many_streams_all_succeed() {
    let (_content, _cache, origin, edge) = cdn();
    let urls: Vec<String> = (0..8).map(|i| edge.url(&format!("/t/seg-{i}.m4s"))).collect();
    let out = Command::new("h2load")
        .args(["-n", "400", "-c", "8", "-m", "4"])
        .args(&urls)
        .output()
        .expect("h2load is installed (nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("400 succeeded, 0 failed, 0 errored"), "{text}");
    assert!(text.contains("status codes: 400 2xx"), "{text}");
    // Eight objects, eight origin fetches, however many streams asked at once.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fetched = rt.block_on(support::metric(
        &origin.admin_url("/metrics"),
        "strata_origin_requests_total{status_class=\"2xx\"}",
    ));
    assert_eq!(fetched, 8.0);
}
