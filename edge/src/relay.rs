//! The resuming relay: an in-process HTTP/1.1 hop, over in-memory pipes (`RelayConnector`),
//! through which the proxy sends GET and HEAD misses. It fetches from the upstream the proxy chose and,
//! when that upstream fails in the middle of a body, continues the same response from the
//! next candidate with a `Range` request (`resume.rs` decides what to ask and what may be
//! spliced), so the client (and the cache fill) sees one intact response. pingora cannot
//! replace an upstream once a response has started, hence this hop.
//!
//! The proxy names the candidates in the `strata-relay` request header, the chosen one first.
//! A failure before the response head closes the connection without an answer, so pingora
//! sees the same upstream error it would have seen directly and moves to its next candidate.

use crate::body_channel::{BodyChannel, BodySender};
use crate::health::Source;
use crate::metrics::EdgeMetrics;
use crate::parent_select::Target;
use crate::resume::{self, Validator};
use crate::upstreams::Upstreams;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pingora::connectors::L4Connect;
use pingora::prelude::HttpPeer;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The request header that carries the candidates from the proxy to the relay.
pub const RELAY_HEADER: &str = "strata-relay";

/// Fields that belong to one connection, not to the message (RFC 9110 section 7.6.1).
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// How much one direction of a proxy-to-relay connection buffers.
const PIPE_BYTES: usize = 256 << 10;

/// pingora's way to the relay: each connection it opens is an in-memory pipe whose other end
/// the relay serves, so the hop costs no socket, no system call and no kernel copy.
pub struct RelayConnector {
    relay: Arc<Relay>,
    /// This relay's name as a peer address, in pingora's logs and pool keys. Pipes are not
    /// pooled (one exchange each), but a name per relay keeps the roles that share a process
    /// in the demo apart should that change.
    label: String,
}

impl std::fmt::Debug for RelayConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayConnector")
    }
}

impl RelayConnector {
    /// Connections to `relay`; its side of each runs on the relay's runtime.
    pub fn new(relay: Arc<Relay>) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let label = format!("strata-relay-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        Self { relay, label }
    }

    /// The relay this connects to.
    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// An upstream peer that reaches the relay through this connector. The address only
    /// names the relay in pingora's logs and connection pool; nothing is bound there.
    pub fn peer(self: &Arc<Self>) -> pingora::Result<HttpPeer> {
        let mut peer = HttpPeer::new_uds(&self.label, false, String::new())?;
        peer.options.custom_l4 = Some(Arc::clone(self) as Arc<dyn L4Connect + Send + Sync>);
        Ok(peer)
    }
}

#[async_trait::async_trait]
impl L4Connect for RelayConnector {
    async fn connect(&self, _addr: &pingora::protocols::l4::socket::SocketAddr) -> pingora::Result<Stream> {
        let (proxy_end, relay_end) = tokio::io::duplex(PIPE_BYTES);
        self.relay.runtime.spawn(Arc::clone(&self.relay).serve(relay_end));
        Ok(VirtualSocketStream::new(Box::new(Pipe(proxy_end))).into())
    }
}

/// The proxy's end of a connection to the relay, as pingora's virtual socket.
#[derive(Debug)]
struct Pipe(tokio::io::DuplexStream);

impl VirtualSocket for Pipe {
    fn set_socket_option(&self, _opt: VirtualSockOpt) -> std::io::Result<()> {
        Ok(()) // no delay and keepalive mean nothing in memory
    }
}

