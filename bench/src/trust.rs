//! How the load tools check servers' certificates: against the Web PKI roots (the default),
//! against the CA certificates of a PEM file (`--ca-file`, for a private CA or a test CA), or
//! not at all (`--insecure`, loopback test certificates only). One choice serves reqwest
//! (HTTP/1.1, HTTP/2) and quinn (HTTP/3) alike.

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// Which certificates a client accepts.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// Chains to the Web PKI roots (webpki-roots).
    #[default]
    WebPki,
    /// Chains to one of these CA certificates.
    Cas(Arc<Vec<CertificateDer<'static>>>),
    /// Any certificate.
    Insecure,
}

impl Trust {
    /// From the command line: `--insecure` wins; else the CAs of `ca_file`; else Web PKI.
    pub fn from_args(insecure: bool, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        if insecure {
            return Ok(Trust::Insecure);
        }
        let Some(path) = ca_file else {
            return Ok(Trust::WebPki);
        };
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading the CA file {}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{}: not PEM certificates", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "{}: no certificate in it", path.display());
        Ok(Trust::Cas(Arc::new(certs)))
    }

    /// A rustls client config (TLS 1.3, the ring provider) that checks certificates this way.
    pub fn rustls_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let mut roots = rustls::RootCertStore::empty();
        match self {
            Trust::Insecure => {
                return Ok(builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                    .with_no_client_auth());
            }
            Trust::WebPki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Trust::Cas(certs) => {
                for c in certs.iter() {
                    roots
                        .add(c.clone())
                        .context("a CA certificate rustls cannot use")?;
                }
            }
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }

    /// `builder` checking certificates this way.
    pub fn reqwest(&self, builder: reqwest::ClientBuilder) -> anyhow::Result<reqwest::ClientBuilder> {
        Ok(match self {
            Trust::Insecure => builder.danger_accept_invalid_certs(true),
            Trust::WebPki => builder,
            Trust::Cas(certs) => {
                let mut b = builder.tls_built_in_root_certs(false);
                for c in certs.iter() {
                    b = b.add_root_certificate(reqwest::Certificate::from_der(c)?);
                }
                b
            }
        })
    }
}

/// Accepts any server certificate (loopback benchmarks with self-signed certificates only).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
