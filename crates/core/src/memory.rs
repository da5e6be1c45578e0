//! The in-memory state every store builds on, as a log of [`Mutation`]s.
//!
//! [`MemoryState`] decides each operation (the session limit, one-time tickets, lockout)
//! and returns the mutation it applied. [`MemoryStore`] is that state behind a lock; the
//! durable embedded store in `vsess-store` also appends each mutation to its log and
//! replays the log on start.
use crate::ids::{IdDigest, SessionKey};
use crate::inventory::{CreateError, CreateKind, Entity, EntityKind, FolderType, ROOT_FOLDER};
use crate::selfservice::TokenRecord;
use crate::session::{Expiry, SessionRecord};
use crate::store::{LockState, Reaped, Store, StoreResult};
use crate::ticket::{Ticket, TicketKind};
use crate::user::User;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sessions::Sessions;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

mod sessions;

/// One change to the state. The embedded store's log is a sequence of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mutation {
    PutSession {
        rec: SessionRecord,
    },
    EndSession {
        key: SessionKey,
    },
    Touch {
        key: SessionKey,
        at: DateTime<Utc>,
        calls: u64,
    },
    PutTicket {
        digest: IdDigest,
        ticket: Ticket,
    },
    TakeTicket {
        digest: IdDigest,
    },
    Message {
        text: String,
    },
    Lock {
        user: String,
        state: LockState,
    },
    PutEntity {
        entity: Entity,
    },
    PutToken {
        digest: IdDigest,
        token: TokenRecord,
    },
    RevokeToken {
        digest: IdDigest,
    },
}

/// What each live session costs inside [`MemoryState`], in bytes, before hash-table slack,
/// B-tree nodes and the profiles (names, locales, address, agent) that a user's sessions
/// share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSizes {
    /// Its slot in the slab.
    pub slot: usize,
    /// Its entries in the digest and key tables and in the two expiry indexes.
    pub index: usize,
}

#[derive(Debug, Default)]
pub struct MemoryState {
    /// Live sessions, compact (see [`sessions`]).
    sessions: Sessions,
    tickets: HashMap<IdDigest, Ticket>,
    message: String,
    locks: HashMap<String, LockState>,
    entities: BTreeMap<String, Entity>,
    tokens: HashMap<IdDigest, TokenRecord>,
    /// The next number for an inventory id (`datacenter-N`, `group-vN`, …).
    next_entity: u64,
    /// Only used by [`MemoryStore`]; the embedded store keeps users in their own file.
    pub users: BTreeMap<String, User>,
}

impl Reaped {
    /// The `EndSession` mutation of each session that ended.
    pub fn mutations(&self) -> Vec<Mutation> {
        self.sessions
            .iter()
            .map(|(key, _)| Mutation::EndSession { key: key.clone() })
            .collect()
    }
}

impl MemoryState {
    /// An empty state with room for `sessions` sessions, so that replaying a large log
    /// does not grow (and leave slack behind) as it goes.
    pub fn with_capacity(sessions: usize) -> Self {
        Self {
            sessions: Sessions::with_capacity(sessions),
            ..Self::default()
        }
    }

    /// Fixed per-session sizes, for reading RSS figures.
    pub fn session_sizes() -> SessionSizes {
        SessionSizes {
            slot: sessions::SLOT_BYTES,
            index: sessions::INDEX_BYTES,
        }
    }

    /// Ends every session expired at `now` (exactly as [`SessionRecord::expired`] decides);
    /// returns their keys and users. Each is an `EndSession` mutation ([`Reaped::mutations`]).
    pub fn reap(
        &mut self,
        now: DateTime<Utc>,
        idle: Duration,
        lifetime: Option<Duration>,
    ) -> Reaped {
        let dead = self.sessions.reap(now, idle, lifetime);
        if !dead.is_empty() && !self.tickets.is_empty() {
            // As `EndSession` does for each, in one pass.
            let ended: HashSet<&SessionKey> = dead.iter().map(|(k, _)| k).collect();
            self.tickets.retain(|_, t| match &t.kind {
                TicketKind::Clone { session } | TicketKind::Service { session, .. } => {
                    !ended.contains(session)
                }
                TicketKind::Local { .. } => true,
            });
        }
        Reaped {
            count: dead.len(),
            sessions: dead,
        }
    }

