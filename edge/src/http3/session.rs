//! One HTTP/3 request stream as a pingora downstream session (pingora's custom `Session`
//! trait, hidden in its docs and pinned with pingora's version), so that an h3 request goes
//! through the very same `ProxyHttp` path, cache, lock and metrics as HTTP/1.1 and HTTP/2.

use crate::response_tasks::ResponseTasks;
use async_trait::async_trait;
use bytes::{Buf, Bytes};
use futures::Stream;
use h3::server::RequestStream;
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::Digest;
use pingora::protocols::http::HttpTask;
use pingora::protocols::http::custom::CustomMessageWrite;
use pingora::protocols::http::custom::server::Session;
use pingora::protocols::http::date::get_cached_date;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::{Error, ErrorType, Result};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The h3 stream type quinn gives us.
pub type H3Stream = RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// The response half of a request stream, owned by its writer task.
type ResponseStream = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// The request half of a request stream, read by the session.
type RequestBody = RequestStream<h3_quinn::RecvStream, Bytes>;

/// Writes queued for the writer task beyond the one it is sending. Small: the writer exists to
/// make waiting on the client cancellable, not to buffer; what the client has not taken yet
/// stays in the cache.
const QUEUED_WRITES: usize = 4;

/// Response fields that belong to an HTTP/1.1 connection and must not appear in HTTP/3
/// (RFC 9114 section 4.2).
const CONNECTION_FIELDS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// One write for the writer task.
enum Write {
    Head(http::Response<()>),
    Data(Bytes),
    /// Trailers, which end the response.
    Trailers(HeaderMap),
    /// Nothing but the end of the response.
    End,
}

impl Write {
    /// What is written, for errors.
    fn what(&self) -> &'static str {
        match self {
            Write::Head(_) => "response head",
            Write::Data(_) => "body",
            Write::Trailers(_) => "trailers",
            Write::End => "finish",
        }
    }
}

/// A write and how it is to be done.
struct Order {
    write: Write,
    /// Whether the response ends after this write.
    end: bool,
    timeout: Option<Duration>,
}

/// Why the writer task stopped short of the end of the response.
#[derive(Debug, Clone)]
struct WriteFailure {
    kind: ErrorType,
    what: String,
}

impl WriteFailure {
    fn into_error(self) -> Box<Error> {
        Error::explain(self.kind, self.what).into_down()
    }
}

/// A downstream session over one h3 request stream.
///
/// Responses are written by a task of their own that owns the stream's sending half, fed
/// through a small queue. h3's sends cannot be cancelled safely (a cancelled send leaves its
/// frame half-queued and the next one fails), and pingora must be able to stop waiting on a
/// slow client to go on filling the cache: with the writer in its own task, the session only
/// ever waits for room in the queue, which is safe to abandon (pingora's "proxy tasks").
pub struct H3Session {
    req: RequestHeader,
    body: RequestBody,
    /// The writer task's queue; `None` once the end of the response was handed to it.
    orders: Option<mpsc::Sender<Order>>,
    writer: Option<JoinHandle<std::result::Result<(), WriteFailure>>>,
    /// Tells the writer to reset the stream at once.
    abandon: CancellationToken,
    /// Proxy tasks pingora queued and the write built from the first of them, not yet handed
    /// to the writer (kept here so that a cancelled `write_proxy_tasks` loses nothing).
    proxy_tasks: VecDeque<HttpTask>,
    next_order: Option<Order>,
    proxy_tasks_enabled: bool,
    response: Option<ResponseHeader>,
    /// Whether the end of the response has been queued (or the response abandoned).
    ended: bool,
    /// Whether the request body has been read to its end.
    body_done: bool,
    /// Response body bytes handed to the writer.
    body_sent: usize,
    body_read: usize,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    drain_timeout: Option<Duration>,
    client: Option<SocketAddr>,
    server: Option<SocketAddr>,
}

impl H3Session {
    /// A session for `req` arriving on `stream` from `client` at `server`. Spawns the stream's
    /// writer task on the current runtime.
    pub fn new(
        req: RequestHeader,
        stream: H3Stream,
        client: std::net::SocketAddr,
        server: Option<std::net::SocketAddr>,
    ) -> Self {
        // A GET or HEAD without a declared length carries no body; anything else is read.
        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body_done =
            matches!(req.method, http::Method::GET | http::Method::HEAD) && declared.unwrap_or(0) == 0;
        let (send, body) = stream.split();
        let (orders, queue) = mpsc::channel(QUEUED_WRITES);
        let abandon = CancellationToken::new();
        let writer = tokio::spawn(write_response(
            ResetUnlessEnded {
                stream: send,
                ended: false,
            },
            queue,
            abandon.clone(),
        ));
        Self {
            req,
            body,
            orders: Some(orders),
            writer: Some(writer),
            abandon,
            proxy_tasks: VecDeque::new(),
            next_order: None,
            proxy_tasks_enabled: false,
            response: None,
            ended: false,
            body_done,
            body_sent: 0,
            body_read: 0,
            read_timeout: None,
            write_timeout: None,
            drain_timeout: None,
            client: Some(SocketAddr::Inet(client)),
            server: server.map(SocketAddr::Inet),
        }
    }

