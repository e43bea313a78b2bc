//! The control plane as a real process, on SQLite and on a real PostgreSQL, in front of a real
//! origin and a token-enforcing edge: catalog CRUD and import, accounts and sign-in, playback
//! allowed and refused for each reason (countries from the real GeoLite2 database, through a
//! trusted X-Forwarded-For), per-play manifests filtered by tier and device (checked by
//! parsing them), and the play's segments fetched from the edge with the play's token.
//!
//! PostgreSQL: `postgres://strata:strata@127.0.0.1:5432/postgres` (or
//! `STRATA_TEST_POSTGRES`), where each run makes its own database. Skipped with a message
//! when it cannot be reached, unless `STRATA_REQUIRE_POSTGRES=1` (as in CI). The GeoLite2
//! database comes from the `maxminddb-geolite2` PyPI package, which `.ci/install-deps`
//! installs.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use std::process::Command;
use support::control_plane::{ADMIN, ALWAYS, Api, start_cdn, start_control_plane, title};
use support::{http1, metric, run_strata, sha256};

/// Addresses the real GeoLite2 (2018) database places in these countries.
const GB: &str = "81.2.69.160";
const NL: &str = "193.0.6.139";
const US: &str = "8.8.8.8";

/// A database of this run's own on the PostgreSQL server, dropped at the end.
struct PgDatabase {
    server: String,
    name: String,
}

