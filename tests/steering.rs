//! Steering as a real process with two real edges on their own loopback addresses, each
//! registering and sending heartbeats: decisions by prefix and by the real GeoLite2
//! database, Content Steering manifests, 302 routing, an edge lost and taken out of
//! rotation, refused impersonation and unregistered heartbeats, a steering restart that
//! keeps the fleet, and edges that keep serving while steering is down.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::steering::{ADMIN, credential, in_rotation, start_steered_edge, start_steering, steering_setup};
use support::{base_url, http1, start_origin};

async fn get_json(url: &str, xff: Option<&str>) -> (StatusCode, Value) {
    let mut req = http1().get(url).bearer_auth(ADMIN);
    if let Some(ip) = xff {
        req = req.header("x-forwarded-for", ip);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn wait_until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn first_pathway(decision: &Value) -> &str {
    decision["pathways"][0]["id"].as_str().unwrap_or_default()
}

/// The string at JSON `pointer` in each member of the array `list`, in order.
fn each<'a>(list: &'a Value, pointer: &str) -> Vec<&'a str> {
    let members = list.as_array().unwrap_or_else(|| panic!("not an array: {list}"));
    members
        .iter()
        .map(|m| m.pointer(pointer).and_then(Value::as_str).unwrap())
        .collect()
}

