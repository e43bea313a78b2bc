//! Where a client is: its address (the connection's, or a trusted proxy's header) placed by a
//! MaxMind GeoLite2-City database.

use maxminddb::{Reader, geoip2};
use std::net::IpAddr;
use std::path::Path;

/// A loaded GeoLite2-City database.
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
}

impl GeoDb {
    /// Opens a `.mmdb` file.
    pub fn open(path: &Path) -> Result<GeoDb, maxminddb::MaxMindDbError> {
        Ok(GeoDb {
            reader: Reader::open_readfile(path)?,
        })
    }

    /// Latitude and longitude of `ip`, if the database places it.
    pub fn location(&self, ip: IpAddr) -> Option<(f64, f64)> {
        let found = self.reader.lookup(ip).ok()?;
        let city: geoip2::City = found.decode().ok()??;
        Some((city.location.latitude?, city.location.longitude?))
    }
}

pub use strata_contracts::forwarded::client_ip;
