//! The client's country: its address (the connection's, or a trusted proxy's header) looked up
//! in a MaxMind database.

use maxminddb::{Reader, geoip2};
use std::net::IpAddr;
use std::path::Path;

/// A loaded MaxMind database (GeoLite2-City or -Country).
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

    /// The ISO 3166-1 alpha-2 country of `ip`, if the database places it.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let found = self.reader.lookup(ip).ok()?;
        let country: geoip2::Country = found.decode().ok()??;
        country.country.iso_code.map(str::to_string)
    }
}

pub use strata_contracts::forwarded::client_ip;
