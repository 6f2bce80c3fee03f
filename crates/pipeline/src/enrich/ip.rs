//! Client IP parsing and anonymization.
//!
//! The full client IP is personal data; what analytics needs from it (geography, rough network)
//! survives truncation to a network prefix, the same trade Google Analytics' IP anonymization
//! makes: IPv4 keeps its /24, IPv6 its /48 (a site's allocation, not a subscriber's).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bits of an IPv4 address kept by [`anonymize`].
pub const IPV4_PREFIX_BITS: u32 = 24;

/// Bits of an IPv6 address kept by [`anonymize`].
pub const IPV6_PREFIX_BITS: u32 = 48;

/// Parses a client IP as producers and proxies send it: surrounding whitespace is ignored and
/// an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an IPv4
/// client) becomes the IPv4 address it carries. `None` when it is not an IP address.
pub fn parse(ip: &str) -> Option<IpAddr> {
    ip.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Truncates a parsed address to its anonymization prefix (see [`anonymize`]).
pub fn truncate(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mask = u32::MAX << (32 - IPV4_PREFIX_BITS);
            IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - IPV6_PREFIX_BITS);
            IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
        }
    }
}

/// Anonymizes a client IP: IPv4 keeps its first 24 bits (`203.0.113.77` → `203.0.113.0`), IPv6
/// its first 48 (`2001:db8:85a3:8d3:1319:8a2e:370:7348` → `2001:db8:85a3::`), and an
/// IPv4-mapped IPv6 address is anonymized as the IPv4 address it carries.
///
/// The result is in canonical text form, so anonymizing it again returns it unchanged. `None`
/// when `ip` is not an IP address: the caller must then drop the value rather than keep it,
/// since a string we cannot parse we cannot truncate either, and it may still be personal data.
pub fn anonymize(ip: &str) -> Option<String> {
    parse(ip).map(|ip| text(truncate(ip)))
}

/// An address's canonical text form, as its `Display` writes it. IPv4 is written octet by
/// octet: `Display` goes through the formatter's padding machinery, which made formatting the
/// anonymized address a sixth of the enricher's time.
pub fn text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
            text
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ipv4_keeps_the_slash_24() {
        assert_eq!(anonymize("203.0.113.77").as_deref(), Some("203.0.113.0"));
        assert_eq!(anonymize("  10.1.2.3 ").as_deref(), Some("10.1.2.0"));
    }

    #[test]
    fn ipv6_keeps_the_slash_48() {
        assert_eq!(
            anonymize("2001:db8:85a3:8d3:1319:8a2e:370:7348").as_deref(),
            Some("2001:db8:85a3::")
        );
        assert_eq!(anonymize("::1").as_deref(), Some("::"));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_treated_as_ipv4() {
        assert_eq!(
            anonymize("::ffff:198.51.100.23").as_deref(),
            Some("198.51.100.0")
        );
        assert_eq!(
            anonymize("::ffff:c633:6417").as_deref(),
            Some("198.51.100.0")
        );
    }

    #[test]
    fn unparsable_input_is_refused() {
        for bad in [
            "",
            "   ",
            "unknown",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.4:8080",
            "1.2.3.4, 5.6.7.8",
            "fe80::1%eth0",
            "[::1]",
        ] {
            assert_eq!(anonymize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn already_anonymized_input_is_unchanged() {
        for ip in ["203.0.113.0", "2001:db8:85a3::", "::", "0.0.0.0"] {
            assert_eq!(anonymize(ip).as_deref(), Some(ip));
        }
    }

    proptest! {
        #[test]
        fn text_is_what_display_writes(bits in any::<u128>(), v4 in any::<u32>()) {
            let v4 = IpAddr::V4(Ipv4Addr::from_bits(v4));
            prop_assert_eq!(text(v4), v4.to_string());
            let v6 = IpAddr::V6(Ipv6Addr::from_bits(bits));
            prop_assert_eq!(text(v6), v6.to_string());
        }

        #[test]
        fn anonymize_is_idempotent(bits in any::<u128>(), v4 in any::<u32>(), use_v4 in any::<bool>()) {
            let ip = if use_v4 {
                IpAddr::V4(Ipv4Addr::from_bits(v4))
            } else {
                IpAddr::V6(Ipv6Addr::from_bits(bits))
            };
            let once = anonymize(&ip.to_string()).unwrap();
            prop_assert_eq!(anonymize(&once).unwrap(), once);
        }

        #[test]
        fn ipv4_host_bits_never_survive(v4 in any::<u32>()) {
            let ip = Ipv4Addr::from_bits(v4);
            let out: Ipv4Addr = anonymize(&ip.to_string()).unwrap().parse().unwrap();
            prop_assert_eq!(out.to_bits() & 0xff, 0);
            prop_assert_eq!(out.to_bits() >> 8, v4 >> 8);
            // The mapped form must leak no more than the plain one.
            let mapped = ip.to_ipv6_mapped().to_string();
            prop_assert_eq!(anonymize(&mapped).unwrap(), out.to_string());
        }

        #[test]
        fn ipv6_interface_bits_never_survive(bits in any::<u128>()) {
            let ip = Ipv6Addr::from_bits(bits);
            let out = parse(&anonymize(&ip.to_string()).unwrap()).unwrap();
            match out {
                IpAddr::V6(out) => {
                    prop_assert_eq!(out.to_bits() & (u128::MAX >> 48), 0);
                    prop_assert_eq!(out.to_bits() >> 80, bits >> 80);
                }
                // An IPv4-mapped input comes back as IPv4, already checked above.
                IpAddr::V4(out) => {
                    prop_assert!(ip.to_ipv4_mapped().is_some());
                    prop_assert_eq!(out.to_bits() & 0xff, 0);
                }
            }
        }
    }
}
