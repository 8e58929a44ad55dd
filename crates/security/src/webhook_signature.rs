//! Signatures of webhook deliveries: HMAC-SHA256 over the timestamp and the exact body.
//!
//! Every delivery carries `Bulwark-Signature: t=<unix seconds>,v1=<hex HMAC>`, where the HMAC is
//! computed with the webhook's secret over `"<t>." || body`. A receiver recomputes it over the
//! bytes it received and compares in constant time ([`verify`] is the reference implementation),
//! and refuses a timestamp too far from its clock — which is what makes a captured delivery
//! useless for a replay later. Signing the timestamp with the body stops an attacker from
//! refreshing it.

use aws_lc_rs::{constant_time, hmac};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Bulwark-Signature";

fn tag(secret: &[u8], timestamp: i64, body: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    context.sign()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The header value for a delivery of `body` at `timestamp` (unix seconds).
#[must_use]
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex(tag(secret, timestamp, body).as_ref())
    )
}

/// Whether `header` is a valid signature of `body` under `secret`, made within `tolerance_secs` of
/// `now` (unix seconds). The comparison is constant-time.
#[must_use]
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    if (now - timestamp).abs() > tolerance_secs {
        return false;
    }
    let expected = hex(tag(secret, timestamp, body).as_ref());
    constant_time::verify_slices_are_equal(expected.as_bytes(), signature.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-test-secret-of-enough-length";
    const BODY: &[u8] = br#"{"event":"document.updated","id":"x"}"#;

    #[test]
    fn a_signature_verifies_for_its_body_secret_and_time_only() {
        let header = sign(SECRET, 1_764_000_000, BODY);
        assert!(header.starts_with("t=1764000000,v1="));
        assert_eq!(header.len(), "t=1764000000,v1=".len() + 64);
        assert!(verify(SECRET, &header, BODY, 1_764_000_100, 300));
        // Another body, another secret, a replay long after, a refreshed timestamp: all refused.
        assert!(!verify(SECRET, &header, b"{}", 1_764_000_000, 300));
        assert!(!verify(
            b"another-secret",
            &header,
            BODY,
            1_764_000_000,
            300
        ));
        assert!(!verify(SECRET, &header, BODY, 1_764_009_999, 300));
        let refreshed = header.replace("t=1764000000", "t=1764009999");
        assert!(!verify(SECRET, &refreshed, BODY, 1_764_009_999, 300));
    }

    #[test]
    fn malformed_headers_never_verify() {
        for header in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "garbage",
            "t=1764000000,v1=",
        ] {
            assert!(
                !verify(SECRET, header, BODY, 1_764_000_000, 300),
                "{header:?}"
            );
        }
    }

    #[test]
    fn the_primitive_matches_rfc_4231() {
        // The primitive is HMAC-SHA256: RFC 4231, test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
