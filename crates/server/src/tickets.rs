//! Local-ticket password files: `<data-dir>/local-tickets/<random>`, mode 0600, in a 0700
//! directory, so only the server's own OS user (and root) can read them.
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use vsess_core::ids::random_hex;
use vsess_core::LocalTicketSink;
use vsess_store::ensure_private_dir;

pub struct TicketDir {
    dir: PathBuf,
}

impl TicketDir {
    /// The directory is made absolute: the paths handed to clients must open from any
    /// working directory (vCenter's are absolute too).
    pub fn new(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join("local-tickets");
        ensure_private_dir(&dir)?;
        let dir = fs::canonicalize(&dir)?;
        Ok(Self { dir })
    }

    /// Removes ticket files older than `age` (unused and expired).
    pub fn sweep(&self, age: Duration) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() > age)
                .unwrap_or(false);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// The most ticket files that may wait to be used at once. Every caller that looks local
/// may ask for tickets (behind a proxy on the same host: every caller), each one a file
/// written and fsynced; unused ones go only when they expire.
pub const MAX_LIVE_TICKETS: usize = 1024;

impl LocalTicketSink for TicketDir {
    fn write(&self, _user: &str, secret: &str) -> Result<String, String> {
        let live = fs::read_dir(&self.dir)
            .map_err(|e| e.to_string())?
            .take(MAX_LIVE_TICKETS)
            .count();
        if live >= MAX_LIVE_TICKETS {
            return Err(format!(
                "{MAX_LIVE_TICKETS} local tickets are waiting to be used; try again when some have been used or have expired"
            ));
        }
        let path = self.dir.join(random_hex(12));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| e.to_string())?;
        f.write_all(secret.as_bytes()).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        Ok(path.display().to_string())
    }

    fn remove(&self, path: &str) {
        let p = Path::new(path);
        // Only ever delete inside our own directory.
        if p.parent() == Some(self.dir.as_path()) {
            let _ = fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_tickets_are_capped() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = TicketDir::new(tmp.path()).unwrap();
        let paths: Vec<String> = (0..MAX_LIVE_TICKETS)
            .map(|_| dirs.write("u", "s").unwrap())
            .collect();
        let err = dirs.write("u", "s").unwrap_err();
        assert!(err.contains("waiting to be used"), "{err}");
        dirs.remove(&paths[0]);
        assert!(dirs.write("u", "s").is_ok(), "a used ticket makes room");
    }

    #[test]
    fn ticket_paths_are_absolute_whatever_the_data_dir_was_given_as() {
        let tmp = tempfile::tempdir().unwrap();
        let relative = Path::new("tickets-test-data");
        let dirs = TicketDir::new(&tmp.path().join(".").join(relative)).unwrap();
        let path = dirs.write("u", "secret").unwrap();
        assert!(Path::new(&path).is_absolute(), "{path}");
        assert!(!path.contains("/./"), "{path}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "secret");
        dirs.remove(&path);
        assert!(
            !Path::new(&path).exists(),
            "a ticket it handed out can be removed"
        );
    }
}
