//! One HTTP/3 request stream as a pingora downstream session (pingora's custom `Session`
//! trait, hidden in its docs and pinned with pingora's version), so that an h3 request goes
//! through the very same `ProxyHttp` path, cache, lock and metrics as HTTP/1.1 and HTTP/2.

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
use pingora::protocols::l4::socket::SocketAddr;
use pingora::{Error, ErrorType, Result};
use std::time::Duration;

/// The h3 stream type quinn gives us.
pub type H3Stream = RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// Response fields that belong to an HTTP/1.1 connection and must not appear in HTTP/3
/// (RFC 9114 section 4.2).
const CONNECTION_FIELDS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// A downstream session over one h3 request stream.
pub struct H3Session {
    req: RequestHeader,
    stream: H3Stream,
    response: Option<ResponseHeader>,
    /// Whether the response was ended (stream finished) or abandoned.
    closed: bool,
    /// Whether the request body has been read to its end.
    body_done: bool,
    body_sent: usize,
    body_read: usize,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    drain_timeout: Option<Duration>,
    client: Option<SocketAddr>,
    server: Option<SocketAddr>,
}

impl H3Session {
    /// A session for `req` arriving on `stream` from `client` at `server`.
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
        Self {
            req,
            stream,
            response: None,
            closed: false,
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

    fn h3_error(what: &str, e: impl std::fmt::Display) -> Box<Error> {
        Error::explain(ErrorType::WriteError, format!("h3 {what}: {e}")).into_down()
    }

    async fn with_write_timeout<T>(
        timeout: Option<Duration>,
        what: &str,
        f: impl Future<Output = std::result::Result<T, h3::error::StreamError>>,
    ) -> Result<T> {
        match timeout {
            Some(t) => match tokio::time::timeout(t, f).await {
                Ok(r) => r.map_err(|e| Self::h3_error(what, e)),
                Err(_) => Err(Error::explain(ErrorType::WriteTimedout, format!("h3 {what}")).into_down()),
            },
            None => f.await.map_err(|e| Self::h3_error(what, e)),
        }
    }

    async fn send_header(&mut self, resp: ResponseHeader, end: bool) -> Result<()> {
        if self.response.is_some() {
            // A second head: only an informational one may precede the final response.
            if !resp.status.is_informational() {
                return Err(Error::explain(
                    ErrorType::InternalError,
                    "h3 response head sent twice",
                ));
            }
        }
        let mut parts = resp.as_owned_parts();
        for name in CONNECTION_FIELDS {
            parts.headers.remove(*name);
        }
        parts.version = http::Version::HTTP_3;
        let head = http::Response::from_parts(parts, ());
        Self::with_write_timeout(
            self.write_timeout,
            "response head",
            self.stream.send_response(head),
        )
        .await?;
        if !resp.status.is_informational() {
            self.response = Some(resp);
        }
        if end {
            self.end().await?;
        }
        Ok(())
    }

    async fn send_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        if !data.is_empty() {
            let len = data.len();
            Self::with_write_timeout(self.write_timeout, "body", self.stream.send_data(data)).await?;
            self.body_sent += len;
        }
        if end {
            self.end().await?;
        }
        Ok(())
    }

    /// Ends the response: the stream's FIN tells the client the body is complete.
    async fn end(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        Self::with_write_timeout(self.write_timeout, "finish", self.stream.finish()).await
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
        let read = self.stream.recv_data();
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
        self.send_header(*resp, end).await
    }

    async fn write_response_header_ref(&mut self, resp: &ResponseHeader, end: bool) -> Result<()> {
        self.send_header(resp.clone(), end).await
    }

    async fn write_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        self.send_body(data, end).await
    }

    async fn write_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        Self::with_write_timeout(
            self.write_timeout,
            "trailers",
            self.stream.send_trailers(trailers),
        )
        .await?;
        self.closed = true; // trailers end the stream
        Ok(())
    }

    async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        let mut ended = false;
        for task in tasks {
            ended |= task.is_end();
            match task {
                HttpTask::Header(head, end) => self.send_header(*head, end).await?,
                HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                    self.send_body(data.unwrap_or_default(), end).await?
                }
                HttpTask::Trailer(Some(trailers)) => self.write_trailers(*trailers).await?,
                HttpTask::Trailer(None) | HttpTask::Done => self.end().await?,
                HttpTask::Failed(e) => return Err(e),
            }
        }
        Ok(ended)
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
        if !self.closed {
            self.abandon("shutdown before the end of the response").await;
        }
    }

    async fn abandon(&mut self, _ctx: &str) {
        // A reset stream, never a FIN: the client must not take a cut body for a whole one.
        if !self.closed {
            self.closed = true;
            self.stream.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
        }
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
    /// pingora drops a session whose response failed midway without calling `abandon`; quinn
    /// would then finish the dropped stream, and a cut body would look complete. Reset it.
    fn drop(&mut self) {
        if !self.closed {
            self.stream.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
        }
    }
}

impl H3Session {
    fn is_body_empty_ref(&self) -> bool {
        self.body_done && self.body_read == 0
    }
}
