//! Three tiers as real processes on loopback, each node on its own address: one origin
//! (127.0.0.1), mid-tiers (127.0.0.2, .3), edges (127.0.0.10, .11) with both mid-tiers as
//! parents. The origin sees one fetch per object however many edges and clients ask; keys
//! spread over the parents and a stopped parent's keys move to the other one without a failed
//! request; an origin outage is served stale where allowed and answered cleanly otherwise; a
//! loop between two mid-tiers is refused.

mod support;

use futures::StreamExt;
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::script_origin::ScriptOrigin;
use support::{ServerProcess, base_url, free_port, http1, metric, pattern, sha256, start_cache_node};
use tempfile::TempDir;

/// Objects under `t/`: segments (immutable at the origin) and JSON sidecars, which the
/// origin below marks fresh for 1 s and usable stale for 10 minutes if it errors.
const SEGMENTS: usize = 24;

struct Tiers {
    origin: Option<ServerProcess>,
    origin_addr: SocketAddr,
    mids: Vec<Option<ServerProcess>>,
    edges: Vec<ServerProcess>,
    content: TempDir,
    state: TempDir,
}

fn origin_config(dir: &Path) -> String {
    let path = dir.join("origin.toml");
    std::fs::write(
        &path,
        "[cache_control]\nother = \"public, max-age=1, stale-if-error=600\"\n",
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

impl Tiers {
    /// An origin, `mids` mid-tiers in front of it and `edges` edges with every mid-tier as a
    /// parent; `edge_toml` is laid over each edge's config.
    fn start(mids: usize, edges: usize, edge_toml: &str) -> Tiers {
        let content = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(content.path().join("t")).unwrap();
        for i in 0..SEGMENTS {
            std::fs::write(
                content.path().join(format!("t/seg-{i}.m4s")),
                pattern(200_000 + i * 1000, i as u64),
            )
            .unwrap();
        }
        std::fs::write(content.path().join("t/info.json"), b"{\"title\":1}").unwrap();
        let origin_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let origin = Self::origin_at(content.path(), origin_addr, state.path());
        let mut tiers = Tiers {
            origin: Some(origin),
            origin_addr,
            mids: Vec::new(),
            edges: Vec::new(),
            content,
            state,
        };
        let origin_url = format!("http://{origin_addr}");
        for i in 0..mids {
            let mid = tiers.start_mid(i, &origin_url);
            tiers.mids.push(Some(mid));
        }
        let parents: Vec<String> = tiers.mid_urls();
        for i in 0..edges {
            let edge = tiers.start_edge(i, &parents, edge_toml);
            tiers.edges.push(edge);
        }
        tiers
    }

    fn origin_at(root: &Path, addr: SocketAddr, state: &Path) -> ServerProcess {
        let config = origin_config(state);
        let listen = addr.to_string();
        ServerProcess::start(
            "origin",
            &[
                "--config",
                &config,
                "--root",
                root.to_str().unwrap(),
                "--listen",
                &listen,
                "--admin-listen",
                "127.0.0.1:0",
            ],
            &[],
        )
    }

    fn start_mid(&self, i: usize, upstream: &str) -> ServerProcess {
        let listen = format!("127.0.0.{}:{}", 2 + i, free_port());
        self.start_mid_at(i, &listen, upstream)
    }

    /// Mid-tier `i` on `listen`, with its cache directory (kept across restarts).
    fn start_mid_at(&self, i: usize, listen: &str, upstream: &str) -> ServerProcess {
        let listen = listen.to_string();
        let cache = self.state.path().join(format!("mid-{i}"));
        let node = format!("mid-{i}");
        start_cache_node(
            "midtier",
            upstream,
            &cache,
            &[
                "--listen",
                &listen,
                "--admin-listen",
                &format!("127.0.0.{}:0", 2 + i),
                "--node-id",
                &node,
            ],
            &[],
        )
    }

    fn start_edge(&self, i: usize, parents: &[String], toml: &str) -> ServerProcess {
        let listen = format!("127.0.0.{}:{}", 10 + i, free_port());
        let cache = self.state.path().join(format!("edge-{i}"));
        let config = self.state.path().join(format!("edge-{i}.toml"));
        // Fast probes, so that a stopped parent is seen as down within the test's patience.
        std::fs::write(&config, format!("{toml}\n[health]\nprobe_interval_ms = 200\n")).unwrap();
        let node = format!("edge-{i}");
        let mut args = vec![
            "--config".to_string(),
            config.to_str().unwrap().to_string(),
            "--listen".into(),
            listen,
            "--admin-listen".into(),
            format!("127.0.0.{}:0", 10 + i),
            "--node-id".into(),
            node,
        ];
        for p in parents {
            args.extend(["--parent".to_string(), p.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let origin_url = format!("http://{}", self.origin_addr);
        start_cache_node("edge", &origin_url, &cache, &args, &[])
    }

    fn mid_urls(&self) -> Vec<String> {
        self.mids.iter().flatten().map(base_url).collect()
    }

    fn mid(&self, i: usize) -> &ServerProcess {
        self.mids[i].as_ref().unwrap()
    }

    async fn origin_fetches(&self) -> f64 {
        let origin = self.origin.as_ref().unwrap();
        metric(
            &origin.admin_url("/metrics"),
            "strata_origin_requests_total{status_class=\"2xx\"}",
        )
        .await
    }

    fn file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.content.path().join(rel)).unwrap()
    }
}

/// The name players reach the CDN by. Every edge must send the same `Host` upstream for the
/// tiers to share objects, as they do when players use the service's DNS name; here the
/// edges are reached by address, so the clients name the service themselves.
const SERVICE_HOST: &str = "video.cdn.test";

/// GET `url` as a player of the service would.
async fn get(client: &reqwest::Client, url: String) -> reqwest::Response {
    match client
        .get(&url)
        .header(reqwest::header::HOST, SERVICE_HOST)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("GET {url}: {e:?}"),
    }
}

/// Which mid-tier a response passed through, from its `Via` (`1.1 mid-0 (strata)`).
fn via_mid(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("via")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.split_whitespace().nth(1))
        .find(|node| node.starts_with("mid-"))
        .map(str::to_string)
}

#[tokio::test]
async fn the_origin_sees_one_fetch_per_object_from_two_edges_and_many_clients() {
    let tiers = Tiers::start(2, 2, "");
    let client = http1();
    let mut requests = Vec::new();
    for seg in 0..8 {
        for c in 0..12 {
            let edge = &tiers.edges[c % 2];
            let url = edge.url(&format!("/t/seg-{seg}.m4s"));
            let client = client.clone();
            requests.push(async move {
                let r = get(&client, url).await;
                assert_eq!(r.status(), StatusCode::OK);
                (seg, sha256(&r.bytes().await.unwrap()))
            });
        }
    }
    let results = futures::future::join_all(requests).await;
    for (seg, digest) in results {
        assert_eq!(
            digest,
            sha256(&tiers.file(&format!("t/seg-{seg}.m4s"))),
            "seg {seg}"
        );
    }
    assert_eq!(
        tiers.origin_fetches().await,
        8.0,
        "96 requests over two edges and two mid-tiers: one origin fetch per object"
    );
    // Both edges asked the same parent for each object, so the mid-tiers together made
    // exactly one origin fetch per object, and each served both edges.
    let mut mid_origin_requests = 0.0;
    for i in 0..2 {
        let page = tiers.mid(i).admin_url("/metrics");
        mid_origin_requests += metric(
            &page,
            &format!(
                "strata_midtier_upstream_requests_total{{kind=\"origin\",upstream=\"http://{}\"}}",
                tiers.origin_addr
            ),
        )
        .await;
    }
    assert_eq!(mid_origin_requests, 8.0);
}

#[tokio::test]
async fn keys_spread_over_both_parents_and_a_stopped_parent_moves_only_its_keys() {
    let mut tiers = Tiers::start(2, 2, "");
    let client = http1();
    // Edge 0 learns where each object lives.
    let mut home = Vec::new();
    for seg in 0..SEGMENTS {
        let r = get(&client, tiers.edges[0].url(&format!("/t/seg-{seg}.m4s"))).await;
        assert_eq!(r.status(), StatusCode::OK);
        home.push(via_mid(&r).expect("a response through a mid-tier names it in Via"));
    }
    let on_0 = home.iter().filter(|h| *h == "mid-0").count();
    assert!(
        (4..=SEGMENTS - 4).contains(&on_0),
        "keys spread over both parents: {on_0} of {SEGMENTS} on mid-0"
    );

    // Stop mid-0. Edge 1 has nothing cached: every object is a miss there. Requests come
    // straight after the stop, before any probe noticed: the first attempts to mid-0 fail
    // to connect and go on to mid-1 within the same request.
    let mut mid0 = tiers.mids[0].take().unwrap();
    mid0.signal("KILL");
    mid0.wait_exit(Duration::from_secs(10));
    for seg in 0..SEGMENTS {
        let r = get(&client, tiers.edges[1].url(&format!("/t/seg-{seg}.m4s"))).await;
        assert_eq!(r.status(), StatusCode::OK, "seg {seg} with mid-0 gone");
        let now = via_mid(&r).unwrap();
        assert_eq!(now, "mid-1", "seg {seg}");
        assert_eq!(
            sha256(&r.bytes().await.unwrap()),
            sha256(&tiers.file(&format!("t/seg-{seg}.m4s")))
        );
    }
    // Keys whose home was mid-1 did not move: mid-1 served them from its cache, so the
    // origin saw only mid-0's keys again.
    let refetched = tiers.origin_fetches().await - SEGMENTS as f64;
    assert_eq!(
        refetched, on_0 as f64,
        "only the stopped parent's keys were fetched again"
    );
    // The edge's probes mark mid-0 down; its health says so.
    let page = tiers.edges[1].admin_url("/metrics");
    let down = format!(
        "strata_edge_upstream_up{{kind=\"parent\",upstream=\"{}\"}}",
        base_url(&mid0)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&page, &down).await != 0.0 {
        assert!(Instant::now() < deadline, "mid-0 never marked down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = get(&client, tiers.edges[1].admin_url("/healthz"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        health.contains("degraded") && health.contains("is down"),
        "{health}"
    );
}

#[tokio::test]
async fn an_origin_outage_serves_what_is_cached_and_fails_new_objects_cleanly() {
    let mut tiers = Tiers::start(1, 1, "");
    let client = http1();
    let edge = &tiers.edges[0];
    for path in ["/t/seg-0.m4s", "/t/info.json"] {
        let r = get(&client, edge.url(path)).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
    }
    let mut origin = tiers.origin.take().unwrap();
    origin.signal("KILL");
    origin.wait_exit(Duration::from_secs(10));
    // Let info.json (max-age=1) go stale everywhere.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let edge = &tiers.edges[0];

    let r = get(&client, edge.url("/t/seg-0.m4s")).await;
    assert_eq!(r.status(), StatusCode::OK, "a fresh cached segment is a hit");
    assert_eq!(
        sha256(&r.bytes().await.unwrap()),
        sha256(&tiers.file("t/seg-0.m4s"))
    );

    let r = get(&client, edge.url("/t/info.json")).await;
    assert_eq!(r.status(), StatusCode::OK, "stale-if-error serves the stale copy");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"{\"title\":1}");

    let started = Instant::now();
    let r = get(&client, edge.url("/t/seg-1.m4s")).await;
    let took = started.elapsed();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let reason = r.text().await.unwrap();
    assert!(
        reason.contains("origin") && reason.contains(&tiers.origin_addr.to_string()),
        "the 502 says what failed: {reason}"
    );
    assert!(
        took < Duration::from_secs(3),
        "a dead origin fails fast, took {took:?}"
    );

    // The origin returns on its address: the same request succeeds with no restart.
    tiers.origin = Some(Tiers::origin_at(
        tiers.content.path(),
        tiers.origin_addr,
        tiers.state.path(),
    ));
    let r = get(&client, tiers.edges[0].url("/t/seg-1.m4s")).await;
    assert_eq!(r.status(), StatusCode::OK, "recovered by itself");
    assert_eq!(
        sha256(&r.bytes().await.unwrap()),
        sha256(&tiers.file("t/seg-1.m4s"))
    );
}

#[tokio::test]
async fn every_parent_down_answers_502_unless_origin_fallback_is_on() {
    let tiers = Tiers::start(0, 0, "");
    // Two parents nobody listens on.
    let dead: Vec<String> = (0..2)
        .map(|i| format!("http://127.0.0.{}:{}", 20 + i, free_port()))
        .collect();
    let strict = tiers.start_edge(0, &dead, "");
    let fallback = tiers.start_edge(1, &dead, "origin_fallback = true\n");
    let client = http1();

    let r = get(&client, strict.url("/t/seg-2.m4s")).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let reason = r.text().await.unwrap();
    assert!(reason.contains("parent"), "{reason}");
    // Once the probes have marked both down, the answer names that, without trying them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&client, strict.url("/t/seg-3.m4s")).await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        if r.text().await.unwrap().contains("every parent is down") {
            break;
        }
        assert!(Instant::now() < deadline, "the parents were never marked down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let r = get(&client, fallback.url("/t/seg-2.m4s")).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "with origin_fallback the origin serves"
    );
    assert_eq!(
        sha256(&r.bytes().await.unwrap()),
        sha256(&tiers.file("t/seg-2.m4s"))
    );
}

