//! TOTP (RFC 6238) behind the domain's [`Totp`] port: six digits, 30-second steps, HMAC-SHA1 —
//! the parameters every authenticator app understands, and the only ones some of them do.
//!
//! **Why HOTP is written here and not taken from `totp-rs`.** The one cryptographic operation,
//! HMAC-SHA1, comes from aws-lc-rs like every other primitive in this crate; what is written by
//! hand is the glue around it — RFC 4226's dynamic truncation (a dozen lines) and the step window —
//! pinned by the RFC 6238 Appendix B test vectors below. `totp-rs` 6, even without default
//! features, always depends on RustCrypto's `hmac`, `sha1` and `sha2`: a second crypto stack holding
//! the TOTP secret, against this crate's one-backend rule, for no gain in what we need. (SHA-1 is
//! fine here: HMAC needs only a pseudo-random function, which SHA-1 still is; aws-lc names the
//! algorithm `..._FOR_LEGACY_USE_ONLY` because SHA-1 is broken for collisions, not for HMAC.)
//!
//! Base32 (RFC 4648, no padding) is also written here, for the same reason it is short: 160 bits
//! always make 32 characters, and the RFC's own vectors test it.
//!
//! **Verification** accepts exactly six ASCII digits (surrounding whitespace trimmed, nothing else
//! forgiven), compares the code with those of the step of `now` and one step either side in
//! constant time, and always computes and compares all three, so the time it takes says neither
//! whether nor which step matched. Refusing a step that was already accepted (replay) is the
//! caller's job: it is the one that remembers.
//!
//! **Enrolment** shows the secret three ways: base32 for typing, the `otpauth://` URL (Google's Key
//! URI format) and that URL as a QR code, drawn as a standalone SVG from `qrcodegen`'s module grid —
//! no image crates, no scripts, no external references, so it can be inlined into any page.

use std::fmt::Write as _;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use bulwark_domain::mfa::{Totp, TotpEnrolment};
use bulwark_domain::opaque::MintError;
use qrcodegen::{QrCode, QrCodeEcc};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use time::OffsetDateTime;

/// Random bytes in a TOTP secret: 160 bits, the HMAC-SHA1 output size RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// Digits in a code.
pub const DIGITS: usize = 6;
/// Seconds in a time step.
pub const PERIOD_SECONDS: i64 = 30;
/// Modules of blank margin around the QR code (the quiet zone ISO/IEC 18004 requires).
pub const QR_QUIET_ZONE: i32 = 4;

/// `10^DIGITS`: a code is the truncated HMAC modulo this.
const CODE_MODULUS: u32 = 1_000_000;
/// RFC 4648's base32 alphabet.
const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Mints, shows and verifies TOTP secrets for one issuer (the service's name, as authenticator
/// apps label the entry). Stateless apart from the issuer; all randomness comes from aws-lc's
/// CSPRNG at each call.
#[derive(Debug, Clone)]
pub struct TotpAuthenticator {
    issuer: String,
}

impl TotpAuthenticator {
    /// An authenticator whose enrolments name `issuer` (e.g. "Bulwark").
    #[must_use]
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
        }
    }

    /// The issuer shown in authenticator apps.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The three representations of `secret` for `account`.
    fn enrolment(&self, secret: SecretSlice<u8>, account: &str) -> TotpEnrolment {
        let secret_base32 = base32_encode(secret.expose_secret());
        let issuer = percent_encode(&self.issuer);
        let otpauth_url = format!(
            "otpauth://totp/{issuer}:{account}?secret={secret_base32}&issuer={issuer}\
             &algorithm=SHA1&digits={DIGITS}&period={PERIOD_SECONDS}",
            account = percent_encode(account),
        );
        let qr_svg = qr_svg(&otpauth_url);
        TotpEnrolment {
            secret,
            secret_base32: SecretString::from(secret_base32),
            otpauth_url: SecretString::from(otpauth_url),
            qr_svg: SecretString::from(qr_svg),
        }
    }
}

impl Totp for TotpAuthenticator {
    fn enrol(&self, account: &str) -> Result<TotpEnrolment, MintError> {
        let mut bytes = [0u8; SECRET_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| MintError)?;
        let secret = SecretSlice::from(bytes.to_vec());
        // The secret lives on in the `SecretSlice` only; this copy need not linger on the stack.
        bytes.fill(0);
        Ok(self.enrolment(secret, account))
    }

