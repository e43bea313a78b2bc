//! The edge's request path: pingora's `ProxyHttp` hooks wired to the cache key, the
//! cacheability rules and the segment cache. The hooks stay thin; policy lives in
//! `cache_key`, `cacheability` and `cache_status`.

use crate::cache_key::{KeyRules, primary_key};
use crate::cache_status;
use crate::cacheability::{self, STRATA_CACHE_CONTROL};
use crate::health::Source;
use crate::hit_repair::HitRepair;
use crate::hop::{self, LoopVerdict};
use crate::metrics::{EdgeMetrics, GaugeHold};
use crate::parent_select::Target;
use crate::relay::{self, RELAY_HEADER, RelayConnector};
use crate::request_directives::RequestDirectives;
use crate::resume::{self, Validator};
use crate::revalidation;
use crate::slice::{self, Route};
use crate::slicer::{self, SlicedTally};
use crate::store::{self, FoyerStore};
use crate::token_gate::TokenGate;
use crate::upstreams::Upstreams;
use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use pingora_cache::key::HashBinary;
use pingora_cache::lock::CacheKeyLockImpl;
use pingora_cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, ForcedFreshness, NoCacheReason, RespCacheable,
    VarianceBuilder,
};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};
use strata_contracts::api::steering::PREWARM_HEADER;
use strata_contracts::config::edge::HEALTH_PROBE_PATH;

/// RFC 8586's loop-detection field.
const CDN_LOOP: &str = "cdn-loop";

/// Timeouts and retries towards upstreams.
#[derive(Clone)]
pub struct UpstreamSettings {
    /// Connect timeout.
    pub connect: Duration,
    /// Per-read timeout.
    pub read: Duration,
    /// Further attempts after a failure before a response head.
    pub retries: u32,
}

/// The edge proxy.
#[derive(Clone)]
pub struct EdgeProxy {
    pub(crate) upstreams: Arc<Upstreams>,
    pub(crate) timeouts: UpstreamSettings,
    /// This node's name in `Via` and `CDN-Loop`.
    pub(crate) node_id: String,
    /// This cache's name in `Cache-Status`: `strata-<role>`.
    pub(crate) cache_name: String,
    /// The way to the resuming relay, when misses go through it (`relay.rs`); a hit whose
    /// stored copy fails mid-response is continued through it too (`hit_repair.rs`).
    pub(crate) relay: Option<Arc<RelayConnector>>,
    /// `Alt-Svc` advertising HTTP/3 on TCP responses, when it is served.
    pub(crate) alt_svc: Option<String>,
    /// `Timing-Allow-Origin` for responses without one.
    pub(crate) timing_allow_origin: Option<String>,
    pub(crate) rules: KeyRules,
    pub(crate) store: &'static FoyerStore,
    pub(crate) lock: &'static CacheKeyLockImpl,
    pub(crate) wait_timeout: Duration,
    pub(crate) metrics: EdgeMetrics,
    /// Whether request `no-cache`/`max-age`/`min-fresh`/`no-store` are honoured.
    pub(crate) honor_request_cache_control: bool,
    /// Playback-token check on player requests, when enforced.
    pub(crate) tokens: Option<Arc<TokenGate>>,
    /// Slice size in bytes for large objects (`slice.rs`); `None`: never sliced.
    pub(crate) slice_size: Option<u64>,
    /// Objects whose upstream ignores `Range` or gives no validator: served whole from then
    /// on (bounded; forgetting one costs one more uncached sliced answer).
    pub(crate) unsliceable: foyer::Cache<String, ()>,
    /// How long a write to the client may wait (`client_send_timeout_secs`); `None`: no limit.
    pub(crate) send_timeout: Option<Duration>,
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    /// The upstream's 304 while revalidating: all its fields update the stored response
    /// (RFC 9111 section 4.3.4), where pingora's own merge keeps only a few.
    not_modified: Option<ResponseHeader>,
    /// The request's own `Cache-Control`.
    directives: RequestDirectives,
    /// Attempts for this request, in order; made on the first attempt.
    plan: Option<Vec<Target>>,
    /// Attempts made so far.
    attempts: usize,
    /// Where the current attempt goes.
    target: Option<Target>,
    /// Whether the current attempt's response head arrived.
    head_received: bool,
    /// Whether the current attempt goes through the resuming relay.
    via_relay: bool,
    /// The current upstream's byte counter, looked up once per attempt, not per chunk.
    upstream_bytes: Option<prometheus::IntCounter>,
    /// When the current upstream attempt began.
    upstream_started: Option<Instant>,
    /// Why the request could not be served, for the error response.
    pub(crate) failure: Option<String>,
    /// What a response served from slices was made of.
    pub(crate) sliced: Option<SlicedTally>,
    /// The HTTP version the client spoke (the request itself is shown to pingora as
    /// HTTP/1.1).
    client_version: http::Version,
    /// Why the client was let go while its miss's fill went on: pingora finishes such a
    /// request without an error, and says so only in a warning (taken over here).
    client_gone: OnceLock<String>,
    /// Counts this request in `strata_edge_requests_in_flight` for as long as it lives.
    _in_flight: GaugeHold,
    /// The cache key `request_filter` made to choose the route, for pingora's own call to
    /// `cache_key_callback`, so that it is made once per request.
    key: Option<CacheKey>,
}

