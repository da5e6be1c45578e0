//! The persistence boundary. Implementations live in `vsess-store`.
use crate::ids::{IdDigest, SessionKey};
use crate::inventory::{CreateError, CreateKind, Entity};
use crate::privilege::Role;
use crate::selfservice::TokenRecord;
use crate::session::{Expiry, SessionRecord};
use crate::ticket::Ticket;
use crate::user::User;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What every authenticated call needs of its session's user, read without copying the
/// user: its role now, and whether the account is the one the session was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub role: Role,
    /// The account's id is the session's: false once the user was removed and an account
    /// of the same name added since.
    pub same_account: bool,
}

impl Standing {
    pub fn of(user: &User, rec: &SessionRecord) -> Self {
        Standing {
            role: user.role,
            same_account: *user.id == *rec.user_id,
        }
    }
}

/// What [`Store::reap_sessions`] ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// How many sessions ended.
    pub count: usize,
    /// Their keys and (effective) users, where the store still knew them: all of them,
    /// except on Redis, whose session records expire by their TTL before the sweep.
    pub sessions: Vec<(SessionKey, Arc<str>)>,
}

/// Consecutive login failures of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockState {
    pub failures: u32,
    pub locked_until: Option<DateTime<Utc>>,
    /// The [`User::lock_key`] the failures were counted against. A state recorded for
    /// another key (the account was removed and added again, or `vsess user unlock`ed)
    /// counts as no failures at all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
}

impl LockState {
    pub fn locked_at(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }

    /// This state as it applies to the account whose lock key is `account`: itself if it
    /// was counted against that key, no failures otherwise.
    pub fn for_account(self, account: &str) -> Self {
        if self.account == account {
            self
        } else {
            Self::default()
        }
    }
}

