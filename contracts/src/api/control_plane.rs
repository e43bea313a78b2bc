//! The control plane's API, `/v1/...` on its listener.
//!
//! Players:
//! - `POST /v1/sessions` with [`SignInRequest`] answers [`SignInResponse`]
//! - `POST /v1/playback` (`Authorization: Bearer <session>`) with [`PlaybackRequest`]
//!   answers [`PlaybackResponse`], or an [`ApiError`] whose `error` is a [`Refusal`] reason
//! - `GET /v1/plays/{play}/master.m3u8`, `.../hls/{media}.m3u8`, `.../manifest.mpd`: the
//!   play's manifests, renditions filtered and segment URLs tokenized
//! - `GET /v1/titles`, `GET /v1/titles/{id}`: the catalog
//! - `GET /v1/search?q=...&genre=...&year=...&limit=N` answers [`SearchResponse`]
//! - `GET /v1/browse?limit=N` answers [`BrowseResponse`]: rows by genre, new, trending
//!
//! Operators (`Authorization: Bearer <admin_token>`):
//! - `PUT /v1/admin/titles/{id}` with a [`Title`], `DELETE /v1/admin/titles/{id}`
//! - `POST /v1/admin/catalog` with a [`CatalogFile`] (`strata catalog import`)
//! - `POST /v1/admin/accounts` with [`NewAccount`] answers [`Account`]
//!
//! Times are RFC 3339 strings (`2026-11-29T00:00:00Z`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The version of [`CatalogFile`] this build reads and writes.
pub const CATALOG_VERSION: u32 = 1;

/// A point in time, Unix seconds inside, RFC 3339 on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.0.max(0) as u64);
        s.serialize_str(&humantime::format_rfc3339_seconds(t).to_string())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = humantime::parse_rfc3339_weak(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time: {e}")))?;
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is before 1970")))?
            .as_secs();
        Ok(Timestamp(secs as i64))
    }
}

/// A title in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Title {
    /// Stable id, also the URL segment: letters, digits, `-`, `_`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Short description.
    #[serde(default)]
    pub synopsis: String,
    /// Genres, for browse rows and search facets.
    #[serde(default)]
    pub genres: Vec<String>,
    /// Cast members.
    #[serde(default)]
    pub cast: Vec<String>,
    /// Release year.
    #[serde(default)]
    pub year: u32,
    /// Running time, minutes.
    #[serde(default)]
    pub runtime_min: u32,
    /// Artwork URL.
    #[serde(default)]
    pub artwork: String,
    /// Path of the packaged HLS master playlist on the origin.
    #[serde(default)]
    pub hls: String,
    /// Path of the packaged DASH MPD on the origin.
    #[serde(default)]
    pub dash: String,
    /// The packaged renditions.
    #[serde(default)]
    pub renditions: Vec<Rendition>,
    /// Where, when, for whom it may be watched.
    #[serde(default)]
    pub licensing: Licensing,
}

/// One packaged rendition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendition {
    /// Representation id (DASH) or media playlist (HLS).
    pub id: String,
    /// RFC 6381 codec string.
    pub codec: String,
    /// Width, pixels (0 for audio).
    #[serde(default)]
    pub width: u32,
    /// Height, pixels (0 for audio).
    #[serde(default)]
    pub height: u32,
    /// Bits per second.
    pub bitrate: u64,
}

/// Licensing rules of a title. Empty lists impose nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Licensing {
    /// Availability windows; with none, the title is available everywhere, always.
    #[serde(default)]
    pub windows: Vec<Window>,
    /// Subscription tiers that may watch; empty: all.
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Device classes that may play; empty: all.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Periods in which the title is not shown in some countries.
    #[serde(default)]
    pub blackouts: Vec<Window>,
}

/// A period, in some countries or (with `countries` empty) everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// ISO 3166-1 alpha-2 codes; empty: every country.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Start, inclusive.
    pub start: Timestamp,
    /// End, exclusive.
    pub end: Timestamp,
}

/// A catalog file for `strata catalog import` and `POST /v1/admin/catalog`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    /// Format version, [`CATALOG_VERSION`].
    pub version: u32,
    /// Titles, created or replaced by id.
    pub titles: Vec<Title>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    /// Titles created or replaced.
    pub imported: u64,
}

/// A page of titles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TitleList {
    /// Titles, by id.
    pub titles: Vec<Title>,
    /// Titles in the whole catalog.
    pub total: u64,
}

/// What discovery shows of a title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TitleSummary {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Release year.
    pub year: u32,
    /// Genres.
    pub genres: Vec<String>,
    /// Artwork URL.
    pub artwork: String,
}

impl From<&Title> for TitleSummary {
    fn from(t: &Title) -> Self {
        TitleSummary {
            id: t.id.clone(),
            name: t.name.clone(),
            year: t.year,
            genres: t.genres.clone(),
            artwork: t.artwork.clone(),
        }
    }
}

/// One value of a facet and how many matching titles have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetCount {
    /// The value (a genre, or a year as text).
    pub value: String,
    /// Matching titles with it.
    pub count: u64,
}

/// Search results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// Titles matching, best first.
    pub results: Vec<TitleSummary>,
    /// How many titles match in all.
    pub total: u64,
    /// Genre and year counts over every match, for narrowing down.
    pub facets: SearchFacets,
    /// True while the index lags the catalog (a rebuild failed; the last good index serves).
    pub stale: bool,
}