impl RequestCtx {
    /// The protocol the client spoke: `h1`, `h2` or `h3`. Read from the request as it came
    /// (the session does not say: HTTP/2 and HTTP/3 both reach pingora as custom sessions).
    pub(crate) fn client_protocol(&self) -> &'static str {
        match self.client_version {
            http::Version::HTTP_3 => "h3",
            http::Version::HTTP_2 => "h2",
            _ => "h1",
        }
    }
}

impl EdgeProxy {
    /// Lets a GET hit continue from the upstreams if its stored copy fails mid-response
    /// (`hit_repair.rs`). A slice's stored bytes sit at its offset in the object, and its
    /// `Content-Range` names the object's length. Built only for complete hits of several
    /// chunks with a validator.
    fn give_repair(
        &self,
        session: &Session,
        meta: &CacheMeta,
        hit: &mut pingora_cache::HitHandler,
        ctx: &RequestCtx,
    ) {
        let Some(relay) = self.relay.as_deref().map(RelayConnector::relay) else {
            return;
        };
        let req = session.req_header();
        if req.method != Method::GET {
            return;
        }
        store::attach_repair(hit, || {
            let stored = meta.headers();
            let validator = Validator::of(stored)?;
            let (offset, total) = if slicer::slice_of(session).is_some() {
                let (_, (first, _, complete)) = resume::content_range_of(stored).ok()?;
                (first, complete?)
            } else {
                let length = stored.get(http::header::CONTENT_LENGTH)?.to_str().ok()?;
                (0, length.parse().ok()?)
            };
            let key = session.cache.maybe_cache_key()?;
            let targets = self.upstreams.plan(key.primary_key_str().unwrap_or_default());
            let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
            let hop = [
                (
                    "via",
                    hop::via_entry(via_version(ctx.client_version), &self.node_id),
                ),
                (CDN_LOOP, hop::cdn_loop_entry(&self.node_id)),
            ];
            Some(Box::new(HitRepair::new(
                Arc::clone(relay),
                targets,
                path_and_query,
                &req.headers,
                hop,
                (offset, total, validator),
                self.metrics.clone(),
            )))
        });
    }

    /// The labels of the per-upstream metrics for `target`.
    fn labels(&self, target: Target) -> [&str; 2] {
        let node = self.upstreams.node(target);
        [node.kind, node.label.as_str()]
    }

