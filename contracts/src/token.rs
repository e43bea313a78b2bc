//! Signed tokens: playback tokens that the control plane issues and every edge verifies, and
//! the same envelope for the control plane's own session tokens.
//!
//! Wire form (version 1): `v1.<claims>.<mac>`, where `<claims>` is the claims as JSON in
//! unpadded URL-safe base64 and `<mac>` is HMAC-SHA256 over `<kind>:v1.<claims>` in the same
//! base64. The kind (`playback`, `session`) is in the MAC but not on the wire, so a token of
//! one kind can never pass as the other. The claims name the key id (`kid`), so keys rotate
//! without downtime: sign with the new key while edges still hold the old one, and drop the
//! old one from the edges once every token it signed has expired (a dropped key's tokens are
//! then refused as `unknown_key`). The characters of a token need no escaping in a URL query.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;

/// The version this code writes and the only one it reads.
pub const TOKEN_VERSION: &str = "v1";
/// The query parameter that carries a playback token on segment and manifest URLs.
pub const TOKEN_PARAM: &str = "token";
/// The shortest secret accepted, in bytes: HMAC-SHA256 keys shorter than this are guessable.
pub const MIN_SECRET_LEN: usize = 32;
/// The longest token read; anything longer is refused unread.
pub const MAX_TOKEN_LEN: usize = 2048;

/// What a token is for: part of the MAC, so kinds cannot be swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Authorizes fetching media under a path prefix until an expiry.
    Playback,
    /// A signed-in account's session at the control plane.
    Session,
    /// An edge's credential towards steering (claims: [`EdgeClaims`]).
    Edge,
}

impl TokenKind {
    fn tag(self) -> &'static str {
        match self {
            TokenKind::Playback => "playback",
            TokenKind::Session => "session",
            TokenKind::Edge => "edge",
        }
    }
}

/// One signing key: an id carried in each token, and the secret.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenKey {
    /// Short name carried in every token it signs (`kid`), for example `2026-11`.
    pub id: String,
    /// The shared secret, at least [`MIN_SECRET_LEN`] bytes.
    pub secret: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs.
        f.debug_struct("TokenKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The claims of a playback token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackClaims {
    /// Id of the key that signed it.
    pub kid: String,
    /// Path prefix the token opens, for example `/sample/`: a prefix ending in `/` covers
    /// everything below it; one without covers that path and what is below `prefix/`.
    pub path: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// ISO 3166-1 alpha-2 country the play was authorized for, if the token is bound to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The playback session it belongs to, for logs and telemetry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The claims of an edge credential: which edge holds it. No expiry: a credential is
/// withdrawn by retiring the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeClaims {
    /// Id of the key that signed it.
    pub kid: String,
    /// The edge's id.
    pub sub: String,
}

/// Issues the credential of edge `edge_id`.
pub fn sign_edge(key: &TokenKey, edge_id: &str) -> String {
    let claims = EdgeClaims {
        kid: key.id.clone(),
        sub: edge_id.to_string(),
    };
    seal(key, TokenKind::Edge, &claims)
}

/// Why a token was refused; each has a stable machine-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No token on a request that needs one.
    #[error("a token is required")]
    Missing,
    /// Not in the `v1.<claims>.<mac>` form, or claims that do not decode.
    #[error("the token is malformed")]
    Malformed,
    /// Signed with a key this verifier does not hold (unknown, or retired).
    #[error("the token's key is unknown or retired")]
    UnknownKey,
    /// The MAC does not match: tampered, or signed with another secret.
    #[error("the token's signature does not match")]
    BadSignature,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Valid, but for another path.
    #[error("the token does not cover this path")]
    WrongPath,
    /// Valid, but bound to another country than the client's.
    #[error("the token is bound to another country")]
    WrongCountry,
}