    /// Applies a mutation (from an operation or from a log being replayed).
    pub fn apply(&mut self, m: &Mutation) {
        match m {
            Mutation::PutSession { rec } => self.sessions.put(rec),
            Mutation::EndSession { key } => {
                self.sessions.remove(key.as_str());
                self.tickets.retain(|_, t| !t.belongs_to(key));
            }
            Mutation::Touch { key, at, calls } => {
                self.sessions.touch_key(key.as_str(), *at, *calls);
            }
            Mutation::PutTicket { digest, ticket } => {
                self.tickets.insert(*digest, ticket.clone());
            }
            Mutation::TakeTicket { digest } => {
                self.tickets.remove(digest);
            }
            Mutation::Message { text } => self.message.clone_from(text),
            Mutation::PutToken { digest, token } => {
                self.tokens.insert(*digest, token.clone());
            }
            Mutation::RevokeToken { digest } => {
                self.tokens.remove(digest);
            }
            Mutation::PutEntity { entity } => {
                let n = entity
                    .id
                    .rsplit(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse::<u64>().ok())
                    .unwrap_or(0);
                self.next_entity = self.next_entity.max(n + 1);
                self.entities.insert(entity.id.clone(), entity.clone());
            }
            Mutation::Lock { user, state } => {
                if *state == LockState::default() {
                    self.locks.remove(user);
                } else {
                    self.locks.insert(user.clone(), state.clone());
                }
            }
        }
    }

