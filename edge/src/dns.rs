//! Upstream host names, resolved through hickory-resolver. Its cache keeps each answer for
//! the record's TTL, so an origin or parent whose name is re-pointed is followed as soon as
//! the old record expires, with no restart. Addresses written as IP literals skip it.

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use std::net::{IpAddr, SocketAddr};

/// The resolver every upstream connection goes through.
pub struct Dns {
    resolver: Result<TokioResolver, String>,
}

impl Dns {
    /// Uses `nameservers` (UDP and TCP) when given, else the system's (`/etc/resolv.conf`,
    /// with `/etc/hosts` consulted first). A resolver that cannot be built is reported on
    /// each lookup of a name, so IP-literal upstreams keep working.
    pub fn new(nameservers: &[SocketAddr]) -> Self {
        let resolver = if nameservers.is_empty() {
            Resolver::builder_tokio().and_then(|b| b.build())
        } else {
            let servers = nameservers
                .iter()
                .map(|addr| {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    for connection in &mut server.connections {
                        connection.port = addr.port();
                    }
                    server
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
            .build()
        };
        Self {
            resolver: resolver.map_err(|e| e.to_string()),
        }
    }

    /// The address to connect to for `host:port`.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let resolver = self
            .resolver
            .as_ref()
            .map_err(|e| format!("no DNS resolver: {e}"))?;
        let answer = resolver
            .lookup_ip(host)
            .await
            .map_err(|e| format!("resolving {host}: {e}"))?;
        answer
            .iter()
            .next()
            .map(|ip| SocketAddr::new(ip, port))
            .ok_or_else(|| format!("resolving {host}: no address"))
    }
}
