//! Refresh tokens: 256 random bits with a recognisable prefix, hashed with SHA-256 for storage.
//!
//! The `bwrt_` prefix lets secret scanners (and people) recognise a leaked token; the rest is
//! base64url. A presented string that does not have exactly this shape is rejected before any
//! database lookup.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_domain::session::{RefreshToken, RefreshTokenHash};
use secrecy::{ExposeSecret, SecretString};

use crate::keys::RandomnessUnavailable;

/// Prefix of every refresh token.
pub const PREFIX: &str = "bwrt_";
/// Random bytes per token (256 bits, ASVS 7.2.3 asks for at least 128).
pub const TOKEN_BYTES: usize = 32;
/// Length of a token string: the prefix and 43 base64url characters.
pub const TOKEN_LEN: usize = PREFIX.len() + 43;

/// A fresh token and its hash.
///
/// # Errors
/// [`RandomnessUnavailable`] when the CSPRNG fails.
pub fn generate() -> Result<(RefreshToken, RefreshTokenHash), RandomnessUnavailable> {
    let mut bytes = [0u8; TOKEN_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomnessUnavailable)?;
    let token = SecretString::from(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)));
    bytes.fill(0);
    let hash = hash_of(token.expose_secret());
    Ok((RefreshToken::new(token), hash))
}

/// The hash of a presented token, or `None` when it does not have a token's shape.
#[must_use]
pub fn parse_presented(presented: &str) -> Option<RefreshTokenHash> {
    let body = presented.strip_prefix(PREFIX)?;
    let well_formed = presented.len() == TOKEN_LEN
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| hash_of(presented))
}

fn hash_of(token: &str) -> RefreshTokenHash {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    RefreshTokenHash(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_round_trip_to_their_hash() {
        let (a, hash_a) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert!(a.secret().expose_secret().starts_with(PREFIX));
        assert_eq!(a.secret().expose_secret().len(), TOKEN_LEN);
        assert_ne!(a.secret().expose_secret(), b.secret().expose_secret());
        assert_eq!(parse_presented(a.secret().expose_secret()), Some(hash_a));
        assert_eq!(format!("{a:?}"), "RefreshToken([REDACTED])");
    }

    #[test]
    fn strings_without_a_tokens_shape_are_rejected_before_lookup() {
        let (token, _) = generate().unwrap();
        let valid = token.secret().expose_secret().to_owned();
        let too_long = format!("{valid}A");
        let other_prefix = valid.replacen(PREFIX, "bwat_", 1);
        let bad_char = format!("{}!", &valid[..TOKEN_LEN - 1]);
        for bad in [
            "",
            PREFIX,
            &too_long,
            &valid[..TOKEN_LEN - 1],
            &other_prefix,
            &bad_char,
            "' or 1=1 --",
        ] {
            assert_eq!(parse_presented(bad), None, "{bad:?}");
        }
    }
}
