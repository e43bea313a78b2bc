//! The edge's request path: pingora's `ProxyHttp` hooks wired to the cache key, the
//! cacheability rules and the segment cache. The hooks stay thin; policy lives in
//! `cache_key`, `cacheability` and `cache_status`.

use crate::cache_key::{KeyRules, primary_key};
use crate::cache_status;
use crate::cacheability::{self, STRATA_CACHE_CONTROL};
use crate::metrics::EdgeMetrics;
use crate::request_directives::RequestDirectives;
use crate::revalidation;
use crate::store::FoyerStore;
use async_trait::async_trait;
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error, ErrorSource, Result};
use pingora_cache::key::HashBinary;
use pingora_cache::lock::CacheKeyLockImpl;
use pingora_cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, ForcedFreshness, RespCacheable, VarianceBuilder,
};
use std::time::{Duration, Instant, SystemTime};
use strata_contracts::config::edge::UpstreamUrl;

/// How the edge reaches its upstream.
pub struct UpstreamSettings {
    /// Where misses go.
    pub url: UpstreamUrl,
    /// Connect timeout.
    pub connect: Duration,
    /// Per-read timeout.
    pub read: Duration,
    /// Further attempts after a failed connect.
    pub connect_retries: u32,
}

/// The edge proxy.
pub struct EdgeProxy {
    pub(crate) upstream: UpstreamSettings,
    pub(crate) rules: KeyRules,
    pub(crate) store: &'static FoyerStore,
    pub(crate) lock: &'static CacheKeyLockImpl,
    pub(crate) wait_timeout: Duration,
    pub(crate) metrics: EdgeMetrics,
    /// Whether request `no-cache`/`max-age`/`min-fresh`/`no-store` are honoured.
    pub(crate) honor_request_cache_control: bool,
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    /// The upstream's 304 while revalidating: all its fields update the stored response
    /// (RFC 9111 section 4.3.4), where pingora's own merge keeps only a few.
    not_modified: Option<ResponseHeader>,
    /// The request's own `Cache-Control`.
    directives: RequestDirectives,
    /// Connect attempts retried so far.
    retries: u32,
    /// When the current upstream attempt began.
    upstream_started: Option<Instant>,
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            not_modified: None,
            directives: RequestDirectives::default(),
            retries: 0,
            upstream_started: None,
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        ctx.upstream_started = Some(Instant::now());
        let url = &self.upstream.url;
        let mut peer = HttpPeer::new(url.authority.as_str(), false, url.host.clone());
        peer.options.connection_timeout = Some(self.upstream.connect);
        peer.options.read_timeout = Some(self.upstream.read);
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
        if ctx.retries < self.upstream.connect_retries {
            ctx.retries += 1;
            self.metrics.upstream_retries.inc();
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_request.insert_header("host", self.upstream.url.authority.as_str())?;
        Ok(())
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

    fn cache_key_callback(&self, session: &Session, _ctx: &mut RequestCtx) -> Result<CacheKey> {
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()))
            .unwrap_or("");
        Ok(CacheKey::new(
            primary_key(host, req.uri.path(), req.uri.query(), &self.rules),
            "",
        ))
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(started) = ctx.upstream_started.take() {
            self.metrics
                .upstream_latency
                .observe(started.elapsed().as_secs_f64());
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
        _session: &mut Session,
        meta: &CacheMeta,
        _hit_handler: &mut pingora_cache::HitHandler,
        _is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        Ok(ctx.directives.on_hit(meta, SystemTime::now()))
    }

    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if ctx.directives.only_if_cached {
            // RFC 9111 section 5.2.1.7: 504 rather than going upstream.
            let mut resp = ResponseHeader::build(504, None)?;
            resp.insert_header("content-length", "0")?;
            resp.insert_header(
                "cache-status",
                format!("{}; fwd=miss; detail=only-if-cached", cache_status::CACHE_NAME),
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
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        // pingora has already checked the object's stale-while-revalidate / stale-if-error
        // windows (RFC 5861); only upstream failures qualify for stale-if-error.
        error.is_none_or(|e| e.esource() == &ErrorSource::Upstream)
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
        resp.insert_header("cache-status", cache_status::header_value(&phase, ttl))?;
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
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let phase = session.cache.phase();
        let outcome = if error.is_some() {
            "error"
        } else {
            cache_status::outcome(&phase)
        };
        self.metrics.requests.with_label_values(&[outcome]).inc();
        let source = match phase {
            CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating | CachePhase::Revalidated => {
                "cache"
            }
            _ => "upstream",
        };
        let sent = session.body_bytes_sent() as u64;
        self.metrics
            .response_bytes
            .with_label_values(&[source])
            .inc_by(sent);
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
            status,
            cache = outcome,
            bytes = sent,
            micros = ctx.started.elapsed().as_micros() as u64,
            error = error.map(|e| e.to_string()),
            "request"
        );
    }
}
