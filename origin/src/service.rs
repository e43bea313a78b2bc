//! One request in, one response out: the origin's HTTP semantics over a [`ContentStore`].
//!
//! The order follows RFC 9110: method, header limits, path, lookup, preconditions (304/412),
//! then ranges (206/416). Every refusal carries a one-line reason in a `text/plain` body.

use crate::conditional::{self, Precondition, Validators};
use crate::content_type;
use crate::metrics::{OriginMetrics, status_class};
use crate::multipart;
use crate::path_class::{self, ByExtension, PathClass};
use crate::range::{self, RangePlan};
use crate::request_path::ContentPath;
use crate::storage::{ByteStream, ContentStore, ObjectInfo, StoreError};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use headers::{HeaderMapExt, LastModified};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;
use strata_contracts::config::origin::{CacheControlConfig, LimitsConfig};

/// The response body type of the origin.
pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Response headers a cross-origin player may read.
const CORS_EXPOSED: &str = "Content-Length, Content-Range, ETag, Last-Modified, Age";

/// Manifests larger than this are not read to classify them; they get the `other` class.
const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;

/// The origin's request handler, shared by every connection.
pub(crate) struct OriginService {
    pub store: Arc<dyn ContentStore>,
    pub cache_control: CacheControlConfig,
    pub limits: LimitsConfig,
    /// `Access-Control-Allow-Origin`, when CORS is on.
    pub cors_allow_origin: Option<HeaderValue>,
    pub metrics: OriginMetrics,
}

/// Where the bytes of a response come from.
#[derive(Clone)]
enum Source {
    /// Already read (a manifest, read whole to classify it).
    Memory(Bytes),
    /// To be read from storage, pinned to the version in `info`.
    Store {
        store: Arc<dyn ContentStore>,
        path: ContentPath,
        info: ObjectInfo,
    },
}

impl Source {
    fn stream(&self, range: RangeInclusive<u64>) -> ByteStream {
        match self {
            Source::Memory(b) => {
                let part = b.slice(*range.start() as usize..=*range.end() as usize);
                futures::stream::once(async move { Ok(part) }).boxed()
            }
            Source::Store { store, path, info } => {
                let (store, path, info) = (store.clone(), path.clone(), info.clone());
                futures::stream::once(async move {
                    store
                        .read(&path, &info, *range.start()..range.end() + 1)
                        .await
                        .map_err(std::io::Error::other)
                })
                .try_flatten()
                .boxed()
            }
        }
    }
}

