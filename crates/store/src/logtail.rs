//! The append end of the embedded store's log: records are copied into a shared memory map
//! of the file instead of being written with one `write()` each.
//!
//! Why: a `write()` per Login and per Logout ran ext4's buffered-write path under the
//! store's lock (about 4% of the server's CPU in S3, and the other worker waited for the
//! lock). A store into a `MAP_SHARED` mapping lands in the same page cache as `write()`
//! would, so an appended record survives `kill -9` of the server exactly as before, and
//! `fdatasync` on the file covers it (Linux writes back pages dirtied through a mapping).
//!
//! How:
//! - The file is grown ahead of the data with `fallocate` in steps of [`GROW`]: the blocks
//!   are reserved, so a full disk fails the append that grows the file (an error the caller
//!   sees), never a later page fault. Past the data the file is zeros.
//! - Only a window of [`WINDOW`] bytes at the end is mapped, so the pages the server wrote
//!   do not pile up in its resident set.
//! - When the store closes, the file is cut back to its data. After a crash it ends in
//!   zeros, which the replay skips (JSON lines never contain a NUL byte).
//! - Appends larger than half a window (a flush of many touches) and file systems without
//!   `fallocate` use `pwrite()` at the end of the data.
//!
//! Nothing else may truncate the file while the store has it open (the directory lock
//! keeps other vsess processes out): a store into a mapped page past the end of a file is
//! a SIGBUS.
use crate::fsutil::open_private_rw;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::ptr::NonNull;

/// How far ahead of the data the file is preallocated.
pub(crate) const GROW: u64 = 8 << 20;
/// How much of the file's end is mapped at a time.
pub(crate) const WINDOW: usize = 1 << 20;

/// A mapping of `len` bytes of the file from offset `off`.
struct Window {
    ptr: NonNull<u8>,
    off: u64,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by the `LogTail` that holds the window; it is
// only touched through `&mut LogTail`.
unsafe impl Send for Window {}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and nothing borrows the
        // mapping beyond the `&mut` call that wrote into it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

pub(crate) struct LogTail {
    file: File,
    /// Bytes of log data; the next record goes here.
    len: u64,
    /// The file's size: `len` plus zeroed, preallocated space.
    cap: u64,
    window: Option<Window>,
    /// The file system cannot preallocate: every append is a `pwrite()`.
    plain: bool,
    /// Leave the preallocated zeros in place on drop (what a crash leaves; tests).
    keep_tail: bool,
    /// The last growth failed for want of space (warned once).
    disk_full: bool,
    /// Tests: every write fails with ENOSPC after putting this many bytes of its data in
    /// the file (as a full disk can).
    #[cfg(test)]
    fail_after: Option<usize>,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

impl LogTail {
    /// Opens (creating, mode 0600) the log at `path` whose first `len` bytes are data; an
    /// append goes at `len`, over any zeros a crash left after it.
    pub(crate) fn open(path: &Path, len: u64) -> io::Result<Self> {
        let file = open_private_rw(path)?;
        let cap = file.metadata()?.len().max(len);
        Ok(Self {
            file,
            len,
            cap,
            window: None,
            plain: false,
            keep_tail: false,
            disk_full: false,
            #[cfg(test)]
            fail_after: None,
        })
    }

    /// A second handle on the file, for fsync without the store's lock.
    pub(crate) fn try_clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Where the next append goes: the end of the data.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file takes writes again after a failed append: writes a block of zeros
    /// past the data, which replay and the next appends ignore (zeros end the data).
    pub(crate) fn probe(&mut self) -> io::Result<()> {
        self.write_at(&[0; 4096], self.len)
    }

    /// As if the file system had no `fallocate`.
    #[cfg(test)]
    pub(crate) fn force_plain(&mut self) {
        self.plain = true;
        self.window = None;
    }

    /// Make every write fail as a full disk does, after putting `partial` bytes of its data
    /// in the file; `None` heals it.
    #[cfg(test)]
    pub(crate) fn fail_writes(&mut self, partial: Option<usize>) {
        self.fail_after = partial;
    }

