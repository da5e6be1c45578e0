//! The user directory: `users.json` in the data directory, mode 0600.
//!
//! Writers (`vsess user …`) take an exclusive lock on `users.lock`, read, change and
//! atomically replace the file. Readers (the server) reload when the file's identity
//! (inode, size, mtime) changes, so edits apply without a restart: [`UserFile::get`]
//! checks on every call (logins), [`UserFile::get_recent`] at most every
//! half a second (the role check on every authenticated call, which a `stat` per request
//! would slow by about 8%).
use crate::fsutil::{open_private_rw, write_private_atomic};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use vsess_core::{StoreError, StoreResult, User};

pub(crate) const FILE: &str = "users.json";
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
    /// The [`Generation`] read before the last check of the file.
    generation: Option<u64>,
    users: BTreeMap<String, User>,
    /// When the file was last checked.
    checked: Option<std::time::Instant>,
    /// The file as it was when it last failed to read (`None`: it was gone) after a good
    /// read: the users of that read are served meanwhile, and the same bad file is not
    /// read again.
    rejected: Option<Option<Stamp>>,
}

pub struct UserFile {
    path: PathBuf,
    generation: Option<Generation>,
    lock_path: PathBuf,
    cache: Mutex<Cache>,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

/// The first 8 bytes of `users.lock`: a counter that [`UserFile::modify`] bumps, under the
/// lock, after each change of `users.json`. Servers map it read-only and compare it on
/// each login, so a `vsess user passwd` or `rm` counts from the next login without a
/// `stat` per login. (The file must not be truncated while a server maps it; nothing
/// but vsess writes it.)
struct Generation {
    counter: NonNull<AtomicU64>,
    _file: File,
}

// SAFETY: the mapping is only read, through an atomic, and lives as long as `self`.
unsafe impl Send for Generation {}
// SAFETY: as above; `AtomicU64` loads may race with other processes' writes.
unsafe impl Sync for Generation {}

impl Generation {
    fn open(path: &Path) -> Option<Self> {
        let file = open_private_rw(path).ok()?;
        // Extending only: a counter already there is kept.
        if file.metadata().ok()?.len() < 8 {
            file.set_len(8).ok()?;
        }
        // SAFETY: a new read-only shared mapping of the file's first 8 bytes.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8,
                libc::PROT_READ,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Self {
            counter: NonNull::new(p.cast::<AtomicU64>())?,
            _file: file,
        })
    }

    fn get(&self) -> u64 {
        // SAFETY: page-aligned (an mmap start), mapped for the life of `self`. Another
        // process's write may be seen torn: any value but the last one read only means
        // one more check of the file.
        unsafe { self.counter.as_ref() }.load(Ordering::Acquire)
    }

    /// The counter in `lock`: how many changes `modify` has saved (0 for a new file).
    fn read(lock: &File) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        let n = lock.read_at(&mut b, 0)?;
        Ok(if n == 8 { u64::from_ne_bytes(b) } else { 0 })
    }

    /// Adds one to the counter in `lock` (held).
    fn bump(lock: &File) -> std::io::Result<()> {
        let now = Self::read(lock)?;
        lock.write_all_at(&now.wrapping_add(1).to_ne_bytes(), 0)
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `open`.
        unsafe {
            libc::munmap(self.counter.as_ptr().cast(), 8);
        }
    }
}

/// Logs, at INFO, how the user directory changed between two reads: the server's audit
/// trail of `vsess user` commands and of hand edits (what a server sees at its next login
/// or call after the change). Never a password or its hash.
fn log_changes(path: &Path, before: &BTreeMap<String, User>, after: &BTreeMap<String, User>) {
    let file = path.display();
    for (name, old) in before {
        match after.get(name) {
            None => tracing::info!(%file, user = %old.name, "user removed"),
            // Another account under the same name: the old one's sessions have ended.
            Some(new) if new.id != old.id => {
                tracing::info!(%file, user = %new.name, role = %new.role, "user removed and added again");
            }
            Some(new) => {
                if new.role != old.role {
                    tracing::info!(%file, user = %new.name, from = %old.role, to = %new.role, "user role changed");
                }
                if new.password_hash != old.password_hash {
                    tracing::info!(%file, user = %new.name, "user password changed");
                }
                if new.unlocks != old.unlocks {
                    tracing::info!(%file, user = %new.name, "user unlocked");
                }
                if new.full_name != old.full_name {
                    tracing::info!(%file, user = %new.name, "user full name changed");
                }
            }
        }
    }
    for (name, new) in after {
        if !before.contains_key(name) {
            tracing::info!(%file, user = %new.name, role = %new.role, "user added");
        }
    }
}

