//! The durable embedded store: in-memory state plus an append-only log.
//!
//! Layout in the data directory:
//! - `vsess.lock`: held exclusively by the one server that owns the directory.
//! - `sessions.log`: one JSON [`Mutation`] per line. On open the log is replayed (streamed
//!   in chunks, decoded on every core, applied in order); a torn last line (a crash
//!   mid-write) is dropped, a corrupt line elsewhere is skipped and the original log is
//!   kept as `sessions.log.corrupt-<unix time>`. The log is then compacted.
//!
//! Durability: a new session, an ended session, a ticket and the service message are
//! in the log (the page cache: [`crate::logtail`] copies records into a shared memory map
//! of the file) before the call returns, so a client that saw its Login response
//! keeps its session through `kill -9`. With [`Durability::Always`] they are also fsynced
//! before it returns; with [`Durability::Interval`] a background thread fsyncs them
//! shortly after, and only an OS crash or power loss can lose that last interval.
//! Touches (`lastActiveTime`, `callCount`) stay in memory and are written by
//! [`EmbeddedStore::flush`] (every few seconds, and at shutdown): after a crash a session
//! may look up to one flush interval less recently active than it was.
use crate::fsutil::{ensure_data_dir, sync_dir};
use crate::logtail::{data_len, LogTail};
use crate::users::UserFile;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vsess_core::inventory::{CreateError, CreateKind, Entity};
use vsess_core::{
    Expiry, IdDigest, LockState, MemoryState, Mutation, Reaped, SessionKey, SessionRecord,
    Standing, Store, StoreError, StoreResult, Ticket, TokenRecord, User,
};

const LOG: &str = "sessions.log";
const DIR_LOCK: &str = "vsess.lock";

struct Inner {
    state: MemoryState,
    log: LogTail,
    /// Reused for encoding appended lines.
    buf: Vec<u8>,
    /// Touches not yet written, by session.
    dirty: HashMap<SessionKey, Mutation>,
    /// Lines in the log, to decide when to compact.
    lines: u64,
    /// An append failed: changes are refused until [`LogTail::probe`] succeeds.
    log_failed: bool,
    /// A compaction failed (a full disk): the next is not tried before then, since each
    /// try writes the whole state under the lock.
    compact_after: Option<std::time::Instant>,
    /// A compaction replaced the file but could not open the new one (its data this many
    /// bytes long): `log` still writes to the replaced file, which is gone from the
    /// directory, so nothing may be appended until the new one is open.
    reopen: Option<u64>,
    /// A compaction renamed its snapshot over the log, but the directory sync that makes
    /// the rename durable failed: retried before the next change.
    dir_unsynced: bool,
    /// Makes [`EmbeddedStore::switch_log`] fail, as a lack of file descriptors would.
    #[cfg(test)]
    fail_switch: bool,
}

pub struct EmbeddedStore {
    dir: PathBuf,
    users: UserFile,
    inner: Mutex<Inner>,
    syncer: Arc<Syncer>,
    durability: Durability,
    /// With [`Durability::Interval`], the thread that fsyncs the log.
    _background: Option<Background>,
    _dir_lock: File,
}

/// When an acknowledged change (a new or ended session, a ticket, a token, the service
/// message, an inventory entity) is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync before the call returns (concurrent callers share one fsync). An answered
    /// Login survives `kill -9`, an OS crash and power loss.
    #[default]
    Always,
    /// write() before the call returns, fsync in the background at most this long after
    /// (like Redis' `appendfsync everysec`). An answered Login survives `kill -9` of the
    /// server (the page cache outlives the process); an OS crash or power loss can lose
    /// the changes of the last interval.
    Interval(std::time::Duration),
}

/// How [`EmbeddedStore::open_with`] opens a store.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    pub durability: Durability,
}

