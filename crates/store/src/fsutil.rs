//! Small filesystem helpers: private directories and atomic private files.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// What vsess keeps in a data directory (the store, the user file, the server's
/// certificate, the first administrator password, local tickets).
const DATA_DIR_ENTRIES: &[&str] = &[
    "sessions.log",
    "users.json",
    "users.lock",
    "vsess.lock",
    "server.crt",
    "server.key",
    "administrator-password",
    "instance-uuid",
    "local-tickets",
];

/// Whether `dir` may serve as a data directory: it does not exist yet, is empty, or
/// already holds something vsess keeps there. Anything else is some other directory (a
/// mistyped `--data-dir /tmp` or `/var/lib`), which vsess must not tighten to 0700 and
/// write into. A directory every user may write to (`/tmp`) is refused whatever it holds:
/// anyone could have put a `users.json` there. A fresh file system's `lost+found` and
/// hidden entries (`.snapshot`) do not make a directory someone else's.
pub fn check_data_dir(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is writable by every user (mode {:04o}): vsess keeps users and secrets in \
                 its data directory; give a directory of its own",
                dir.display(),
                mode & 0o7777
            ),
        ));
    }
    let mut first_other = None;
    for e in entries {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if DATA_DIR_ENTRIES.contains(&name.as_ref()) || name.starts_with("sessions.log.") {
            return Ok(());
        }
        if name != "lost+found" && !name.starts_with('.') {
            first_other.get_or_insert_with(|| name.into_owned());
        }
    }
    match first_other {
        None => Ok(()),
        Some(other) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a vsess data directory: it is not empty (it has '{other}') and \
                 holds none of vsess's files (users.json, sessions.log, server.crt...); give \
                 a new or empty directory, or the one a server already uses",
                dir.display()
            ),
        )),
    }
}

/// [`check_data_dir`], then [`ensure_private_dir`]. An existing directory owned by
/// another user is reported (a WARN): that user could change what vsess reads there.
pub fn ensure_data_dir(dir: &Path) -> io::Result<()> {
    check_data_dir(dir)?;
    ensure_private_dir(dir)?;
    let owner = std::os::unix::fs::MetadataExt::uid(&fs::metadata(dir)?);
    let me = effective_uid();
    if owner != me {
        tracing::warn!(
            dir = %dir.display(),
            owner,
            uid = me,
            "the data directory belongs to another user, who can change the users and \
             sessions vsess reads there; chown it to the user that runs vsess"
        );
    }
    Ok(())
}

/// A WARN if the secret file at `path` (a TLS key, a password file) is open to every user
/// of the machine. Group access is left alone: Debian's `ssl-cert` group (0640 keys) is
/// a deliberate way to share a key.
pub fn warn_if_exposed(path: &Path, what: &str) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            tracing::warn!(
                file = %path.display(),
                "{what} is mode {mode:04o}: every user on this machine can read it; \
                 chmod o-rwx it (0600, or 0640 for a group that needs it)"
            );
        }
    }
}

/// The effective user id of this process.
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (and parents) with mode 0700 if it is missing; tightens an existing one.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        tracing::warn!(
            dir = %dir.display(),
            "directory was mode {mode:04o}, open to other users; set to 0700 (it holds \
             session and user data)"
        );
    }
    Ok(())
}

/// Opens `path` for reading and writing, creating it with mode 0600; never truncates.
pub(crate) fn open_private_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Writes `data` to `path` atomically with mode 0600: a temp file in the same
/// directory, fsync, rename, fsync of the directory.
pub fn write_private_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_private(path, data, true)
}

/// [`write_private_atomic`] without the fsyncs: readers see the old file or the new one,
/// never a part, but a crash may lose the change. For caches that are only an
/// optimisation.
pub fn replace_private(path: &Path, data: &[u8]) -> io::Result<()> {
    write_private(path, data, false)
}

fn write_private(path: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // A name no other writer (another thread, another process) can be using, created
    // afresh: never an existing file, nor one a symbolic link points to.
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // A full disk must not also keep the part written.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_is_new_empty_or_holds_vsess_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        assert!(check_data_dir(&d).is_ok(), "missing");
        fs::create_dir(&d).unwrap();
        assert!(check_data_dir(&d).is_ok(), "empty");
        fs::write(d.join("notes.txt"), "x").unwrap();
        let e = check_data_dir(&d).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("'notes.txt'"), "{e}");
        for ours in [
            "users.json",
            "sessions.log.corrupt-1700000000",
            "server.crt",
        ] {
            fs::write(d.join(ours), "").unwrap();
            assert!(check_data_dir(&d).is_ok(), "{ours}");
            fs::remove_file(d.join(ours)).unwrap();
        }
        fs::create_dir(d.join("local-tickets")).unwrap();
        assert!(check_data_dir(&d).is_ok());
        // A fresh volume's lost+found, or hidden entries, are not someone's files.
        let vol = dir.path().join("vol");
        fs::create_dir_all(vol.join("lost+found")).unwrap();
        fs::write(vol.join(".snapshot"), "").unwrap();
        assert!(check_data_dir(&vol).is_ok());
        // A directory anyone may write to is refused, even with vsess's files in it.
        fs::write(vol.join("users.json"), "").unwrap();
        fs::set_permissions(&vol, fs::Permissions::from_mode(0o1777)).unwrap();
        let e = check_data_dir(&vol).unwrap_err();
        assert!(
            e.to_string().contains("writable by every user (mode 1777)"),
            "{e}"
        );
    }

    /// A write that fails leaves no temporary file holding the space a full disk needs.
    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: the target is a directory that is not empty.
        let target = dir.path().join("users.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"x").unwrap();
        assert!(write_private_atomic(&target, b"data").is_err());
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("users.json")]);
    }

    /// Threads of one process writing one file at once each write their own temporary
    /// file: the result is one writer's whole content, never a mix, and nothing is left.
    #[test]
    fn concurrent_writers_never_mix_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cache.json");
        for _ in 0..5 {
            std::thread::scope(|s| {
                for t in 0..8u8 {
                    let target = &target;
                    s.spawn(move || {
                        let data = vec![b'a' + t; 256 * 1024];
                        for _ in 0..4 {
                            replace_private(target, &data).unwrap();
                        }
                    });
                }
            });
            let got = fs::read(&target).unwrap();
            assert_eq!(got.len(), 256 * 1024);
            assert!(got.iter().all(|b| *b == got[0]), "a mix of writers");
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }
}