    /// Records a failed attempt and decides whether another one may follow.
    fn attempt_failed(&self, ctx: &mut RequestCtx, e: &mut Error) {
        if let Some(target) = ctx.target {
            self.upstreams.report(target, false, Source::Traffic);
            let node = self.upstreams.node(target);
            ctx.failure = Some(format!(
                "{} {} failed: {}",
                node.kind,
                node.label,
                e.etype().as_str()
            ));
        }
        if ctx.attempts <= self.timeouts.retries as usize {
            self.metrics.upstream_retries.inc();
            e.set_retry(true);
        } else {
            e.set_retry(false);
        }
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            not_modified: None,
            directives: RequestDirectives::default(),
            plan: None,
            attempts: 0,
            target: None,
            head_received: false,
            via_relay: false,
            upstream_bytes: None,
            upstream_started: None,
            failure: None,
            sliced: None,
            client_version: http::Version::HTTP_11,
            client_gone: OnceLock::new(),
            _in_flight: GaugeHold::new(&self.metrics.in_flight),
            key: None,
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        // A miss's client may read slower than the upstream sends, or stop reading. Without
        // pingora's cancel-safe downstream writes its fill loop waits on that client's socket
        // and stops pulling the upstream body: the cache fill, and every request following
        // it, would go at that client's pace or stall. With them the fill goes on at the
        // upstream's pace while the client's writes wait (pingora's HTTP/1.1 sessions and
        // subrequests; our own HTTP/2 and HTTP/3 sessions, http2.rs and http3/session.rs).
        session.set_proxy_tasks_enabled(true);
        // A client that takes nothing for this long is let go, as nginx's `send_timeout` does.
        session.set_write_timeout(self.send_timeout);
        if slicer::slice_of(session).is_some() {
            slicer::prepare_slice_request(session.req_header_mut());
        }
        // pingora makes a subrequest (a stale-while-revalidate refresh, a slice) by reading
        // the request again as HTTP/1.1 text, which an HTTP/2 request (`HTTP/2` in the
        // request line, its host only in the URI) does not survive: its refreshes never
        // happened. The request is shown as HTTP/1.1 with a Host from here on; the
        // protocol the client spoke is kept for `Via`.
        let req = session.req_header_mut();
        ctx.client_version = req.version;
        if req.version != http::Version::HTTP_11 && req.version != http::Version::HTTP_10 {
            if !req.headers.contains_key(http::header::HOST)
                && let Some(authority) = req.uri.authority().map(|a| a.as_str().to_string())
            {
                req.insert_header(http::header::HOST, authority)?;
            }
            req.set_version(http::Version::HTTP_11);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        if req.uri.path() == HEALTH_PROBE_PATH {
            // Answered here, not from the cache or upstream: a parent's probe asks whether
            // this node's proxy serves.
            respond_text(session, 200, "ok").await?;
            return Ok(true);
        }
        // A slice's subrequest comes from a request that passed the gate already (and may
        // outlive its token on a long download).
        if let Some(gate) = &self.tokens
            && slicer::slice_of(session).is_none()
            && let Err(rejection) = gate.check_now(req.uri.path(), req.uri.query())
        {
            self.metrics
                .token_rejections
                .with_label_values(&[rejection.reason()])
                .inc();
            let text = format!("{}: {rejection}", rejection.reason());
            respond_text(session, rejection.status(), &text).await?;
            return Ok(true);
        }
        let req = session.req_header();
        let cdn_loop = req
            .headers
            .get_all(CDN_LOOP)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let refusal = match hop::judge(cdn_loop, &self.node_id) {
            LoopVerdict::Forward => {
                if let Some(size) = self.slice_size
                    && let Some(primary) = self.sliced_route(session, ctx)
                {
                    self.serve_sliced(session, ctx, &primary, size).await?;
                    return Ok(true);
                }
                return Ok(false);
            }
            LoopVerdict::Loop => format!(
                "loop detected: this request already passed through {} (CDN-Loop); check the parents and upstream of the nodes it passed",
                self.node_id
            ),
            LoopVerdict::TooManyHops(n) => format!("refused: the request passed through {n} Strata nodes"),
        };
        self.metrics.loops_refused.inc();
        tracing::warn!(node = %self.node_id, "{refusal}");
        respond_text(session, 508, &refusal).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        if ctx.plan.is_none() {
            // pingora has built the key already when the cache is on; only bypassed
            // requests (other methods) need it made here.
            let plan = match session.cache.maybe_cache_key() {
                Some(key) => self.upstreams.plan(key.primary_key_str().unwrap_or_default()),
                None => {
                    let key = self.cache_key_callback(session, ctx)?;
                    self.upstreams.plan(key.primary_key_str().unwrap_or_default())
                }
            };
            ctx.plan = Some(plan);
        }
        let plan = ctx.plan.as_deref().unwrap_or_default();
        if plan.is_empty() {
            ctx.failure = Some("every parent is down and origin_fallback is off".into());
            return Err(Error::explain(ErrorType::HTTPStatus(502), "every parent is down").into_up());
        }
        let target = plan[ctx.attempts % plan.len()];
        ctx.attempts += 1;
        ctx.target = Some(target);
        ctx.head_received = false;
        ctx.upstream_started = Some(Instant::now());
        let labels = self.labels(target);
        self.metrics.upstream_requests.with_label_values(&labels).inc();
        ctx.upstream_bytes = Some(self.metrics.upstream_bytes.with_label_values(&labels));
        // A slice is a Range request, whose 206 the relay would never resume (it continues
        // only whole 200s): the hop would be cost without use.
        ctx.via_relay = self.relay.is_some()
            && matches!(session.req_header().method, Method::GET | Method::HEAD)
            && slicer::slice_of(session).is_none();
        let mut peer = match &self.relay {
            Some(relay) if ctx.via_relay => relay.peer()?,
            _ => {
                let addr = match self.upstreams.addr(target).await {
                    Ok(addr) => addr,
                    Err(why) => {
                        let mut e = Error::explain(ErrorType::ConnectNoRoute, why.clone()).into_up();
                        self.attempt_failed(ctx, &mut e);
                        ctx.failure = Some(why);
                        return Err(e);
                    }
                };
                HttpPeer::new(addr, false, self.upstreams.node(target).url.host.clone())
            }
        };
        peer.options.connection_timeout = Some(self.timeouts.connect);
        peer.options.read_timeout = Some(self.timeouts.read);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing reached the upstream yet, so even a non-idempotent request may go again.
        self.attempt_failed(ctx, &mut e);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        if e.esource() != &ErrorSource::Upstream {
            e.set_retry(false);
            return e;
        }
        // Another upstream may be tried only while nothing of a response exists yet: no head
        // from this upstream, nothing written to the client, and a request that is safe to
        // send twice.
        let retriable = !ctx.head_received
            && session.response_written().is_none()
            && session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        self.attempt_failed(ctx, &mut e);
        if !retriable {
            e.set_retry(false);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // A parent keys its cache on the Host players used, as this node does; an origin is
        // addressed by its own name.
        if let Some(target @ Target::Origin(_)) = ctx.target {
            let authority = self.upstreams.node(target).url.authority.as_str();
            upstream_request.insert_header("host", authority)?;
        }
        if let Some(s) = slicer::slice_of(session) {
            upstream_request.insert_header(http::header::RANGE, s.range_value())?;
        }
        let version = via_version(ctx.client_version);
        upstream_request.append_header("via", hop::via_entry(version, &self.node_id))?;
        upstream_request.append_header(CDN_LOOP, hop::cdn_loop_entry(&self.node_id))?;
        if ctx.via_relay
            && let Some(plan) = ctx.plan.as_deref()
        {
            // The relay gets this attempt's target first, then the others in plan order, as
            // the upstreams it may continue a failed body from.
            let first = (ctx.attempts - 1) % plan.len();
            let targets = plan[first..].iter().chain(&plan[..first]).copied();
            upstream_request.insert_header(RELAY_HEADER, relay::encode_targets(targets))?;
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let (Some(counter), Some(b)) = (&ctx.upstream_bytes, body.as_ref()) {
            counter.inc_by(b.len() as u64);
        }
        Ok(None)
    }

    /// A request the client gave up on (or was let go for not reading) is not the edge's
    /// error: the access log has it, as `client_abort` with the error, so pingora's own ERROR
    /// line for it is left out.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        error.esource() == &ErrorSource::Downstream
    }

    /// Likewise the warning when a miss's client goes away and the fill goes on without it;
    /// the request is then logged and counted as `client_abort` with that error.
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        ctx: &RequestCtx,
        error: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        let client_gone = matches!(context, ProxyWarnLogContext::DownstreamCache)
            && error.esource() == &ErrorSource::Downstream;
        if client_gone {
            let _ = ctx.client_gone.set(error.to_string());
        }
        client_gone
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        // The status follows pingora's default hook (which offers no helper to call); only the
        // body, which says what failed, and `Connection: close` are ours.
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        // A response already under way cannot be replaced; the client sees a cut transfer.
        if code > 0 && session.response_written().is_none() {
            let reason = ctx
                .failure
                .clone()
                .unwrap_or_else(|| e.etype().as_str().to_string());
            // pingora closes the connection after a failed proxy; say so (`Connection: close`),
            // or an HTTP/1.1 client would send its next request into a closed connection.
            session.set_keepalive(None);
            if respond_text(session, code, &reason).await.is_err() {
                session.respond_error(code).await.ok();
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        ctx.directives = RequestDirectives::of(session.req_header());
        if !self.honor_request_cache_control {
            ctx.directives = RequestDirectives {
                only_if_cached: ctx.directives.only_if_cached,
                ..Default::default()
            };
        }
        if matches!(session.req_header().method, Method::GET | Method::HEAD) && !ctx.directives.no_store {
            let mut overrides = CacheOptionOverrides::default();
            overrides.wait_timeout = Some(self.wait_timeout);
            session
                .cache
                .enable(self.store, None, None, Some(self.lock), Some(overrides));
        }
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        if let Some(key) = ctx.key.take() {
            return Ok(key);
        }
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()))
            .unwrap_or("");
        let mut primary = primary_key(host, req.uri.path(), req.uri.query(), &self.rules);
        if let Some(s) = slicer::slice_of(session) {
            primary = slicer::key_of(&primary, s);
        }
        let key = CacheKey::new(primary, "");
        if req.headers.contains_key(PREWARM_HEADER) {
            self.store.prefer_disk(&key);
        }
        Ok(key)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.head_received = true;
        // `Connection` belongs to the upstream hop (RFC 9110 section 7.6.1): the relay's
        // `close` (one exchange per pipe) or an origin's is for neither the cache nor the client.
        upstream_response.remove_header(&http::header::CONNECTION);
        if let Some(target) = ctx.target {
            self.upstreams.report(target, true, Source::Traffic);
            if let Some(started) = ctx.upstream_started.take() {
                self.metrics
                    .upstream_latency
                    .with_label_values(&self.labels(target))
                    .observe(started.elapsed().as_secs_f64());
            }
        }
        if upstream_response.status == http::StatusCode::NOT_MODIFIED {
            ctx.not_modified = Some(upstream_response.clone());
        }
        Ok(())
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        let authorized = session
            .req_header()
            .headers
            .contains_key(http::header::AUTHORIZATION);
        if slicer::slice_of(session).is_some()
            && (resp.status != http::StatusCode::PARTIAL_CONTENT || Validator::of(&resp.headers).is_none())
        {
            // Only a 206 with a validator can be checked against the object's other slices;
            // a 200 (an upstream that ignores Range) is the whole object, not this slice.
            return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(
                "slice without a 206 and validator",
            )));
        }
        match ctx.not_modified.take() {
            Some(not_modified) => {
                let merged = revalidation::merge_304(resp, &not_modified);
                Ok(cacheability::decide(&merged, authorized))
            }
            None => Ok(cacheability::decide(resp, authorized)),
        }
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        let names: Vec<String> = cacheability::vary_names(meta.response_header()).collect();
        if names.is_empty() {
            return None;
        }
        let mut variance = VarianceBuilder::new();
        for name in &names {
            let value = req
                .headers
                .get(name.as_str())
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default();
            variance.add_owned_name_value(name.clone(), value);
        }
        variance.finalize()
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &CacheMeta,
        hit_handler: &mut pingora_cache::HitHandler,
        _is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        self.give_repair(session, meta, hit_handler, ctx);
        Ok(ctx.directives.on_hit(meta, SystemTime::now()))
    }

    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if ctx.directives.only_if_cached {
            // RFC 9111 section 5.2.1.7: 504 rather than going upstream.
            let mut resp = ResponseHeader::build(504, None)?;
            resp.insert_header("content-length", "0")?;
            resp.insert_header(
                "cache-status",
                format!("{}; fwd=miss; detail=only-if-cached", self.cache_name),
            )?;
            session.write_response_header(Box::new(resp), true).await?;
            return Ok(false);
        }
        Ok(true)
    }

    fn allow_spawning_subrequest(&self, _session: &Session, _ctx: &RequestCtx) -> bool {
        // stale-while-revalidate refreshes in a background subrequest.
        true
    }

    fn should_serve_stale(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        // pingora has already checked the object's stale-while-revalidate / stale-if-error
        // windows (RFC 5861); only upstream failures qualify for stale-if-error.
        let serve = error.is_none_or(|e| e.esource() == &ErrorSource::Upstream);
        if serve && error.is_some() {
            // After a stale-if-error answer pingora does not keep the client's connection
            // (its reuse follows the failed upstream attempt's); say so with
            // `Connection: close`, or the client's next request meets a reset.
            session.set_keepalive(None);
        }
        serve
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let phase = session.cache.phase();
        let ttl = session.cache.maybe_cache_meta().map(|meta| {
            let now = SystemTime::now();
            match meta.fresh_until().duration_since(now) {
                Ok(left) => left.as_secs() as i64,
                Err(past) => -(past.duration().as_secs() as i64),
            }
        });
        // RFC 9211: a cache appends its member; those of caches nearer the origin stay first.
        resp.append_header(
            "cache-status",
            cache_status::header_value(&self.cache_name, &phase, ttl),
        )?;
        // RFC 9111 section 4.4: a successful unsafe request invalidates what is stored for
        // its target URI.
        let method = &session.req_header().method;
        if !method.is_safe() && (resp.status.is_success() || resp.status.is_redirection()) {
            let key = self.cache_key_callback(session, ctx)?;
            let purged = self
                .store
                .purge_key(key.primary_key_str().unwrap_or_default())
                .await;
            if purged > 0 {
                self.metrics.invalidations.inc();
            }
        }
        let _ = resp.remove_header(STRATA_CACHE_CONTROL);
        resp.append_header("via", hop::via_entry("1.1", &self.node_id))?;
        if let Some(tao) = &self.timing_allow_origin
            && !resp.headers.contains_key("timing-allow-origin")
        {
            resp.insert_header("timing-allow-origin", tao.as_str())?;
        }
        // Browsers and players find the UDP listener only through Alt-Svc (RFC 7838).
        if let Some(alt_svc) = &self.alt_svc
            && ctx.client_protocol() != "h3"
        {
            resp.insert_header("alt-svc", alt_svc.as_str())?;
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        if session.req_header().uri.path() == HEALTH_PROBE_PATH {
            // Children probe every parent every few seconds: counted apart, not logged.
            self.metrics.health_probes.inc();
            return;
        }
        let phase = session.cache.phase();
        if let Some(s) = slicer::slice_of(session) {
            self.log_slice(session, error, s);
            return;
        }
        let outcome = match (error, &ctx.sliced) {
            // The client went away or stopped reading (the send timeout): not the cache's
            // failure, and counted apart so that "error" keeps meaning one.
            (Some(e), _) if e.esource() == &ErrorSource::Downstream => "client_abort",
            (Some(_), _) => "error",
            (None, _) if ctx.client_gone.get().is_some() => "client_abort",
            (None, Some(tally)) => tally.outcome(),
            (None, None) => cache_status::outcome(&phase),
        };
        self.metrics.requests.with_label_values(&[outcome]).inc();
        let source = match phase {
            CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating | CachePhase::Revalidated => {
                "cache"
            }
            _ => "upstream",
        };
        let sent = session.body_bytes_sent() as u64;
        let protocol = ctx.client_protocol();
        self.metrics
            .protocol_requests
            .with_label_values(&[protocol])
            .inc();
        self.metrics
            .protocol_bytes
            .with_label_values(&[protocol])
            .inc_by(sent);
        match &ctx.sliced {
            Some(tally) => {
                let bytes = &self.metrics.response_bytes;
                bytes.with_label_values(&["cache"]).inc_by(tally.cache_bytes);
                bytes
                    .with_label_values(&["upstream"])
                    .inc_by(tally.upstream_bytes);
            }
            None => self
                .metrics
                .response_bytes
                .with_label_values(&[source])
                .inc_by(sent),
        }
        self.metrics.duration.observe(ctx.started.elapsed().as_secs_f64());
        if let Some(e) = error
            && e.esource() == &ErrorSource::Upstream
        {
            self.metrics.upstream_errors.inc();
        }
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        tracing::info!(
            target: "strata_edge::access",
            method = %req.method,
            path = %req.uri,
            protocol,
            status,
            cache = outcome,
            bytes = sent,
            micros = ctx.started.elapsed().as_micros() as u64,
            error = error.map(|e| e.to_string()).or_else(|| ctx.client_gone.get().cloned()),
            "request"
        );
    }
}

