//! Accounts: argon2id password hashes, and signed session tokens that carry the account id.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use strata_contracts::api::control_plane::{Account, Profile};
use strata_contracts::token::{KeyRing, Rejection, TokenKey, TokenKind, seal};

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Hashes a password (argon2id, random salt) into a PHC string.
pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password with a generated salt")
        .to_string()
}

/// Whether `password` matches a stored PHC string (false for a string that does not parse).
pub fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to check against when the account does not exist, so that a sign-in for an
/// unknown email takes as long as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that matches nothing"))
}

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Signing key id.
    pub kid: String,
    /// Account id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Issues a session token for `account` valid until `exp`.
pub fn issue_session(key: &TokenKey, account: &str, exp: i64) -> String {
    let claims = SessionClaims {
        kid: key.id.clone(),
        sub: account.to_string(),
        exp,
    };
    seal(key, TokenKind::Session, &claims)
}

/// The account id of a valid, unexpired session token.
pub fn verify_session(ring: &KeyRing, token: &str, now: i64) -> Result<String, Rejection> {
    let claims: SessionClaims = ring.open(TokenKind::Session, token)?;
    if now >= claims.exp {
        return Err(Rejection::Expired);
    }
    Ok(claims.sub)
}

/// A new account (fresh ids) for `email`, with one profile per name, or one named after the
/// email's local part when there are none.
pub fn new_account(email: &str, tier: &str, profile_names: &[String]) -> Account {
    let names = if profile_names.is_empty() {
        vec![email.split('@').next().unwrap_or("viewer").to_string()]
    } else {
        profile_names.to_vec()
    };
    Account {
        id: random_id(),
        email: email.to_string(),
        tier: tier.to_string(),
        profiles: names
            .into_iter()
            .map(|name| Profile {
                id: random_id(),
                name,
            })
            .collect(),
    }
}

/// A random id: 128 bits as 32 hex digits.
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(password_matches("correct horse", &h));
        assert!(!password_matches("correct horse!", &h));
        assert!(!password_matches("correct horse", "not a hash"));
        assert!(!password_matches("anything", decoy_hash()));
    }

    #[test]
    fn sessions_expire_and_name_their_account() {
        let key = TokenKey {
            id: "k".into(),
            secret: "s".repeat(32),
        };
        let ring = KeyRing::new(std::slice::from_ref(&key)).unwrap();
        let t = issue_session(&key, "acct-1", 100);
        assert_eq!(verify_session(&ring, &t, 99), Ok("acct-1".to_string()));
        assert_eq!(verify_session(&ring, &t, 100), Err(Rejection::Expired));
        assert_eq!(verify_session(&ring, "v1.x.y", 1), Err(Rejection::Malformed));
        assert_ne!(random_id(), random_id());
        assert_eq!(random_id().len(), 32);
    }
}
