//! Pre-warm jobs through real processes: steering expands the sample title's HLS and DASH
//! manifests and fills two edges (127.0.0.2 and .3) through their mid-tier (127.0.0.4), after
//! which every object is a hit at both edges and the origin saw each object once; a slow job
//! keeps its bandwidth cap, resumes after a steering restart without fetching again what was
//! done, and a cancelled job stops; bad requests are refused with a reason.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::steering::{ADMIN, start_steered_edge, start_steering, steering_setup};
use support::{
    ServerProcess, base_url, free_port, http1, metric, run_strata, sample_content_root, start_cache_node,
    start_origin,
};

struct Fleet {
    origin: ServerProcess,
    _mid: ServerProcess,
    edges: Vec<(ServerProcess, tempfile::TempDir)>,
    steering: ServerProcess,
    setup: support::steering::SteeringSetup,
    _mid_cache: tempfile::TempDir,
}

/// Origin, a mid-tier, steering reading manifests through the mid-tier, and two edges in
/// two clusters whose parent is the mid-tier.
async fn fleet() -> Fleet {
    let origin = start_origin(&sample_content_root());
    let mid_cache = tempfile::tempdir().unwrap();
    let mid_listen = format!("127.0.0.4:{}", free_port());
    // Players reach the edges by several names; one key host makes one object one key.
    let mid_config = mid_cache.path().join("midtier.toml");
    std::fs::write(&mid_config, "[cache_key]\nhost = \"video.cdn.test\"\n").unwrap();
    let mid = start_cache_node(
        "midtier",
        &base_url(&origin),
        &mid_cache.path().join("cache"),
        &["--listen", &mid_listen, "--config", mid_config.to_str().unwrap()],
        &[],
    );
    let setup = steering_setup(5);
    // Manifests are read through the mid-tier too, so the origin sees every object once.
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        format!("origin_url = \"{}\"\n{config}", base_url(&mid)),
    )
    .unwrap();
    let steering = start_steering(&setup);
    let parent = format!(
        "parents = [{{ url = \"{}\" }}]\n[cache_key]\nhost = \"video.cdn.test\"",
        base_url(&mid)
    );
    let edges = vec![
        start_steered_edge(
            &setup,
            &steering,
            &base_url(&origin),
            "127.0.0.2",
            "lon-1",
            (51.5, -0.1),
            &[],
            &parent,
            "",
        ),
        start_steered_edge(
            &setup,
            &steering,
            &base_url(&origin),
            "127.0.0.3",
            "par-1",
            (48.9, 2.3),
            &[],
            &parent,
            "region = \"eu-west\"",
        ),
    ];
    let f = Fleet {
        origin,
        _mid: mid,
        edges,
        steering,
        setup,
        _mid_cache: mid_cache,
    };
    f.wait_rotation(2).await;
    f
}

impl Fleet {
    async fn wait_rotation(&self, n: usize) {
        support::steering::wait_in_rotation(&self.steering, n).await;
    }

