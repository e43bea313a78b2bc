//! Which address a request came from, when a trusted proxy (a load balancer) stands in front
//! of a service and names the client in a header.

use http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// The client's address: the first address of `header` (for example `x-forwarded-for`) when
/// one is configured, present and valid, else the connection's peer.
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
