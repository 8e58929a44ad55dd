//! Where a webhook may point: the SSRF policy for outbound webhook URLs.
//!
//! A webhook makes *this server* send a request to an address that a client chose, from inside our
//! network — the textbook server-side request forgery (SSRF) surface: the cloud metadata service at
//! 169.254.169.254, the database on 10.0.0.5, an admin port on 127.0.0.1. The policy is applied at
//! two checkpoints, and neither is enough alone:
//!
//! 1. **At registration**, on the URL as written: [`WebhookUrl::parse`] refuses any scheme but
//!    `https` (plus `http` in development), credentials, fragments, port 0, IP literals in a
//!    forbidden range, and host names that can only mean something inside a network (`localhost`,
//!    `*.internal`, `*.local`, single labels such as `intranet`). The client gets a 400 at once and
//!    obviously hostile targets never reach the database.
//! 2. **At delivery**, on every address the host name resolved to, which is what is actually
//!    dialled: [`check_resolved`]. A name is only a pointer, and its owner moves it at will:
//!    `hooks.attacker.example` can resolve to a public address at registration and to
//!    169.254.169.254 a minute later (DNS rebinding), or answer with one public and one private
//!    address at once. So the delivery client must resolve the name itself, pass *all* the answers
//!    to [`check_resolved`], and connect only to those checked addresses — never let the HTTP client
//!    resolve the name a second time, never go through a proxy (the proxy would resolve it), and
//!    never follow a redirect (a redirect is a new URL that skipped both checkpoints).
//!
//! Checking only at registration misses rebinding; checking only at delivery would store URLs that
//! can never be delivered and tell the client nothing. Both checkpoints share one definition of a
//! forbidden address, [`is_forbidden`].
//!
//! Everything here is pure — no resolver, no socket — so the rules are unit-tested exhaustively.
//! URL parsing is the `url` crate's (the WHATWG algorithm browsers use), because the host it
//! normalises to is the host that will be dialled: `2130706433`, `0x7f000001`, `0177.0.0.1` and
//! `127.1` all *are* 127.0.0.1, and the policy must judge them as such. The address ranges are
//! written out by hand as CIDR tables: std's `IpAddr::is_global` is unstable, and no crate can
//! decide *our* policy (for example, that IPv4-mapped addresses are refused whatever they embed);
//! what is left is a mask comparison.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::user::FieldViolation;

/// Longest webhook URL accepted, in bytes — both as submitted and once normalised (percent-encoding
/// can make the normalised form longer, and that form is what is stored).
pub const MAX_URL_BYTES: usize = 2048;

/// The field every violation here is reported on, as clients send it.
const FIELD: &str = "url";

/// Names that only mean something inside a network. Each entry refuses the name itself and every
/// name below it (`localhost` and `api.localhost`).
const FORBIDDEN_NAME_SUFFIXES: [&str; 4] = [
    // RFC 6761: always the loopback interface, whatever DNS says.
    "localhost",
    // RFC 6762: multicast DNS, answered by whoever is on the local link.
    "local",
    // ICANN's reserved private TLD (2024), and the convention of cloud providers for their own
    // internal names (`metadata.google.internal`).
    "internal",
    // RFC 8375: home networks.
    "home.arpa",
];

