//! TLS for the SDK's HTTP clients: verification on by default, or an explicit insecure
//! flag, a pinned SHA-256 (or govc-style SHA-1) certificate thumbprint, or a CA bundle.
use crate::error::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

/// How the server's certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Tls {
    /// Verify the certificate chain and host name with the platform's trust store and
    /// verifier (`rustls-platform-verifier`), as reqwest does by default. The default.
    #[default]
    Verify,
    /// Verify against the certificates in a PEM bundle (govc's `tls-ca-certs`), or in
    /// several, listed as `$PATH` is (`a.crt:b.crt`), as govc reads `GOVC_TLS_CA_CERTS`.
    /// Host names are checked. A file that cannot be read or holds no certificate is
    /// [`Error::Config`] when the client is built.
    CaBundle(PathBuf),
    /// Accept only a certificate with this thumbprint: SHA-256 (64 hex digits) or SHA-1
    /// (40, as govc's `-thumbprint`), colons and case ignored. Only the server's own
    /// certificate is hashed; its name, issuer and validity dates are not checked. A
    /// malformed thumbprint is [`Error::Config`] when the client is built.
    Thumbprint(String),
    /// Accept any certificate (govc's `-k`). For tests only.
    Insecure,
}

impl Tls {
    /// Whether this is [`Tls::Insecure`] (no certificate check at all).
    pub fn is_insecure(&self) -> bool {
        matches!(self, Tls::Insecure)
    }
}

/// Normalises a thumbprint to lower-case hex without separators (`AB:CD:..` becomes
/// `abcd..`); [`Error::Config`] unless it is 64 (SHA-256) or 40 (SHA-1) hex digits.
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

/// `AB:CD:...`: a thumbprint as `vsess serve`, vCenter and govc print it.
pub fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
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
            crate::digest::sha256_hex(end_entity.as_ref())
        } else {
            crate::digest::sha1_hex(end_entity.as_ref())
        };
        if got == self.hex {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate thumbprint mismatch: the server presented {}, expected {}",
                colon_hex(&got),
                colon_hex(&self.hex)
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

/// The client's cipher suites: ring's default set, in the order Go's crypto/tls prefers.
///
/// rustls's ring provider lists TLS_AES_256_GCM_SHA384 first, and a server that follows
/// the client's order (rustls's default, so vsess's) then runs the key schedule and the
/// handshake's transcript hashes on SHA-384, for which most x86 CPUs have no instructions,
/// while ring runs SHA-256 on their SHA extensions. TLS_AES_128_GCM_SHA256 is TLS 1.3's
/// mandatory-to-implement suite (RFC 8446 §9.1), the first choice of Go's crypto/tls
/// (govc's) and of BoringSSL, and its 128-bit security level is the one X25519 offers
/// anyway. The set of suites is ring's default, unchanged (a test checks it); only the
/// order differs. TLS 1.2 follows the same rule, as Go does: AES-128-GCM, AES-256-GCM,
/// then ChaCha20, ECDSA before RSA for each.
static CLIENT_CIPHER_SUITES: &[rustls::SupportedCipherSuite] = {
    use rustls::crypto::ring::cipher_suite as cs;
    &[
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
};

/// ring's provider (key exchange groups, signature algorithms, ...) with the suites of
/// [`CLIENT_CIPHER_SUITES`]. Only the SDK's clients use it: the process-wide default stays
/// ring's own, so a server in the same process keeps its order.
fn client_provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Installed as before for other rustls users of the process (reqwest clients built
    // without this SDK rely on a default provider); the SDK's clients do not use it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: CLIENT_CIPHER_SUITES.to_vec(),
        ..rustls::crypto::ring::default_provider()
    })
}

/// Accepts any certificate (reqwest's `danger_accept_invalid_certs`, as before).
#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        // The schemes reqwest's own accept-anything verifier offers.
        vec![
            SignatureScheme::RSA_PKCS1_SHA1,
            SignatureScheme::ECDSA_SHA1_Legacy,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
            SignatureScheme::ECDSA_NISTP521_SHA512,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::ED25519,
            SignatureScheme::ED448,
        ]
    }
}