/// Everything vsess keeps. Every method is atomic on its own; the invariants that span
/// replicas (the session count, one-time tickets) are enforced inside one call.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // users
    /// A user, for checking a session's role on each call: a store may answer from a cache
    /// that lags an edit briefly (the embedded store: an edit of `users.json` made other
    /// than through `vsess user`, up to half a second).
    async fn get_user(&self, name: &str) -> StoreResult<Option<User>>;
    /// A user as a login must see it: every change made through the store's own interface
    /// (the embedded store: `vsess user`) is seen.
    async fn get_user_fresh(&self, name: &str) -> StoreResult<Option<User>> {
        self.get_user(name).await
    }
    async fn list_users(&self) -> StoreResult<Vec<User>>;

    // sessions
    /// Inserts a session unless `limit` live sessions exist; returns whether it did.
    /// The record is durable, to the store's configured degree (the embedded store: written,
    /// fsynced per `[store] fsync`; Redis: acknowledged), when this returns `Ok(true)`.
    async fn insert_session(&self, rec: SessionRecord, limit: usize) -> StoreResult<bool>;
    /// Looks a session up by the digest of its id and records one call at `now`
    /// (`lastActiveTime`, `callCount`). Returns the record as it was *before* this call.
    /// A session already expired under `expiry` is returned but not touched: the caller
    /// ends it, and if that fails (a store refusing writes), it must still look expired.
    async fn touch_session(
        &self,
        digest: &IdDigest,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> StoreResult<Option<SessionRecord>>;
    /// [`Store::touch_session`], and the [`Standing`] of the session's user (`None` when
    /// no user has its name): a user change made through the store's own interface and
    /// completed before this call began is seen, on every replica. A store may answer from
    /// a cache it can validate (the Redis store checks its cache against a generation read
    /// in the same round trip as the session).
    async fn touch_session_standing(
        &self,
        digest: &IdDigest,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> StoreResult<Option<(SessionRecord, Option<Standing>)>> {
        let Some(rec) = self.touch_session(digest, now, expiry).await? else {
            return Ok(None);
        };
        let user = self.get_user(&rec.user_name).await?;
        let standing = user.as_ref().map(|u| Standing::of(u, &rec));
        Ok(Some((rec, standing)))
    }
    async fn session_by_key(&self, key: &str) -> StoreResult<Option<SessionRecord>>;
    /// Replaces a session's record (locale, identity). Returns false if it has ended.
    async fn update_session(&self, rec: &SessionRecord) -> StoreResult<bool>;
    /// Ends a session; returns it if it was live.
    async fn remove_session(&self, key: &str) -> StoreResult<Option<SessionRecord>>;
    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>>;
    /// Ends every session expired at `now` (idle for `idle`, or older than `lifetime`);
    /// returns which ended. This default walks [`Store::list_sessions`]; a store with an
    /// expiry index (or with expiry of its own, like Redis TTLs) overrides it.
    async fn reap_sessions(
        &self,
        now: DateTime<Utc>,
        idle: Duration,
        lifetime: Option<Duration>,
    ) -> StoreResult<Reaped> {
        let mut reaped = Reaped::default();
        for rec in self.list_sessions().await? {
            if rec.expired(now, idle, lifetime) {
                if let Some(rec) = self.remove_session(rec.key.as_str()).await? {
                    reaped.count += 1;
                    reaped.sessions.push((rec.key, rec.user_name));
                }
            }
        }
        Ok(reaped)
    }
    /// The first `limit` sessions whose effective user (`user_name`, which ImpersonateUser
    /// changes) is exactly `user`, expired ones included, in a fixed order (this default
    /// and the embedded store: [`Store::list_sessions`]'s; Redis: oldest login first).
    /// This default filters `list_sessions`; a store with a per-user index overrides it,
    /// so that one user's sessions cost what that user has (or `limit`), not what everyone
    /// has.
    async fn sessions_of_user(&self, user: &str, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        let mut all = self.list_sessions().await?;
        all.retain(|r| *r.user_name == *user);
        all.truncate(limit);
        Ok(all)
    }

    // one-time tickets
    async fn put_ticket(&self, digest: IdDigest, ticket: Ticket) -> StoreResult<()>;
    /// Removes and returns a ticket; a ticket is returned to at most one caller.
    async fn take_ticket(&self, digest: &IdDigest) -> StoreResult<Option<Ticket>>;
    /// Drops expired tickets and API tokens; returns how many.
    async fn purge_tickets(&self, now: DateTime<Utc>) -> StoreResult<usize>;

    // self-service API tokens (dropped by `purge_tickets` once expired)
    async fn put_token(&self, digest: IdDigest, token: TokenRecord) -> StoreResult<()>;
    async fn get_token(&self, digest: &IdDigest) -> StoreResult<Option<TokenRecord>>;
    async fn revoke_token(&self, digest: &IdDigest) -> StoreResult<()>;

    // service message
    async fn message(&self) -> StoreResult<String>;
    async fn set_message(&self, message: &str) -> StoreResult<()>;

    // login lockout
    async fn lock_state(&self, user: &str) -> StoreResult<LockState>;
    /// Counts one failure against the account whose [`User::lock_key`] is `account`
    /// (starting again from zero if the stored count was another key's); locks the user for
    /// `lock_for` when `max_failures` is reached.
    async fn record_login_failure(
        &self,
        user: &str,
        account: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lock_for: Duration,
    ) -> StoreResult<LockState>;
    async fn clear_login_failures(&self, user: &str) -> StoreResult<()>;

    // inventory
    /// An entity by id; the root folder always exists.
    async fn entity(&self, id: &str) -> StoreResult<Option<Entity>>;
    async fn entities(&self) -> StoreResult<Vec<Entity>>;
    /// Creates a datacenter or folder named `name` under the folder `parent`; refuses a
    /// duplicate sibling name atomically.
    async fn create_entity(
        &self,
        parent: &str,
        name: &str,
        kind: CreateKind,
    ) -> StoreResult<Result<Entity, CreateError>>;
}