/// Facet counts of a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchFacets {
    /// By genre, most first.
    pub genres: Vec<FacetCount>,
    /// By year, most first.
    pub years: Vec<FacetCount>,
}

/// One row of the browse page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowseRow {
    /// `new`, `trending` or `genre:<name>`.
    pub id: String,
    /// Heading to show.
    pub name: String,
    /// Titles in the row's order.
    pub titles: Vec<TitleSummary>,
}

/// The browse page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowseResponse {
    /// Rows: new, trending (plays in the last 7 days), then one per genre.
    pub rows: Vec<BrowseRow>,
}

/// An account to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Sign-in name.
    pub email: String,
    /// Password, at least 8 characters; stored as an argon2id hash.
    pub password: String,
    /// Subscription tier, one of the config's `tiers`.
    pub tier: String,
    /// Profile names; one named after the email when empty.
    #[serde(default)]
    pub profiles: Vec<String>,
}

/// A profile of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// An account, as the API shows it (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Id.
    pub id: String,
    /// Sign-in name.
    pub email: String,
    /// Subscription tier.
    pub tier: String,
    /// Profiles.
    pub profiles: Vec<Profile>,
}

/// Sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// Sign-in name.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInResponse {
    /// Bearer credential for the player's requests.
    pub session: String,
    /// When it expires.
    pub expires: Timestamp,
    /// The account signed in.
    pub account: Account,
}

/// Start a play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybackRequest {
    /// Title id.
    pub title: String,
    /// Device class, one of the config's `devices`.
    pub device: String,
    /// Profile id; the account's first profile when absent.
    #[serde(default)]
    pub profile: Option<String>,
}

/// A play that may start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackResponse {
    /// Id of this play (its manifests live under `/v1/plays/{play}/`).
    pub play: String,
    /// Title id.
    pub title: String,
    /// HLS master playlist for this play, when the title has one.
    pub hls_url: Option<String>,
    /// DASH MPD for this play, when the title has one.
    pub dash_url: Option<String>,
    /// Content steering URL, when steering is configured.
    pub steering_url: Option<String>,
    /// Base URL of the CDN the play's segments start on (steering's choice when it is
    /// configured and answers, else the configured CDN).
    pub cdn: String,
    /// The playback token that segment URLs carry.
    pub token: String,
    /// When the token and manifests expire.
    pub expires: Timestamp,
    /// Tallest video rendition this play may get.
    pub max_height: u32,
    /// The client's country as looked up, if known.
    pub country: Option<String>,
}

/// Why a play was refused: the machine-readable `error` of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No valid session.
    Unauthenticated,
    /// No such title.
    UnknownTitle,
    /// The device class is not one the service knows.
    UnknownDevice,
    /// The profile is not one of the account's.
    UnknownProfile,
    /// The account's tier may not watch the title.
    NotEntitled,
    /// The title may not be played on this device class.
    DeviceNotAllowed,
    /// The title is not licensed for the client's country (or it is unknown).
    GeoBlocked,
    /// Licensed for the country, but not at this time.
    NotAvailable,
    /// Blacked out in the client's country now.
    Blackout,
    /// No rendition fits the tier and device.
    NoPlayableRendition,
}

impl Refusal {
    /// The HTTP status of this refusal.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Unauthenticated => 401,
            Refusal::UnknownTitle => 404,
            Refusal::UnknownDevice | Refusal::UnknownProfile => 400,
            Refusal::GeoBlocked => 451,
            _ => 403,
        }
    }

    /// The reason as written on the wire.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::UnknownTitle => "unknown_title",
            Refusal::UnknownDevice => "unknown_device",
            Refusal::UnknownProfile => "unknown_profile",
            Refusal::NotEntitled => "not_entitled",
            Refusal::DeviceNotAllowed => "device_not_allowed",
            Refusal::GeoBlocked => "geo_blocked",
            Refusal::NotAvailable => "not_available",
            Refusal::Blackout => "blackout",
            Refusal::NoPlayableRendition => "no_playable_rendition",
        }
    }
}

/// Every error answer: a machine-readable reason and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable reason (`geo_blocked`, `bad_request`, `unauthorized`, ...).
    pub error: String,
    /// What happened, for people.
    pub message: String,
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_on_the_wire() {
        let w: Window =
            serde_json::from_str(r#"{"start":"2026-01-01T00:00:00Z","end":"2026-01-02T00:00:00Z"}"#).unwrap();
        assert_eq!(w.end.0 - w.start.0, 86_400);
        assert_eq!(
            serde_json::to_string(&w.start).unwrap(),
            "\"2026-01-01T00:00:00Z\""
        );
        let bad = serde_json::from_str::<Window>(r#"{"start":"yesterday","end":"2026-01-02T00:00:00Z"}"#);
        assert!(bad.unwrap_err().to_string().contains("yesterday"));
    }

    #[test]
    fn refusal_reasons_match_their_serde_names() {
        for r in [
            Refusal::GeoBlocked,
            Refusal::NoPlayableRendition,
            Refusal::Unauthenticated,
        ] {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.reason()));
        }
    }
}