/// Verifies against a CA bundle (webpki, host names checked), and also accepts a server
/// that presents one of the bundle's certificates itself, byte for byte, if it names the
/// host, is within its dates and may serve TLS servers (no extended key usage, or
/// `serverAuth`), as Go checks such a certificate. That is a self-signed certificate given as its own
/// trust anchor, as `openssl req -x509` makes it (with `CA:TRUE`): Go's crypto/x509 (so
/// govc with `GOVC_TLS_CA_CERTS`), OpenSSL (curl, Python) accept it, and webpki refuses
/// a CA certificate as the server's own (`CaUsedAsEndEntity`).
#[derive(Debug)]
struct CaBundle {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    anchors: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaBundle {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let refused =
            match self
                .webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
        if !self
            .anchors
            .iter()
            .any(|a| a.as_ref() == end_entity.as_ref())
        {
            return Err(refused);
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        if vsess_wire::x509::allows_server_auth(end_entity.as_ref()) != Some(true) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::InvalidPurpose,
            ));
        }
        let now_s = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        match vsess_wire::x509::validity(end_entity.as_ref()) {
            Some((from, until)) if from.timestamp() <= now_s && now_s <= until.timestamp() => {
                Ok(ServerCertVerified::assertion())
            }
            Some(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            )),
            None => Err(refused),
        }
    }

    // The handshake's signatures are checked as webpki checks them, with the same
    // algorithms, whichever way the certificate was accepted.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The certificates of PEM bundles, as trust anchors (and as they are, for [`CaBundle`]).
/// `paths` is one file or a list in the platform's path-list form (`a.crt:b.crt`), as
/// govmomi's `SetRootCAs` splits `GOVC_TLS_CA_CERTS` with Go's `filepath.SplitList`.
/// Each file must hold a certificate.
fn ca_bundle(
    paths: &std::path::Path,
) -> Result<(rustls::RootCertStore, Vec<CertificateDer<'static>>)> {
    let mut roots = rustls::RootCertStore::empty();
    let mut anchors = Vec::new();
    for path in std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()) {
        let pem = std::fs::read(&path)
            .map_err(|e| Error::Config(format!("cannot read CA bundle {}: {e}", path.display())))?;
        let before = roots.len();
        for der in CertificateDer::pem_slice_iter(&pem) {
            let der =
                der.map_err(|e| Error::Config(format!("CA bundle {}: {e}", path.display())))?;
            roots
                .add(der.clone())
                .map_err(|e| Error::Config(format!("CA bundle {}: {e}", path.display())))?;
            anchors.push(der);
        }
        if roots.len() == before {
            return Err(Error::Config(format!(
                "CA bundle {} holds no PEM certificate",
                path.display()
            )));
        }
    }
    if roots.is_empty() {
        return Err(Error::Config(format!(
            "no CA bundle in '{}'",
            paths.display()
        )));
    }
    Ok((roots, anchors))
}

/// The rustls configuration for `tls`: what reqwest would build from the same options
/// (TLS 1.3 and 1.2, ALPN http/1.1, SNI), but with [`client_provider`]'s cipher suites.
fn client_config(tls: &Tls) -> Result<rustls::ClientConfig> {
    let provider = client_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let mut config = match tls {
        Tls::Verify => {
            // The platform's trust store and verifier, as reqwest uses by default.
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| Error::Config(format!("TLS: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        Tls::CaBundle(path) => {
            let (roots, anchors) = ca_bundle(path)?;
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(CaBundle { webpki, anchors }))
        }
        Tls::Thumbprint(t) => {
            let pinned = Pinned {
                hex: normalize_thumbprint(t)?,
                provider,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pinned))
        }
        Tls::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny)),
    }
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// How long the SDK's HTTP clients wait for a server.
///
/// Without limits, a server that accepts a connection and never answers (a hung process,
/// a firewall that swallows packets, a port forwarded to nothing) would block a call
/// forever, and with it every process waiting for the session cache's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the connection: TCP connect and the TLS handshake. Default 10 s, Go's
    /// `TLSHandshakeTimeout`, which govc uses (`GOVC_TLS_HANDSHAKE_TIMEOUT`).
    pub connect: std::time::Duration,
    /// For one whole request, from sending it to the end of the answer's body. Default
    /// 60 s. govc has no such limit; vsess's server cuts off a request that makes no
    /// progress for 60 s (`[server] request_timeout_seconds`).
    pub request: std::time::Duration,
}

impl Timeouts {
    /// The default [`connect`](Self::connect) limit: 10 s.
    pub const DEFAULT_CONNECT: std::time::Duration = std::time::Duration::from_secs(10);
    /// The default [`request`](Self::request) limit: 60 s.
    pub const DEFAULT_REQUEST: std::time::Duration = std::time::Duration::from_secs(60);
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Self::DEFAULT_CONNECT,
            request: Self::DEFAULT_REQUEST,
        }
    }
}

/// A reqwest client builder configured for `tls`, with the SDK's user agent and the
/// default [`Timeouts`].
pub fn http_builder(tls: &Tls) -> Result<reqwest::ClientBuilder> {
    http_builder_with(tls, Timeouts::default())
}