#[tokio::test]
async fn steering_follows_the_fleet_and_speaks_to_players() {
    const FRANKFURT: (f64, f64) = (50.11, 8.68);
    const NEW_YORK: (f64, f64) = (40.71, -74.0);
    let content = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(content.path().join("sample")).unwrap();
    std::fs::write(content.path().join("sample/seg-1.m4s"), vec![7u8; 50_000]).unwrap();
    let origin = start_origin(content.path());
    let s = steering_setup(5);
    let mut steering = start_steering(&s);
    // An ISP's edge in Frankfurt serving the ISP's prefix 81.2.0.0/16, and one in New York.
    let (fra, _fra_cache) = start_steered_edge(
        &s,
        &steering,
        &base_url(&origin),
        "127.0.0.2",
        "fra-1",
        FRANKFURT,
        &["81.2.0.0/16"],
        "",
        "",
    );
    let (nyc, _nyc_cache) = start_steered_edge(
        &s,
        &steering,
        &base_url(&origin),
        "127.0.0.3",
        "nyc-1",
        NEW_YORK,
        &[],
        "",
        "",
    );
    wait_until("both edges in rotation", async || {
        in_rotation(&steering).await.len() == 2
    })
    .await;

    // Decisions: the ISP's subscriber (GB address, inside the prefix) goes to Frankfurt; a
    // US address to New York, the Netherlands to Frankfurt, both by the real GeoLite2 data.
    let decide = |ip: &str| steering.url(&format!("/v1/decide?title=sample&ip={ip}"));
    let (_, d) = get_json(&decide("81.2.69.160"), None).await;
    assert_eq!(
        (d["matched_by"].as_str(), first_pathway(&d)),
        (Some("prefix"), "edge-fra-1"),
        "{d}"
    );
    let (_, d) = get_json(&decide("8.8.8.8"), None).await;
    assert_eq!(
        (d["matched_by"].as_str(), first_pathway(&d)),
        (Some("nearest"), "edge-nyc-1"),
        "{d}"
    );
    assert_eq!(each(&d["pathways"], "/id"), ["edge-nyc-1", "edge-fra-1", "cdn-b"]);
    let (_, d) = get_json(&decide("193.0.6.139"), None).await;
    assert_eq!(first_pathway(&d), "edge-fra-1");

    // A Content Steering manifest for a dash.js player in the US.
    let (status, m) = get_json(
        &steering.url("/v1/steering/play-1?title=sample&player=dash"),
        Some("8.8.8.8"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["VERSION"], 1);
    assert_eq!(m["TTL"], 5);
    assert_eq!(
        m["PATHWAY-PRIORITY"],
        json!(["edge-nyc-1", "edge-fra-1", "cdn-b", "strata"])
    );
    let reload = m["RELOAD-URI"].as_str().unwrap();
    assert!(
        reload.starts_with(&steering.url("/v1/steering/play-1?"))
            && reload.contains("title=sample")
            && reload.contains("player=dash"),
        "{reload}"
    );
    let clone = &m["PATHWAY-CLONES"][0];
    assert_eq!(clone["BASE-ID"], "strata");
    assert_eq!(clone["ID"], "edge-nyc-1");
    assert_eq!(
        clone["URI-REPLACEMENT"]["HOST"],
        nyc.url("").trim_end_matches('/')
    );

    // The manifest's own pathway already names the best edge (`base`): the player stays on
    // it (no clone of it, the manifest's id in its place), and the reloads keep saying so.
    let base = nyc.url("").trim_end_matches('/').to_string();
    let (status, m) = get_json(
        &steering.url(&format!(
            "/v1/steering/play-1?title=sample&player=hls&base={}",
            strata_contracts::query::encode(&base)
        )),
        Some("8.8.8.8"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["PATHWAY-PRIORITY"], json!(["strata", "edge-fra-1", "cdn-b"]));
    assert_eq!(each(&m["PATHWAY-CLONES"], "/ID"), ["edge-fra-1", "cdn-b"]);
    let reload = m["RELOAD-URI"].as_str().unwrap();
    let (_, again) = get_json(reload, Some("8.8.8.8")).await;
    assert_eq!(again["PATHWAY-PRIORITY"], m["PATHWAY-PRIORITY"], "{reload}");

    // 302 for players that do not speak steering; the query (a token, say) is kept.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .get(steering.url("/v1/route/sample/seg-1.m4s?token=abc"))
        .header("x-forwarded-for", "8.8.8.8")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, nyc.url("/sample/seg-1.m4s?token=abc"));
    let followed = http1().get(&location).send().await.unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(followed.bytes().await.unwrap().len(), 50_000);

    // Bad edge messages change nothing and say why.
    let hb = |id: &str| json!({"version": 1, "edge_id": id, "healthy": true, "load": 0.1});
    let post = |path: &str, credential: Option<String>, body: Value| {
        let mut req = http1().post(steering.url(path)).json(&body);
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        req.send()
    };
    let r = post("/v1/edges/heartbeat", Some(credential(&s, "fra-1")), hb("nyc-1"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "impersonation");
    let r = post("/v1/edges/heartbeat", None, hb("nyc-1")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post(
        "/v1/edges/heartbeat",
        Some("v1.forged.credential".into()),
        hb("nyc-1"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post("/v1/edges/heartbeat", Some(credential(&s, "ghost")), hb("ghost"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unregistered");
    let r = post(
        "/v1/edges/heartbeat",
        Some(credential(&s, "fra-1")),
        json!({"version": 1, "edge_id": "fra-1", "load": "high"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (status, _) = get_json(&steering.url("/v1/admin/edges"), None).await;
    assert_eq!(status, StatusCode::OK);
    let anonymous = http1().get(steering.url("/v1/admin/edges")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The New York edge dies: out of rotation within the heartbeat timeout, and its viewers
    // go to Frankfurt.
    drop(nyc);
    wait_until("nyc-1 out of rotation", async || {
        in_rotation(&steering).await == ["fra-1"]
    })
    .await;
    let (_, d) = get_json(&decide("8.8.8.8"), None).await;
    assert_eq!(first_pathway(&d), "edge-fra-1", "{d}");
    let (_, fleet) = get_json(&steering.url("/v1/admin/edges"), None).await;
    let nyc_view = fleet["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["registration"]["edge_id"] == "nyc-1")
        .unwrap();
    assert!(
        nyc_view["reason"].as_str().unwrap().contains("heartbeat")
            || nyc_view["reason"].as_str().unwrap().contains("poll"),
        "{nyc_view}"
    );

    // Steering stops: the edge serves on. Steering restarts: it knows its fleet at once.
    steering.signal("TERM");
    assert!(steering.wait_exit(Duration::from_secs(10)).success());
    let served = http1().get(fra.url("/sample/seg-1.m4s")).send().await.unwrap();
    assert_eq!(
        served.status(),
        StatusCode::OK,
        "an edge must keep serving without steering"
    );
    let steering = start_steering(&s);
    let (_, fleet) = get_json(&steering.url("/v1/admin/edges"), None).await;
    assert_eq!(
        each(&fleet["edges"], "/registration/edge_id"),
        ["fra-1", "nyc-1"],
        "registrations survive a restart"
    );
    wait_until("fra-1 back in rotation after the restart", async || {
        in_rotation(&steering).await == ["fra-1"]
    })
    .await;
    let (_, d) = get_json(&steering.url("/v1/decide?title=sample&ip=8.8.8.8"), None).await;
    assert_eq!(first_pathway(&d), "edge-fra-1");
    drop(s.dir);
}

#[tokio::test]
async fn an_overloaded_edge_spills_its_titles_and_gets_them_back() {
    let content = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(content.path().join("hot")).unwrap();
    std::fs::write(content.path().join("hot/seg-1.m4s"), vec![1u8; 1000]).unwrap();
    let origin = start_origin(content.path());
    let s = steering_setup(5);
    let steering = start_steering(&s);
    // Two edges of one site, each sized for 20 requests per second.
    let site = (50.0, 8.0);
    let capacity = "capacity_rps = 20";
    let (one, _c1) = start_steered_edge(
        &s,
        &steering,
        &base_url(&origin),
        "127.0.0.2",
        "site-1",
        site,
        &[],
        "",
        capacity,
    );
    let (two, _c2) = start_steered_edge(
        &s,
        &steering,
        &base_url(&origin),
        "127.0.0.3",
        "site-2",
        site,
        &[],
        "",
        capacity,
    );
    wait_until("both edges in rotation", async || {
        in_rotation(&steering).await.len() == 2
    })
    .await;
    let decide = steering.url("/v1/decide?title=hot&ip=127.0.0.1");
    let (_, d) = get_json(&decide, None).await;
    let home = first_pathway(&d).to_string();
    let (home_edge, other) = if home == "edge-site-1" {
        (&one, "edge-site-2")
    } else {
        (&two, "edge-site-1")
    };

    // Viewers pile onto the home edge: about 100 requests per second, five times its size.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, url) = (stop.clone(), home_edge.url("/hot/seg-1.m4s"));
        tokio::spawn(async move {
            let client = http1();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = client.get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    wait_until("the title spills to the other edge", async || {
        let (_, d) = get_json(&decide, None).await;
        first_pathway(&d) == other
    })
    .await;
    let (_, d) = get_json(&decide, None).await;
    assert_eq!(
        d["pathways"].as_array().unwrap().last().unwrap()["id"],
        home,
        "an overloaded edge is the last resort: {d}"
    );
    // The crowd leaves: the title goes home.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    wait_until("the title returns to its home edge", async || {
        let (_, d) = get_json(&decide, None).await;
        first_pathway(&d) == home
    })
    .await;
}

#[tokio::test]
async fn the_control_plane_starts_each_play_on_steerings_choice_and_falls_back_without_it() {
    use support::control_plane::{Api, start_control_plane_with};
    let origin = start_origin(&support::sample_content_root());
    let s = steering_setup(5);
    let mut steering = start_steering(&s);
    let (fra, _c1) = start_steered_edge(
        &s,
        &steering,
        &base_url(&origin),
        "127.0.0.2",
        "fra-1",
        (50.11, 8.68),
        &["81.2.0.0/16"],
        "",
        "",
    );
    let (nyc, _c2) = start_steered_edge(
        &s,
        &steering,
        &base_url(&origin),
        "127.0.0.3",
        "nyc-1",
        (40.71, -74.0),
        &[],
        "",
        "",
    );
    wait_until("both edges in rotation", async || {
        in_rotation(&steering).await.len() == 2
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let fallback = "http://127.0.0.9:9";
    let cp = start_control_plane_with(
        fallback,
        &base_url(&origin),
        "",
        data.path(),
        &support::steering::control_plane_toml(&steering),
    );
    let api = Api {
        base: cp.url(""),
        client: http1(),
    };
    let session = api.sample_and_viewer("eve@example.com", "premium").await;
    // The ISP's subscriber starts in Frankfurt, a US viewer in New York; the play's own
    // segment URLs point there (for players that ignore steering too).
    for (ip, edge) in [("81.2.69.160", &fra), ("8.8.8.8", &nyc)] {
        let (status, play) = api.play(&session, ip, "sample", "tv").await;
        assert_eq!(status, StatusCode::OK, "{play}");
        assert_eq!(play["cdn"], edge.url("").trim_end_matches('/'), "{ip}: {play}");
        let master = http1()
            .get(play["hls_url"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let master = m3u8_rs::parse_master_playlist_res(master.as_bytes()).unwrap();
        let media = http1()
            .get(&master.variants[0].uri)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let media = m3u8_rs::parse_media_playlist_res(media.as_bytes()).unwrap();
        assert!(
            media.segments[0].uri.starts_with(&edge.url("/sample/")),
            "{}",
            media.segments[0].uri
        );
        let mpd = http1()
            .get(play["dash_url"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            mpd.contains(&format!(
                "{}/sample/</BaseURL>",
                edge.url("").trim_end_matches('/')
            )),
            "{mpd}"
        );
    }
    // Steering away: plays still start, on cdn_url.
    steering.signal("KILL");
    let _ = steering.wait_exit(Duration::from_secs(5));
    let (status, play) = api.play(&session, "8.8.8.8", "sample", "tv").await;
    assert_eq!(status, StatusCode::OK, "{play}");
    assert_eq!(play["cdn"], fallback);
    let fallbacks = support::metric(
        &cp.admin_url("/metrics"),
        "strata_control_plane_steering_fallbacks_total",
    )
    .await;
    assert_eq!(fallbacks, 1.0);
}

#[tokio::test]
async fn nearest_cluster_by_a_geo_database_the_test_wrote() {
    // Private networks placed by a database written here (mmdb-writer, from PyPI): 10.1/16 in
    // Paris, 10.2/16 in New York, 10.3/16 in a country but at no location.
    let s = steering_setup(5);
    let db = s.dir.path().join("small.mmdb");
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/write_mmdb.py"
        ))
        .arg(&db)
        .args([
            "10.1.0.0/16=48.86,2.35,FR",
            "10.2.0.0/16=40.71,-74.0,US",
            "10.3.0.0/16=-,-,DE",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "writing the database (pip install mmdb-writer): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = std::fs::read_to_string(&s.config).unwrap();
    let config: String = config
        .lines()
        .map(|l| {
            if l.starts_with("geoip_db") {
                format!("geoip_db = \"{}\"", db.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&s.config, config).unwrap();
    let content = tempfile::tempdir().unwrap();
    let origin = start_origin(content.path());
    let steering = start_steering(&s);
    let (_par, _c1) = start_steered_edge(
        &s,
        &steering,
        &base_url(&origin),
        "127.0.0.2",
        "par-1",
        (48.86, 2.35),
        &[],
        "",
        "",
    );
    let (_nyc, _c2) = start_steered_edge(
        &s,
        &steering,
        &base_url(&origin),
        "127.0.0.3",
        "nyc-1",
        (40.71, -74.0),
        &[],
        "",
        "",
    );
    support::steering::wait_in_rotation(&steering, 2).await;
    for (ip, matched, first) in [
        ("10.1.2.3", "nearest", "edge-par-1"),
        ("10.2.2.3", "nearest", "edge-nyc-1"),
        ("10.3.0.1", "default", "edge-nyc-1"),
    ] {
        let (_, d) = get_json(&steering.url(&format!("/v1/decide?title=t&ip={ip}")), None).await;
        assert_eq!(
            (d["matched_by"].as_str(), first_pathway(&d)),
            (Some(matched), first),
            "{ip}: {d}"
        );
    }
}
