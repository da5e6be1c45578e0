//! TLS material: a self-signed certificate generated on first start, or the operator's own.
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use vsess_store::write_private_atomic;

pub const CERT_FILE: &str = "server.crt";
pub const KEY_FILE: &str = "server.key";

#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// SHA-256 of the certificate's DER, as colon-separated upper-case hex.
    pub fingerprint: String,
    pub generated: bool,
}

/// Loads `cert`/`key` if given; otherwise the data directory's certificate, generating
/// a self-signed one (for localhost and 127.0.0.1) on first start.
pub fn load_or_generate(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<TlsMaterial, String> {
    let (cert_path, key_path, generated) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned(), false),
        (None, None) => {
            let c = data_dir.join(CERT_FILE);
            let k = data_dir.join(KEY_FILE);
            let generated = if c.exists() && k.exists() {
                false
            } else if c.exists() || k.exists() {
                // Generating a pair would replace the one that is there: a certificate
                // that clients pin, or the operator's own.
                let (there, missing) = if c.exists() { (&c, &k) } else { (&k, &c) };
                return Err(format!(
                    "{} exists but {} does not: restore it, or move {} away to have a new \
                     self-signed pair generated (clients that pinned the old fingerprint \
                     will need the new one)",
                    there.display(),
                    missing.display(),
                    there.display()
                ));
            } else {
                let ck = rcgen::generate_simple_self_signed(vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "::1".to_owned(),
                ])
                .map_err(|e| format!("cannot generate a certificate: {e}"))?;
                write_private_atomic(&k, ck.signing_key.serialize_pem().as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", k.display()))?;
                write_private_atomic(&c, ck.cert.pem().as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", c.display()))?;
                true
            };
            (c, k, generated)
        }
        _ => return Err("--cert and --key must be given together".into()),
    };
    let cert_pem = std::fs::read(&cert_path)
        .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
    let key_pem =
        std::fs::read(&key_path).map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
    let der = CertificateDer::from_pem_slice(&cert_pem)
        .map_err(|e| format!("{} holds no PEM certificate: {e}", cert_path.display()))?;
    check_key(&key_pem, &key_path)?;
    Ok(TlsMaterial {
        fingerprint: fingerprint(der.as_ref()),
        cert_pem,
        key_pem,
        cert_path,
        key_path,
        generated,
    })
}

/// A key vsess can use: PEM, unencrypted (rustls reads no encrypted keys, and a server
/// that starts unattended has no one to type a passphrase).
fn check_key(pem: &[u8], path: &Path) -> Result<(), String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "{}: the private key is encrypted; vsess needs it unencrypted, readable only by \
             its own user (e.g. `openssl pkey -in KEY -out KEY.plain`, then chmod 600)",
            path.display()
        ));
    }
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem)
        .map(|_| ())
        .map_err(|e| format!("{} holds no PEM private key: {e}", path.display()))
}

/// The error of a certificate and key that rustls will not serve, with what to check.
pub fn explain_pair(m: &TlsMaterial, e: &dyn std::fmt::Display) -> String {
    let e = e.to_string();
    let hint = if e.contains("KeyMismatch") || e.contains("consistent") {
        ": the key does not belong to the first certificate in the file; the server's own \
         certificate must come first, then its chain"
    } else if e.contains("UnsupportedCertVersion") {
        ": the certificate is X.509 v1; issue a v3 certificate (with subjectAltName)"
    } else {
        ""
    };
    format!(
        "{} with {}: {e}{hint}",
        m.cert_path.display(),
        m.key_path.display()
    )
}

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_certificate_or_key_is_kept_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path(), None, None).unwrap();
        assert!(first.generated);
        let again = load_or_generate(dir.path(), None, None).unwrap();
        assert!(!again.generated);
        assert_eq!(again.fingerprint, first.fingerprint);
        for (keep, lose) in [(CERT_FILE, KEY_FILE), (KEY_FILE, CERT_FILE)] {
            let kept = std::fs::read(dir.path().join(keep)).unwrap();
            let lost = std::fs::read(dir.path().join(lose)).unwrap();
            std::fs::remove_file(dir.path().join(lose)).unwrap();
            let err = load_or_generate(dir.path(), None, None).unwrap_err();
            assert!(err.contains(keep) && err.contains(lose), "{err}");
            assert_eq!(std::fs::read(dir.path().join(keep)).unwrap(), kept);
            assert!(!dir.path().join(lose).exists());
            std::fs::write(dir.path().join(lose), lost).unwrap();
        }
        let back = load_or_generate(dir.path(), None, None).unwrap();
        assert_eq!(back.fingerprint, first.fingerprint);
    }

    #[test]
    fn encrypted_or_missing_keys_are_named_as_keys() {
        let dir = tempfile::tempdir().unwrap();
        load_or_generate(dir.path(), None, None).unwrap();
        let cert = dir.path().join(CERT_FILE);
        let key = dir.path().join("other.key");
        for (pem, says) in [
            ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
            ("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----\n", "encrypted"),
            ("not a key\n", "holds no PEM private key"),
        ] {
            std::fs::write(&key, pem).unwrap();
            let err = load_or_generate(dir.path(), Some(&cert), Some(&key)).unwrap_err();
            assert!(err.contains(says) && err.contains("other.key"), "{err}");
        }
    }
}
