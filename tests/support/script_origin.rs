//! A scriptable upstream for the edge's HTTP-caching tests: every response is described by
//! the request's query string, so one server can play any origin behaviour RFC 9111 cares
//! about (freshness headers, validators, Vary, errors, slow and trickling bodies), and it
//! counts what reached it. The real origin (`strata origin`) covers the real-content paths;
//! this one covers header combinations no real content tree would produce.
//!
//! Query parameters: `cc`, `cdn` (CDN-Cache-Control), `scc` (Strata-Cache-Control),
//! `expires` (seconds from now, may be negative), `age`, `etag` (answers If-None-Match with
//! 304), `status`, `vary` (the body then echoes that request header), `len` (body bytes,
//! default 1000), `delay_ms` (before the head), `trickle_ms` (between 64 KiB pieces),
//! `fail_first` (the first N requests for the path get their connection closed, no answer),
//! `cut_at` (the connection is closed once that many body bytes are sent, rounded up to a
//! 64 KiB piece, below the declared length).

use bytes::Bytes;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};

/// A running scriptable upstream; stops when dropped.
pub struct ScriptOrigin {
    pub addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, u32>>>,
    failing: Arc<AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ScriptOrigin {
    /// Starts on a free loopback port, on a thread and runtime of its own (so that it can
    /// be used from sync and async tests alike).
    pub fn start() -> ScriptOrigin {
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let failing = Arc::new(AtomicBool::new(false));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (c, f) = (counts.clone(), failing.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                let serve = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let (c, f) = (c.clone(), f.clone());
                        tokio::spawn(async move {
                            let svc =
                                hyper::service::service_fn(move |req| respond(req, c.clone(), f.clone()));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
        });
        ScriptOrigin {
            addr,
            counts,
            failing,
            stop: Some(stop),
        }
    }

    /// The upstream URL for the edge's `--upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests reached the upstream for this path (query excluded).
    pub fn count(&self, path: &str) -> u32 {
        *self.counts.lock().unwrap().get(path).unwrap_or(&0)
    }

    /// While failing, every request gets a 503.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl Drop for ScriptOrigin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Dropped>;

/// Closing the connection instead of answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

async fn respond(
    req: Request<hyper::body::Incoming>,
    counts: Arc<Mutex<HashMap<String, u32>>>,
    failing: Arc<AtomicBool>,
) -> Result<Response<Body>, Dropped> {
    let path = req.uri().path().to_string();
    let n = {
        let mut c = counts.lock().unwrap();
        let e = c.entry(path.clone()).or_insert(0);
        *e += 1;
        *e
    };
    let q: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
        .collect();
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    if let Some(ms) = num("delay_ms") {
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
    }
    if num("fail_first").is_some_and(|k| i64::from(n) <= k) {
        return Err(Dropped);
    }
    let mut resp = Response::builder().header("x-origin-count", n.to_string());
    if failing.load(Ordering::SeqCst) {
        let body = http_body_util::Full::new(Bytes::from_static(b"origin down\n"))
            .map_err(|never: Infallible| match never {})
            .boxed();
        return Ok(resp.status(503).body(body).unwrap());
    }
    for (param, header) in [
        ("cc", "cache-control"),
        ("cdn", "cdn-cache-control"),
        ("scc", "strata-cache-control"),
        ("vary", "vary"),
    ] {
        if let Some(v) = q.get(param) {
            resp = resp.header(header, v.as_str());
        }
    }
    if let Some(secs) = num("expires") {
        let at = if secs >= 0 {
            std::time::SystemTime::now() + Duration::from_secs(secs as u64)
        } else {
            std::time::SystemTime::now() - Duration::from_secs((-secs) as u64)
        };
        resp = resp.header("expires", httpdate::fmt_http_date(at));
    }
    if let Some(age) = num("age") {
        resp = resp.header("age", age.to_string());
    }
    if let Some(tag) = q.get("etag") {
        let etag = format!("\"{tag}\"");
        resp = resp.header("etag", etag.as_str());
        let matches = req
            .headers()
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(&etag));
        if matches {
            let body = http_body_util::Empty::new()
                .map_err(|never: Infallible| match never {})
                .boxed();
            return Ok(resp.status(304).body(body).unwrap());
        }
    }
    let status = num("status").unwrap_or(200) as u16;
    let mut body = match q.get("vary") {
        Some(h) => {
            let v = req
                .headers()
                .get(h.as_str())
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            format!("{h}={v}").into_bytes()
        }
        None => crate::support::pattern(num("len").unwrap_or(1000) as usize, path.len() as u64),
    };
    if q.contains_key("stamp") {
        // The body says which fetch produced it, so a test can tell a refetch from a hit.
        body = format!("fetch {n}").into_bytes();
    }
    let trickle = num("trickle_ms").map(|ms| Duration::from_millis(ms as u64));
    let len = body.len();
    let cut_at = num("cut_at").map(|n| n as usize);
    let mut sent = 0;
    let pieces: Vec<Result<Bytes, Dropped>> = body
        .chunks(64 * 1024)
        .map(|p| {
            let cut = cut_at.is_some_and(|at| sent >= at);
            sent += p.len();
            if cut {
                Err(Dropped)
            } else {
                Ok(Bytes::copy_from_slice(p))
            }
        })
        .collect();
    let stream = futures::StreamExt::then(futures::stream::iter(pieces), move |p| async move {
        if let Some(d) = trickle {
            tokio::time::sleep(d).await;
        }
        p.map(Frame::data)
    });
    let body = BodyExt::boxed(StreamBody::new(stream));
    Ok(resp
        .status(status)
        .header("content-length", len.to_string())
        .body(body)
        .unwrap())
}