#[tokio::test]
async fn two_midtiers_pointing_at_each_other_are_refused_as_a_loop() {
    let state = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let addr = |i: usize| format!("127.0.0.{}:{}", 2 + i, ports[i]);
    let start = |i: usize| {
        let cache = state.path().join(format!("m{i}"));
        let upstream = format!("http://{}", addr(1 - i));
        let node = format!("mid-{i}");
        start_cache_node(
            "midtier",
            &upstream,
            &cache,
            &["--listen", &addr(i), "--node-id", &node],
            &[],
        )
    };
    let (a, _b) = (start(0), start(1));
    let r = http1().get(a.url("/t/seg-0.m4s")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 508, "Loop Detected");
    let text = r.text().await.unwrap();
    assert!(text.contains("loop detected") && text.contains("mid-0"), "{text}");
    assert_eq!(
        metric(&a.admin_url("/metrics"), "strata_midtier_loops_refused_total").await,
        1.0
    );
}

#[tokio::test]
async fn every_hop_names_itself_in_via() {
    let tiers = Tiers::start(1, 1, "");
    let r = http1()
        .get(tiers.edges[0].url("/t/seg-5.m4s"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let via: Vec<&str> = r
        .headers()
        .get_all("via")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let via = via.join(", ");
    assert!(
        via.contains("1.1 mid-0 (strata)") && via.contains("1.1 edge-0 (strata)"),
        "{via}"
    );
    // Each node answers its children's health probe itself.
    let probe = http1()
        .get(tiers.mid(0).url("/.strata/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), StatusCode::OK);
    // Probes (the edge's every 200 ms, and this one) are counted apart from requests.
    let page = tiers.mid(0).admin_url("/metrics");
    assert!(metric(&page, "strata_midtier_health_probes_answered_total").await >= 1.0);
    assert_eq!(
        metric(&page, "strata_midtier_requests_total{cache_status=\"bypass\"}").await,
        0.0
    );
}

#[tokio::test]
async fn a_midtier_killed_mid_body_is_replaced_without_the_client_noticing() {
    // A slow origin (20 MiB in 64 KiB pieces, 3 ms apart), so the kill lands mid-body.
    let origin = ScriptOrigin::start();
    let tiers = Tiers::start(0, 0, "");
    let mut mids: Vec<ServerProcess> = (0..2).map(|i| tiers.start_mid(i, &origin.url())).collect();
    let parents: Vec<String> = mids.iter().map(base_url).collect();
    let edge = tiers.start_edge(0, &parents, "");
    let len = 20 << 20;
    let path = "/t/big.m4s";
    let query = format!("?cc=max-age%3D600&len={len}&etag=v1&trickle_ms=3");
    let expected = sha256(&support::pattern(len, path.len() as u64));

    let client = http1();
    let r = get(&client, edge.url(&format!("{path}{query}"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let home = via_mid(&r).unwrap();
    let mut body = r.bytes_stream();
    let mut received = Vec::with_capacity(len);
    let mut killed = false;
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.expect("the client sees no error"));
        if !killed && received.len() >= 4 << 20 {
            let victim = &mut mids[if home == "mid-0" { 0 } else { 1 }];
            victim.signal("KILL");
            victim.wait_exit(Duration::from_secs(10));
            killed = true;
        }
    }
    assert!(killed, "the body ended before the kill");
    assert_eq!(received.len(), len, "every byte arrived");
    assert_eq!(sha256(&received), expected, "the bytes are the origin's");
    let page = edge.admin_url("/metrics");
    assert_eq!(metric(&page, "strata_edge_upstream_resumed_total").await, 1.0);
    // The edge cached the spliced object whole: the next request is a hit with the same bytes.
    let again = get(&client, edge.url(&format!("{path}{query}"))).await;
    let statuses: Vec<&str> = again
        .headers()
        .get_all("cache-status")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        statuses.last().unwrap().starts_with("strata-edge; hit"),
        "{statuses:?}"
    );
    assert_eq!(sha256(&again.bytes().await.unwrap()), expected);
}

#[tokio::test]
async fn with_every_parent_down_a_stale_copy_is_served_and_a_returning_parent_is_used_again() {
    let mut tiers = Tiers::start(1, 1, "");
    let client = http1();
    let edge_url = |p: &str| tiers.edges[0].url(p);
    let r = get(&client, edge_url("/t/info.json")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap();

    let mid_addr = tiers.mid(0).data_addr.to_string();
    let mid_url = base_url(tiers.mid(0));
    let mut mid = tiers.mids[0].take().unwrap();
    mid.signal("KILL");
    mid.wait_exit(Duration::from_secs(10));
    let page = tiers.edges[0].admin_url("/metrics");
    let up = format!("strata_edge_upstream_up{{kind=\"parent\",upstream=\"{mid_url}\"}}");
    let wait_for = |want: f64| {
        let (page, up) = (page.clone(), up.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while metric(&page, &up).await != want {
                assert!(Instant::now() < deadline, "parent state never became {want}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(0.0).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // info.json (max-age=1) is stale now

    let r = get(&client, edge_url("/t/info.json")).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "stale-if-error covers a dead parent tier"
    );
    let status: Vec<&str> = r
        .headers()
        .get_all("cache-status")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(status.last().unwrap().contains("stale-if-error"), "{status:?}");
    // pingora drops the client connection after a stale-if-error answer; it must say so.
    assert_eq!(r.headers()["connection"], "close");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"{\"title\":1}");
    let r = get(&client, edge_url("/t/seg-9.m4s")).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await.unwrap().contains("every parent is down"));

    // The parent comes back on its address; the probes mark it up and misses flow again.
    let origin_url = format!("http://{}", tiers.origin_addr);
    tiers.mids[0] = Some(tiers.start_mid_at(0, &mid_addr, &origin_url));
    wait_for(1.0).await;
    let r = get(&client, edge_url("/t/seg-9.m4s")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        sha256(&r.bytes().await.unwrap()),
        sha256(&tiers.file("t/seg-9.m4s"))
    );
}

#[tokio::test]
async fn a_dead_primary_origin_fails_over_to_the_next_and_is_then_skipped() {
    let tiers = Tiers::start(0, 0, "");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let live = format!("http://{}", tiers.origin_addr);
    let cache = tiers.state.path().join("mid-failover");
    let listen = format!("127.0.0.2:{}", free_port());
    let mid = start_cache_node(
        "midtier",
        &dead,
        &cache,
        &["--listen", &listen, "--upstream-failover", &live],
        &[],
    );
    let client = http1();
    for seg in 0..6 {
        let r = get(&client, mid.url(&format!("/t/seg-{seg}.m4s"))).await;
        assert_eq!(r.status(), StatusCode::OK, "seg {seg}");
        assert_eq!(
            sha256(&r.bytes().await.unwrap()),
            sha256(&tiers.file(&format!("t/seg-{seg}.m4s")))
        );
    }
    let page = mid.admin_url("/metrics");
    let sample =
        |name: &str, url: &str| format!("strata_midtier_{name}{{kind=\"origin\",upstream=\"{url}\"}}");
    // fail_after (3) failures mark the primary down; after that it is tried last.
    assert_eq!(
        metric(&page, &sample("upstream_requests_total", &dead)).await,
        3.0
    );
    assert_eq!(
        metric(&page, &sample("upstream_failures_total", &dead)).await,
        3.0
    );
    assert_eq!(metric(&page, &sample("upstream_up", &dead)).await, 0.0);
    assert_eq!(
        metric(&page, &sample("upstream_requests_total", &live)).await,
        6.0
    );
}