    fn show(&self, secret: &SecretSlice<u8>, account: &str) -> TotpEnrolment {
        self.enrolment(SecretSlice::from(secret.expose_secret().to_vec()), account)
    }

    fn verify(&self, secret: &SecretSlice<u8>, code: &str, now: OffsetDateTime) -> Option<i64> {
        let presented = code.trim().as_bytes();
        // The shape says nothing about the secret, so rejecting it early leaks nothing.
        if presented.len() != DIGITS || !presented.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let unix = now.unix_timestamp();
        if unix < 0 {
            return None;
        }
        let current = unix / PERIOD_SECONDS;
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.expose_secret());

        // All three steps are computed and compared whatever happens, latest first, so a match
        // of an earlier step overwrites a later one: if two steps ever share a code (one chance
        // in a million), the earlier step is reported and a replay check on it stays strict.
        let mut matched = None;
        for step in [current + 1, current, current - 1] {
            // Only step -1 (the first 30 s of 1970) has no counter; that depends on the clock,
            // not on the secret.
            let Ok(counter) = u64::try_from(step) else {
                continue;
            };
            let expected = hotp(&key, counter);
            if verify_slices_are_equal(&expected, presented).is_ok() {
                matched = Some(step);
            }
        }
        matched
    }
}

/// The code an authenticator app shows at `unix_time` for a secret given in base32, as the setup
/// answer gives it — what a client (or a test) computes. `None` for text that is not base32 or
/// a time before 1970.
#[must_use]
pub fn code_at(secret_base32: &str, unix_time: i64) -> Option<String> {
    if unix_time < 0 {
        return None;
    }
    let mut bytes = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for c in secret_base32.trim_end_matches('=').bytes() {
        let value = BASE32_ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | u32::try_from(value).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
        buffer &= (1 << bits) - 1;
    }
    let counter = u64::try_from(unix_time / PERIOD_SECONDS).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &bytes);
    String::from_utf8(hotp(&key, counter).to_vec()).ok()
}

/// RFC 4226 HOTP: HMAC-SHA1 of the big-endian counter, dynamically truncated to 31 bits and
/// reduced to [`DIGITS`] zero-padded ASCII digits.
fn hotp(key: &hmac::Key, counter: u64) -> [u8; DIGITS] {
    let tag = hmac::sign(key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // SHA-1's output is 20 bytes, so `mac[19]` exists and `offset + 3 <= 18`: no index can fail.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let truncated = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    let mut value = truncated % CODE_MODULUS;
    let mut code = [b'0'; DIGITS];
    for digit in code.iter_mut().rev() {
        // `value % 10 < 10`, so the cast cannot truncate.
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    code
}

/// RFC 4648 base32 without padding.
fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[((buffer >> bits) & 0x1f) as usize],
            ));
        }
        // Keep only the bits not yet written, so the buffer never grows past 12 bits.
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[((buffer << (5 - bits)) & 0x1f) as usize],
        ));
    }
    out
}