/// A redirect the clients refused to follow: a request carries a session id, a token or a
/// password in headers that reqwest would send on to another host (it strips only
/// `Authorization` and `Cookie`), and a redirected POST would lose its body. vCenter and
/// Keystone do not redirect their API calls; a proxy or load balancer that does names the
/// URL to use instead. It becomes [`crate::Error::Http`] with this status.
#[derive(Debug)]
pub(crate) struct RedirectRefused {
    pub status: u16,
    to: String,
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "redirected to {} (HTTP {}); vsess does not follow redirects, so that no session \
             id, token or password is sent to another address: use that URL",
            self.to, self.status
        )
    }
}

impl std::error::Error for RedirectRefused {}

/// [`http_builder`] with the given timeouts.
pub fn http_builder_with(tls: &Tls, timeouts: Timeouts) -> Result<reqwest::ClientBuilder> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("vsess-client/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let refused = RedirectRefused {
                status: attempt.status().as_u16(),
                to: attempt.url().to_string(),
            };
            attempt.error(refused)
        }))
        .http1_only()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .tls_backend_preconfigured(client_config(tls)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A redirect is not followed: the token in the request's headers goes nowhere else,
    /// and the error names the URL to use.
    #[tokio::test]
    async fn redirects_are_refused_and_named() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let hits = Arc::new(AtomicU64::new(0));
        let seen = hits.clone();
        let app = axum::Router::new()
            .route(
                "/r",
                axum::routing::get(|| async {
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [("location", "/elsewhere")],
                    )
                }),
            )
            .route(
                "/elsewhere",
                axum::routing::get(move || {
                    seen.fetch_add(1, Ordering::SeqCst);
                    async { "here" }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = http_builder(&Tls::Verify).unwrap().build().unwrap();
        let url = format!("http://{addr}/r");
        let e = http
            .get(&url)
            .header("X-Auth-Token", "secret-token")
            .send()
            .await
            .unwrap_err();
        let e = crate::Error::from_reqwest(&url, &e);
        match &e {
            crate::Error::Http {
                status: 307, body, ..
            } => {
                assert!(
                    body.contains(&format!("redirected to http://{addr}/elsewhere")),
                    "{body}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
    }

    #[test]
    fn thumbprints_normalise_and_reject_junk() {
        let t = "AB:".repeat(31) + "AB";
        assert_eq!(normalize_thumbprint(&t).unwrap(), "ab".repeat(32));
        assert_eq!(normalize_thumbprint(&"0".repeat(40)).unwrap().len(), 40);
        assert!(normalize_thumbprint("abc").is_err());
        assert!(normalize_thumbprint(&"g".repeat(64)).is_err());
        assert_eq!(colon_hex("ab01ff"), "AB:01:FF");
        assert_eq!(
            normalize_thumbprint(&colon_hex(&"cd".repeat(32))).unwrap(),
            "cd".repeat(32)
        );
    }

    #[test]
    fn the_client_prefers_aes_128_and_keeps_every_suite_and_group() {
        use rustls::CipherSuite as S;
        let ring = rustls::crypto::ring::default_provider();
        let ours = client_provider();
        let names = |suites: &[rustls::SupportedCipherSuite]| -> Vec<S> {
            suites.iter().map(|s| s.suite()).collect()
        };
        let mut sorted = names(&ours.cipher_suites);
        assert_eq!(
            &sorted[..3],
            [
                S::TLS13_AES_128_GCM_SHA256,
                S::TLS13_AES_256_GCM_SHA384,
                S::TLS13_CHACHA20_POLY1305_SHA256
            ]
        );
        assert_eq!(sorted[3], S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
        let mut theirs = names(&ring.cipher_suites);
        sorted.sort_by_key(|s| u16::from(*s));
        theirs.sort_by_key(|s| u16::from(*s));
        assert_eq!(sorted, theirs, "the same suites as ring's default");
        let groups = |p: &rustls::crypto::CryptoProvider| -> Vec<rustls::NamedGroup> {
            p.kx_groups.iter().map(|g| g.name()).collect()
        };
        assert_eq!(groups(&ours), groups(&ring));
        assert!(groups(&ours).contains(&rustls::NamedGroup::X25519));
    }

    #[test]
    fn every_mode_builds_a_config_with_the_client_order() {
        let dir = std::env::temp_dir().join(format!("vsess-tls-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let missing = dir.join("missing.pem");
        for tls in [Tls::Verify, Tls::Insecure, Tls::Thumbprint("ab".repeat(32))] {
            let c = client_config(&tls).unwrap();
            assert_eq!(
                c.crypto_provider().cipher_suites[0].suite(),
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
            );
            assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
            assert!(http_builder(&tls).unwrap().build().is_ok());
        }
        assert!(client_config(&Tls::CaBundle(missing)).is_err());
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"no certificate here\n").unwrap();
        assert!(client_config(&Tls::CaBundle(empty)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