impl UserFile {
    /// Opens the user directory in `dir` (which must exist). A missing file is an empty directory.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let lock_path = dir.join(LOCK);
        let f = Self {
            generation: Generation::open(&lock_path),
            path: dir.join(FILE),
            lock_path,
            cache: Mutex::new(Cache::default()),
        };
        f.refresh()?;
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn stamp(&self) -> StoreResult<Option<Stamp>> {
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
        let mut users = BTreeMap::new();
        for u in doc.users {
            // Two entries can name one account (edited in by hand as `Ops@X` and `ops@x`):
            // the last one counts, as a `vsess user` command would see it; say so.
            if let Some(earlier) = users.insert(u.name.as_str().to_owned(), u) {
                tracing::warn!(
                    file = %self.path.display(),
                    user = %earlier.name,
                    "users.json names this user more than once; the last entry counts, and \
                     the next change made with `vsess user` keeps only it"
                );
            }
        }
        Ok(users)
    }

    /// Reloads the file if it changed since the last read.
    fn refresh(&self) -> StoreResult<()> {
        // Read before the file: a change made after this read bumps it again.
        let generation = self.generation.as_ref().map(Generation::get);
        let stamp = self.stamp()?;
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.checked = Some(std::time::Instant::now());
        c.generation = generation;
        if c.stamp == stamp && stamp.is_some() || c.rejected == Some(stamp) {
            return Ok(());
        }
        // Once the file has been read, a missing or broken file (a hand edit half done,
        // a restore under way) keeps the users of the last good read: treating it as "no
        // users" would end every session for good.
        let had = c.stamp.is_some();
        let kept = |c: &Cache, why: &dyn std::fmt::Display| {
            tracing::error!(
                "{why}; serving the {} users last read from it until it is fixed",
                c.users.len()
            );
        };
        match (stamp, self.read_doc()) {
            (None, Ok(_)) if had => {
                kept(&c, &format_args!("{} is gone", self.path.display()));
                c.rejected = Some(None);
            }
            (_, Ok(users)) => {
                if had {
                    log_changes(&self.path, &c.users, &users);
                }
                c.users = users;
                c.stamp = stamp;
                c.rejected = None;
            }
            (_, Err(e)) if had => {
                kept(&c, &e);
                c.rejected = Some(stamp);
            }
            (_, Err(e)) => return Err(e),
        }
        Ok(())
    }

    /// A user as the last change made through [`modify`](Self::modify) (by any process,
    /// `vsess user …` included) left it: the shared generation counter tells, without a
    /// system call, whether the file must be checked. An edit of `users.json` by other
    /// means is seen within `RECHECK`. Without the counter (it could not be mapped) the
    /// file is checked every time.
    pub fn get_current(&self, name: &str) -> StoreResult<Option<User>> {
        self.with_current(name, |u| u.cloned())
    }

    /// What `read` makes of the user [`get_current`](Self::get_current) would return,
    /// without copying it.
    pub fn with_current<T>(
        &self,
        name: &str,
        read: impl FnOnce(Option<&User>) -> T,
    ) -> StoreResult<T> {
        if let Some(g) = &self.generation {
            let now = g.get();
            let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if c.generation == Some(now) && c.checked.is_some_and(|t| t.elapsed() < RECHECK) {
                return Ok(read(c.users.get(name)));
            }
        }
        self.refresh()?;
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        Ok(read(c.users.get(name)))
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
        let lock: File = open_private_rw(&self.lock_path)
            .map_err(|e| io_err("cannot open", &self.lock_path, e))?;
        lock.lock()
            .map_err(|e| io_err("cannot lock", &self.lock_path, e))?;
        // A file that users were saved to and that is gone now (moved, deleted by
        // mistake) must not be replaced by one holding only this change's users.
        let saved_before =
            Generation::read(&lock).map_err(|e| io_err("cannot read", &self.lock_path, e))? > 0;
        if saved_before && !self.path.exists() {
            return Err(StoreError::Corrupt(format!(
                "{} is missing, but users were saved to it before ({} says so): restore it \
                 from a backup; to start an empty user directory on purpose, remove {} too",
                self.path.display(),
                self.lock_path.display(),
                self.lock_path.display()
            )));
        }
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
        Generation::bump(&lock).map_err(|e| io_err("cannot write", &self.lock_path, e))?;
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
        User::new(
            UserName::parse(n).unwrap(),
            String::new(),
            Role::Admin,
            "$argon2id$x".into(),
        )
    }