    /// The write for one response task, or `None` if it writes nothing. Takes note of the
    /// response head and the end.
    fn order_for(&mut self, task: HttpTask) -> Result<Option<Order>> {
        let (write, end) = match task {
            HttpTask::Header(head, end) => {
                // Only an informational head may precede the final one.
                if self.response.is_some() && !head.status.is_informational() {
                    return Err(Error::explain(
                        ErrorType::InternalError,
                        "h3 response head sent twice",
                    ));
                }
                let mut parts = head.as_owned_parts();
                for name in CONNECTION_FIELDS {
                    parts.headers.remove(*name);
                }
                // As pingora's HTTP/1.1 and HTTP/2 sessions do: the edge dates what it sends.
                parts.headers.insert(http::header::DATE, get_cached_date());
                parts.version = http::Version::HTTP_3;
                if !head.status.is_informational() {
                    self.response = Some(*head);
                }
                (Write::Head(http::Response::from_parts(parts, ())), end)
            }
            HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => match data {
                Some(data) if !data.is_empty() => {
                    self.body_sent += data.len();
                    (Write::Data(data), end)
                }
                _ if end => (Write::End, true),
                _ => return Ok(None),
            },
            HttpTask::Trailer(Some(trailers)) => (Write::Trailers(*trailers), true),
            HttpTask::Trailer(None) | HttpTask::Done => (Write::End, true),
            HttpTask::Failed(e) => return Err(e),
        };
        if self.ended {
            // A repeated end is harmless; anything else after the end is a bug upstream of us.
            return match write {
                Write::End => Ok(None),
                _ => Err(Error::explain(
                    ErrorType::InternalError,
                    "h3 response written after its end",
                )),
            };
        }
        self.ended = end;
        Ok(Some(Order {
            write,
            end,
            timeout: self.write_timeout,
        }))
    }

