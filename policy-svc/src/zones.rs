//! Network zones: IP ranges grouped into gateways and trusted proxies, and the resolution of a
//! request's client address through its `X-Forwarded-For` chain into the zones it belongs to.
//!
//! Resolution follows Okta's IP zones. The peer that connected to us is the right end of the
//! chain. While the current address is a trusted proxy (one listed in the `proxies` of any policy
//! zone) we step one entry to the left, at most [`MAX_PROXY_HOPS`] times; the address we stop at
//! is the client. The client is in a policy zone when it is one of the zone's gateways and every
//! proxy the walk passed through is one of that zone's proxies: Okta requires the gateway and the
//! proxy to be in the same zone, so a proxy trusted for one network cannot vouch for another.
//!
//! Every doubt makes the client address unknown, and an unknown address is in no zone and
//! outside no zone ([`ResolvedNetwork::in_zone`] answers `None`): a rule can then neither be
//! satisfied by the network nor excused by it.
//!
//! Block zones deny the request when any address in the chain is listed in them, trusted or not,
//! as Okta's blocklist zones do: a client cannot hide a blocked address by putting an untrusted
//! hop in front of it, and a forged entry can only get its own request denied.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The most proxies the walk steps past. A chain still at a trusted proxy after this many steps
/// leaves the client address unknown.
pub const MAX_PROXY_HOPS: u8 = 5;

/// An address, CIDR block or range that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// An entry was empty or only whitespace.
    #[error("an address entry is empty")]
    Empty,
    /// The text is not an IP address, a CIDR block or an address range.
    #[error("`{text}` is not an IP address, CIDR block (10.0.0.0/8) or range (10.0.0.1-10.0.0.9)")]
    Malformed {
        /// The offending entry.
        text: String,
    },
    /// The prefix length after `/` is not a whole number within the width of the address.
    #[error("`{text}` has a prefix length that is not a number from 0 to {max}")]
    BadPrefix {
        /// The offending entry.
        text: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// A CIDR block has bits set after its prefix. Refused rather than silently widened, because
    /// `10.1.2.3/8` more often means a mistyped prefix than all of `10.0.0.0/8`.
    #[error("`{text}` has host bits set after the prefix; the block it names is `{network}`")]
    HostBitsSet {
        /// The offending entry.
        text: String,
        /// The same block written from its network address.
        network: String,
    },
    /// The two ends of a range are of different address families.
    #[error("`{text}` mixes an IPv4 and an IPv6 address")]
    MixedFamilies {
        /// The offending entry.
        text: String,
    },
    /// The first address of a range comes after the last.
    #[error("`{text}` starts after it ends")]
    Reversed {
        /// The offending entry.
        text: String,
    },
}

/// A contiguous block of addresses: a CIDR block, a single address or a `first-last` range.
///
/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are treated as the IPv4 address they carry,
/// both when matching and when a range is written with them, so a dual-stack listener's peers
/// match IPv4 ranges. An IPv6 range that covers only part of the mapped space (such as `::/0`)
/// stays IPv6 and does not match IPv4 clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    span: Span,
    form: Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Span {
    V4 { first: u32, last: u32 },
    V6 { first: u128, last: u128 },
}

/// How the range was written, so it is listed back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Form {
    /// A CIDR block; a full-length prefix is a single address.
    Prefix(u8),
    /// `first-last`.
    Range,
}

