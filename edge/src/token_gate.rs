//! The playback-token check on player requests: which requests need a token, and whether the
//! one they carry opens the requested path now. The token format is the contracts crate's.

use std::time::{SystemTime, UNIX_EPOCH};
use strata_contracts::config::edge::TokenConfig;
use strata_contracts::token::{KeyError, KeyRing, Rejection, token_in_query};

/// Verifies playback tokens with the configured keys.
#[derive(Debug, Clone)]
pub struct TokenGate {
    ring: KeyRing,
    exempt: Vec<String>,
}

impl TokenGate {
    /// The gate for a config, or `None` when tokens are not enforced.
    pub fn from_config(config: &TokenConfig) -> Result<Option<Self>, KeyError> {
        if !config.enforce {
            return Ok(None);
        }
        Ok(Some(TokenGate {
            ring: KeyRing::new(&config.keys)?,
            exempt: config.exempt_paths.clone(),
        }))
    }

    /// Whether a request for `path` with `query` may be served at `now` (Unix seconds).
    pub fn check(&self, path: &str, query: Option<&str>, now: u64) -> Result<(), Rejection> {
        if self.exempt.iter().any(|p| path.starts_with(p.as_str())) {
            return Ok(());
        }
        let token = token_in_query(query).ok_or(Rejection::Missing)?;
        // The edge has no client geography of its own yet: a country-bound token is checked
        // for country by the control plane when it is issued.
        self.ring.verify_playback(token, path, now, None).map(|_| ())
    }

    /// [`Self::check`] at the current time.
    pub fn check_now(&self, path: &str, query: Option<&str>) -> Result<(), Rejection> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.check(path, query, now)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use strata_contracts::token::{PlaybackClaims, TokenKey, sign_playback};

    fn setup() -> (TokenGate, TokenKey) {
        let key = TokenKey {
            id: "k1".into(),
            secret: "0123456789abcdef0123456789abcdef".into(),
        };
        let config = TokenConfig {
            enforce: true,
            keys: vec![key.clone()],
            exempt_paths: vec!["/artwork/".into()],
        };
        (TokenGate::from_config(&config).unwrap().unwrap(), key)
    }

    #[test]
    fn exempt_paths_pass_and_others_need_a_token() {
        let (gate, key) = setup();
        assert_eq!(gate.check("/artwork/a.jpg", None, 5), Ok(()));
        assert_eq!(gate.check("/sample/a.m4s", None, 5), Err(Rejection::Missing));
        assert_eq!(
            gate.check("/sample/a.m4s", Some("CMCD=x"), 5),
            Err(Rejection::Missing)
        );
        let token = sign_playback(
            &key,
            PlaybackClaims {
                kid: String::new(),
                path: "/sample/".into(),
                exp: 10,
                country: None,
                sid: None,
            },
        );
        let query = format!("CMCD=br%3D1&token={token}");
        assert_eq!(gate.check("/sample/a.m4s", Some(&query), 5), Ok(()));
        assert_eq!(
            gate.check("/sample/a.m4s", Some(&query), 10),
            Err(Rejection::Expired)
        );
    }

    #[test]
    fn no_gate_when_not_enforced() {
        assert!(TokenGate::from_config(&TokenConfig::default()).unwrap().is_none());
    }
}
