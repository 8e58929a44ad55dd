//! Opaque tokens behind the domain's [`OpaqueTokens`] port: refresh, email-verification and
//! password-reset tokens.
//!
//! Every token is a prefix naming its kind followed by 256 random bits from aws-lc's CSPRNG in
//! base64url without padding (43 characters): `bwrt_…` (refresh), `bwev_…` (email verification),
//! `bwpr_…` (password reset), `bwhs_…` (webhook signing secret), `bwmf_…` (MFA sign-in challenge), `bwob_…` (OAuth browser binding). The prefix lets secret scanners — and people — tell a leaked token
//! and its kind at a glance. The digest that is stored is SHA-256 of the *whole* token string,
//! prefix included, so the same random body under another prefix has another digest: a token of one
//! kind can never be looked up as another, even if the prefix check were skipped.
//!
//! [`OpaqueTokens::recognise`] checks the prefix, the exact length and the base64url alphabet before
//! it hashes anything: input without a token's shape never reaches a store.
//!
//! Refresh tokens were minted by [`crate::refresh`] before this module existed; that module now
//! delegates here, and a test pins the two to the same bytes.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_domain::opaque::{MintError, MintedToken, OpaqueTokens, TokenDigest, TokenKind};
use secrecy::{ExposeSecret, SecretString};

use crate::keys::RandomnessUnavailable;

/// Random bytes per token (256 bits; ASVS 7.2.3 asks for at least 128).
pub const TOKEN_BYTES: usize = 32;
/// Length of the base64url (no padding) encoding of [`TOKEN_BYTES`] bytes.
pub const BODY_LEN: usize = 43;

/// The prefix of every token of `kind`. Each is five characters, and no prefix is a prefix of
/// another.
#[must_use]
pub const fn prefix(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Refresh => "bwrt_",
        TokenKind::EmailVerification => "bwev_",
        TokenKind::PasswordReset => "bwpr_",
        TokenKind::WebhookSecret => "bwhs_",
        TokenKind::MfaChallenge => "bwmf_",
        TokenKind::OAuthBrowser => "bwob_",
    }
}

/// The exact length of every token of `kind`.
#[must_use]
pub const fn token_len(kind: TokenKind) -> usize {
    prefix(kind).len() + BODY_LEN
}

/// Mints and recognises prefixed opaque tokens. Stateless: all randomness comes from aws-lc's
/// CSPRNG at each call.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrefixedTokens;

impl PrefixedTokens {
    /// The token minter.
    #[must_use]
    pub const fn new() -> Self {
        Self
    }
}

impl OpaqueTokens for PrefixedTokens {
    fn mint(&self, kind: TokenKind) -> Result<MintedToken, MintError> {
        let (secret, digest) = mint_with_prefix(prefix(kind)).map_err(|_| MintError)?;
        Ok(MintedToken {
            secret,
            digest: TokenDigest(digest),
        })
    }

    fn recognise(&self, kind: TokenKind, presented: &str) -> Option<TokenDigest> {
        recognise_with_prefix(prefix(kind), presented).map(TokenDigest)
    }
}

/// A fresh `prefix` + base64url(32 random bytes) and its digest. Shared with [`crate::refresh`].
pub(crate) fn mint_with_prefix(
    prefix: &str,
) -> Result<(SecretString, [u8; 32]), RandomnessUnavailable> {
    let mut bytes = [0u8; TOKEN_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomnessUnavailable)?;
    let token = SecretString::from(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)));
    // The random bytes live on in the token only; this copy need not linger on the stack.
    bytes.fill(0);
    let digest = digest_of(token.expose_secret());
    Ok((token, digest))
}

/// The digest of `presented` when it is `prefix` followed by exactly [`BODY_LEN`] base64url
/// characters; `None` otherwise. Shared with [`crate::refresh`].
pub(crate) fn recognise_with_prefix(prefix: &str, presented: &str) -> Option<[u8; 32]> {
    let body = presented.strip_prefix(prefix)?;
    let well_formed = body.len() == BODY_LEN
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| digest_of(presented))
}

