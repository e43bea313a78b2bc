//! HTTP/2 request streams served through a pingora custom session of ours that offers
//! cancel-safe writes (pingora's "proxy tasks"), which pingora 0.9's own HTTP/2 session lacks.
//!
//! Without them pingora's fill loop waits on the client of the miss whenever that client's
//! flow-control window is shut, and stops pulling the upstream body: the cache fill, and every
//! request following it, would go at that client's pace. pingora still accepts the connection
//! and each stream (handshake, settings, GOAWAY at shutdown); `H2Streams` only swaps each
//! stream's session for an `H2Session` before the proxy sees it. That session reads the
//! request and writes the response head through pingora's, and sends the body itself: h2
//! buffers what it is given, and waiting for window (`poll_capacity`) can be dropped and
//! resumed without losing anything, so the bytes not yet sent stay in the session.

use crate::response_tasks::ResponseTasks;
use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::Digest;
use pingora::protocols::Stream as ClientStream;
use pingora::protocols::http::HttpTask;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::custom::CustomMessageWrite;
use pingora::protocols::http::custom::server::Session;
use pingora::protocols::http::v2::server::{H2Options, HttpSession};
use pingora::protocols::l4::socket::SocketAddr;
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorType, Result};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// An HTTP app whose HTTP/2 streams reach it as [`H2Session`]s; everything else passes as is.
pub struct H2Streams<A> {
    app: Arc<A>,
}

impl<A> H2Streams<A> {
    /// Wraps `app`.
    pub fn new(app: Arc<A>) -> Self {
        Self { app }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> HttpServerApp for H2Streams<A> {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let session = match session {
            ServerSession::H2(h2) => ServerSession::new_custom(Box::new(H2Session::new(h2))),
            other => other,
        };
        self.app.process_new_http(session, shutdown).await
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.app.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.app.server_options()
    }

    async fn http_cleanup(&self) {
        self.app.http_cleanup().await
    }

    async fn process_custom_session(
        self: Arc<Self>,
        stream: ClientStream,
        shutdown: &ShutdownWatch,
    ) -> Option<ClientStream> {
        Arc::clone(&self.app)
            .process_custom_session(stream, shutdown)
            .await
    }
}

/// One HTTP/2 request stream: pingora's session for the request and the response head, the
/// stream's body writer for the rest.
pub struct H2Session {
    inner: HttpSession,
    /// The response body's stream, taken from `inner` once the head is out.
    body: Option<h2::SendStream<Bytes>>,
    /// Whether END_STREAM has been given to h2 (or the response abandoned).
    ended: bool,
    body_sent: usize,
    proxy_tasks_enabled: bool,
    proxy_tasks: VecDeque<HttpTask>,
    /// Body bytes taken from a task but not yet given to h2, and whether the response ends
    /// with them.
    unsent: Option<(Bytes, bool)>,
    /// When the write waiting for window gives up; cleared whenever bytes go out.
    deadline: Option<Instant>,
    write_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
}

impl H2Session {
    /// Takes over pingora's session for one stream.
    pub fn new(inner: HttpSession) -> Self {
        Self {
            inner,
            body: None,
            ended: false,
            body_sent: 0,
            proxy_tasks_enabled: false,
            proxy_tasks: VecDeque::new(),
            unsent: None,
            deadline: None,
            write_timeout: None,
            read_timeout: None,
        }
    }

    /// Starts one response task: heads, trailers and the end go to h2 at once (it never waits
    /// for them); body bytes become `unsent`.
    fn start(&mut self, task: HttpTask) -> Result<()> {
        match task {
            HttpTask::Header(head, end) => {
                if self.ended {
                    return Ok(());
                }
                // pingora's session sets Date, drops HTTP/1.1 connection fields, ignores 1xx
                // and a second head.
                self.inner
                    .write_response_header(head, end)
                    .map_err(|e| e.into_down())?;
                if self.inner.response_written().is_some() {
                    if self.body.is_none() {
                        self.body = self.inner.take_response_body_writer();
                    }
                    self.ended |= end;
                }
            }
            HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                if self.ended {
                    return Ok(());
                }
                match data {
                    Some(data) if !data.is_empty() => self.unsent = Some((data, end)),
                    _ if end => self.end_now()?,
                    _ => {}
                }
            }
            HttpTask::Trailer(Some(trailers)) => {
                if self.ended {
                    return Ok(());
                }
                self.body_writer()?
                    .send_trailers(*trailers)
                    .map_err(|e| write_error("trailers", e))?;
                self.ended = true;
            }
            HttpTask::Trailer(None) | HttpTask::Done => self.end_now()?,
            HttpTask::Failed(e) => return Err(e),
        }
        Ok(())
    }

