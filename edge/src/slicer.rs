//! Serving a request from slices (the policy is `slice.rs`'s). Each slice is a pingora
//! subrequest through this same proxy, marked with [`SliceRequest`]: it is keyed, locked,
//! collapsed, stored, revalidated and logged like any object, and fetched upstream with a
//! `Range` for exactly its bytes. The request itself reads the slices' answers in order, one
//! fetch ahead, and writes the bytes the client asked for.

use crate::cache_key::slice_key;
use crate::cache_status;
use crate::proxy::{EdgeProxy, RequestCtx};
use crate::slice::{self, Established, Slice, SliceHead, Wanted};
use bytes::Bytes;
use http::{Method, header};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::HttpTask;
use pingora::proxy::Session;
use pingora::proxy::subrequest::Ctx as SubrequestCtx;
use pingora::{Error, ErrorType, Result};
use tokio::sync::mpsc;

/// Marks a subrequest as the fetch of one slice (pingora's subrequest user context).
pub(crate) struct SliceRequest(pub Slice);

/// The slice a subrequest fetches, if it is a slice's.
pub(crate) fn slice_of(session: &Session) -> Option<Slice> {
    session
        .subrequest_ctx
        .as_ref()?
        .user_ctx()?
        .downcast_ref::<SliceRequest>()
        .map(|s| s.0)
}

/// A slice's request is the client's, minus what would change its answer: the client's
/// range and preconditions (the slice's own range goes upstream, `upstream_request_filter`),
/// and HEAD (a slice is always fetched whole).
pub(crate) fn prepare_slice_request(req: &mut RequestHeader) {
    for name in [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        req.remove_header(&name);
    }
    req.set_method(Method::GET);
}

/// What a sliced response was made of, for its metrics and log line.
#[derive(Debug, Default, Clone)]
pub(crate) struct SlicedTally {
    /// Slices read.
    pub slices: u32,
    /// Slices answered from the cache.
    pub hits: u32,
    /// Body bytes sent that came from slices held in the cache.
    pub cache_bytes: u64,
    /// Body bytes sent that came from upstream.
    pub upstream_bytes: u64,
}

impl SlicedTally {
    /// The request's outcome: a hit when every slice was.
    pub fn outcome(&self) -> &'static str {
        if self.slices > 0 && self.hits == self.slices {
            "hit"
        } else {
            "miss"
        }
    }
}

/// One slice's subrequest, read as it streams.
struct SliceFetch {
    slice: Slice,
    rx: mpsc::Receiver<HttpTask>,
    ended: bool,
    hit: bool,
}

