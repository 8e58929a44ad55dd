//! The client's IP address: the one function every limiter, the audit log and the session list use.
//!
//! The TCP peer is the client, unless the peer is one of our own proxies (`TRUSTED_PROXIES`, a list
//! of CIDRs). Only then is the forwarding header read — the one header the operator says those
//! proxies set (`CLIENT_IP_HEADER`: `x-forwarded-for` or `forwarded`), never "whichever is
//! present", or a client could pick the header its proxy does not overwrite.
//!
//! The header is read from the right. Each proxy appends the address it received the request
//! from, so the right-most entries were written by our proxies and the left-most by whoever sent
//! the request: a client can put anything on the left (`X-Forwarded-For: 1.2.3.4` to borrow
//! someone else's rate-limit bucket, or a new address per request to get a fresh one), and nothing
//! on the right. So the client is the right-most address that is *not* a trusted proxy. A hop that
//! cannot be read (garbage, `unknown`, an obfuscated `_name`) stops the walk at the last trusted
//! address seen: everyone behind that proxy then shares one bucket, which errs on the side of
//! limiting. If every hop is trusted, the left-most is the client.
//!
//! Addresses are compared canonically (`::ffff:10.0.0.1` is `10.0.0.1`), so an IPv4 proxy list
//! also matches a dual-stack listener's mapped peers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use actix_web::http::header::HeaderMap;

/// At most this many hops are read from a forwarding header; a longer chain is treated as an
/// unreadable hop (the walk stops at the last trusted address).
pub const MAX_HOPS: usize = 32;

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `address/prefix` or a bare address (a host: /32 or /128). Bits set below the prefix are
    /// refused (`10.0.0.1/8` is a typo for something; guessing which is how a proxy list ends up
    /// trusting the internet).
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let network = canonical(
            address
                .parse::<IpAddr>()
                .map_err(|_| CidrError(format!("`{raw}` is not an IP address or CIDR")))?,
        );
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| CidrError(format!("`{raw}` has a prefix outside 0..={max}")))?,
        };
        let cidr = Self { network, prefix };
        if mask(network, prefix) != network {
            return Err(CidrError(format!(
                "`{raw}` has host bits set: write the network address"
            )));
        }
        Ok(cidr)
    }
}

impl Cidr {
    /// Whether the network holds the address (compared canonically).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `ip` with the bits below `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; anything else unchanged.
#[must_use]
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Which header the trusted proxies set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardingHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de facto standard).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl FromStr for ForwardingHeader {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(()),
        }
    }
}

/// Our proxies, and the header they set. The default trusts nobody: the peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    cidrs: Vec<Cidr>,
    header: ForwardingHeader,
}

impl TrustedProxies {
    /// Proxies in these networks, setting this header.
    #[must_use]
    pub fn new(cidrs: Vec<Cidr>, header: ForwardingHeader) -> Self {
        Self { cidrs, header }
    }

    /// Whether an address is one of our proxies.
    #[must_use]
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the right-most
    /// untrusted address of the forwarding header (see the module documentation). `None` only
    /// without a peer (a request not from a socket, as in some unit tests).
    #[must_use]
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops = match self.header {
            ForwardingHeader::XForwardedFor => x_forwarded_for(headers),
            ForwardingHeader::Forwarded => forwarded(headers),
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop else {
                return Some(client);
            };
            client = canonical(*ip);
            if !self.trusts(client) {
                return Some(client);
            }
        }
        Some(client)
    }
}

/// The hops of every `X-Forwarded-For` line, in order (`None`: unreadable).
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        hops.extend(value.split(',').map(|hop| address(hop.trim())));
    }
    bounded(hops)
}

/// The `for=` of every `Forwarded` element, in order (`None`: unreadable, `unknown`, obfuscated
/// or missing).
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"'))
            });
            hops.push(node.and_then(address));
        }
    }
    bounded(hops)
}

/// A chain longer than [`MAX_HOPS`] keeps only its right-most hops, behind one unreadable one.
fn bounded(mut hops: Vec<Option<IpAddr>>) -> Vec<Option<IpAddr>> {
    if hops.len() > MAX_HOPS {
        let keep = hops.split_off(hops.len() - MAX_HOPS);
        hops = std::iter::once(None).chain(keep).collect();
    }
    hops
}

