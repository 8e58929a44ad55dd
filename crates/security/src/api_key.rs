//! API keys behind the domain's [`ApiKeyTokens`] port: `bwk_<prefix>_<secret>`.
//!
//! - The **prefix** is 12 characters of lower-case base32 (60 random bits): public, shown in
//!   listings, and the key's row is found by it with one indexed equality — no scan, no digest
//!   index to probe.
//! - The **secret** is 256 random bits from aws-lc's CSPRNG, base64url without padding (43
//!   characters). It is never stored: the row keeps SHA-256 of the *whole* key. A fast hash is
//!   right, unlike for passwords: there are 256 bits to guess, so there is nothing to brute-force.
//! - After the lookup the digests are compared in constant time, so a response's timing says
//!   nothing about how much of a guessed secret was right.
//!
//! [`ApiKeyTokens::recognise`] checks the exact shape (prefix `bwk_`, alphabet and lengths) before
//! anything is hashed or looked up. The `bwk_` prefix lets secret scanners find leaked keys.

use aws_lc_rs::{constant_time, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_domain::api_key::{ApiKeyTokens, KEY_PREFIX, MintedApiKey};
use bulwark_domain::opaque::{MintError, TokenDigest};
use secrecy::SecretString;

/// Characters of the public prefix.
pub const PREFIX_LEN: usize = 12;
/// Characters of the secret (32 bytes in base64url without padding).
pub const SECRET_LEN: usize = 43;
/// The RFC 4648 base32 alphabet, lower-cased.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Mints and recognises API keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrefixedApiKeys;

fn digest_of(key: &str) -> TokenDigest {
    let d = digest::digest(&digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    TokenDigest(out)
}

impl ApiKeyTokens for PrefixedApiKeys {
    fn mint(&self) -> Result<MintedApiKey, MintError> {
        let mut prefix_bytes = [0u8; PREFIX_LEN];
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut prefix_bytes).map_err(|_| MintError)?;
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| MintError)?;
        // Five bits of each random byte: 12 × 5 = 60 bits, uniform over the alphabet.
        let prefix: String = prefix_bytes
            .iter()
            .map(|b| char::from(BASE32[usize::from(b & 0x1f)]))
            .collect();
        let key = format!("{KEY_PREFIX}{prefix}_{}", URL_SAFE_NO_PAD.encode(secret));
        secret.fill(0);
        let digest = digest_of(&key);
        Ok(MintedApiKey {
            key: SecretString::from(key),
            prefix,
            digest,
        })
    }

    fn recognise(&self, presented: &str) -> Option<(String, TokenDigest)> {
        let rest = presented.strip_prefix(KEY_PREFIX)?;
        let (prefix, secret) = rest.split_once('_')?;
        let well_formed = prefix.len() == PREFIX_LEN
            && prefix.bytes().all(|b| BASE32.contains(&b))
            && secret.len() == SECRET_LEN
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| (prefix.to_owned(), digest_of(presented)))
    }

    fn same(&self, stored: &TokenDigest, presented: &TokenDigest) -> bool {
        constant_time::verify_slices_are_equal(&stored.0, &presented.0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_minted_key_has_its_shape_and_is_recognised_with_its_own_digest() {
        let minted = PrefixedApiKeys.mint().unwrap();
        let key = minted.key.expose_secret();
        assert_eq!(key.len(), KEY_PREFIX.len() + PREFIX_LEN + 1 + SECRET_LEN);
        assert!(key.starts_with(&format!("bwk_{}_", minted.prefix)));
        let (prefix, digest) = PrefixedApiKeys.recognise(key).unwrap();
        assert_eq!(prefix, minted.prefix);
        assert!(PrefixedApiKeys.same(&minted.digest, &digest));
    }

    #[test]
    fn keys_differ_and_a_changed_secret_does_not_match() {
        let a = PrefixedApiKeys.mint().unwrap();
        let b = PrefixedApiKeys.mint().unwrap();
        assert_ne!(a.key.expose_secret(), b.key.expose_secret());
        assert_ne!(a.prefix, b.prefix);
        let mut forged = a.key.expose_secret().to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        let (prefix, digest) = PrefixedApiKeys.recognise(&forged).unwrap();
        assert_eq!(prefix, a.prefix);
        assert!(!PrefixedApiKeys.same(&a.digest, &digest));
    }

    #[test]
    fn anything_without_a_keys_exact_shape_is_not_recognised() {
        let key = PrefixedApiKeys.mint().unwrap();
        let key = key.key.expose_secret();
        let secret = "A".repeat(SECRET_LEN);
        for bad in [
            String::new(),
            "bwk_".to_owned(),
            key[..key.len() - 1].to_owned(),
            format!("{key}A"),
            key.replacen("bwk_", "bwx_", 1),
            format!("bwk_ABCDEFGHIJKL_{secret}"),
            format!("bwk_abcdefghijk1_{secret}"),
            format!("bwk_abcdefghijkl_{}", "A".repeat(SECRET_LEN - 1) + "="),
            format!("bwk_abcdefghijkl{secret}"),
            "eyJhbGciOiJFZERTQSJ9.e30.sig".to_owned(),
        ] {
            assert!(PrefixedApiKeys.recognise(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let minted = PrefixedApiKeys.mint().unwrap();
        let printed = format!("{minted:?}");
        assert!(!printed.contains(minted.key.expose_secret()));
    }
}