impl SliceFetch {
    fn start(session: &Session, slice: Slice) -> Result<SliceFetch> {
        // The request reads as HTTP/1.1 with a Host whatever the client spoke
        // (`early_request_filter`), which is what pingora needs to make a subrequest of it.
        let spawner = session
            .subrequest_spawner
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "subrequests are not allowed"))?;
        let ctx = SubrequestCtx::builder()
            .user_ctx(Box::new(SliceRequest(slice)))
            .build();
        let (prepared, handle) = spawner.create_subrequest(session.as_downstream(), ctx);
        // The subrequest's input stays open until it ends: it watches that channel the way
        // a proxy watches a client connection, and takes its closing for a client gone.
        let input = handle.tx;
        tokio::spawn(async move {
            prepared.run().await;
            drop(input);
        });
        Ok(SliceFetch {
            slice,
            rx: handle.rx,
            ended: false,
            hit: false,
        })
    }

    /// The slice's response head.
    async fn head(&mut self, cache_name: &str) -> Result<Box<ResponseHeader>> {
        loop {
            match self.rx.recv().await {
                Some(HttpTask::Header(head, end)) if !head.status.is_informational() => {
                    self.ended = end;
                    self.hit = head
                        .headers
                        .get_all("cache-status")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .next_back()
                        .is_some_and(|v| cache_status::is_hit(v, cache_name));
                    return Ok(head);
                }
                Some(HttpTask::Header(..)) => continue,
                Some(HttpTask::Failed(e)) => return Err(slice_error(self.slice, &format!("failed: {e}"))),
                Some(_) => return Err(slice_error(self.slice, "answered a body before its head")),
                None => return Err(slice_error(self.slice, "ended without an answer")),
            }
        }
    }

    /// The next piece of the slice's body; `None` at its end.
    async fn body(&mut self) -> Result<Option<Bytes>> {
        while !self.ended {
            match self.rx.recv().await {
                Some(HttpTask::Body(data, end)) => {
                    self.ended = end;
                    if let Some(data) = data.filter(|d| !d.is_empty()) {
                        return Ok(Some(data));
                    }
                }
                Some(HttpTask::Done | HttpTask::Trailer(_)) => self.ended = true,
                Some(HttpTask::Failed(e)) => return Err(slice_error(self.slice, &format!("failed: {e}"))),
                Some(_) => return Err(slice_error(self.slice, "sent an unexpected part")),
                None => return Err(slice_error(self.slice, "ended before its body did")),
            }
        }
        Ok(None)
    }

    /// Lets go of a fetch whose remaining bytes are not needed. It is read to its end in
    /// the background, so that a miss's fill completes and the slice is stored whole (and a
    /// hit ends as a served response, as nginx's slices do, not as a failed write).
    fn release(mut self) {
        if self.ended {
            return;
        }
        tokio::spawn(async move { while self.rx.recv().await.is_some() {} });
    }
}

/// A place in a slice's body as it is read: the fetch, its answer, the object offset of the
/// next byte, and the bytes already taken from the fetch from that offset on.
struct SliceCursor {
    fetch: SliceFetch,
    head: SliceHead,
    at: u64,
    pending: Option<Bytes>,
    /// Whether this slice is in the response's tally yet.
    counted: bool,
}

impl SliceCursor {
    fn new(fetch: SliceFetch, head: SliceHead) -> Self {
        let at = head.first;
        Self {
            fetch,
            head,
            at,
            pending: None,
            counted: false,
        }
    }

    /// Whether byte `offset` of the object is still ahead in this slice.
    fn holds(&self, offset: u64) -> bool {
        self.at <= offset && offset < self.head.first + self.head.len
    }

    /// Whether the slice has bytes left to read.
    fn has_more(&self) -> bool {
        self.at < self.head.first + self.head.len
    }
}

fn slice_error(slice: Slice, what: &str) -> Box<Error> {
    Error::explain(
        ErrorType::HTTPStatus(502),
        format!(
            "slice {} (bytes {}-{}) {what}",
            slice.index, slice.first, slice.last
        ),
    )
}