impl Rejection {
    /// The machine-readable reason, used in response bodies and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Malformed => "malformed",
            Rejection::UnknownKey => "unknown_key",
            Rejection::BadSignature => "bad_signature",
            Rejection::Expired => "expired",
            Rejection::WrongPath => "wrong_path",
            Rejection::WrongCountry => "wrong_country",
        }
    }

    /// Every reason, for pre-registering metric labels.
    pub const ALL: [Rejection; 7] = [
        Rejection::Missing,
        Rejection::Malformed,
        Rejection::UnknownKey,
        Rejection::BadSignature,
        Rejection::Expired,
        Rejection::WrongPath,
        Rejection::WrongCountry,
    ];

    /// The HTTP status: 401 when no usable credential was given, 403 when it was given and
    /// does not allow this request.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Missing | Rejection::Malformed => 401,
            _ => 403,
        }
    }
}

/// A bad key set, named so that a config error can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An id that is empty or not made of `A-Za-z0-9._-`.
    #[error("key id {0:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadId(String),
    /// A secret shorter than [`MIN_SECRET_LEN`].
    #[error("the secret of key {0:?} is shorter than {MIN_SECRET_LEN} bytes")]
    ShortSecret(String),
    /// The same id twice.
    #[error("key id {0:?} appears twice")]
    Duplicate(String),
}

/// Checks a key list as given in a config file.
pub fn validate_keys(keys: &[TokenKey]) -> Result<(), KeyError> {
    let mut seen = std::collections::HashSet::new();
    for k in keys {
        let id_ok = !k.id.is_empty()
            && k.id.len() <= 64
            && k.id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(KeyError::BadId(k.id.clone()));
        }
        if k.secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::ShortSecret(k.id.clone()));
        }
        if !seen.insert(k.id.as_str()) {
            return Err(KeyError::Duplicate(k.id.clone()));
        }
    }
    Ok(())
}

/// The keys a verifier accepts, by id.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: HashMap<String, Vec<u8>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// A ring from validated keys.
    pub fn new(keys: &[TokenKey]) -> Result<Self, KeyError> {
        validate_keys(keys)?;
        Ok(KeyRing {
            keys: keys
                .iter()
                .map(|k| (k.id.clone(), k.secret.as_bytes().to_vec()))
                .collect(),
        })
    }

    /// True when the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Opens a token of `kind`: checks form, key and MAC, then decodes its claims.
    pub fn open<T: DeserializeOwned>(&self, kind: TokenKind, token: &str) -> Result<T, Rejection> {
        if token.is_empty() {
            return Err(Rejection::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(version), Some(claims_b64), Some(mac_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed);
        };
        if version != TOKEN_VERSION {
            return Err(Rejection::Malformed);
        }
        let claims_json = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| Rejection::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac_b64)
            .map_err(|_| Rejection::Malformed)?;
        // The key id is read before the MAC is checked (it says which key checks it); nothing
        // else of the claims is trusted until then.
        #[derive(Deserialize)]
        struct KeyId {
            kid: String,
        }
        let kid: KeyId = serde_json::from_slice(&claims_json).map_err(|_| Rejection::Malformed)?;
        let secret = self.keys.get(&kid.kid).ok_or(Rejection::UnknownKey)?;
        mac_over(secret, kind, claims_b64)
            .verify_slice(&mac)
            .map_err(|_| Rejection::BadSignature)?;
        serde_json::from_slice(&claims_json).map_err(|_| Rejection::Malformed)
    }

    /// Verifies a playback token for a request path at `now` (Unix seconds), from a client
    /// in `country` when the caller knows it.
    pub fn verify_playback(
        &self,
        token: &str,
        path: &str,
        now: u64,
        country: Option<&str>,
    ) -> Result<PlaybackClaims, Rejection> {
        let claims: PlaybackClaims = self.open(TokenKind::Playback, token)?;
        if now >= claims.exp {
            return Err(Rejection::Expired);
        }
        if !path_covered(&claims.path, path) {
            return Err(Rejection::WrongPath);
        }
        if let (Some(bound), Some(actual)) = (claims.country.as_deref(), country)
            && !bound.eq_ignore_ascii_case(actual)
        {
            return Err(Rejection::WrongCountry);
        }
        Ok(claims)
    }
}