/// A URL a webhook may be registered with: `https` (or `http` where allowed), no credentials, no
/// fragment, and a host that is neither a forbidden IP literal nor an internal name.
///
/// Valid by construction: the only way to get one is [`WebhookUrl::parse`]. This is the first of
/// the two checkpoints (see the module documentation); the second, [`check_resolved`], runs at
/// delivery on the addresses the host resolves to.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Parses and checks a webhook URL. `allow_http` also accepts plain `http` (development only:
    /// in production a payload and its signature must not travel in clear text).
    ///
    /// # Errors
    /// A violation on `url`, with one of these codes:
    /// - `required`: the input is empty;
    /// - `too_long`: more than [`MAX_URL_BYTES`], as submitted or once normalised;
    /// - `invalid`: not an absolute URL, or it has a fragment, port 0 or no host;
    /// - `scheme_not_allowed`: not `https` (nor `http` when `allow_http`);
    /// - `credentials_in_url`: a username or a password before the host;
    /// - `forbidden_address`: the host is an IP literal that [`is_forbidden`] refuses;
    /// - `forbidden_host`: the host is `localhost`, a name under `.localhost`, `.local`,
    ///   `.internal` or `.home.arpa`, or a single label.
    pub fn parse(raw: &str, allow_http: bool) -> Result<Self, FieldViolation> {
        if raw.trim().is_empty() {
            return Err(violation("required", "A webhook URL is required."));
        }
        // Before parsing, so a huge input costs nothing.
        if raw.len() > MAX_URL_BYTES {
            return Err(too_long());
        }
        let url = Url::parse(raw)
            .map_err(|_| violation("invalid", "The webhook URL is not a valid absolute URL."))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            _ => {
                let message = if allow_http {
                    "A webhook URL must use https or http."
                } else {
                    "A webhook URL must use https."
                };
                return Err(violation("scheme_not_allowed", message));
            }
        }
        // Credentials would be sent to the target and stored and listed with the webhook; a
        // receiver that needs a secret verifies our HMAC signature instead.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(violation(
                "credentials_in_url",
                "A webhook URL cannot contain a username or a password.",
            ));
        }
        // A fragment is never sent to the server, so one here is a mistake or an attempt to make
        // the URL look like something it is not.
        if url.fragment().is_some() {
            return Err(violation(
                "invalid",
                "A webhook URL cannot contain a fragment (#…).",
            ));
        }
        if url.port() == Some(0) {
            return Err(violation("invalid", "Port 0 cannot be connected to."));
        }
        match url.host() {
            Some(Host::Ipv4(ip)) => check_address(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => check_address(IpAddr::V6(ip))?,
            Some(Host::Domain(name)) => check_name(name)?,
            // The `url` crate never yields an http(s) URL without a host; refusing here keeps the
            // invariant local rather than borrowed from another crate's behaviour.
            None => return Err(violation("invalid", "A webhook URL needs a host.")),
        }
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(too_long());
        }
        Ok(Self(url))
    }

    /// The normalised URL: what is stored, shown back to the owner, and requested.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as written in the normalised URL: a lower-case ASCII name (internationalised names
    /// in their `xn--` form), an IPv4 literal, or an IPv6 literal in brackets. For an IP literal,
    /// dial [`Self::ip_literal`] rather than resolving this.
    #[must_use]
    pub fn host_str(&self) -> &str {
        // `parse` refused every URL without a host, so the default is never used.
        self.0.host_str().unwrap_or_default()
    }

    /// The port to connect to: the explicit one, else 443 for `https` and 80 for `http`.
    #[must_use]
    pub fn port_or_default(&self) -> u16 {
        let default = if self.0.scheme() == "http" { 80 } else { 443 };
        self.0.port().unwrap_or(default)
    }

    /// The host's address when the URL names one directly (`https://93.184.215.14/`), in which case
    /// there is nothing to resolve; `None` for a host name.
    #[must_use]
    pub fn ip_literal(&self) -> Option<IpAddr> {
        match self.0.host()? {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        }
    }
}

impl fmt::Debug for WebhookUrl {
    /// Only the origin: webhook URLs often carry a capability in their path or query (Slack's
    /// `/services/…/<secret>`, `?token=`), and `Debug` is what logs and panics print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookUrl")
            .field(&format_args!(
                "{}/[REDACTED]",
                self.0.origin().ascii_serialization()
            ))
            .finish()
    }
}

/// Checks, at delivery, every address a webhook's host name resolved to. Call it on the complete
/// answer, then connect only to those addresses.
///
/// # Errors
/// A violation on `url`: `unresolvable` when there is no address, `forbidden_address` when *any*
/// address is forbidden — a name that resolves to one public and one private address is refused,
/// because the connector may pick either (and an attacker controls the order).
pub fn check_resolved(addresses: &[IpAddr]) -> Result<(), FieldViolation> {
    if addresses.is_empty() {
        return Err(violation(
            "unresolvable",
            "The webhook's host did not resolve to any address.",
        ));
    }
    if addresses.iter().copied().any(is_forbidden) {
        return Err(forbidden_address());
    }
    Ok(())
}

