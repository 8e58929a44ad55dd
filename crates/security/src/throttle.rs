//! Throttle keys: of a submitted email ([`login_key`]) and of a client address ([`address_key`]),
//! behind the domain's [`ThrottleKeys`] port ([`Sha256ThrottleKeys`]).
//!
//! Both are SHA-256 digests under a domain-separating label (`login:`, `address:`), so the
//! throttle table holds neither emails nor addresses in the clear, and an email can never collide
//! with an address. (A plain hash, not a keyed one: the throttle is not a secret store, and the
//! label is what keeps the two key spaces apart.)

use std::net::{IpAddr, Ipv6Addr};

use aws_lc_rs::digest;
use bulwark_domain::throttle::{ThrottleKey, ThrottleKeys};

/// SHA-256 of `login:` and the submitted email, trimmed and lower-cased. Any text works (an email
/// that is not even well formed is throttled like any other), so throttling cannot tell a
/// stranger which addresses are accounts, and unknown addresses are never stored in the clear.
#[must_use]
pub fn login_key(submitted_email: &str) -> ThrottleKey {
    let normalised = submitted_email.trim().to_lowercase();
    key(b"login:", normalised.as_bytes())
}

/// SHA-256 of `address:` and the canonical form of a client address:
/// - an IPv4 address as itself, also when it arrives IPv4-mapped (`::ffff:203.0.113.9`), so a
///   dual-stack listener does not give one client two keys;
/// - an IPv6 address as its /64 network. One subscriber is routinely handed a whole /64 and can
///   pick any address in it at will, so keying by the full address would let one machine rotate
///   through 2^64 fresh budgets.
#[must_use]
pub fn address_key(ip: IpAddr) -> ThrottleKey {
    let canonical = match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            format!("{}/64", Ipv6Addr::from(octets))
        }
    };
    key(b"address:", canonical.as_bytes())
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn key(label: &[u8], value: &[u8]) -> ThrottleKey {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(label);
    context.update(value);
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    ThrottleKey(key)
}

/// [`ThrottleKeys`] by SHA-256: [`login_key`] for accounts, [`address_key`] for addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sha256ThrottleKeys;

impl Sha256ThrottleKeys {
    /// The key derivation.
    #[must_use]
    pub const fn new() -> Self {
        Self
    }
}

impl ThrottleKeys for Sha256ThrottleKeys {
    fn account(&self, submitted_email: &str) -> ThrottleKey {
        login_key(submitted_email)
    }

    fn address(&self, ip: IpAddr) -> ThrottleKey {
        address_key(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> ThrottleKey {
        Sha256ThrottleKeys.address(text.parse().unwrap())
    }

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

    #[test]
    fn the_account_key_of_the_port_is_the_login_key() {
        assert_eq!(
            Sha256ThrottleKeys.account("Ada@Example.com"),
            login_key("ada@example.com")
        );
    }

    #[test]
    fn distinct_ipv4_addresses_have_distinct_keys() {
        assert_ne!(address("203.0.113.9"), address("203.0.113.10"));
        assert_eq!(address("203.0.113.9"), address("203.0.113.9"));
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_is_the_ipv4_address() {
        assert_eq!(address("::ffff:203.0.113.9"), address("203.0.113.9"));
        assert_ne!(address("::ffff:203.0.113.9"), address("203.0.113.10"));
    }

    #[test]
    fn every_address_in_one_ipv6_64_shares_one_key() {
        let first = address("2001:db8:1:2::1");

        assert_eq!(address("2001:db8:1:2:ffff:ffff:ffff:ffff"), first);
        assert_eq!(address("2001:db8:1:2:abcd::42"), first);
        assert_ne!(
            address("2001:db8:1:3::1"),
            first,
            "the neighbouring /64 is someone else"
        );
    }

    #[test]
    fn an_address_key_never_equals_an_account_key_of_the_same_text() {
        assert_ne!(address("203.0.113.9"), login_key("203.0.113.9"));
    }

    #[test]
    fn the_address_key_is_sha256_of_the_labelled_canonical_form() {
        let expected = digest::digest(&digest::SHA256, b"address:2001:db8:1:2::/64");
        assert_eq!(&address("2001:db8:1:2::99").0[..], expected.as_ref());
        let expected = digest::digest(&digest::SHA256, b"address:198.51.100.7");
        assert_eq!(&address("::ffff:198.51.100.7").0[..], expected.as_ref());
    }
}
