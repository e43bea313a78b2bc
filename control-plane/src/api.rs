//! The HTTP API (axum): thin handlers over the store, the entitlement decision and the
//! manifest rewriter. Every error is JSON `{"error": reason, "message": text}`.

use crate::accounts::{
    self, decoy_hash, hash_password, issue_session, password_matches, random_id, verify_session,
};
use crate::entitlement::{self, Classes, Viewer};
use crate::geo::{self, GeoDb};
use crate::manifest::{self, ManifestError, PlayUrls};
use crate::metrics::Metrics;
use crate::packaged::Packaged;
use crate::search::{MAX_QUERY_CHARS, SearchIndex, SearchQuery};
use crate::store::{AccountRecord, Play, Store, StoreError};
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use strata_contracts::api::control_plane::{
    Account, ApiError, BrowseResponse, BrowseRow, CATALOG_VERSION, CatalogFile, ImportResult, NewAccount,
    PlaybackRequest, PlaybackResponse, Refusal, SearchResponse, SignInRequest, SignInResponse, Timestamp,
    Title, TitleList, TitleSummary,
};
use strata_contracts::api::steering::{BASE_PARAM, CDN_PARAM};
use strata_contracts::config::control_plane::ControlPlaneConfig;
use strata_contracts::token::{KeyRing, PlaybackClaims, TokenKey, same_secret, sign_playback};
use tower_http::cors::{Any, CorsLayer};

/// Everything the handlers share.
pub(crate) struct App {
    pub config: ControlPlaneConfig,
    pub public_url: String,
    pub store: Store,
    pub ring: KeyRing,
    pub signer: TokenKey,
    pub geo: Option<GeoDb>,
    pub packaged: Packaged,
    pub metrics: Metrics,
    pub admin_token: String,
    pub search: SearchIndex,
    /// Steering's decision API, when steering is configured.
    pub steering: Option<crate::steering_client::SteeringClient>,
    /// The browse page as last computed, with when and for which row length: the same for
    /// every viewer, so it is computed at most once per [`BROWSE_KEEP`].
    pub browse: tokio::sync::Mutex<Option<(Instant, i64, BrowseResponse)>>,
}

/// How long a computed browse page is served before it is computed again.
pub(crate) const BROWSE_KEEP: std::time::Duration = std::time::Duration::from_secs(5);

impl App {
    /// Applies a catalog change to the search index; a failure is logged and counted, and
    /// the periodic refresh rebuilds.
    fn reindex(&self, upserts: &[Title], removals: &[&str]) {
        if let Err(e) = self.search.apply(upserts, removals) {
            self.metrics.search_index_failures.inc();
            tracing::error!("{e}; the last good index serves until the next refresh");
        }
    }
}

type Shared = Arc<App>;

/// The API's routes.
pub(crate) fn router(app: Shared) -> Router {
    Router::new()
        .route("/v1/titles", get(list_titles))
        .route("/v1/titles/{id}", get(get_title))
        .route("/v1/search", get(search))
        .route("/v1/browse", get(browse))
        .route("/v1/sessions", post(sign_in))
        .route("/v1/playback", post(playback))
        .route("/v1/plays/{play}/master.m3u8", get(hls_master))
        .route("/v1/plays/{play}/hls/{*media}", get(hls_media))
        .route("/v1/plays/{play}/manifest.mpd", get(dash_mpd))
        .route("/v1/admin/titles/{id}", put(put_title).delete(delete_title))
        .route(
            "/v1/admin/catalog",
            post(import_catalog).layer(DefaultBodyLimit::max(64 << 20)),
        )
        .route("/v1/admin/accounts", post(create_account))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), track))
        // Browser players call the API and fetch manifests from pages on other origins.
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([http::Method::GET, http::Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        )
        .with_state(app)
}

