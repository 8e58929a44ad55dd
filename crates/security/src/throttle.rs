//! The throttle key of a submitted email.

use aws_lc_rs::digest;
use bulwark_domain::throttle::ThrottleKey;

/// SHA-256 of `login:` and the submitted email, trimmed and lower-cased. Any text works (an email
/// that is not even well formed is throttled like any other), so throttling cannot tell a
/// stranger which addresses are accounts, and unknown addresses are never stored in the clear.
#[must_use]
pub fn login_key(submitted_email: &str) -> ThrottleKey {
    let normalised = submitted_email.trim().to_lowercase();
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(b"login:");
    context.update(normalised.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    ThrottleKey(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_address_in_any_case_or_padding_is_one_key() {
        assert_eq!(
            login_key("Ada@Example.com"),
            login_key("  ada@example.COM ")
        );
        assert_ne!(login_key("ada@example.com"), login_key("ada@example.org"));
        // Not a valid email: still a key of its own.
        assert_ne!(login_key("not an email"), login_key(""));
    }
}