impl EdgeProxy {
    /// Serves a GET or HEAD for the object keyed `primary` from slices of `size` bytes.
    pub(crate) async fn serve_sliced(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        primary: &str,
        size: u64,
    ) -> Result<()> {
        ctx.sliced.get_or_insert_with(SlicedTally::default);
        let req = session.req_header();
        let wanted = Wanted::of(&req.method, &req.headers);
        let head_only = req.method == Method::HEAD;
        let mut fetch = SliceFetch::start(session, wanted.first_slice(size))?;
        let mut resp = fetch.head(&self.cache_name).await?;
        let mut head = match slice::check(resp.status, &resp.headers, fetch.slice, None) {
            Ok(head) => head,
            Err(why) if resp.status.is_success() => {
                ctx.failure = Some(format!("sliced fetch: {why}"));
                return Err(slice_error(fetch.slice, &why));
            }
            // An error, a redirect, a 416: the client gets the upstream's answer as it is.
            Err(_) => return self.relay_answer(session, fetch, resp).await,
        };
        if head.whole || head.validator.is_none() {
            // Nothing of this answer was stored as a slice: the object is fetched whole from
            // now on, and cached as such.
            self.unsliceable.insert(primary.to_string(), ());
        }
        let req = session.req_header();
        if req.method == Method::GET && slice::not_modified(&req.headers, &resp.headers) {
            fetch.release();
            let not_modified = slice::not_modified_head(&resp)?;
            return session.write_response_header(Box::new(not_modified), true).await;
        }
        let answer = wanted.answer(head.total, slice::if_range_holds(&req.headers, &resp.headers));
        let parts = answer.parts(head.total);
        // The first slice was a guess where the length was not known (a suffix range):
        // go to the one that holds the first byte to send.
        if let Some(&(from, _)) = parts.first()
            && !head.whole
            && !(head.first..head.first + head.len).contains(&from)
        {
            let before = (head.total, head.validator.clone());
            fetch.release();
            fetch = SliceFetch::start(session, Slice::holding(from, size))?;
            resp = fetch.head(&self.cache_name).await?;
            let established = Established {
                total: before.0,
                validator: before.1.as_ref(),
            };
            head = self.checked(ctx, primary, &fetch, &resp, established)?;
        }
        let (mut client, framing) = slice::client_head(&resp, &answer, head.total)?;
        if ctx.client_protocol() == "h3" {
            // The slice's subrequest is not HTTP/3, so it advertised HTTP/3 to a client
            // already on it.
            client.remove_header("alt-svc");
        }
        self.metrics.sliced_responses.inc();
        if head_only || parts.is_empty() {
            fetch.release();
            return session.write_response_header(Box::new(client), true).await;
        }
        session.write_response_header(Box::new(client), false).await?;
        let validator = head.validator.clone();
        let established = Established {
            total: head.total,
            validator: validator.as_ref(),
        };
        let mut cursor = Some(SliceCursor::new(fetch, head));
        for (i, &(from, to)) in parts.iter().enumerate() {
            // Parts come in ascending order: a part that starts in the slice the previous one
            // ended in goes on reading it; any other starts from the slice holding its first
            // byte.
            let at = match cursor.take() {
                Some(c) if c.holds(from) => c,
                other => {
                    if let Some(c) = other {
                        c.fetch.release();
                    }
                    let mut fetch = SliceFetch::start(session, Slice::holding(from, size))?;
                    let resp = fetch.head(&self.cache_name).await?;
                    let head = self.checked(ctx, primary, &fetch, &resp, established)?;
                    SliceCursor::new(fetch, head)
                }
            };
            if let Some(framing) = &framing {
                session
                    .write_response_body(Some(framing.part_head(i)), false)
                    .await?;
            }
            cursor = self
                .send_span(session, ctx, primary, at, (from, to), established)
                .await?;
        }
        if let Some(c) = cursor {
            c.fetch.release();
        }
        if let Some(framing) = &framing {
            session
                .write_response_body(Some(framing.trailer()), false)
                .await?;
        }
        session.write_response_body(None, true).await
    }

    /// Sends bytes `from..=to` of the object, starting at `cursor` and going on through the
    /// slices after it. Returns where it stopped, in the slice holding `to`, if that slice
    /// has bytes left.
    async fn send_span(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        primary: &str,
        mut cursor: SliceCursor,
        (from, to): (u64, u64),
        established: Established<'_>,
    ) -> Result<Option<SliceCursor>> {
        loop {
            // The next slice's fetch starts before this one is read: its head (and a miss's
            // upstream request) overlaps this slice's body.
            let next_slice = cursor.fetch.slice.next();
            let mut next = if !cursor.head.whole && next_slice.first <= to {
                Some(SliceFetch::start(session, next_slice)?)
            } else {
                None
            };
            let done = self.send_slice(session, ctx, &mut cursor, (from, to)).await?;
            if done {
                if let Some(next) = next {
                    next.release();
                }
                if cursor.has_more() {
                    return Ok(Some(cursor));
                }
                cursor.fetch.release();
                return Ok(None);
            }
            cursor.fetch.release();
            let Some(mut following) = next.take() else {
                return Ok(None);
            };
            let resp = following.head(&self.cache_name).await?;
            let head = self.checked(ctx, primary, &following, &resp, established)?;
            cursor = SliceCursor::new(following, head);
        }
    }

