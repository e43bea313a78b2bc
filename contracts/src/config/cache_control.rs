//! Syntax check for `Cache-Control` values written in config files (RFC 9111 section 5.2).

use super::FieldError;

/// Directives whose argument must be a number of seconds.
const DELTA_SECONDS: &[&str] = &["max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"];

/// Checks that `value` is a comma-separated list of `token` or `token=value` directives,
/// with a number where RFC 9111 and RFC 5861 require delta-seconds.
pub fn validate_cache_control(field: &str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "is empty; give at least one directive"));
    }
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (directive, None),
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(FieldError::new(
                field,
                format!("`{directive}` is not a directive"),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if DELTA_SECONDS.contains(&lower.as_str()) {
            match arg {
                Some(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => {}
                _ => {
                    return Err(FieldError::new(
                        field,
                        format!("`{name}` needs a whole number of seconds, as in `{name}=60`"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn accepts_common_values() {
        for v in [
            "public, max-age=31536000, immutable",
            "max-age=1, stale-while-revalidate=2",
            "no-store",
            "private, no-cache=\"set-cookie\"",
        ] {
            assert_eq!(validate_cache_control("f", v), Ok(()), "{v}");
        }
    }

    #[test]
    fn rejects_missing_or_non_numeric_seconds() {
        let e = validate_cache_control("cache_control.segment", "max-age=one").unwrap_err();
        assert_eq!(e.field, "cache_control.segment");
        assert!(e.reason.contains("max-age"), "{}", e.reason);
        assert!(validate_cache_control("f", "max-age").is_err());
        assert!(validate_cache_control("f", "s-maxage=-1").is_err());
    }

    #[test]
    fn rejects_empty_and_garbage() {
        assert!(validate_cache_control("f", "").is_err());
        assert!(validate_cache_control("f", "public,, max-age=1").is_err());
        assert!(validate_cache_control("f", "max age=1").is_err());
    }
}