impl tokio::io::AsyncRead for Pipe {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Pipe {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The candidates as the header carries them: `p1,p0,o0` (parent 1, parent 0, origin 0).
pub fn encode_targets(targets: impl IntoIterator<Item = Target>) -> String {
    targets
        .into_iter()
        .map(|t| match t {
            Target::Parent(i) => format!("p{i}"),
            Target::Origin(i) => format!("o{i}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses [`encode_targets`]'s output; `None` if any member is malformed.
pub fn decode_targets(value: &str) -> Option<Vec<Target>> {
    value
        .split(',')
        .map(|m| {
            let m = m.trim();
            let index = m.get(1..)?.parse().ok()?;
            match m.as_bytes().first()? {
                b'p' => Some(Target::Parent(index)),
                b'o' => Some(Target::Origin(index)),
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()
        .filter(|t| !t.is_empty())
}

/// Why the relay gave up before a response head; hyper then closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The proxy's request did not name valid candidates.
    #[error("bad {RELAY_HEADER} header")]
    BadTargets,
    /// The upstream failed before its response head.
    #[error("upstream: {0}")]
    Upstream(String),
}

/// The relay's shared state.
pub struct Relay {
    upstreams: Arc<Upstreams>,
    client: Client<HttpConnector, Empty<Bytes>>,
    read_timeout: Duration,
    /// How many further upstreams a failed body may be resumed from.
    max_resumes: u32,
    metrics: EdgeMetrics,
    /// Where the relay's work runs (its side of the pipes, its upstream connections): the
    /// edge's support runtime. On pingora's worker threads instead, Zipf gains about 5-9%
    /// requests/s but the herd's median loses 15-20 ms (bench/README.md). (The demo test's
    /// hang once blamed on that placement was a fill stalled by a client that stopped
    /// reading, fixed in `proxy.rs`.)
    runtime: tokio::runtime::Handle,
}

/// What a resume needs to know about the original request and response.
struct Original {
    targets: Vec<Target>,
    current: usize,
    path_and_query: String,
    headers: HeaderMap,
    validator: Option<Validator>,
    total: Option<u64>,
    resumable: bool,
}

impl Relay {
    /// A relay over `upstreams`.
    pub fn new(
        upstreams: Arc<Upstreams>,
        connect_timeout: Duration,
        read_timeout: Duration,
        max_resumes: u32,
        metrics: EdgeMetrics,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            upstreams,
            client,
            read_timeout,
            max_resumes,
            metrics,
            runtime,
        }
    }

    /// Serves one connection from the proxy.
    async fn serve<S>(self: Arc<Self>, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |req| Arc::clone(&self).handle(req));
        // One exchange per pipe: pingora's pool cannot reuse a virtual socket (its reuse
        // check asks the kernel for the peer of a descriptor the pipe does not have, fails,
        // and logs an error). `Connection: close` keeps the pipe out of the pool; the field
        // is taken off again in `upstream_response_filter`.
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<BodyChannel>, RelayError> {
        let (parts, _) = req.into_parts();
        let targets = parts
            .headers
            .get(RELAY_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(decode_targets)
            .ok_or(RelayError::BadTargets)?;
        let mut headers = parts.headers;
        headers.remove(RELAY_HEADER);
        for name in HOP_BY_HOP {
            headers.remove(*name);
        }
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.to_string());
        let response = self
            .send(&parts.method, targets[0], &path_and_query, &headers)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "relay: no response head"))?;
        let (mut head, body) = response.into_parts();
        for name in HOP_BY_HOP {
            head.headers.remove(*name);
        }
        let total = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let original = Original {
            resumable: parts.method == Method::GET && head.status == StatusCode::OK,
            validator: Validator::of(&head.headers),
            targets,
            current: 0,
            path_and_query,
            headers,
            total,
        };
        let (tx, channel) = BodyChannel::new(4);
        tokio::spawn(Arc::clone(&self).pump(body, tx, original));
        Ok(Response::from_parts(head, channel))
    }

    /// Sends one request to `target` and waits (bounded) for its response head.
    async fn send(
        &self,
        method: &Method,
        target: Target,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, RelayError> {
        let node = self.upstreams.node(target);
        let addr = self
            .upstreams
            .addr(target)
            .await
            .map_err(|e| RelayError::Upstream(format!("{} {}: {e}", node.kind, node.label)))?;
        let uri = format!("http://{addr}{path_and_query}");
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Empty::new())
            .map_err(|e| RelayError::Upstream(e.to_string()))?;
        *request.headers_mut() = headers.clone();
        if matches!(target, Target::Origin(_)) {
            // An origin is addressed by its own name; parents keep the players' Host.
            let host = HeaderValue::from_str(&node.url.authority)
                .map_err(|e| RelayError::Upstream(e.to_string()))?;
            request.headers_mut().insert(header::HOST, host);
        }
        match tokio::time::timeout(self.read_timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(RelayError::Upstream(format!("{} {}: {e}", node.kind, node.label))),
            Err(_) => Err(RelayError::Upstream(format!(
                "{} {}: timed out",
                node.kind, node.label
            ))),
        }
    }

    /// Streams `body` into `tx`; when the upstream fails mid-body, continues from the next
    /// candidate, or aborts the response (the client sees a cut transfer, never wrong bytes).
    async fn pump(self: Arc<Self>, mut body: Incoming, mut tx: BodySender, mut original: Original) {
        let mut delivered: u64 = 0;
        let mut resumes = 0;
        loop {
            let failure = match tokio::time::timeout(self.read_timeout, body.frame()).await {
                Ok(None) => return,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        delivered += data.len() as u64;
                        if tx.send_data(data).await.is_err() {
                            return; // the proxy went away; nothing to deliver to
                        }
                    }
                    continue;
                }
                Ok(Some(Err(e))) => e.to_string(),
                Err(_) => "timed out".to_string(),
            };
            let failed = original.targets[original.current];
            self.upstreams.report(failed, false, Source::Traffic);
            let node = self.upstreams.node(failed);
            tracing::warn!(kind = node.kind, upstream = %node.label, delivered, error = %failure, "upstream failed mid-body");
            match self.resume(&mut original, delivered, &mut resumes).await {
                Some(next) => {
                    self.metrics.resumed.inc();
                    body = next;
                }
                None => {
                    self.metrics.resume_failures.inc();
                    tx.abort(std::io::Error::other(format!(
                        "upstream failed mid-body: {failure}"
                    )))
                    .await;
                    return;
                }
            }
        }
    }

    /// Asks the next candidates, in order, for the rest of the object.
    async fn resume(&self, original: &mut Original, delivered: u64, resumes: &mut u32) -> Option<Incoming> {
        let validator = original.validator.clone().filter(|_| original.resumable)?;
        while *resumes < self.max_resumes {
            *resumes += 1;
            original.current = (original.current + 1) % original.targets.len();
            let target = original.targets[original.current];
            let mut headers = original.headers.clone();
            headers.insert(
                header::RANGE,
                HeaderValue::from_str(&resume::range_after(delivered)).ok()?,
            );
            headers.insert(
                header::IF_RANGE,
                HeaderValue::from_str(validator.if_range()).ok()?,
            );
            let node = self.upstreams.node(target);
            let response = match self
                .send(&Method::GET, target, &original.path_and_query, &headers)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    self.upstreams.report(target, false, Source::Traffic);
                    tracing::warn!(error = %e, "resume attempt failed");
                    continue;
                }
            };
            match resume::continues(
                response.status(),
                response.headers(),
                delivered,
                original.total,
                &validator,
            ) {
                Ok(()) => {
                    tracing::info!(kind = node.kind, upstream = %node.label, from = delivered, "response resumed");
                    return Some(response.into_body());
                }
                Err(why) => {
                    tracing::warn!(kind = node.kind, upstream = %node.label, %why, "cannot resume from here")
                }
            }
        }
        None
    }