    /// Checks a later slice's answer against what the first one established. A mismatch
    /// means the object changed upstream between slices: the slices held are dropped, so
    /// that the next request starts over on one version.
    fn checked(
        &self,
        ctx: &mut RequestCtx,
        primary: &str,
        fetch: &SliceFetch,
        resp: &ResponseHeader,
        established: Established<'_>,
    ) -> Result<SliceHead> {
        match slice::check(resp.status, &resp.headers, fetch.slice, Some(established)) {
            Ok(head) => Ok(head),
            Err(why) if !resp.status.is_success() => {
                // An upstream error, not another version: the slices held stay.
                ctx.failure = Some(format!("sliced fetch: {why}"));
                Err(slice_error(fetch.slice, &why))
            }
            Err(why) => {
                self.metrics.slice_mismatches.inc();
                tracing::warn!(
                    key = primary,
                    slice = fetch.slice.index,
                    "sliced object: {why}; dropping its slices"
                );
                let (store, key) = (self.store, primary.to_string());
                tokio::spawn(async move { store.purge_key(&key).await });
                ctx.failure = Some(format!("sliced fetch: {why}"));
                Err(slice_error(fetch.slice, &why))
            }
        }
    }

    /// Writes what `cursor`'s slice holds of `from..=to`; true once `to` is sent, with the
    /// cursor left just after it.
    async fn send_slice(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        cursor: &mut SliceCursor,
        (from, to): (u64, u64),
    ) -> Result<bool> {
        let tally = ctx.sliced.get_or_insert_with(SlicedTally::default);
        if !cursor.counted {
            cursor.counted = true;
            tally.slices += 1;
            tally.hits += u32::from(cursor.fetch.hit);
        }
        let end = cursor.head.first + cursor.head.len;
        while cursor.at < end {
            let data = match cursor.pending.take() {
                Some(data) => data,
                None => match cursor.fetch.body().await? {
                    Some(data) => data,
                    None => {
                        return Err(slice_error(
                            cursor.fetch.slice,
                            &format!("ended at byte {}, before byte {end}", cursor.at),
                        ));
                    }
                },
            };
            let piece = (cursor.at, cursor.at + data.len() as u64);
            if piece.1 > end {
                return Err(slice_error(cursor.fetch.slice, "sent more bytes than it holds"));
            }
            let (lo, hi) = (piece.0.max(from), piece.1.min(to + 1));
            if lo < hi {
                let part = data.slice((lo - piece.0) as usize..(hi - piece.0) as usize);
                if cursor.fetch.hit {
                    tally.cache_bytes += part.len() as u64;
                } else {
                    tally.upstream_bytes += part.len() as u64;
                }
                session.write_response_body(Some(part), false).await?;
            }
            if piece.1 > to + 1 {
                // The rest of this piece is for a later part, if any.
                cursor.at = to + 1;
                cursor.pending = Some(data.slice((to + 1 - piece.0) as usize..));
                return Ok(true);
            }
            cursor.at = piece.1;
            if cursor.at > to {
                return Ok(true);
            }
        }
        Ok(cursor.at > to)
    }

    /// Passes a first slice's answer that is not slice material (an error, a redirect, a
    /// `416`) to the client as it came.
    async fn relay_answer(
        &self,
        session: &mut Session,
        mut fetch: SliceFetch,
        resp: Box<ResponseHeader>,
    ) -> Result<()> {
        let head_only = session.req_header().method == Method::HEAD;
        let ended = fetch.ended || head_only;
        session.write_response_header(resp, ended).await?;
        if ended {
            fetch.release();
            return Ok(());
        }
        while let Some(data) = fetch.body().await? {
            session.write_response_body(Some(data), false).await?;
        }
        session.write_response_body(None, true).await
    }
}

/// The key of the slice `s` of `primary`, for the subrequest's cache key.
pub(crate) fn key_of(primary: &str, s: Slice) -> String {
    slice_key(primary, s.first, s.last)
}
