//! The user directory: `users.json` in the data directory, mode 0600.
//!
//! Writers (`vsess user …`) take an exclusive lock on `users.lock`, read, change and
//! atomically replace the file. Readers (the server) reload when the file's identity
//! (inode, size, mtime) changes, so edits apply without a restart: [`UserFile::get`]
//! checks on every call (logins), [`UserFile::get_recent`] at most every
//! half a second (the role check on every authenticated call, which a `stat` per request
//! would slow by about 8%).
use crate::fsutil::write_private_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use vsess_core::{StoreError, StoreResult, User};

const FILE: &str = "users.json";
#[cfg(target_os = "linux")]
const FILE_C: &std::ffi::CStr = c"users.json";
const LOCK: &str = "users.lock";

#[derive(Serialize, Deserialize, Default)]
struct UsersDoc {
    version: u32,
    users: Vec<User>,
}

type Stamp = (u64, u64, i64, i64);

/// How stale [`UserFile::get_recent`] may be.
pub const RECHECK: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Default)]
struct Cache {
    stamp: Option<Stamp>,
    users: BTreeMap<String, User>,
    /// When the file was last checked.
    checked: Option<std::time::Instant>,
}

pub struct UserFile {
    path: PathBuf,
    /// The directory, held open: a login stats `users.json` relative to it, a one-name
    /// lookup instead of a walk of the whole path.
    dir: Option<File>,
    lock_path: PathBuf,
    cache: Mutex<Cache>,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

/// `dir` opened as a handle for `fstatat` (None where that is not available; the stamp is
/// then read by path).
#[cfg(target_os = "linux")]
fn open_dir(dir: &Path) -> Option<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_dir(_: &Path) -> Option<File> {
    None
}

/// The stamp of `users.json` in `dir`.
#[cfg(target_os = "linux")]
fn stat_at(dir: &File) -> std::io::Result<Option<Stamp>> {
    use std::os::fd::AsRawFd;
    // SAFETY: `stat` is plain data, written by fstatat below before it is read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid directory descriptor, a NUL-terminated name and a valid out pointer.
    let r = unsafe { libc::fstatat(dir.as_raw_fd(), FILE_C.as_ptr(), &mut st, 0) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::NotFound => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some((
        st.st_ino,
        u64::try_from(st.st_size).unwrap_or_default(),
        st.st_mtime,
        st.st_mtime_nsec,
    )))
}

#[cfg(not(target_os = "linux"))]
fn stat_at(_: &File) -> std::io::Result<Option<Stamp>> {
    Err(std::io::Error::other("no fstatat"))
}

impl UserFile {
    /// Opens the user directory in `dir` (which must exist). A missing file is an empty directory.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let f = Self {
            dir: open_dir(dir),
            path: dir.join(FILE),
            lock_path: dir.join(LOCK),
            cache: Mutex::new(Cache::default()),
        };
        f.refresh()?;
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn stamp(&self) -> StoreResult<Option<Stamp>> {
        if let Some(dir) = &self.dir {
            return stat_at(dir).map_err(|e| io_err("cannot read", &self.path, e));
        }
        match fs::metadata(&self.path) {
            Ok(m) => Ok(Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read", &self.path, e)),
        }
    }

    fn read_doc(&self) -> StoreResult<BTreeMap<String, User>> {
        let data = match fs::read(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io_err("cannot read", &self.path, e)),
        };
        let doc: UsersDoc = serde_json::from_slice(&data).map_err(|e| {
            StoreError::Corrupt(format!(
                "{} is not a valid user directory ({e}); fix or restore it",
                self.path.display()
            ))
        })?;
        Ok(doc
            .users
            .into_iter()
            .map(|u| (u.name.as_str().to_owned(), u))
            .collect())
    }

    /// Reloads the file if it changed since the last read.
    fn refresh(&self) -> StoreResult<()> {
        let stamp = self.stamp()?;
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.checked = Some(std::time::Instant::now());
        if c.stamp == stamp && stamp.is_some() {
            return Ok(());
        }
        c.users = self.read_doc()?;
        c.stamp = stamp;
        Ok(())
    }

