//! A small MaxMind DB writer for tests, written from the public format specification
//! (<https://maxmind.github.io/MaxMind-DB/>), so geography tests need no licensed database.
//!
//! # Layout of the file it writes
//!
//! ```text
//! ┌──────────────────────┬──────────────┬──────────────┬────────────────────────┬──────────┐
//! │ search tree          │ 16 zero bytes│ data section │ "\xAB\xCD\xEFMaxMind.com"│ metadata │
//! │ node_count × 6 bytes │ (separator)  │ (values)     │ (marker)               │ (a map)  │
//! └──────────────────────┴──────────────┴──────────────┴────────────────────────┴──────────┘
//! ```
//!
//! - **Search tree**: a binary trie over the 128 bits of an IPv6 address, most significant bit
//!   first. Node 0 is the root. Each node is two 24-bit big-endian records, left (bit 0) then
//!   right (bit 1). A record `< node_count` is the next node; `== node_count` means "no data";
//!   `> node_count` points into the data section at offset `record - node_count - 16`.
//! - **IPv4** lives under `::/96`: an IPv4 network `a.b.c.d/n` is stored as `::a.b.c.d/(96+n)`,
//!   which is where readers start an IPv4 lookup (after following 96 zero bits from the root).
//! - **Data section**: each distinct value once, in the MaxMind type encoding: a control byte
//!   with the type in its top 3 bits (0 means "extended": the type is 7 + the next byte) and
//!   the size in its low 5 bits (< 29 literal; 29, 30, 31: one, two or three more bytes hold
//!   `size - 29`, `size - 285`, `size - 65821`), then the payload. Maps hold `size` key/value
//!   pairs with UTF-8 string keys; unsigned integers are big-endian without leading zero bytes.
//! - **Metadata**: a map (`binary_format_major_version` 2, `_minor_version` 0, `build_epoch`,
//!   `database_type`, `description`, `ip_version` 6, `languages`, `node_count`,
//!   `record_size` 24) after the marker, found by readers by searching for the last marker.
//!
//! Invariants: with 24-bit records the tree and data together must stay below 2^24 (ample for
//! tests; checked). A network inserted after a containing one splits it (the rest of the
//! containing network keeps its value); a network inserted after networks inside it replaces
//! them all.
// Test support: each test binary uses part of it, and it fails by panicking.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// A value of the MaxMind DB data section (the subset the GeoIP2 schemas need).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// UTF-8 string (type 2).
    String(String),
    /// Unsigned 16-bit integer (type 5).
    U16(u16),
    /// Unsigned 32-bit integer (type 6).
    U32(u32),
    /// Unsigned 64-bit integer (type 9, extended).
    U64(u64),
    /// Boolean (type 14, extended; the value is the size).
    Bool(bool),
    /// Map with string keys (type 7), in the given order.
    Map(Vec<(String, Value)>),
    /// Array (type 11, extended).
    Array(Vec<Value>),
}

impl Value {
    /// A map from `(key, value)` pairs.
    pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// A string.
    pub fn string(s: &str) -> Value {
        Value::String(s.to_string())
    }

