//! The durable embedded store: in-memory state plus an append-only log.
//!
//! Layout in the data directory:
//! - `vsess.lock`: held exclusively by the one server that owns the directory.
//! - `sessions.log`: one JSON [`Mutation`] per line. On open the log is replayed; a torn
//!   last line (a crash mid-write) is dropped, a corrupt line elsewhere is skipped and the
//!   original log is kept as `sessions.log.corrupt-<unix time>`. The log is then compacted.
//!
//! Durability: a new session, an ended session, a ticket and the service message are
//! fsynced before the call returns, so a client that saw its Login response keeps its
//! session through `kill -9`. Touches (`lastActiveTime`, `callCount`) stay in memory and
//! are written by [`EmbeddedStore::flush`] (every few seconds, and at shutdown): after a
//! crash a session may look up to one flush interval less recently active than it was.
use crate::fsutil::{ensure_private_dir, sync_dir};
use crate::users::UserFile;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vsess_core::inventory::{CreateError, CreateKind, Entity};
use vsess_core::{
    IdDigest, LockState, MemoryState, Mutation, SessionKey, SessionRecord, Store, StoreError,
    StoreResult, Ticket, TokenRecord, User,
};

const LOG: &str = "sessions.log";
const DIR_LOCK: &str = "vsess.lock";

struct Inner {
    state: MemoryState,
    log: File,
    /// Touches not yet written, by session.
    dirty: HashMap<SessionKey, Mutation>,
    /// Lines in the log, to decide when to compact.
    lines: u64,
}

pub struct EmbeddedStore {
    dir: PathBuf,
    users: UserFile,
    inner: Mutex<Inner>,
    syncer: Arc<Syncer>,
    _dir_lock: File,
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
}

#[derive(Default)]
struct SyncState {
    synced: u64,
    busy: bool,
}