/// The background fsync thread of [`Durability::Interval`].
struct Background {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start(syncer: Arc<Syncer>, every: std::time::Duration) -> StoreResult<Self> {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vsess-log-fsync".into())
            .spawn(move || loop {
                let (lock, cv) = &*flag;
                let g = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (g, _) = cv
                    .wait_timeout_while(g, every, |stopped| !*stopped)
                    .unwrap_or_else(|e| e.into_inner());
                let stopped = *g;
                drop(g);
                let written = syncer.written();
                // A failure is logged once, by `sync_to`, and is final.
                if syncer.state().synced < written && syncer.failure().is_none() {
                    let _ = syncer.sync_to(written);
                }
                if stopped {
                    return;
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the log fsync thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    /// Stops the thread after a last fsync.
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Group commit: callers that need their records durable wait for one fsync that covers
/// them, instead of each running their own. Positions count records appended since open.
struct Syncer {
    /// A second handle on the current log, so that fsync runs without the state lock.
    file: Mutex<Arc<File>>,
    /// Records appended so far (updated under the state lock, after the write).
    written: std::sync::atomic::AtomicU64,
    state: Mutex<SyncState>,
    done: std::sync::Condvar,
    path: PathBuf,
    /// Makes the next fsyncs fail, as a disk that cannot write back would.
    #[cfg(test)]
    fail_sync: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct SyncState {
    synced: u64,
    busy: bool,
    /// An fsync failed. Linux reports a writeback error once, and may have dropped the
    /// pages it could not write: a later fsync that succeeds proves nothing about the
    /// records before it. So the log is never again taken as durable, and changes are
    /// refused (see [`EmbeddedStore::writable`]) until a restart replays what it holds.
    failed: Option<String>,
}

impl Syncer {
    fn state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until every record up to `pos` is on disk.
    fn sync_to(&self, pos: u64) -> StoreResult<()> {
        let mut st = self.state();
        loop {
            if let Some(failed) = &st.failed {
                return Err(StoreError::Unavailable(failed.clone()));
            }
            if st.synced >= pos {
                return Ok(());
            }
            if !st.busy {
                break;
            }
            st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.busy = true;
        let target = self.written.load(std::sync::atomic::Ordering::SeqCst);
        drop(st);
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner()).clone();
        #[cfg(test)]
        let r = if self.fail_sync.load(std::sync::atomic::Ordering::SeqCst) {
            Err(io::Error::other("test"))
        } else {
            file.sync_data()
        };
        #[cfg(not(test))]
        let r = file.sync_data();
        let mut st = self.state();
        st.busy = false;
        let r = match r {
            Ok(()) => {
                st.synced = st.synced.max(target);
                Ok(())
            }
            Err(e) => {
                let failed = format!(
                    "{}; the records not yet synced may be lost, so changes are refused \
                     until vsess restarts and replays the log (check the disk first)",
                    io("cannot sync", &self.path, e)
                );
                tracing::error!("{failed}");
                st.failed = Some(failed.clone());
                Err(StoreError::Unavailable(failed))
            }
        };
        self.done.notify_all();
        r
    }

    /// Why the log is no longer taken as durable, if an fsync failed.
    fn failure(&self) -> Option<String> {
        self.state().failed.clone()
    }

    fn written(&self) -> u64 {
        self.written.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What replaying a log found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub lines: u64,
    pub torn_tail: bool,
    pub corrupt_lines: u64,
    /// The log does not end in a newline (a crash cut the last write just before it):
    /// the next append must not run on from that line.
    pub unterminated: bool,
    /// Bytes of log data: the file's size less the zeros a crash leaves after the last
    /// record (the log's preallocated space).
    pub data_len: u64,
}

fn io(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

fn open_log(path: &Path, len: u64) -> StoreResult<LogTail> {
    LogTail::open(path, len).map_err(|e| io("cannot open", path, e))
}

impl EmbeddedStore {
    /// Whether `dir` holds an embedded store's data (its session log or its users), without
    /// opening, locking or creating anything.
    pub fn holds_data(dir: &Path) -> bool {
        dir.join(LOG).exists() || dir.join(crate::users::FILE).exists()
    }

    /// Opens (creating if needed) the store in `dir` and takes the directory lock, with
    /// [`Durability::Always`].
    pub fn open(dir: &Path) -> StoreResult<Self> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// Opens the store in `dir` to copy it elsewhere (`vsess store migrate --from`): as
    /// [`open`](Self::open), but the log is left as it is, damaged or not (no backup of
    /// corrupt lines, no rewrite).
    pub fn open_as_source(dir: &Path) -> StoreResult<Self> {
        Self::open_tidying(dir, EmbeddedOptions::default(), false)
    }

    /// Opens (creating if needed) the store in `dir` and takes the directory lock.
    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> StoreResult<Self> {
        Self::open_tidying(dir, options, true)
    }

    fn open_tidying(dir: &Path, options: EmbeddedOptions, tidy: bool) -> StoreResult<Self> {
        ensure_data_dir(dir).map_err(|e| io("cannot use data directory", dir, e))?;
        let lock_path = dir.join(DIR_LOCK);
        let dir_lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io("cannot open", &lock_path, e))?;
        if dir_lock.try_lock().is_err() {
            return Err(StoreError::Unavailable(format!(
                "the data directory {} is in use by another vsess process (a server, or a `vsess store migrate`); stop it first",
                dir.display()
            )));
        }
        let users = UserFile::open(dir)?;
        let log_path = dir.join(LOG);
        let (state, report) = replay(&log_path)?;
        // The corrupt lines are dropped by the rewrite below only once a copy of the log
        // holds them (they may be a later version's records).
        let mut backed_up = tidy;
        if tidy && report.corrupt_lines > 0 {
            let keep = dir.join(format!("{LOG}.corrupt-{}", Utc::now().timestamp()));
            #[cfg(test)]
            let copied = if tests::FAIL_BACKUP.with(|f| f.get()) {
                Err(io::Error::other("no space left (test)"))
            } else {
                fs::copy(&log_path, &keep)
            };
            #[cfg(not(test))]
            let copied = fs::copy(&log_path, &keep);
            match copied {
                Ok(_) => tracing::warn!(
                    corrupt_lines = report.corrupt_lines,
                    backup = %keep.display(),
                    "the session log had corrupt lines; they were skipped and the original was kept"
                ),
                Err(e) => {
                    let _ = fs::remove_file(&keep);
                    backed_up = false;
                    tracing::warn!(
                        corrupt_lines = report.corrupt_lines,
                        "the session log had corrupt lines; they were skipped, and stay in it \
                         since it could not be copied to {}: {e}",
                        keep.display()
                    );
                }
            }
        }
        if report.torn_tail {
            tracing::warn!(
                "the session log ended in a torn write (a crash mid-append); it was dropped"
            );
        }
        let log = open_log(&log_path, report.data_len)?;
        let syncer = Arc::new(Syncer {
            file: Mutex::new(Arc::new(
                log.try_clone_file()
                    .map_err(|e| io("cannot open", &log_path, e))?,
            )),
            written: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(SyncState::default()),
            done: std::sync::Condvar::new(),
            path: log_path.clone(),
            #[cfg(test)]
            fail_sync: std::sync::atomic::AtomicBool::new(false),
        });
        let background = match options.durability {
            Durability::Always => None,
            Durability::Interval(every) => Some(Background::start(syncer.clone(), every)?),
        };
        let store = Self {
            dir: dir.to_owned(),
            users,
            inner: Mutex::new(Inner {
                state,
                log,
                buf: Vec::new(),
                dirty: HashMap::new(),
                lines: report.lines,
                log_failed: false,
                compact_after: None,
                reopen: None,
                dir_unsynced: false,
                #[cfg(test)]
                fail_switch: false,
            }),
            syncer,
            durability: options.durability,
            _background: background,
            _dir_lock: dir_lock,
        };
        // Rewrite the log only when it is damaged or mostly dead records: with a million
        // live sessions a needless rewrite would double the time to serving.
        // The rewrite is tidying, not repair: appends go after the last whole record, and
        // a start after a crash on a full disk must not fail for want of room to tidy.
        let live = store.lock().state.snapshot_len();
        let mut rewritten = false;
        if backed_up
            && (report.torn_tail
                || report.unterminated
                || report.corrupt_lines > 0
                || report.lines > 2 * live as u64 + 1000)
        {
            match store.compact() {
                Ok(()) => rewritten = true,
                Err(e) => tracing::warn!(
                    "the session log was not rewritten ({e}); serving from it as it is"
                ),
            }
        }
        if tidy && !rewritten && (report.torn_tail || report.unterminated) {
            // The next record must start a line of its own: the torn bytes then make one
            // corrupt line, skipped (and kept) by the next start.
            store
                .lock()
                .log
                .append(b"\n")
                .map_err(|e| io("cannot append to", &log_path, e))?;
        }
        Ok(store)
    }

    /// How many sessions the store holds (live or not yet reaped).
    pub fn list_sessions_len(&self) -> usize {
        self.lock().state.session_count()
    }

    pub fn users(&self) -> &UserFile {
        &self.users
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether changes can be made: after a failed append (a full disk), not until the log
    /// takes writes again (probed here, as the next change would). For `/healthz`, so
    /// that monitoring sees what callers see.
    pub fn health(&self) -> StoreResult<()> {
        self.writable(&mut self.lock())
    }

    /// After a failed append, whether the log takes writes again (probing it).
    fn writable(&self, g: &mut Inner) -> StoreResult<()> {
        if let Some(failed) = self.syncer.failure() {
            return Err(StoreError::Unavailable(failed));
        }
        if let Some(len) = g.reopen {
            self.switch_log(g, len).map_err(|e| {
                StoreError::Unavailable(format!(
                    "{e}; changes are refused until the compacted log can be opened"
                ))
            })?;
            g.reopen = None;
        }
        if g.dir_unsynced {
            // The rename of a compaction is not durable until its directory is synced;
            // records appended to the new file are not either.
            sync_dir(&self.dir).map_err(|e| {
                StoreError::Unavailable(format!(
                    "{}; changes are refused until it can be synced",
                    io("cannot sync", &self.dir, e)
                ))
            })?;
            g.dir_unsynced = false;
        }
        if g.log_failed {
            g.log.probe().map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot write to {}: {e}; changes are refused until it can be written (free disk space)",
                    self.dir.join(LOG).display()
                ))
            })?;
            g.log_failed = false;
        }
        Ok(())
    }

    /// Runs `op` on the state and appends the mutations it returns; returns the log
    /// position to wait for when they must be durable.
    ///
    /// If the append fails (a full disk), the state is rebuilt from the log, so that
    /// nothing the caller was told failed stays in effect (a Logout that could not be
    /// logged must not end the session only until the next restart), and changes are
    /// refused without running `op` until the log takes writes again.
    fn apply<T>(
        &self,
        op: impl FnOnce(&mut Inner) -> (T, Vec<Mutation>),
    ) -> StoreResult<(T, Option<u64>)> {
        let mut g = self.lock();
        self.writable(&mut g)?;
        let (out, muts) = op(&mut g);
        if muts.is_empty() {
            return Ok((out, None));
        }
        if let Err(e) = append(&mut g, &muts) {
            // The same answer as the changes refused after it (`writable`): the change was
            // undone, and the store takes changes again once the file does.
            let e = StoreError::Unavailable(format!(
                "cannot write to {}: {e}; changes are refused until it can be written (free disk space)",
                self.dir.join(LOG).display()
            ));
            self.rewind_to_log(&mut g);
            return Err(e);
        }
        let pos = self
            .syncer
            .written
            .fetch_add(muts.len() as u64, std::sync::atomic::Ordering::SeqCst)
            + muts.len() as u64;
        Ok((out, Some(pos)))
    }

    /// Runs `op` on the state and appends its mutations. When `durable`, returns once they
    /// are as durable as [`Durability`] says: with `Always` it waits (off the async
    /// workers) for the fsync that covers them, shared by concurrent callers (group
    /// commit); with `Interval` they are already written.
    async fn mutate<T>(
        &self,
        durable: bool,
        op: impl FnOnce(&mut MemoryState) -> (T, Vec<Mutation>),
    ) -> StoreResult<T> {
        self.mutate_inner(durable, |g| op(&mut g.state)).await
    }

    async fn mutate_inner<T>(
        &self,
        durable: bool,
        op: impl FnOnce(&mut Inner) -> (T, Vec<Mutation>),
    ) -> StoreResult<T> {
        let (out, pos) = self.apply(op)?;
        if let (true, Some(pos), Durability::Always) = (durable, pos, self.durability) {
            let syncer = self.syncer.clone();
            tokio::task::spawn_blocking(move || syncer.sync_to(pos))
                .await
                .map_err(|e| StoreError::Io(format!("the log sync task failed: {e}")))??;
        }
        Ok(out)
    }

    /// Points appends and the background fsync at the file now named `LOG`, whose data is
    /// `len` bytes long.
    fn switch_log(&self, g: &mut Inner, len: u64) -> StoreResult<()> {
        let path = self.dir.join(LOG);
        #[cfg(test)]
        if g.fail_switch {
            return Err(io("cannot open", &path, io::Error::other("test")));
        }
        let log = open_log(&path, len)?;
        let sync = log
            .try_clone_file()
            .map_err(|e| io("cannot open", &path, e))?;
        g.log = log;
        *self.syncer.file.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(sync);
        Ok(())
    }

    /// After a failed append: replaces the state with what the log holds (plus the touches
    /// not yet written, which the state already had), and refuses changes until the log
    /// takes writes again.
    fn rewind_to_log(&self, g: &mut Inner) {
        g.log_failed = true;
        let path = self.dir.join(LOG);
        match replay_prefix(&path, g.log.len()) {
            Ok((mut state, report)) => {
                for m in g.dirty.values() {
                    state.apply(m);
                }
                g.state = state;
                g.lines = report.lines;
                tracing::error!(
                    "an append to {} failed; the sessions were reloaded from it",
                    path.display()
                );
            }
            Err(e) => tracing::error!(
                "an append to {} failed, and reloading the sessions from it failed too: {e}",
                path.display()
            ),
        }
    }

    /// Writes pending touches and fsyncs; compacts the log when it has grown.
    pub fn flush(&self) -> StoreResult<()> {
        let compact = {
            let mut g = self.lock();
            if !g.dirty.is_empty() {
                // Not into a log that failed or was replaced (the touches stay pending).
                self.writable(&mut g)?;
                let muts: Vec<Mutation> = g.dirty.drain().map(|(_, m)| m).collect();
                if let Err(e) = append(&mut g, &muts) {
                    // The touches are in the state already; keep them for the next flush.
                    for m in muts {
                        if let Mutation::Touch { key, .. } = &m {
                            g.dirty.entry(key.clone()).or_insert(m);
                        }
                    }
                    g.log_failed = true;
                    return Err(io("cannot append to", &self.dir.join(LOG), e));
                }
                self.syncer
                    .written
                    .fetch_add(muts.len() as u64, std::sync::atomic::Ordering::SeqCst);
            }
            // Against the snapshot, not the sessions alone: a state of many tokens (say)
            // and few sessions would otherwise be compacted again at every flush.
            g.lines > 100_000
                && g.lines > 4 * g.state.snapshot_len() as u64
                && g.compact_after
                    .is_none_or(|t| std::time::Instant::now() >= t)
        };
        self.syncer.sync_to(self.syncer.written())?;
        if compact {
            if let Err(e) = self.compact() {
                self.lock().compact_after =
                    Some(std::time::Instant::now() + std::time::Duration::from_secs(60));
                return Err(e);
            }
        }
        Ok(())
    }

    /// [`flush`](Self::flush), then cuts the log file back to its data (it is grown
    /// ahead of the data while the store runs). The server calls it on shutdown; the
    /// store stays usable.
    pub fn close(&self) -> StoreResult<()> {
        self.flush()?;
        self.lock()
            .log
            .trim()
            .map_err(|e| io("cannot trim", &self.dir.join(LOG), e))
    }

    /// Rewrites the log as a snapshot of the current state (atomically).
    pub fn compact(&self) -> StoreResult<()> {
        let mut g = self.lock();
        // The touches not yet written reach the snapshot through the state, which has them
        // already (applying one again changes nothing). They stay pending until the
        // snapshot has replaced the log, so a failed compaction loses none of them.
        let inner = &mut *g;
        for m in inner.dirty.values() {
            inner.state.apply(m);
        }
        let snapshot = g.state.snapshot();
        let path = self.dir.join(LOG);
        let tmp = self.dir.join(format!("{LOG}.tmp"));
        let write_tmp = || -> StoreResult<u64> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io("cannot create", &tmp, e))?;
            let mut buf = Vec::with_capacity(snapshot.len() * 256);
            for m in &snapshot {
                encode_line(&mut buf, m);
            }
            f.write_all(&buf).map_err(|e| io("cannot write", &tmp, e))?;
            f.sync_all().map_err(|e| io("cannot sync", &tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| io("cannot replace", &path, e))?;
            Ok(buf.len() as u64)
        };
        let buf_len = match write_tmp() {
            Ok(n) => n,
            Err(e) => {
                // Do not leave a partial snapshot holding the space a full disk needs.
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        g.dirty.clear();
        g.lines = snapshot.len() as u64;
        // The snapshot is the log now: appends must go to it even if the directory sync
        // below fails, and none may go to the replaced file.
        g.dir_unsynced = true;
        if let Err(e) = self.switch_log(&mut g, buf_len) {
            g.reopen = Some(buf_len);
            return Err(e);
        }
        g.reopen = None;
        sync_dir(&self.dir).map_err(|e| io("cannot sync", &self.dir, e))?;
        g.dir_unsynced = false;
        // Everything appended so far is in the fsynced snapshot.
        let written = self.syncer.written();
        let mut st = self.syncer.state();
        st.synced = st.synced.max(written);
        Ok(())
    }
}

/// Appends `m` and a newline to `buf`, exactly as `serde_json` writes a [`Mutation`]. The
/// records written most (a new session, an ended one, a touch) are written directly or
/// through [`TouchLine`], with times and the digest formatted without `fmt` machinery.
fn encode_line(buf: &mut Vec<u8>, m: &Mutation) {
    let start = buf.len();
    let r = match m {
        Mutation::PutSession { rec } => {
            put_session_line(buf, rec);
            Ok(())
        }
        Mutation::EndSession { key } => {
            buf.extend_from_slice(br#"{"op":"end_session","key":"#);
            json_str(buf, key.as_str());
            buf.push(b'}');
            Ok(())
        }
        Mutation::Touch { key, at, calls } => {
            let mut t = [0u8; 32];
            serde_json::to_writer(
                &mut *buf,
                &TouchLine {
                    op: "touch",
                    key,
                    at: rfc3339(at, &mut t),
                    calls: *calls,
                },
            )
        }
        m => serde_json::to_writer(&mut *buf, m),
    };
    // Serialising our own types cannot fail; an error would leave the line out.
    match r {
        Ok(()) => buf.push(b'\n'),
        Err(_) => buf.truncate(start),
    }
}

/// `s` as a JSON string, as serde_json writes it: strings that need no escape (nearly
/// all) are copied; the rest go through serde_json.
fn json_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\') {
        buf.reserve(s.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else if serde_json::to_writer(&mut *buf, s).is_err() {
        // Writing into a Vec cannot fail.
        buf.extend_from_slice(b"\"\"");
    }
}

/// `Mutation::PutSession` as serde writes it, the field order included.
fn put_session_line(buf: &mut Vec<u8>, rec: &SessionRecord) {
    // Every field, so that a field added to SessionRecord does not compile until it is
    // written here too.
    let SessionRecord {
        digest,
        key,
        user_name,
        full_name,
        role,
        login_user,
        login_time,
        last_active_time,
        locale,
        message_locale,
        extension_session,
        ip_address,
        user_agent,
        call_count,
        user_id,
    } = rec;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.extend_from_slice(br#"{"op":"put_session","rec":{"digest":""#);
    for b in digest.0 {
        buf.push(HEX[usize::from(b >> 4)]);
        buf.push(HEX[usize::from(b & 15)]);
    }
    buf.extend_from_slice(br#"","key":"#);
    json_str(buf, key.as_str());
    buf.extend_from_slice(br#","user_name":"#);
    json_str(buf, user_name);
    buf.extend_from_slice(br#","full_name":"#);
    json_str(buf, full_name);
    buf.extend_from_slice(match role {
        vsess_core::Role::Admin => br#","role":"Admin""#.as_slice(),
        vsess_core::Role::ReadOnly => br#","role":"ReadOnly""#.as_slice(),
        vsess_core::Role::NoAccess => br#","role":"NoAccess""#.as_slice(),
    });
    buf.extend_from_slice(br#","login_user":"#);
    json_str(buf, login_user);
    let mut t = [0u8; 32];
    buf.extend_from_slice(br#","login_time":"#);
    json_str(buf, &rfc3339(login_time, &mut t));
    buf.extend_from_slice(br#","last_active_time":"#);
    json_str(buf, &rfc3339(last_active_time, &mut t));
    buf.extend_from_slice(br#","locale":"#);
    json_str(buf, locale);
    buf.extend_from_slice(br#","message_locale":"#);
    json_str(buf, message_locale);
    buf.extend_from_slice(if *extension_session {
        br#","extension_session":true,"ip_address":"#.as_slice()
    } else {
        br#","extension_session":false,"ip_address":"#.as_slice()
    });
    json_str(buf, ip_address);
    buf.extend_from_slice(br#","user_agent":"#);
    json_str(buf, user_agent);
    buf.extend_from_slice(br#","call_count":"#);
    buf.extend_from_slice(itoa::Buffer::new().format(*call_count).as_bytes());
    buf.extend_from_slice(br#","user_id":"#);
    json_str(buf, user_id);
    buf.extend_from_slice(b"}}");
}

/// `Mutation::Touch` as serde writes it.
#[derive(Serialize)]
struct TouchLine<'a> {
    op: &'static str,
    key: &'a SessionKey,
    at: std::borrow::Cow<'a, str>,
    calls: u64,
}

/// `t` as chrono's serde writes it (RFC 3339, UTC as `Z`, 0, 3, 6 or 9 digits of
/// fraction), formatted into `out`; chrono itself formats the rare times it cannot hold
/// (years outside 0–9999, leap seconds).
fn rfc3339<'b>(t: &DateTime<Utc>, out: &'b mut [u8; 32]) -> std::borrow::Cow<'b, str> {
    use chrono::{Datelike, Timelike};
    let (year, nano) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return t
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            .into();
    }
    fn two(out: &mut [u8], at: usize, v: u32) {
        out[at] = b'0' + (v / 10 % 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    }
    let year = year.unsigned_abs();
    two(out, 0, year / 100);
    two(out, 2, year % 100);
    out[4] = b'-';
    two(out, 5, t.month());
    out[7] = b'-';
    two(out, 8, t.day());
    out[10] = b'T';
    two(out, 11, t.hour());
    out[13] = b':';
    two(out, 14, t.minute());
    out[16] = b':';
    two(out, 17, t.second());
    let mut n = 19;
    let digits: usize = match nano {
        0 => 0,
        _ if nano % 1_000_000 == 0 => 3,
        _ if nano % 1_000 == 0 => 6,
        _ => 9,
    };
    if digits > 0 {
        out[n] = b'.';
        let mut v = nano / 10u32.pow(9 - digits as u32);
        for i in (1..=digits).rev() {
            out[n + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        n += digits + 1;
    }
    out[n] = b'Z';
    std::str::from_utf8(&out[..=n]).unwrap_or_default().into()
}

/// Writes `muts` to the log in one write().
fn append(g: &mut Inner, muts: &[Mutation]) -> io::Result<()> {
    if muts.is_empty() {
        return Ok(());
    }
    let mut buf = std::mem::take(&mut g.buf);
    buf.clear();
    for m in muts {
        encode_line(&mut buf, m);
    }
    let r = g.log.append(&buf);
    // Keep a small buffer for the next append, not one that held a big flush.
    if buf.capacity() <= 64 << 10 {
        g.buf = buf;
    }
    r?;
    g.lines += muts.len() as u64;
    Ok(())
}

/// A log line, decoded without serde's buffering for internally tagged enums (which
/// parses every line twice, through `Content`): the fields of every [`Mutation`] variant,
/// flattened, then matched against `op` in [`Line::into_mutation`]. Field names and types
/// are those of `Mutation`'s own serde format, which stays the format of the log.
#[derive(Deserialize)]
struct Line {
    op: Op,
    rec: Option<RecordIn>,
    key: Option<SessionKey>,
    at: Option<TimeIn>,
    calls: Option<u64>,
    digest: Option<DigestIn>,
    ticket: Option<Ticket>,
    text: Option<String>,
    user: Option<String>,
    state: Option<LockState>,
    entity: Option<Entity>,
    token: Option<TokenRecord>,
}

/// `SessionRecord` as serde reads it, but with the digest and the times decoded by
/// [`DigestIn`] and [`TimeIn`].
#[derive(Deserialize)]
struct RecordIn {
    digest: DigestIn,
    key: SessionKey,
    user_name: String,
    full_name: String,
    role: vsess_core::Role,
    login_user: String,
    login_time: TimeIn,
    last_active_time: TimeIn,
    locale: String,
    message_locale: String,
    #[serde(default)]
    extension_session: bool,
    ip_address: String,
    user_agent: String,
    call_count: u64,
    /// Absent in logs written before vsess recorded user ids.
    #[serde(default)]
    user_id: String,
}

impl RecordIn {
    fn into_record(self) -> SessionRecord {
        // Every field by name: a field added to SessionRecord does not compile until it
        // is read here too.
        SessionRecord {
            digest: self.digest.0,
            key: self.key,
            user_name: self.user_name.into(),
            full_name: self.full_name.into(),
            role: self.role,
            login_user: self.login_user.into(),
            login_time: self.login_time.0,
            last_active_time: self.last_active_time.0,
            locale: self.locale.into(),
            message_locale: self.message_locale.into(),
            extension_session: self.extension_session,
            ip_address: self.ip_address.into(),
            user_agent: self.user_agent.into(),
            call_count: self.call_count,
            user_id: self.user_id.into(),
        }
    }
}

/// An [`IdDigest`] (64 hex digits, either case, as `IdDigest` reads them) decoded without
/// an intermediate `String`.
struct DigestIn(IdDigest);

impl<'de> Deserialize<'de> for DigestIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DigestIn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a hex digest")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DigestIn, E> {
                fn nibble(c: u8) -> Option<u8> {
                    match c {
                        b'0'..=b'9' => Some(c - b'0'),
                        b'a'..=b'f' => Some(c - b'a' + 10),
                        b'A'..=b'F' => Some(c - b'A' + 10),
                        _ => None,
                    }
                }
                let b = s.as_bytes();
                let mut out = [0u8; 32];
                if b.len() != 64 {
                    return Err(E::custom("bad digest"));
                }
                for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
                    match (nibble(pair[0]), nibble(pair[1])) {
                        (Some(h), Some(l)) => *o = h << 4 | l,
                        _ => return Err(E::custom("bad digest")),
                    }
                }
                Ok(DigestIn(IdDigest(out)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A `DateTime<Utc>` as chrono's serde reads it. The form vsess writes
/// (`2026-01-02T03:04:05.123456789Z`, 0 to 9 digits of fraction) is parsed here; anything
/// else goes to chrono's own decoder.
struct TimeIn(DateTime<Utc>);

impl<'de> Deserialize<'de> for TimeIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TimeIn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an RFC 3339 time")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TimeIn, E> {
                if let Some(t) = parse_utc(s.as_bytes()) {
                    return Ok(TimeIn(t));
                }
                use serde::de::IntoDeserializer;
                let d: serde::de::value::StrDeserializer<'_, E> = s.into_deserializer();
                DateTime::<Utc>::deserialize(d).map(TimeIn)
            }
        }
        d.deserialize_str(V)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, or None for anything else (left to chrono).
fn parse_utc(b: &[u8]) -> Option<DateTime<Utc>> {
    fn num(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    }
    if b.len() < 20 || b.len() > 30 || b[b.len() - 1] != b'Z' {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let nano = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', frac @ ..] if !frac.is_empty() && frac.len() <= 9 => {
            num(frac)? * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    let second = num(&b[17..19])?;
    if second > 59 {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(num(&b[0..4])? as i32, num(&b[5..7])?, num(&b[8..10])?)?
        .and_hms_nano_opt(num(&b[11..13])?, num(&b[14..16])?, second, nano)
        .map(|t| t.and_utc())
}

/// `Mutation`'s tags. A tag not listed here fails [`Line`], and the line is then decoded as
/// a `Mutation` after all (see [`decode_line`]), so a variant added to `Mutation` is never
/// mistaken for a corrupt line.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    PutSession,
    EndSession,
    Touch,
    PutTicket,
    TakeTicket,
    Message,
    Lock,
    PutEntity,
    PutToken,
    RevokeToken,
}

impl Line {
    fn into_mutation(self) -> Option<Mutation> {
        Some(match self.op {
            Op::PutSession => Mutation::PutSession {
                rec: self.rec?.into_record(),
            },
            Op::EndSession => Mutation::EndSession { key: self.key? },
            Op::Touch => Mutation::Touch {
                key: self.key?,
                at: self.at?.0,
                calls: self.calls?,
            },
            Op::PutTicket => Mutation::PutTicket {
                digest: self.digest?.0,
                ticket: self.ticket?,
            },
            Op::TakeTicket => Mutation::TakeTicket {
                digest: self.digest?.0,
            },
            Op::Message => Mutation::Message { text: self.text? },
            Op::Lock => Mutation::Lock {
                user: self.user?,
                state: self.state?,
            },
            Op::PutEntity => Mutation::PutEntity {
                entity: self.entity?,
            },
            Op::PutToken => Mutation::PutToken {
                digest: self.digest?.0,
                token: self.token?,
            },
            Op::RevokeToken => Mutation::RevokeToken {
                digest: self.digest?.0,
            },
        })
    }
}

/// Decodes one log line: the fast path, then `Mutation`'s own decoder for anything the
/// fast path refuses (so both accept exactly the same lines).
fn decode_line(line: &[u8]) -> Option<Mutation> {
    match serde_json::from_slice::<Line>(line)
        .ok()
        .and_then(Line::into_mutation)
    {
        Some(m) => Some(m),
        None => serde_json::from_slice::<Mutation>(line).ok(),
    }
}

/// How much of the log is read and decoded at a time.
const CHUNK: usize = 4 << 20;

/// A run of whole lines (the last chunk may end in a partial one).
struct Chunk {
    data: Vec<u8>,
    /// The end of the file: its last line may be torn.
    at_eof: bool,
}

/// What one chunk decoded to, in log order.
#[derive(Default)]
struct Decoded {
    muts: Vec<Mutation>,
    corrupt: u64,
    torn_tail: bool,
    unterminated: bool,
}

fn decode_chunk(chunk: &Chunk) -> Decoded {
    let mut out = Decoded {
        muts: Vec::with_capacity(chunk.data.len() / 256),
        ..Decoded::default()
    };
    let data = &chunk.data[..];
    let ends_clean = data.last().is_none_or(|b| *b == b'\n');
    let mut start = 0;
    while start < data.len() {
        // A NUL ends a line too: JSON lines never hold one, and zeros in the log are the
        // preallocated space of pages an OS crash lost before their fsync (see logtail).
        // The record cut short before them is a corrupt line; those after them are kept.
        let end = memchr::memchr2(b'\n', 0, &data[start..]).map_or(data.len(), |i| start + i);
        let line = &data[start..end];
        let last = end == data.len();
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        match decode_line(line) {
            Some(m) => out.muts.push(m),
            None if last && chunk.at_eof && !ends_clean => out.torn_tail = true,
            None => out.corrupt += 1,
        }
    }
    out.unterminated = chunk.at_eof && !ends_clean;
    out
}

/// Reads the log in chunks that end at a line boundary.
struct ChunkReader {
    /// The log up to the end of its data.
    file: io::Take<File>,
    /// How much to read at a time ([`CHUNK`]; smaller in tests).
    size: usize,
    /// The partial line after the last chunk's final newline.
    carry: Vec<u8>,
    eof: bool,
}

impl ChunkReader {
    fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        if self.eof {
            return Ok(None);
        }
        let mut data = std::mem::take(&mut self.carry);
        data.reserve(self.size);
        loop {
            let before = data.len();
            // Fill up to `size` more bytes (a short read is not the end of the file).
            let n = (&mut self.file)
                .take(self.size as u64)
                .read_to_end(&mut data)?;
            if n == 0 {
                self.eof = true;
                return Ok((!data.is_empty()).then_some(Chunk { data, at_eof: true }));
            }
            if let Some(i) = memchr::memrchr(b'\n', &data[before..]) {
                self.carry = data[before + i + 1..].to_vec();
                data.truncate(before + i + 1);
                return Ok(Some(Chunk {
                    data,
                    at_eof: false,
                }));
            }
            // A line longer than a chunk: read on until it ends.
        }
    }
}

/// How many sessions a log of `len` bytes probably holds, from its first chunk: enough to
/// size the maps once instead of growing them while replaying. Exact for a log that fits in
/// one chunk; an estimate (from the share of `put_session` lines) otherwise.
fn estimate_sessions(first: &Chunk, len: u64) -> usize {
    const PUT: &[u8] = br#"{"op":"put_session""#;
    let puts = memchr::memmem::find_iter(&first.data, PUT).count();
    if first.at_eof || first.data.is_empty() {
        return puts;
    }
    let scaled = puts as f64 * (len as f64 / first.data.len() as f64);
    scaled.min(1e9) as usize
}

/// Applies a decoded chunk; returns its mutations, to be dropped elsewhere.
fn merge(state: &mut MemoryState, report: &mut ReplayReport, d: Decoded) -> Vec<Mutation> {
    for m in &d.muts {
        state.apply(m);
    }
    report.lines += d.muts.len() as u64;
    report.corrupt_lines += d.corrupt;
    report.torn_tail |= d.torn_tail;
    report.unterminated |= d.unterminated;
    d.muts
}

/// Replays the log at `path`. Chunks are decoded on every core while this thread applies
/// them in order.
fn replay(path: &Path) -> StoreResult<(MemoryState, ReplayReport)> {
    replay_chunked(path, CHUNK, u64::MAX)
}

/// The state the first `limit` bytes of the log hold.
fn replay_prefix(path: &Path, limit: u64) -> StoreResult<(MemoryState, ReplayReport)> {
    replay_chunked(path, CHUNK, limit)
}

fn replay_chunked(
    path: &Path,
    chunk: usize,
    limit: u64,
) -> StoreResult<(MemoryState, ReplayReport)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok((MemoryState::default(), ReplayReport::default()))
        }
        Err(e) => return Err(io("cannot read", path, e)),
    };
    let len = data_len(&file)
        .map_err(|e| io("cannot read", path, e))?
        .min(limit);
    let mut reader = ChunkReader {
        file: file.take(len),
        size: chunk.max(1),
        carry: Vec::new(),
        eof: false,
    };
    let mut report = ReplayReport {
        data_len: len,
        ..ReplayReport::default()
    };
    let Some(first) = reader
        .next_chunk()
        .map_err(|e| io("cannot read", path, e))?
    else {
        return Ok((MemoryState::default(), report));
    };
    let mut state = MemoryState::with_capacity(estimate_sessions(&first, len));
    if first.at_eof {
        merge(&mut state, &mut report, decode_chunk(&first));
        return Ok((state, report));
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(u64, Chunk)>(workers);
    let job_rx = Mutex::new(job_rx);
    // Applied chunks go back to the decoders to be freed: the applying thread is the one
    // that limits the replay, and freeing a million records is a sixth of its work.
    let (trash_tx, trash_rx) = std::sync::mpsc::channel::<Vec<Mutation>>();
    let trash_rx = Mutex::new(trash_rx);
    let read = std::thread::scope(|s| -> io::Result<()> {
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<(u64, Decoded)>(workers);
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (job_rx, trash_rx) = (&job_rx, &trash_rx);
            s.spawn(move || loop {
                loop {
                    let done = trash_rx
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .try_recv();
                    let Ok(done) = done else { break };
                    drop(done);
                }
                let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((seq, chunk)) = job else { return };
                if done_tx.send((seq, decode_chunk(&chunk))).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let feeder = s.spawn(move || -> io::Result<()> {
            let mut seq = 0;
            let mut next = Some(first);
            while let Some(chunk) = next {
                if job_tx.send((seq, chunk)).is_err() {
                    return Ok(());
                }
                seq += 1;
                next = reader.next_chunk()?;
            }
            Ok(())
        });
        // Apply in log order; chunks decoded ahead wait here.
        let mut ahead = std::collections::BTreeMap::new();
        let mut want = 0u64;
        for (seq, d) in done_rx.iter() {
            ahead.insert(seq, d);
            while let Some(d) = ahead.remove(&want) {
                // Once the decoders are gone, this thread frees what is left.
                let _ = trash_tx.send(merge(&mut state, &mut report, d));
                want += 1;
            }
        }
        feeder
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the log reader thread failed")))
    });
    read.map_err(|e| io("cannot read", path, e))?;
    Ok((state, report))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        self.users.get_current(name)
    }

    /// The same as `get_user`: a change made with `vsess user` is seen at once (see
    /// [`UserFile::get_current`]).
    async fn get_user_fresh(&self, name: &str) -> StoreResult<Option<User>> {
        self.users.get_current(name)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.users.list()
    }

    async fn insert_session(&self, rec: SessionRecord, limit: usize) -> StoreResult<bool> {
        self.mutate(true, |s| match s.insert_session(rec, limit) {
            Some(m) => (true, vec![m]),
            None => (false, vec![]),
        })
        .await
    }

    async fn touch_session(
        &self,
        digest: &IdDigest,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> StoreResult<Option<SessionRecord>> {
        let mut g = self.lock();
        Ok(g.state.touch(digest, now, expiry).map(|(before, m)| {
            // A session called again before the flush replaces its entry, key kept.
            match g.dirty.get_mut(&before.key) {
                Some(slot) => *slot = m,
                None => {
                    g.dirty.insert(before.key.clone(), m);
                }
            }
            before
        }))
    }

    /// The user is read in place (the default copies it through `get_user`).
    async fn touch_session_standing(
        &self,
        digest: &IdDigest,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> StoreResult<Option<(SessionRecord, Option<Standing>)>> {
        let Some(rec) = self.touch_session(digest, now, expiry).await? else {
            return Ok(None);
        };
        let standing = self
            .users
            .with_current(&rec.user_name, |u| u.map(|u| Standing::of(u, &rec)))?;
        Ok(Some((rec, standing)))
    }

    async fn session_by_key(&self, key: &str) -> StoreResult<Option<SessionRecord>> {
        Ok(self.lock().state.session_by_key(key))
    }

    async fn update_session(&self, rec: &SessionRecord) -> StoreResult<bool> {
        self.mutate(true, |s| match s.update_session(rec) {
            Some(m) => (true, vec![m]),
            None => (false, vec![]),
        })
        .await
    }

    async fn remove_session(&self, key: &str) -> StoreResult<Option<SessionRecord>> {
        let ended = self
            .mutate(true, |s| match s.remove_session(key) {
                Some((r, m)) => (Some(r), vec![m]),
                None => (None, vec![]),
            })
            .await?;
        // Only once the end is in the log: if its append fails, the session comes back
        // from the log with its pending activity. (A touch written in between, after the
        // end, is ignored by replay and compaction alike.)
        if let Some(r) = &ended {
            self.lock().dirty.remove(&r.key);
        }
        Ok(ended)
    }

    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        Ok(self.lock().state.sessions())
    }
    async fn sessions_of_user(&self, user: &str, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        Ok(self.lock().state.sessions_of_user(user, limit))
    }

    /// Ends the expired sessions under one lock, through the state's expiry index. The ends
    /// are appended to the log but not fsynced: a session lost to a crash after this was
    /// expired anyway, and replay or the next pass ends it again.
    async fn reap_sessions(
        &self,
        now: DateTime<Utc>,
        idle: Duration,
        lifetime: Option<Duration>,
    ) -> StoreResult<Reaped> {
        self.mutate_inner(false, |g| {
            let reaped = g.state.reap(now, idle, lifetime);
            for (key, _) in &reaped.sessions {
                g.dirty.remove(key);
            }
            let muts = reaped.mutations();
            (reaped, muts)
        })
        .await
    }

    async fn put_ticket(&self, digest: IdDigest, ticket: Ticket) -> StoreResult<()> {
        self.mutate(true, |s| ((), vec![s.put_ticket(digest, ticket)]))
            .await
    }

    async fn take_ticket(&self, digest: &IdDigest) -> StoreResult<Option<Ticket>> {
        self.mutate(true, |s| match s.take_ticket(digest) {
            Some((t, m)) => (Some(t), vec![m]),
            None => (None, vec![]),
        })
        .await
    }

    async fn purge_tickets(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        self.mutate(false, |s| {
            let m = s.purge_tickets(now);
            (m.len(), m)
        })
        .await
    }

    async fn message(&self) -> StoreResult<String> {
        Ok(self.lock().state.message())
    }

    async fn set_message(&self, message: &str) -> StoreResult<()> {
        self.mutate(true, |s| ((), vec![s.set_message(message)]))
            .await
    }

    async fn lock_state(&self, user: &str) -> StoreResult<LockState> {
        Ok(self.lock().state.lock_state(user))
    }

    async fn record_login_failure(
        &self,
        user: &str,
        account: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lock_for: Duration,
    ) -> StoreResult<LockState> {
        self.mutate(false, |s| {
            let (st, m) = s.record_failure(user, account, now, max_failures, lock_for);
            (st, vec![m])
        })
        .await
    }

    async fn clear_login_failures(&self, user: &str) -> StoreResult<()> {
        self.mutate(false, |s| {
            ((), s.clear_failures(user).into_iter().collect())
        })
        .await
    }

    async fn put_token(&self, digest: IdDigest, token: TokenRecord) -> StoreResult<()> {
        self.mutate(true, |s| ((), vec![s.put_token(digest, token)]))
            .await
    }

    async fn get_token(&self, digest: &IdDigest) -> StoreResult<Option<TokenRecord>> {
        Ok(self.lock().state.get_token(digest))
    }

    async fn revoke_token(&self, digest: &IdDigest) -> StoreResult<()> {
        self.mutate(true, |s| ((), s.revoke_token(digest).into_iter().collect()))
            .await
    }

    async fn entity(&self, id: &str) -> StoreResult<Option<Entity>> {
        Ok(self.lock().state.entity(id))
    }

    async fn entities(&self) -> StoreResult<Vec<Entity>> {
        Ok(self.lock().state.entities())
    }

    async fn create_entity(
        &self,
        parent: &str,
        name: &str,
        kind: CreateKind,
    ) -> StoreResult<Result<Entity, CreateError>> {
        self.mutate(true, |s| match s.create_entity(parent, name, kind) {
            Ok((e, m)) => (Ok(e), m),
            Err(e) => (Err(e), vec![]),
        })
        .await
    }
}

/// Migration (`vsess store migrate`).
impl EmbeddedStore {
    /// The whole state but the users, as mutations.
    pub fn export(&self) -> Vec<Mutation> {
        self.lock().state.snapshot()
    }

    /// Applies `muts` as they are and makes them durable.
    pub fn import(&self, muts: Vec<Mutation>) -> StoreResult<()> {
        let (_, pos) = self.apply(|g| {
            for m in &muts {
                g.state.apply(m);
            }
            ((), muts)
        })?;
        match pos {
            Some(pos) => self.syncer.sync_to(pos),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsess_core::{Role, SessionId, TicketKind};

    fn rec(now: DateTime<Utc>) -> (SessionId, SessionRecord) {
        let id = SessionId::generate();
        let r = SessionRecord {
            digest: id.digest(),
            key: SessionKey::generate(),
            user_name: "a@b".into(),
            full_name: "a@b".into(),
            role: Role::Admin,
            login_user: "a@b".into(),
            login_time: now,
            last_active_time: now,
            locale: "en".into(),
            message_locale: "en".into(),
            extension_session: false,
            ip_address: "127.0.0.1".into(),
            user_agent: "t".into(),
            call_count: 0,
            user_id: Default::default(),
        };
        (id, r)
    }

    #[tokio::test]
    async fn state_survives_reopen_without_flush() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (id, r) = rec(now);
        let (_, gone) = rec(now);
        let ticket = IdDigest::of("t");
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            assert!(s.insert_session(r.clone(), 10).await.unwrap());
            assert!(s.insert_session(gone.clone(), 10).await.unwrap());
            s.remove_session(gone.key.as_str()).await.unwrap();
            s.set_message("hi").await.unwrap();
            s.put_ticket(
                ticket,
                Ticket {
                    kind: TicketKind::Clone {
                        session: r.key.clone(),
                    },
                    expires: now,
                },
            )
            .await
            .unwrap();
            // dropped without flush: like a crash after the responses went out
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s
            .touch_session(&id.digest(), now, Expiry::NEVER)
            .await
            .unwrap()
            .is_some());
        assert!(s.session_by_key(gone.key.as_str()).await.unwrap().is_none());
        assert_eq!(s.message().await.unwrap(), "hi");
        assert!(s.take_ticket(&ticket).await.unwrap().is_some());
        assert!(s.take_ticket(&ticket).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_durable_writes_share_fsyncs_and_all_survive() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let keys: Vec<SessionKey> = {
            let s = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
            let mut tasks = Vec::new();
            for _ in 0..200 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    let (_, r) = rec(now);
                    assert!(s.insert_session(r.clone(), 1000).await.unwrap());
                    r.key
                }));
            }
            let mut keys = Vec::new();
            for t in tasks {
                keys.push(t.await.unwrap());
            }
            let st = s.syncer.state();
            assert_eq!(st.synced, 200, "every acknowledged record was fsynced");
            keys
            // dropped without flush, as in a crash after the responses went out
        };
        let s = EmbeddedStore::open(dir.path()).unwrap();
        for k in keys {
            assert!(s.session_by_key(k.as_str()).await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn touches_persist_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (id, r) = rec(now);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(r.clone(), 10).await.unwrap();
            for _ in 0..3 {
                s.touch_session(&id.digest(), now + Duration::seconds(5), Expiry::NEVER)
                    .await
                    .unwrap();
            }
            s.flush().unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let got = s.session_by_key(r.key.as_str()).await.unwrap().unwrap();
        assert_eq!(got.call_count, 3);
        assert_eq!(got.last_active_time, now + Duration::seconds(5));
    }

    #[tokio::test]
    async fn torn_tail_and_corrupt_lines_lose_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, a) = rec(now);
        let (_, b) = rec(now);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(a.clone(), 10).await.unwrap();
        }
        let log = dir.path().join(LOG);
        let mut data = fs::read(&log).unwrap();
        data.extend_from_slice(b"garbage line\n");
        let mut line = serde_json::to_vec(&Mutation::PutSession { rec: b.clone() }).unwrap();
        line.push(b'\n');
        data.extend_from_slice(&line);
        data.extend_from_slice(b"{\"op\":\"put_sess");
        fs::write(&log, &data).unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
        assert!(s.session_by_key(b.key.as_str()).await.unwrap().is_some());
        assert_eq!(corrupt_backups(dir.path()), 1);
    }

    #[tokio::test]
    async fn inventory_survives_reopen_and_ids_keep_counting() {
        use vsess_core::inventory::CreateKind;
        let dir = tempfile::tempdir().unwrap();
        let dc = {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.create_entity("group-d1", "DC1", CreateKind::Datacenter)
                .await
                .unwrap()
                .unwrap()
        };
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let got = s.entity(&dc.id).await.unwrap().unwrap();
        assert_eq!(got.name, "DC1");
        assert_eq!(got.dc_folders.len(), 4);
        for f in &got.dc_folders {
            assert!(s.entity(f).await.unwrap().is_some(), "{f} lost");
        }
        assert!(s
            .create_entity("group-d1", "DC1", CreateKind::Datacenter)
            .await
            .unwrap()
            .is_err());
        let next = s
            .create_entity("group-d1", "DC2", CreateKind::Datacenter)
            .await
            .unwrap()
            .unwrap();
        assert!(
            s.entities()
                .await
                .unwrap()
                .iter()
                .filter(|e| e.id == next.id)
                .count()
                == 1
        );
        assert_ne!(next.id, dc.id);
    }

    #[tokio::test]
    async fn a_clean_log_is_not_rewritten_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(rec(Utc::now()).1, 10).await.unwrap();
        }
        let log = dir.path().join(LOG);
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = ino(&log);
        drop(EmbeddedStore::open(dir.path()).unwrap());
        assert_eq!(
            ino(&log),
            before,
            "no compaction: the file was not replaced"
        );
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _a = EmbeddedStore::open(dir.path()).unwrap();
        let err = EmbeddedStore::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("in use by another vsess process"));
    }

    /// One of each mutation, as operations on a state make them.
    fn every_mutation(now: DateTime<Utc>) -> Vec<Mutation> {
        use vsess_core::TokenRecord;
        let mut st = MemoryState::default();
        let (id, r) = rec(now);
        let mut out = vec![st.insert_session(r.clone(), 10).unwrap()];
        out.push(
            st.touch(&id.digest(), now + Duration::seconds(3), Expiry::NEVER)
                .unwrap()
                .1,
        );
        let t = IdDigest::of("ticket");
        out.push(st.put_ticket(
            t,
            Ticket {
                kind: TicketKind::Clone {
                    session: r.key.clone(),
                },
                expires: now,
            },
        ));
        out.push(st.take_ticket(&t).unwrap().1);
        out.push(st.set_message("maintenance at 5 \"pm\"\n"));
        out.push(
            st.record_failure("u@v", "id", now, 3, Duration::seconds(60))
                .1,
        );
        out.extend(
            st.create_entity("group-d1", "DC1", CreateKind::Datacenter)
                .unwrap()
                .1,
        );
        let tok = IdDigest::of("token");
        out.push(st.put_token(
            tok,
            TokenRecord {
                user: "u@v".into(),
                role: Role::Admin,
                created: now,
                expires: now + Duration::seconds(60),
                user_id: Default::default(),
            },
        ));
        out.push(st.revoke_token(&tok).unwrap());
        out.push(st.remove_session(r.key.as_str()).unwrap().1);
        out
    }

    #[test]
    fn lines_are_written_exactly_as_serde_writes_them() {
        use chrono::TimeZone;
        let base = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut times = vec![Utc::now()];
        for nanos in [
            0,
            1,
            10,
            999,
            1_000,
            120_000,
            999_999,
            1_000_000,
            500_000_000,
            999_999_999,
        ] {
            times.push(base + Duration::nanoseconds(nanos));
        }
        times.push(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap());
        times.push(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap());
        times.push(Utc.with_ymd_and_hms(12345, 1, 1, 0, 0, 0).unwrap());
        times.push(Utc.with_ymd_and_hms(-5, 1, 1, 0, 0, 0).unwrap());
        let mut muts = every_mutation(Utc::now());
        for (i, t) in times.iter().enumerate() {
            let (_, mut r) = rec(*t);
            r.last_active_time = times[(i + 1) % times.len()];
            r.user_agent = "quote \" backslash \\ newline \n tab \t nul \u{0} é 😀".into();
            r.role = [Role::Admin, Role::ReadOnly, Role::NoAccess][i % 3];
            // Every control character, DEL and a slash, in the other string fields.
            let c = char::from(u8::try_from(i % 32).unwrap());
            r.user_name = format!("u{c}\u{7f}/{c}").into();
            r.full_name = format!("{c}").into();
            r.ip_address = format!("\\{c}\"").into();
            r.locale = format!("{}", char::from(u8::try_from(31 - i % 32).unwrap())).into();
            r.call_count = [0, 9, 10, u64::MAX][i % 4];
            r.extension_session = i % 2 == 0;
            muts.push(Mutation::Touch {
                key: r.key.clone(),
                at: *t,
                calls: i as u64,
            });
            muts.push(Mutation::PutSession { rec: r });
        }
        for b in (0u8..=0x20).chain([b'"', b'\\', b'/', 0x7f]) {
            let (_, mut r) = rec(base);
            let c = char::from(b);
            r.message_locale = format!("{c}").into();
            r.login_user = format!("a{c}b").into();
            muts.push(Mutation::EndSession {
                key: SessionKey(format!("k{c}")),
            });
            muts.push(Mutation::PutSession { rec: r });
        }
        for m in &muts {
            let mut want = serde_json::to_vec(m).unwrap();
            want.push(b'\n');
            let mut got = b"prefix".to_vec();
            encode_line(&mut got, m);
            assert_eq!(
                String::from_utf8_lossy(&got[6..]),
                String::from_utf8_lossy(&want)
            );
            assert_eq!(decode_line(&got[6..got.len() - 1]).as_ref(), Some(m));
        }
    }

    #[test]
    fn times_and_digests_are_read_as_serde_reads_them() {
        for t in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.1Z",
            "2026-01-02T03:04:05.123Z",
            "2026-01-02T03:04:05.123456789Z",
            "2026-01-02T03:04:05.1234567891Z",
            "2024-02-29T23:59:59.999Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2026-01-02t03:04:05z",
            "2026-01-02 03:04:05Z",
            "2026-01-02T03:04:05+01:00",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:0xZ",
            "+2026-01-02T03:04:05Z",
            "0000-01-01T00:00:00Z",
            "",
            "Z",
        ] {
            let json = serde_json::to_string(t).unwrap();
            let want = serde_json::from_str::<DateTime<Utc>>(&json).ok();
            let got = serde_json::from_str::<TimeIn>(&json).ok().map(|t| t.0);
            assert_eq!(got, want, "{t}");
        }
        let d = IdDigest::of("x");
        for s in [
            d.to_hex(),
            d.to_hex().to_uppercase(),
            d.to_hex()[1..].to_owned(),
            format!("{}0", d.to_hex()),
            d.to_hex().replace('a', "g"),
            String::new(),
        ] {
            let json = serde_json::to_string(&s).unwrap();
            let want = serde_json::from_str::<IdDigest>(&json).ok();
            let got = serde_json::from_str::<DigestIn>(&json).ok().map(|d| d.0);
            assert_eq!(got, want, "{s}");
        }
    }

    #[test]
    fn the_fast_decoder_reads_every_mutation_as_serde_does() {
        let muts = every_mutation(Utc::now());
        let mut ops = std::collections::HashSet::new();
        for m in muts {
            let line = serde_json::to_vec(&m).unwrap();
            let fast = serde_json::from_slice::<Line>(&line)
                .ok()
                .and_then(Line::into_mutation);
            assert_eq!(
                fast.as_ref(),
                Some(&m),
                "{}",
                String::from_utf8_lossy(&line)
            );
            assert_eq!(decode_line(&line).as_ref(), Some(&m));
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            ops.insert(v["op"].as_str().unwrap().to_owned());
        }
        assert_eq!(ops.len(), 10, "every variant is covered: {ops:?}");
        // Lines the fast path refuses are refused by serde too.
        for bad in [
            &br#"{"op":"put_session"}"#[..],
            br#"{"op":"touch","key":"k","calls":1}"#,
            br#"{"op":"nope"}"#,
            br#"{"op":"message","text":null}"#,
            b"garbage",
        ] {
            assert!(decode_line(bad).is_none());
            assert!(serde_json::from_slice::<Mutation>(bad).is_err());
        }
    }

    /// Sessions written before vsess recorded user ids replay with none, which matches
    /// the accounts of that time (they have none either); a recorded id is kept.
    #[test]
    fn a_session_line_without_a_user_id_replays_with_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG);
        let (_, mut old) = rec(Utc::now());
        let (_, mut new) = rec(Utc::now());
        new.user_id = "0123456789abcdef".into();
        let mut data = Vec::new();
        put_session_line(&mut data, &old);
        let cut = data
            .windows(12)
            .position(|w| w == br#","user_id":""#)
            .unwrap();
        data.truncate(cut);
        data.extend_from_slice(b"}}\n");
        put_session_line(&mut data, &new);
        data.push(b'\n');
        fs::write(&path, &data).unwrap();
        let (st, report) = replay(&path).unwrap();
        assert_eq!(report.corrupt_lines, 0);
        old.user_id = "".into();
        assert_eq!(st.session_by_key(old.key.as_str()), Some(old));
        assert_eq!(st.session_by_key(new.key.as_str()), Some(new));
    }

    /// A log written by an earlier vsess (serde's encoding of `Mutation`, one per line)
    /// replays to the same state, in one chunk and in many (lines cut across chunks, and
    /// lines longer than a chunk), with a corrupt line in the middle and a torn tail.
    #[test]
    fn an_old_log_replays_the_same_in_any_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let path = dir.path().join(LOG);
        let mut data = Vec::new();
        let mut expect = MemoryState::default();
        let mut keep = Vec::new();
        for i in 0..200 {
            let (_, r) = rec(now);
            for m in [
                Mutation::PutSession { rec: r.clone() },
                Mutation::Touch {
                    key: r.key.clone(),
                    at: now + Duration::seconds(i),
                    calls: 2,
                },
            ] {
                data.extend(serde_json::to_vec(&m).unwrap());
                data.push(b'\n');
                expect.apply(&m);
            }
            if i % 3 == 0 {
                let m = Mutation::EndSession { key: r.key.clone() };
                data.extend(serde_json::to_vec(&m).unwrap());
                data.push(b'\n');
                expect.apply(&m);
            } else {
                keep.push(r.key.clone());
            }
            if i == 100 {
                data.extend(b"{\"op\":\"put_session\",\"rec\":{\"oops\n\n");
            }
            if i == 150 {
                // Zeros between whole lines (pages an OS crash lost): nothing is cut.
                data.resize(data.len() + 5000, 0);
            }
        }
        for m in every_mutation(now) {
            data.extend(serde_json::to_vec(&m).unwrap());
            data.push(b'\n');
            expect.apply(&m);
        }
        data.extend(b"{\"op\":\"end_ses");
        let data_len = data.len() as u64;
        // The preallocated space a killed server leaves.
        data.resize(data.len() + 70_000, 0);
        fs::write(&path, &data).unwrap();
        for chunk in [1, 7, 100, 333, 4096, CHUNK] {
            let (st, report) = replay_chunked(&path, chunk, u64::MAX).unwrap();
            assert_eq!(
                report,
                ReplayReport {
                    lines: 200 * 2 + 67 + every_mutation(now).len() as u64,
                    torn_tail: true,
                    corrupt_lines: 1,
                    unterminated: true,
                    data_len,
                },
                "chunk {chunk}"
            );
            assert_eq!(st.session_count(), keep.len());
            assert_eq!(st.snapshot().len(), expect.snapshot().len());
            for k in &keep {
                assert_eq!(
                    st.session_by_key(k.as_str()),
                    expect.session_by_key(k.as_str())
                );
            }
            assert_eq!(st.message(), expect.message());
            assert_eq!(st.lock_state("u@v"), expect.lock_state("u@v"));
            assert_eq!(st.entities(), expect.entities());
        }
    }

    /// A crash that cut the last write just before its newline leaves a whole record
    /// without one: it is kept, and the next append starts on a line of its own.
    #[tokio::test]
    async fn a_last_line_without_its_newline_is_kept_and_ended() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, a) = rec(now);
        let (_, b) = rec(now);
        let line = serde_json::to_vec(&Mutation::PutSession { rec: a.clone() }).unwrap();
        fs::write(dir.path().join(LOG), &line).unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
            s.insert_session(b.clone(), 10).await.unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
        assert!(s.session_by_key(b.key.as_str()).await.unwrap().is_some());
        assert!(!fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("corrupt")));
    }

    /// With `Interval`, a change is in the log file (the page cache, which outlives a
    /// killed server) when the call returns, before any fsync; the background thread
    /// fsyncs it later.
    #[tokio::test]
    async fn interval_durability_writes_before_returning_and_fsyncs_later() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, a) = rec(now);
        let (_, b) = rec(now);
        {
            let s = EmbeddedStore::open_with(
                dir.path(),
                EmbeddedOptions {
                    durability: Durability::Interval(std::time::Duration::from_secs(3600)),
                },
            )
            .unwrap();
            assert!(s.insert_session(a.clone(), 10).await.unwrap());
            assert!(s.insert_session(b.clone(), 10).await.unwrap());
            assert!(s.remove_session(b.key.as_str()).await.unwrap().is_some());
            assert_eq!(s.syncer.state().synced, 0, "nothing waited for an fsync");
            // What a server killed now leaves behind:
            let (st, report) = replay(&dir.path().join(LOG)).unwrap();
            assert_eq!(report.lines, 3);
            assert!(st.session_by_key(a.key.as_str()).is_some());
            assert!(st.session_by_key(b.key.as_str()).is_none());
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
        assert!(s.session_by_key(b.key.as_str()).await.unwrap().is_none());
    }

    fn corrupt_backups(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("corrupt")
            })
            .count()
    }