    /// After a good read, a broken or missing file keeps the users last read (every
    /// session would otherwise fail or end for good); a good file is read again.
    #[test]
    fn a_broken_or_missing_file_keeps_the_last_good_users() {
        let dir = tempfile::tempdir().unwrap();
        let server = UserFile::open(dir.path()).unwrap();
        server
            .modify(|u| {
                u.insert("a@b".into(), user("a@b"));
                Ok(())
            })
            .unwrap();
        let path = dir.path().join(FILE);
        let good = fs::read(&path).unwrap();
        fs::write(&path, b"{\"version\":1,\"users\":[").unwrap();
        for _ in 0..2 {
            assert!(server.get("a@b").unwrap().is_some(), "a broken file");
        }
        fs::remove_file(&path).unwrap();
        assert!(server.get("a@b").unwrap().is_some(), "a missing file");
        assert_eq!(server.list().unwrap().len(), 1);
        // Fixed: read again, changes included.
        let fixed = String::from_utf8(good).unwrap().replace("a@b", "c@d");
        fs::write(&path, fixed).unwrap();
        assert!(server.get("a@b").unwrap().is_none());
        assert!(server.get("c@d").unwrap().is_some());
        // A handle that never read a good file still refuses a broken one.
        fs::write(&path, b"nonsense").unwrap();
        assert!(UserFile::open(dir.path()).is_err());
        // A change while the file is gone does not replace it with only its own users.
        fs::remove_file(&path).unwrap();
        let err = server
            .modify(|u| {
                u.insert("e@f".into(), user("e@f"));
                Ok(())
            })
            .unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
        assert!(!path.exists());
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

    /// A change through `modify` (what `vsess user` does) bumps the shared counter, so a
    /// server's next lookup sees it even right after a check; an edit by other means is
    /// seen once RECHECK has passed.
    #[test]
    fn changes_are_seen_at_once_and_other_edits_within_recheck() {
        let dir = tempfile::tempdir().unwrap();
        let server = UserFile::open(dir.path()).unwrap();
        assert!(server.generation.is_some());
        assert!(server.get_current("a@x").unwrap().is_none());
        let cli = UserFile::open(dir.path()).unwrap();
        cli.modify(|u| {
            u.insert("a@x".into(), user("a@x"));
            Ok(())
        })
        .unwrap();
        assert!(
            server.get_current("a@x").unwrap().is_some(),
            "the counter says the file changed"
        );
        cli.modify(|u| Ok(u.remove("a@x"))).unwrap();
        assert!(server.get_current("a@x").unwrap().is_none());
        // By other means: users.json replaced without the counter.
        let doc = br#"{"version":1,"users":[{"name":"b@x","full_name":"","role":"Admin","password_hash":"$argon2id$x"}]}"#;
        crate::fsutil::write_private_atomic(&dir.path().join(FILE), doc).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while server.get_current("b@x").unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the edit was never seen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn the_counter_survives_reopening_and_counts_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = UserFile::open(dir.path()).unwrap();
        let g0 = a.generation.as_ref().unwrap().get();
        for i in 0..3 {
            a.modify(|u| {
                u.insert(format!("u{i}@x"), user(&format!("u{i}@x")));
                Ok(())
            })
            .unwrap();
        }
        let b = UserFile::open(dir.path()).unwrap();
        assert_eq!(b.generation.as_ref().unwrap().get(), g0 + 3);
        assert_eq!(a.generation.as_ref().unwrap().get(), g0 + 3);
        assert_eq!(fs::metadata(dir.path().join(LOCK)).unwrap().len(), 8);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), b"{nope").unwrap();
        let err = UserFile::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("not a valid user directory"));
    }
}