    fn applied(&mut self, m: Mutation) -> Mutation {
        self.apply(&m);
        m
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Inserts unless `limit` sessions exist.
    pub fn insert_session(&mut self, rec: SessionRecord, limit: usize) -> Option<Mutation> {
        (self.sessions.len() < limit).then(|| self.applied(Mutation::PutSession { rec }))
    }

    /// Records a call; returns the record as it was before, and the touch to persist lazily.
    /// Records a call on a live session (see [`Store::touch_session`]).
    pub fn touch(
        &mut self,
        digest: &IdDigest,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> Option<(SessionRecord, Mutation)> {
        let (before, key, at, calls) = self.sessions.touch(digest, now, expiry)?;
        Some((before, Mutation::Touch { key, at, calls }))
    }

    pub fn session_by_key(&self, key: &str) -> Option<SessionRecord> {
        self.sessions.get(key)
    }

    pub fn update_session(&mut self, rec: &SessionRecord) -> Option<Mutation> {
        let (last_active, calls, digest) = self.sessions.activity(rec.key.as_str())?;
        let mut rec = rec.clone();
        // Never move activity backwards: the stored record may have newer touches.
        rec.last_active_time = rec.last_active_time.max(last_active);
        rec.call_count = rec.call_count.max(calls);
        rec.digest = digest;
        Some(self.applied(Mutation::PutSession { rec }))
    }

    pub fn remove_session(&mut self, key: &str) -> Option<(SessionRecord, Mutation)> {
        let rec = self.session_by_key(key)?;
        let m = self.applied(Mutation::EndSession {
            key: rec.key.clone(),
        });
        Some((rec, m))
    }

    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.sessions.records().collect()
    }

    /// The sessions whose `user_name` is `user`, from the per-user index: exactly what
    /// filtering [`MemoryState::sessions`] gives, in the same order, at a cost that grows
    /// with that user's sessions rather than with all of them.
    pub fn sessions_of_user(&self, user: &str, limit: usize) -> Vec<SessionRecord> {
        self.sessions.of_user(user, limit)
    }

    pub fn put_ticket(&mut self, digest: IdDigest, ticket: Ticket) -> Mutation {
        self.applied(Mutation::PutTicket { digest, ticket })
    }

    pub fn take_ticket(&mut self, digest: &IdDigest) -> Option<(Ticket, Mutation)> {
        let t = self.tickets.get(digest)?.clone();
        Some((t, self.applied(Mutation::TakeTicket { digest: *digest })))
    }

    pub fn purge_tickets(&mut self, now: DateTime<Utc>) -> Vec<Mutation> {
        let dead: Vec<IdDigest> = self
            .tickets
            .iter()
            .filter(|(_, t)| t.expires <= now)
            .map(|(d, _)| *d)
            .collect();
        let dead_tokens: Vec<IdDigest> = self
            .tokens
            .iter()
            .filter(|(_, t)| t.expires <= now)
            .map(|(d, _)| *d)
            .collect();
        let mut out: Vec<Mutation> = dead
            .into_iter()
            .map(|digest| self.applied(Mutation::TakeTicket { digest }))
            .collect();
        out.extend(
            dead_tokens
                .into_iter()
                .map(|digest| self.applied(Mutation::RevokeToken { digest })),
        );
        out
    }

    pub fn put_token(&mut self, digest: IdDigest, token: TokenRecord) -> Mutation {
        self.applied(Mutation::PutToken { digest, token })
    }

    pub fn get_token(&self, digest: &IdDigest) -> Option<TokenRecord> {
        self.tokens.get(digest).cloned()
    }

    pub fn revoke_token(&mut self, digest: &IdDigest) -> Option<Mutation> {
        self.tokens
            .contains_key(digest)
            .then(|| self.applied(Mutation::RevokeToken { digest: *digest }))
    }

    pub fn message(&self) -> String {
        self.message.clone()
    }

    pub fn set_message(&mut self, text: &str) -> Mutation {
        self.applied(Mutation::Message {
            text: text.to_owned(),
        })
    }

    pub fn lock_state(&self, user: &str) -> LockState {
        self.locks.get(user).cloned().unwrap_or_default()
    }

    pub fn record_failure(
        &mut self,
        user: &str,
        account: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lock_for: Duration,
    ) -> (LockState, Mutation) {
        let mut s = self.lock_state(user).for_account(account);
        if s.locked_until.is_some_and(|t| now >= t) {
            s = LockState::default();
        }
        s.account = account.to_owned();
        s.failures += 1;
        if s.failures >= max_failures {
            s.failures = 0;
            s.locked_until = Some(now + lock_for);
        }
        let m = self.applied(Mutation::Lock {
            user: user.to_owned(),
            state: s.clone(),
        });
        (s, m)
    }

    pub fn clear_failures(&mut self, user: &str) -> Option<Mutation> {
        self.locks.contains_key(user).then(|| {
            self.applied(Mutation::Lock {
                user: user.to_owned(),
                state: LockState::default(),
            })
        })
    }

    /// An inventory entity; the root folder always exists.
    pub fn entity(&self, id: &str) -> Option<Entity> {
        match self.entities.get(id) {
            Some(e) => Some(e.clone()),
            None if id == ROOT_FOLDER => Some(Entity::root()),
            None => None,
        }
    }

    /// Every inventory entity, the root folder first, then in creation order.
    pub fn entities(&self) -> Vec<Entity> {
        let mut out: Vec<Entity> = self.entities.values().cloned().collect();
        if !self.entities.contains_key(ROOT_FOLDER) {
            out.push(Entity::root());
        }
        out.sort_by_key(|e| entity_order(&e.id));
        out
    }

    /// Creates a datacenter (with its four folders) or a folder under `parent`.
    pub fn create_entity(
        &mut self,
        parent: &str,
        name: &str,
        kind: CreateKind,
    ) -> Result<(Entity, Vec<Mutation>), CreateError> {
        let p = self.entity(parent).ok_or(CreateError::NoParent)?;
        let parent_type = match (p.kind, p.folder_type) {
            (EntityKind::Folder, Some(t)) => t,
            _ => return Err(CreateError::NotAllowed),
        };
        if kind == CreateKind::Datacenter && parent_type != FolderType::Datacenter {
            return Err(CreateError::NotAllowed);
        }
        if self
            .entities
            .values()
            .any(|e| e.parent.as_deref() == Some(parent) && e.name == name)
        {
            return Err(CreateError::Duplicate);
        }
        let mut n = self.next_entity.max(2);
        let mut next = |prefix: &str| {
            let id = format!("{prefix}{n}");
            n += 1;
            id
        };
        let mut created = Vec::new();
        let main = match kind {
            CreateKind::Folder => Entity {
                id: next(folder_prefix(parent_type)),
                kind: EntityKind::Folder,
                name: name.to_owned(),
                parent: Some(parent.to_owned()),
                folder_type: Some(parent_type),
                dc_folders: Vec::new(),
                tags: Vec::new(),
            },
            CreateKind::Datacenter => {
                let dc_id = next("datacenter-");
                let subs = [
                    ("vm", FolderType::VirtualMachine),
                    ("host", FolderType::Host),
                    ("datastore", FolderType::Datastore),
                    ("network", FolderType::Network),
                ];
                let mut ids = Vec::new();
                for (sub_name, t) in subs {
                    let id = next(folder_prefix(t));
                    ids.push(id.clone());
                    created.push(Entity {
                        id,
                        kind: EntityKind::Folder,
                        name: sub_name.to_owned(),
                        parent: Some(dc_id.clone()),
                        folder_type: Some(t),
                        dc_folders: Vec::new(),
                        tags: Vec::new(),
                    });
                }
                Entity {
                    id: dc_id,
                    kind: EntityKind::Datacenter,
                    name: name.to_owned(),
                    parent: Some(parent.to_owned()),
                    folder_type: None,
                    dc_folders: ids,
                    tags: Vec::new(),
                }
            }
        };
        // The datacenter goes first, so that a replayed log never holds orphans.
        let mut muts = vec![self.applied(Mutation::PutEntity {
            entity: main.clone(),
        })];
        for e in created {
            muts.push(self.applied(Mutation::PutEntity { entity: e }));
        }
        Ok((main, muts))
    }

    /// How many records [`MemoryState::snapshot`] would write.
    pub fn snapshot_len(&self) -> usize {
        self.entities.len()
            + self.sessions.len()
            + self.tickets.len()
            + usize::from(!self.message.is_empty())
            + self.tokens.len()
            + self.locks.len()
    }

    /// The whole state as mutations, for compacting a log.
    pub fn snapshot(&self) -> Vec<Mutation> {
        let mut out: Vec<Mutation> = self
            .entities()
            .into_iter()
            .filter(|e| self.entities.contains_key(&e.id))
            .map(|entity| Mutation::PutEntity { entity })
            .collect();
        out.extend(
            self.sessions
                .records()
                .map(|rec| Mutation::PutSession { rec }),
        );
        out.extend(self.tickets.iter().map(|(d, t)| Mutation::PutTicket {
            digest: *d,
            ticket: t.clone(),
        }));
        if !self.message.is_empty() {
            out.push(Mutation::Message {
                text: self.message.clone(),
            });
        }
        out.extend(self.tokens.iter().map(|(d, t)| Mutation::PutToken {
            digest: *d,
            token: t.clone(),
        }));
        out.extend(self.locks.iter().map(|(u, s)| Mutation::Lock {
            user: u.clone(),
            state: s.clone(),
        }));
        out
    }
}

fn folder_prefix(t: FolderType) -> &'static str {
    match t {
        FolderType::Datacenter => "group-d",
        FolderType::VirtualMachine => "group-v",
        FolderType::Host => "group-h",
        FolderType::Datastore => "group-s",
        FolderType::Network => "group-n",
    }
}