impl OriginService {
    /// Answers one request, recording metrics.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body> {
        let started = Instant::now();
        let mut response = self.respond(req.method(), req.uri().path(), req.headers()).await;
        if let Some(origin) = &self.cors_allow_origin {
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(CORS_EXPOSED),
            );
        }
        self.metrics.latency.observe(started.elapsed().as_secs_f64());
        self.metrics
            .requests
            .with_label_values(&[status_class(response.status())])
            .inc();
        tracing::debug!(
            method = %req.method(), path = req.uri().path(), status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64, "request"
        );
        let bytes = self.metrics.response_bytes.clone();
        response.map(|body| {
            body.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    bytes.inc_by(data.len() as u64);
                }
                frame
            })
            .boxed_unsync()
        })
    }

    async fn respond(&self, method: &Method, raw_path: &str, headers: &HeaderMap) -> Response<Body> {
        if method == Method::OPTIONS && self.cors_allow_origin.is_some() {
            return cors_preflight();
        }
        if method != Method::GET && method != Method::HEAD {
            let mut r = refusal(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let header_bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes > self.limits.max_header_bytes {
            return refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                &format!(
                    "request headers are {header_bytes} bytes; the limit is {}",
                    self.limits.max_header_bytes
                ),
            );
        }
        let path = match ContentPath::from_request_path(raw_path) {
            Ok(p) => p,
            Err(rejection) => return refusal(rejection.status(), &rejection.to_string()),
        };
        let info = match self.store.head(&path).await {
            Ok(info) => info,
            Err(e) => return self.storage_refusal(e),
        };
        let ext = path.extension();
        let mime = content_type::for_extension(ext.as_deref());
        let (class, source) = match path_class::by_extension(ext.as_deref()) {
            ByExtension::Known(class) => (class, self.store_source(&path, &info)),
            ByExtension::Manifest(_) if info.size > MAX_MANIFEST_BYTES => {
                (PathClass::Other, self.store_source(&path, &info))
            }
            ByExtension::Manifest(kind) => match self.read_whole(&path, &info).await {
                Ok(body) => (path_class::classify_manifest(kind, &body), Source::Memory(body)),
                Err(e) => return self.storage_refusal(e),
            },
        };
        let validators = Validators {
            etag: entity_tag(&info.version_tag, &info),
            last_modified: info.last_modified,
        };
        let mut head = HeaderMap::new();
        head.typed_insert(validators.etag.clone());
        head.typed_insert(LastModified::from(info.last_modified));
        head.insert(
            header::CACHE_CONTROL,
            header_value(path_class::cache_control(&self.cache_control, class)),
        );
        head.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));

        match conditional::evaluate(headers, &validators) {
            Precondition::Proceed => {}
            Precondition::NotModified => return with_headers(StatusCode::NOT_MODIFIED, head, empty()),
            Precondition::Failed => {
                return refusal(
                    StatusCode::PRECONDITION_FAILED,
                    "a precondition (If-Match or If-Unmodified-Since) failed",
                );
            }
        }
        head.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
        if method == Method::HEAD {
            // Range is defined for GET only (RFC 9110 section 14.2): HEAD describes the whole.
            head.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
            return with_headers(StatusCode::OK, head, empty());
        }
        match range::plan(headers, info.size, &validators, self.limits.max_ranges) {
            RangePlan::Full => {
                head.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
                let body = if info.size == 0 {
                    empty()
                } else {
                    stream_body(source.stream(0..=info.size - 1))
                };
                with_headers(StatusCode::OK, head, body)
            }
            RangePlan::Unsatisfiable(reason) => {
                let mut r = refusal(StatusCode::RANGE_NOT_SATISFIABLE, reason);
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{}", info.size)),
                );
                r
            }
            RangePlan::Partial(ranges) if ranges.len() == 1 => {
                let r = ranges[0].clone();
                head.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end() - r.start() + 1));
                head.insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes {}-{}/{}", r.start(), r.end(), info.size)),
                );
                with_headers(StatusCode::PARTIAL_CONTENT, head, stream_body(source.stream(r)))
            }
            RangePlan::Partial(ranges) => {
                let boundary = boundary_for(&validators);
                let layout = multipart::layout(&ranges, info.size, mime, &boundary);
                head.insert(header::CONTENT_TYPE, header_value(&layout.content_type));
                head.insert(header::CONTENT_LENGTH, HeaderValue::from(layout.content_length));
                let closing = layout.closing.clone();
                let parts = layout.parts.into_iter().map(move |(part_header, r)| {
                    futures::stream::once(async move { Ok(part_header) }).chain(source.stream(r))
                });
                let body = futures::stream::iter(parts)
                    .flatten()
                    .chain(futures::stream::once(async move { Ok(closing) }))
                    .boxed();
                with_headers(StatusCode::PARTIAL_CONTENT, head, stream_body(body))
            }
        }
    }

    fn store_source(&self, path: &ContentPath, info: &ObjectInfo) -> Source {
        Source::Store {
            store: self.store.clone(),
            path: path.clone(),
            info: info.clone(),
        }
    }

    async fn read_whole(&self, path: &ContentPath, info: &ObjectInfo) -> Result<Bytes, StoreError> {
        let chunks: Vec<Bytes> = self
            .store
            .read(path, info, 0..info.size)
            .await?
            .try_collect()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Bytes::from(chunks.concat()))
    }

    fn storage_refusal(&self, e: StoreError) -> Response<Body> {
        let (status, kind) = match &e {
            StoreError::NotFound => return refusal(StatusCode::NOT_FOUND, "no object at this path"),
            StoreError::OutsideRoot => {
                return refusal(StatusCode::FORBIDDEN, "path resolves outside the content root");
            }
            StoreError::Changed => (StatusCode::SERVICE_UNAVAILABLE, "changed"),
            StoreError::Unavailable(_) | StoreError::Config(_) => (StatusCode::BAD_GATEWAY, "unavailable"),
        };
        self.metrics.storage_errors.with_label_values(&[kind]).inc();
        tracing::warn!(error = %e, "storage error");
        let mut r = refusal(status, &e.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// A strong entity tag from the backend's version tag (S3 quotes its own; local does not).
fn entity_tag(version_tag: &str, info: &ObjectInfo) -> headers::ETag {
    let cleaned: String = version_tag
        .trim_start_matches("W/")
        .chars()
        .filter(|c| *c == '!' || ('#'..='~').contains(c))
        .collect();
    let tag = if cleaned.is_empty() {
        let secs = info
            .last_modified
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("{:x}-{:x}", info.size, secs.as_nanos())
    } else {
        cleaned
    };
    format!("\"{tag}\"")
        .parse()
        .expect("entity tag built from etagc characters")
}

/// A multipart boundary that cannot collide between versions of the object.
fn boundary_for(v: &Validators) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{:?}", v.etag).hash(&mut h);
    format!("strata-{:016x}", h.finish())
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn stream_body(stream: ByteStream) -> Body {
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

fn with_headers(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// The answer to a CORS preflight: GET and HEAD, with the headers players send.
fn cors_preflight() -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range, If-Range, If-None-Match, If-Modified-Since"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    r
}

/// A refusal with its reason as a one-line plain-text body.
pub(crate) fn refusal(status: StatusCode, reason: &str) -> Response<Body> {
    let text = format!(
        "{} {}: {reason}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut r = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