/// SHA-256 of the whole token string. A fast hash is right for 256-bit random input (see
/// `bulwark_domain::opaque`).
fn digest_of(token: &str) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [TokenKind; 6] = [
        TokenKind::Refresh,
        TokenKind::EmailVerification,
        TokenKind::PasswordReset,
        TokenKind::WebhookSecret,
        TokenKind::MfaChallenge,
        TokenKind::OAuthBrowser,
    ];

    fn mint(kind: TokenKind) -> (String, TokenDigest) {
        let minted = PrefixedTokens.mint(kind).unwrap();
        (minted.secret.expose_secret().to_owned(), minted.digest)
    }

    #[test]
    fn a_minted_token_carries_its_kinds_prefix_and_recognises_to_its_digest() {
        for kind in KINDS {
            let (token, digest) = mint(kind);

            assert!(token.starts_with(prefix(kind)), "{token}");
            assert_eq!(token.len(), token_len(kind));
            assert_eq!(PrefixedTokens.recognise(kind, &token), Some(digest));
        }
    }

    #[test]
    fn two_tokens_are_never_the_same() {
        let (a, digest_a) = mint(TokenKind::PasswordReset);
        let (b, digest_b) = mint(TokenKind::PasswordReset);

        assert_ne!(a, b);
        assert_ne!(digest_a, digest_b);
    }

    #[test]
    fn a_token_of_one_kind_is_never_recognised_as_another() {
        for minted_as in KINDS {
            let (token, _) = mint(minted_as);
            for presented_as in KINDS.into_iter().filter(|k| *k != minted_as) {
                assert_eq!(
                    PrefixedTokens.recognise(presented_as, &token),
                    None,
                    "a {minted_as:?} token passed as {presented_as:?}"
                );
            }
        }
    }

    #[test]
    fn relabelling_a_token_with_another_prefix_gives_another_digest() {
        // Even a forger who swaps the prefix (so the shape check passes) looks up a digest that
        // no token of the other kind has.
        let (reset, reset_digest) = mint(TokenKind::PasswordReset);
        let relabelled = reset.replacen(
            prefix(TokenKind::PasswordReset),
            prefix(TokenKind::EmailVerification),
            1,
        );

        let digest = PrefixedTokens
            .recognise(TokenKind::EmailVerification, &relabelled)
            .unwrap();

        assert_ne!(digest, reset_digest);
    }

    #[test]
    fn strings_without_a_tokens_length_or_alphabet_are_rejected_before_hashing() {
        let (valid, _) = mint(TokenKind::EmailVerification);
        let too_long = format!("{valid}A");
        let too_short = &valid[..valid.len() - 1];
        let bad_char = format!("{}!", &valid[..valid.len() - 1]);
        let padded = format!("{}=", &valid[..valid.len() - 1]);
        let standard_alphabet = format!("{}+", &valid[..valid.len() - 1]);
        let upper_prefix = valid.to_uppercase();
        let spaced = format!(" {valid}");
        let non_ascii = format!("{}é", &valid[..valid.len() - 2]);
        for bad in [
            "",
            prefix(TokenKind::EmailVerification),
            too_long.as_str(),
            too_short,
            bad_char.as_str(),
            padded.as_str(),
            standard_alphabet.as_str(),
            upper_prefix.as_str(),
            spaced.as_str(),
            non_ascii.as_str(),
            "' or 1=1 --",
        ] {
            assert_eq!(
                PrefixedTokens.recognise(TokenKind::EmailVerification, bad),
                None,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_digest_is_sha256_of_the_whole_token_string() {
        let token = format!("bwpr_{}", "A".repeat(BODY_LEN));
        let expected = digest::digest(&digest::SHA256, token.as_bytes());

        let digest = PrefixedTokens
            .recognise(TokenKind::PasswordReset, &token)
            .unwrap();

        assert_eq!(&digest.0[..], expected.as_ref());
    }

    #[test]
    fn debug_never_prints_a_token() {
        let minted = PrefixedTokens.mint(TokenKind::PasswordReset).unwrap();
        let printed = format!("{minted:?} {:?}", minted.digest);
        assert!(
            !printed.contains(minted.secret.expose_secret()),
            "{printed}"
        );
        assert!(!printed.contains("bwpr_"), "{printed}");
    }
}