impl AddressRange {
    /// True when `address` (after unwrapping an IPv4-mapped IPv6 address) is in the range.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.span, address.to_canonical()) {
            (Span::V4 { first, last }, IpAddr::V4(v4)) => (first..=last).contains(&u32::from(v4)),
            (Span::V6 { first, last }, IpAddr::V6(v6)) => (first..=last).contains(&u128::from(v6)),
            _ => false,
        }
    }

    fn cidr(text: &str, address: &str, prefix: &str) -> Result<Self, ZoneError> {
        let address = parse_address(text, address)?;
        let bad_prefix = |max| ZoneError::BadPrefix {
            text: text.to_owned(),
            max,
        };
        let max = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = prefix.trim();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_prefix(max));
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad_prefix(max))?;
        if prefix > max {
            return Err(bad_prefix(max));
        }
        let span = match address {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
                Span::V4 {
                    first: bits & mask,
                    last: bits | !mask,
                }
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
                Span::V6 {
                    first: bits & mask,
                    last: bits | !mask,
                }
            }
        };
        let range = Self {
            span,
            form: Form::Prefix(prefix),
        }
        .unmapped();
        if range.first_address() != address.to_canonical() {
            return Err(ZoneError::HostBitsSet {
                text: text.to_owned(),
                network: range.to_string(),
            });
        }
        Ok(range)
    }

    fn range(text: &str, first: &str, last: &str) -> Result<Self, ZoneError> {
        let first = parse_address(text, first)?.to_canonical();
        let last = parse_address(text, last)?.to_canonical();
        let span = match (first, last) {
            (IpAddr::V4(first), IpAddr::V4(last)) => Span::V4 {
                first: first.into(),
                last: last.into(),
            },
            (IpAddr::V6(first), IpAddr::V6(last)) => Span::V6 {
                first: first.into(),
                last: last.into(),
            },
            _ => return Err(ZoneError::MixedFamilies { text: text.to_owned() }),
        };
        let reversed = match span {
            Span::V4 { first, last } => first > last,
            Span::V6 { first, last } => first > last,
        };
        if reversed {
            return Err(ZoneError::Reversed { text: text.to_owned() });
        }
        Ok(Self {
            span,
            form: Form::Range,
        })
    }

    /// Rewrites a block lying wholly inside `::ffff:0:0/96` as the IPv4 block it maps.
    fn unmapped(self) -> Self {
        const MAPPED: u128 = 0xffff_0000_0000;
        match (self.span, self.form) {
            (Span::V6 { first, last }, Form::Prefix(prefix)) if prefix >= 96 && first >> 32 == MAPPED >> 32 => {
                // Both ends share the /96 prefix, so their low 32 bits are the IPv4 addresses.
                let low = |bits: u128| (bits & u128::from(u32::MAX)) as u32;
                Self {
                    span: Span::V4 {
                        first: low(first),
                        last: low(last),
                    },
                    form: Form::Prefix(prefix - 96),
                }
            }
            _ => self,
        }
    }

    fn first_address(&self) -> IpAddr {
        match self.span {
            Span::V4 { first, .. } => IpAddr::V4(Ipv4Addr::from(first)),
            Span::V6 { first, .. } => IpAddr::V6(Ipv6Addr::from(first)),
        }
    }

    fn last_address(&self) -> IpAddr {
        match self.span {
            Span::V4 { last, .. } => IpAddr::V4(Ipv4Addr::from(last)),
            Span::V6 { last, .. } => IpAddr::V6(Ipv6Addr::from(last)),
        }
    }

    fn width(&self) -> u8 {
        match self.span {
            Span::V4 { .. } => 32,
            Span::V6 { .. } => 128,
        }
    }
}

/// Reads one side of a CIDR block or range, reporting the whole entry when it is not an address.
fn parse_address(text: &str, part: &str) -> Result<IpAddr, ZoneError> {
    part.trim()
        .parse()
        .map_err(|_| ZoneError::Malformed { text: text.to_owned() })
}

impl FromStr for AddressRange {
    type Err = ZoneError;

    /// Reads `10.0.0.0/8`, `2001:db8::/32`, a single address (`203.0.113.7`, a /32 or /128) or a
    /// range (`198.51.100.1-198.51.100.20`). Surrounding whitespace is ignored.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ZoneError::Empty);
        }
        if let Some((first, last)) = text.split_once('-') {
            return Self::range(text, first, last);
        }
        if let Some((address, prefix)) = text.split_once('/') {
            return Self::cidr(text, address, prefix);
        }
        let address = parse_address(text, text)?;
        let prefix = match address {
            IpAddr::V4(_) => "32",
            IpAddr::V6(_) => "128",
        };
        Self::cidr(text, text, prefix)
    }
}

/// The canonical form: a single address bare, a CIDR block from its network address, a range as
/// `first-last`; IPv6 in RFC 5952 form.
impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.form {
            Form::Prefix(prefix) if prefix == self.width() => write!(f, "{}", self.first_address()),
            Form::Prefix(prefix) => write!(f, "{}/{prefix}", self.first_address()),
            Form::Range => write!(f, "{}-{}", self.first_address(), self.last_address()),
        }
    }
}

/// A list of address ranges, such as a zone's gateways.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressSet {
    ranges: Vec<AddressRange>,
}

impl AddressSet {
    /// Reads every entry, failing on the first that is not an address, CIDR block or range.
    pub fn parse(entries: &[impl AsRef<str>]) -> Result<Self, ZoneError> {
        entries.iter().map(|entry| entry.as_ref().parse()).collect()
    }