    /// Appends the MaxMind encoding of this value to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::String(s) => {
                control(out, 2, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Value::U16(n) => unsigned(out, 5, u64::from(*n)),
            Value::U32(n) => unsigned(out, 6, u64::from(*n)),
            Value::U64(n) => unsigned(out, 9, *n),
            Value::Bool(b) => control(out, 14, usize::from(*b)),
            Value::Map(pairs) => {
                control(out, 7, pairs.len());
                for (key, value) in pairs {
                    Value::String(key.clone()).encode(out);
                    value.encode(out);
                }
            }
            Value::Array(items) => {
                control(out, 11, items.len());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

/// Writes a control byte (and extended type byte and size bytes) for `type_num` and `size`.
fn control(out: &mut Vec<u8>, type_num: u8, size: usize) {
    let (size_bits, size_bytes): (u8, Vec<u8>) = match size {
        0..29 => (size as u8, vec![]),
        29..285 => (29, vec![(size - 29) as u8]),
        285..65_821 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => {
            let rest = size - 65_821;
            assert!(rest < 1 << 24, "value too large for the MaxMind encoding");
            (31, (rest as u32).to_be_bytes()[1..].to_vec())
        }
    };
    if type_num <= 7 {
        out.push((type_num << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(type_num - 7);
    }
    out.extend_from_slice(&size_bytes);
}

/// Writes an unsigned integer of `type_num` in as few big-endian bytes as it needs.
fn unsigned(out: &mut Vec<u8>, type_num: u8, n: u64) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, type_num, bytes.len() - skip);
    out.extend_from_slice(&bytes[skip..]);
}

/// One record of a tree node while building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

/// Builds a MaxMind DB in memory; see the module documentation for the layout.
#[derive(Debug, Clone)]
pub struct MmdbWriter {
    /// `nodes[0]` is the root; each is `[left, right]`.
    nodes: Vec<[Record; 2]>,
    /// Distinct values, referenced by index from `Record::Data`.
    values: Vec<Value>,
    value_index: HashMap<Value, usize>,
    database_type: String,
    description: String,
    build_epoch: u64,
}

impl Default for MmdbWriter {
    fn default() -> Self {
        MmdbWriter::new()
    }
}

impl MmdbWriter {
    /// An empty `GeoIP2-City` database.
    pub fn new() -> MmdbWriter {
        MmdbWriter {
            nodes: vec![[Record::Empty; 2]],
            values: Vec::new(),
            value_index: HashMap::new(),
            database_type: "GeoIP2-City".to_string(),
            description: "Tributary test database".to_string(),
            build_epoch: 1_700_000_000,
        }
    }

    /// Sets the metadata's `database_type` (e.g. `GeoLite2-Country`, `GeoLite2-ASN`).
    pub fn database_type(mut self, database_type: &str) -> MmdbWriter {
        self.database_type = database_type.to_string();
        self
    }

    /// Maps the network `cidr` (`81.2.69.0/24`, `2001:db8::/32`, or a single address) to
    /// `value`. Panics on a malformed network: this is test support.
    pub fn insert(mut self, cidr: &str, value: Value) -> MmdbWriter {
        let (bits, prefix) = parse_network(cidr);
        let data = match self.value_index.get(&value) {
            Some(&index) => index,
            None => {
                self.values.push(value.clone());
                self.value_index.insert(value, self.values.len() - 1);
                self.values.len() - 1
            }
        };
        let mut node = 0;
        for depth in 0..prefix {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == prefix {
                self.nodes[node][bit] = Record::Data(data);
                break;
            }
            node = match self.nodes[node][bit] {
                Record::Node(next) => next,
                // Inside an existing network (or nothing): split it so the rest of it keeps
                // its value.
                inherited @ (Record::Empty | Record::Data(_)) => {
                    self.nodes.push([inherited; 2]);
                    let next = self.nodes.len() - 1;
                    self.nodes[node][bit] = Record::Node(next);
                    next
                }
            };
        }
        self
    }

    /// The database file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(self.values.len());
        for value in &self.values {
            offsets.push(data.len());
            value.encode(&mut data);
        }
        let node_count = self.nodes.len();
        let record = |r: Record| -> u32 {
            let n = match r {
                Record::Empty => node_count,
                Record::Node(i) => i,
                Record::Data(i) => node_count + 16 + offsets[i],
            };
            assert!(n < 1 << 24, "database too large for 24-bit records");
            n as u32
        };
        let mut out = Vec::with_capacity(node_count * 6 + 16 + data.len() + 256);
        for [left, right] in &self.nodes {
            out.extend_from_slice(&record(*left).to_be_bytes()[1..]);
            out.extend_from_slice(&record(*right).to_be_bytes()[1..]);
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        Value::map([
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(self.build_epoch)),
            ("database_type", Value::string(&self.database_type)),
            (
                "description",
                Value::map([("en", Value::string(&self.description))]),
            ),
            ("ip_version", Value::U16(6)),
            ("languages", Value::Array(vec![Value::string("en")])),
            ("node_count", Value::U32(node_count as u32)),
            ("record_size", Value::U16(24)),
        ])
        .encode(&mut out);
        out
    }

    /// Writes the database to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::File::create(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, &self.to_bytes()))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// The 128-bit tree key and prefix length of a network; IPv4 goes under `::/96`.
fn parse_network(cidr: &str) -> (u128, usize) {
    let (addr, prefix) = match cidr.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (cidr, None),
    };
    let addr: IpAddr = addr
        .parse()
        .unwrap_or_else(|e| panic!("bad network {cidr:?}: {e}"));
    let (bits, offset, width) = match addr {
        IpAddr::V4(v4) => (u128::from(v4.to_bits()), 96, 32),
        IpAddr::V6(v6) => (v6.to_bits(), 0, 128),
    };
    let prefix: usize = prefix.map_or(width, |p| {
        p.parse()
            .unwrap_or_else(|e| panic!("bad prefix in {cidr:?}: {e}"))
    });
    assert!(
        (1..=width).contains(&prefix),
        "prefix of {cidr:?} out of range"
    );
    (bits, offset + prefix)
}

/// A GeoIP2 City record: country ISO code, first subdivision ISO code, English city name.
pub fn city(country: &str, region: &str, city: &str) -> Value {
    Value::map([
        (
            "city",
            Value::map([
                ("geoname_id", Value::U32(2_643_743)),
                ("names", Value::map([("en", Value::string(city))])),
            ]),
        ),
        (
            "country",
            Value::map([
                ("iso_code", Value::string(country)),
                ("names", Value::map([("en", Value::string(country))])),
            ]),
        ),
        (
            "location",
            Value::map([("accuracy_radius", Value::U16(100))]),
        ),
        (
            "subdivisions",
            Value::Array(vec![Value::map([("iso_code", Value::string(region))])]),
        ),
    ])
}

/// A GeoIP2 Country record.
pub fn country(country: &str) -> Value {
    Value::map([
        (
            "country",
            Value::map([
                ("iso_code", Value::string(country)),
                ("is_in_european_union", Value::Bool(false)),
            ]),
        ),
        ("continent", Value::map([("code", Value::string("EU"))])),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb::{Reader, geoip2};

    fn reader(writer: &MmdbWriter) -> Reader<Vec<u8>> {
        Reader::from_source(writer.to_bytes()).unwrap()
    }

    fn city_of(reader: &Reader<Vec<u8>>, ip: &str) -> Option<(String, String, String)> {
        let record = reader
            .lookup::<geoip2::City>(ip.parse().unwrap())
            .unwrap()?;
        Some((
            record.country.unwrap().iso_code.unwrap().to_string(),
            record.subdivisions.unwrap()[0]
                .iso_code
                .unwrap()
                .to_string(),
            record.city.unwrap().names.unwrap()["en"].to_string(),
        ))
    }

    fn triple(c: &str, r: &str, n: &str) -> Option<(String, String, String)> {
        Some((c.into(), r.into(), n.into()))
    }

    #[test]
    fn metadata_round_trips() {
        let r = reader(&MmdbWriter::new().insert("81.2.69.0/24", city("GB", "ENG", "London")));
        assert_eq!(r.metadata.binary_format_major_version, 2);
        assert_eq!(r.metadata.database_type, "GeoIP2-City");
        assert_eq!(r.metadata.ip_version, 6);
        assert_eq!(r.metadata.record_size, 24);
        assert_eq!(r.metadata.languages, ["en"]);
        assert_eq!(r.metadata.description["en"], "Tributary test database");
        assert_eq!(r.metadata.build_epoch, 1_700_000_000);
    }

    #[test]
    fn ipv4_and_ipv6_networks_round_trip() {
        let r = reader(
            &MmdbWriter::new()
                .insert("81.2.69.0/24", city("GB", "ENG", "London"))
                .insert("2001:db8:1234::/48", city("SE", "AB", "Stockholm"))
                .insert("89.160.20.112/28", city("SE", "E", "Linköping")),
        );
        assert_eq!(city_of(&r, "81.2.69.0"), triple("GB", "ENG", "London"));
        assert_eq!(city_of(&r, "81.2.69.255"), triple("GB", "ENG", "London"));
        assert_eq!(city_of(&r, "81.2.70.1"), None);
        assert_eq!(city_of(&r, "81.2.68.255"), None);
        assert_eq!(city_of(&r, "89.160.20.127"), triple("SE", "E", "Linköping"));
        assert_eq!(city_of(&r, "89.160.20.128"), None);
        assert_eq!(
            city_of(&r, "2001:db8:1234:ffff::1"),
            triple("SE", "AB", "Stockholm")
        );
        assert_eq!(city_of(&r, "2001:db8:1235::1"), None);
        assert_eq!(city_of(&r, "10.0.0.1"), None);
    }

    #[test]
    fn a_nested_network_splits_its_parent() {
        let r = reader(
            &MmdbWriter::new()
                .insert("10.0.0.0/8", city("US", "CA", "San Francisco"))
                .insert("10.1.0.0/16", city("US", "NY", "New York")),
        );
        assert_eq!(city_of(&r, "10.1.2.3"), triple("US", "NY", "New York"));
        assert_eq!(city_of(&r, "10.2.0.1"), triple("US", "CA", "San Francisco"));
        assert_eq!(
            city_of(&r, "10.0.255.255"),
            triple("US", "CA", "San Francisco")
        );
    }

    #[test]
    fn lookup_prefix_is_the_inserted_network() {
        let r = reader(&MmdbWriter::new().insert("81.2.69.0/24", city("GB", "ENG", "London")));
        let (_, prefix) = r
            .lookup_prefix::<geoip2::City>("81.2.69.77".parse().unwrap())
            .unwrap();
        assert_eq!(prefix, 24);
    }

    #[test]
    fn long_strings_and_country_records() {
        let long = "x".repeat(70_000);
        let medium = "y".repeat(300);
        let r = reader(
            &MmdbWriter::new()
                .database_type("GeoLite2-Country")
                .insert("192.0.2.0/24", city("FR", &medium, &long))
                .insert("198.51.100.0/24", country("DE")),
        );
        let (c, region, name) = city_of(&r, "192.0.2.1").unwrap();
        assert_eq!((c.as_str(), region.len(), name.len()), ("FR", 300, 70_000));
        let record = r
            .lookup::<geoip2::Country>("198.51.100.9".parse().unwrap())
            .unwrap()
            .unwrap();
        let country = record.country.unwrap();
        assert_eq!(country.iso_code, Some("DE"));
        assert_eq!(country.is_in_european_union, Some(false));
    }

    #[test]
    fn every_network_iterates_back() {
        let r = reader(
            &MmdbWriter::new()
                .insert("81.2.69.0/24", city("GB", "ENG", "London"))
                .insert("2001:db8::/32", country("NL")),
        );
        let networks: Vec<String> = r
            .within::<geoip2::Country>("::/0".parse().unwrap())
            .unwrap()
            .map(|item| item.unwrap().ip_net.to_string())
            .collect();
        assert_eq!(networks, ["81.2.69.0/24", "2001:db8::/32"]);
    }
}
