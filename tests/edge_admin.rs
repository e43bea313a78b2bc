//! The edge's admin API on its admin listener: bearer credential, inventory by prefix, purge
//! by URL and by prefix, and purges that hold across a restart.

mod support;

use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;
use support::script_origin::ScriptOrigin;
use support::{ServerProcess, http1};

const TOKEN: &str = "test-admin-token-0123456789";

fn start_edge(upstream: &ScriptOrigin, cache: &Path, token: Option<&str>) -> ServerProcess {
    let envs: Vec<(&str, &str)> = token
        .map(|t| ("STRATA_EDGE_ADMIN_TOKEN", t))
        .into_iter()
        .collect();
    support::start_edge(&upstream.url(), cache, &[], &envs)
}

const Q: &str = "?cc=max-age%3D600&len=5000";

async fn fetch(edge: &ServerProcess, path: &str) -> String {
    let r = http1().get(edge.url(&format!("{path}{Q}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cs = r.headers()["cache-status"].to_str().unwrap().to_string();
    r.bytes().await.unwrap();
    cs
}

async fn admin(
    edge: &ServerProcess,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let url = edge.admin_url(path);
    let mut req = match method {
        "POST" => http1().post(url).body(body.to_string()),
        _ => http1().get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let v = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(serde_json::Value::Null);
    (status, v)
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token_and_refuses_a_wrong_one() {
    let upstream = ScriptOrigin::start();
    let cache = tempfile::tempdir().unwrap();
    let edge = start_edge(&upstream, cache.path(), None);
    let (status, v) = admin(&edge, "POST", "/v1/purge", Some(TOKEN), r#"{"prefixes":["/"]}"#).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"], "disabled");
    drop(edge);

    let edge = start_edge(&upstream, cache.path(), Some(TOKEN));
    let (status, v) = admin(&edge, "GET", "/v1/inventory", Some("wrong-token-wrong-token"), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "unauthorized");
    let (status, _) = admin(&edge, "GET", "/v1/inventory", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = admin(&edge, "POST", "/v1/purge", Some(TOKEN), "not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("purge request"), "{v}");
    let (status, _) = admin(
        &edge,
        "POST",
        "/v1/purge",
        Some(TOKEN),
        r#"{"prefixes":["no-slash"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn inventory_lists_and_purge_removes_by_url_and_prefix_even_across_restarts() {
    let upstream = ScriptOrigin::start();
    let cache = tempfile::tempdir().unwrap();
    let mut edge = start_edge(&upstream, cache.path(), Some(TOKEN));
    for p in ["/t/a/1.m4s", "/t/a/2.m4s", "/t/b/1.m4s", "/u/x.m4s"] {
        assert!(fetch(&edge, p).await.contains("fwd=miss"));
    }
    let (status, inv) = admin(&edge, "GET", "/v1/inventory?prefix=/t/a/", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inv["count"], 2, "{inv}");
    assert_eq!(inv["bytes"], 10_000, "{inv}");
    assert!(
        inv["objects"][0]["key"]
            .as_str()
            .unwrap()
            .ends_with("/t/a/1.m4s?cc=max-age%3D600&len=5000"),
        "{inv}"
    );

    // Purge one URL, as a player would have requested it (CMCD does not matter).
    let url = format!("http://{}/t/a/1.m4s{Q}&CMCD=bl%3D100", edge.data_addr);
    let (status, v) = admin(
        &edge,
        "POST",
        "/v1/purge",
        Some(TOKEN),
        &format!(r#"{{"urls":["{url}"]}}"#),
    )
    .await;
    assert_eq!((status, v["purged"].as_u64()), (StatusCode::OK, Some(1)));
    assert!(
        fetch(&edge, "/t/a/1.m4s").await.contains("fwd=miss"),
        "a purged object is fetched again"
    );
    assert!(
        fetch(&edge, "/t/a/2.m4s").await.contains("hit"),
        "its neighbour is untouched"
    );

    // Purge a prefix.
    let (_, v) = admin(&edge, "POST", "/v1/purge", Some(TOKEN), r#"{"prefixes":["/t/"]}"#).await;
    assert_eq!(v["purged"], 3);
    let (_, inv) = admin(&edge, "GET", "/v1/inventory?prefix=/", Some(TOKEN), "").await;
    assert_eq!(inv["count"], 1, "only /u/x.m4s is left: {inv}");

    // A restart neither brings purged objects back nor forgets the rest.
    edge.signal("TERM");
    assert!(edge.wait_exit(Duration::from_secs(20)).success());
    let count_before = upstream.count("/t/b/1.m4s");
    edge = start_edge(&upstream, cache.path(), Some(TOKEN));
    let (_, inv) = admin(&edge, "GET", "/v1/inventory?prefix=/", Some(TOKEN), "").await;
    assert_eq!(inv["count"], 1, "{inv}");
    assert!(fetch(&edge, "/u/x.m4s").await.contains("hit"));
    assert!(
        fetch(&edge, "/t/b/1.m4s").await.contains("fwd=miss"),
        "purged stays purged after a restart"
    );
    assert_eq!(upstream.count("/t/b/1.m4s"), count_before + 1);
}