impl EdgeProxy {
    /// A slice's fetch is counted apart from requests, and its bytes are counted by the
    /// request it serves. A client that needed only part of a stored slice lets go of the
    /// rest: that write error is not the slice's failure.
    fn log_slice(&self, session: &Session, error: Option<&Error>, s: slice::Slice) {
        let failed = error.filter(|e| e.esource() != &ErrorSource::Downstream);
        let outcome = match failed {
            Some(_) => "error",
            None => cache_status::outcome(&session.cache.phase()),
        };
        self.metrics.slice_requests.with_label_values(&[outcome]).inc();
        if let Some(e) = failed
            && e.esource() == &ErrorSource::Upstream
        {
            self.metrics.upstream_errors.inc();
        }
        let req = session.req_header();
        tracing::info!(
            target: "strata_edge::access",
            method = %req.method,
            path = %req.uri,
            slice = s.index,
            status = session.response_written().map_or(0, |r| r.status.as_u16()),
            cache = outcome,
            error = failed.map(|e| e.to_string()),
            "slice"
        );
    }

    /// Whether a request is served from slices (`slice.rs`); its primary key if so.
    fn sliced_route(&self, session: &Session, ctx: &mut RequestCtx) -> Option<String> {
        let req = session.req_header();
        if !matches!(req.method, Method::GET | Method::HEAD) || session.subrequest_ctx.is_some() {
            return None;
        }
        let directives = RequestDirectives::of(req);
        if directives.only_if_cached || (self.honor_request_cache_control && directives.no_store) {
            return None;
        }
        let key = self.cache_key_callback(session, ctx).ok()?;
        let primary = key.primary_key_str()?.to_string();
        let partial = req.method == Method::HEAD || req.headers.contains_key(http::header::RANGE);
        let sliced = !self.unsliceable.contains(&primary) && {
            let whole_held = self.store.has_object_or_fill(&key);
            let slices_held = !whole_held && self.store.holds_slices_of(&primary);
            slice::route(partial, whole_held, slices_held) == Route::Sliced
        };
        if sliced {
            return Some(primary);
        }
        ctx.key = Some(key);
        None
    }
}

/// `Via`'s protocol version for a request received over `version`.
fn via_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    }
}

/// Answers with a short plain-text body that says why, never stored by caches.
async fn respond_text(session: &mut Session, status: u16, text: &str) -> Result<()> {
    let body = Bytes::from(format!("{text}\n"));
    let mut resp = ResponseHeader::build(status, Some(5))?;
    resp.insert_header("content-type", "text/plain; charset=utf-8")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}