impl Syncer {
    fn state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until every record up to `pos` is on disk.
    fn sync_to(&self, pos: u64) -> StoreResult<()> {
        let mut st = self.state();
        loop {
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
        let r = file.sync_data();
        let mut st = self.state();
        st.busy = false;
        if r.is_ok() {
            st.synced = st.synced.max(target);
        }
        self.done.notify_all();
        r.map_err(|e| io("cannot sync", &self.path, e))
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
}

fn io(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

fn open_log(path: &Path) -> StoreResult<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("cannot open", path, e))
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir` and takes the directory lock.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        ensure_private_dir(dir).map_err(|e| io("cannot use data directory", dir, e))?;
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
                "the data directory {} is in use by another vsess server; stop it or choose another --data-dir",
                dir.display()
            )));
        }
        let users = UserFile::open(dir)?;
        let log_path = dir.join(LOG);
        let mut state = MemoryState::default();
        let report = replay(&log_path, &mut state)?;
        if report.corrupt_lines > 0 {
            let keep = dir.join(format!("{LOG}.corrupt-{}", Utc::now().timestamp()));
            fs::copy(&log_path, &keep).map_err(|e| io("cannot back up", &log_path, e))?;
            tracing::warn!(
                corrupt_lines = report.corrupt_lines,
                backup = %keep.display(),
                "the session log had corrupt lines; they were skipped and the original was kept"
            );
        }
        if report.torn_tail {
            tracing::warn!(
                "the session log ended in a torn write (a crash mid-append); it was dropped"
            );
        }
        let log = open_log(&log_path)?;
        let syncer = Arc::new(Syncer {
            file: Mutex::new(Arc::new(
                log.try_clone()
                    .map_err(|e| io("cannot open", &log_path, e))?,
            )),
            written: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(SyncState::default()),
            done: std::sync::Condvar::new(),
            path: log_path.clone(),
        });
        let store = Self {
            dir: dir.to_owned(),
            users,
            inner: Mutex::new(Inner {
                state,
                log,
                dirty: HashMap::new(),
                lines: report.lines,
            }),
            syncer,
            _dir_lock: dir_lock,
        };
        // Rewrite the log only when it is damaged or mostly dead records: with a million
        // live sessions a needless rewrite would double the time to serving.
        let live = store.lock().state.snapshot_len();
        if report.torn_tail || report.corrupt_lines > 0 || report.lines > 2 * live as u64 + 1000 {
            store.compact()?;
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

    /// Runs `op` on the state and appends the mutations it returns; returns the log
    /// position to wait for when they must be durable.
    fn apply<T>(
        &self,
        op: impl FnOnce(&mut MemoryState) -> (T, Vec<Mutation>),
    ) -> StoreResult<(T, Option<u64>)> {
        let mut g = self.lock();
        let (out, muts) = op(&mut g.state);
        if muts.is_empty() {
            return Ok((out, None));
        }
        append(&mut g, &muts).map_err(|e| io("cannot append to", &self.dir.join(LOG), e))?;
        let pos = self
            .syncer
            .written
            .fetch_add(muts.len() as u64, std::sync::atomic::Ordering::SeqCst)
            + muts.len() as u64;
        Ok((out, Some(pos)))
    }

    /// Runs `op`; when `durable`, waits (off the async workers) for the fsync that
    /// covers its records; concurrent callers share fsyncs (group commit).
    async fn mutate<T>(
        &self,
        durable: bool,
        op: impl FnOnce(&mut MemoryState) -> (T, Vec<Mutation>),
    ) -> StoreResult<T> {
        let (out, pos) = self.apply(op)?;
        if let (true, Some(pos)) = (durable, pos) {
            let syncer = self.syncer.clone();
            tokio::task::spawn_blocking(move || syncer.sync_to(pos))
                .await
                .map_err(|e| StoreError::Io(format!("the log sync task failed: {e}")))??;
        }
        Ok(out)
    }

    /// Writes pending touches and fsyncs; compacts the log when it has grown.
    pub fn flush(&self) -> StoreResult<()> {
        let compact = {
            let mut g = self.lock();
            if !g.dirty.is_empty() {
                let muts: Vec<Mutation> = g.dirty.drain().map(|(_, m)| m).collect();
                append(&mut g, &muts)
                    .map_err(|e| io("cannot append to", &self.dir.join(LOG), e))?;
                self.syncer
                    .written
                    .fetch_add(muts.len() as u64, std::sync::atomic::Ordering::SeqCst);
            }
            g.lines > 100_000 && g.lines > 4 * g.state.session_count() as u64
        };
        self.syncer.sync_to(self.syncer.written())?;
        if compact {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the log as a snapshot of the current state (atomically).
    pub fn compact(&self) -> StoreResult<()> {
        let mut g = self.lock();
        let pending: Vec<Mutation> = g.dirty.drain().map(|(_, m)| m).collect();
        for m in &pending {
            g.state.apply(m);
        }
        let snapshot = g.state.snapshot();
        let path = self.dir.join(LOG);
        let tmp = self.dir.join(format!("{LOG}.tmp"));
        {
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
        }
        fs::rename(&tmp, &path).map_err(|e| io("cannot replace", &path, e))?;
        sync_dir(&self.dir).map_err(|e| io("cannot sync", &self.dir, e))?;
        g.log = open_log(&path)?;
        g.lines = snapshot.len() as u64;
        let sync = g.log.try_clone().map_err(|e| io("cannot open", &path, e))?;
        *self.syncer.file.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(sync);
        // Everything appended so far is in the fsynced snapshot.
        let written = self.syncer.written();
        let mut st = self.syncer.state();
        st.synced = st.synced.max(written);
        Ok(())
    }
}

fn encode_line(buf: &mut Vec<u8>, m: &Mutation) {
    // Serialising our own types cannot fail; an error would leave the line out.
    if serde_json::to_writer(&mut *buf, m).is_ok() {
        buf.push(b'\n');
    }
}

fn append(g: &mut Inner, muts: &[Mutation]) -> io::Result<()> {
    if muts.is_empty() {
        return Ok(());
    }
    let mut buf = Vec::with_capacity(256 * muts.len());
    for m in muts {
        encode_line(&mut buf, m);
    }
    g.log.write_all(&buf)?;
    g.lines += muts.len() as u64;
    Ok(())
}

/// Replays `path` into `state`.
pub fn replay(path: &Path, state: &mut MemoryState) -> StoreResult<ReplayReport> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ReplayReport::default()),
        Err(e) => return Err(io("cannot read", path, e)),
    };
    let mut report = ReplayReport::default();
    let ends_clean = data.last().is_none_or(|b| *b == b'\n');
    let mut lines = data.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Mutation>(line) {
            Ok(m) => {
                state.apply(&m);
                report.lines += 1;
            }
            Err(_) if last && !ends_clean => report.torn_tail = true,
            Err(_) => report.corrupt_lines += 1,
        }
    }
    Ok(report)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        self.users.get(name)
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
    ) -> StoreResult<Option<SessionRecord>> {
        let mut g = self.lock();
        Ok(g.state.touch(digest, now).map(|(before, m)| {
            g.dirty.insert(before.key.clone(), m);
            before
        }))
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
        self.mutate(true, |s| match s.remove_session(key) {
            Some((r, m)) => (Some(r), vec![m]),
            None => (None, vec![]),
        })
        .await
        .inspect(|r| {
            if let Some(r) = r {
                self.lock().dirty.remove(&r.key);
            }
        })
    }

    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        Ok(self.lock().state.sessions())
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
        now: DateTime<Utc>,
        max_failures: u32,
        lock_for: Duration,
    ) -> StoreResult<LockState> {
        self.mutate(false, |s| {
            let (st, m) = s.record_failure(user, now, max_failures, lock_for);
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
        let (_, pos) = self.apply(|s| {
            for m in &muts {
                s.apply(m);
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
        assert!(s.touch_session(&id.digest(), now).await.unwrap().is_some());
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
                s.touch_session(&id.digest(), now + Duration::seconds(5))
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
        let backups = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("corrupt")
            })
            .count();
        assert_eq!(backups, 1);
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
        assert!(err.to_string().contains("in use by another vsess server"));
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
