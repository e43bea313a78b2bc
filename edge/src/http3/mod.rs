//! HTTP/3 (RFC 9114) on the edge's TLS port, over UDP: a quinn endpoint with rustls, h3 on
//! each connection, and every request stream handed to the same pingora proxy (`ProxyHttp`
//! impl, store, cache lock, metrics) as the TCP listeners, through `session::H3Session`.

mod session;

use crate::metrics::EdgeMetrics;
use crate::proxy::EdgeProxy;
use crate::tls_certs::CertStore;
use bytes::Bytes;
use pingora::apps::HttpServerApp;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::proxy::HttpProxy;
use session::H3Session;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why HTTP/3 could not start.
#[derive(Debug, thiserror::Error)]
pub enum Http3Error {
    /// The certificate or key could not be used.
    #[error("TLS for HTTP/3: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("binding UDP {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
}

/// QUIC transport settings.
#[derive(Debug, Clone)]
pub struct QuicSettings {
    /// Close a connection idle for this long.
    pub idle_timeout: Duration,
    /// Concurrent request streams per connection.
    pub max_streams: u32,
    /// Bytes the peer may have in flight per stream before we read (request bodies).
    pub stream_window: u32,
    /// Bytes we may have in flight per connection (sending segments).
    pub send_window: u64,
    /// BBR instead of CUBIC.
    pub bbr: bool,
    /// Connections served at once.
    pub max_connections: u32,
    /// Open connections above which new clients must validate their address first.
    pub retry_above: u32,
}

/// Binds the QUIC endpoint at `listen` and serves h3 on `runtime` until `shutdown`.
pub fn start(
    listen: SocketAddr,
    certs: Arc<CertStore>,
    quic: &QuicSettings,
    app: Arc<HttpProxy<EdgeProxy>>,
    metrics: EdgeMetrics,
    runtime: &tokio::runtime::Handle,
    shutdown: CancellationToken,
) -> Result<SocketAddr, Http3Error> {
    let server_config = server_config(certs, quic)?;
    let (max_connections, retry_above) = (quic.max_connections as usize, quic.retry_above as usize);
    let endpoint = {
        let _entered = runtime.enter();
        quinn::Endpoint::server(server_config, listen)
            .map_err(|error| Http3Error::Bind { addr: listen, error })?
    };
    let local = endpoint.local_addr().unwrap_or(listen);
    runtime.spawn(async move {
        // pingora's sessions watch this to wind down; it turns true at shutdown.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        loop {
            let incoming = tokio::select! {
                _ = shutdown.cancelled() => break,
                incoming = endpoint.accept() => match incoming {
                    Some(i) => i,
                    None => break,
                },
            };
            let open = endpoint.open_connections();
            if open >= max_connections {
                metrics.quic_connections.with_label_values(&["refused"]).inc();
                incoming.refuse();
                continue;
            }
            if open >= retry_above && !incoming.remote_address_validated() {
                metrics.quic_connections.with_label_values(&["retry"]).inc();
                let _ = incoming.retry();
                continue;
            }
            tokio::spawn(connection(
                incoming,
                Arc::clone(&app),
                metrics.clone(),
                stop_rx.clone(),
            ));
        }
        // Draining: no new connections; each open one gets a GOAWAY and finishes the requests
        // it has (the edge waits for them, up to its drain timeout). What is still open when
        // the edge's runtime goes is closed with it.
        endpoint.set_server_config(None);
        let _ = stop_tx.send(true);
    });
    Ok(local)
}

