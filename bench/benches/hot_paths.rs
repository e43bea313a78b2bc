//! Micro-benchmarks of the per-request hot paths: cache key building, freshness evaluation,
//! playback-token verification, range parsing, and the steering decision over a fleet of 300
//! edges. Run with `cargo bench -p strata-bench --bench hot_paths`; figures in
//! `bench/README.md`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, SystemTime};
use strata_contracts::api::steering::{EDGE_PROTOCOL_VERSION, EdgeRegistration, Heartbeat};
use strata_contracts::token::{KeyRing, PlaybackClaims, TokenKey, sign_playback};
use strata_edge::cache_key::{KeyRules, primary_key};
use strata_steering::decide::{Client, decide};
use strata_steering::fleet::{Fleet, Rules};

fn cache_key(c: &mut Criterion) {
    let rules = KeyRules::default();
    c.bench_function("cache_key/with_cmcd_and_token", |b| {
        b.iter(|| {
            primary_key(
                black_box("Edge-7.Cdn.Example:443"),
                black_box("/titles/4711/720p/seg-00042.m4s"),
                black_box(Some(
                    "CMCD=br%3D3200%2Cbs%2Cd%3D4004%2Cmtp%3D25400&token=v1.abc.def&v=2",
                )),
                &rules,
            )
        })
    });
}

fn freshness(c: &mut Criterion) {
    let mut resp = pingora::http::ResponseHeader::build(200, None).unwrap();
    resp.insert_header("cache-control", "public, max-age=31536000, immutable")
        .unwrap();
    resp.insert_header("cdn-cache-control", "max-age=86400, stale-while-revalidate=60")
        .unwrap();
    resp.insert_header("content-type", "video/mp4").unwrap();
    resp.insert_header("etag", "\"5f2b-1a2b3c\"").unwrap();
    resp.insert_header("date", httpdate(SystemTime::now())).unwrap();
    c.bench_function("freshness/cdn_cache_control_over_cache_control", |b| {
        b.iter(|| strata_edge::cacheability::decide(black_box(&resp), false))
    });
}

fn httpdate(t: SystemTime) -> String {
    use headers::HeaderMapExt;
    let mut h = http::HeaderMap::new();
    h.typed_insert(headers::Date::from(t));
    h[http::header::DATE].to_str().unwrap().to_string()
}

fn token(c: &mut Criterion) {
    let key = TokenKey {
        id: "2026-11".into(),
        secret: "a-secret-of-at-least-thirty-two-bytes!!".into(),
    };
    let ring = KeyRing::new(std::slice::from_ref(&key)).unwrap();
    let token = sign_playback(
        &key,
        PlaybackClaims {
            kid: String::new(),
            path: "/titles/4711/".into(),
            exp: u64::MAX / 2,
            country: Some("GB".into()),
            sid: Some("0123456789abcdef0123456789abcdef".into()),
        },
    );
    c.bench_function("token/verify_playback", |b| {
        b.iter(|| {
            ring.verify_playback(
                black_box(&token),
                black_box("/titles/4711/720p/seg-00042.m4s"),
                1,
                None,
            )
        })
    });
}

fn range(c: &mut Criterion) {
    use headers::HeaderMapExt;
    let validators = strata_origin::conditional::Validators {
        etag: "\"5f2b-1a2b3c\"".parse().unwrap(),
        last_modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::RANGE, "bytes=1048576-2097151".parse().unwrap());
    headers.typed_insert(headers::IfRange::etag("\"5f2b-1a2b3c\"".parse().unwrap()));
    c.bench_function("range/single_with_if_range", |b| {
        b.iter(|| strata_origin::range::plan(black_box(&headers), 4_000_000, &validators, 16))
    });
}

fn steering(c: &mut Criterion) {
    // 20 clusters of 15 edges across Europe, each cluster announcing two prefixes.
    let mut fleet = Fleet::default();
    for cluster in 0..20 {
        for i in 0..15 {
            let id = format!("c{cluster:02}-{i:02}");
            fleet
                .register(EdgeRegistration {
                    version: EDGE_PROTOCOL_VERSION,
                    edge_id: id.clone(),
                    cluster: format!("c{cluster:02}"),
                    region: "eu".into(),
                    lat: 40.0 + cluster as f64 * 0.7,
                    lon: -5.0 + cluster as f64 * 1.1,
                    prefixes: vec![
                        format!("10.{cluster}.0.0/16"),
                        format!("2001:db8:{cluster:x}::/48"),
                    ],
                    url: format!("http://{id}.edges.example"),
                    https_url: None,
                    health_url: format!("http://{id}.edges.example:9081/healthz"),
                    capacity_bytes: 1 << 40,
                })
                .unwrap();
            fleet
                .heartbeat(
                    Heartbeat {
                        version: EDGE_PROTOCOL_VERSION,
                        edge_id: id,
                        healthy: true,
                        load: 0.3,
                        free_cache_bytes: 1 << 39,
                        disks_ok: true,
                    },
                    0,
                )
                .unwrap();
        }
    }
    let rules = Rules {
        heartbeat_timeout_ms: 10_000,
        poll_fail_after: 2,
        overload: 0.85,
        max_edge_pathways: 8,
    };
    let by_prefix = Client {
        ip: "10.7.3.4".parse().unwrap(),
        location: Some((45.0, 2.0)),
    };
    let by_location = Client {
        ip: "192.0.2.9".parse().unwrap(),
        location: Some((48.9, 2.3)),
    };
    c.bench_function("steering/decide_300_edges_prefix", |b| {
        b.iter(|| {
            decide(
                &fleet,
                &rules,
                &[],
                black_box(&by_prefix),
                black_box("title-4711"),
                1,
            )
        })
    });
    c.bench_function("steering/decide_300_edges_nearest", |b| {
        b.iter(|| {
            decide(
                &fleet,
                &rules,
                &[],
                black_box(&by_location),
                black_box("title-4711"),
                1,
            )
        })
    });
}

criterion_group!(hot_paths, cache_key, freshness, token, range, steering);
criterion_main!(hot_paths);