    /// A killed server leaves its log preallocated: the records, then zeros. They replay
    /// without a complaint and the next appends go right after the records.
    #[tokio::test]
    async fn a_killed_server_leaves_zeros_that_replay_skips() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(LOG);
        let now = Utc::now();
        let [(_, a), (_, b), (_, c)] = [rec(now), rec(now), rec(now)];
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(a.clone(), 10).await.unwrap();
            s.insert_session(b.clone(), 10).await.unwrap();
            s.remove_session(b.key.as_str()).await.unwrap();
            s.lock().log.keep_tail_on_drop();
        }
        let raw = fs::read(&log).unwrap();
        assert_eq!(raw.len() as u64, crate::logtail::GROW, "left preallocated");
        let data = raw.iter().rposition(|b| *b != 0).unwrap() + 1;
        assert_eq!(raw[..data].iter().filter(|b| **b == b'\n').count(), 3);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
            assert!(s.session_by_key(b.key.as_str()).await.unwrap().is_none());
            assert_eq!(
                s.lock().log.len(),
                data as u64,
                "appends resume after the data"
            );
            s.insert_session(c.clone(), 10).await.unwrap();
            s.lock().log.keep_tail_on_drop();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
        assert!(s.session_by_key(c.key.as_str()).await.unwrap().is_some());
        assert_eq!(corrupt_backups(dir.path()), 0);
        // A clean close cuts the file back to its records.
        s.close().unwrap();
        let raw = fs::read(&log).unwrap();
        assert!(!raw.is_empty() && raw.ends_with(b"\n") && !raw.contains(&0));
    }

    /// An OS crash can lose pages of the preallocated log that were never fsynced while
    /// later ones survive: a run of zeros inside the log. The record it cut is a corrupt
    /// line (kept in the backup); the records on either side are kept.
    #[tokio::test]
    async fn a_zero_gap_from_an_os_crash_keeps_the_records_around_it() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let [(_, a), (_, b), (_, c)] = [rec(now), rec(now), rec(now)];
        let line = |r: &SessionRecord| {
            let mut l = serde_json::to_vec(&Mutation::PutSession { rec: r.clone() }).unwrap();
            l.push(b'\n');
            l
        };
        let mut data = line(&a);
        data.extend_from_slice(&line(&b)[..40]);
        data.resize(data.len() + 4096, 0);
        data.extend_from_slice(&line(&c));
        data.resize(data.len() + 10_000, 0);
        fs::write(dir.path().join(LOG), &data).unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
        assert!(s.session_by_key(b.key.as_str()).await.unwrap().is_none());
        assert!(s.session_by_key(c.key.as_str()).await.unwrap().is_some());
        assert_eq!(corrupt_backups(dir.path()), 1);
        // Rewritten without the gap.
        assert!(!fs::read(dir.path().join(LOG)).unwrap().contains(&0));
    }

    /// On a file system without `fallocate` every append is a plain write, and the store
    /// behaves the same.
    #[tokio::test]
    async fn without_preallocation_the_store_still_survives_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let [(_, a), (_, b)] = [rec(now), rec(now)];
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.lock().log.force_plain();
            s.insert_session(a.clone(), 10).await.unwrap();
            s.insert_session(b.clone(), 10).await.unwrap();
            s.remove_session(a.key.as_str()).await.unwrap();
            s.lock().log.keep_tail_on_drop();
        }
        assert!(!fs::read(dir.path().join(LOG)).unwrap().contains(&0));
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_none());
        assert!(s.session_by_key(b.key.as_str()).await.unwrap().is_some());
    }

    /// A failed append (a full disk) leaves nothing in effect that the caller was told
    /// failed, in memory or in the file, refuses changes until the log takes writes, and
    /// then carries on.
    #[tokio::test]
    async fn a_failed_append_leaves_nothing_in_effect_and_the_store_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let [(_, a), (_, b), (_, c)] = [rec(now), rec(now), rec(now)];
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(a.clone(), 10).await.unwrap();
            s.touch_session(&a.digest, now + Duration::seconds(5), Expiry::NEVER)
                .await
                .unwrap()
                .unwrap();
            let before = s.lock().log.len();
            // Half of B's line reaches the file before the disk fills.
            s.lock().log.fail_writes(Some(40));
            // Unavailable (503, retry), as every change refused after it.
            let e = s.insert_session(b.clone(), 10).await.unwrap_err();
            assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
            assert!(s.session_by_key(b.key.as_str()).await.unwrap().is_none());
            assert_eq!(s.list_sessions().await.unwrap().len(), 1);
            // The touch not yet written survived the reload.
            let a_now = s.session_by_key(a.key.as_str()).await.unwrap().unwrap();
            assert_eq!(a_now.last_active_time, now + Duration::seconds(5));
            // The part of B's line that was written is zeros again.
            let file = File::open(dir.path().join(LOG)).unwrap();
            assert_eq!(data_len(&file).unwrap(), before);
            // While the disk is full, changes are refused without taking effect.
            let e = s.remove_session(a.key.as_str()).await.unwrap_err();
            assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
            assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
            // A Logout whose append fails leaves the session with its pending activity.
            s.lock().log.fail_writes(None);
            s.health().unwrap();
            s.touch_session(&a.digest, now + Duration::seconds(7), Expiry::NEVER)
                .await
                .unwrap()
                .unwrap();
            s.lock().log.fail_writes(Some(0));
            assert!(s.remove_session(a.key.as_str()).await.is_err());
            let a_now = s.session_by_key(a.key.as_str()).await.unwrap().unwrap();
            assert_eq!(a_now.last_active_time, now + Duration::seconds(7));
            // And the health check (`/healthz`) says so.
            assert!(matches!(s.health(), Err(StoreError::Unavailable(_))));
            // Space again: health and changes go through.
            s.lock().log.fail_writes(None);
            s.health().unwrap();
            assert!(s.remove_session(a.key.as_str()).await.unwrap().is_some());
            assert!(s.insert_session(c.clone(), 10).await.unwrap());
            s.flush().unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_none());
        assert!(s.session_by_key(b.key.as_str()).await.unwrap().is_none());
        assert!(s.session_by_key(c.key.as_str()).await.unwrap().is_some());
        assert_eq!(corrupt_backups(dir.path()), 0);
    }

    /// A store in `dir` holding one session (returned), closed, with `tail` appended to
    /// its log as a crash or a bad edit would leave it.
    async fn one_session_then(dir: &Path, tail: &[u8]) -> SessionRecord {
        let (_, a) = rec(Utc::now());
        let s = EmbeddedStore::open(dir).unwrap();
        s.insert_session(a.clone(), 10).await.unwrap();
        s.close().unwrap();
        let mut f = OpenOptions::new().append(true).open(dir.join(LOG)).unwrap();
        f.write_all(tail).unwrap();
        a
    }

    thread_local! {
        /// Makes the backup of a log with corrupt lines fail, as a full disk does.
        pub(super) static FAIL_BACKUP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A log with corrupt lines that cannot be backed up is not rewritten; a torn tail in
    /// it still gets its newline, so the next record is not glued to the torn bytes.
    #[tokio::test]
    async fn without_a_backup_a_torn_tail_still_ends_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let a = one_session_then(dir.path(), b"not a record\n{\"op\":\"put_sess").await;
        let (_, b) = rec(Utc::now());
        let log = dir.path().join(LOG);
        FAIL_BACKUP.with(|f| f.set(true));
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            FAIL_BACKUP.with(|f| f.set(false));
            assert!(s.insert_session(b.clone(), 10).await.unwrap());
            s.close().unwrap();
        }
        assert!(
            fs::read_to_string(&log).unwrap().contains("not a record"),
            "not rewritten without a backup"
        );
        let s = EmbeddedStore::open(dir.path()).unwrap();
        for r in [&a, &b] {
            assert!(s.session_by_key(r.key.as_str()).await.unwrap().is_some());
        }
    }

    /// A start whose log wants a rewrite (here: a crash's torn tail) serves from the log
    /// as it is when the rewrite cannot be written (a full disk), and loses nothing.
    #[tokio::test]
    async fn a_start_that_cannot_rewrite_its_log_serves_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = one_session_then(dir.path(), b"{\"op\":\"put_sess").await;
        let (_, b) = rec(Utc::now());
        // The rewrite's temporary file cannot be created.
        fs::create_dir(dir.path().join(format!("{LOG}.tmp"))).unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
            assert!(s.insert_session(b.clone(), 10).await.unwrap());
            s.close().unwrap();
        }
        fs::remove_dir(dir.path().join(format!("{LOG}.tmp"))).unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        for r in [&a, &b] {
            assert!(s.session_by_key(r.key.as_str()).await.unwrap().is_some());
        }
        // The torn bytes were one corrupt line; this start rewrote the log without it.
        assert_eq!(corrupt_backups(dir.path()), 1);
    }

    /// A call on a session that has already expired is not recorded: until it is ended
    /// (which fails while the log refuses writes), it keeps looking expired, and is not
    /// made live again by the calls that find it expired.
    #[tokio::test]
    async fn a_touch_does_not_revive_an_expired_session() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, a) = rec(now);
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.insert_session(a.clone(), 10).await.unwrap();
        let expiry = Expiry {
            idle: Duration::minutes(30),
            lifetime: None,
        };
        let late = now + Duration::minutes(31);
        for _ in 0..2 {
            let before = s.touch_session(&a.digest, late, expiry).await.unwrap();
            assert!(before.unwrap().expired_by(late, expiry), "still expired");
        }
        let stored = s.session_by_key(a.key.as_str()).await.unwrap().unwrap();
        assert_eq!(stored.last_active_time, a.last_active_time);
        assert_eq!(stored.call_count, 0);
        // A live session is touched.
        let soon = now + Duration::minutes(29);
        let (_, b) = rec(now);
        s.insert_session(b.clone(), 10).await.unwrap();
        s.touch_session(&b.digest, soon, expiry)
            .await
            .unwrap()
            .unwrap();
        let stored = s.session_by_key(b.key.as_str()).await.unwrap().unwrap();
        assert_eq!(stored.last_active_time, soon);
    }

    /// A failed fsync is final: Linux may have dropped the pages it could not write and
    /// reports that once, so a later fsync that succeeds would vouch for records that are
    /// not on disk. Changes are refused, and /healthz fails, until a restart.
    #[tokio::test]
    async fn a_failed_fsync_refuses_changes_until_a_restart() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, a) = rec(now);
        let (_, b) = rec(now);
        let (_, c) = rec(now);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(a.clone(), 10).await.unwrap();
            s.syncer.fail_sync.store(true, Ordering::SeqCst);
            let e = s.insert_session(b.clone(), 10).await.unwrap_err();
            assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
            s.syncer.fail_sync.store(false, Ordering::SeqCst);
            let e = s.insert_session(c.clone(), 10).await.unwrap_err();
            assert!(e.to_string().contains("restarts"), "{e}");
            assert!(s.health().is_err());
            assert!(s.flush().is_err());
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.health().is_ok());
        assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
        assert!(s.session_by_key(c.key.as_str()).await.unwrap().is_none());
        assert!(s.insert_session(c.clone(), 10).await.unwrap());
    }

    /// A compaction whose directory sync failed has not made its rename durable: the
    /// next change retries the sync first, and is refused while it fails.
    #[tokio::test]
    async fn a_compaction_whose_directory_sync_failed_is_synced_before_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, a) = rec(now);
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.compact().unwrap();
        // As if `sync_dir` had failed after the rename.
        s.lock().dir_unsynced = true;
        // The directory cannot be opened to be synced while it is elsewhere.
        let moved = dir.path().with_extension("moved");
        fs::rename(dir.path(), &moved).unwrap();
        let e = s.insert_session(a.clone(), 10).await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
        assert!(s.health().is_err());
        fs::rename(&moved, dir.path()).unwrap();
        assert!(s.insert_session(a.clone(), 10).await.unwrap());
        assert!(!s.lock().dir_unsynced);
    }

    /// A log of many tokens and few sessions is not compacted again at every flush: it
    /// is as small as its snapshot already.
    #[tokio::test]
    async fn a_state_of_many_tokens_is_not_compacted_at_every_flush() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open_with(
            dir.path(),
            EmbeddedOptions {
                durability: Durability::Interval(std::time::Duration::from_secs(3600)),
            },
        )
        .unwrap();
        let now = Utc::now();
        for i in 0..100_001u32 {
            let token = TokenRecord {
                user: "u@v".into(),
                role: Role::Admin,
                created: now,
                expires: now + Duration::hours(1),
                user_id: String::new(),
            };
            s.put_token(IdDigest::of(&i.to_string()), token)
                .await
                .unwrap();
        }
        let inode = || fs::metadata(dir.path().join(LOG)).unwrap().ino();
        let before = inode();
        for _ in 0..2 {
            s.flush().unwrap();
            assert_eq!(inode(), before, "the log was rewritten");
        }
    }

    /// A compaction that replaced the file but could not open the new one appends
    /// nothing to the replaced file (gone from the directory: a restart would lose it);
    /// changes are refused until the new one opens.
    #[tokio::test]
    async fn nothing_is_appended_to_a_log_a_compaction_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, a) = rec(now);
        let (_, b) = rec(now);
        let (_, c) = rec(now);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(a.clone(), 10).await.unwrap();
            s.lock().fail_switch = true;
            assert!(s.compact().is_err());
            let e = s.insert_session(b.clone(), 10).await.unwrap_err();
            assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
            s.touch_session(&a.digest, now + Duration::seconds(3), Expiry::NEVER)
                .await
                .unwrap()
                .unwrap();
            assert!(s.flush().is_err(), "the touch waits");
            assert!(s.health().is_err());
            s.lock().fail_switch = false;
            assert!(s.insert_session(c.clone(), 10).await.unwrap());
            s.close().unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let a = s.session_by_key(a.key.as_str()).await.unwrap().unwrap();
        assert_eq!(a.last_active_time, now + Duration::seconds(3));
        assert!(s.session_by_key(b.key.as_str()).await.unwrap().is_none());
        assert!(s.session_by_key(c.key.as_str()).await.unwrap().is_some());
    }

    /// A migration's source is read as it is: a damaged log is neither backed up nor
    /// rewritten.
    #[tokio::test]
    async fn a_source_is_read_without_tidying_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let a = one_session_then(dir.path(), b"not a record\n{\"op\":\"put_sess").await;
        let log = dir.path().join(LOG);
        let before = fs::read(&log).unwrap();
        {
            let s = EmbeddedStore::open_as_source(dir.path()).unwrap();
            assert!(s.session_by_key(a.key.as_str()).await.unwrap().is_some());
        }
        assert_eq!(fs::read(&log).unwrap(), before);
        assert_eq!(corrupt_backups(dir.path()), 0);
    }

    /// Touches a failed flush could not write are written by the next one.
    #[tokio::test]
    async fn touches_a_failed_flush_could_not_write_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, a) = rec(now);
        let later = now + Duration::seconds(7);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(a.clone(), 10).await.unwrap();
            s.touch_session(&a.digest, later, Expiry::NEVER)
                .await
                .unwrap()
                .unwrap();
            s.lock().log.fail_writes(Some(0));
            assert!(s.flush().is_err());
            s.lock().log.fail_writes(None);
            s.flush().unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let a = s.session_by_key(a.key.as_str()).await.unwrap().unwrap();
        assert_eq!((a.last_active_time, a.call_count), (later, 1));
    }

    /// A compaction that fails keeps the touches not yet written, and the log it was to
    /// replace.
    #[tokio::test]
    async fn a_failed_compaction_loses_no_touch() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, a) = rec(now);
        let later = now + Duration::seconds(9);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(a.clone(), 10).await.unwrap();
            s.touch_session(&a.digest, later, Expiry::NEVER)
                .await
                .unwrap()
                .unwrap();
            // The snapshot cannot be created: its name is taken by a directory.
            let tmp = dir.path().join(format!("{LOG}.tmp"));
            fs::create_dir(&tmp).unwrap();
            assert!(s.compact().is_err());
            fs::remove_dir(&tmp).unwrap();
            s.flush().unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let a = s.session_by_key(a.key.as_str()).await.unwrap().unwrap();
        assert_eq!((a.last_active_time, a.call_count), (later, 1));
    }

    #[tokio::test]
    async fn interval_durability_fsyncs_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open_with(
            dir.path(),
            EmbeddedOptions {
                durability: Durability::Interval(std::time::Duration::from_millis(10)),
            },
        )
        .unwrap();
        s.insert_session(rec(Utc::now()).1, 10).await.unwrap();
        // Polls (no timing is asserted): the background thread catches up.
        for _ in 0..6000 {
            if s.syncer.state().synced >= 1 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the background fsync never ran");
    }

    #[tokio::test]
    async fn reaping_ends_expired_sessions_durably() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (_, old) = rec(now - Duration::hours(2));
        let (id, fresh) = rec(now);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.insert_session(old.clone(), 10).await.unwrap();
            s.insert_session(fresh.clone(), 10).await.unwrap();
            s.touch_session(&id.digest(), now, Expiry::NEVER)
                .await
                .unwrap();
            let reaped = s
                .reap_sessions(now, Duration::minutes(30), None)
                .await
                .unwrap();
            assert_eq!(reaped.count, 1);
            assert_eq!(reaped.sessions, [(old.key.clone(), old.user_name.clone())]);
            assert!(s.session_by_key(old.key.as_str()).await.unwrap().is_none());
            s.flush().unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert!(s.session_by_key(old.key.as_str()).await.unwrap().is_none());
        assert!(s
            .session_by_key(fresh.key.as_str())
            .await
            .unwrap()
            .is_some());
    }

    /// Each user's `sessions_of_user`: the filtered `list_sessions`, in its order, and
    /// exactly the keys wanted.
    async fn check_users(s: &EmbeddedStore, want: &[(&str, Vec<&SessionKey>)]) {
        let all = s.list_sessions().await.unwrap();
        for (u, keys) in want {
            let got = s.sessions_of_user(u, usize::MAX).await.unwrap();
            let filtered: Vec<SessionRecord> = all
                .iter()
                .filter(|r| &*r.user_name == *u)
                .cloned()
                .collect();
            assert_eq!(got, filtered, "{u}");
            let mut got: Vec<SessionKey> = got.into_iter().map(|r| r.key).collect();
            got.sort();
            let mut keys: Vec<SessionKey> = keys.iter().map(|k| (*k).clone()).collect();
            keys.sort();
            assert_eq!(got, keys, "{u}");
        }
    }

    /// The per-user index after inserts, an impersonation, an end and a reap, and again
    /// after the log is replayed on reopen and after it is compacted.
    #[tokio::test]
    async fn sessions_of_user_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let of = |u: &str, old: bool| {
            let (_, mut r) = rec(if old { now - Duration::hours(2) } else { now });
            (r.user_name, r.login_user) = (u.into(), u.into());
            r
        };
        let (a1, a2, a3) = (of("a@x", false), of("a@x", false), of("a@x", true));
        let (b1, b2) = (of("b@x", false), of("b@x", false));
        let c1 = of("c@x", false);
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            for r in [&a1, &a2, &a3, &b1, &b2] {
                assert!(s.insert_session(r.clone(), 10).await.unwrap());
            }
            // b1 impersonates a@x; a2 ends; a3 has been idle for two hours.
            let mut imp = b1.clone();
            imp.user_name = "a@x".into();
            assert!(s.update_session(&imp).await.unwrap());
            s.remove_session(a2.key.as_str()).await.unwrap();
            let n = s
                .reap_sessions(now, Duration::minutes(30), None)
                .await
                .unwrap()
                .count;
            assert_eq!(n, 1);
            // A new session takes a slot that an ended one left.
            assert!(s.insert_session(c1.clone(), 10).await.unwrap());
            let want = [
                ("a@x", vec![&a1.key, &b1.key]),
                ("b@x", vec![&b2.key]),
                ("c@x", vec![&c1.key]),
                ("d@x", vec![]),
            ];
            check_users(&s, &want).await;
            // dropped without flush
        }
        let want = [
            ("a@x", vec![&a1.key, &b1.key]),
            ("b@x", vec![&b2.key]),
            ("c@x", vec![&c1.key]),
            ("d@x", vec![]),
        ];
        let s = EmbeddedStore::open(dir.path()).unwrap();
        check_users(&s, &want).await;
        s.compact().unwrap();
        check_users(&s, &want).await;
        drop(s);
        let s = EmbeddedStore::open(dir.path()).unwrap();
        check_users(&s, &want).await;
        // After the replay the index still follows changes.
        let mut back = b1.clone();
        back.user_name = "b@x".into();
        assert!(s.update_session(&back).await.unwrap());
        check_users(
            &s,
            &[("a@x", vec![&a1.key]), ("b@x", vec![&b1.key, &b2.key])],
        )
        .await;
    }

    /// For profiling the store's share of a Login and a Logout (not a test):
    /// `cargo test --release -p vsess-store --lib -- --ignored login_logout_loop`, under
    /// `valgrind --tool=callgrind` for instruction counts.
    #[test]
    #[ignore]
    fn login_logout_loop() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let durability = match std::env::var("DURABILITY").as_deref() {
            Ok("always") => Durability::Always,
            _ => Durability::Interval(std::time::Duration::from_secs(1)),
        };
        let s = EmbeddedStore::open_with(dir.path(), EmbeddedOptions { durability }).unwrap();
        let now = Utc::now();
        let n: usize = std::env::var("PAIRS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let t = std::time::Instant::now();
        rt.block_on(async {
            for _ in 0..n {
                let (_, r) = rec(now);
                let key = r.key.clone();
                assert!(s.insert_session(r, 100).await.unwrap());
                assert!(s.remove_session(key.as_str()).await.unwrap().is_some());
            }
        });
        println!(
            "{n} pairs, {:.2} us per pair",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }

    #[tokio::test]
    async fn limit_is_checked_inside_the_insert() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let now = Utc::now();
        assert!(s.insert_session(rec(now).1, 1).await.unwrap());
        assert!(!s.insert_session(rec(now).1, 1).await.unwrap());
        assert_eq!(s.list_sessions().await.unwrap().len(), 1);
    }
}
