//! The origin through curl, a client we did not write: the same contract as origin_http.rs,
//! checked from outside our own HTTP stack (HTTP/1.1 and HTTP/2 with prior knowledge).

mod support;

use std::process::Command;
use support::{sample_content_root, sha256, sha256_file};

/// Runs curl and returns (status code, response headers as text, body).
fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "20", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&head)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let head = std::fs::read_to_string(&head)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = std::fs::read(&body).unwrap_or_default();
    (code, head, body)
}

fn header(head: &str, name: &str) -> String {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().to_string())
        .next_back()
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

#[test]
fn curl_sees_the_same_contract_over_h1_and_h2() {
    let root = sample_content_root();
    let origin = support::start_origin(&root);
    let seg_path = root.join("sample/seg-2-00001.m4s");
    let seg = std::fs::read(&seg_path).unwrap();
    let n = seg.len();
    let url = origin.url("/sample/seg-2-00001.m4s");
    for proto in ["--http1.1", "--http2-prior-knowledge"] {
        let (code, head, body) = curl(&[proto, &url]);
        assert_eq!(code, 200);
        if proto == "--http2-prior-knowledge" {
            assert!(head.starts_with("http/2 200"), "{head}");
        }
        assert_eq!(header(&head, "content-type"), "video/iso.segment");
        assert_eq!(sha256(&body), sha256_file(&seg_path));
        let etag = header(&head, "etag");

        let (code, _, body) = curl(&[proto, "-H", &format!("If-None-Match: {etag}"), &url]);
        assert_eq!((code, body.len()), (304, 0));

        let (code, head, body) = curl(&[proto, "-r", "100-199", &url]);
        assert_eq!(code, 206);
        assert_eq!(header(&head, "content-range"), format!("bytes 100-199/{n}"));
        assert_eq!(body, &seg[100..200]);

        let (code, head, body) = curl(&[proto, "-r", "-100", &url]);
        assert_eq!(
            (code, header(&head, "content-range")),
            (206, format!("bytes {}-{}/{n}", n - 100, n - 1))
        );
        assert_eq!(body, &seg[n - 100..]);

        let (code, head, body) = curl(&[proto, "-r", "0-9,20-29", &url]);
        assert_eq!(code, 206);
        assert!(header(&head, "content-type").starts_with("multipart/byteranges"));
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(&format!("Content-Range: bytes 0-9/{n}")));
        assert!(text.contains(&format!("Content-Range: bytes 20-29/{n}")));

        let (code, head, _) = curl(&[proto, "-r", &format!("{}-", n + 10), &url]);
        assert_eq!(
            (code, header(&head, "content-range")),
            (416, format!("bytes */{n}"))
        );

        // curl -I writes the response head where the body would go: nothing else may follow.
        let (code, head, body) = curl(&[proto, "-I", &url]);
        assert_eq!((code, header(&head, "content-length")), (200, n.to_string()));
        assert_eq!(String::from_utf8_lossy(&body).to_ascii_lowercase(), head);

        let (code, head, _) = curl(&[proto, &origin.url("/sample/master.m3u8")]);
        assert_eq!(
            (code, header(&head, "content-type")),
            (200, "application/vnd.apple.mpegurl".into())
        );
        let (code, head, _) = curl(&[proto, &origin.url("/sample/manifest.mpd")]);
        assert_eq!(
            (code, header(&head, "content-type")),
            (200, "application/dash+xml".into())
        );

        let (code, _, body) = curl(&[proto, "--path-as-is", &origin.url("/sample/../../../etc/passwd")]);
        assert_eq!(code, 400);
        assert!(!String::from_utf8_lossy(&body).contains("root:"));
        let (code, _, _) = curl(&[proto, "--path-as-is", &origin.url("/%2e%2e/%2e%2e/etc/passwd")]);
        assert_eq!(code, 400);

        let (code, head, _) = curl(&[proto, "-X", "DELETE", &url]);
        assert_eq!((code, header(&head, "allow")), (405, "get, head".into()));
    }
    let big = "x".repeat(20_000);
    let (code, _, body) = curl(&["--http1.1", "-H", &format!("X-Big: {big}"), &url]);
    assert_eq!(code, 431);
    assert!(String::from_utf8_lossy(&body).contains("limit"));
}
