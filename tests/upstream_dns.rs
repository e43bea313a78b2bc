//! Upstream host names resolve through the configured name servers (hickory-resolver), and a
//! re-pointed name is followed once its record's TTL runs out, with no restart. The name
//! server is a real one on loopback (dnslib, from PyPI) serving records the test rewrites.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{ServerProcess, free_port, http1, start_edge};

/// The test's DNS server, killed on drop.
struct DnsServer {
    child: Child,
    port: u16,
}

impl DnsServer {
    fn start(records: &Path) -> DnsServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/dns_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(records)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("dns_server.py said {line:?} (is dnslib installed? .ci/install-deps test)")
            });
        DnsServer { child, port }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn origin_serving(dir: &Path, body: &str, ip: &str, port: u16) -> ServerProcess {
    std::fs::create_dir_all(dir.join("t")).unwrap();
    std::fs::write(dir.join("t/who.json"), body).unwrap();
    let listen = format!("{ip}:{port}");
    ServerProcess::start(
        "origin",
        &[
            "--root",
            dir.to_str().unwrap(),
            "--listen",
            &listen,
            "--admin-listen",
            &format!("{ip}:0"),
        ],
        &[],
    )
}

#[tokio::test]
async fn a_repointed_origin_name_is_followed_after_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.json");
    std::fs::write(&records, r#"{"origin.strata.test": "127.0.0.1"}"#).unwrap();
    let dns = DnsServer::start(&records);

    // Two origins on the same port of two addresses, with different content.
    let port = free_port();
    let _a = origin_serving(&dir.path().join("a"), "\"A\"", "127.0.0.1", port);
    let _b = origin_serving(&dir.path().join("b"), "\"B\"", "127.0.0.2", port);

    // One edge fetches through its resuming relay (the default), one directly.
    let mut edges = Vec::new();
    for (name, extra) in [("relay", ""), ("direct", "resume_mid_body = false\n")] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!("{extra}[dns]\nnameservers = [\"127.0.0.1:{}\"]\n", dns.port),
        )
        .unwrap();
        let upstream = format!("http://origin.strata.test:{port}");
        let cache = dir.path().join(format!("{name}-cache"));
        edges.push(start_edge(
            &upstream,
            &cache,
            &["--config", config.to_str().unwrap()],
            &[],
        ));
    }
    let client = http1();
    let who = |edge: usize, q: &str| {
        let (client, url) = (client.clone(), edges[edge].url(&format!("/t/who.json?{q}")));
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    for edge in 0..2 {
        assert_eq!(who(edge, "v=1").await, (200, "\"A\"".to_string()), "edge {edge}");
    }

    std::fs::write(&records, r#"{"origin.strata.test": "127.0.0.2"}"#).unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    for edge in 0..2 {
        assert_eq!(
            who(edge, "v=2").await,
            (200, "\"B\"".to_string()),
            "edge {edge}: the new address after the 1 s TTL"
        );
    }

    // A name that no longer resolves is a clean 502 that names it.
    std::fs::write(&records, "{}").unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    for edge in 0..2 {
        let (status, text) = who(edge, "v=3").await;
        assert_eq!(status, 502, "edge {edge}: {text}");
        assert!(text.contains("origin.strata.test"), "edge {edge}: {text}");
    }
}
