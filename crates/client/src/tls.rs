//! TLS for the SDK's HTTP clients: verification on by default, or an explicit insecure
//! flag, a pinned SHA-256 (or govc-style SHA-1) certificate thumbprint, or a CA bundle.
use crate::error::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// How the server's certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Tls {
    /// Verify against the system's (webpki) roots. The default.
    #[default]
    Verify,
    /// Verify against the certificates in a PEM bundle (govc's `tls-ca-certs`).
    CaBundle(PathBuf),
    /// Accept only a certificate with this thumbprint: SHA-256 (64 hex digits) or SHA-1
    /// (40, as govc's `-thumbprint`), colons and case ignored. Names are not checked.
    Thumbprint(String),
    /// Accept any certificate (govc's `-k`). For tests only.
    Insecure,
}

impl Tls {
    pub fn is_insecure(&self) -> bool {
        matches!(self, Tls::Insecure)
    }
}

/// Normalises a thumbprint to lower-case hex without separators.
pub fn normalize_thumbprint(t: &str) -> Result<String> {
    let hex: String = t
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if !(hex.len() == 64 || hex.len() == 40) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::Config(format!(
            "'{t}' is not a certificate thumbprint: expected SHA-256 (64 hex digits) or SHA-1 (40)"
        )));
    }
    Ok(hex)
}

#[derive(Debug)]
struct Pinned {
    hex: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let got = if self.hex.len() == 64 {
            hex::encode(Sha256::digest(end_entity.as_ref()))
        } else {
            hex::encode(Sha1::digest(end_entity.as_ref()))
        };
        if got == self.hex {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate thumbprint mismatch: the server presented {got}, expected {}",
                self.hex
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A reqwest client builder configured for `tls`, with the SDK's user agent.
pub fn http_builder(tls: &Tls) -> Result<reqwest::ClientBuilder> {
    let provider = provider();
    let b = reqwest::Client::builder()
        .user_agent(concat!("vsess-client/", env!("CARGO_PKG_VERSION")))
        .http1_only();
    Ok(match tls {
        Tls::Verify => b,
        Tls::Insecure => b.tls_danger_accept_invalid_certs(true),
        Tls::CaBundle(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!("cannot read CA bundle {}: {e}", path.display()))
            })?;
            let mut certs = Vec::new();
            for der in CertificateDer::pem_slice_iter(&pem) {
                let der =
                    der.map_err(|e| Error::Config(format!("CA bundle {}: {e}", path.display())))?;
                certs
                    .push(reqwest::Certificate::from_der(der.as_ref()).map_err(|e| {
                        Error::Config(format!("CA bundle {}: {e}", path.display()))
                    })?);
            }
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "CA bundle {} holds no PEM certificate",
                    path.display()
                )));
            }
            b.tls_certs_only(certs)
        }
        Tls::Thumbprint(t) => {
            let pinned = Pinned {
                hex: normalize_thumbprint(t)?,
                provider: provider.clone(),
            };
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Config(format!("TLS: {e}")))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pinned))
                .with_no_client_auth();
            b.tls_backend_preconfigured(config)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_normalise_and_reject_junk() {
        let t = "AB:".repeat(31) + "AB";
        assert_eq!(normalize_thumbprint(&t).unwrap(), "ab".repeat(32));
        assert_eq!(normalize_thumbprint(&"0".repeat(40)).unwrap().len(), 40);
        assert!(normalize_thumbprint("abc").is_err());
        assert!(normalize_thumbprint(&"g".repeat(64)).is_err());
    }
}