    /// Hands `next_order` to the writer once its queue has room. Cancel-safe: until then the
    /// order stays where it is.
    async fn hand_over(&mut self) -> Result<()> {
        let Some(orders) = self.orders.as_ref() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "h3 response written after its end",
            ));
        };
        let handed_end = match orders.reserve().await {
            Ok(room) => {
                let order = self.next_order.take().expect("an order to hand over");
                let end = order.end;
                room.send(order);
                Some(end)
            }
            Err(_) => None,
        };
        match handed_end {
            Some(true) => self.orders = None,
            Some(false) => {}
            // The writer stopped: the client went away, or a write failed or timed out.
            None => return Err(self.write_failure().await),
        }
        Ok(())
    }

    /// Why the writer task stopped (it has, or is about to).
    async fn write_failure(&mut self) -> Box<Error> {
        self.ended = true;
        self.orders = None;
        let failure = match self.writer.as_mut() {
            Some(writer) => match writer.await {
                Ok(Err(failure)) => failure,
                Ok(Ok(())) => WriteFailure {
                    kind: ErrorType::InternalError,
                    what: "h3 response written after its end".into(),
                },
                Err(e) => WriteFailure {
                    kind: ErrorType::WriteError,
                    what: format!("h3 response writer: {e}"),
                },
            },
            None => WriteFailure {
                kind: ErrorType::WriteError,
                what: "h3 response writer gone".into(),
            },
        };
        self.writer = None;
        failure.into_error()
    }

    /// Ends the response and waits until the writer has handed all of it to QUIC.
    async fn end(&mut self) -> Result<()> {
        self.write_now(HttpTask::Done).await?;
        self.orders = None;
        match self.writer.as_mut() {
            Some(writer) => {
                let done = writer.await;
                self.writer = None;
                match done {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(failure)) => Err(failure.into_error()),
                    Err(e) => Err(
                        Error::explain(ErrorType::WriteError, format!("h3 response writer: {e}")).into_down(),
                    ),
                }
            }
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ResponseTasks for H3Session {
    fn queue(&self) -> &VecDeque<HttpTask> {
        &self.proxy_tasks
    }

    fn queue_mut(&mut self) -> &mut VecDeque<HttpTask> {
        &mut self.proxy_tasks
    }

    fn take(&mut self, task: HttpTask) -> Result<()> {
        self.next_order = self.order_for(task)?;
        Ok(())
    }

    fn holding(&self) -> bool {
        self.next_order.is_some()
    }

    async fn send_held(&mut self) -> Result<()> {
        if self.next_order.is_some() {
            self.hand_over().await?;
        }
        Ok(())
    }

    fn ended(&self) -> bool {
        self.ended
    }
}

/// The sending half of a stream that resets itself when dropped before the response ended:
/// quinn finishes a dropped stream, and a cut body would look complete (a writer task dropped
/// at shutdown, say).
struct ResetUnlessEnded {
    stream: ResponseStream,
    ended: bool,
}

impl Drop for ResetUnlessEnded {
    fn drop(&mut self) {
        if !self.ended {
            self.stream.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
        }
    }
}

/// The writer task: sends the session's writes in order, each within its timeout, and ends
/// the stream after the last. A session that goes away without queueing the end, or asks to
/// abandon, gets its stream reset, never a FIN.
async fn write_response(
    mut out: ResetUnlessEnded,
    mut orders: mpsc::Receiver<Order>,
    abandon: CancellationToken,
) -> std::result::Result<(), WriteFailure> {
    let abandoned = || WriteFailure {
        kind: ErrorType::WriteError,
        what: "h3 response abandoned".into(),
    };
    loop {
        let order = tokio::select! {
            biased;
            _ = abandon.cancelled() => return Err(abandoned()),
            order = orders.recv() => order.ok_or_else(abandoned)?,
        };
        let (what, timeout, end) = (order.write.what(), order.timeout, order.end);
        let stream = &mut out.stream;
        let send = async {
            match order.write {
                Write::Head(head) => stream.send_response(head).await?,
                Write::Data(data) => stream.send_data(data).await?,
                Write::Trailers(trailers) => stream.send_trailers(trailers).await?,
                Write::End => {}
            }
            if end {
                stream.finish().await?;
            }
            Ok::<(), h3::error::StreamError>(())
        };
        let sent = tokio::select! {
            biased;
            _ = abandon.cancelled() => return Err(abandoned()),
            sent = within(timeout, send) => sent,
        };
        match sent {
            Some(Ok(())) if end => {
                out.ended = true;
                return Ok(());
            }
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(WriteFailure {
                    kind: ErrorType::WriteError,
                    what: format!("h3 {what}: {e}"),
                });
            }
            None => {
                return Err(WriteFailure {
                    kind: ErrorType::WriteTimedout,
                    what: format!("h3 {what}"),
                });
            }
        }
    }
}
/// `f`'s outcome, or `None` if it took longer than `timeout`.
async fn within<T>(timeout: Option<Duration>, f: impl Future<Output = T>) -> Option<T> {
    match timeout {
        Some(t) => tokio::time::timeout(t, f).await.ok(),
        None => Some(f.await),
    }
}

#[async_trait]
impl Session for H3Session {
    fn req_header(&self) -> &RequestHeader {
        &self.req
    }

    fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }

    async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        if self.body_done {
            return Ok(None);
        }
        let read = self.body.recv_data();
        let chunk = match self.read_timeout {
            Some(t) => tokio::time::timeout(t, read)
                .await
                .map_err(|_| Error::explain(ErrorType::ReadTimedout, "h3 request body").into_down())?,
            None => read.await,
        }
        .map_err(|e| Error::explain(ErrorType::ReadError, format!("h3 request body: {e}")).into_down())?;
        match chunk {
            Some(mut buf) => {
                let bytes = buf.copy_to_bytes(buf.remaining());
                self.body_read += bytes.len();
                Ok(Some(bytes))
            }
            None => {
                self.body_done = true;
                Ok(None)
            }
        }
    }

    async fn drain_request_body(&mut self) -> Result<()> {
        while self.read_body_bytes().await?.is_some() {}
        Ok(())
    }

    async fn write_response_header(&mut self, resp: Box<ResponseHeader>, end: bool) -> Result<()> {
        self.write_now(HttpTask::Header(resp, end)).await
    }

    async fn write_response_header_ref(&mut self, resp: &ResponseHeader, end: bool) -> Result<()> {
        self.write_now(HttpTask::Header(Box::new(resp.clone()), end))
            .await
    }

    async fn write_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        self.write_now(HttpTask::Body(Some(data), end)).await
    }

    async fn write_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        self.write_now(HttpTask::Trailer(Some(Box::new(trailers)))).await
    }

    async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        self.write_all(tasks).await
    }

    fn proxy_tasks_enabled(&self) -> bool {
        self.proxy_tasks_enabled
    }

    fn set_proxy_tasks_enabled(&mut self, enabled: bool) {
        self.proxy_tasks_enabled = enabled;
    }

    fn send_proxy_task(&mut self, task: HttpTask) {
        self.proxy_tasks.push_back(task);
    }

    fn has_pending_proxy_tasks(&self) -> bool {
        self.pending()
    }

    async fn write_proxy_tasks(&mut self) -> Result<bool> {
        self.write_queued().await
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    fn get_read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    fn get_write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    fn set_total_drain_timeout(&mut self, timeout: Option<Duration>) {
        self.drain_timeout = timeout;
    }

    fn get_total_drain_timeout(&self) -> Option<Duration> {
        self.drain_timeout
    }

    fn request_summary(&self) -> String {
        format!(
            "{} {}, Host: {} (h3)",
            self.req.method,
            self.req.uri,
            self.req
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
        )
    }

    fn response_written(&self) -> Option<&ResponseHeader> {
        self.response.as_ref()
    }

    async fn shutdown(&mut self, _code: u32, _ctx: &str) {
        // Called once the response is complete; a response that is not must not look it.
        if !self.ended {
            self.abandon("shutdown before the end of the response").await;
        }
    }

    async fn abandon(&mut self, _ctx: &str) {
        // A reset stream, never a FIN: the client must not take a cut body for a whole one.
        self.ended = true;
        self.orders = None;
        self.next_order = None;
        self.proxy_tasks.clear();
        self.abandon.cancel();
    }

    fn is_body_done(&mut self) -> bool {
        self.body_done
    }

    async fn finish(&mut self) -> Result<()> {
        self.end().await
    }

    fn is_body_empty(&mut self) -> bool {
        self.body_done && self.body_read == 0
    }

    async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        if no_body_expected || self.body_done {
            // Nothing more will come from the client on this stream; pingora waits on this
            // beside the upstream, so it must simply never resolve.
            std::future::pending::<()>().await;
        }
        self.read_body_bytes().await
    }

    fn body_bytes_sent(&self) -> usize {
        self.body_sent
    }

    fn body_bytes_read(&self) -> usize {
        self.body_read
    }

    fn digest(&self) -> Option<&Digest> {
        None
    }

    fn digest_mut(&mut self) -> Option<&mut Digest> {
        None
    }

    fn client_addr(&self) -> Option<&SocketAddr> {
        self.client.as_ref()
    }

    fn server_addr(&self) -> Option<&SocketAddr> {
        self.server.as_ref()
    }

    fn pseudo_raw_h1_request_header(&self) -> Bytes {
        let mut raw = format!("{} {} HTTP/1.1\r\n", self.req.method, self.req.uri);
        for (name, value) in self.req.headers.iter() {
            raw.push_str(name.as_str());
            raw.push_str(": ");
            raw.push_str(value.to_str().unwrap_or(""));
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        Bytes::from(raw)
    }

    fn enable_retry_buffering(&mut self) {}

    fn retry_buffer_truncated(&self) -> bool {
        // Nothing is buffered; only bodiless requests may be retried upstream.
        !self.is_body_empty_ref()
    }

    fn get_retry_buffer(&self) -> Option<Bytes> {
        None
    }

    async fn finish_custom(&mut self) -> Result<()> {
        Ok(())
    }

    fn take_custom_message_reader(
        &mut self,
    ) -> Option<Box<dyn Stream<Item = Result<Bytes>> + Unpin + Send + Sync + 'static>> {
        None
    }

    fn restore_custom_message_reader(
        &mut self,
        _reader: Box<dyn Stream<Item = Result<Bytes>> + Unpin + Send + Sync + 'static>,
    ) -> Result<()> {
        Ok(())
    }

    fn take_custom_message_writer(&mut self) -> Option<Box<dyn CustomMessageWrite>> {
        None
    }

    fn restore_custom_message_writer(&mut self, _writer: Box<dyn CustomMessageWrite>) -> Result<()> {
        Ok(())
    }
}

impl Drop for H3Session {
    /// pingora drops a session whose response failed midway without calling `abandon`: have
    /// the writer reset the stream now rather than after what it still has queued. A response
    /// whose end was queued is left to finish.
    fn drop(&mut self) {
        if !self.ended || self.orders.is_some() {
            self.abandon.cancel();
        }
    }
}

impl H3Session {
    fn is_body_empty_ref(&self) -> bool {
        self.body_done && self.body_read == 0
    }
}