    /// Sends END_STREAM (an empty DATA frame), if the head is out and the end is not.
    fn end_now(&mut self) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        if let Some(body) = self.body.as_mut() {
            body.send_data(Bytes::new(), true)
                .map_err(|e| write_error("end of body", e))?;
            self.ended = true;
        }
        // No head yet: nothing to end; dropping the stream resets it.
        Ok(())
    }

    fn body_writer(&mut self) -> Result<&mut h2::SendStream<Bytes>> {
        self.body
            .as_mut()
            .ok_or_else(|| Error::explain(ErrorType::H2Error, "h2 response body before its head").into_down())
    }

    /// Gives `unsent` to h2 as the client's window opens. Cancel-safe: bytes leave `unsent`
    /// only in the same step as they go to h2, and the deadline survives a cancelled call.
    async fn send_unsent(&mut self) -> Result<()> {
        while let Some((data, end)) = self.unsent.as_mut() {
            let Some(body) = self.body.as_mut() else {
                return Err(
                    Error::explain(ErrorType::H2Error, "h2 response body before its head").into_down(),
                );
            };
            body.reserve_capacity(data.len());
            let window = std::future::poll_fn(|cx| body.poll_capacity(cx));
            let granted = match self.write_timeout {
                Some(t) => {
                    let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + t);
                    tokio::time::timeout_at(deadline, window).await.map_err(|_| {
                        Error::explain(ErrorType::WriteTimedout, format!("h2 body, timeout: {t:?}"))
                            .into_down()
                    })?
                }
                None => window.await,
            };
            let n = match granted {
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(write_error("window", e)),
                None => {
                    return Err(
                        Error::explain(ErrorType::H2Error, "h2 stream closed for sending").into_down()
                    );
                }
            };
            if n == 0 {
                continue;
            }
            let chunk = data.split_to(n.min(data.len()));
            let last = data.is_empty();
            let end_here = last && *end;
            let len = chunk.len();
            body.send_data(chunk, end_here)
                .map_err(|e| write_error("body", e))?;
            self.body_sent += len;
            self.deadline = None;
            if last {
                self.unsent = None;
                self.ended |= end_here;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ResponseTasks for H2Session {
    fn queue(&self) -> &VecDeque<HttpTask> {
        &self.proxy_tasks
    }

    fn queue_mut(&mut self) -> &mut VecDeque<HttpTask> {
        &mut self.proxy_tasks
    }

    fn take(&mut self, task: HttpTask) -> Result<()> {
        self.start(task)
    }

    fn holding(&self) -> bool {
        self.unsent.is_some()
    }

    async fn send_held(&mut self) -> Result<()> {
        self.send_unsent().await
    }

    fn ended(&self) -> bool {
        self.ended
    }
}

fn write_error(what: &str, e: h2::Error) -> Box<Error> {
    Error::explain(ErrorType::WriteError, format!("h2 {what}: {e}")).into_down()
}

#[async_trait]
impl Session for H2Session {
    fn req_header(&self) -> &RequestHeader {
        self.inner.req_header()
    }

    fn req_header_mut(&mut self) -> &mut RequestHeader {
        self.inner.req_header_mut()
    }

    async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        match self.read_timeout {
            Some(t) => tokio::time::timeout(t, self.inner.read_body_bytes())
                .await
                .map_err(|_| Error::explain(ErrorType::ReadTimedout, "h2 request body").into_down())?,
            None => self.inner.read_body_bytes().await,
        }
    }

    async fn drain_request_body(&mut self) -> Result<()> {
        self.inner.drain_request_body().await
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
        self.inner.set_total_drain_timeout(timeout);
    }

    fn get_total_drain_timeout(&self) -> Option<Duration> {
        self.inner.get_total_drain_timeout()
    }

    fn request_summary(&self) -> String {
        self.inner.request_summary()
    }

    fn response_written(&self) -> Option<&ResponseHeader> {
        self.inner.response_written()
    }

    async fn shutdown(&mut self, _code: u32, _ctx: &str) {
        // Called once the response is complete; a response that is not must not look it.
        if !self.ended {
            self.abandon("shutdown before the end of the response").await;
        }
    }

    async fn abandon(&mut self, _ctx: &str) {
        // RST_STREAM, never END_STREAM: the client must not take a cut body for a whole one.
        if !self.ended {
            self.ended = true;
            self.unsent = None;
            self.proxy_tasks.clear();
            self.inner.shutdown();
        }
    }

    fn is_body_done(&mut self) -> bool {
        self.inner.is_body_done()
    }

    async fn finish(&mut self) -> Result<()> {
        self.write_now(HttpTask::Done).await
    }

    fn is_body_empty(&mut self) -> bool {
        self.inner.is_body_empty()
    }

    async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        // pingora's session waits for the client's reset on the response handle, which h2
        // refuses once the head is out (it expects the body stream, which we now hold).
        if let Some(body) = self.body.as_mut()
            && (no_body_expected || self.inner.is_body_done())
        {
            let reason = std::future::poll_fn(|cx| body.poll_reset(cx))
                .await
                .map_err(|e| Error::because(ErrorType::H2Error, "downstream error while idling", e))?;
            return Error::e_explain(
                ErrorType::H2Error,
                format!("client closed the h2 stream: {reason}"),
            );
        }
        self.inner.read_body_or_idle(no_body_expected).await
    }

    fn body_bytes_sent(&self) -> usize {
        self.body_sent
    }

    fn body_bytes_read(&self) -> usize {
        self.inner.body_bytes_read()
    }

    fn digest(&self) -> Option<&Digest> {
        self.inner.digest()
    }

    fn digest_mut(&mut self) -> Option<&mut Digest> {
        self.inner.digest_mut()
    }

    fn client_addr(&self) -> Option<&SocketAddr> {
        self.inner.client_addr()
    }

    fn server_addr(&self) -> Option<&SocketAddr> {
        self.inner.server_addr()
    }

    fn pseudo_raw_h1_request_header(&self) -> Bytes {
        self.inner.pseudo_raw_h1_request_header()
    }

    fn enable_retry_buffering(&mut self) {
        self.inner.enable_retry_buffering()
    }

    fn retry_buffer_truncated(&self) -> bool {
        self.inner.retry_buffer_truncated()
    }

    fn get_retry_buffer(&self) -> Option<Bytes> {
        self.inner.get_retry_buffer()
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