/// Percent-encodes `text` for both the label (path) and the query of the `otpauth://` URL: every
/// byte but ASCII letters, digits and `*-._` is escaped. `form_urlencoded` writes a space as `+`,
/// which in a path is a literal plus (and some authenticators read it so in the query too), so
/// spaces become `%20` instead — safe to rewrite, since a literal `+` is already `%2B` by then.
fn percent_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `text` as a QR code (medium error correction) in a standalone SVG document: a white
/// background and one `<path>` of the dark modules, with a [`QR_QUIET_ZONE`]-module margin.
///
/// A QR code holds at most 2,331 bytes at medium error correction; the `otpauth://` URL of an
/// email account (at most 254 bytes, 762 percent-encoded) and a sane issuer is far below that. If
/// it ever were not, the SVG is left blank — the user can still type the base32 secret — and a
/// warning is logged (without the URL, which holds the secret).
fn qr_svg(text: &str) -> String {
    let qr = match QrCode::encode_text(text, QrCodeEcc::Medium) {
        Ok(qr) => Some(qr),
        Err(_) => {
            tracing::warn!(
                url_len = text.len(),
                "the otpauth URL is too long for a QR code; the enrolment QR code is blank"
            );
            None
        }
    };
    let modules = qr.as_ref().map_or(0, QrCode::size);
    let side = modules + 2 * QR_QUIET_ZONE;
    let mut path = String::new();
    if let Some(qr) = &qr {
        // One subpath per horizontal run of dark modules keeps the document small.
        for y in 0..modules {
            let mut x = 0;
            while x < modules {
                if !qr.get_module(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < modules && qr.get_module(x, y) {
                    x += 1;
                }
                let run = x - start;
                // Writing to a `String` cannot fail.
                let _ = write!(
                    path,
                    "M{},{}h{run}v1h-{run}z",
                    start + QR_QUIET_ZONE,
                    y + QR_QUIET_ZONE
                );
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\
         <path fill=\"#000000\" d=\"{path}\"/></svg>"
    )
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    /// The RFC 6238 Appendix B seed for SHA-1: the ASCII bytes "12345678901234567890".
    fn rfc_secret() -> SecretSlice<u8> {
        SecretSlice::from(b"12345678901234567890".to_vec())
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn code_at(secret: &SecretSlice<u8>, unix: i64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.expose_secret());
        let counter = u64::try_from(unix / PERIOD_SECONDS).unwrap();
        String::from_utf8(hotp(&key, counter).to_vec()).unwrap()
    }

    fn authenticator() -> TotpAuthenticator {
        TotpAuthenticator::new("Bulwark")
    }

    /// Test-only RFC 4648 decoder (no padding), to read the secret back out of the URL.
    #[test]
    fn code_at_computes_what_verify_accepts() {
        let authenticator = TotpAuthenticator::new("Bulwark");
        let enrolment = authenticator.enrol("ada@example.com").unwrap();
        let now = OffsetDateTime::now_utc();
        let code = super::code_at(
            enrolment.secret_base32.expose_secret(),
            now.unix_timestamp(),
        )
        .unwrap();
        assert_eq!(
            authenticator.verify(&enrolment.secret, &code, now),
            Some(now.unix_timestamp() / PERIOD_SECONDS)
        );
        assert_eq!(super::code_at("not base32!", 0), None);
        assert_eq!(super::code_at("GEZDGNBV", -1), None);
    }

    fn base32_decode(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buffer: u32 = 0;
        let mut bits = 0u32;
        for c in text.bytes() {
            let value = BASE32_ALPHABET.iter().position(|&a| a == c).unwrap();
            buffer = (buffer << 5) | u32::try_from(value).unwrap();
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
                buffer &= (1 << bits) - 1;
            }
        }
        out
    }

    #[test]
    fn codes_match_the_rfc_6238_sha1_test_vectors() {
        // Appendix B lists 8-digit codes; a 6-digit code is their last six digits.
        let secret = rfc_secret();
        for (unix, eight_digits) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let expected = &eight_digits[2..];

            assert_eq!(code_at(&secret, unix), expected, "T = {unix}");
            assert_eq!(
                authenticator().verify(&secret, expected, at(unix)),
                Some(unix / PERIOD_SECONDS),
                "T = {unix}"
            );
        }
    }

    #[test]
    fn the_code_of_now_verifies_and_names_the_current_step() {
        let secret = rfc_secret();
        let now = at(1_700_000_015);
        let code = code_at(&secret, 1_700_000_015);

        assert_eq!(
            authenticator().verify(&secret, &code, now),
            Some(1_700_000_015 / PERIOD_SECONDS)
        );
    }

    #[test]
    fn surrounding_whitespace_is_forgiven() {
        let secret = rfc_secret();
        let code = code_at(&secret, 59);

        assert_eq!(
            authenticator().verify(&secret, &format!("  {code}\n"), at(59)),
            Some(1)
        );
    }

    #[test]
    fn the_previous_and_next_steps_verify_for_clock_drift() {
        let secret = rfc_secret();
        let now = at(1_700_000_015);
        let step = 1_700_000_015 / PERIOD_SECONDS;
        let previous = code_at(&secret, 1_700_000_015 - PERIOD_SECONDS);
        let next = code_at(&secret, 1_700_000_015 + PERIOD_SECONDS);

        assert_eq!(
            authenticator().verify(&secret, &previous, now),
            Some(step - 1)
        );
        assert_eq!(authenticator().verify(&secret, &next, now), Some(step + 1));
    }

    #[test]
    fn a_code_two_steps_away_does_not_verify() {
        let secret = rfc_secret();
        let now = at(1_700_000_015);
        let two_back = code_at(&secret, 1_700_000_015 - 2 * PERIOD_SECONDS);
        let two_ahead = code_at(&secret, 1_700_000_015 + 2 * PERIOD_SECONDS);
        // Guard against the one-in-a-million chance that the far code equals a near one.
        let near: Vec<String> = [-1, 0, 1]
            .map(|d| code_at(&secret, 1_700_000_015 + d * PERIOD_SECONDS))
            .into();
        assert!(!near.contains(&two_back) && !near.contains(&two_ahead));

        assert_eq!(authenticator().verify(&secret, &two_back, now), None);
        assert_eq!(authenticator().verify(&secret, &two_ahead, now), None);
    }

    #[test]
    fn a_code_for_another_secret_does_not_verify() {
        let secret = rfc_secret();
        let other = SecretSlice::from(b"09876543210987654321".to_vec());
        let now = at(1_111_111_111);

        assert_eq!(
            authenticator().verify(&other, &code_at(&secret, 1_111_111_111), now),
            None
        );
    }

    #[test]
    fn input_that_is_not_exactly_six_ascii_digits_is_rejected() {
        let secret = rfc_secret();
        // "050471" is the valid code at this instant; every variant below must still fail.
        let now = at(1_111_111_111);
        for bad in [
            "",
            "12345",
            "1234567",
            "0504711",
            "05047",
            "12a456",
            "１２３４５６",
            "０５０４７１",
            " 123 456",
            "050 471",
            "050-471",
            "+50471",
            "-50471",
        ] {
            assert_eq!(authenticator().verify(&secret, bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn times_before_the_epoch_never_verify() {
        let secret = rfc_secret();
        let code = code_at(&secret, 0);

        assert_eq!(
            authenticator().verify(&secret, &code, at(-1)),
            None,
            "step 0 is one step ahead of -1 s, but negative times are refused outright"
        );
        assert_eq!(
            authenticator().verify(
                &secret,
                &code,
                OffsetDateTime::UNIX_EPOCH - Duration::days(365)
            ),
            None
        );
    }

    #[test]
    fn the_first_step_of_the_epoch_verifies() {
        // Step -1 does not exist; steps 0 and 1 are still checked.
        let secret = rfc_secret();

        assert_eq!(
            authenticator().verify(&secret, &code_at(&secret, 0), at(10)),
            Some(0)
        );
        assert_eq!(
            authenticator().verify(&secret, &code_at(&secret, 30), at(10)),
            Some(1)
        );
    }

    #[test]
    fn base32_matches_the_rfc_4648_vectors_without_padding() {
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(input.as_bytes()), expected, "{input:?}");
            assert_eq!(base32_decode(expected), input.as_bytes(), "{expected:?}");
        }
        assert_eq!(
            base32_encode(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn enrolment_gives_fresh_160_bit_secrets() {
        let a = authenticator().enrol("alice@example.com").unwrap();
        let b = authenticator().enrol("alice@example.com").unwrap();

        assert_eq!(a.secret.expose_secret().len(), SECRET_BYTES);
        assert_eq!(b.secret.expose_secret().len(), SECRET_BYTES);
        assert_ne!(a.secret.expose_secret(), b.secret.expose_secret());
        assert_ne!(
            a.secret_base32.expose_secret(),
            b.secret_base32.expose_secret()
        );
    }

    #[test]
    fn the_base32_secret_is_32_characters_and_decodes_to_the_secret() {
        let enrolment = authenticator().enrol("alice@example.com").unwrap();
        let b32 = enrolment.secret_base32.expose_secret();

        assert_eq!(b32.len(), 32);
        assert!(b32.bytes().all(|c| BASE32_ALPHABET.contains(&c)), "{b32}");
        assert_eq!(base32_decode(b32), enrolment.secret.expose_secret());
    }

    #[test]
    fn the_otpauth_url_parses_and_carries_the_secret_and_parameters() {
        let enrolment = authenticator().enrol("alice@example.com").unwrap();

        let url = url::Url::parse(enrolment.otpauth_url.expose_secret()).unwrap();
        let query = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };

        assert_eq!(url.scheme(), "otpauth");
        assert_eq!(url.host_str(), Some("totp"));
        assert_eq!(url.path(), "/Bulwark:alice%40example.com");
        let secret = query("secret").unwrap();
        assert_eq!(base32_decode(&secret), enrolment.secret.expose_secret());
        assert_eq!(query("issuer").as_deref(), Some("Bulwark"));
        assert_eq!(query("algorithm").as_deref(), Some("SHA1"));
        assert_eq!(query("digits").as_deref(), Some("6"));
        assert_eq!(query("period").as_deref(), Some("30"));
    }

    #[test]
    fn issuer_and_account_are_percent_encoded() {
        let totp = TotpAuthenticator::new("Acme & Co: Test");
        let enrolment = totp.show(&rfc_secret(), "bob+mfa@example.com");
        let text = enrolment.otpauth_url.expose_secret();

        assert!(
            text.starts_with(
                "otpauth://totp/Acme%20%26%20Co%3A%20Test:bob%2Bmfa%40example.com?secret="
            ),
            "{text}"
        );
        let url = url::Url::parse(text).unwrap();
        let issuer = url
            .query_pairs()
            .find(|(k, _)| k == "issuer")
            .map(|(_, v)| v.into_owned());
        assert_eq!(issuer.as_deref(), Some("Acme & Co: Test"));
        // The injected `&` did not start a new query parameter.
        assert_eq!(url.query_pairs().count(), 5);
    }

    #[test]
    fn show_rebuilds_the_same_enrolment_for_an_existing_secret() {
        let totp = authenticator();
        let enrolment = totp.enrol("alice@example.com").unwrap();

        let shown = totp.show(&enrolment.secret, "alice@example.com");

        assert_eq!(
            shown.secret.expose_secret(),
            enrolment.secret.expose_secret()
        );
        assert_eq!(
            shown.secret_base32.expose_secret(),
            enrolment.secret_base32.expose_secret()
        );
        assert_eq!(
            shown.otpauth_url.expose_secret(),
            enrolment.otpauth_url.expose_secret()
        );
        assert_eq!(
            shown.qr_svg.expose_secret(),
            enrolment.qr_svg.expose_secret()
        );
    }

    #[test]
    fn the_qr_code_is_a_standalone_svg_without_scripts_or_external_references() {
        let enrolment = authenticator().enrol("alice@example.com").unwrap();
        let svg = enrolment.qr_svg.expose_secret();

        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 1);
        assert!(svg.contains(" d=\"M"), "the path draws modules");
        for forbidden in [
            "<script",
            "<style",
            "<image",
            "<foreignObject",
            "href",
            "url(",
        ] {
            assert!(!svg.contains(forbidden), "{forbidden} in {svg}");
        }
        // No event-handler attributes (`onload=` and the like).
        assert!(!svg.contains(" on"), "{svg}");
    }

    #[test]
    fn the_qr_code_has_a_four_module_quiet_zone() {
        let url = authenticator()
            .show(&rfc_secret(), "alice@example.com")
            .otpauth_url;
        let qr = QrCode::encode_text(url.expose_secret(), QrCodeEcc::Medium).unwrap();
        let side = qr.size() + 8;

        let svg = qr_svg(url.expose_secret());

        assert!(
            svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")),
            "{svg}"
        );
        // The top-left finder pattern starts at (4, 4): nothing is drawn in the margin.
        assert!(svg.contains("d=\"M4,4h7v1h-7z"), "{svg}");
        for segment in svg.split('M').skip(1) {
            let (x, rest) = segment.split_once(',').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let (run, _) = rest.split_once('v').unwrap();
            let (x, y, run): (i32, i32, i32) =
                (x.parse().unwrap(), y.parse().unwrap(), run.parse().unwrap());
            assert!(x >= 4 && y >= 4 && x + run <= side - 4 && y < side - 4);
        }
    }

    #[test]
    fn an_unencodable_url_gives_a_blank_svg_rather_than_failing() {
        let svg = qr_svg(&"x".repeat(5_000));

        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("d=\"\""), "{svg}");
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let totp = authenticator();
        let enrolment = totp.enrol("alice@example.com").unwrap();

        assert_eq!(format!("{enrolment:?}"), "TotpEnrolment([REDACTED])");
        assert_eq!(
            format!("{totp:?}"),
            "TotpAuthenticator { issuer: \"Bulwark\" }"
        );
    }
}