/// rustls for QUIC: TLS 1.3 only (QUIC requires it), ALPN `h3`, 0-RTT off, certificates from
/// the same (reloading, SNI-aware) store as the TCP listener.
fn server_config(certs: Arc<CertStore>, quic: &QuicSettings) -> Result<quinn::ServerConfig, Http3Error> {
    let tls_err = |e: &dyn std::fmt::Display| Http3Error::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&e))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    tls.alpn_protocols = vec![b"h3".to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| tls_err(&e))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(quic.max_streams.into())
        .max_concurrent_uni_streams(8u32.into())
        .stream_receive_window(quic.stream_window.into())
        .send_window(quic.send_window)
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(quic.idle_timeout).map_err(|e| tls_err(&e))?,
        ));
    if quic.bbr {
        transport.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    } else {
        transport.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()));
    }
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// One QUIC connection: its h3 requests, each on its own task.
async fn connection(
    incoming: quinn::Incoming,
    app: Arc<HttpProxy<EdgeProxy>>,
    metrics: EdgeMetrics,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            metrics
                .quic_connections
                .with_label_values(&["handshake_failed"])
                .inc();
            tracing::debug!(error = %e, "QUIC handshake failed");
            return;
        }
    };
    metrics.quic_connections.with_label_values(&["established"]).inc();
    metrics.quic_open.inc();
    let stats_of = conn.clone();
    serve_connection(conn, app, stop).await;
    let stats = stats_of.stats();
    metrics.quic_open.dec();
    metrics.quic_lost_packets.inc_by(stats.path.lost_packets);
    metrics.quic_rtt.observe(stats.path.rtt.as_secs_f64());
    for (direction, udp) in [("sent", stats.udp_tx), ("received", stats.udp_rx)] {
        metrics
            .quic_udp_datagrams
            .with_label_values(&[direction])
            .inc_by(udp.datagrams);
        metrics
            .quic_udp_ios
            .with_label_values(&[direction])
            .inc_by(udp.ios);
    }
}

/// The h3 requests of one established connection.
async fn serve_connection(
    conn: quinn::Connection,
    app: Arc<HttpProxy<EdgeProxy>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let client = conn.remote_address();
    let server = conn.local_ip().map(|ip| SocketAddr::new(ip, 0));
    let mut h3 = match h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(error = %e, %client, "h3 setup failed");
            return;
        }
    };
    let mut stop = stop;
    let mut draining = false;
    loop {
        let next = tokio::select! {
            next = h3.accept() => next,
            _ = async { stop.wait_for(|stopping| *stopping).await.map(|_| ()) }, if !draining => {
                draining = true;
                // GOAWAY: requests already accepted go on; the client takes new ones elsewhere.
                if let Err(e) = h3.shutdown(0).await {
                    tracing::debug!(error = %e, %client, "h3 GOAWAY");
                }
                continue;
            }
        };
        match next {
            Ok(Some(resolver)) => {
                let (app, stop) = (Arc::clone(&app), stop.clone());
                tokio::spawn(async move {
                    let (req, mut stream) = match resolver.resolve_request().await {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::debug!(error = %e, %client, "h3 request head");
                            return;
                        }
                    };
                    let Some(head) = request_header(req) else {
                        // A head pingora cannot take: reset the stream as malformed (RFC 9114
                        // section 4.1.2) rather than let quinn end it with no response.
                        tracing::debug!(%client, "h3 request head not usable");
                        stream.stop_stream(h3::error::Code::H3_MESSAGE_ERROR);
                        return;
                    };
                    let session =
                        ServerSession::new_custom(Box::new(H3Session::new(head, stream, client, server)));
                    app.process_new_http(session, &stop).await;
                });
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, %client, "h3 connection ended");
                return;
            }
        }
    }
}

/// pingora's request head for an h3 request: origin-form target, `Host` from `:authority`.
fn request_header(req: http::Request<()>) -> Option<RequestHeader> {
    let (mut parts, ()) = req.into_parts();
    let authority = parts.uri.authority().map(|a| a.as_str().to_string());
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .ok()?;
    let mut head = RequestHeader::from(parts);
    if !head.headers.contains_key(http::header::HOST)
        && let Some(authority) = authority
    {
        head.insert_header(http::header::HOST, authority).ok()?;
    }
    Some(head)
}
