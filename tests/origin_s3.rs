//! The origin's S3 backend against a real S3-compatible server: moto (PyPI `moto[server]`),
//! started here on loopback. Skipped with a message when moto is not installed, unless
//! `STRATA_REQUIRE_S3=1` (as in CI), where a missing moto fails the test.

mod support;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};
use reqwest::StatusCode;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{ServerProcess, http1, http2, pattern, sha256};

const BUCKET: &str = "strata-content";

struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto on a port of its choosing (port 0, read back from its banner, so no other
/// process can take the port in between), or returns None (skip) when it is not installed.
fn start_moto() -> Option<Moto> {
    let spawned = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("STRATA_REQUIRE_S3").as_deref() != Ok("1"),
                "STRATA_REQUIRE_S3=1 but moto_server cannot start: {e}"
            );
            eprintln!("SKIPPED: moto_server not found ({e}); install it with `pip install 'moto[server]'`");
            return None;
        }
    };
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split("Running on ").nth(1) {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let endpoint = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => url,
        Err(_) => {
            let _ = child.kill();
            panic!("moto_server did not report its address");
        }
    };
    let moto = Moto { child, endpoint };
    let addr: std::net::SocketAddr = moto.endpoint.trim_start_matches("http://").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "moto did not start listening");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

const ENV: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

async fn upload(endpoint: &str, files: &[(&str, Vec<u8>)]) {
    // CreateBucket is not part of object_store's API; it is a plain PUT on the bucket.
    let r = http1().put(format!("{endpoint}/{BUCKET}")).send().await.unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let store = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    for (key, data) in files {
        store
            .put(&StorePath::from(*key), PutPayload::from(data.clone()))
            .await
            .unwrap();
    }
}

fn start_origin(endpoint: &str, prefix: &str) -> ServerProcess {
    ServerProcess::start(
        "origin",
        &[
            "--s3-bucket",
            BUCKET,
            "--s3-endpoint",
            endpoint,
            "--s3-allow-http",
            "--s3-prefix",
            prefix,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &ENV,
    )
}

#[tokio::test]
async fn serves_from_s3_with_validators_ranges_and_classes() {
    let Some(moto) = start_moto() else { return };
    let segment = pattern(3 << 20, 5);
    let playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg-1.m4s\n#EXT-X-ENDLIST\n".to_vec();
    upload(
        &moto.endpoint,
        &[
            ("vod/t1/seg-1.m4s", segment.clone()),
            ("vod/t1/index.m3u8", playlist.clone()),
            ("elsewhere/x.m4s", vec![1]),
        ],
    )
    .await;
    let origin = start_origin(&moto.endpoint, "vod");

    for c in [http1(), http2()] {
        let r = c.get(origin.url("/t1/seg-1.m4s")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "video/iso.segment");
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        let etag = r.headers()["etag"].clone();
        assert!(etag.to_str().unwrap().starts_with('"') && !etag.to_str().unwrap().starts_with("\"\""));
        assert_eq!(sha256(&r.bytes().await.unwrap()), sha256(&segment));

        let r = c
            .get(origin.url("/t1/seg-1.m4s"))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

        let r = c
            .get(origin.url("/t1/seg-1.m4s"))
            .header("range", "bytes=1000-1999")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(&r.bytes().await.unwrap()[..], &segment[1000..2000]);

        let r = c
            .get(origin.url("/t1/seg-1.m4s"))
            .header("range", "bytes=0-1,-2")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("multipart/byteranges")
        );

        let r = c.get(origin.url("/t1/index.m3u8")).send().await.unwrap();
        assert_eq!(r.headers()["cache-control"], "public, max-age=3600");
        assert_eq!(&r.bytes().await.unwrap()[..], &playlist[..]);

        let r = c.head(origin.url("/t1/seg-1.m4s")).send().await.unwrap();
        assert_eq!(r.headers()["content-length"], (3u64 << 20).to_string().as_str());

        // Keys outside the prefix are not reachable, and missing keys are 404.
        assert_eq!(
            c.get(origin.url("/elsewhere/x.m4s"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            c.get(origin.url("/t1/missing.m4s"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
    }
    let health = http1().get(origin.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn storage_outage_is_a_clean_502_and_unhealthy() {
    let Some(mut moto) = start_moto() else { return };
    upload(&moto.endpoint, &[("a.m4s", vec![7; 100])]).await;
    let origin = start_origin(&moto.endpoint, "");
    assert_eq!(
        http1().get(origin.url("/a.m4s")).send().await.unwrap().status(),
        StatusCode::OK
    );

    moto.child.kill().unwrap();
    moto.child.wait().unwrap();
    let r = http1().get(origin.url("/a.m4s")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await.unwrap().contains("storage unavailable"));
    let health = http1().get(origin.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
}
