//! The edge's certificates for all three protocols (HTTPS over TCP and HTTP/3): a default
//! one and others chosen by the client's SNI, each with an optional stapled OCSP response,
//! reloaded when their files change. Handshakes in progress keep the keys they started with;
//! new ones get the new keys, so a renewal drops no connection. A file that fails to load
//! leaves the previous certificates in use (and is logged and counted). With TLS 1.3 as the
//! oldest version, a client that offers no TLS 1.3 cipher suite gets no certificate, so its
//! handshake fails: pingora's rustls listener fixes the protocol versions at 1.2 and 1.3, and
//! choosing the certificate is the first place the edge sees a client's hello.

use arc_swap::ArcSwap;
use prometheus::{IntCounter, IntCounterVec};
use rustls::CipherSuite;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// One certificate's files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// How the config names these files, prefixed to `cert`, `key`, `ocsp` in errors
    /// (`tls_`, `tls_sni[0].`).
    pub field_prefix: String,
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// DER OCSP response to staple, if any.
    pub ocsp: Option<PathBuf>,
}

/// The certificates in use: the first is the default.
pub struct CertStore {
    files: Vec<CertFiles>,
    keys: ArcSwap<Vec<Arc<CertifiedKey>>>,
    reloads: IntCounterVec,
    /// When set, TLS 1.3 only: handshakes refused for want of it are counted here.
    tls13_only: Option<IntCounter>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").field("files", &self.files).finish()
    }
}

/// Size and modification time of every file, to notice a change (including a symlink swap).
type Fingerprint = Vec<Option<(SystemTime, u64)>>;

impl CertStore {
    /// Loads `files` (the first is the default certificate); fails naming the bad file.
    pub fn load(files: Vec<CertFiles>, reloads: IntCounterVec) -> Result<Self, String> {
        let keys = load_all(&files)?;
        Ok(Self {
            files,
            keys: ArcSwap::from_pointee(keys),
            reloads,
            tls13_only: None,
        })
    }

    /// Serves only clients that offer TLS 1.3, counting the others in `refused`.
    pub fn tls13_only(mut self, refused: IntCounter) -> Self {
        self.tls13_only = Some(refused);
        self
    }

    /// Checks the files every `interval` and swaps in new certificates when they change.
    pub fn watch(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let this = Arc::clone(self);
        runtime.spawn(async move {
            let mut seen = this.fingerprint();
            let mut ticks = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let now = this.fingerprint();
                if now == seen {
                    continue;
                }
                // A renewal writes several files; give it a moment to finish.
                tokio::time::sleep(Duration::from_millis(200)).await;
                seen = this.fingerprint();
                match load_all(&this.files) {
                    Ok(keys) => {
                        this.keys.store(Arc::new(keys));
                        this.reloads.with_label_values(&["ok"]).inc();
                        tracing::info!("TLS certificates reloaded");
                    }
                    Err(e) => {
                        this.reloads.with_label_values(&["failed"]).inc();
                        tracing::error!(error = %e, "TLS certificates not reloaded; the previous ones stay in use");
                    }
                }
            }
        });
    }

    fn fingerprint(&self) -> Fingerprint {
        self.files
            .iter()
            .flat_map(|f| [Some(&f.cert), Some(&f.key), f.ocsp.as_ref()])
            .flatten()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }

    /// The certificate for `sni`: the first non-default one valid for that name, else the
    /// default.
    fn choose(keys: &[Arc<CertifiedKey>], sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = sni.and_then(|s| ServerName::try_from(s.to_string()).ok());
        if let Some(name) = name {
            for key in keys.iter().skip(1) {
                let valid = key
                    .cert
                    .first()
                    .and_then(|leaf| webpki::EndEntityCert::try_from(leaf).ok())
                    .is_some_and(|leaf| leaf.verify_is_valid_for_subject_name(&name).is_ok());
                if valid {
                    return Some(Arc::clone(key));
                }
            }
        }
        keys.first().cloned()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(refused) = &self.tls13_only
            && !offers_tls13(client_hello.cipher_suites())
        {
            refused.inc();
            tracing::debug!(sni = ?client_hello.server_name(), "TLS handshake refused: no TLS 1.3 cipher suite offered");
            return None;
        }
        Self::choose(&self.keys.load(), client_hello.server_name())
    }
}

/// Whether a client hello's cipher suites include a TLS 1.3 one (RFC 8446 section B.4): a
/// client that can speak TLS 1.3 offers them, one that cannot offers none.
fn offers_tls13(suites: &[CipherSuite]) -> bool {
    suites.iter().any(|s| {
        matches!(
            s,
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS13_AES_256_GCM_SHA384
                | CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                | CipherSuite::TLS13_AES_128_CCM_SHA256
                | CipherSuite::TLS13_AES_128_CCM_8_SHA256
        )
    })
}

fn load_all(files: &[CertFiles]) -> Result<Vec<Arc<CertifiedKey>>, String> {
    files.iter().map(|f| load_one(f).map(Arc::new)).collect()
}

fn load_one(files: &CertFiles) -> Result<CertifiedKey, String> {
    let named = |part: &str, path: &Path, e: &dyn std::fmt::Display| {
        format!("field `{}{part}`: `{}`: {e}", files.field_prefix, path.display())
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| named("cert", &files.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| named("cert", &files.cert, &e))?;
    if chain.is_empty() {
        return Err(named("cert", &files.cert, &"holds no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| named("key", &files.key, &e))?;
    let provider = rustls::crypto::ring::default_provider();
    let mut certified =
        CertifiedKey::from_der(chain, key, &provider).map_err(|e| named("key", &files.key, &e))?;
    if let Some(ocsp) = &files.ocsp {
        certified.ocsp = Some(std::fs::read(ocsp).map_err(|e| named("ocsp", ocsp, &e))?);
    }
    Ok(certified)
}

#[cfg(test)]
mod test {
    use super::*;

    fn self_signed(names: &[&str]) -> Arc<CertifiedKey> {
        let made =
            rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        Arc::new(CertifiedKey::from_der(vec![made.cert.der().clone()], key, &provider).unwrap())
    }

    #[test]
    fn tls13_is_told_by_the_offered_cipher_suites() {
        let tls12 = [
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
        ];
        assert!(!offers_tls13(&tls12));
        assert!(offers_tls13(&[tls12[0], CipherSuite::TLS13_AES_256_GCM_SHA384]));
        assert!(!offers_tls13(&[]));
    }

    #[test]
    fn sni_picks_the_certificate_valid_for_the_name_else_the_default() {
        let default = self_signed(&["edge.example.net"]);
        let video = self_signed(&["video.example.com", "*.cdn.example.com"]);
        let keys = vec![Arc::clone(&default), Arc::clone(&video)];
        let pick = |sni| CertStore::choose(&keys, sni).unwrap();
        assert!(Arc::ptr_eq(&pick(Some("video.example.com")), &video));
        assert!(Arc::ptr_eq(&pick(Some("a.cdn.example.com")), &video));
        assert!(Arc::ptr_eq(&pick(Some("other.example.org")), &default));
        assert!(Arc::ptr_eq(&pick(None), &default));
    }
}
