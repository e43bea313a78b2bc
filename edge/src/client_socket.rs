//! Settings on each client connection the TCP and TLS listeners accept, applied before
//! pingora's proxy takes the connection.
//!
//! `TCP_NOTSENT_LOWAT`: without it a socket accepts megabytes of a segment ahead of what the
//! connection can send, and the kernel pushes that backlog out later from whichever core
//! processes the client's ACKs (on loopback, the client's own core, which then has less left
//! for reading). With a small limit the edge writes as the connection drains. pingora does
//! not expose this option, hence a thin wrapper around its app.

use crate::metrics::GaugeHold;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::Arc;

/// Sets `TCP_NOTSENT_LOWAT` on a socket.
pub fn set_notsent_lowat(fd: std::os::fd::RawFd, bytes: u32) -> std::io::Result<()> {
    let value = bytes as libc::c_int;
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call, and
    // the option value is a c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A pingora app that applies the client socket settings, then hands the connection on.
pub struct ClientSockets<A> {
    app: Arc<A>,
    notsent_lowat: Option<u32>,
    /// Connections open now.
    open: prometheus::IntGauge,
}

impl<A> ClientSockets<A> {
    /// Wraps `app`; `notsent_lowat_kb` 0 leaves the kernel's setting.
    pub fn new(app: A, notsent_lowat_kb: u32, open: prometheus::IntGauge) -> Self {
        Self {
            app: Arc::new(app),
            notsent_lowat: (notsent_lowat_kb > 0).then(|| notsent_lowat_kb.saturating_mul(1024)),
            open,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ClientSockets<A> {
    async fn process_new(self: &Arc<Self>, session: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        // Counted until the app is done with the connection: for HTTP/2 that is after its last
        // frame is written, which a shutdown waits for.
        let _open = GaugeHold::new(&self.open);
        // Also called again for each further request on a kept-alive connection: one cheap
        // system call per request, and no per-connection state to keep.
        if let Some(bytes) = self.notsent_lowat {
            let fd = session.id();
            if fd > 0
                && let Err(e) = set_notsent_lowat(fd, bytes)
            {
                tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT on a client socket");
            }
        }
        self.app.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::os::fd::AsRawFd;

    fn notsent_lowat(fd: std::os::fd::RawFd) -> i32 {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as in `set_notsent_lowat`, with a c_int-sized out buffer.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value
    }

    #[test]
    fn the_limit_lands_on_the_socket_and_a_bad_descriptor_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        set_notsent_lowat(accepted.as_raw_fd(), 16 * 1024).unwrap();
        assert_eq!(notsent_lowat(accepted.as_raw_fd()), 16 * 1024);
        assert!(set_notsent_lowat(-1, 16 * 1024).is_err());
    }
}
