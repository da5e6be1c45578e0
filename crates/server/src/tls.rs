//! TLS material: a self-signed certificate generated on first start, or the operator's own.
use chrono::{DateTime, Utc};
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
    /// The data directory's own pair (generated now or at an earlier start), not one
    /// given with `--cert`/`--key`.
    pub in_data_dir: bool,
    /// The certificate's notBefore and notAfter, when its DER could be read.
    pub validity: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The two files' stamps, taken before they were read: a [`Watch`] made from this
    /// sees any change made since, also one made while the server was starting.
    stamps: (Stamp, Stamp),
}

impl TlsMaterial {
    /// What an operator should hear at start about the certificate's dates at `now`: it
    /// has expired, is not valid yet, or expires within 30 days. Clients that verify
    /// certificates (govc and pyVmomi without their insecure flags) refuse an expired one
    /// with an error that does not point at the server.
    pub fn validity_warning(&self, now: DateTime<Utc>) -> Option<String> {
        let (not_before, not_after) = self.validity?;
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let renew = if self.in_data_dir {
            format!(
                "renew it, or move {} and {} away to have a new self-signed pair generated",
                self.cert_path.display(),
                self.key_path.display()
            )
        } else {
            "renew it".to_owned()
        };
        if now >= not_after {
            Some(format!(
                "the TLS certificate {} expired at {}: clients that verify certificates will \
                 refuse this server; {renew}",
                self.cert_path.display(),
                at(not_after)
            ))
        } else if now < not_before {
            Some(format!(
                "the TLS certificate {} is not valid until {} (is this machine's clock right?): \
                 clients that verify certificates will refuse this server until then",
                self.cert_path.display(),
                at(not_before)
            ))
        } else if not_after - now < chrono::Duration::days(30) {
            Some(format!(
                "the TLS certificate {} expires at {}; {renew}",
                self.cert_path.display(),
                at(not_after)
            ))
        } else {
            None
        }
    }
}

/// Loads `cert`/`key` if given; otherwise the data directory's certificate, generating
/// a self-signed one (for localhost and 127.0.0.1) on first start.
pub fn load_or_generate(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<TlsMaterial, String> {
    let (cert_path, key_path, generated, in_data_dir) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned(), false, false),
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
                generate_pair(&c, &k, write_private_atomic)?;
                true
            };
            (c, k, generated, true)
        }
        _ => return Err("--cert and --key must be given together".into()),
    };
    read_pair(cert_path, key_path, generated, in_data_dir)
}