    /// True when any range contains `address`.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.ranges.iter().any(|range| range.contains(address))
    }

    /// True when the set has no ranges.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The number of ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// The ranges, in the order they were given.
    pub fn ranges(&self) -> &[AddressRange] {
        &self.ranges
    }

    /// The ranges in canonical form, in the order they were given.
    pub fn to_strings(&self) -> Vec<String> {
        self.ranges.iter().map(ToString::to_string).collect()
    }
}

impl FromIterator<AddressRange> for AddressSet {
    fn from_iter<I: IntoIterator<Item = AddressRange>>(iter: I) -> Self {
        Self {
            ranges: iter.into_iter().collect(),
        }
    }
}

/// What a zone is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZoneKind {
    /// A network that sign-in policy rules can require or exclude. Its proxies are trusted to
    /// report the address they forward for.
    Policy,
    /// A blocklist: a request with any of its addresses in the chain is denied before any policy
    /// is looked at. Its proxies are blocked like its gateways and are never trusted.
    Block,
}

/// A named set of networks (Okta's IP zone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkZone {
    /// Stable identifier that policy rules refer to.
    pub id: String,
    /// Name shown to administrators.
    pub name: String,
    /// Policy network or blocklist.
    pub kind: ZoneKind,
    /// Addresses a client is in the zone from.
    pub gateways: AddressSet,
    /// Proxies trusted to report the client address in `X-Forwarded-For`.
    pub proxies: AddressSet,
}

/// Why the client address of a request could not be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnknownAddress {
    /// An entry the walk reached in `X-Forwarded-For` was not an address.
    MalformedForwardedFor,
    /// The chain was still at a trusted proxy after [`MAX_PROXY_HOPS`] steps.
    TooManyProxies,
}

impl UnknownAddress {
    /// A short reason for logs and decision explanations.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedForwardedFor => "an X-Forwarded-For entry is not an IP address",
            Self::TooManyProxies => "the request passed through more trusted proxies than are followed",
        }
    }
}

impl fmt::Display for UnknownAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a request came from, as far as the zones can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedNetwork {
    /// The client address, or `None` when it cannot be told.
    pub address: Option<IpAddr>,
    /// How many trusted proxies the walk stepped past.
    pub hops: u8,
    /// Ids of the policy zones the client is in, in index order; empty when the address is unknown.
    pub zones: Vec<String>,
    /// The first block zone (in index order) listing an address of the chain.
    pub blocked_by: Option<String>,
    /// Why `address` is `None`.
    pub unknown_reason: Option<UnknownAddress>,
}

impl ResolvedNetwork {
    /// Whether the client is in the zone: `None` when the address is unknown, so that neither
    /// "in zone" nor "not in zone" can be satisfied.
    pub fn in_zone(&self, zone_id: &str) -> Option<bool> {
        self.address?;
        Some(self.zones.iter().any(|id| id == zone_id))
    }

    /// True when a block zone denies the request.
    pub fn is_blocked(&self) -> bool {
        self.blocked_by.is_some()
    }
}

/// The zones in force, ready to resolve requests.
#[derive(Debug, Clone, Default)]
pub struct ZoneIndex {
    zones: Vec<NetworkZone>,
}

impl ZoneIndex {
    /// Indexes `zones`; their order decides which block zone is reported when several match.
    pub fn new(zones: Vec<NetworkZone>) -> Self {
        Self { zones }
    }

    /// The zones, in the order given.
    pub fn zones(&self) -> &[NetworkZone] {
        &self.zones
    }

    /// The zone with this id.
    pub fn get(&self, id: &str) -> Option<&NetworkZone> {
        self.zones.iter().find(|zone| zone.id == id)
    }

