//! Shared pieces of the end-to-end tests: starting real `strata` processes on loopback,
//! the sample title (made once per build with the real ffmpeg), and small clients.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod control_plane;
pub mod raw_http;
pub mod script_origin;
pub mod steering;

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn strata_bin() -> &'static str {
    env!("CARGO_BIN_EXE_strata")
}

/// A running `strata` server process, killed on drop.
pub struct ServerProcess {
    pub child: Child,
    /// Addresses announced in the log, by message ("origin listening" -> addr).
    pub data_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Log lines (JSON) seen so far and later, for diagnostics.
    logs: mpsc::Receiver<String>,
    /// How it was started, for [`ServerProcess::restart`].
    role: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl ServerProcess {
    /// Starts `strata ROLE ARGS... --log-format json` and waits until it announces both
    /// listeners (`<role> listening` and `admin listening`).
    pub fn start(role: &str, args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = Command::new(strata_bin());
        cmd.arg("--log-format").arg("json").arg(role).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strata");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let want_data = format!("{role} listening");
        let (mut data, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while data.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let status = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    panic!(
                        "strata {role} did not start (exit: {status:?}); log:\n{}",
                        seen.join("\n")
                    );
                }
            };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let msg = v["message"].as_str().unwrap_or_default();
                let addr = v["addr"].as_str().and_then(|a| a.parse().ok());
                if msg == want_data {
                    data = addr;
                } else if msg == "admin listening" {
                    admin = addr;
                }
            }
            seen.push(line);
        }
        let process = ServerProcess {
            child,
            data_addr: data.unwrap(),
            admin_addr: admin.unwrap(),
            logs: rx,
            role: role.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            envs: envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        // Some roles announce their address just before binding it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(process.data_addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "strata {role} announced {} but does not accept",
                process.data_addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    /// Base URL of the data listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.data_addr)
    }

    /// URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// Kills the process and starts it again with the same arguments (its listener keeps
    /// its address when the arguments name one).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        *self = ServerProcess::start(&self.role.clone(), &args, &envs);
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "strata did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Log lines received since the last call.
    pub fn drain_logs(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // A failing test shows what its servers complained of (warnings, errors, requests
            // that ended in an error or a 4xx/5xx), the last 40 if there are more.
            let notable: Vec<String> = self
                .logs
                .try_iter()
                .filter(|l| {
                    [
                        "\"WARN\"",
                        "\"ERROR\"",
                        "\"error\":\"",
                        "\"status\":4",
                        "\"status\":5",
                    ]
                    .iter()
                    .any(|mark| l.contains(mark))
                })
                .collect();
            let from = notable.len().saturating_sub(40);
            if !notable.is_empty() {
                eprintln!(
                    "--- strata {} ({}): {} notable log lines",
                    self.role,
                    self.data_addr,
                    notable.len()
                );
                for line in &notable[from..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// `strata origin` serving `root` on ports of its choosing.
pub fn start_origin(root: &Path) -> ServerProcess {
    let root = root.to_str().unwrap();
    ServerProcess::start(
        "origin",
        &[
            "--root",
            root,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
}

/// `strata edge` on a free port in front of `upstream` (a base URL), caching in `cache`
/// (64 MiB memory, 256 MiB disk unless `extra` sets them); `extra` flags are added last.
pub fn start_edge(upstream: &str, cache: &Path, extra: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
    start_cache_node("edge", upstream, cache, extra, envs)
}

/// `strata ROLE` (edge or midtier) as [`start_edge`] describes.
pub fn start_cache_node(
    role: &str,
    upstream: &str,
    cache: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> ServerProcess {
    let listen = format!("127.0.0.1:{}", free_port());
    let defaults = [
        ("--listen", listen.as_str()),
        ("--admin-listen", "127.0.0.1:0"),
        ("--upstream", upstream),
        ("--cache-dir", cache.to_str().unwrap()),
        ("--memory-mb", "64"),
        ("--disk-mb", "256"),
        // Every object to disk, so tests of persistence need one request; the admission
        // threshold has its own tests.
        ("--disk-admission", "1"),
    ];
    let mut args: Vec<&str> = Vec::new();
    // clap refuses a flag given twice, so a flag in `extra` replaces its default.
    for (flag, value) in defaults.iter().filter(|(flag, _)| !extra.contains(flag)) {
        args.extend([*flag, *value]);
    }
    args.extend_from_slice(extra);
    ServerProcess::start(role, &args, envs)
}

/// The base URL of a running server's data listener, as an upstream for an edge.
pub fn base_url(server: &ServerProcess) -> String {
    format!("http://{}", server.data_addr)
}

/// Runs `strata ARGS...` to completion and returns (status, stdout, stderr).
pub fn run_strata(args: &[&str], envs: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(strata_bin());
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run strata");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sample title, made once per build with the real ffmpeg (under the target dir's test
/// scratch space) and shared by every test binary. Returns the content root. CI keeps its
/// target dir between runs, so bump the directory's version suffix whenever
/// `origin::packaging` changes what it makes.
pub fn sample_content_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sample-content-v1");
    std::fs::create_dir_all(&root).unwrap();
    // Test binaries run in parallel: one makes the title, the others wait on the lock.
    let lock = std::fs::File::create(root.join(".lock")).unwrap();
    lock.lock().unwrap();
    if !root.join("sample/master.m3u8").is_file() || !root.join("sample/manifest.mpd").is_file() {
        let (status, out, err) = run_strata(
            &[
                "sample-content",
                "--out",
                root.to_str().unwrap(),
                "--duration",
                "20",
            ],
            &[],
        );
        assert!(status.success(), "sample-content failed: {out}\n{err}");
    }
    lock.unlock().unwrap();
    root
}

/// Hex SHA-256 of some bytes.
pub fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap())
}

/// Reads one sample (`name{labels}` exactly, or a bare name) from a Prometheus text page.
pub async fn metric(url: &str, sample: &str) -> f64 {
    let text = http1().get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' '))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .unwrap_or(0.0)
}

/// Waits (blocking, polling every 20 ms) until `sample` on the metrics page `url` reaches
/// `at_least`; panics with `what` if it has not within `limit`.
pub fn wait_for_metric(url: &str, sample: &str, at_least: f64, limit: Duration, what: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + limit;
    while rt.block_on(metric(url, sample)) < at_least {
        assert!(Instant::now() < deadline, "{what} (within {limit:?})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deterministic, incompressible-looking test bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A free loopback port for a server that needs a fixed one, never the same twice in this
/// process. It is taken below Linux's ephemeral range (32768 and up), so a process that
/// binds port 0 meanwhile cannot be handed the same port before our server binds it.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap();
    // Spread test binaries (separate processes) over the range by their pid.
    let mut candidate = 20_000 + (std::process::id() % 9_000) as u16 + handed_out.len() as u16 * 7;
    loop {
        candidate = if candidate >= 29_999 {
            20_000
        } else {
            candidate + 1
        };
        if handed_out.contains(&candidate) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            handed_out.push(candidate);
            return candidate;
        }
    }
}

/// A blocking HTTP/1.1 client for tests.
pub fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .build()
        .unwrap()
}

/// An HTTP/2 (prior knowledge, cleartext) client for tests.
pub fn http2() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap()
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (`cert.pem`, `key.pem` in `dir`),
/// made with the openssl command-line tool.
pub fn make_cert(dir: &Path) {
    make_cert_as(dir, "localhost", "localhost", "cert.pem", "key.pem");
}

/// A self-signed certificate with common name `cn`, valid for DNS name `name` and 127.0.0.1,
/// written to `dir/cert_file` and `dir/key_file` (openssl command-line tool).
pub fn make_cert_as(dir: &Path, cn: &str, name: &str, cert_file: &str, key_file: &str) {
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name},IP:127.0.0.1")])
        .arg("-keyout")
        .arg(dir.join(key_file))
        .arg("-out")
        .arg(dir.join(cert_file))
        .output()
        .expect("openssl is installed");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A test CA (`ca.pem`) and a server certificate it signed for localhost and 127.0.0.1
/// (`cert.pem`, `key.pem`) in `dir` (openssl command-line tool).
pub fn make_ca_signed_cert(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=strata test CA",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "leaf.csr"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
}

/// The parts of a `multipart/byteranges` body as Python's email parser reads them
/// (`byteranges.py`): each part's `Content-Range`, `Content-Type` and bytes.
pub fn parse_byteranges(content_type: &str, body: &[u8]) -> Vec<(String, Option<String>, Vec<u8>)> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/byteranges.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(content_type)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "byteranges.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let hex = v["hex"].as_str().unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let range = v["range"].as_str().unwrap().to_string();
            (range, v["type"].as_str().map(str::to_string), bytes)
        })
        .collect()
}