/// An error answer.
pub(crate) struct Failure {
    status: StatusCode,
    error: String,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            error: error.to_string(),
            message: message.into(),
        }
    }

    fn refusal(r: Refusal, message: impl Into<String>) -> Failure {
        Failure::new(
            StatusCode::from_u16(r.status()).unwrap_or(StatusCode::FORBIDDEN),
            r.reason(),
            message,
        )
    }

    fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = ApiError {
            error: self.error,
            message: self.message,
        };
        let mut resp = (self.status, Json(body)).into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::Conflict(what) => {
                Failure::new(StatusCode::CONFLICT, "conflict", format!("{what} already exists"))
            }
            other => {
                tracing::error!("{other}");
                Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    other.to_string(),
                )
            }
        }
    }
}

type ApiResult<T> = Result<T, Failure>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Parses a JSON body, naming the field that is wrong.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            Failure::bad_request(format!("body is not valid JSON for this request: {inner}"))
        } else {
            Failure::bad_request(format!("field `{path}`: {inner}"))
        }
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn require_admin(app: &App, headers: &HeaderMap) -> ApiResult<()> {
    if app.admin_token.is_empty() {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "disabled",
            "the admin API is disabled: set admin_token",
        ));
    }
    match bearer(headers) {
        Some(t) if same_secret(t, &app.admin_token) => Ok(()),
        _ => Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer credential is required",
        )),
    }
}

