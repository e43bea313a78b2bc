//! `strata demo`: on an empty data directory it makes the sample title with ffmpeg, starts
//! every role on loopback (control plane, origin, a mid-tier, two edges in front of it),
//! starts a play through the control plane and prints its URLs, whose segments come from
//! the token-enforcing edges, and stops on Ctrl-C.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{free_port, http1};

#[tokio::test]
async fn demo_prints_working_urls_and_stops_cleanly_on_ctrl_c() {
    let data = tempfile::tempdir().unwrap();
    let port = loop {
        let p = free_port();
        let free = |q: u16| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok();
        if p < 60000
            && (1..5)
                .chain(1000..1004)
                .chain([10, 1010, 20, 1020])
                .all(|o| free(p + o))
        {
            break p;
        }
    };
    let mut child = Command::new(support::strata_bin())
        .args([
            "demo",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--port-base",
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // First run makes the title with ffmpeg: allow for a slow machine.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("Ctrl-C")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("demo did not come up; stdout so far:\n{}", lines.join("\n"));
            }
        }
    }
    let url_of = |label: &str| -> String {
        let line = lines
            .iter()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("{label} missing"));
        line.split_whitespace().last().unwrap().to_string()
    };
    let master = url_of("HLS master playlist");
    let mpd = url_of("DASH MPD");
    let health = url_of("origin health");
    let edge_health = url_of("edge 1 health");
    let cp_health = url_of("control plane health");
    let midtier_health = url_of("midtier health");
    // The play was started through the control plane; its manifests live there.
    assert!(
        master.starts_with(&format!("http://127.0.0.1:{}/v1/plays/", port + 10)),
        "{master}"
    );

    let c = http1();
    let playlist = c.get(&master).send().await.unwrap();
    assert_eq!(playlist.status(), 200);
    let text = playlist.text().await.unwrap();
    let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
    assert_eq!(
        parsed.variants.len(),
        3,
        "the demo account is premium, on a TV: {text}"
    );
    // Follow the playlist the way a player does: a rendition, then its first segment, which
    // points at edge 1 and carries the play's token.
    let media = c
        .get(&parsed.variants[0].uri)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let media = m3u8_rs::parse_media_playlist_res(media.as_bytes()).unwrap();
    let seg_url = media.segments[0].uri.clone();
    // The control plane asked steering where the play starts: one of the two edges.
    let (start_port, other_port) = if seg_url.starts_with(&format!("http://127.0.0.1:{}/", port + 1)) {
        (port + 1, port + 3)
    } else {
        (port + 3, port + 1)
    };
    let start_edge = format!("http://127.0.0.1:{start_port}/sample/");
    assert!(
        seg_url.starts_with(&start_edge) && seg_url.contains("?token=v1."),
        "{seg_url}"
    );
    let (seg_path, token) = seg_url[start_edge.len() - "/sample/".len()..]
        .split_once("?token=")
        .unwrap();
    // RFC 9211: each cache on the way appends its member, the edge's last.
    let statuses = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .get_all("cache-status")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    let r = c.get(&seg_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let first = statuses(&r);
    assert!(
        first.len() == 2 && first[0].starts_with("strata-midtier; fwd=miss"),
        "{first:?}"
    );
    assert!(first[1].starts_with("strata-edge; fwd=miss"), "{first:?}");
    assert!(r.bytes().await.unwrap().len() > 1000);
    let again = c.get(&seg_url).send().await.unwrap();
    assert!(statuses(&again).last().unwrap().starts_with("strata-edge; hit"));
    // Without the token, or with it altered, the edge refuses.
    let bare = format!("http://127.0.0.1:{start_port}{seg_path}");
    assert_eq!(c.get(&bare).send().await.unwrap().status(), 401);
    let altered = format!("{bare}?token={}", token.replacen("v1.", "v1.e", 1));
    assert_eq!(c.get(&altered).send().await.unwrap().status(), 401);
    let printed = url_of("edge 2 segment");
    assert!(printed.contains(&format!("?token={token}")), "{printed}");
    // The second edge shares the mid-tier: its miss is the mid-tier's hit.
    let other = c
        .get(format!("http://127.0.0.1:{other_port}{seg_path}?token={token}"))
        .send()
        .await
        .unwrap();
    let other_statuses = statuses(&other);
    assert!(
        other_statuses[0].starts_with("strata-midtier; hit"),
        "{other_statuses:?}"
    );
    assert!(
        other_statuses[1].starts_with("strata-edge; fwd=miss"),
        "{other_statuses:?}"
    );
    assert_eq!(c.get(&midtier_health).send().await.unwrap().status(), 200);
    // Edge 1's HTTPS port serves over HTTP/3 too (aioquic, from PyPI), from the same cache.
    let https = url_of("edge 1 HTTPS");
    assert!(
        https.starts_with(&format!("https://127.0.0.1:{}/sample/", port + 4)),
        "{https}"
    );
    let h3 = support::h3_get(&[format!("https://127.0.0.1:{}{seg_path}?token={token}", port + 4)]);
    assert_eq!(h3[0]["status"], 200, "{h3:?}");
    let via_h3 = h3[0]["headers"]["cache-status"].as_str().unwrap();
    assert!(via_h3.contains("strata-edge; hit"), "{via_h3}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("--ignore-certificate-errors-spki-list="))
    );
    let mpd = c.get(&mpd).send().await.unwrap();
    assert_eq!(mpd.status(), 200);
    assert!(mpd.text().await.unwrap().contains(&format!("?token={token}")));
    // Both edges registered with steering, whose manifest for this play names them.
    let steering_manifest = url_of("steering manifest");
    let deadline = Instant::now() + Duration::from_secs(15);
    let priority = loop {
        let m: serde_json::Value = c
            .get(&steering_manifest)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let p: Vec<String> = m["PATHWAY-PRIORITY"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        if p.len() == 3 || Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut edges: Vec<&str> = priority[..2].iter().map(String::as_str).collect();
    edges.sort();
    assert_eq!(edges, ["edge-demo-edge-1", "edge-demo-edge-2"], "{priority:?}");
    assert_eq!(priority[2], "strata");
    for url in [&health, &edge_health, &cp_health, &url_of("steering health")] {
        assert_eq!(c.get(url).send().await.unwrap().status(), 200, "{url}");
    }

    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        data.path().join("content/sample/manifest.mpd").is_file(),
        "content kept for the next run"
    );
}