/// Runs `h3_get.py` on `urls`; one JSON object per URL.
pub fn h3_get(urls: &[String]) -> Vec<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/h3_get.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(urls)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        results.len(),
        urls.len(),
        "h3_get.py (is aioquic installed? .ci/install-deps test):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    results
}

/// An edge with HTTPS and HTTP/3 on a free port of 127.0.0.1, and what it keeps on disk.
pub struct TlsEdge {
    pub edge: ServerProcess,
    /// The TLS port (TCP and UDP).
    pub port: u16,
    /// Holds `cert.pem` and `key.pem`.
    pub certs: tempfile::TempDir,
    pub cache: tempfile::TempDir,
}

impl TlsEdge {
    /// `https://127.0.0.1:PORT{path}`.
    pub fn https(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The certificate file.
    pub fn cert(&self) -> PathBuf {
        self.certs.path().join("cert.pem")
    }
}

/// An edge in front of `origin` with a fresh self-signed certificate (see [`make_cert`]),
/// HTTPS and HTTP/3 on a free port, a fresh cache, and `extra` flags.
pub fn start_tls_edge(origin: &ServerProcess, extra: &[&str]) -> TlsEdge {
    let certs = tempfile::tempdir().unwrap();
    make_cert(certs.path());
    start_tls_edge_with(origin, certs, extra)
}

/// [`start_tls_edge`] with the certificate already in `certs` (`cert.pem`, `key.pem`).
pub fn start_tls_edge_with(origin: &ServerProcess, certs: tempfile::TempDir, extra: &[&str]) -> TlsEdge {
    start_tls_edge_to(&base_url(origin), certs, extra)
}

/// [`start_tls_edge_with`] in front of any upstream URL (a [`script_origin::ScriptOrigin`]'s, say).
pub fn start_tls_edge_to(upstream: &str, certs: tempfile::TempDir, extra: &[&str]) -> TlsEdge {
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let tls = format!("127.0.0.1:{port}");
    let cert = certs.path().join("cert.pem");
    let key = certs.path().join("key.pem");
    let mut args = vec![
        "--tls-listen",
        &tls,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let edge = start_edge(upstream, cache.path(), &args, &[]);
    TlsEdge {
        edge,
        port,
        certs,
        cache,
    }
}