/// Counts and times every request by its route template.
async fn track(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    app.metrics
        .requests
        .with_label_values(&[route.as_str(), resp.status().as_str()])
        .inc();
    app.metrics
        .duration
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn not_found() -> Failure {
    Failure::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

// ---- catalog ----

#[derive(Deserialize)]
struct Page {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

async fn list_titles(State(app): State<Shared>, Query(page): Query<Page>) -> ApiResult<Json<TitleList>> {
    if !(1..=1000).contains(&page.limit) || page.offset < 0 {
        return Err(Failure::bad_request("limit must be 1-1000 and offset at least 0"));
    }
    let (titles, total) = app.store.titles(page.limit, page.offset).await?;
    Ok(Json(TitleList { titles, total }))
}

async fn get_title(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Title>> {
    match app.store.title(&id).await? {
        Some(t) => Ok(Json(t)),
        None => Err(Failure::refusal(
            Refusal::UnknownTitle,
            format!("no title {id:?}"),
        )),
    }
}

/// Checks a title as an operator submitted it, naming the bad field.
fn check_title(t: &Title, config: &ControlPlaneConfig) -> Result<(), String> {
    let id_ok = !t.id.is_empty()
        && t.id.len() <= 128
        && t.id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    if !id_ok {
        return Err(format!("id {:?}: 1-128 characters of A-Z a-z 0-9 - _", t.id));
    }
    if t.name.trim().is_empty() {
        return Err(format!("{}: name is empty", t.id));
    }
    if t.hls.is_empty() && t.dash.is_empty() {
        return Err(format!("{}: hls or dash must name a packaged manifest", t.id));
    }
    for (field, path) in [("hls", &t.hls), ("dash", &t.dash)] {
        if !path.is_empty() && (!path.starts_with('/') || path.contains("..") || path.contains('?')) {
            return Err(format!(
                "{}: {field} {path:?} must be an absolute path on the origin",
                t.id
            ));
        }
    }
    let l = &t.licensing;
    if let Some(bad) = l
        .tiers
        .iter()
        .find(|n| !config.tiers.iter().any(|c| &c.name == *n))
    {
        return Err(format!("{}: licensing.tiers: unknown tier {bad:?}", t.id));
    }
    if let Some(bad) = l
        .devices
        .iter()
        .find(|n| !config.devices.iter().any(|c| &c.name == *n))
    {
        return Err(format!(
            "{}: licensing.devices: unknown device class {bad:?}",
            t.id
        ));
    }
    for (field, windows) in [
        ("licensing.windows", &l.windows),
        ("licensing.blackouts", &l.blackouts),
    ] {
        for w in windows {
            if w.end <= w.start {
                return Err(format!("{}: {field}: a window ends before it starts", t.id));
            }
            if let Some(bad) = w
                .countries
                .iter()
                .find(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(format!(
                    "{}: {field}: {bad:?} is not an ISO 3166-1 alpha-2 code such as GB",
                    t.id
                ));
            }
        }
    }
    Ok(())
}

async fn put_title(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Title>> {
    require_admin(&app, &headers)?;
    let title: Title = parse_json(&body)?;
    if title.id != id {
        return Err(Failure::bad_request(format!(
            "the body's id {:?} differs from the URL's {id:?}",
            title.id
        )));
    }
    check_title(&title, &app.config).map_err(Failure::bad_request)?;
    app.store.put_titles(std::slice::from_ref(&title), now()).await?;
    app.reindex(std::slice::from_ref(&title), &[]);
    Ok(Json(title))
}

async fn delete_title(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    require_admin(&app, &headers)?;
    if app.store.delete_title(&id).await? {
        app.reindex(&[], &[id.as_str()]);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Failure::refusal(
            Refusal::UnknownTitle,
            format!("no title {id:?}"),
        ))
    }
}

async fn import_catalog(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ImportResult>> {
    require_admin(&app, &headers)?;
    let file: CatalogFile = parse_json(&body)?;
    if file.version != CATALOG_VERSION {
        return Err(Failure::bad_request(format!(
            "field `version`: this build reads catalog version {CATALOG_VERSION}, not {}",
            file.version
        )));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, t) in file.titles.iter().enumerate() {
        check_title(t, &app.config).map_err(|e| Failure::bad_request(format!("titles[{i}]: {e}")))?;
        if !ids.insert(&t.id) {
            return Err(Failure::bad_request(format!(
                "titles[{i}]: id {:?} appears twice",
                t.id
            )));
        }
    }
    app.store.put_titles(&file.titles, now()).await?;
    app.reindex(&file.titles, &[]);
    Ok(Json(ImportResult {
        imported: file.titles.len() as u64,
    }))
}

// ---- discovery ----

#[derive(Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: String,
    genre: Option<String>,
    year: Option<u32>,
    #[serde(default = "default_search_limit")]
    limit: usize,
}

fn default_search_limit() -> usize {
    20
}

async fn search(State(app): State<Shared>, Query(p): Query<SearchParams>) -> ApiResult<Json<SearchResponse>> {
    if p.q.chars().count() > MAX_QUERY_CHARS {
        return Err(Failure::bad_request(format!(
            "q: at most {MAX_QUERY_CHARS} characters"
        )));
    }
    if !(1..=100).contains(&p.limit) {
        return Err(Failure::bad_request("limit must be 1-100"));
    }
    let query = SearchQuery {
        text: p.q,
        genre: p.genre.filter(|g| !g.is_empty()),
        year: p.year,
        limit: p.limit,
    };
    app.search.search(&query).map(Json).map_err(|e| {
        tracing::error!("{e}");
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "search_unavailable",
            e.to_string(),
        )
    })
}

#[derive(Deserialize)]
struct BrowseParams {
    #[serde(default = "default_row_limit")]
    limit: i64,
}

fn default_row_limit() -> i64 {
    20
}

/// Genre rows on the browse page.
const GENRE_ROWS: i64 = 8;
/// The trending row counts plays over this long.
const TRENDING_WINDOW_SECS: i64 = 7 * 86_400;

async fn browse(State(app): State<Shared>, Query(p): Query<BrowseParams>) -> ApiResult<Json<BrowseResponse>> {
    if !(1..=100).contains(&p.limit) {
        return Err(Failure::bad_request("limit must be 1-100"));
    }
    // One computation at a time: viewers arriving meanwhile wait for it, then share it.
    let mut kept = app.browse.lock().await;
    if let Some((at, limit, page)) = kept.as_ref()
        && *limit == p.limit
        && at.elapsed() < BROWSE_KEEP
    {
        return Ok(Json(page.clone()));
    }
    let page = browse_page(&app, p.limit).await?;
    *kept = Some((Instant::now(), p.limit, page.clone()));
    Ok(Json(page))
}

async fn browse_page(app: &App, limit: i64) -> ApiResult<BrowseResponse> {
    let p = BrowseParams { limit };
    let summaries = |titles: Vec<Title>| titles.iter().map(TitleSummary::from).collect();
    let mut rows = vec![
        BrowseRow {
            id: "new".into(),
            name: "New".into(),
            titles: summaries(app.store.newest_titles(p.limit).await?),
        },
        BrowseRow {
            id: "trending".into(),
            name: "Trending".into(),
            titles: summaries(
                app.store
                    .trending_titles(now() - TRENDING_WINDOW_SECS, p.limit)
                    .await?,
            ),
        },
    ];
    for genre in app.store.top_genres(GENRE_ROWS).await? {
        rows.push(BrowseRow {
            id: format!("genre:{genre}"),
            titles: summaries(app.store.titles_in_genre(&genre, p.limit).await?),
            name: genre,
        });
    }
    Ok(BrowseResponse { rows })
}

// ---- accounts ----

async fn create_account(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Account>)> {
    require_admin(&app, &headers)?;
    let new: NewAccount = parse_json(&body)?;
    let email = new.email.trim().to_ascii_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(Failure::bad_request("field `email`: not an email address"));
    }
    if new.password.chars().count() < accounts::MIN_PASSWORD_LEN {
        return Err(Failure::bad_request(format!(
            "field `password`: at least {} characters",
            accounts::MIN_PASSWORD_LEN
        )));
    }
    if !app.config.tiers.iter().any(|t| t.name == new.tier) {
        return Err(Failure::bad_request(format!(
            "field `tier`: unknown tier {:?}",
            new.tier
        )));
    }
    let account = accounts::new_account(&email, &new.tier, &new.profiles);
    // argon2 is deliberately slow; keep it off the async workers.
    let password = new.password;
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let record = AccountRecord {
        account: account.clone(),
        password_hash,
    };
    app.store.create_account(&record, now()).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

async fn sign_in(State(app): State<Shared>, body: Bytes) -> ApiResult<Json<SignInResponse>> {
    let req: SignInRequest = parse_json(&body)?;
    let email = req.email.trim().to_ascii_lowercase();
    let record = app.store.account_by_email(&email).await?;
    let phc = record
        .as_ref()
        .map_or_else(|| decoy_hash().to_string(), |r| r.password_hash.clone());
    let password = req.password;
    let matches = tokio::task::spawn_blocking(move || password_matches(&password, &phc))
        .await
        .unwrap_or(false);
    let Some(record) = record.filter(|_| matches) else {
        app.metrics.signins.with_label_values(&["bad_credentials"]).inc();
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "unknown email or wrong password",
        ));
    };
    app.metrics.signins.with_label_values(&["ok"]).inc();
    let expires = now() + app.config.session_ttl_secs as i64;
    Ok(Json(SignInResponse {
        session: issue_session(&app.signer, &record.account.id, expires),
        expires: Timestamp(expires),
        account: record.account,
    }))
}

// ---- playback ----

/// The directory part of a path, with its trailing `/`.
fn dir_of(path: &str) -> &str {
    path.rfind('/').map_or("/", |i| &path[..=i])
}

/// The deepest directory that holds both manifests: the prefix the playback token opens.
fn token_prefix(title: &Title) -> String {
    let dirs: Vec<&str> = [&title.hls, &title.dash]
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| dir_of(p))
        .collect();
    let mut prefix = dirs[0].to_string();
    for d in &dirs[1..] {
        while !d.starts_with(&prefix) {
            prefix.pop();
            prefix = dir_of(&prefix).to_string();
        }
    }
    prefix
}