/// Generates a self-signed pair (for localhost and 127.0.0.1) into `c` and `k` with
/// `write`: the key first, then the certificate.
fn generate_pair(
    c: &Path,
    k: &Path,
    write: fn(&Path, &[u8]) -> std::io::Result<()>,
) -> Result<(), String> {
    let ck = rcgen::generate_simple_self_signed(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    write(k, ck.signing_key.serialize_pem().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", k.display()))?;
    if let Err(e) = write(c, ck.cert.pem().as_bytes()) {
        // A lone key would block every later start (see `load_or_generate`); this one was
        // never served.
        let _ = std::fs::remove_file(k);
        return Err(format!("cannot write {}: {e}", c.display()));
    }
    Ok(())
}

/// Reads and checks a certificate and its key.
fn read_pair(
    cert_path: PathBuf,
    key_path: PathBuf,
    generated: bool,
    in_data_dir: bool,
) -> Result<TlsMaterial, String> {
    let stamps = (stamp(&cert_path), stamp(&key_path));
    let cert_pem = std::fs::read(&cert_path)
        .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
    let key_pem =
        std::fs::read(&key_path).map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
    let der = CertificateDer::from_pem_slice(&cert_pem)
        .map_err(|e| format!("{} holds no PEM certificate: {e}", cert_path.display()))?;
    check_key(&key_pem, &key_path)?;
    vsess_store::warn_if_exposed(&key_path, "the TLS private key");
    Ok(TlsMaterial {
        fingerprint: fingerprint(der.as_ref()),
        validity: vsess_wire::x509::validity(der.as_ref()),
        cert_pem,
        key_pem,
        cert_path,
        key_path,
        generated,
        in_data_dir,
        stamps,
    })
}

/// What identifies a file's content without reading it: device, inode, size and
/// modification time (a renewal that renames a new file into place changes the inode; one
/// that rewrites it, the time). `None` while it cannot be read.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    // `metadata` follows symbolic links, as certbot's `live/` links to `archive/`.
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Watches the certificate and key files a server serves, so that a renewed pair is
/// served without a restart.
#[derive(Debug)]
pub struct Watch {
    cert_path: PathBuf,
    key_path: PathBuf,
    in_data_dir: bool,
    seen: (Stamp, Stamp),
}

impl Watch {
    /// Watches the files `m` was read from, as they were when read.
    pub fn new(m: &TlsMaterial) -> Self {
        Self {
            seen: m.stamps,
            cert_path: m.cert_path.clone(),
            key_path: m.key_path.clone(),
            in_data_dir: m.in_data_dir,
        }
    }

    /// `None` while neither file changed since the last call; otherwise the pair read
    /// again, or why it cannot be used. A pair caught half-written fails here (or when
    /// rustls checks that the key matches) and is read again when the other file changes.
    pub fn poll(&mut self) -> Option<Result<TlsMaterial, String>> {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        if now == self.seen {
            return None;
        }
        self.seen = now;
        Some(read_pair(
            self.cert_path.clone(),
            self.key_path.clone(),
            false,
            self.in_data_dir,
        ))
    }
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

    /// A certificate valid from `from` to `to` (years), and its key, written to `dir`.
    fn cert_valid(dir: &Path, from: i32, to: i32) -> (PathBuf, PathBuf) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 3, 4);
        params.not_after = rcgen::date_time_ymd(to, 5, 6);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (dir.join(format!("{from}-{to}.crt")), dir.join("k.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn certificate_dates_are_read_and_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let at = |y, m, d| {
            chrono::NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
        };
        let now = at(2026, 11, 22);
        // UTCTime on both sides (years before 2050), including a 19YY one.
        let (c, k) = cert_valid(dir.path(), 1999, 2021);
        let m = load_or_generate(dir.path(), Some(&c), Some(&k)).unwrap();
        assert_eq!(m.validity, Some((at(1999, 3, 4), at(2021, 5, 6))));
        let w = m.validity_warning(now).unwrap();
        assert!(
            w.contains("expired at 2021-05-06T00:00:00Z") && w.contains("1999-2021.crt"),
            "{w}"
        );
        // GeneralizedTime (2050 and later), not yet valid.
        let (c, k) = cert_valid(dir.path(), 2027, 2051);
        let m = load_or_generate(dir.path(), Some(&c), Some(&k)).unwrap();
        assert_eq!(m.validity, Some((at(2027, 3, 4), at(2051, 5, 6))));
        assert!(m
            .validity_warning(now)
            .unwrap()
            .contains("not valid until 2027-03-04"));
        // Expiring within 30 days, then comfortably valid.
        let (c, k) = cert_valid(dir.path(), 2020, 2026);
        let m = load_or_generate(dir.path(), Some(&c), Some(&k)).unwrap();
        assert!(m
            .validity_warning(at(2026, 4, 30))
            .unwrap()
            .contains("expires at 2026-05-06"));
        assert_eq!(m.validity_warning(at(2026, 4, 1)), None);
        // An operator's own pair named like the data directory's is not to be moved
        // away: no new pair would be generated in its place.
        let own = dir.path().join("etc");
        std::fs::create_dir(&own).unwrap();
        std::fs::copy(&c, own.join(CERT_FILE)).unwrap();
        std::fs::copy(&k, own.join(KEY_FILE)).unwrap();
        let m = load_or_generate(
            dir.path(),
            Some(&own.join(CERT_FILE)),
            Some(&own.join(KEY_FILE)),
        )
        .unwrap();
        let w = m.validity_warning(at(2026, 4, 30)).unwrap();
        assert!(w.ends_with("renew it"), "{w}");
        // The generated certificate is good for a long time.
        let m = load_or_generate(dir.path(), None, None).unwrap();
        assert!(m.validity.is_some());
        assert_eq!(m.validity_warning(now), None);
        // Garbage is not a date, and no panic: a UTCTime of 12 bytes that are not digits.
    }

    /// A generated pair whose certificate cannot be written leaves no lone key behind
    /// (it would block every later start).
    #[test]
    fn a_pair_half_written_is_not_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join(CERT_FILE), dir.path().join(KEY_FILE));
        // The certificate's write fails (a full disk), after the key's succeeded.
        fn key_only(p: &Path, data: &[u8]) -> std::io::Result<()> {
            if p.file_name() == Some(CERT_FILE.as_ref()) {
                Err(std::io::Error::other("No space left on device"))
            } else {
                write_private_atomic(p, data)
            }
        }
        let err = generate_pair(&c, &k, key_only).unwrap_err();
        assert!(err.contains(CERT_FILE) && err.contains("No space"), "{err}");
        assert!(!k.exists() && !c.exists());
        // So the next start generates a pair rather than refusing a lone key.
        assert!(load_or_generate(dir.path(), None, None).unwrap().generated);
    }

    /// A pair renewed between its reading and the watch's start (while the server
    /// started) is still seen as a change.
    #[test]
    fn a_renewal_during_start_up_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
            load_or_generate(d, None, None).unwrap();
        }
        let (c, k) = (a.join(CERT_FILE), a.join(KEY_FILE));
        let m = load_or_generate(&a, Some(&c), Some(&k)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::copy(b.join(CERT_FILE), &c).unwrap();
        std::fs::copy(b.join(KEY_FILE), &k).unwrap();
        let mut w = Watch::new(&m);
        let renewed = w.poll().expect("a change").unwrap();
        assert_ne!(renewed.fingerprint, m.fingerprint);
        assert!(w.poll().is_none(), "seen once");
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
