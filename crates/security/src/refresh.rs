//! Refresh tokens: 256 random bits with a recognisable prefix, hashed with SHA-256 for storage.
//!
//! The `bwrt_` prefix lets secret scanners (and people) recognise a leaked token; the rest is
//! base64url. A presented string that does not have exactly this shape is rejected before any
//! database lookup.
//!
//! The minting and recognising live in [`crate::opaque`], which makes every kind of opaque token;
//! these functions are the refresh-specific face of it, in the session module's own types. A token
//! from either is the same token (`refresh_and_opaque_tokens_are_byte_compatible`).

use bulwark_domain::opaque::TokenKind;
use bulwark_domain::session::{RefreshToken, RefreshTokenHash};

use crate::keys::RandomnessUnavailable;
use crate::opaque;

/// Prefix of every refresh token.
pub const PREFIX: &str = opaque::prefix(TokenKind::Refresh);
/// Random bytes per token (256 bits, ASVS 7.2.3 asks for at least 128).
pub const TOKEN_BYTES: usize = opaque::TOKEN_BYTES;
/// Length of a token string: the prefix and 43 base64url characters.
pub const TOKEN_LEN: usize = opaque::token_len(TokenKind::Refresh);

/// A fresh token and its hash.
///
/// # Errors
/// [`RandomnessUnavailable`] when the CSPRNG fails.
pub fn generate() -> Result<(RefreshToken, RefreshTokenHash), RandomnessUnavailable> {
    let (token, digest) = opaque::mint_with_prefix(PREFIX)?;
    Ok((RefreshToken::new(token), RefreshTokenHash(digest)))
}

/// The hash of a presented token, or `None` when it does not have a token's shape.
#[must_use]
pub fn parse_presented(presented: &str) -> Option<RefreshTokenHash> {
    opaque::recognise_with_prefix(PREFIX, presented).map(RefreshTokenHash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_domain::opaque::OpaqueTokens;
    use secrecy::ExposeSecret;

    use crate::opaque::PrefixedTokens;

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

    #[test]
    fn refresh_and_opaque_tokens_are_byte_compatible() {
        // Tokens already handed out must keep working: both paths agree on shape and digest.
        let (token, hash) = generate().unwrap();
        assert_eq!(
            PrefixedTokens.recognise(TokenKind::Refresh, token.secret().expose_secret()),
            Some(bulwark_domain::opaque::TokenDigest(hash.0))
        );
        let minted = PrefixedTokens.mint(TokenKind::Refresh).unwrap();
        assert_eq!(
            parse_presented(minted.secret.expose_secret()).map(|h| h.0),
            Some(minted.digest.0)
        );
        // The digest is still SHA-256 of the whole string, as stored since the first release.
        let fixed = format!("{PREFIX}{}", "x".repeat(43));
        let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, fixed.as_bytes());
        assert_eq!(&parse_presented(&fixed).unwrap().0[..], expected.as_ref());
    }
}
