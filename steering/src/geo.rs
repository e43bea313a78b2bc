//! Where a client is: its address (the connection's, or a trusted proxy's header) placed by a
//! MaxMind GeoLite2-City database.

use http::HeaderMap;
use maxminddb::{Reader, geoip2};
use std::net::{IpAddr, SocketAddr};
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

/// The client's address: the first address of `header` when one is configured, present and
/// valid, else the connection's peer.
pub fn client_ip(header: &str, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    if header.is_empty() {
        return peer.ip();
    }
    headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse().ok())
        .unwrap_or(peer.ip())
}