impl PgDatabase {
    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &format!("{}/postgres", self.server),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// A PostgreSQL database of its own for this run, or `None` (skipped) when no server answers.
fn postgres_database() -> Option<PgDatabase> {
    let server = std::env::var("STRATA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://strata:strata@127.0.0.1:5432".into());
    let name = format!("strata_test_{}_{}", std::process::id(), rand_suffix());
    let made = Command::new("psql")
        .args([
            &format!("{server}/postgres"),
            "-q",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output();
    match made {
        Ok(out) if out.status.success() => Some(PgDatabase { server, name }),
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var("STRATA_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "STRATA_REQUIRE_POSTGRES=1 but PostgreSQL at {server} is not usable: {why}"
            );
            eprintln!("SKIPPED: no PostgreSQL at {server}: {why}");
            None
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// Fetches `url` and returns (status, body bytes).
async fn fetch(url: &str) -> (StatusCode, bytes::Bytes) {
    let resp = http1().get(url).send().await.unwrap();
    (resp.status(), resp.bytes().await.unwrap())
}

/// Everything but persistence, against one database.
async fn scenario(database: &str) {
    let cdn = start_cdn();
    let data = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&cdn, database, data.path());
    let api = Api {
        base: cp.url(""),
        client: http1(),
    };
    use reqwest::Method as M;

    // ---- catalog: import through the CLI, then CRUD ----
    let window = |countries: &[&str], (start, end): (&str, &str)| json!({"countries": countries, "start": start, "end": end});
    let catalog = json!({"version": 1, "titles": [
        title("sample", json!({"windows": [window(&["GB", "NL"], ALWAYS)]})),
        title("expired", json!({"windows": [window(&[], ("2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"))]})),
        title("blackout", json!({"blackouts": [window(&["GB"], ALWAYS)]})),
        title("premium-only", json!({"tiers": ["premium"]})),
        title("tv-only", json!({"devices": ["tv"]})),
        title("doomed", json!({})),
    ]});
    let file = data.path().join("catalog.json");
    std::fs::write(&file, catalog.to_string()).unwrap();
    let (status, out, err) = run_strata(
        &[
            "catalog",
            "import",
            file.to_str().unwrap(),
            "--url",
            &cp.url(""),
            "--admin-token",
            ADMIN,
        ],
        &[],
    );
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("imported 6 of 6 titles"), "{out}");
    let (status, _, err) = run_strata(
        &[
            "catalog",
            "import",
            file.to_str().unwrap(),
            "--url",
            &cp.url(""),
            "--admin-token",
            "wrong",
        ],
        &[],
    );
    assert!(
        !status.success() && err.contains("401") && err.contains("unauthorized"),
        "{err}"
    );

    let (status, body) = api.send(M::GET, "/v1/titles/sample", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "The sample title");
    assert_eq!(body["genres"], json!(["Documentary"]));
    assert_eq!(body["renditions"].as_array().unwrap().len(), 4);
    assert_eq!(
        body["licensing"]["windows"],
        json!([window(&["GB", "NL"], ALWAYS)])
    );
    let mut renamed = title("doomed", json!({}));
    renamed["name"] = json!("Renamed");
    let (status, _) = api
        .send(
            M::PUT,
            "/v1/admin/titles/doomed",
            Some(ADMIN),
            None,
            Some(renamed.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = api.send(M::GET, "/v1/titles/doomed", None, None, None).await;
    assert_eq!(body["name"], "Renamed");
    let (_, body) = api
        .send(M::GET, "/v1/titles?limit=2&offset=0", None, None, None)
        .await;
    assert_eq!(body["total"], 6);
    assert_eq!(body["titles"].as_array().unwrap().len(), 2);
    let (status, _) = api
        .send(M::DELETE, "/v1/admin/titles/doomed", Some(ADMIN), None, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.send(M::GET, "/v1/titles/doomed", None, None, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_title"))
    );
    // Bad admin requests change nothing and say why.
    let (status, body) = api
        .send(
            M::PUT,
            "/v1/admin/titles/x",
            None,
            None,
            Some(title("x", json!({}))),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let mut bad = title("x", json!({}));
    bad["year"] = json!("nineteen");
    let (status, body) = api
        .send(M::PUT, "/v1/admin/titles/x", Some(ADMIN), None, Some(bad))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("year"), "{body}");
    let backwards = title(
        "x",
        json!({"windows": [window(&[], ("2030-01-01T00:00:00Z", "2029-01-01T00:00:00Z"))]}),
    );
    let (status, body) = api
        .send(M::PUT, "/v1/admin/titles/x", Some(ADMIN), None, Some(backwards))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("ends before it starts"),
        "{body}"
    );
    let (status, _) = api.send(M::GET, "/v1/titles/x", None, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // ---- discovery: search with a typo, facets, and a deleted title gone at once ----
    let (status, body) = api.send(M::GET, "/v1/search?q=smaple", None, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["id"], "sample", "{body}");
    let (_, body) = api
        .send(
            M::GET,
            "/v1/search?q=title&genre=Documentary&year=2026&limit=2",
            None,
            None,
            None,
        )
        .await;
    assert_eq!(body["total"], 5, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["facets"]["genres"][0],
        json!({"value": "Documentary", "count": 5})
    );
    assert_eq!(body["stale"], false);
    let (_, body) = api.send(M::GET, "/v1/search?q=renamed", None, None, None).await;
    assert_eq!(body["total"], 0, "a deleted title must not be found: {body}");
    let (status, body) = api
        .send(
            M::GET,
            &format!("/v1/search?q={}", "x".repeat(300)),
            None,
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );

    // ---- accounts and sign-in ----
    for (email, tier) in [("alice@example.com", "basic"), ("bob@example.com", "premium")] {
        let (status, body) = api
            .send(
                M::POST,
                "/v1/admin/accounts",
                Some(ADMIN),
                None,
                Some(json!({"email": email, "password": "correct horse", "tier": tier, "profiles": ["Main", "Kids"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["profiles"].as_array().unwrap().len(), 2);
        assert!(body.get("password_hash").is_none());
    }
    let (status, body) = api
        .send(
            M::POST,
            "/v1/admin/accounts",
            Some(ADMIN),
            None,
            Some(json!({"email": "ALICE@example.com", "password": "another one", "tier": "basic"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (status, body) = api
        .send(
            M::POST,
            "/v1/sessions",
            None,
            None,
            Some(json!({"email": "alice@example.com", "password": "wrong horse"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_credentials"))
    );
    let alice = api.sign_in("alice@example.com", "correct horse").await;
    let bob = api.sign_in("Bob@Example.com", "correct horse").await;

    // ---- playback: each refusal ----
    let refusals = [
        (
            "not-a-session",
            GB,
            "sample",
            "web",
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            alice.as_str(),
            GB,
            "no-such-title",
            "web",
            StatusCode::NOT_FOUND,
            "unknown_title",
        ),
        (
            alice.as_str(),
            GB,
            "sample",
            "fridge",
            StatusCode::BAD_REQUEST,
            "unknown_device",
        ),
        (
            alice.as_str(),
            US,
            "sample",
            "web",
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "geo_blocked",
        ),
        (
            alice.as_str(),
            GB,
            "expired",
            "web",
            StatusCode::FORBIDDEN,
            "not_available",
        ),
        (
            alice.as_str(),
            GB,
            "blackout",
            "web",
            StatusCode::FORBIDDEN,
            "blackout",
        ),
        (
            alice.as_str(),
            GB,
            "premium-only",
            "web",
            StatusCode::FORBIDDEN,
            "not_entitled",
        ),
        (
            bob.as_str(),
            GB,
            "tv-only",
            "phone",
            StatusCode::FORBIDDEN,
            "device_not_allowed",
        ),
    ];
    for (session, ip, t, device, want, reason) in refusals {
        let (status, body) = api.play(session, ip, t, device).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (want, Some(reason)),
            "{t} from {ip} on {device}: {body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    let (status, body) = api
        .send(
            M::POST,
            "/v1/playback",
            None,
            Some(GB),
            Some(json!({"title": "sample", "device": "web"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
    // The same titles are allowed where the rule does not bite.
    for (session, ip, t, device) in [
        (alice.as_str(), NL, "blackout", "web"),
        (bob.as_str(), GB, "premium-only", "web"),
        (bob.as_str(), US, "tv-only", "tv"),
    ] {
        let (status, body) = api.play(session, ip, t, device).await;
        assert_eq!(status, StatusCode::OK, "{t} from {ip} on {device}: {body}");
    }
    let metrics = cp.admin_url("/metrics");
    assert_eq!(
        metric(
            &metrics,
            "strata_control_plane_playback_total{outcome=\"geo_blocked\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "strata_control_plane_playback_total{outcome=\"allowed\"}"
        )
        .await,
        3.0
    );

    // ---- a basic-tier play from GB: HLS filtered to 540p, segments from the edge ----
    let (status, play) = api.play(&alice, GB, "sample", "web").await;
    assert_eq!(status, StatusCode::OK, "{play}");
    assert_eq!(play["country"], "GB");
    assert_eq!(play["max_height"], 540);
    let token = play["token"].as_str().unwrap().to_string();
    let (status, master) = fetch(play["hls_url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let master = m3u8_rs::parse_master_playlist_res(&master).unwrap();
    let heights: Vec<u64> = master
        .variants
        .iter()
        .map(|v| v.resolution.unwrap().height)
        .collect();
    assert_eq!(heights, [360, 540], "basic tier: nothing above 540p");
    let media_url = &master.variants[0].uri;
    assert!(media_url.starts_with(&cp.url("/v1/plays/")), "{media_url}");
    // The 720p playlist is not this play's, even asked for by name.
    let (status, _) = fetch(&media_url.replace("media_0.m3u8", "media_2.m3u8")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A steered HLS player names its edge with `cdn=` (an allowed host: cdn_url's own); a
    // host that is not allowed is refused, so a crafted URL cannot leak the token.
    let (status, steered) = fetch(&format!("{media_url}?cdn=http://127.0.0.1:9")).await;
    assert_eq!(status, StatusCode::OK);
    let steered = m3u8_rs::parse_media_playlist_res(&steered).unwrap();
    assert!(
        steered.segments[0].uri.starts_with("http://127.0.0.1:9/sample/"),
        "{}",
        steered.segments[0].uri
    );
    let (status, body) = api
        .send(
            M::GET,
            &format!("{}?cdn=http://attacker.example", &media_url[api.base.len()..]),
            None,
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("pathway_not_allowed"))
    );
    let (status, media) = fetch(media_url).await;
    assert_eq!(status, StatusCode::OK);
    let media = m3u8_rs::parse_media_playlist_res(&media).unwrap();
    let mut urls: Vec<String> = media.segments.iter().map(|s| s.uri.clone()).collect();
    urls.push(media.segments[0].map.as_ref().unwrap().uri.clone());
    assert!(urls.len() >= 5);
    for url in &urls {
        assert!(
            url.starts_with(&cdn.edge.url("/sample/")) && url.ends_with(&format!("?token={token}")),
            "{url}"
        );
        let (status, body) = fetch(url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        let name = url.split('?').next().unwrap().rsplit('/').next().unwrap();
        assert_eq!(
            sha256(&body),
            sha256(&std::fs::read(cdn.content.join("sample").join(name)).unwrap()),
            "{name}"
        );
    }
    // The same segment with the token tampered with is refused by the edge.
    // One character of the MAC changed (its first: every one of its 6 bits is used, so the
    // token still decodes and only the signature is wrong).
    let mac_at = token.rfind('.').unwrap() + 1;
    let swapped = if &token[mac_at..mac_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    let forged = format!("{}{swapped}{}", &token[..mac_at], &token[mac_at + 1..]);
    let tampered = urls[0].replace(&token, &forged);
    assert_eq!(fetch(&tampered).await.0, StatusCode::FORBIDDEN);
    let (status, _) = fetch(urls[0].split('?').next().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // ---- DASH for the same play: BaseURL at the edge, templates tokenized, 540p at most ----
    let (status, mpd) = fetch(play["dash_url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let mpd = dash_mpd_core::parse(std::str::from_utf8(&mpd).unwrap()).unwrap();
    let base = &mpd.base_url[0].base;
    assert_eq!(base, &cdn.edge.url("/sample/"));
    let video = &mpd.periods[0].adaptations[0];
    let heights: Vec<u64> = video.representations.iter().map(|r| r.height.unwrap()).collect();
    assert_eq!(heights, [360, 540]);
    let rep = &video.representations[1];
    let template = rep.SegmentTemplate.as_ref().unwrap();
    let seg = template
        .media
        .as_deref()
        .unwrap()
        .replace("$RepresentationID$", rep.id.as_deref().unwrap())
        .replace("$Number%05d$", "00003");
    let (status, body) = fetch(&format!("{base}{seg}")).await;
    assert_eq!(status, StatusCode::OK, "{seg}");
    assert_eq!(
        sha256(&body),
        sha256(&std::fs::read(cdn.content.join("sample/seg-1-00003.m4s")).unwrap())
    );

    // ---- a premium play on a TV gets every rendition; on a watch (a 360p class), one ----
    for (device, want) in [("tv", vec![360, 540, 720]), ("watch", vec![360])] {
        let (status, play) = api.play(&bob, NL, "sample", device).await;
        assert_eq!(status, StatusCode::OK, "{play}");
        let (_, master) = fetch(play["hls_url"].as_str().unwrap()).await;
        let master = m3u8_rs::parse_master_playlist_res(&master).unwrap();
        let heights: Vec<u64> = master
            .variants
            .iter()
            .map(|v| v.resolution.unwrap().height)
            .collect();
        assert_eq!(heights, want, "{device}");
    }
    let (_, play) = api.play(&bob, NL, "sample", "phone").await;
    assert_eq!(play["max_height"], 720);
    let (_, play) = api.play(&bob, NL, "sample", "tv").await;
    assert_eq!(play["max_height"], 2160);
    let (_, play) = api.play(&bob, NL, "sample", "watch").await;
    let (_, mpd) = fetch(play["dash_url"].as_str().unwrap()).await;
    let mpd = dash_mpd_core::parse(std::str::from_utf8(&mpd).unwrap()).unwrap();
    let heights: Vec<u64> = mpd.periods[0].adaptations[0]
        .representations
        .iter()
        .map(|r| r.height.unwrap())
        .collect();
    assert_eq!(heights, [360], "device filtering in the MPD too");
    // A profile that is not the account's is refused.
    let (status, body) = api
        .send(
            M::POST,
            "/v1/playback",
            Some(&bob),
            Some(NL),
            Some(json!({"title": "sample", "device": "tv", "profile": "someone-elses"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_profile"))
    );

    // ---- browse rows: new, trending (the sample was played most), genres ----
    let (status, body) = api.send(M::GET, "/v1/browse?limit=3", None, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = body["rows"].as_array().unwrap();
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no row {id}: {body}"))
    };
    assert_eq!(row("new")["titles"].as_array().unwrap().len(), 3);
    assert_eq!(row("trending")["titles"][0]["id"], "sample", "{body}");
    assert_eq!(row("genre:Documentary")["titles"].as_array().unwrap().len(), 3);

    // Unknown plays are named as such.
    let (status, body) = api
        .send(M::GET, "/v1/plays/0123/master.m3u8", None, None, None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_play"))
    );
    let health = http1().get(cp.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_control_plane_on_sqlite() {
    scenario("").await;
}

#[tokio::test]
async fn the_control_plane_on_postgresql() {
    let Some(database) = postgres_database() else {
        return;
    };
    scenario(&database.url()).await;
}

#[tokio::test]
async fn two_control_planes_share_one_postgresql() {
    let Some(database) = postgres_database() else {
        return;
    };
    let cdn = start_cdn();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_control_plane(&cdn, &database.url(), dir_a.path());
    let b = start_control_plane(&cdn, &database.url(), dir_b.path());
    let (api_a, api_b) = (
        Api {
            base: a.url(""),
            client: http1(),
        },
        Api {
            base: b.url(""),
            client: http1(),
        },
    );
    let (status, _) = api_a
        .send(
            reqwest::Method::POST,
            "/v1/admin/accounts",
            Some(ADMIN),
            None,
            Some(json!({"email": "dan@example.com", "password": "long enough", "tier": "premium"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut t = title("shared", json!({}));
    t["name"] = json!("Harbour Lights");
    let (status, _) = api_a
        .send(
            reqwest::Method::PUT,
            "/v1/admin/titles/shared",
            Some(ADMIN),
            None,
            Some(t),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // B signs the account in and plays the title A created: one database, one key.
    let session = api_b.sign_in("dan@example.com", "long enough").await;
    let (status, play) = api_b.play(&session, NL, "shared", "tv").await;
    assert_eq!(status, StatusCode::OK, "{play}");
    // B's search index notices A's change on its next refresh (search_refresh_secs = 1).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, body) = api_b
            .send(
                reqwest::Method::GET,
                "/v1/search?q=harbor+lihgts",
                None,
                None,
                None,
            )
            .await;
        if body["results"][0]["id"] == "shared" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never indexed A's title: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_catalog_and_accounts_survive_a_restart() {
    let cdn = start_cdn();
    let data = tempfile::tempdir().unwrap();
    let mut cp = start_control_plane(&cdn, "", data.path());
    let api = Api {
        base: cp.url(""),
        client: http1(),
    };
    let (status, _) = api
        .send(
            reqwest::Method::PUT,
            "/v1/admin/titles/sample",
            Some(ADMIN),
            None,
            Some(title("sample", json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            "/v1/admin/accounts",
            Some(ADMIN),
            None,
            Some(json!({"email": "carol@example.com", "password": "long enough", "tier": "standard"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let session = api.sign_in("carol@example.com", "long enough").await;
    cp.signal("TERM");
    assert!(cp.wait_exit(std::time::Duration::from_secs(10)).success());

    let cp = start_control_plane(&cdn, "", data.path());
    let api = Api {
        base: cp.url(""),
        client: http1(),
    };
    // The session from before the restart still works, and the title is still there.
    let (status, play) = api.play(&session, US, "sample", "tv").await;
    assert_eq!(status, StatusCode::OK, "{play}");
    assert_eq!(play["max_height"], 1080);
}