fn mac_over(secret: &[u8], kind: TokenKind, claims_b64: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(kind.tag().as_bytes());
    mac.update(b":");
    mac.update(TOKEN_VERSION.as_bytes());
    mac.update(b".");
    mac.update(claims_b64.as_bytes());
    mac
}

/// Seals claims of `kind` with `key`; the claims must carry `kid` equal to the key's id.
pub fn seal<T: Serialize>(key: &TokenKey, kind: TokenKind, claims: &T) -> String {
    let json = serde_json::to_vec(claims).expect("claims serialize");
    let claims_b64 = URL_SAFE_NO_PAD.encode(json);
    let mac = mac_over(key.secret.as_bytes(), kind, &claims_b64)
        .finalize()
        .into_bytes();
    format!("{TOKEN_VERSION}.{claims_b64}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// Signs a playback token with `key` (whose id goes into the claims).
pub fn sign_playback(key: &TokenKey, mut claims: PlaybackClaims) -> String {
    claims.kid = key.id.clone();
    seal(key, TokenKind::Playback, &claims)
}

/// Whether `prefix` covers `path`. Paths with dot segments (also percent-encoded) or
/// backslashes are never covered: an upstream that normalizes them could otherwise serve a
/// path outside the prefix.
pub fn path_covered(prefix: &str, path: &str) -> bool {
    if !prefix.starts_with('/') || !path.starts_with('/') || path.contains('\\') {
        return false;
    }
    let dot_segment = path.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".." || lower.contains("%2f") || lower.contains("%5c")
    });
    if dot_segment {
        return false;
    }
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Compares two secrets without an early exit, so response time does not leak how much of
/// a guess matched.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of the token query parameter in a query string, if present.
pub fn token_in_query(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| match pair.split_once('=') {
        Some((TOKEN_PARAM, value)) => Some(value),
        None if pair == TOKEN_PARAM => Some(""),
        _ => None,
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn key(id: &str) -> TokenKey {
        TokenKey {
            id: id.into(),
            secret: format!("{id}-secret-that-is-long-enough-for-hmac"),
        }
    }

    fn claims(path: &str, exp: u64) -> PlaybackClaims {
        PlaybackClaims {
            kid: String::new(),
            path: path.into(),
            exp,
            country: Some("GB".into()),
            sid: Some("s-1".into()),
        }
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let k = key("k1");
        let ring = KeyRing::new(std::slice::from_ref(&k)).unwrap();
        let t = sign_playback(&k, claims("/sample/", 1000));
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{t}"
        );
        let c = ring
            .verify_playback(&t, "/sample/seg-0-00001.m4s", 999, Some("gb"))
            .unwrap();
        assert_eq!(c.kid, "k1");
        assert_eq!(c.sid.as_deref(), Some("s-1"));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let (k1, k2) = (key("k1"), key("k2"));
        let ring = KeyRing::new(std::slice::from_ref(&k1)).unwrap();
        let good = sign_playback(&k1, claims("/sample/", 1000));
        let v = |t: &str, path: &str, now: u64, cc: Option<&str>| ring.verify_playback(t, path, now, cc);
        let p = "/sample/a.m4s";
        assert_eq!(v("", p, 1, None), Err(Rejection::Missing));
        assert_eq!(v("garbage", p, 1, None), Err(Rejection::Malformed));
        assert_eq!(v("v2.e30.AA", p, 1, None), Err(Rejection::Malformed));
        assert_eq!(v(&good, p, 1000, None), Err(Rejection::Expired));
        assert_eq!(v(&good, "/other/a.m4s", 1, None), Err(Rejection::WrongPath));
        assert_eq!(v(&good, p, 1, Some("US")), Err(Rejection::WrongCountry));
        // Signed by a key the ring does not hold (for example one retired from it).
        assert_eq!(
            v(&sign_playback(&k2, claims("/sample/", 1000)), p, 1, None),
            Err(Rejection::UnknownKey)
        );
        // Same key id, other secret.
        let forged = TokenKey {
            id: "k1".into(),
            secret: "x".repeat(40),
        };
        assert_eq!(
            v(&sign_playback(&forged, claims("/", 1000)), p, 1, None),
            Err(Rejection::BadSignature)
        );
        // Claims swapped for wider ones, MAC kept.
        let (head, mac) = good.rsplit_once('.').unwrap();
        let wider = sign_playback(&k1, claims("/", u64::MAX));
        let wider_claims = wider.split('.').nth(1).unwrap();
        let tampered = format!("v1.{wider_claims}.{mac}");
        assert_ne!(head, format!("v1.{wider_claims}"));
        assert_eq!(v(&tampered, p, 1, None), Err(Rejection::BadSignature));
        // One flipped character of the MAC.
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            v(std::str::from_utf8(&flipped).unwrap(), p, 1, None),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn a_session_token_never_passes_as_a_playback_token() {
        let k = key("k1");
        let ring = KeyRing::new(std::slice::from_ref(&k)).unwrap();
        let mut c = claims("/", 1000);
        c.kid = "k1".into();
        let session = seal(&k, TokenKind::Session, &c);
        assert_eq!(
            ring.verify_playback(&session, "/a", 1, None),
            Err(Rejection::BadSignature)
        );
        assert!(ring.open::<PlaybackClaims>(TokenKind::Session, &session).is_ok());
    }

    #[test]
    fn rotation_accepts_old_and_new_keys_until_the_old_one_is_dropped() {
        let (old, new) = (key("2026-10"), key("2026-11"));
        let both = KeyRing::new(&[old.clone(), new.clone()]).unwrap();
        let from_old = sign_playback(&old, claims("/t/", 100));
        let from_new = sign_playback(&new, claims("/t/", 100));
        assert!(both.verify_playback(&from_old, "/t/x", 1, None).is_ok());
        assert!(both.verify_playback(&from_new, "/t/x", 1, None).is_ok());
        let only_new = KeyRing::new(std::slice::from_ref(&new)).unwrap();
        assert_eq!(
            only_new.verify_playback(&from_old, "/t/x", 1, None),
            Err(Rejection::UnknownKey)
        );
    }

    #[test]
    fn prefixes_cover_only_what_is_below_them() {
        assert!(path_covered("/sample/", "/sample/seg.m4s"));
        assert!(path_covered("/sample", "/sample"));
        assert!(path_covered("/sample", "/sample/seg.m4s"));
        assert!(!path_covered("/sample", "/sample2/seg.m4s"));
        assert!(!path_covered("/sample/", "/sample"));
        assert!(!path_covered("/sample/", "/sample/../secret/seg.m4s"));
        assert!(!path_covered("/sample/", "/sample/%2e%2E/secret/seg.m4s"));
        assert!(!path_covered("/sample/", "/sample/..%2fsecret/seg.m4s"));
        assert!(!path_covered("/sample/", "/sample/./seg.m4s"));
        assert!(!path_covered("/sample/", "/sample\\..\\x"));
        assert!(!path_covered("sample/", "sample/x"));
    }

    #[test]
    fn bad_key_sets_are_named() {
        assert_eq!(
            validate_keys(&[TokenKey {
                id: "k".into(),
                secret: "short".into()
            }]),
            Err(KeyError::ShortSecret("k".into()))
        );
        assert_eq!(validate_keys(&[key("a b")]), Err(KeyError::BadId("a b".into())));
        assert_eq!(
            validate_keys(&[key("a"), key("a")]),
            Err(KeyError::Duplicate("a".into()))
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn the_token_is_found_among_other_parameters() {
        assert_eq!(token_in_query(Some("CMCD=x&token=abc")), Some("abc"));
        assert_eq!(token_in_query(Some("tokens=abc")), None);
        assert_eq!(token_in_query(Some("token")), Some(""));
        assert_eq!(token_in_query(None), None);
    }
}