    /// Bytes `first..end` of the `total`-byte representation `validator` names, from the
    /// first of `targets` that answers exactly those (`Range` with `If-Range`); for a stored
    /// copy that cannot be read to its end (`hit_repair.rs`). Each target is asked once.
    pub async fn fetch_between(
        self: &Arc<Self>,
        targets: &[Target],
        path_and_query: &str,
        headers: &HeaderMap,
        span: (u64, u64, u64),
        validator: &Validator,
    ) -> Result<Incoming, String> {
        // On the relay's runtime, where its upstream connections live (see `runtime`).
        let (relay, targets, path) = (Arc::clone(self), targets.to_vec(), path_and_query.to_string());
        let (headers, validator) = (headers.clone(), validator.clone());
        self.runtime
            .spawn(async move {
                relay
                    .fetch_between_here(&targets, &path, &headers, span, &validator)
                    .await
            })
            .await
            .map_err(|e| e.to_string())?
    }

    async fn fetch_between_here(
        &self,
        targets: &[Target],
        path_and_query: &str,
        headers: &HeaderMap,
        (first, end, total): (u64, u64, u64),
        validator: &Validator,
    ) -> Result<Incoming, String> {
        let mut headers = headers.clone();
        let range = HeaderValue::from_str(&resume::range_between(first, end)).map_err(|e| e.to_string())?;
        headers.insert(header::RANGE, range);
        let if_range = HeaderValue::from_str(validator.if_range()).map_err(|e| e.to_string())?;
        headers.insert(header::IF_RANGE, if_range);
        let mut why = String::from("no upstream to ask");
        for &target in targets {
            let node = self.upstreams.node(target);
            match self.send(&Method::GET, target, path_and_query, &headers).await {
                Ok(response) => {
                    match resume::answers_between(
                        response.status(),
                        response.headers(),
                        first,
                        end,
                        total,
                        validator,
                    ) {
                        Ok(()) => return Ok(response.into_body()),
                        Err(e) => why = format!("{} {}: {e}", node.kind, node.label),
                    }
                }
                Err(e) => {
                    self.upstreams.report(target, false, Source::Traffic);
                    why = e.to_string();
                }
            }
        }
        Err(why)
    }

    /// How long one read of an upstream body may take.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn targets_round_trip_and_garbage_is_refused() {
        let t = vec![Target::Parent(1), Target::Parent(0), Target::Origin(0)];
        assert_eq!(encode_targets(t.clone()), "p1,p0,o0");
        assert_eq!(decode_targets("p1, p0,o0"), Some(t));
        for bad in ["", "x1", "p", "p-1", "p1,,o0", "o1x"] {
            assert_eq!(decode_targets(bad), None, "{bad:?}");
        }
    }
}