/// Orders ids by their number, so that listings follow creation order.
fn entity_order(id: &str) -> (u64, String) {
    let n = id
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    (n, id.to_owned())
}

/// A non-durable store: the state behind a mutex. For tests and `--dev` experiments.
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<MemoryState>);

impl MemoryStore {
    pub fn new(users: impl IntoIterator<Item = User>) -> Self {
        let mut s = MemoryState::default();
        for u in users {
            s.users.insert(u.name.as_str().to_owned(), u);
        }
        Self(Mutex::new(s))
    }

    /// Adds or replaces a user (the embedded store's users live in their own file).
    pub fn put_user(&self, user: User) {
        self.with(|s| s.users.insert(user.name.as_str().to_owned(), user));
    }

    /// Removes a user.
    pub fn remove_user(&self, name: &str) {
        self.with(|s| s.users.remove(name));
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        Ok(self.with(|s| s.users.get(name).cloned()))
    }
    async fn list_users(&self) -> StoreResult<Vec<User>> {
        Ok(self.with(|s| s.users.values().cloned().collect()))
    }
    async fn insert_session(&self, rec: SessionRecord, limit: usize) -> StoreResult<bool> {
        Ok(self.with(|s| s.insert_session(rec, limit).is_some()))
    }
    async fn touch_session(
        &self,
        d: &IdDigest,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> StoreResult<Option<SessionRecord>> {
        Ok(self.with(|s| s.touch(d, now, expiry).map(|(r, _)| r)))
    }
    async fn session_by_key(&self, key: &str) -> StoreResult<Option<SessionRecord>> {
        Ok(self.with(|s| s.session_by_key(key)))
    }
    async fn update_session(&self, rec: &SessionRecord) -> StoreResult<bool> {
        Ok(self.with(|s| s.update_session(rec).is_some()))
    }
    async fn remove_session(&self, key: &str) -> StoreResult<Option<SessionRecord>> {
        Ok(self.with(|s| s.remove_session(key).map(|(r, _)| r)))
    }
    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        Ok(self.with(|s| s.sessions()))
    }
    async fn sessions_of_user(&self, user: &str, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        Ok(self.with(|s| s.sessions_of_user(user, limit)))
    }
    async fn reap_sessions(
        &self,
        now: DateTime<Utc>,
        idle: Duration,
        lifetime: Option<Duration>,
    ) -> StoreResult<Reaped> {
        Ok(self.with(|s| s.reap(now, idle, lifetime)))
    }
    async fn put_ticket(&self, d: IdDigest, t: Ticket) -> StoreResult<()> {
        self.with(|s| s.put_ticket(d, t));
        Ok(())
    }
    async fn take_ticket(&self, d: &IdDigest) -> StoreResult<Option<Ticket>> {
        Ok(self.with(|s| s.take_ticket(d).map(|(t, _)| t)))
    }
    async fn purge_tickets(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        Ok(self.with(|s| s.purge_tickets(now).len()))
    }
    async fn message(&self) -> StoreResult<String> {
        Ok(self.with(|s| s.message()))
    }
    async fn set_message(&self, m: &str) -> StoreResult<()> {
        self.with(|s| s.set_message(m));
        Ok(())
    }
    async fn lock_state(&self, user: &str) -> StoreResult<LockState> {
        Ok(self.with(|s| s.lock_state(user)))
    }
    async fn record_login_failure(
        &self,
        user: &str,
        account: &str,
        now: DateTime<Utc>,
        max: u32,
        lock_for: Duration,
    ) -> StoreResult<LockState> {
        Ok(self.with(|s| s.record_failure(user, account, now, max, lock_for).0))
    }
    async fn clear_login_failures(&self, user: &str) -> StoreResult<()> {
        self.with(|s| s.clear_failures(user));
        Ok(())
    }
    async fn put_token(&self, d: IdDigest, t: TokenRecord) -> StoreResult<()> {
        self.with(|s| s.put_token(d, t));
        Ok(())
    }
    async fn get_token(&self, d: &IdDigest) -> StoreResult<Option<TokenRecord>> {
        Ok(self.with(|s| s.get_token(d)))
    }
    async fn revoke_token(&self, d: &IdDigest) -> StoreResult<()> {
        self.with(|s| s.revoke_token(d));
        Ok(())
    }
    async fn entity(&self, id: &str) -> StoreResult<Option<Entity>> {
        Ok(self.with(|s| s.entity(id)))
    }
    async fn entities(&self) -> StoreResult<Vec<Entity>> {
        Ok(self.with(|s| s.entities()))
    }
    async fn create_entity(
        &self,
        parent: &str,
        name: &str,
        kind: CreateKind,
    ) -> StoreResult<Result<Entity, CreateError>> {
        Ok(self.with(|s| s.create_entity(parent, name, kind).map(|(e, _)| e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::CreateKind;

    #[test]
    fn snapshot_len_counts_what_snapshot_writes() {
        let mut s = MemoryState::default();
        assert_eq!(s.snapshot_len(), s.snapshot().len());
        s.set_message("m");
        s.create_entity("group-d1", "DC", CreateKind::Datacenter)
            .unwrap();
        s.record_failure("u", "id", Utc::now(), 5, Duration::seconds(1));
        assert_eq!(s.snapshot_len(), s.snapshot().len());
        assert_eq!(s.snapshot_len(), 1 + 5 + 1);
    }

    fn rec(at: DateTime<Utc>) -> SessionRecord {
        let id = crate::SessionId::generate();
        SessionRecord {
            digest: id.digest(),
            key: SessionKey::generate(),
            user_name: "u".into(),
            full_name: "U".into(),
            role: crate::Role::Admin,
            login_user: "u".into(),
            login_time: at,
            last_active_time: at,
            locale: "en".into(),
            message_locale: "en".into(),
            extension_session: false,
            ip_address: "::1".into(),
            user_agent: "ua".into(),
            call_count: 0,
            user_id: Default::default(),
        }
    }

    #[test]
    fn reap_ends_what_expired_and_its_mutations_replay() {
        let t0 = Utc::now();
        let mut s = MemoryState::with_capacity(8);
        let mut log = Vec::new();
        let (old, young) = (rec(t0), rec(t0 + Duration::seconds(20)));
        log.push(s.insert_session(old.clone(), 10).unwrap());
        log.push(s.insert_session(young.clone(), 10).unwrap());
        let ticket = Ticket {
            kind: TicketKind::Clone {
                session: old.key.clone(),
            },
            expires: t0 + Duration::days(1),
        };
        log.push(s.put_ticket(IdDigest::of("t"), ticket));
        // A touch keeps `old` alive past its first deadline.
        log.push(
            s.touch(&old.digest, t0 + Duration::seconds(15), Expiry::NEVER)
                .unwrap()
                .1,
        );
        let idle = Duration::seconds(30);
        assert_eq!(s.reap(t0 + Duration::seconds(40), idle, None).count, 0);
        let ended = s.reap(t0 + Duration::seconds(45), idle, None);
        assert_eq!(
            ended.sessions,
            vec![(old.key.clone(), old.user_name.clone())]
        );
        assert_eq!(
            ended.mutations(),
            vec![Mutation::EndSession {
                key: old.key.clone()
            }]
        );
        assert!(s.take_ticket(&IdDigest::of("t")).is_none());
        log.extend(ended.mutations());
        let mut replayed = MemoryState::default();
        for m in &log {
            replayed.apply(m);
        }
        assert_eq!(replayed.sessions(), s.sessions());
        assert_eq!(s.session_count(), 1);
        assert_eq!(
            s.session_by_key(young.key.as_str()).map(|r| r.login_time),
            Some(young.login_time)
        );
        let lifetime = Some(Duration::seconds(25));
        assert_eq!(
            s.reap(t0 + Duration::seconds(45), Duration::days(1), lifetime)
                .count,
            1
        );
        assert_eq!(s.session_count(), 0);
    }

    /// `sessions_of_user` against filtering `sessions()`, for every user and one unknown.
    fn assert_user_index(s: &MemoryState, users: &[&str], what: &str) {
        for u in users.iter().chain(&["nobody@x"]) {
            let want: Vec<SessionRecord> = s
                .sessions()
                .into_iter()
                .filter(|r| &*r.user_name == *u)
                .collect();
            assert_eq!(s.sessions_of_user(u, usize::MAX), want, "{what}: user {u}");
        }
    }

    /// Random operations through `MemoryState`'s own interface (inserts under a limit,
    /// touches, updates that change the user as ImpersonateUser does, ends, reaps), then the
    /// log they made replayed into a fresh state, and a snapshot of it replayed again: the
    /// per-user index agrees with a walk over every session at each step and after each
    /// replay.
    #[test]
    fn sessions_of_user_matches_a_filtered_list_under_random_operations() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let users = ["a@x", "b@x", "c@x", "d@x"];
        for seed in 0..30 {
            let mut rng = StdRng::seed_from_u64(seed);
            let t0 = Utc::now();
            let mut now = t0;
            let mut s = MemoryState::default();
            let mut log: Vec<Mutation> = Vec::new();
            for step in 0..300 {
                now += Duration::milliseconds(rng.gen_range(0..900));
                let live = s.sessions();
                let pick = |rng: &mut StdRng| {
                    (!live.is_empty()).then(|| live[rng.gen_range(0..live.len())].clone())
                };
                match rng.gen_range(0..10) {
                    0..=3 => {
                        let mut r = rec(now);
                        let u = users[rng.gen_range(0..users.len())];
                        (r.user_name, r.login_user) = (u.into(), u.into());
                        r.user_agent = format!("ua{}", rng.gen_range(0..3)).into();
                        log.extend(s.insert_session(r, 40));
                    }
                    4 => {
                        if let Some(r) = pick(&mut rng) {
                            log.extend(s.touch(&r.digest, now, Expiry::NEVER).map(|(_, m)| m));
                        }
                    }
                    5 | 6 => {
                        // ImpersonateUser: the session takes on another user's identity.
                        if let Some(mut r) = pick(&mut rng) {
                            r.user_name = users[rng.gen_range(0..users.len())].into();
                            r.full_name = format!("{} (full)", r.user_name).into();
                            log.extend(s.update_session(&r));
                        }
                    }
                    7 => {
                        if let Some(r) = pick(&mut rng) {
                            log.extend(s.remove_session(r.key.as_str()).map(|(_, m)| m));
                        }
                    }
                    _ => {
                        let idle = Duration::seconds(rng.gen_range(5..40));
                        log.extend(s.reap(now, idle, None).mutations());
                    }
                }
                assert_user_index(&s, &users, &format!("seed {seed} step {step}"));
            }
            let mut replayed = MemoryState::default();
            for m in &log {
                replayed.apply(m);
            }
            assert_eq!(replayed.sessions(), s.sessions(), "seed {seed}");
            assert_user_index(&replayed, &users, &format!("seed {seed} replayed"));
            let mut compacted = MemoryState::with_capacity(replayed.session_count());
            for m in &replayed.snapshot() {
                compacted.apply(m);
            }
            assert_user_index(&compacted, &users, &format!("seed {seed} compacted"));
        }
    }

    #[tokio::test]
    async fn memory_store_lists_one_users_sessions_after_impersonation() {
        let t0 = Utc::now();
        let store = MemoryStore::default();
        let (a, mut b) = (rec(t0), rec(t0));
        b.user_name = "v".into();
        assert!(store.insert_session(a.clone(), 10).await.unwrap());
        assert!(store.insert_session(b.clone(), 10).await.unwrap());
        let keys = |v: Vec<SessionRecord>| v.into_iter().map(|r| r.key).collect::<Vec<_>>();
        assert_eq!(
            keys(store.sessions_of_user("u", usize::MAX).await.unwrap()),
            std::slice::from_ref(&a.key)
        );
        b.user_name = "u".into();
        assert!(store.update_session(&b).await.unwrap());
        assert_eq!(
            keys(store.sessions_of_user("u", usize::MAX).await.unwrap()),
            [a.key.clone(), b.key.clone()]
        );
        assert!(store
            .sessions_of_user("v", usize::MAX)
            .await
            .unwrap()
            .is_empty());
        store.remove_session(a.key.as_str()).await.unwrap();
        // The next session reuses `a`'s slot; it is `w`'s, not `u`'s.
        let mut c = rec(t0);
        c.user_name = "w".into();
        assert!(store.insert_session(c.clone(), 10).await.unwrap());
        assert_eq!(
            keys(store.sessions_of_user("u", usize::MAX).await.unwrap()),
            [b.key]
        );
        assert_eq!(
            keys(store.sessions_of_user("w", usize::MAX).await.unwrap()),
            [c.key]
        );
    }

    #[tokio::test]
    async fn memory_store_reaps_through_the_index() {
        let t0 = Utc::now();
        let store = MemoryStore::default();
        for i in 0..10 {
            let r = rec(t0 + Duration::seconds(i));
            assert!(store.insert_session(r, 100).await.unwrap());
        }
        let n = store
            .reap_sessions(t0 + Duration::seconds(34), Duration::seconds(30), None)
            .await
            .unwrap()
            .count;
        assert_eq!(n, 5);
        assert_eq!(store.list_sessions().await.unwrap().len(), 5);
    }
}