/// Whether a webhook must never connect to `ip`: anything that is not a public unicast address —
/// this host, private networks, link-local (cloud metadata), carrier-grade NAT, documentation,
/// benchmarking, multicast, reserved — and, for IPv6, every form that embeds an IPv4 address which
/// would be forbidden, plus IPv4-mapped addresses whatever they embed.
#[must_use]
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_forbidden_v4(ip),
        IpAddr::V6(ip) => is_forbidden_v6(ip),
    }
}

/// An IPv4 network: its address and prefix length.
type Cidr4 = (Ipv4Addr, u8);

/// An IPv6 network: its address and prefix length.
type Cidr6 = (Ipv6Addr, u8);

/// IPv4 ranges a webhook may not reach (RFC 6890 and the IANA special-purpose registry).
const FORBIDDEN_V4: [Cidr4; 14] = [
    // 0.0.0.0/8, "this network" (RFC 1122): 0.0.0.0 reaches the local host on Linux.
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    // 10.0.0.0/8, private (RFC 1918).
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    // 100.64.0.0/10, shared address space for carrier-grade NAT (RFC 6598); also used inside some
    // clouds and VPNs.
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    // 127.0.0.0/8, loopback: all of it, not only 127.0.0.1.
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    // 169.254.0.0/16, link-local (RFC 3927) — home of the cloud metadata service, 169.254.169.254.
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    // 172.16.0.0/12, private (RFC 1918): 172.16.0.0 to 172.31.255.255.
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    // 192.0.0.0/24, IETF protocol assignments (RFC 6890): DS-Lite, NAT64 discovery and the like.
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    // 192.0.2.0/24, documentation TEST-NET-1 (RFC 5737).
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    // 192.168.0.0/16, private (RFC 1918).
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    // 198.18.0.0/15, benchmarking (RFC 2544): 198.18.0.0 to 198.19.255.255.
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    // 198.51.100.0/24, documentation TEST-NET-2 (RFC 5737).
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    // 203.0.113.0/24, documentation TEST-NET-3 (RFC 5737).
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    // 224.0.0.0/4, multicast (RFC 5771): one request, many unintended listeners.
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    // 240.0.0.0/4, reserved (RFC 1112), which includes the limited broadcast 255.255.255.255.
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// IPv4-mapped addresses, `::ffff:0:0/96` (RFC 4291): on a dual-stack socket, connecting to
/// `::ffff:10.0.0.1` is connecting to 10.0.0.1 over IPv4.
const IPV4_MAPPED: Cidr6 = (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96);

/// The well-known NAT64 prefix, `64:ff9b::/96` (RFC 6052): a NAT64 gateway forwards to the IPv4
/// address in the last 32 bits.
const NAT64: Cidr6 = (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

/// 6to4, `2002::/16` (RFC 3056): the IPv4 address of the relay in bits 16 to 48.
const SIX_TO_FOUR: Cidr6 = (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16);

/// Global unicast, `2000::/3` (RFC 4291): the only IPv6 space IANA has allocated for public
/// addresses. Anything outside it that the table below does not name is refused too.
const GLOBAL_UNICAST: Cidr6 = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// IPv6 ranges a webhook may not reach (RFC 6890 and the IANA special-purpose registry). Several lie
/// outside [`GLOBAL_UNICAST`] and are refused twice over; they are named so that a reader can see
/// each one was considered.
const FORBIDDEN_V6: [Cidr6; 14] = [
    // ::/128, unspecified: like 0.0.0.0, it reaches the local host.
    (Ipv6Addr::UNSPECIFIED, 128),
    // ::1/128, loopback.
    (Ipv6Addr::LOCALHOST, 128),
    // ::/96, IPv4-compatible (RFC 4291, deprecated): `::10.0.0.1`; nothing legitimate uses it.
    (Ipv6Addr::UNSPECIFIED, 96),
    // ::ffff:0:0/96, IPv4-mapped, forbidden whatever it embeds (the contract: no IPv4-mapped
    // addresses); a public service is reachable by its IPv4 address directly.
    IPV4_MAPPED,
    // 64:ff9b:1::/48, local-use NAT64 (RFC 8215): translation inside one network.
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
    // 100::/64, discard-only (RFC 6666).
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    // 2001::/23, IETF protocol assignments (RFC 2928): benchmarking 2001:2::/48, ORCHID, and the
    // Teredo prefix below.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    // 2001::/32, Teredo (RFC 4380): tunnels to an obfuscated IPv4 address behind a NAT.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32),
    // 2001:db8::/32, documentation (RFC 3849).
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    // 3fff::/20, documentation (RFC 9637).
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
    // fc00::/7, unique local (RFC 4193): IPv6's private networks.
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    // fe80::/10, link-local (RFC 4291).
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    // fec0::/10, site-local (RFC 3879, deprecated but still routed inside some networks).
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
    // ff00::/8, multicast (RFC 4291).
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    FORBIDDEN_V4.iter().any(|&range| in_v4(ip, range))
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let octets = ip.octets();
    if in_v6(ip, NAT64) {
        // Outside 2000::/3 but public when what it embeds is public: judge the embedded address.
        let embedded = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
        return is_forbidden_v4(embedded);
    }
    if in_v6(ip, SIX_TO_FOUR) {
        let embedded = Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]);
        if is_forbidden_v4(embedded) {
            return true;
        }
    }
    FORBIDDEN_V6.iter().any(|&range| in_v6(ip, range)) || !in_v6(ip, GLOBAL_UNICAST)
}

