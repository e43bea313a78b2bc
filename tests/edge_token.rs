//! Playback tokens at a real edge: a request without a valid token is refused with a reason
//! (and counted by reason), a valid one is served, and the token never splits the cache.

mod support;

use reqwest::StatusCode;
use std::time::{SystemTime, UNIX_EPOCH};
use strata_contracts::token::{PlaybackClaims, TokenKey, sign_playback};
use support::{base_url, http1, metric, pattern, sha256, start_edge, start_origin};

fn key(id: &str) -> TokenKey {
    TokenKey {
        id: id.into(),
        secret: format!("secret-of-{id}-long-enough-for-hmac-sha256"),
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(key: &TokenKey, path: &str, exp: u64) -> String {
    sign_playback(
        key,
        PlaybackClaims {
            kid: String::new(),
            path: path.into(),
            exp,
            country: None,
            sid: Some("test-session".into()),
        },
    )
}

#[tokio::test]
async fn the_edge_serves_valid_tokens_and_refuses_each_bad_one_with_its_reason() {
    let content = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(content.path().join("t")).unwrap();
    std::fs::create_dir_all(content.path().join("other")).unwrap();
    std::fs::create_dir_all(content.path().join("artwork")).unwrap();
    let body = pattern(300_000, 7);
    std::fs::write(content.path().join("t/seg-1.m4s"), &body).unwrap();
    std::fs::write(content.path().join("other/seg-1.m4s"), b"other").unwrap();
    std::fs::write(content.path().join("artwork/poster.jpg"), b"jpg").unwrap();
    let origin = start_origin(content.path());

    // The edge holds the current key and the previous one (rotation in progress); "k0" was
    // retired from it.
    let (k0, k1, k2) = (key("k0"), key("k1"), key("k2"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[token]\nenforce = true\nexempt_paths = [\"/artwork/\"]\n\
             [[token.keys]]\nid = \"k1\"\nsecret = \"{}\"\n[[token.keys]]\nid = \"k2\"\nsecret = \"{}\"\n",
            k1.secret, k2.secret
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let edge = start_edge(
        &base_url(&origin),
        cache.path(),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let client = http1();
    let get = |query: String| {
        let url = edge.url(&format!("/t/seg-1.m4s{query}"));
        let client = client.clone();
        async move {
            let resp = client.get(url).send().await.unwrap();
            let status = resp.status();
            let cache_status = resp
                .headers()
                .get("cache-status")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, resp.bytes().await.unwrap(), cache_status)
        }
    };

    // Served: tokens from both held keys; the second (different token) is a cache hit.
    let (status, bytes, first) = get(format!("?token={}", token(&k1, "/t/", now() + 600))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&bytes), sha256(&body));
    assert!(first.contains("fwd=miss"), "{first}");
    let (status, bytes, second) = get(format!("?CMCD=bl%3D1&token={}", token(&k2, "/t/", now() + 600))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256(&bytes), sha256(&body));
    assert!(
        second.contains("hit"),
        "another token must hit the same cached object: {second}"
    );

    // Refused, each with its status and reason in the body.
    let mut tampered = token(&k1, "/t/", now() + 600).into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases = [
        (String::new(), StatusCode::UNAUTHORIZED, "missing"),
        (
            "?token=not-a-token".to_string(),
            StatusCode::UNAUTHORIZED,
            "malformed",
        ),
        (
            format!("?token={}", token(&k1, "/t/", now() - 1)),
            StatusCode::FORBIDDEN,
            "expired",
        ),
        (
            format!("?token={tampered}"),
            StatusCode::FORBIDDEN,
            "bad_signature",
        ),
        (
            format!("?token={}", token(&k1, "/other/", now() + 600)),
            StatusCode::FORBIDDEN,
            "wrong_path",
        ),
        (
            format!("?token={}", token(&k0, "/t/", now() + 600)),
            StatusCode::FORBIDDEN,
            "unknown_key",
        ),
    ];
    for (query, want_status, reason) in &cases {
        let (status, bytes, _) = get(query.clone()).await;
        assert_eq!(status, *want_status, "{reason}");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with(reason), "{reason}: body {text:?}");
        let counted = metric(
            &edge.admin_url("/metrics"),
            &format!("strata_edge_token_rejections_total{{reason=\"{reason}\"}}"),
        )
        .await;
        assert_eq!(counted, 1.0, "{reason}");
    }
    // A token for /t/ does not open /other/ through a dot segment either.
    let sneaky = edge.url(&format!(
        "/t/../other/seg-1.m4s?token={}",
        token(&k1, "/t/", now() + 600)
    ));
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &sneaky,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");

    // Exempt paths need no token.
    let resp = client.get(edge.url("/artwork/poster.jpg")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"jpg");
}