    async fn job(&self, id: &str) -> Value {
        http1()
            .get(self.steering.url(&format!("/v1/admin/prewarm/{id}")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn create(&self, body: Value) -> (StatusCode, Value) {
        let resp = http1()
            .post(self.steering.url("/v1/admin/prewarm"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn wait_state(&self, id: &str, states: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.job(id).await;
            if states.iter().any(|s| job["state"] == *s) {
                return job;
            }
            assert!(Instant::now() < deadline, "job never reached {states:?}: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn sample_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sample_content_root().join("sample"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn total(job: &Value, field: &str) -> u64 {
    job["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[field].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_prewarmed_title_is_a_hit_everywhere_and_the_origin_saw_each_object_once() {
    let f = fleet().await;
    let files = sample_files();
    // The CLI, as an operator runs it: it follows the job to its end.
    let (status, out, err) = run_strata(
        &[
            "prewarm",
            "start",
            "/sample/master.m3u8",
            "/sample/manifest.mpd",
            "--cluster",
            "lon",
            "--region",
            "eu-west",
            "--steering",
            &f.steering.url(""),
            "--admin-token",
            ADMIN,
        ],
        &[],
    );
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains(" done: 2 edges,"), "{out}");
    assert!(
        out.contains(&format!("{} objects each", files.len())),
        "every file of the title: {out}"
    );
    for (edge, _) in &f.edges {
        for name in &files {
            let resp = http1()
                .get(edge.url(&format!("/sample/{name}")))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let cache_status: Vec<String> = resp
                .headers()
                .get_all("cache-status")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            assert!(
                cache_status.last().unwrap().starts_with("strata-edge; hit"),
                "{name}: {cache_status:?}"
            );
        }
    }
    let origin_fetches = metric(
        &f.origin.admin_url("/metrics"),
        "strata_origin_requests_total{status_class=\"2xx\"}",
    )
    .await;
    assert_eq!(
        origin_fetches,
        files.len() as f64,
        "one origin fetch per object, fleet-wide"
    );

    // Again: nothing to fetch, every object already cached at both edges.
    let (status, job) = f.create(json!({"manifests": ["/sample/master.m3u8"]})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = f.wait_state(job["id"].as_str().unwrap(), &["done"]).await;
    assert_eq!(total(&job, "done"), 0, "{job}");
    assert!(total(&job, "skipped") > 0, "{job}");
    let (status, out, _) = run_strata(
        &[
            "prewarm",
            "list",
            "--steering",
            &f.steering.url(""),
            "--admin-token",
            ADMIN,
        ],
        &[],
    );
    assert!(status.success());
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[tokio::test]
async fn a_capped_job_resumes_after_a_steering_restart_and_a_cancelled_one_stops() {
    let mut f = fleet().await;
    let files = sample_files();
    // 8000 kbit/s per edge: the title (14 MB) takes about 14 s.
    let started = Instant::now();
    let (status, job) = f
        .create(json!({"manifests": ["/sample/manifest.mpd"], "clusters": ["lon"], "bandwidth_kbps": 8000, "concurrency": 2}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let objects = job["objects"].as_u64().unwrap();
    // Let it get some way, then restart steering under it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while total(&f.job(&id).await, "done") < 3 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f.steering.signal("TERM");
    assert!(f.steering.wait_exit(Duration::from_secs(10)).success());
    f.steering = start_steering(&f.setup);
    let job = f.wait_state(&id, &["done", "failed", "cancelled"]).await;
    assert_eq!(job["state"], "done", "{job}");
    let edge = &job["edges"][0];
    assert_eq!(edge["edge_id"], "lon-1");
    // Objects recorded before the restart are not fetched again; those in flight when it
    // stopped (at most `concurrency`) are fetched again and found cached.
    let (done, skipped) = (edge["done"].as_u64().unwrap(), edge["skipped"].as_u64().unwrap());
    assert_eq!(done + skipped, objects, "{job}");
    assert!(
        skipped <= 2,
        "a resumed job must not fetch again what was done: {job}"
    );
    // The cap held: at most one second's burst above 8000 kbit/s over the whole run.
    let bytes = edge["bytes"].as_u64().unwrap() as f64;
    let allowed = 8000.0 * 1000.0 / 8.0 * (started.elapsed().as_secs_f64() + 1.0);
    assert!(
        bytes <= allowed,
        "{bytes} bytes in {:?} exceed the cap",
        started.elapsed()
    );
    assert!(bytes > 1e6, "{bytes}");
    assert!(
        objects < files.len() as u64,
        "the DASH MPD alone has no HLS playlists"
    );

    // A slow job on the other edge, cancelled: it stops with objects not done.
    let (_, job) = f
        .create(json!({"manifests": ["/sample/manifest.mpd"], "clusters": ["par"], "bandwidth_kbps": 800, "concurrency": 1}))
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, out, err) = run_strata(
        &[
            "prewarm",
            "cancel",
            &id,
            "--steering",
            &f.steering.url(""),
            "--admin-token",
            ADMIN,
        ],
        &[],
    );
    assert!(status.success(), "{out}{err}");
    let job = f.wait_state(&id, &["cancelled"]).await;
    assert!(total(&job, "done") < objects, "{job}");
}

#[tokio::test]
async fn bad_prewarm_requests_are_refused_with_a_reason() {
    let f = fleet().await;
    let cases = [
        (
            json!({"manifests": ["/nope/master.m3u8"]}),
            StatusCode::NOT_FOUND,
            "unknown_manifest",
        ),
        (
            json!({"manifests": ["/sample/seg-0-00001.m4s"]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"manifests": ["/sample/init-0.m4s.m3u8"]}),
            StatusCode::NOT_FOUND,
            "unknown_manifest",
        ),
        (
            json!({"paths": ["/a"], "start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "bad_request"),
        (
            json!({"paths": ["/a"], "concurrency": 0}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"paths": ["/a"], "bandwidth": 5}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (body, want, reason) in cases {
        let (status, answer) = f.create(body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (want, Some(reason)),
            "{body}: {answer}"
        );
    }
    // A media playlist is not a master playlist.
    let (status, answer) = f.create(json!({"manifests": ["/sample/media_0.m3u8"]})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_manifest")),
        "{answer}"
    );
    let anonymous = http1()
        .post(f.steering.url("/v1/admin/prewarm"))
        .json(&json!({"paths": ["/a"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (_, jobs) = (
        (),
        http1()
            .get(f.steering.url("/v1/admin/prewarm"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap(),
    );
    assert_eq!(jobs["jobs"], json!([]), "refused requests made no job");
}

#[tokio::test]
async fn a_job_stops_at_its_cache_share_and_at_the_end_of_its_window() {
    let f = fleet().await;
    // Each edge registered 320 MB (64 MB memory + 256 MB disk): a 1% share is 3.2 MB of the
    // 14 MB DASH title, so most objects are left.
    let (status, job) = f
        .create(json!({"manifests": ["/sample/manifest.mpd"], "clusters": ["lon"], "max_cache_share": 0.01, "concurrency": 1}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = f.wait_state(job["id"].as_str().unwrap(), &["done"]).await;
    let edge = &job["edges"][0];
    let bytes = edge["bytes"].as_u64().unwrap();
    assert!(edge["left"].as_u64().unwrap() > 10, "{job}");
    // One object may cross the line (it was started below it); the largest is under 1 MB.
    assert!(bytes >= 3_200_000 && bytes < 3_200_000 + 1_000_000, "{job}");
    assert!(job["message"].as_str().unwrap().contains("left out"), "{job}");

    // A window that closes 1.5 s after the job starts, at 2000 kbit/s: the rest is left.
    let end = std::time::SystemTime::now() + Duration::from_millis(1500);
    let end = humantime::format_rfc3339_seconds(end + Duration::from_secs(1)).to_string();
    let (status, job) = f
        .create(json!({"manifests": ["/sample/manifest.mpd"], "clusters": ["par"], "bandwidth_kbps": 2000, "concurrency": 1, "end": end}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = f.wait_state(job["id"].as_str().unwrap(), &["done"]).await;
    let edge = &job["edges"][0];
    assert!(edge["done"].as_u64().unwrap() > 0, "{job}");
    assert!(edge["left"].as_u64().unwrap() > 0, "{job}");
}

#[tokio::test]
async fn a_job_rides_out_an_edge_restart() {
    let mut f = fleet().await;
    let (status, job) = f
        .create(json!({"manifests": ["/sample/manifest.mpd"], "clusters": ["lon"], "bandwidth_kbps": 8000, "concurrency": 2}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let objects = job["objects"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while total(&f.job(&id).await, "done") < 3 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The edge restarts under the job (same address, same cache directory).
    f.edges[0].0.restart();
    let job = f.wait_state(&id, &["done", "failed", "cancelled"]).await;
    assert_eq!(job["state"], "done", "{job}");
    let edge = &job["edges"][0];
    assert_eq!(
        edge["failed"], 0,
        "fetches cut by the restart are tried again: {job}"
    );
    assert_eq!(
        edge["done"].as_u64().unwrap() + edge["skipped"].as_u64().unwrap(),
        objects,
        "{job}"
    );
}
