//! Recovery codes behind the domain's [`RecoveryCodes`] port: the single-use codes a user keeps on
//! paper in case the authenticator is lost.
//!
//! Each code is 80 random bits from aws-lc's CSPRNG (the port asks for at least 80), written as 16
//! characters of lower-case Crockford base32 — `0123456789abcdefghjkmnpqrstvwxyz`, without `i`,
//! `l`, `o` and `u`, so nothing copied from paper is ambiguous — and shown in groups of four:
//! `7k2m-q9xd-4hbt-wn3c`.
//!
//! What is stored is SHA-256 of the *normalised* code (the 16 characters, no dashes, lower-case).
//! A fast hash is right here, as for opaque tokens and unlike passwords: 80 bits of entropy leave
//! nothing to brute-force (2^80 guesses against a digest), and a fast hash keeps the lookup one
//! indexed equality.
//!
//! [`RecoveryCodes::recognise`] forgives what people do when they type a code back: surrounding
//! whitespace, spaces or dashes anywhere, upper case, and — as Crockford's decoding does — `i`/`l`
//! read as `1` and `o` as `0`. Anything else that is not exactly 16 characters of the alphabet is
//! refused before it is hashed, so it never reaches a store.

use aws_lc_rs::digest;
use bulwark_domain::mfa::RecoveryCodes;
use bulwark_domain::opaque::{MintError, TokenDigest};
use secrecy::SecretString;

/// Random bytes per code (80 bits).
pub const CODE_BYTES: usize = 10;
/// Characters in a normalised code (80 bits at 5 bits per character).
pub const CODE_CHARS: usize = 16;
/// Characters per dash-separated group when a code is shown.
pub const GROUP_CHARS: usize = 4;

/// Crockford's base32 alphabet, lower-case.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Mints recovery codes and recognises presented ones. Stateless: all randomness comes from
/// aws-lc's CSPRNG at each call.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecoveryCodeMinter;

impl RecoveryCodeMinter {
    /// The recovery-code minter.
    #[must_use]
    pub const fn new() -> Self {
        Self
    }
}

impl RecoveryCodes for RecoveryCodeMinter {
    fn mint(&self, count: usize) -> Result<Vec<(SecretString, TokenDigest)>, MintError> {
        (0..count).map(|_| mint_one()).collect()
    }

    fn recognise(&self, presented: &str) -> Option<TokenDigest> {
        normalise(presented).map(|code| digest_of(&code))
    }
}

/// One fresh code, grouped for display, with the digest of its normalised form.
fn mint_one() -> Result<(SecretString, TokenDigest), MintError> {
    let mut bytes = [0u8; CODE_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| MintError)?;
    let mut code = encode(&bytes);
    // The randomness lives on in the code only; this copy need not linger on the stack.
    bytes.fill(0);
    let digest = digest_of(&code);
    let mut shown = String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP_CHARS - 1);
    for (i, group) in code.chunks(GROUP_CHARS).enumerate() {
        if i > 0 {
            shown.push('-');
        }
        shown.extend(group.iter().map(|&b| char::from(b)));
    }
    code.fill(0);
    Ok((SecretString::from(shown), digest))
}

/// The 80 bits of `bytes` as 16 alphabet characters, most significant first.
fn encode(bytes: &[u8; CODE_BYTES]) -> [u8; CODE_CHARS] {
    let mut wide = [0u8; 16];
    wide[16 - CODE_BYTES..].copy_from_slice(bytes);
    let value = u128::from_be_bytes(wide);
    let mut out = [0u8; CODE_CHARS];
    for (i, c) in out.iter_mut().enumerate() {
        let shift = 5 * (CODE_CHARS - 1 - i);
        // Masked to five bits, so the index is below 32.
        *c = ALPHABET[((value >> shift) & 0x1f) as usize];
    }
    out
}

/// The 16 canonical characters of `presented`, or `None` when it is not a code's shape: trims,
/// drops ASCII spaces and dashes, lower-cases ASCII, maps `i`/`l` to `1` and `o` to `0`, and then
/// requires exactly 16 characters of the alphabet.
fn normalise(presented: &str) -> Option<[u8; CODE_CHARS]> {
    let mut out = [0u8; CODE_CHARS];
    let mut len = 0;
    for c in presented.trim().chars() {
        if c == ' ' || c == '-' {
            continue;
        }
        if !c.is_ascii() {
            return None;
        }
        let c = match c.to_ascii_lowercase() {
            'i' | 'l' => '1',
            'o' => '0',
            other => other,
        };
        // ASCII was checked above, so the `u8` conversion cannot fail.
        let byte = u8::try_from(c).ok()?;
        if !ALPHABET.contains(&byte) {
            return None;
        }
        *out.get_mut(len)? = byte;
        len += 1;
    }
    (len == CODE_CHARS).then_some(out)
}

