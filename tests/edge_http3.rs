//! HTTP/3 at the edge: an HTTP/3 client we did not write (aioquic, from PyPI) fetches 50
//! segments at once on one QUIC connection, different and identical ones, on a cold and then a
//! warm cache; every body must match the origin's file byte for byte. HTTP/3 and TCP share
//! one cache, and TCP responses advertise HTTP/3 with Alt-Svc.

mod support;

use std::process::Command;
use support::{h3_get, pattern, sha256};

#[test]
fn fifty_parallel_h3_requests_get_the_origins_bytes_cold_and_warm() {
    let content = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(content.path().join("v")).unwrap();
    let sizes = [300_000usize, 1_000_000, 2_500_000, 3_000_000, 700_000];
    for (i, size) in sizes.iter().enumerate() {
        std::fs::write(
            content.path().join(format!("v/seg-{i}.m4s")),
            pattern(*size, i as u64 + 40),
        )
        .unwrap();
    }
    let origin = support::start_origin(content.path());
    let tls = support::start_tls_edge(&origin, &[]);
    let (edge, port) = (&tls.edge, tls.port);
    // 50 requests: every segment ten times, interleaved, so identical requests collapse and
    // different ones run side by side.
    let urls: Vec<String> = (0..50)
        .map(|n| format!("https://localhost:{port}/v/seg-{}.m4s", n % sizes.len()))
        .collect();
    let expected: Vec<String> = (0..sizes.len())
        .map(|i| sha256(&std::fs::read(content.path().join(format!("v/seg-{i}.m4s"))).unwrap()))
        .collect();
    for round in ["cold", "warm", "warm again"] {
        let results = h3_get(&urls);
        for (n, r) in results.iter().enumerate() {
            let i = n % sizes.len();
            assert!(r.get("error").is_none(), "{round} #{n}: {r}");
            assert_eq!(r["status"], 200, "{round} #{n}: {r}");
            assert_eq!(r["len"], sizes[i], "{round} #{n}: a short body must fail");
            assert_eq!(r["sha256"], expected[i].as_str(), "{round} #{n}");
        }
        if round != "cold" {
            let statuses: Vec<&str> = results
                .iter()
                .map(|r| r["headers"]["cache-status"].as_str().unwrap())
                .collect();
            assert!(
                statuses.iter().all(|s| s.contains("hit")),
                "{round}: {statuses:?}"
            );
        }
    }
    // One cache for both: every segment reached the origin once, and a TCP request hits too.
    let fetched = tokio::runtime::Runtime::new().unwrap().block_on(support::metric(
        &origin.admin_url("/metrics"),
        "strata_origin_requests_total{status_class=\"2xx\"}",
    ));
    assert_eq!(fetched, sizes.len() as f64);
    let out = Command::new("curl")
        .args(["-sk", "--http2", "-D", "-", "-o", "/dev/null"])
        .arg(format!("https://localhost:{port}/v/seg-0.m4s"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("cache-status: strata-edge; hit"), "{head}");
    assert!(head.contains(&format!("alt-svc: h3=\":{port}\"")), "{head}");
    let page = edge.admin_url("/metrics");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = |sample: &str| rt.block_on(support::metric(&page, sample));
    assert_eq!(m("strata_edge_protocol_requests_total{protocol=\"h3\"}"), 150.0);
    assert_eq!(m("strata_edge_protocol_requests_total{protocol=\"h2\"}"), 1.0);
    assert_eq!(
        m("strata_edge_quic_connections_total{outcome=\"established\"}"),
        3.0
    );
    assert_eq!(m("strata_edge_quic_rtt_seconds_count"), 3.0);
    // Megabytes went out in datagrams of at most a few KB, in no more system calls than
    // datagrams (fewer when GSO batches them).
    let (sent, ios) = (
        m("strata_edge_quic_udp_datagrams_total{direction=\"sent\"}"),
        m("strata_edge_quic_udp_ios_total{direction=\"sent\"}"),
    );
    assert!(
        sent > 1000.0 && ios >= 1.0 && ios <= sent,
        "sent {sent} in {ios} calls"
    );
    assert!(m("strata_edge_quic_udp_datagrams_total{direction=\"received\"}") > 0.0);
}

#[test]
fn address_validation_and_bbr_from_config_still_serve() {
    let content = tempfile::tempdir().unwrap();
    std::fs::write(content.path().join("seg.m4s"), pattern(1_500_000, 77)).unwrap();
    let origin = support::start_origin(content.path());
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("edge.toml");
    // Every client must answer a Retry first; BBR instead of CUBIC.
    std::fs::write(
        &config,
        "[http3]\nretry_above_connections = 0\ncongestion = \"bbr\"\n",
    )
    .unwrap();
    let tls = support::start_tls_edge(&origin, &["--config", config.to_str().unwrap()]);
    let (edge, port) = (&tls.edge, tls.port);
    let url = format!("https://localhost:{port}/seg.m4s");
    let results = h3_get(&[url.clone(), url]);
    let expected = sha256(&std::fs::read(content.path().join("seg.m4s")).unwrap());
    for r in &results {
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["sha256"], expected.as_str());
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let page = edge.admin_url("/metrics");
    let m = |s: &str| rt.block_on(support::metric(&page, s));
    assert_eq!(m("strata_edge_quic_connections_total{outcome=\"retry\"}"), 1.0);
    assert_eq!(
        m("strata_edge_quic_connections_total{outcome=\"established\"}"),
        1.0
    );
}

/// An upstream that dies mid-body (and cannot resume: one origin, which ignores Range) must
/// reach every client as a failed transfer, never as a shorter body that ends cleanly: a reset
/// stream over HTTP/3 and HTTP/2, a connection closed short of Content-Length over HTTP/1.1.
/// Nor is the cut object cached: each request goes upstream again.
#[test]
fn a_body_cut_upstream_fails_the_transfer_on_every_protocol_and_is_not_cached() {
    let origin = support::script_origin::ScriptOrigin::start();
    let certs = tempfile::tempdir().unwrap();
    support::make_cert(certs.path());
    let tls = support::start_tls_edge_to(&origin.url(), certs, &[]);
    let path = "/t/cut.m4s";
    let url = format!(
        "https://localhost:{}{path}?cc=max-age%3D600&len=2000000&cut_at=600000&trickle_ms=2",
        tls.port
    );
    let h3 = &h3_get(std::slice::from_ref(&url))[0];
    let error = h3["error"]
        .as_str()
        .unwrap_or_else(|| panic!("h3: a cut body looked whole: {h3}"));
    assert!(error.contains("reset"), "{h3}");
    for (flag, what) in [("--http1.1", "h1"), ("--http2", "h2")] {
        let out = Command::new("curl")
            .args(["-sk", flag, "-o", "/dev/null", "-w", "%{size_download}"])
            .arg(&url)
            .output()
            .unwrap();
        let got: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
        assert!(
            !out.status.success() && got < 2_000_000,
            "{what}: curl exit {:?} after {got} bytes: a cut body looked whole",
            out.status.code()
        );
    }
    assert!(
        origin.count(path) >= 3,
        "a cut object was served from the cache: {} upstream requests",
        origin.count(path)
    );
}

/// An origin holding `/big.m4s` (a pattern of `len` bytes) and a TLS edge with `config` in
/// front of it, the object already cached.
struct WarmTlsEdge {
    tls: support::TlsEdge,
    /// `https://localhost:PORT/big.m4s`.
    url: String,
    data: Vec<u8>,
    _origin: support::ServerProcess,
    _dirs: [tempfile::TempDir; 2],
}

impl WarmTlsEdge {
    fn start(len: usize, config: &str) -> Self {
        let content = tempfile::tempdir().unwrap();
        let data = pattern(len, len as u64);
        std::fs::write(content.path().join("big.m4s"), &data).unwrap();
        let origin = support::start_origin(content.path());
        let config_dir = tempfile::tempdir().unwrap();
        let path = config_dir.path().join("edge.toml");
        std::fs::write(&path, config).unwrap();
        let tls = support::start_tls_edge(&origin, &["--config", path.to_str().unwrap()]);
        let url = format!("https://localhost:{}/big.m4s", tls.port);
        let warm = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{size_download}", &url])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&warm.stdout), data.len().to_string());
        Self {
            tls,
            url,
            data,
            _origin: origin,
            _dirs: [content, config_dir],
        }
    }
}

/// A process killed when the test ends, pass or fail.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An aioquic client that GETs `url` and freezes (reads and acknowledges nothing more) once
/// its first MiB of body has arrived; returns when it has.
fn frozen_h3_client(url: &str) -> KillOnDrop {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/h3_get.py");
    let mut client = KillOnDrop(
        Command::new("python3")
            .args([script, "--freeze-after", "1048576", url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3"),
    );
    let stdout = client.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the h3 client got its first MiB within 20 s");
    assert_eq!(line.trim(), "frozen", "h3_get.py (is aioquic installed?)");
    client
}

/// An HTTP/3 client that freezes (a phone in a tunnel: it neither reads nor acknowledges) in
/// the middle of a miss must not hold up the fill: requests that follow it, over HTTP/1.1 and
/// HTTP/2, get the whole object at the upstream's pace, from one origin fetch.
#[test]
fn an_h3_client_that_freezes_mid_miss_holds_up_neither_the_fill_nor_its_followers() {
    let content = tempfile::tempdir().unwrap();
    // 40 MiB: far more than the frozen client's flow-control credit and the edge's send window.
    let data = pattern(40 << 20, 9);
    std::fs::write(content.path().join("big.m4s"), &data).unwrap();
    let origin = support::start_origin(content.path());
    let tls = support::start_tls_edge(&origin, &[]);
    let url = format!("https://localhost:{}/big.m4s", tls.port);
    let _frozen = frozen_h3_client(&url);
    let expected = sha256(&data);
    let dir = tempfile::tempdir().unwrap();
    let followers: Vec<_> = ["--http1.1", "--http2"]
        .into_iter()
        .map(|flag| {
            let out = dir.path().join(flag.trim_start_matches('-'));
            let child = Command::new("curl")
                .args(["-sk", flag, "--max-time", "20", "-o"])
                .arg(&out)
                .arg(&url)
                .spawn()
                .expect("curl");
            (flag, child, out)
        })
        .collect();
    for (flag, mut child, out) in followers {
        let status = child.wait().unwrap();
        let got = std::fs::read(&out).unwrap_or_default();
        assert!(
            status.success() && got.len() == data.len(),
            "{flag}: curl exit {:?} with {} of {} bytes within 20 s",
            status.code(),
            got.len(),
            data.len()
        );
        assert_eq!(sha256(&got), expected, "{flag}");
    }
    let fetched = tokio::runtime::Runtime::new().unwrap().block_on(support::metric(
        &origin.admin_url("/metrics"),
        "strata_origin_requests_total{status_class=\"2xx\"}",
    ));
    assert_eq!(fetched, 1.0, "one fill for all three");
}

/// A frozen HTTP/3 client is let go after the send timeout: its stream is reset, the request
/// counts as a client abort, and the edge goes on serving HTTP/3.
#[test]
fn a_frozen_h3_client_is_let_go_after_the_send_timeout() {
    // Cached first, so that the frozen client's response is a hit.
    let warm = WarmTlsEdge::start(40 << 20, "client_send_timeout_secs = 2\n");
    let (tls, url, data) = (&warm.tls, &warm.url, &warm.data);
    let frozen = frozen_h3_client(&url);
    support::wait_for_metric(
        &tls.edge.admin_url("/metrics"),
        "strata_edge_requests_total{cache_status=\"client_abort\"}",
        1.0,
        std::time::Duration::from_secs(20),
        "the frozen client was not let go (send timeout 2 s)",
    );
    let logs = tls.edge.drain_logs();
    assert!(
        logs.iter().any(|l| l.contains("WriteTimedout")),
        "the edge let the frozen client go for its send timeout: {logs:?}"
    );
    drop(frozen);
    let asked = std::time::SystemTime::now();
    let r = &h3_get(std::slice::from_ref(url))[0];
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["sha256"], sha256(data).as_str(), "{r}");
    // The hit is dated when sent, as over HTTP/1.1 and HTTP/2, not when it was stored (by now
    // at least the 2 s of the send timeout ago).
    let date = httpdate::parse_http_date(r["headers"]["date"].as_str().unwrap_or("")).expect("a Date");
    let skew = asked.duration_since(date).unwrap_or_default();
    assert!(
        skew <= std::time::Duration::from_secs(1),
        "Date {skew:?} before the request: {r}"
    );
}

/// An edge told to stop (SIGTERM) lets the responses in flight finish, over HTTP/1.1, HTTP/2
/// and HTTP/3 (whose bytes may still sit in QUIC's send buffer when the request is done),
/// refuses new connections meanwhile, and exits as soon as they are done, not at the end of
/// its drain timeout.
#[test]
fn a_stopping_edge_finishes_the_responses_in_flight_on_every_protocol_then_exits() {
    let mut warm = WarmTlsEdge::start(20 << 20, "drain_timeout_secs = 30\n");
    let (url, data) = (warm.url.clone(), warm.data.clone());
    let tls = &mut warm.tls;
    let plain = tls.edge.url("/big.m4s");
    // Two curls taking 5 MB/s (4 s each) and an aioquic client, all under way at once.
    let dir = tempfile::tempdir().unwrap();
    let slow_curl = |flag: &str, url: &str| {
        let out = dir.path().join(flag.trim_start_matches('-'));
        let child = Command::new("curl")
            .args(["-sk", flag, "--limit-rate", "5M", "--max-time", "40", "-o"])
            .arg(&out)
            .arg(url)
            .spawn()
            .expect("curl");
        (flag.to_string(), KillOnDrop(child), out)
    };
    let curls = [slow_curl("--http1.1", &plain), slow_curl("--http2", &url)];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/h3_get.py");
    let h3 = Command::new("python3")
        .args([script, &url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    support::wait_for_metric(
        &tls.edge.admin_url("/metrics"),
        "strata_edge_requests_in_flight",
        3.0,
        std::time::Duration::from_secs(20),
        "the three requests did not start",
    );
    let stopped = std::time::Instant::now();
    tls.edge.signal("TERM");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let refused = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "5", &plain])
        .status()
        .unwrap();
    assert_eq!(
        refused.code(),
        Some(7),
        "a new connection while draining is refused"
    );
    for (flag, mut child, out) in curls {
        let status = child.0.wait().unwrap();
        let got = std::fs::read(&out).unwrap_or_default();
        assert!(
            status.success() && got == data,
            "{flag}: curl exit {:?}, {} of {} bytes",
            status.code(),
            got.len(),
            data.len()
        );
    }
    let h3 = h3.wait_with_output().unwrap();
    let r: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&h3.stdout).lines().next().unwrap_or("{}")).unwrap();
    assert_eq!(r["status"], 200, "h3: {r}");
    assert_eq!(r["sha256"], sha256(&data).as_str(), "h3: {r}");
    let status = tls.edge.wait_exit(std::time::Duration::from_secs(40));
    assert!(status.success(), "edge exit {status:?}");
    let took = stopped.elapsed();
    assert!(
        took < std::time::Duration::from_secs(20),
        "the edge waited {took:?} after its last response: its drain timeout, not its work"
    );
}