    /// `write_all_at`, or the failure [`LogTail::fail_writes`] asked for.
    fn write_at(&self, data: &[u8], at: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.fail_after {
            self.file.write_all_at(&data[..n.min(data.len())], at)?;
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.file.write_all_at(data, at)
    }

    /// On drop, leave the file as a killed server would: data, then zeros.
    #[cfg(test)]
    pub(crate) fn keep_tail_on_drop(&mut self) {
        self.keep_tail = true;
    }

    /// Appends `data` at the end of the log. On an error nothing of `data` counts as
    /// written: the next append goes to the same place.
    pub(crate) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        #[cfg(test)]
        if self.fail_after.is_some() {
            return self.pwrite(data);
        }
        if self.plain || data.len() > WINDOW / 2 {
            return self.pwrite(data);
        }
        let end = self.len + data.len() as u64;
        if end > self.cap && !self.grow(end)? {
            return self.pwrite(data);
        }
        let len = self.len;
        let covers = |w: &Window| len >= w.off && end <= w.off + w.len as u64;
        if !self.window.as_ref().is_some_and(covers) {
            self.map_at(len)?;
        }
        let w = self
            .window
            .as_ref()
            .filter(|w| covers(w))
            .ok_or_else(|| io::Error::other("the log's mapping does not cover the append"))?;
        let at = usize::try_from(len - w.off).map_err(io::Error::other)?;
        // SAFETY: the window maps [w.off, w.off + w.len) of the file, which is at least
        // `cap` bytes long, and [len, end) lies inside it (checked just above); `data` is
        // a separate buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), w.ptr.as_ptr().add(at), data.len());
        }
        self.len = end;
        Ok(())
    }

    fn pwrite(&mut self, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.write_at(data, self.len) {
            // Part of `data` may have reached the file. Zero it (best effort), so that a
            // replay does not take lines this append reports as not written: the blocks
            // that part went to are allocated, so zeros fit where it did.
            let zeros = [0u8; 4096];
            let mut at = self.len;
            let end = self.len + data.len() as u64;
            while at < end {
                let n = (end - at).min(zeros.len() as u64) as usize;
                if self.file.write_all_at(&zeros[..n], at).is_err() {
                    break;
                }
                at += n as u64;
            }
            return Err(e);
        }
        self.len += data.len() as u64;
        self.cap = self.cap.max(self.len);
        Ok(())
    }

    /// Preallocates the file to a multiple of [`GROW`] past `end`. `Ok(false)`: this
    /// append is to be a `pwrite()`: the file system cannot preallocate (for good), or
    /// the disk has no room for a whole step (the record itself may still fit; the next
    /// append tries again).
    fn grow(&mut self, end: u64) -> io::Result<bool> {
        let new_cap = end.div_ceil(GROW).saturating_mul(GROW);
        let e = match preallocate(&self.file, self.cap, new_cap - self.cap) {
            Ok(()) => {
                self.cap = new_cap;
                self.disk_full = false;
                return Ok(true);
            }
            Err(e) => e,
        };
        match e.raw_os_error() {
            Some(libc::ENOSPC) => {
                if !self.disk_full {
                    tracing::warn!(
                        "no room to grow the session log by {} MiB; appending with write() while the disk is this full",
                        GROW >> 20
                    );
                    self.disk_full = true;
                }
                Ok(false)
            }
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
                tracing::info!(
                    "the file system cannot preallocate the session log; appending with write()"
                );
                self.plain = true;
                self.window = None;
                Ok(false)
            }
            _ => Err(e),
        }
    }

    /// Maps [`WINDOW`] bytes (fewer at the end of the file) from the page that holds `at`.
    fn map_at(&mut self, at: u64) -> io::Result<()> {
        self.window = None;
        let off = at - at % page_size();
        let len = usize::try_from((self.cap - off).min(WINDOW as u64)).map_err(io::Error::other)?;
        let foff = libc::off_t::try_from(off).map_err(io::Error::other)?;
        // SAFETY: a new shared mapping of a file we own, within its size.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                foff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        self.window = Some(Window { ptr, off, len });
        Ok(())
    }

    /// Unmaps the window and cuts the file back to its data.
    pub(crate) fn trim(&mut self) -> io::Result<()> {
        self.window = None;
        if self.cap > self.len {
            self.file.set_len(self.len)?;
            self.cap = self.len;
        }
        Ok(())
    }
}