async fn playback(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<PlaybackResponse>> {
    let result = start_play(&app, peer, &headers, &body).await;
    let outcome = match &result {
        Ok(_) => "allowed".to_string(),
        Err(f) => f.error.clone(),
    };
    app.metrics.playback.with_label_values(&[outcome.as_str()]).inc();
    result.map(Json)
}

async fn start_play(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<PlaybackResponse> {
    let now = now();
    let session = bearer(headers).ok_or_else(|| {
        Failure::refusal(
            Refusal::Unauthenticated,
            "sign in first: Authorization: Bearer <session>",
        )
    })?;
    let account_id = verify_session(&app.ring, session, now)
        .map_err(|r| Failure::refusal(Refusal::Unauthenticated, format!("session refused: {r}")))?;
    let account = app.store.account(&account_id).await?.ok_or_else(|| {
        Failure::refusal(Refusal::Unauthenticated, "the session's account no longer exists")
    })?;
    let req: PlaybackRequest = parse_json(body)?;
    let title = app
        .store
        .title(&req.title)
        .await?
        .ok_or_else(|| Failure::refusal(Refusal::UnknownTitle, format!("no title {:?}", req.title)))?;
    let profile = match &req.profile {
        None => account.profiles.first(),
        Some(p) => account.profiles.iter().find(|q| &q.id == p),
    }
    .ok_or_else(|| Failure::refusal(Refusal::UnknownProfile, "no such profile on this account"))?;
    let client_ip = geo::client_ip(&app.config.client_ip_header, headers, peer);
    let country = app.geo.as_ref().and_then(|g| g.country(client_ip));
    let viewer = Viewer {
        tier: &account.tier,
        device: &req.device,
        country: country.as_deref(),
        now,
    };
    let classes = Classes {
        tiers: &app.config.tiers,
        devices: &app.config.devices,
    };
    let max_height = entitlement::decide(&title.licensing, &viewer, &classes).map_err(|r| {
        let message = match r {
            Refusal::GeoBlocked => format!(
                "not licensed for {}",
                country.as_deref().unwrap_or("an unknown country")
            ),
            Refusal::UnknownDevice => format!("unknown device class {:?}", req.device),
            other => format!("refused: {}", other.reason()),
        };
        Failure::refusal(r, message)
    })?;
    let video: Vec<_> = title.renditions.iter().filter(|r| r.height > 0).collect();
    if !video.is_empty() && !video.iter().any(|r| r.height <= max_height) {
        return Err(Failure::refusal(
            Refusal::NoPlayableRendition,
            format!("no rendition of this title is at most {max_height} pixels tall"),
        ));
    }
    let cdn = match &app.steering {
        Some(steering) => steering.best_cdn(&title.id, client_ip).await.unwrap_or_else(|e| {
            app.metrics.steering_fallbacks.inc();
            tracing::warn!("{e}; the play starts on cdn_url");
            String::new()
        }),
        None => String::new(),
    };
    let play_id = random_id();
    let expires = now + app.config.playback_token_ttl_secs as i64;
    let token = sign_playback(
        &app.signer,
        PlaybackClaims {
            kid: String::new(),
            path: token_prefix(&title),
            exp: expires as u64,
            country: country.clone(),
            sid: Some(play_id.clone()),
        },
    );
    app.store
        .insert_play(&Play {
            id: play_id.clone(),
            title_id: title.id.clone(),
            account_id: account.id.clone(),
            profile_id: profile.id.clone(),
            device: req.device.clone(),
            country: country.clone().unwrap_or_default(),
            max_height,
            token: token.clone(),
            started_at: now,
            expires_at: expires,
            cdn: cdn.clone(),
        })
        .await?;
    let base = format!("{}/v1/plays/{play_id}", app.public_url);
    Ok(PlaybackResponse {
        hls_url: (!title.hls.is_empty()).then(|| format!("{base}/master.m3u8")),
        dash_url: (!title.dash.is_empty()).then(|| format!("{base}/manifest.mpd")),
        steering_url: steering_uri(app, &play_id, &title.id, None, cdn_base(app, &cdn)),
        cdn: if cdn.is_empty() {
            app.config.cdn_url.trim_end_matches('/').to_string()
        } else {
            cdn
        },
        play: play_id,
        title: title.id,
        token,
        expires: Timestamp(expires),
        max_height,
        country,
    })
}

/// The play's steering URL: the session is the play, the title keys edge affinity, the
/// player family (`hls` or `dash`, when known) tells steering how to write host replacements,
/// and `base` (the CDN the manifest's own pathway names) lets steering leave a player there
/// when that is where it would send it.
fn steering_uri(app: &App, play: &str, title: &str, player: Option<&str>, base: &str) -> Option<String> {
    (!app.config.steering_url.is_empty()).then(|| {
        let mut uri = format!(
            "{}/v1/steering/{play}?title={title}",
            app.config.steering_url.trim_end_matches('/')
        );
        if let Some(p) = player {
            uri.push_str("&player=");
            uri.push_str(p);
        }
        uri.push_str(&format!(
            "&{BASE_PARAM}={}",
            strata_contracts::query::encode(base.trim_end_matches('/'))
        ));
        uri
    })
}

/// The CDN base URL a play's manifests name: the one steering chose at its start, else
/// `cdn_url`.
fn cdn_base<'a>(app: &'a App, play_cdn: &'a str) -> &'a str {
    if play_cdn.is_empty() {
        app.config.cdn_url.as_str()
    } else {
        play_cdn
    }
}

// ---- manifests ----

/// A live play and its title, or why the manifest cannot be served.
async fn live_play(app: &App, play_id: &str) -> ApiResult<(Play, Title)> {
    let play = app
        .store
        .play(play_id)
        .await?
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, "unknown_play", "no such play"))?;
    if now() >= play.expires_at {
        return Err(Failure::new(
            StatusCode::GONE,
            "play_expired",
            "this play has expired: start a new one",
        ));
    }
    let title = app
        .store
        .title(&play.title_id)
        .await?
        .ok_or_else(|| Failure::refusal(Refusal::UnknownTitle, "the title was removed"))?;
    Ok((play, title))
}