    /// Resolves the client address of a request that arrived from `peer` with these raw
    /// `X-Forwarded-For` header values (in the order received; each may be a comma-separated
    /// list), then the zones it is in and any block zone that denies it.
    pub fn resolve(&self, peer: IpAddr, forwarded_for: &[&str]) -> ResolvedNetwork {
        let peer = peer.to_canonical();
        // Right to left: the last header's last entry was appended by the hop nearest to us.
        let mut chain = forwarded_for.iter().rev().flat_map(|value| value.rsplit(','));
        let mut current = peer;
        let mut hops = 0u8;
        // The proxies stepped past, nearest first; only the first `hops` are meaningful.
        let mut passed = [peer; MAX_PROXY_HOPS as usize];
        let mut unknown_reason = None;
        while self.is_trusted_proxy(current) {
            if hops == MAX_PROXY_HOPS {
                unknown_reason = Some(UnknownAddress::TooManyProxies);
                break;
            }
            // A trusted proxy with nothing to its left made the request itself.
            let Some(entry) = chain.next() else { break };
            let Some(next) = parse_forwarded_entry(entry) else {
                unknown_reason = Some(UnknownAddress::MalformedForwardedFor);
                break;
            };
            if let Some(slot) = passed.get_mut(usize::from(hops)) {
                *slot = current;
            }
            hops += 1;
            current = next;
        }

        let address = unknown_reason.is_none().then_some(current);
        let passed = passed.get(..usize::from(hops)).unwrap_or_default();
        let zones = match address {
            Some(client) => self
                .zones
                .iter()
                .filter(|zone| zone.kind == ZoneKind::Policy && zone.gateways.contains(client))
                .filter(|zone| passed.iter().all(|proxy| zone.proxies.contains(*proxy)))
                .map(|zone| zone.id.clone())
                .collect(),
            None => Vec::new(),
        };
        ResolvedNetwork {
            address,
            hops,
            zones,
            blocked_by: self.blocking_zone(peer, forwarded_for).map(|zone| zone.id.clone()),
            unknown_reason,
        }
    }

    fn is_trusted_proxy(&self, address: IpAddr) -> bool {
        self.zones
            .iter()
            .any(|zone| zone.kind == ZoneKind::Policy && zone.proxies.contains(address))
    }

    /// The first block zone listing the peer or any readable `X-Forwarded-For` entry.
    fn blocking_zone(&self, peer: IpAddr, forwarded_for: &[&str]) -> Option<&NetworkZone> {
        self.zones
            .iter()
            .filter(|zone| zone.kind == ZoneKind::Block)
            .find(|zone| {
                let listed = |address: IpAddr| zone.gateways.contains(address) || zone.proxies.contains(address);
                listed(peer)
                    || forwarded_for
                        .iter()
                        .flat_map(|value| value.split(','))
                        .filter_map(parse_forwarded_entry)
                        .any(listed)
            })
    }
}