    /// A user, checking the file for edits at most every `RECHECK` (half a second).
    pub fn get_recent(&self, name: &str) -> StoreResult<Option<User>> {
        {
            let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if c.checked.is_some_and(|t| t.elapsed() < RECHECK) {
                return Ok(c.users.get(name).cloned());
            }
        }
        self.get(name)
    }

    pub fn get(&self, name: &str) -> StoreResult<Option<User>> {
        self.refresh()?;
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        Ok(c.users.get(name).cloned())
    }

    pub fn list(&self) -> StoreResult<Vec<User>> {
        self.refresh()?;
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        Ok(c.users.values().cloned().collect())
    }

    /// Runs `change` on the directory under an exclusive lock and writes the result
    /// atomically. Returns what `change` returned.
    pub fn modify<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, User>) -> Result<T, String>,
    ) -> StoreResult<T> {
        let lock: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.lock_path)
            .map_err(|e| io_err("cannot open", &self.lock_path, e))?;
        lock.lock()
            .map_err(|e| io_err("cannot lock", &self.lock_path, e))?;
        let mut users = self.read_doc()?;
        let out = change(&mut users).map_err(StoreError::Io)?;
        let doc = UsersDoc {
            version: 1,
            users: users.into_values().collect(),
        };
        let data = serde_json::to_vec_pretty(&doc)
            .map_err(|e| StoreError::Io(format!("cannot encode users: {e}")))?;
        write_private_atomic(&self.path, &data)
            .map_err(|e| io_err("cannot write", &self.path, e))?;
        drop(lock);
        self.refresh()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use vsess_core::{Role, UserName};

    fn user(n: &str) -> User {
        User {
            name: UserName::parse(n).unwrap(),
            full_name: String::new(),
            role: Role::Admin,
            password_hash: "$argon2id$x".into(),
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_stamp_by_directory_handle_is_the_stamp_by_path() {
        assert_eq!(FILE_C.to_str(), Ok(FILE));
        let dir = tempfile::tempdir().unwrap();
        let f = UserFile::open(dir.path()).unwrap();
        assert!(f.dir.is_some());
        assert_eq!(f.stamp().unwrap(), None);
        f.modify(|u| {
            u.insert("a@b".into(), user("a@b"));
            Ok(())
        })
        .unwrap();
        let m = fs::metadata(dir.path().join(FILE)).unwrap();
        assert_eq!(
            f.stamp().unwrap(),
            Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
        );
    }

    #[test]
    fn edits_by_one_handle_are_seen_by_another() {
        let dir = tempfile::tempdir().unwrap();
        let server = UserFile::open(dir.path()).unwrap();
        assert!(server.get("a@b").unwrap().is_none());
        let cli = UserFile::open(dir.path()).unwrap();
        cli.modify(|u| {
            u.insert("a@b".into(), user("a@b"));
            Ok(())
        })
        .unwrap();
        assert!(server.get("a@b").unwrap().is_some());
        let mode = fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        cli.modify(|u| Ok(u.remove("a@b"))).unwrap();
        assert!(server.get("a@b").unwrap().is_none());
    }

    #[test]
    fn logins_see_edits_at_once_and_role_checks_within_recheck() {
        let dir = tempfile::tempdir().unwrap();
        let server = UserFile::open(dir.path()).unwrap();
        assert!(server.get_recent("a@x").unwrap().is_none());
        let cli = UserFile::open(dir.path()).unwrap();
        cli.modify(|u| {
            u.insert("a@x".into(), user("a@x"));
            Ok(())
        })
        .unwrap();
        assert!(
            server.get("a@x").unwrap().is_some(),
            "get checks the file every time"
        );
        cli.modify(|u| {
            u.remove("a@x");
            Ok(())
        })
        .unwrap();
        std::thread::sleep(RECHECK + std::time::Duration::from_millis(50));
        assert!(
            server.get_recent("a@x").unwrap().is_none(),
            "get_recent rechecks once RECHECK has passed"
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), b"{nope").unwrap();
        let err = UserFile::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("not a valid user directory"));
    }
}
