//! The client's country: its address (the connection's, or a trusted proxy's header) looked up
//! in a MaxMind database.

use http::HeaderMap;
use maxminddb::{Reader, geoip2};
use std::net::{IpAddr, SocketAddr};
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

/// The client's address: the first address of `header` when one is configured and present
/// and parses, else the connection's peer.
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

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_forwarded_address_is_used_only_when_configured() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "81.2.69.160, 10.0.0.1".parse().unwrap());
        assert_eq!(client_ip("", &h, peer), peer.ip());
        assert_eq!(
            client_ip("x-forwarded-for", &h, peer),
            "81.2.69.160".parse::<IpAddr>().unwrap()
        );
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip("x-forwarded-for", &h, peer), peer.ip());
    }
}
