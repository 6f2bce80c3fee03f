//! Geography from the client IP, with a MaxMind-format database (GeoLite2 / GeoIP2 City or
//! Country, or a compatible one such as DB-IP's lite databases).
//!
//! The whole file is read into memory when the pipeline starts: a lookup is then a walk of at
//! most 128 tree nodes and a small decode, with no I/O on the event path. A City database is
//! about 60 MB; that memory is the price of not mapping a file that an operator may replace
//! under a running process.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{Reader, geoip2};

use super::EnrichError;

/// Where an IP is, as far as the database knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// ISO 3166-1 alpha-2 country code, e.g. `GB`.
    pub country: Option<String>,
    /// ISO code of the first (largest) subdivision, e.g. `ENG`; City databases only.
    pub region: Option<String>,
    /// City name in English; City databases only.
    pub city: Option<String>,
}

impl GeoInfo {
    /// Whether the database knew nothing about the address.
    pub fn is_empty(&self) -> bool {
        self.country.is_none() && self.region.is_none() && self.city.is_none()
    }
}

/// An open geography database.
pub struct GeoDatabase {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
}

impl std::fmt::Debug for GeoDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The reader's Debug would print the whole database buffer.
        f.debug_struct("GeoDatabase")
            .field("path", &self.path)
            .field("database_type", &self.reader.metadata.database_type)
            .field("build_epoch", &self.reader.metadata.build_epoch)
            .finish()
    }
}

impl GeoDatabase {
    /// Reads the database at `path`. Fails, naming the path, when the file is unreadable, is
    /// not a MaxMind DB, or is not a City or Country database (an ASN or ISP database would
    /// open fine and then answer no lookup, which is better refused at startup).
    pub fn open(path: &Path) -> Result<GeoDatabase, EnrichError> {
        let error = |message: String| EnrichError::GeoDatabase {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        let reader = Reader::from_source(bytes).map_err(|e| error(e.to_string()))?;
        let database_type = reader.metadata.database_type.to_ascii_lowercase();
        if !database_type.contains("city") && !database_type.contains("country") {
            return Err(error(format!(
                "database type {:?} has no geography; use a City or Country database",
                reader.metadata.database_type
            )));
        }
        Ok(GeoDatabase {
            reader,
            path: path.to_path_buf(),
        })
    }

    /// The file this database was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database's type from its metadata, e.g. `GeoLite2-City`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata.database_type
    }

    /// Looks `ip` up. `Ok(None)` when the database has no record for it (private ranges,
    /// unallocated space, or IPv6 in an IPv4-only database); an error only for a corrupt
    /// database.
    pub fn lookup(&self, ip: IpAddr) -> Result<Option<GeoInfo>, maxminddb::MaxMindDbError> {
        // IPv4 clients on dual-stack sockets arrive as ::ffff:a.b.c.d; databases keep IPv4
        // under ::/96, which the reader reaches from an IPv4 address only.
        let ip = ip.to_canonical();
        if ip.is_ipv6() && self.reader.metadata.ip_version == 4 {
            return Ok(None);
        }
        // A Country database's records are a subset of a City record's fields, so one type
        // reads both.
        let Some(record) = self.reader.lookup::<geoip2::City<'_>>(ip)? else {
            return Ok(None);
        };
        let info = GeoInfo {
            country: record.country.and_then(|c| c.iso_code).map(str::to_string),
            region: record
                .subdivisions
                .and_then(|s| s.into_iter().next())
                .and_then(|s| s.iso_code)
                .map(str::to_string),
            city: record
                .city
                .and_then(|c| c.names)
                .and_then(|names| names.get("en").copied())
                .map(str::to_string),
        };
        Ok((!info.is_empty()).then_some(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GeoLite2-City.mmdb");
        let err = GeoDatabase::open(&path).unwrap_err();
        assert!(err.to_string().contains("GeoLite2-City.mmdb"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not.mmdb");
        std::fs::File::create(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"hello, not a database"))
            .unwrap();
        let err = GeoDatabase::open(&path).unwrap_err();
        let EnrichError::GeoDatabase { path: named, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(named, &path);
    }
}