/// One hop: an address, with or without a port (`203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`).
fn address(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn proxies(cidrs: &[&str], header: ForwardingHeader) -> TrustedProxies {
        TrustedProxies::new(cidrs.iter().map(|c| c.parse().unwrap()).collect(), header)
    }

    #[test]
    fn cidrs_parse_strictly() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "127.0.0.1".parse::<Cidr>().unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(
            "::ffff:10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8",
            "a mapped address is its IPv4 self"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.1/8",
            "example.com",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment_is_by_prefix_and_canonical() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(
            !net.contains(ip("::a00:1")),
            "an IPv6 address is never in an IPv4 network"
        );
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let everything: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.7")));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardingHeader::XForwardedFor);
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            trusted.client_ip(Some(ip("203.0.113.9")), &spoofed),
            Some(ip("203.0.113.9"))
        );
        // Nobody trusted (the default): the header is never read.
        let nobody = TrustedProxies::default();
        assert_eq!(
            nobody.client_ip(Some(ip("10.0.0.2")), &spoofed),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(nobody.client_ip(None, &spoofed), None);
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardingHeader::XForwardedFor);
        let peer = Some(ip("10.0.0.2"));
        let cases = [
            ("203.0.113.7", "203.0.113.7"),
            // The client prepended a lie: the right-most untrusted entry wins.
            ("1.1.1.1, 203.0.113.7", "203.0.113.7"),
            // A chain of our own proxies is skipped.
            ("203.0.113.7, 10.0.0.5, 10.0.0.9", "203.0.113.7"),
            // Ports and brackets.
            ("203.0.113.7:4711", "203.0.113.7"),
            ("[2001:db8::7]:4711", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            // Garbage from the right stops the walk at the last trusted address.
            ("203.0.113.7, garbage", "10.0.0.2"),
            ("203.0.113.7, garbage, 10.0.0.5", "10.0.0.5"),
            ("unknown", "10.0.0.2"),
            // Every hop trusted: the left-most.
            ("10.0.0.7, 10.0.0.5", "10.0.0.7"),
        ];
        for (header, expected) in cases {
            let h = headers(&[("x-forwarded-for", header)]);
            assert_eq!(trusted.client_ip(peer, &h), Some(ip(expected)), "{header}");
        }
        // No header at all: the proxy itself.
        assert_eq!(
            trusted.client_ip(peer, &HeaderMap::new()),
            Some(ip("10.0.0.2"))
        );
        // Several header lines are one list, in order.
        let two_lines = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(trusted.client_ip(peer, &two_lines), Some(ip("203.0.113.7")));
        // The other header is never read.
        let other = headers(&[("forwarded", "for=203.0.113.7")]);
        assert_eq!(trusted.client_ip(peer, &other), Some(ip("10.0.0.2")));
    }

    #[test]
    fn the_forwarded_header_is_read_when_configured() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardingHeader::Forwarded);
        let peer = Some(ip("10.0.0.2"));
        let cases = [
            ("for=203.0.113.7", "203.0.113.7"),
            ("for=1.1.1.1, for=203.0.113.7;proto=https", "203.0.113.7"),
            (
                "proto=https;For=\"[2001:db8:cafe::17]:4711\"",
                "2001:db8:cafe::17",
            ),
            ("for=203.0.113.7, for=_hidden", "10.0.0.2"),
            ("for=unknown", "10.0.0.2"),
            ("proto=https", "10.0.0.2"),
        ];
        for (header, expected) in cases {
            let h = headers(&[("forwarded", header)]);
            assert_eq!(trusted.client_ip(peer, &h), Some(ip(expected)), "{header}");
        }
        let xff = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(trusted.client_ip(peer, &xff), Some(ip("10.0.0.2")));
    }

    #[test]
    fn a_chain_too_long_is_cut_on_the_left() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardingHeader::XForwardedFor);
        let long: Vec<String> = (0..100).map(|i| format!("10.0.0.{}", i % 250)).collect();
        let h = headers(&[(
            "x-forwarded-for",
            &format!("203.0.113.7, {}", long.join(", ")),
        )]);
        // The untrusted client is beyond the 32 hops read: the walk stops at the cut.
        let client = trusted.client_ip(Some(ip("10.0.0.2")), &h).unwrap();
        assert!(trusted.trusts(client), "{client}");
    }

    #[test]
    fn the_header_name_is_one_of_two() {
        assert_eq!(
            "X-Forwarded-For".parse(),
            Ok(ForwardingHeader::XForwardedFor)
        );
        assert_eq!("forwarded".parse(), Ok(ForwardingHeader::Forwarded));
        assert!("x-real-ip".parse::<ForwardingHeader>().is_err());
    }
}