async fn packaged(app: &App, path: &str) -> ApiResult<Bytes> {
    app.packaged.get(path).await.map_err(|e| {
        tracing::warn!("{e}");
        Failure::new(StatusCode::BAD_GATEWAY, "origin_unavailable", e.to_string())
    })
}

fn manifest_failure(e: ManifestError) -> Failure {
    match e {
        ManifestError::NothingPlayable(_) => Failure::refusal(Refusal::NoPlayableRendition, e.to_string()),
        ManifestError::Unparsable { .. } => {
            tracing::warn!("{e}");
            Failure::new(StatusCode::BAD_GATEWAY, "bad_packaged_manifest", e.to_string())
        }
    }
}

fn manifest_response(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Per play and carrying its token: never for a shared cache.
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        body,
    )
        .into_response()
}

/// The CDN URL of `path`'s directory for a play: steering's choice at its start, else
/// `cdn_url`.
fn cdn_dir(app: &App, play: &Play, path: &str) -> String {
    let base = cdn_base(app, &play.cdn);
    format!("{}{}", base.trim_end_matches('/'), dir_of(path))
}

async fn hls_master(State(app): State<Shared>, Path(play_id): Path<String>) -> ApiResult<Response> {
    let (play, title) = live_play(&app, &play_id).await?;
    if title.hls.is_empty() {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "no_hls",
            "this title has no HLS manifest",
        ));
    }
    let text = packaged(&app, &title.hls).await?;
    let play_base = format!("{}/v1/plays/{play_id}", app.public_url);
    let cdn = cdn_dir(&app, &play, &title.hls);
    let steering = steering_uri(&app, &play_id, &title.id, Some("hls"), cdn_base(&app, &play.cdn));
    let urls = PlayUrls {
        play_base: &play_base,
        cdn_dir: &cdn,
        token: &play.token,
        steering: steering.as_deref(),
    };
    let (body, _) = manifest::hls_master(&text, play.max_height, &urls).map_err(manifest_failure)?;
    Ok(manifest_response("application/vnd.apple.mpegurl", body))
}