fn in_v4(ip: Ipv4Addr, (network, prefix): Cidr4) -> bool {
    // `checked_shl` because a /0 would shift by the full width; the mask is then empty.
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(network) & mask
}

fn in_v6(ip: Ipv6Addr, (network, prefix): Cidr6) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(network) & mask
}

fn check_address(ip: IpAddr) -> Result<(), FieldViolation> {
    if is_forbidden(ip) {
        return Err(forbidden_address());
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), FieldViolation> {
    // The `url` crate has already lower-cased and IDNA-mapped the name (so a full-width
    // `ｌｏｃａｌｈｏｓｔ` arrives as `localhost`); lower-casing again costs nothing and does not depend
    // on that. A trailing dot only marks the name as absolute: `localhost.` is `localhost`.
    let name = name.to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    let internal = FORBIDDEN_NAME_SUFFIXES.iter().any(|suffix| {
        name == *suffix
            || name
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.'))
    });
    // A single label (`intranet`) is completed by the resolver's search domains: an internal name.
    if internal || !name.contains('.') {
        return Err(violation(
            "forbidden_host",
            "A webhook cannot target a local or internal host name.",
        ));
    }
    Ok(())
}

fn violation(code: &'static str, message: &'static str) -> FieldViolation {
    FieldViolation::new(FIELD, code, message)
}

fn too_long() -> FieldViolation {
    FieldViolation::new(
        FIELD,
        "too_long",
        format!("A webhook URL has at most {MAX_URL_BYTES} bytes."),
    )
}

// The message names no address: at delivery, it would tell the webhook's owner what its name
// resolves to from inside our network.
fn forbidden_address() -> FieldViolation {
    violation(
        "forbidden_address",
        "A webhook cannot target a private, loopback, link-local, multicast or reserved address.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(raw: &str, allow_http: bool) -> Option<FieldViolation> {
        WebhookUrl::parse(raw, allow_http).err()
    }

    fn v4(raw: &str) -> IpAddr {
        IpAddr::V4(raw.parse().unwrap())
    }

    fn v6(raw: &str) -> IpAddr {
        IpAddr::V6(raw.parse().unwrap())
    }

    #[test]
    fn every_probe_from_the_issue_is_refused_with_its_stable_code() {
        // (url, allow_http, expected code)
        let probes = [
            ("http://127.0.0.1", false, "scheme_not_allowed"),
            ("http://127.0.0.1", true, "forbidden_address"),
            ("https://localhost", false, "forbidden_host"),
            ("https://0.0.0.0", false, "forbidden_address"),
            ("https://[::1]", false, "forbidden_address"),
            ("https://[::ffff:127.0.0.1]", false, "forbidden_address"),
            ("https://2130706433", false, "forbidden_address"),
            ("https://0x7f000001", false, "forbidden_address"),
            ("https://0177.0.0.1", false, "forbidden_address"),
            ("https://127.1", false, "forbidden_address"),
            (
                "https://169.254.169.254/latest/meta-data",
                false,
                "forbidden_address",
            ),
            ("https://10.0.0.1", false, "forbidden_address"),
            ("https://100.64.0.1", false, "forbidden_address"),
            ("https://[fd00::1]", false, "forbidden_address"),
            ("file:///etc/passwd", true, "scheme_not_allowed"),
            ("gopher://x.example", true, "scheme_not_allowed"),
            ("https://user:pass@example.com", false, "credentials_in_url"),
            ("https://user@example.com", false, "credentials_in_url"),
            ("ftp://example.com", true, "scheme_not_allowed"),
            ("javascript:alert(1)", true, "scheme_not_allowed"),
            ("https://metadata.google.internal", false, "forbidden_host"),
            ("https://printer.local", false, "forbidden_host"),
            ("https://intranet", false, "forbidden_host"),
            ("https://[64:ff9b::7f00:1]", false, "forbidden_address"),
            ("https://[2002:7f00:1::]", false, "forbidden_address"),
            ("https://example.com:0", false, "invalid"),
            ("http://example.com", false, "scheme_not_allowed"),
        ];
        for (raw, allow_http, code) in probes {
            let violation = refusal(raw, allow_http)
                .unwrap_or_else(|| panic!("{raw} (allow_http: {allow_http}) was accepted"));
            assert_eq!(violation.code, code, "{raw} (allow_http: {allow_http})");
            assert_eq!(violation.field, "url");
        }
    }

    #[test]
    fn other_disguises_of_an_internal_target_are_refused_too() {
        let probes = [
            // Names, in every spelling that means the same host.
            ("https://LOCALHOST", "forbidden_host"),
            ("https://localhost.", "forbidden_host"),
            ("https://localhost..", "forbidden_host"),
            ("https://api.localhost", "forbidden_host"),
            ("https://Printer.Local.", "forbidden_host"),
            ("https://router.home.arpa", "forbidden_host"),
            ("https://home.arpa", "forbidden_host"),
            ("https://ｌｏｃａｌｈｏｓｔ", "forbidden_host"),
            ("https://intranet.", "forbidden_host"),
            ("https://intranet:8443/hook", "forbidden_host"),
            // Addresses, in every spelling that means the same address.
            ("https://%31%32%37.0.0.1", "forbidden_address"),
            ("https://127.0.0.1.", "forbidden_address"),
            ("https://１２７.０.０.１", "forbidden_address"),
            ("https://0", "forbidden_address"),
            ("https://0x7f.1", "forbidden_address"),
            ("https://[0:0:0:0:0:ffff:7f00:1]", "forbidden_address"),
            ("https://[::ffff:93.184.215.14]", "forbidden_address"),
            ("https://[::127.0.0.1]", "forbidden_address"),
            ("https://[::]", "forbidden_address"),
            ("https://[fe80::1]", "forbidden_address"),
            ("https://[fec0::1]", "forbidden_address"),
            ("https://[ff02::1]", "forbidden_address"),
            ("https://[2001:db8::1]", "forbidden_address"),
            (
                "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
                "forbidden_address",
            ),
            ("https://[64:ff9b::a9fe:a9fe]", "forbidden_address"),
            ("https://255.255.255.255", "forbidden_address"),
            ("https://224.0.0.1", "forbidden_address"),
            ("https://192.168.1.1:8443", "forbidden_address"),
            ("https://172.16.0.1", "forbidden_address"),
            ("https://198.18.0.1", "forbidden_address"),
            ("https://192.0.2.1", "forbidden_address"),
            // Credentials, even without a username.
            ("https://:pass@example.com", "credentials_in_url"),
            // Schemes that are not http(s).
            ("wss://example.com", "scheme_not_allowed"),
            ("data:text/plain,hi", "scheme_not_allowed"),
            // Not a usable absolute URL.
            ("https://example.com/hook#section", "invalid"),
            ("https://example.com/hook#", "invalid"),
            ("https://", "invalid"),
            ("https://example.com:65536", "invalid"),
            ("https://[fe80::1%25eth0]", "invalid"),
            ("example.com/hook", "invalid"),
            ("not a url", "invalid"),
            ("", "required"),
            ("   ", "required"),
        ];
        for (raw, code) in probes {
            let violation = refusal(raw, false).unwrap_or_else(|| panic!("{raw} was accepted"));
            assert_eq!(violation.code, code, "{raw}");
        }
    }

    #[test]
    fn public_urls_are_accepted_and_normalised() {
        // (url, normalised, host, port, IP literal)
        let accepted = [
            (
                "https://example.com/hook?x=1",
                "https://example.com/hook?x=1",
                "example.com",
                443,
                None,
            ),
            (
                "https://93.184.215.14:8443/h",
                "https://93.184.215.14:8443/h",
                "93.184.215.14",
                8443,
                Some(v4("93.184.215.14")),
            ),
            (
                "https://[2606:4700::1111]",
                "https://[2606:4700::1111]/",
                "[2606:4700::1111]",
                443,
                Some(v6("2606:4700::1111")),
            ),
            (
                "HTTPS://Hooks.Example.COM:443/In",
                "https://hooks.example.com/In",
                "hooks.example.com",
                443,
                None,
            ),
            (
                "https://bücher.example/hook",
                "https://xn--bcher-kva.example/hook",
                "xn--bcher-kva.example",
                443,
                None,
            ),
            // NAT64 and 6to4 of a public IPv4 address are public.
            (
                "https://[64:ff9b::5db8:d70e]/",
                "https://[64:ff9b::5db8:d70e]/",
                "[64:ff9b::5db8:d70e]",
                443,
                Some(v6("64:ff9b::5db8:d70e")),
            ),
            (
                "https://[2002:5db8:d70e::1]/",
                "https://[2002:5db8:d70e::1]/",
                "[2002:5db8:d70e::1]",
                443,
                Some(v6("2002:5db8:d70e::1")),
            ),
        ];
        for (raw, normalised, host, port, literal) in accepted {
            let url = WebhookUrl::parse(raw, false)
                .unwrap_or_else(|violation| panic!("{raw} was refused: {violation:?}"));
            assert_eq!(url.as_str(), normalised, "{raw}");
            assert_eq!(url.host_str(), host, "{raw}");
            assert_eq!(url.port_or_default(), port, "{raw}");
            assert_eq!(url.ip_literal(), literal, "{raw}");
        }
    }

    #[test]
    fn plain_http_is_accepted_only_when_development_allows_it() {
        let refused = refusal("http://example.com", false).unwrap();
        assert_eq!(refused.code, "scheme_not_allowed");

        let url = WebhookUrl::parse("http://example.com", true).unwrap();
        assert_eq!(url.as_str(), "http://example.com/");
        assert_eq!(url.port_or_default(), 80);

        // Allowing http relaxes the scheme, not the address or host rules.
        assert_eq!(
            refusal("http://10.0.0.1:8080", true).unwrap().code,
            "forbidden_address"
        );
        assert_eq!(
            refusal("http://localhost:8080", true).unwrap().code,
            "forbidden_host"
        );
    }

    #[test]
    fn a_url_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() {
        let prefix = "https://example.com/";
        let at_limit = format!("{prefix}{}", "a".repeat(MAX_URL_BYTES - prefix.len()));
        assert_eq!(at_limit.len(), MAX_URL_BYTES);
        assert!(WebhookUrl::parse(&at_limit, false).is_ok());

        let over = format!("{at_limit}a");
        assert_eq!(refusal(&over, false).unwrap().code, "too_long");
    }

    #[test]
    fn a_url_that_grows_past_the_limit_when_normalised_is_refused() {
        // Each `é` is 2 bytes as typed and 6 once percent-encoded (`%C3%A9`).
        let raw = format!("https://example.com/{}", "é".repeat(1000));
        assert!(raw.len() <= MAX_URL_BYTES);
        assert_eq!(refusal(&raw, false).unwrap().code, "too_long");
    }

    #[test]
    fn refusals_do_not_echo_the_address_or_the_url() {
        let violation = refusal("https://10.1.2.3/secret-path", false).unwrap();
        assert!(!violation.message.contains("10.1.2.3"));
        assert!(!violation.message.contains("secret-path"));
    }

    #[test]
    fn debug_shows_the_origin_but_never_the_path_or_query() {
        let url = WebhookUrl::parse(
            "https://hooks.example.com:8443/services/T0/B0/s3cr3t?token=abc",
            false,
        )
        .unwrap();
        let printed = format!("{url:?}");
        assert!(
            printed.contains("https://hooks.example.com:8443"),
            "{printed}"
        );
        assert!(printed.contains("[REDACTED]"), "{printed}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(!printed.contains("token"), "{printed}");
    }

    #[test]
    fn ipv4_ranges_start_and_end_exactly_at_their_boundaries() {
        // (address, forbidden)
        let cases = [
            ("0.0.0.0", true),
            ("0.255.255.255", true),
            ("1.0.0.0", false),
            ("9.255.255.255", false),
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("100.63.255.255", false),
            ("100.64.0.0", true),
            ("100.127.255.255", true),
            ("100.128.0.0", false),
            ("126.255.255.255", false),
            ("127.0.0.0", true),
            ("127.255.255.255", true),
            ("128.0.0.0", false),
            ("169.253.255.255", false),
            ("169.254.0.0", true),
            ("169.254.169.254", true),
            ("169.254.255.255", true),
            ("169.255.0.0", false),
            ("172.15.255.255", false),
            ("172.16.0.0", true),
            ("172.31.255.255", true),
            ("172.32.0.0", false),
            ("191.255.255.255", false),
            ("192.0.0.0", true),
            ("192.0.0.255", true),
            ("192.0.1.0", false),
            ("192.0.2.0", true),
            ("192.0.2.255", true),
            ("192.0.3.0", false),
            ("192.167.255.255", false),
            ("192.168.0.0", true),
            ("192.168.255.255", true),
            ("192.169.0.0", false),
            ("198.17.255.255", false),
            ("198.18.0.0", true),
            ("198.19.255.255", true),
            ("198.20.0.0", false),
            ("198.51.99.255", false),
            ("198.51.100.0", true),
            ("198.51.100.255", true),
            ("198.51.101.0", false),
            ("203.0.112.255", false),
            ("203.0.113.0", true),
            ("203.0.113.255", true),
            ("203.0.114.0", false),
            ("223.255.255.255", false),
            ("224.0.0.0", true),
            ("239.255.255.255", true),
            ("240.0.0.0", true),
            ("255.255.255.255", true),
            ("8.8.8.8", false),
            ("93.184.215.14", false),
        ];
        for (address, forbidden) in cases {
            assert_eq!(is_forbidden(v4(address)), forbidden, "{address}");
        }
    }

    #[test]
    fn ipv6_special_ranges_are_forbidden_and_global_unicast_is_not() {
        // (address, forbidden)
        let cases = [
            ("::", true),
            ("::1", true),
            // IPv4-mapped: forbidden whatever it embeds.
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:93.184.215.14", true),
            // IPv4-compatible (deprecated).
            ("::127.0.0.1", true),
            ("::93.184.215.14", true),
            // NAT64: judged by the embedded IPv4 address.
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::a00:1", true),
            ("64:ff9b::5db8:d70e", false),
            // Local-use NAT64.
            ("64:ff9b:1::5db8:d70e", true),
            // 6to4: forbidden when the embedded IPv4 address is.
            ("2002:7f00:1::", true),
            ("2002:a00:1::1", true),
            ("2002:a9fe:a9fe::1", true),
            ("2002:5db8:d70e::1", false),
            // Discard-only.
            ("100::1", true),
            // IETF protocol assignments, Teredo and benchmarking inside them, and their boundary.
            ("2001::1", true),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", true),
            ("2001:2::1", true),
            ("2001:1ff:ffff::1", true),
            ("2001:200::1", false),
            // Documentation.
            ("2001:db8::1", true),
            ("2001:db8:ffff::1", true),
            ("3fff::1", true),
            ("3fff:fff::1", true),
            ("3fff:1000::1", false),
            // Unique local, link-local, site-local, multicast.
            ("fc00::1", true),
            ("fd00::1", true),
            ("fdff:ffff::1", true),
            ("fe80::1", true),
            ("febf:ffff::1", true),
            ("fec0::1", true),
            ("feff:ffff::1", true),
            ("ff02::1", true),
            ("ff0e::1", true),
            // Outside 2000::/3: not allocated for public addresses.
            ("4000::1", true),
            ("5f00::1", true),
            ("1fff:ffff::1", true),
            // Global unicast.
            ("2000::1", false),
            ("2606:4700::1111", false),
            ("2001:4860:4860::8888", false),
            ("2a00:1450:4001::1", false),
            ("3ffe::1", false),
        ];
        for (address, forbidden) in cases {
            assert_eq!(is_forbidden(v6(address)), forbidden, "{address}");
        }
    }

    #[test]
    fn the_range_tables_have_no_host_bits_and_valid_prefixes() {
        // A typo such as (172.16.0.0, 8) would silently forbid or allow far more than intended.
        for (network, prefix) in FORBIDDEN_V4 {
            assert!(prefix <= 32, "{network}/{prefix}");
            let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            assert_eq!(u32::from(network) & host_bits, 0, "{network}/{prefix}");
        }
        for (network, prefix) in
            FORBIDDEN_V6
                .into_iter()
                .chain([IPV4_MAPPED, NAT64, SIX_TO_FOUR, GLOBAL_UNICAST])
        {
            assert!(prefix <= 128, "{network}/{prefix}");
            let host_bits = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            assert_eq!(u128::from(network) & host_bits, 0, "{network}/{prefix}");
        }
    }

    #[test]
    fn a_resolved_name_is_accepted_only_when_every_address_is_public() {
        // (addresses, expected outcome: None for accepted, Some(code) for refused)
        let cases = [
            (vec![v4("93.184.215.14")], None),
            (
                vec![
                    v4("93.184.215.14"),
                    v6("2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
                ],
                None,
            ),
            (vec![], Some("unresolvable")),
            (vec![v4("10.0.0.1")], Some("forbidden_address")),
            (
                vec![v4("93.184.215.14"), v4("10.0.0.1")],
                Some("forbidden_address"),
            ),
            (
                vec![v4("127.0.0.1"), v4("93.184.215.14")],
                Some("forbidden_address"),
            ),
            (
                vec![v6("2606:4700::1111"), v6("::ffff:93.184.215.14")],
                Some("forbidden_address"),
            ),
            (
                vec![v4("93.184.215.14"), v4("169.254.169.254")],
                Some("forbidden_address"),
            ),
            (
                vec![v6("2606:4700::1111"), v6("fd00::1")],
                Some("forbidden_address"),
            ),
        ];
        for (addresses, expected) in cases {
            let outcome = check_resolved(&addresses);
            assert_eq!(
                outcome.as_ref().err().map(|v| v.code),
                expected,
                "{addresses:?}"
            );
            if let Err(violation) = outcome {
                assert_eq!(violation.field, "url");
            }
        }
    }
}
