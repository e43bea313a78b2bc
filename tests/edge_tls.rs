//! The edge's HTTPS listener (rustls): HTTP/2 and HTTP/1.1 chosen by ALPN, checked with curl
//! against a certificate made here with the openssl command-line tool; bad certificate files
//! are refused at start, naming the field.

mod support;

use std::process::Command;
use support::{base_url, free_port, make_cert, pattern, run_strata, sha256};

#[test]
fn https_serves_h2_and_http11_by_alpn_from_the_same_cache() {
    let content = tempfile::tempdir().unwrap();
    std::fs::write(content.path().join("seg.m4s"), pattern(500_000, 3)).unwrap();
    let origin = support::start_origin(&content.path());
    let certs = tempfile::tempdir().unwrap();
    make_cert(certs.path());
    let cache = tempfile::tempdir().unwrap();
    let tls = format!("127.0.0.1:{}", free_port());
    let cert = certs.path().join("cert.pem");
    let key = certs.path().join("key.pem");
    let edge = support::start_edge(
        &base_url(&origin),
        cache.path(),
        &[
            "--tls-listen",
            &tls,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let expected = sha256(&std::fs::read(content.path().join("seg.m4s")).unwrap());
    let url = format!("https://{tls}/seg.m4s");
    for (flag, version, status) in [("--http2", "2", "fwd=miss"), ("--http1.1", "1.1", "hit")] {
        let out = Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--max-time", "20", "--cacert"])
            .arg(certs.path().join("cert.pem"))
            .args([flag, "-D", "/dev/stderr", "-w", "\n%{http_version}", &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        let (body, negotiated) = out.stdout.split_at(out.stdout.len() - version.len() - 1);
        assert_eq!(
            String::from_utf8_lossy(negotiated).trim(),
            version,
            "ALPN picked HTTP/{version}"
        );
        assert!(
            head.contains(&format!("cache-status: strata-edge; {status}")),
            "{head}"
        );
        assert_eq!(sha256(body), expected);
    }
    // The cleartext listener shares the cache.
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", &edge.url("/seg.m4s")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .to_ascii_lowercase()
            .contains("cache-status: strata-edge; hit")
    );
}

#[test]
fn a_bad_certificate_file_is_refused_naming_the_field() {
    let certs = tempfile::tempdir().unwrap();
    make_cert(certs.path());
    // A valid key beside a certificate file that holds no certificate.
    std::fs::write(certs.path().join("cert.pem"), "not a certificate").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (status, _, err) = run_strata(
        &[
            "edge",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--tls-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--tls-cert",
            certs.path().join("cert.pem").to_str().unwrap(),
            "--tls-key",
            certs.path().join("key.pem").to_str().unwrap(),
            "--admin-listen",
            "127.0.0.1:0",
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--disk-mb",
            "0",
        ],
        &[],
    );
    assert!(!status.success());
    assert!(
        err.contains("tls_cert") && err.contains("no PEM certificate"),
        "{err}"
    );
}