/// The CDN base a steered HLS player names on a media playlist request (`cdn=`, from the
/// pathway clone's `PARAMS`), if it is an `http(s)://host[:port]` whose host may be named.
fn steered_cdn(app: &App, query: &[(String, String)]) -> ApiResult<Option<String>> {
    let Some((_, cdn)) = query.iter().find(|(k, _)| k == CDN_PARAM) else {
        return Ok(None);
    };
    let refuse = || {
        Failure::new(
            StatusCode::FORBIDDEN,
            "pathway_not_allowed",
            format!("{cdn:?} is not a CDN this service may point plays at"),
        )
    };
    let rest = cdn
        .strip_prefix("http://")
        .or_else(|| cdn.strip_prefix("https://"))
        .ok_or_else(refuse)?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(refuse());
    }
    let host = if rest.starts_with('[') {
        rest.split_once(']').map_or(rest, |(h, _)| &h[1..])
    } else {
        rest.rsplit_once(':').map_or(rest, |(h, _)| h)
    };
    if !app.config.pathway_host_allowed(host) {
        return Err(refuse());
    }
    Ok(Some(cdn.clone()))
}

async fn hls_media(
    State(app): State<Shared>,
    Path((play_id, media)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let steered = steered_cdn(&app, &query)?;
    let (play, title) = live_play(&app, &play_id).await?;
    if title.hls.is_empty() {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "no_hls",
            "this title has no HLS manifest",
        ));
    }
    let master = packaged(&app, &title.hls).await?;
    let allowed = manifest::allowed_media_of(&master, play.max_height).map_err(manifest_failure)?;
    if !allowed.iter().any(|a| a == &media) {
        return Err(Failure::refusal(
            Refusal::NotEntitled,
            format!("{media:?} is not a rendition of this play"),
        ));
    }
    let path = format!("{}{media}", dir_of(&title.hls));
    let text = packaged(&app, &path).await?;
    let cdn = match &steered {
        Some(base) => format!("{base}{}", dir_of(&path)),
        None => cdn_dir(&app, &play, &path),
    };
    let urls = PlayUrls {
        play_base: "",
        cdn_dir: &cdn,
        token: &play.token,
        steering: None,
    };
    let body = manifest::hls_media(&text, &urls).map_err(manifest_failure)?;
    Ok(manifest_response("application/vnd.apple.mpegurl", body))
}