/// Reads one `X-Forwarded-For` entry: `203.0.113.7`, `203.0.113.7:5678`, `2001:db8::1` or
/// `[2001:db8::1]:443`. `None` for anything else, including RFC 7239's `unknown` and obfuscated
/// identifiers, which name no address.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let address: Ipv6Addr = host.parse().ok()?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok.then_some(IpAddr::V6(address).to_canonical());
    }
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    // Only IPv4 may carry an unbracketed port; an IPv6 address has more than one colon.
    let (host, port) = entry.split_once(':')?;
    let address: Ipv4Addr = host.parse().ok()?;
    is_port(port).then_some(IpAddr::V4(address))
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn set(entries: &[&str]) -> AddressSet {
        AddressSet::parse(entries).unwrap()
    }

    fn zone(id: &str, kind: ZoneKind, gateways: &[&str], proxies: &[&str]) -> NetworkZone {
        NetworkZone {
            id: id.into(),
            name: id.to_uppercase(),
            kind,
            gateways: set(gateways),
            proxies: set(proxies),
        }
    }

    /// corp: an office network behind a farm of reverse proxies (198.51.100.10-19);
    /// lab: 10.0.0.0/8, reachable through the same proxies only as far as the lab zone lists them;
    /// partner: a range-form gateway; blocked: a blocklist.
    fn index() -> ZoneIndex {
        ZoneIndex::new(vec![
            zone(
                "corp",
                ZoneKind::Policy,
                &["203.0.113.0/24", "2001:db8:100::/48"],
                &["198.51.100.10-198.51.100.19", "2001:db8:ffff::1"],
            ),
            zone("lab", ZoneKind::Policy, &["10.0.0.0/8"], &[]),
            zone("partner", ZoneKind::Policy, &["100.64.0.10-100.64.0.20"], &[]),
            zone("blocked", ZoneKind::Block, &["192.0.2.0/24", "2001:db8:bad::/48"], &[]),
        ])
    }

    #[test]
    fn ranges_read_in_every_written_form_and_list_back_canonically() {
        let cases = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            (" 192.168.0.0/16 ", "192.168.0.0/16"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:0db8:0000::/32", "2001:db8::/32"),
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7/32", "203.0.113.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("198.51.100.1-198.51.100.20", "198.51.100.1-198.51.100.20"),
            ("198.51.100.1 - 198.51.100.1", "198.51.100.1-198.51.100.1"),
            ("2001:db8::1-2001:db8::ff", "2001:db8::1-2001:db8::ff"),
            ("::ffff:192.0.2.0/120", "192.0.2.0/24"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("::ffff:192.0.2.1-::ffff:192.0.2.9", "192.0.2.1-192.0.2.9"),
        ];
        for (text, canonical) in cases {
            let range: AddressRange = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(range.to_string(), canonical, "{text}");
            assert_eq!(
                canonical.parse::<AddressRange>().unwrap(),
                range,
                "{canonical} round-trips"
            );
        }
    }

    #[test]
    fn bad_ranges_are_refused_with_an_error_naming_the_entry() {
        let cases = [
            ("", ZoneError::Empty),
            ("   ", ZoneError::Empty),
            ("10.0.0", ZoneError::Malformed { text: "10.0.0".into() }),
            (
                "example.com",
                ZoneError::Malformed {
                    text: "example.com".into(),
                },
            ),
            (
                "10.0.0.0/33",
                ZoneError::BadPrefix {
                    text: "10.0.0.0/33".into(),
                    max: 32,
                },
            ),
            (
                "10.0.0.0/",
                ZoneError::BadPrefix {
                    text: "10.0.0.0/".into(),
                    max: 32,
                },
            ),
            (
                "10.0.0.0/+8",
                ZoneError::BadPrefix {
                    text: "10.0.0.0/+8".into(),
                    max: 32,
                },
            ),
            (
                "2001:db8::/129",
                ZoneError::BadPrefix {
                    text: "2001:db8::/129".into(),
                    max: 128,
                },
            ),
            (
                "10.1.2.3/8",
                ZoneError::HostBitsSet {
                    text: "10.1.2.3/8".into(),
                    network: "10.0.0.0/8".into(),
                },
            ),
            (
                "2001:db8::1/32",
                ZoneError::HostBitsSet {
                    text: "2001:db8::1/32".into(),
                    network: "2001:db8::/32".into(),
                },
            ),
            (
                "10.0.0.1-2001:db8::1",
                ZoneError::MixedFamilies {
                    text: "10.0.0.1-2001:db8::1".into(),
                },
            ),
            (
                "10.0.0.9-10.0.0.1",
                ZoneError::Reversed {
                    text: "10.0.0.9-10.0.0.1".into(),
                },
            ),
            (
                "10.0.0.1-10.0.0.9-10.0.0.12",
                ZoneError::Malformed {
                    text: "10.0.0.1-10.0.0.9-10.0.0.12".into(),
                },
            ),
            (
                "010.0.0.1",
                ZoneError::Malformed {
                    text: "010.0.0.1".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<AddressRange>(), Err(expected), "{text:?}");
        }
        let message = "10.1.2.3/8".parse::<AddressRange>().unwrap_err().to_string();
        assert!(
            message.contains("`10.1.2.3/8`") && message.contains("`10.0.0.0/8`"),
            "{message}"
        );
    }

    #[test]
    fn a_range_contains_its_ends_and_nothing_beyond_them() {
        let cases = [
            ("10.0.0.0/8", "10.0.0.0", true),
            ("10.0.0.0/8", "10.255.255.255", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("10.0.0.0/8", "9.255.255.255", false),
            ("0.0.0.0/0", "255.255.255.255", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "192.0.2.1", false),
            ("203.0.113.7", "203.0.113.7", true),
            ("203.0.113.7", "203.0.113.8", false),
            ("100.64.0.10-100.64.0.20", "100.64.0.10", true),
            ("100.64.0.10-100.64.0.20", "100.64.0.20", true),
            ("100.64.0.10-100.64.0.20", "100.64.0.21", false),
            ("100.64.0.10-100.64.0.20", "100.64.0.9", false),
            ("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db8::/32", "2001:db9::", false),
            ("192.0.2.0/24", "::ffff:192.0.2.77", true),
            ("::ffff:192.0.2.0/120", "192.0.2.77", true),
        ];
        for (range, address, expected) in cases {
            let parsed: AddressRange = range.parse().unwrap();
            assert_eq!(parsed.contains(ip(address)), expected, "{range} contains {address}");
        }
    }

    #[test]
    fn an_address_set_matches_any_of_its_ranges_and_lists_them_back() {
        let gateways = set(&["10.0.0.0/8", "203.0.113.7/32", "2001:db8::/32"]);
        assert!(gateways.contains(ip("10.9.8.7")));
        assert!(gateways.contains(ip("203.0.113.7")));
        assert!(gateways.contains(ip("2001:db8::42")));
        assert!(!gateways.contains(ip("203.0.113.8")));
        assert_eq!(gateways.to_strings(), ["10.0.0.0/8", "203.0.113.7", "2001:db8::/32"]);
        assert_eq!(gateways.len(), 3);
        let none: [&str; 0] = [];
        assert!(AddressSet::parse(&none).unwrap().is_empty());
        assert_eq!(
            AddressSet::parse(&["10.0.0.0/8", "nope"]),
            Err(ZoneError::Malformed { text: "nope".into() })
        );
    }

    struct Case {
        name: &'static str,
        peer: &'static str,
        forwarded_for: &'static [&'static str],
        address: Option<&'static str>,
        hops: u8,
        zones: &'static [&'static str],
        blocked_by: Option<&'static str>,
        unknown_reason: Option<UnknownAddress>,
    }

    fn known(
        name: &'static str,
        peer: &'static str,
        forwarded_for: &'static [&'static str],
        address: &'static str,
        hops: u8,
        zones: &'static [&'static str],
    ) -> Case {
        Case {
            name,
            peer,
            forwarded_for,
            address: Some(address),
            hops,
            zones,
            blocked_by: None,
            unknown_reason: None,
        }
    }

    fn unknown(
        name: &'static str,
        peer: &'static str,
        forwarded_for: &'static [&'static str],
        hops: u8,
        reason: UnknownAddress,
    ) -> Case {
        Case {
            name,
            peer,
            forwarded_for,
            address: None,
            hops,
            zones: &[],
            blocked_by: None,
            unknown_reason: Some(reason),
        }
    }

    fn blocked(mut case: Case) -> Case {
        case.blocked_by = Some("blocked");
        case
    }

    fn check(index: &ZoneIndex, cases: &[Case]) {
        for case in cases {
            let resolved = index.resolve(ip(case.peer), case.forwarded_for);
            assert_eq!(resolved.address, case.address.map(ip), "{}: address", case.name);
            assert_eq!(resolved.hops, case.hops, "{}: hops", case.name);
            assert_eq!(resolved.zones, case.zones, "{}: zones", case.name);
            assert_eq!(
                resolved.blocked_by.as_deref(),
                case.blocked_by,
                "{}: blocked_by",
                case.name
            );
            assert_eq!(
                resolved.unknown_reason, case.unknown_reason,
                "{}: unknown_reason",
                case.name
            );
        }
    }

    #[test]
    fn a_direct_client_is_in_the_zones_whose_gateways_list_it() {
        check(
            &index(),
            &[
                known("office client", "203.0.113.7", &[], "203.0.113.7", 0, &["corp"]),
                known("lab client", "10.20.30.40", &[], "10.20.30.40", 0, &["lab"]),
                known("internet client", "8.8.8.8", &[], "8.8.8.8", 0, &[]),
                known("range start", "100.64.0.10", &[], "100.64.0.10", 0, &["partner"]),
                known("range end", "100.64.0.20", &[], "100.64.0.20", 0, &["partner"]),
                known("past range end", "100.64.0.21", &[], "100.64.0.21", 0, &[]),
                known(
                    "IPv6 office client",
                    "2001:db8:100::1",
                    &[],
                    "2001:db8:100::1",
                    0,
                    &["corp"],
                ),
                known("IPv6 outsider", "2001:db8:200::1", &[], "2001:db8:200::1", 0, &[]),
                known(
                    "mapped IPv4 office client",
                    "::ffff:203.0.113.7",
                    &[],
                    "203.0.113.7",
                    0,
                    &["corp"],
                ),
            ],
        );
    }

    #[test]
    fn the_client_behind_trusted_proxies_is_found_up_to_five_hops_away() {
        check(
            &index(),
            &[
                known(
                    "one proxy",
                    "198.51.100.10",
                    &["203.0.113.7"],
                    "203.0.113.7",
                    1,
                    &["corp"],
                ),
                known(
                    "two proxies",
                    "198.51.100.11",
                    &["203.0.113.7, 198.51.100.10"],
                    "203.0.113.7",
                    2,
                    &["corp"],
                ),
                known(
                    "five proxies over two header values",
                    "198.51.100.15",
                    &[
                        "203.0.113.7, 198.51.100.11,198.51.100.12",
                        "198.51.100.13 ,198.51.100.14",
                    ],
                    "203.0.113.7",
                    5,
                    &["corp"],
                ),
                known(
                    "an outsider through the proxies",
                    "198.51.100.10",
                    &["8.8.8.8"],
                    "8.8.8.8",
                    1,
                    &[],
                ),
                known(
                    "entries left of the client are not read",
                    "198.51.100.10",
                    &["10.1.1.1, 203.0.113.7"],
                    "203.0.113.7",
                    1,
                    &["corp"],
                ),
                known(
                    "a proxy with nothing to its left is the client",
                    "198.51.100.11",
                    &["198.51.100.10"],
                    "198.51.100.10",
                    1,
                    &[],
                ),
                known(
                    "a proxy with no header is the client",
                    "198.51.100.10",
                    &[],
                    "198.51.100.10",
                    0,
                    &[],
                ),
                known(
                    "mapped IPv4 proxy",
                    "::ffff:198.51.100.10",
                    &["203.0.113.7"],
                    "203.0.113.7",
                    1,
                    &["corp"],
                ),
                known(
                    "IPv6 proxy",
                    "2001:db8:ffff::1",
                    &["2001:db8:100::7"],
                    "2001:db8:100::7",
                    1,
                    &["corp"],
                ),
            ],
        );
    }

    #[test]
    fn six_trusted_proxies_leave_the_client_unknown() {
        check(
            &index(),
            &[
                unknown(
                    "six proxies",
                    "198.51.100.16",
                    &["203.0.113.7, 198.51.100.11, 198.51.100.12, 198.51.100.13, 198.51.100.14, 198.51.100.15"],
                    5,
                    UnknownAddress::TooManyProxies,
                ),
                unknown(
                    "still at a proxy after five steps",
                    "198.51.100.15",
                    &["198.51.100.10, 198.51.100.11, 198.51.100.12, 198.51.100.13, 198.51.100.14"],
                    5,
                    UnknownAddress::TooManyProxies,
                ),
            ],
        );
        let resolved = index().resolve(ip("198.51.100.16"), &["203.0.113.7, 198.51.100.11, 198.51.100.12"]);
        assert_eq!(resolved.address, Some(ip("203.0.113.7")), "fewer hops still resolve");
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        check(
            &index(),
            &[
                known("forged office address", "8.8.8.8", &["203.0.113.7"], "8.8.8.8", 0, &[]),
                known(
                    "forged proxy chain",
                    "8.8.8.8",
                    &["203.0.113.7, 198.51.100.10"],
                    "8.8.8.8",
                    0,
                    &[],
                ),
                known(
                    "office client forging the lab",
                    "203.0.113.7",
                    &["10.1.1.1"],
                    "203.0.113.7",
                    0,
                    &["corp"],
                ),
                known(
                    "garbage from an untrusted peer",
                    "8.8.8.8",
                    &["not an address"],
                    "8.8.8.8",
                    0,
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn a_malformed_entry_the_walk_reaches_leaves_the_client_unknown() {
        let malformed = UnknownAddress::MalformedForwardedFor;
        check(
            &index(),
            &[
                unknown("text", "198.51.100.10", &["203.0.113.7, bogus"], 0, malformed),
                unknown(
                    "empty entry",
                    "198.51.100.11",
                    &["203.0.113.7,, 198.51.100.10"],
                    1,
                    malformed,
                ),
                unknown("empty header", "198.51.100.10", &[""], 0, malformed),
                unknown("rfc 7239 unknown", "198.51.100.10", &["unknown"], 0, malformed),
                unknown(
                    "port out of range",
                    "198.51.100.10",
                    &["203.0.113.7:70000"],
                    0,
                    malformed,
                ),
                unknown("empty port", "198.51.100.10", &["203.0.113.7:"], 0, malformed),
                unknown(
                    "unbracketed IPv6 with port",
                    "198.51.100.10",
                    &["2001:db8::1]:443"],
                    0,
                    malformed,
                ),
                unknown("bracketed IPv4", "198.51.100.10", &["[203.0.113.7]"], 0, malformed),
                unknown("junk after bracket", "198.51.100.10", &["[2001:db8::1]x"], 0, malformed),
                unknown("scoped IPv6", "198.51.100.10", &["fe80::1%eth0"], 0, malformed),
                known(
                    "malformed beyond the client",
                    "198.51.100.10",
                    &["bogus, 203.0.113.7"],
                    "203.0.113.7",
                    1,
                    &["corp"],
                ),
            ],
        );
    }

    #[test]
    fn forwarded_entries_may_carry_ports_brackets_and_whitespace() {
        check(
            &index(),
            &[
                known(
                    "IPv4 with port",
                    "198.51.100.10",
                    &["203.0.113.7:51234"],
                    "203.0.113.7",
                    1,
                    &["corp"],
                ),
                known(
                    "bracketed IPv6",
                    "198.51.100.10",
                    &["[2001:db8:100::5]"],
                    "2001:db8:100::5",
                    1,
                    &["corp"],
                ),
                known(
                    "IPv6 with port",
                    "198.51.100.10",
                    &["[2001:db8:100::5]:443"],
                    "2001:db8:100::5",
                    1,
                    &["corp"],
                ),
                known(
                    "bare IPv6",
                    "198.51.100.10",
                    &["2001:db8:100::5"],
                    "2001:db8:100::5",
                    1,
                    &["corp"],
                ),
                known(
                    "whitespace",
                    "198.51.100.10",
                    &["  203.0.113.7\t"],
                    "203.0.113.7",
                    1,
                    &["corp"],
                ),
                known(
                    "mapped entry",
                    "198.51.100.10",
                    &["[::ffff:203.0.113.7]:80"],
                    "203.0.113.7",
                    1,
                    &["corp"],
                ),
            ],
        );
    }

    #[test]
    fn a_gateway_counts_only_through_proxies_of_its_own_zone() {
        check(
            &index(),
            &[
                // The proxies belong to corp, so they cannot place a client in the lab.
                known(
                    "lab client through corp proxies",
                    "198.51.100.10",
                    &["10.1.1.1"],
                    "10.1.1.1",
                    1,
                    &[],
                ),
                known("lab client directly", "10.1.1.1", &[], "10.1.1.1", 0, &["lab"]),
            ],
        );
        let resolved = index().resolve(ip("198.51.100.10"), &["10.1.1.1"]);
        assert_eq!(resolved.in_zone("lab"), Some(false));
    }

    #[test]
    fn any_blocked_address_in_the_chain_blocks_the_request() {
        check(
            &index(),
            &[
                blocked(known("blocked peer", "192.0.2.5", &[], "192.0.2.5", 0, &[])),
                blocked(known(
                    "blocked client behind a proxy",
                    "198.51.100.10",
                    &["192.0.2.5"],
                    "192.0.2.5",
                    1,
                    &[],
                )),
                blocked(known(
                    "blocked entry from an untrusted peer",
                    "8.8.8.8",
                    &["192.0.2.5"],
                    "8.8.8.8",
                    0,
                    &[],
                )),
                blocked(known(
                    "blocked entry left of the client",
                    "198.51.100.10",
                    &["192.0.2.5, 203.0.113.7"],
                    "203.0.113.7",
                    1,
                    &["corp"],
                )),
                blocked(known(
                    "blocked mapped peer",
                    "::ffff:192.0.2.5",
                    &[],
                    "192.0.2.5",
                    0,
                    &[],
                )),
                blocked(known(
                    "blocked IPv6 with port",
                    "8.8.8.8",
                    &["[2001:db8:bad::1]:443"],
                    "8.8.8.8",
                    0,
                    &[],
                )),
                blocked(unknown(
                    "blocked even when the client is unknown",
                    "198.51.100.10",
                    &["192.0.2.5, bogus"],
                    0,
                    UnknownAddress::MalformedForwardedFor,
                )),
                known("an unblocked neighbour", "192.0.3.5", &[], "192.0.3.5", 0, &[]),
            ],
        );
    }

    #[test]
    fn an_unknown_address_is_neither_in_nor_out_of_any_zone() {
        let resolved = index().resolve(ip("198.51.100.10"), &["bogus"]);
        assert_eq!(resolved.in_zone("corp"), None);
        assert_eq!(resolved.in_zone("lab"), None);
        let resolved = index().resolve(ip("203.0.113.7"), &[]);
        assert_eq!(resolved.in_zone("corp"), Some(true));
        assert_eq!(resolved.in_zone("lab"), Some(false));
        assert_eq!(resolved.in_zone("no-such-zone"), Some(false));
        assert!(!resolved.is_blocked());
    }

    #[test]
    fn block_zone_proxies_are_blocked_rather_than_trusted() {
        let index = ZoneIndex::new(vec![
            zone("corp", ZoneKind::Policy, &["203.0.113.0/24"], &[]),
            zone("blocked", ZoneKind::Block, &["192.0.2.0/24"], &["198.51.100.66"]),
        ]);
        let resolved = index.resolve(ip("198.51.100.66"), &["203.0.113.7"]);
        assert_eq!(resolved.address, Some(ip("198.51.100.66")));
        assert_eq!(resolved.blocked_by.as_deref(), Some("blocked"));
        assert_eq!(index.get("blocked").map(|zone| zone.kind), Some(ZoneKind::Block));
    }
}
