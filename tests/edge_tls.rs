//! The edge's HTTPS listener (rustls): HTTP/2 and HTTP/1.1 chosen by ALPN, checked with curl
//! against a certificate made here with the openssl command-line tool; bad certificate files
//! are refused at start, naming the field.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::{ServerProcess, free_port, make_cert, make_cert_as, pattern, run_strata, sha256};

#[test]
fn https_serves_h2_and_http11_by_alpn_from_the_same_cache() {
    let content = tempfile::tempdir().unwrap();
    std::fs::write(content.path().join("seg.m4s"), pattern(500_000, 3)).unwrap();
    let origin = support::start_origin(&content.path());
    let tls = support::start_tls_edge(&origin, &[]);
    let edge = &tls.edge;
    let expected = sha256(&std::fs::read(content.path().join("seg.m4s")).unwrap());
    let url = tls.https("/seg.m4s");
    for (flag, version, status) in [("--http2", "2", "fwd=miss"), ("--http1.1", "1.1", "hit")] {
        let out = Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--max-time", "20", "--cacert"])
            .arg(tls.cert())
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

/// A verbose curl GET of `url` (verification off: test certificates) with `extra` arguments:
/// whether it answered 200, and curl's log (what it says of the TLS handshake).
fn curl_https(url: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args([
            "-sk",
            "-v",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let ok = out.status.success() && String::from_utf8_lossy(&out.stdout) == "200";
    (ok, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The common name of the certificate the edge presents to `host` (as SNI) on `port`, and
/// whether the HTTPS request for `path` succeeded.
fn presented_cn(host: &str, port: u16, path: &str) -> (Option<String>, bool) {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let (ok, log) = curl_https(&format!("https://{host}:{port}{path}"), &["--resolve", &resolve]);
    let cn = log
        .lines()
        .find_map(|l| l.trim_start_matches(['*', ' ']).strip_prefix("subject: CN="))
        .map(|cn| cn.trim().to_string());
    (cn, ok)
}

/// An origin and an edge with HTTPS on a free port (certificate `cert.pem`/`key.pem` in
/// `certs`, `extra_toml` as its config file); the origin serves `/seg.m4s`.
fn tls_edge(
    certs: tempfile::TempDir,
    extra_toml: &str,
) -> (ServerProcess, support::TlsEdge, tempfile::TempDir) {
    let content = tempfile::tempdir().unwrap();
    std::fs::write(content.path().join("seg.m4s"), pattern(100_000, 9)).unwrap();
    let origin = support::start_origin(content.path());
    let config = certs.path().join("edge.toml");
    std::fs::write(&config, extra_toml).unwrap();
    let edge = support::start_tls_edge_with(&origin, certs, &["--config", config.to_str().unwrap()]);
    (origin, edge, content)
}

#[test]
fn the_certificate_is_chosen_by_sni() {
    let certs = tempfile::tempdir().unwrap();
    make_cert(certs.path());
    make_cert_as(
        certs.path(),
        "video.strata.test",
        "video.strata.test",
        "video.pem",
        "video.key",
    );
    let toml = format!(
        "[[tls_sni]]\ncert = \"{0}/video.pem\"\nkey = \"{0}/video.key\"\n",
        certs.path().display()
    );
    let (_origin, tls, _content) = tls_edge(certs, &toml);
    let port = tls.port;
    assert_eq!(
        presented_cn("video.strata.test", port, "/seg.m4s"),
        (Some("video.strata.test".into()), true)
    );
    assert_eq!(
        presented_cn("localhost", port, "/seg.m4s"),
        (Some("localhost".into()), true)
    );
    assert_eq!(
        presented_cn("other.strata.test", port, "/seg.m4s"),
        (Some("localhost".into()), true)
    );
}

#[test]
fn renewed_certificate_files_are_picked_up_without_a_failed_request() {
    let certs = tempfile::tempdir().unwrap();
    make_cert(certs.path());
    let (_origin, tls, _content) = tls_edge(certs, "tls_reload_ms = 200\n");
    let (edge, port, certs) = (&tls.edge, tls.port, tls.certs.path());
    assert_eq!(
        presented_cn("localhost", port, "/seg.m4s"),
        (Some("localhost".into()), true)
    );

    // Clients keep making new HTTPS connections while the files are replaced.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match presented_cn("localhost", port, "/seg.m4s") {
                    (Some(_), true) => ok += 1,
                    other => failed.push(other),
                }
            }
            (ok, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // A broken key first: the old certificate must stay in use.
    std::fs::write(certs.join("key.pem"), "not a key").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        presented_cn("localhost", port, "/seg.m4s"),
        (Some("localhost".into()), true)
    );
    // Then a renewal, written elsewhere and renamed into place as certificate tools do.
    let fresh = tempfile::tempdir_in(certs).unwrap();
    make_cert_as(
        fresh.path(),
        "localhost-renewed",
        "localhost",
        "cert.pem",
        "key.pem",
    );
    std::fs::rename(fresh.path().join("key.pem"), certs.join("key.pem")).unwrap();
    std::fs::rename(fresh.path().join("cert.pem"), certs.join("cert.pem")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while presented_cn("localhost", port, "/seg.m4s").0.as_deref() != Some("localhost-renewed") {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} requests failed during the renewal: {failed:?}",
        failed.len()
    );
    assert!(ok > 10, "only {ok} requests were made");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let page = edge.admin_url("/metrics");
    assert!(
        rt.block_on(support::metric(
            &page,
            "strata_edge_tls_reloads_total{outcome=\"failed\"}"
        )) >= 1.0
    );
    assert!(
        rt.block_on(support::metric(
            &page,
            "strata_edge_tls_reloads_total{outcome=\"ok\"}"
        )) >= 1.0
    );
}

/// `/seg.m4s` over HTTPS to `port` with `--tls-max max`: whether it came back 200, and the
/// version curl says it negotiated.
fn fetch_with_tls_max(port: u16, max: &str) -> (bool, Option<String>) {
    let (ok, log) = curl_https(&format!("https://localhost:{port}/seg.m4s"), &["--tls-max", max]);
    let version = log
        .lines()
        .find_map(|l| l.split("SSL connection using ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string);
    (ok, version)
}

#[test]
fn tls_12_clients_are_refused_unless_the_config_allows_them() {
    // By default TLS 1.3 is the oldest version: a client limited to TLS 1.2 fails its
    // handshake (and is counted), one that speaks 1.3 is served.
    let certs = tempfile::tempdir().unwrap();
    make_cert(certs.path());
    let (_origin, tls, _content) = tls_edge(certs, "");
    let (ok, version) = fetch_with_tls_max(tls.port, "1.2");
    assert!(!ok, "a TLS 1.2 client was served ({version:?})");
    let (ok, version) = fetch_with_tls_max(tls.port, "1.3");
    assert!(ok, "a TLS 1.3 client was refused");
    assert_eq!(version.as_deref(), Some("TLSv1.3"));
    let refused = tokio::runtime::Runtime::new().unwrap().block_on(support::metric(
        &tls.edge.admin_url("/metrics"),
        "strata_edge_tls_handshakes_refused_total",
    ));
    assert_eq!(refused, 1.0);

    // `tls_min_version = "1.2"` lets the older client in.
    let certs = tempfile::tempdir().unwrap();
    make_cert(certs.path());
    let (_origin, tls, _content) = tls_edge(certs, "tls_min_version = \"1.2\"\n");
    let (ok, version) = fetch_with_tls_max(tls.port, "1.2");
    assert!(ok, "tls_min_version = 1.2 still refused a TLS 1.2 client");
    assert_eq!(version.as_deref(), Some("TLSv1.2"));
}
