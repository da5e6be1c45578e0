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
    Ok(TlsMaterial {
        fingerprint: fingerprint(der.as_ref()),
        cert_pem,
        key_pem,
        cert_path,
        generated,
    })
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
}
