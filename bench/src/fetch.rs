//! `strata fetch-bench`: many clients fetching a list of URLs as fast as they can over one
//! protocol (HTTP/1.1, HTTP/2 or HTTP/3) for a bounded time; requests/s, Gbit/s and latency
//! percentiles (HDR histograms). A protocol-level benchmark, not a player model: every body
//! is read to its end and counted, and any error or short body is reported as one.

use crate::trust::Trust;
use anyhow::{Context, bail};
use bytes::Buf;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The protocols a run can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1, one request at a time per connection.
    H1,
    /// HTTP/2 (h2c prior knowledge, or ALPN over TLS), `streams` requests per connection.
    H2,
    /// HTTP/3 over QUIC, `streams` requests per connection.
    H3,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    /// URLs, fetched round-robin.
    pub urls: Vec<String>,
    /// Protocol.
    pub protocol: Protocol,
    /// Connections.
    pub connections: usize,
    /// Requests in flight per connection (h2, h3).
    pub streams: usize,
    /// How long to run.
    pub duration: Duration,
    /// How servers' certificates are checked.
    pub trust: Trust,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    /// Protocol used.
    pub protocol: Protocol,
    /// Completed requests with a 2xx status and a complete body.
    pub requests: u64,
    /// Failed requests (errors, non-2xx, short bodies).
    pub errors: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Gbit/s of body.
    pub gbit_per_sec: f64,
    /// Latency to the end of the body, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
}

/// One worker's tally.
struct Tally {
    latency: Histogram<u64>,
    requests: u64,
    errors: u64,
    bytes: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            requests: 0,
            errors: 0,
            bytes: 0,
        }
    }

    fn record(&mut self, started: Instant, outcome: anyhow::Result<u64>) {
        match outcome {
            Ok(bytes) => {
                self.requests += 1;
                self.bytes += bytes;
                let micros = started.elapsed().as_micros().max(1) as u64;
                let _ = self.latency.record(micros.min(60_000_000));
            }
            Err(_) => self.errors += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.errors += other.errors;
        self.bytes += other.bytes;
    }
}

/// Runs `plan` and reports; fails before starting when the target cannot be reached.
pub async fn run(plan: FetchPlan) -> anyhow::Result<FetchReport> {
    if plan.urls.is_empty() {
        bail!("no URL to fetch");
    }
    let started = Instant::now();
    let deadline = started + plan.duration;
    let per_conn = if plan.protocol == Protocol::H1 {
        1
    } else {
        plan.streams.max(1)
    };
    let mut tasks = Vec::new();
    for c in 0..plan.connections.max(1) {
        let plan = plan.clone();
        match plan.protocol {
            Protocol::H1 | Protocol::H2 => {
                let client = http_client(&plan)?;
                for s in 0..per_conn {
                    let (client, urls) = (client.clone(), plan.urls.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut tally = Tally::new();
                        let mut i = c * per_conn + s;
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            tally.record(t, fetch_reqwest(&client, &urls[i % urls.len()]).await);
                            i += 1;
                        }
                        tally
                    }));
                }
            }
            Protocol::H3 => {
                let sender = h3_connect(&plan.urls[0], &plan.trust).await?;
                for s in 0..per_conn {
                    let (mut sender, urls) = (sender.clone(), plan.urls.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut tally = Tally::new();
                        let mut i = c * per_conn + s;
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            tally.record(t, fetch_h3(&mut sender, &urls[i % urls.len()]).await);
                            i += 1;
                        }
                        tally
                    }));
                }
            }
        }
    }
    let mut total = Tally::new();
    for t in tasks {
        total.merge(t.await.context("a fetch worker panicked")?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let ms = |q: f64| total.latency.value_at_quantile(q) as f64 / 1000.0;
    Ok(FetchReport {
        protocol: plan.protocol,
        requests: total.requests,
        errors: total.errors,
        bytes: total.bytes,
        seconds,
        requests_per_sec: total.requests as f64 / seconds,
        gbit_per_sec: total.bytes as f64 * 8.0 / seconds / 1e9,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
    })
}

/// One reqwest client per connection: HTTP/1.1 keeps one connection per client with one
/// request at a time; HTTP/2 multiplexes the client's requests on one connection.
fn http_client(plan: &FetchPlan) -> anyhow::Result<reqwest::Client> {
    let mut b = plan
        .trust
        .reqwest(reqwest::Client::builder())?
        .timeout(Duration::from_secs(30));
    b = match plan.protocol {
        Protocol::H2 => b.http2_prior_knowledge(),
        _ => b.http1_only().pool_max_idle_per_host(1),
    };
    Ok(b.build()?)
}

async fn fetch_reqwest(client: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let mut r = client.get(url).send().await?;
    if !r.status().is_success() {
        bail!("status {}", r.status());
    }
    let expected = r.content_length();
    let mut n = 0u64;
    while let Some(chunk) = r.chunk().await? {
        n += chunk.len() as u64;
    }
    if expected.is_some_and(|e| e != n) {
        bail!("short body");
    }
    Ok(n)
}

/// The sending half of an h3 client connection.
pub(crate) type H3Sender = h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>;

/// One QUIC connection with h3 to the URL's host.
pub(crate) async fn h3_connect(url: &str, trust: &Trust) -> anyhow::Result<H3Sender> {
    let uri: http::Uri = url.parse()?;
    let host = uri.host().context("URL without host")?.to_string();
    let port = uri.port_u16().unwrap_or(443);
    let addr: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .context("host has no address")?;
    let mut tls = trust.rustls_config()?;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut endpoint = quinn::Endpoint::client((std::net::Ipv4Addr::UNSPECIFIED, 0).into())?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .stream_receive_window((8u32 << 20).into())
        .receive_window((64u32 << 20).into());
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    endpoint.set_default_client_config(config);
    let conn = endpoint.connect(addr, &host)?.await.context("QUIC handshake")?;
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
    tokio::spawn(async move {
        let _ = futures::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok(sender)
}

async fn fetch_h3(sender: &mut H3Sender, url: &str) -> anyhow::Result<u64> {
    let mut body = h3_request(sender, url).await?;
    let mut n = 0u64;
    while let Some(chunk) = body.chunk().await? {
        n += chunk.len() as u64;
    }
    Ok(n)
}

/// A response body arriving over h3; [`H3Body::chunk`] fails on a short body.
pub(crate) struct H3Body {
    stream: h3::client::RequestStream<h3_quinn::BidiStream<bytes::Bytes>, bytes::Bytes>,
    expected: Option<u64>,
    received: u64,
}

impl H3Body {
    /// The next piece of the body; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> anyhow::Result<Option<bytes::Bytes>> {
        match self.stream.recv_data().await? {
            Some(mut buf) => {
                let bytes = buf.copy_to_bytes(buf.remaining());
                self.received += bytes.len() as u64;
                Ok(Some(bytes))
            }
            None if self.expected.is_some_and(|e| e != self.received) => bail!("short body"),
            None => Ok(None),
        }
    }
}

/// Sends a GET for `url` on an h3 connection; a non-2xx status is an error.
pub(crate) async fn h3_request(sender: &mut H3Sender, url: &str) -> anyhow::Result<H3Body> {
    let request = http::Request::get(url).body(())?;
    let mut stream = sender.send_request(request).await?;
    stream.finish().await?;
    let response = stream.recv_response().await?;
    if !response.status().is_success() {
        bail!("status {}", response.status());
    }
    let expected = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    Ok(H3Body {
        stream,
        expected,
        received: 0,
    })
}