impl Drop for LogTail {
    fn drop(&mut self) {
        if self.keep_tail {
            return;
        }
        if let Err(e) = self.trim() {
            tracing::warn!(error = %e, "cannot trim the session log's preallocated space");
        }
    }
}

/// Extends `file` by `add` bytes of reserved, zeroed blocks from `off`.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, off: u64, add: u64) -> io::Result<()> {
    let off = libc::off_t::try_from(off).map_err(io::Error::other)?;
    let add = libc::off_t::try_from(add).map_err(io::Error::other)?;
    loop {
        // SAFETY: a plain syscall on a file descriptor we own.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, off, add) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Elsewhere there is no `fallocate` (`posix_fallocate` may emulate it by writing).
#[cfg(not(target_os = "linux"))]
fn preallocate(_: &File, _: u64, _: u64) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// The length of `file`'s data: its size without the zeros that a crash leaves after the
/// last record (the space [`LogTail`] preallocated).
pub(crate) fn data_len(file: &File) -> io::Result<u64> {
    let mut end = file.metadata()?.len();
    let mut buf = vec![0u8; 64 << 10];
    while end > 0 {
        let n = (buf.len() as u64).min(end);
        let start = end - n;
        let chunk = &mut buf[..n as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|b| *b != 0) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, width: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut l = format!("{{\"n\":{i},\"pad\":\"").into_bytes();
                l.resize(width - 3, b'x');
                l.extend_from_slice(b"\"}\n");
                l
            })
            .collect()
    }

    #[test]
    fn appends_across_windows_and_growth_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        // More than one GROW step and many windows, with records that straddle pages.
        let recs = lines(25_000, 417);
        let mut want = Vec::new();
        {
            let mut t = LogTail::open(&path, 0).unwrap();
            for (i, r) in recs.iter().enumerate() {
                t.append(r).unwrap();
                want.extend_from_slice(r);
                if i % 5000 == 0 {
                    // A big append (a flush of many touches) goes through pwrite.
                    let big = vec![b'\n'; WINDOW];
                    t.append(&big).unwrap();
                    want.extend_from_slice(&big);
                }
            }
            assert_eq!(t.len(), want.len() as u64);
            assert!(
                t.cap > t.len && t.cap.is_multiple_of(GROW),
                "preallocated ahead"
            );
        }
        // Dropped: cut back to exactly the data.
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[test]
    fn a_crash_leaves_data_then_zeros_and_appends_resume_at_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let recs = lines(10, 100);
        {
            let mut t = LogTail::open(&path, 0).unwrap();
            for r in &recs[..5] {
                t.append(r).unwrap();
            }
            t.keep_tail_on_drop();
        }
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(
            raw.len() as u64,
            GROW,
            "the preallocated file is left as it was"
        );
        assert!(raw[500..].iter().all(|b| *b == 0));
        let f = File::open(&path).unwrap();
        assert_eq!(data_len(&f).unwrap(), 500);
        {
            let mut t = LogTail::open(&path, 500).unwrap();
            for r in &recs[5..] {
                t.append(r).unwrap();
            }
        }
        assert_eq!(std::fs::read(&path).unwrap(), recs.concat());
    }

    #[test]
    fn without_fallocate_appends_are_plain_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let recs = lines(300, 200);
        {
            let mut t = LogTail::open(&path, 0).unwrap();
            t.force_plain();
            for r in &recs {
                t.append(r).unwrap();
            }
            assert_eq!(t.cap, t.len, "nothing preallocated");
            assert!(t.window.is_none());
        }
        assert_eq!(std::fs::read(&path).unwrap(), recs.concat());
    }

    #[test]
    fn data_len_finds_the_last_nonzero_byte_across_read_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        for (data, zeros) in [
            (0usize, 0usize),
            (0, 100),
            (10, 0),
            (70_000, 200_000),
            (5, 65_536),
        ] {
            let mut v = vec![b'a'; data];
            v.resize(data + zeros, 0);
            std::fs::write(&path, &v).unwrap();
            let f = File::open(&path).unwrap();
            assert_eq!(data_len(&f).unwrap(), data as u64, "{data} + {zeros}");
        }
    }
}