async fn dash_mpd(State(app): State<Shared>, Path(play_id): Path<String>) -> ApiResult<Response> {
    let (play, title) = live_play(&app, &play_id).await?;
    if title.dash.is_empty() {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "no_dash",
            "this title has no DASH manifest",
        ));
    }
    let text = packaged(&app, &title.dash).await?;
    let text = std::str::from_utf8(&text).map_err(|_| {
        Failure::new(
            StatusCode::BAD_GATEWAY,
            "bad_packaged_manifest",
            "the packaged MPD is not UTF-8",
        )
    })?;
    let cdn = cdn_dir(&app, &play, &title.dash);
    let steering = steering_uri(&app, &play_id, &title.id, Some("dash"), cdn_base(&app, &play.cdn));
    let urls = PlayUrls {
        play_base: "",
        cdn_dir: &cdn,
        token: &play.token,
        steering: steering.as_deref(),
    };
    let body = manifest::dash_mpd(text, play.max_height, &urls).map_err(manifest_failure)?;
    Ok(manifest_response("application/dash+xml", body))
}

#[cfg(test)]
mod test {
    use super::*;

    fn title(hls: &str, dash: &str) -> Title {
        serde_json::from_value(serde_json::json!({"id": "t", "name": "T", "hls": hls, "dash": dash})).unwrap()
    }

    #[test]
    fn the_token_opens_the_directory_holding_both_manifests() {
        assert_eq!(
            token_prefix(&title("/sample/master.m3u8", "/sample/manifest.mpd")),
            "/sample/"
        );
        assert_eq!(
            token_prefix(&title("/t/1/hls/master.m3u8", "/t/1/dash/manifest.mpd")),
            "/t/1/"
        );
        assert_eq!(token_prefix(&title("/a/master.m3u8", "/b/manifest.mpd")), "/");
        assert_eq!(token_prefix(&title("", "/d/x.mpd")), "/d/");
    }
}