/// SHA-256 of the normalised code.
fn digest_of(code: &[u8; CODE_CHARS]) -> TokenDigest {
    let digest = digest::digest(&digest::SHA256, code);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    TokenDigest(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use secrecy::ExposeSecret;

    use super::*;

    fn is_well_shaped(code: &str) -> bool {
        let groups: Vec<&str> = code.split('-').collect();
        groups.len() == CODE_CHARS / GROUP_CHARS
            && groups
                .iter()
                .all(|g| g.len() == GROUP_CHARS && g.bytes().all(|b| ALPHABET.contains(&b)))
    }

    #[test]
    fn minted_codes_are_distinct_well_shaped_and_recognise_to_their_digest() {
        let codes = RecoveryCodeMinter.mint(10).unwrap();

        assert_eq!(codes.len(), 10);
        let texts: HashSet<&str> = codes.iter().map(|(c, _)| c.expose_secret()).collect();
        assert_eq!(texts.len(), 10, "codes repeat");
        let digests: HashSet<[u8; 32]> = codes.iter().map(|(_, d)| d.0).collect();
        assert_eq!(digests.len(), 10, "digests repeat");
        for (code, digest) in &codes {
            let code = code.expose_secret();
            assert!(is_well_shaped(code), "{code}");
            assert_eq!(code.len(), 19);
            assert_eq!(RecoveryCodeMinter.recognise(code), Some(*digest), "{code}");
        }
    }

    #[test]
    fn minting_none_gives_none() {
        assert!(RecoveryCodeMinter.mint(0).unwrap().is_empty());
    }

    #[test]
    fn what_people_do_when_typing_a_code_gives_the_same_digest() {
        let canonical = RecoveryCodeMinter.recognise("abcdefghjkmnpqrs").unwrap();

        for typed in [
            "ABCD-EFGH-JKMN-PQRS",
            "abcd-efgh-jkmn-pqrs",
            "abcd efgh jkmn pqrs",
            "  AbCd-EfGh-JkMn-PqRs\n",
            "ab-cd--ef gh jk-mn pq-rs",
        ] {
            assert_eq!(
                RecoveryCodeMinter.recognise(typed),
                Some(canonical),
                "{typed:?}"
            );
        }
    }

    #[test]
    fn letters_that_look_like_digits_read_as_those_digits() {
        let canonical = RecoveryCodeMinter.recognise("1100-2345-6789-abcd").unwrap();

        for typed in [
            "il0o-2345-6789-abcd",
            "LIOO-2345-6789-ABCD",
            "1lo0 2345 6789 abcd",
        ] {
            assert_eq!(
                RecoveryCodeMinter.recognise(typed),
                Some(canonical),
                "{typed:?}"
            );
        }
    }

    #[test]
    fn the_digest_is_sha256_of_the_normalised_code() {
        let expected = digest::digest(&digest::SHA256, b"abcdefghjkmnpqrs");

        let digest = RecoveryCodeMinter.recognise("ABCD-EFGH-JKMN-PQRS").unwrap();

        assert_eq!(&digest.0[..], expected.as_ref());
    }

    #[test]
    fn input_without_a_codes_shape_is_rejected_before_hashing() {
        for bad in [
            "",
            "----",
            "abcd-efgh-jkmn-pqr",
            "abcd-efgh-jkmn-pqrst",
            "abcd-efgh-jkmn-pqru",
            "abcd-efgh-jkmn-pqr!",
            "abcd_efgh_jkmn_pqrs",
            "abcd\tefgh\tjkmn\tpqrs",
            "abcd-efgh-jkmn-pqré",
            "ａｂｃｄ-efgh-jkmn-pqrs",
            "abcd-efgh-jkmn-pqrs-abcd",
            "' or 1=1 --",
        ] {
            assert_eq!(RecoveryCodeMinter.recognise(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn different_codes_have_different_digests() {
        let a = RecoveryCodeMinter.recognise("0000-0000-0000-0000").unwrap();
        let b = RecoveryCodeMinter.recognise("0000-0000-0000-0001").unwrap();

        assert_ne!(a, b);
    }

    #[test]
    fn encoding_uses_every_bit_most_significant_first() {
        assert_eq!(&encode(&[0; CODE_BYTES]), b"0000000000000000");
        assert_eq!(&encode(&[0xff; CODE_BYTES]), b"zzzzzzzzzzzzzzzz");
        let mut one = [0u8; CODE_BYTES];
        one[CODE_BYTES - 1] = 1;
        assert_eq!(&encode(&one), b"0000000000000001");
        let mut top = [0u8; CODE_BYTES];
        top[0] = 0x80;
        assert_eq!(&encode(&top), b"g000000000000000");
    }

    #[test]
    fn debug_never_prints_a_code() {
        let codes = RecoveryCodeMinter.mint(1).unwrap();
        let (code, digest) = &codes[0];

        let printed = format!("{:?} {code:?} {digest:?} {RecoveryCodeMinter:?}", codes);

        assert!(!printed.contains(code.expose_secret()), "{printed}");
    }
}
