//! `vim.UserSession` and the record a store keeps for each live session.
use crate::ids::{IdDigest, SessionKey};
use crate::privilege::Role;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The public view of a session, as `vim.UserSession`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSession {
    pub key: String,
    pub user_name: String,
    pub full_name: String,
    pub login_time: DateTime<Utc>,
    pub last_active_time: DateTime<Utc>,
    pub locale: String,
    pub message_locale: String,
    pub extension_session: bool,
    pub ip_address: String,
    pub user_agent: String,
    pub call_count: u64,
}

/// What a store keeps per session. The secret id is only present as its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub digest: IdDigest,
    pub key: SessionKey,
    /// The effective user (changes with ImpersonateUser).
    pub user_name: Arc<str>,
    pub full_name: Arc<str>,
    /// The role of the effective user, fixed at login or impersonation.
    pub role: Role,
    /// The user who originally authenticated.
    pub login_user: Arc<str>,
    pub login_time: DateTime<Utc>,
    pub last_active_time: DateTime<Utc>,
    pub locale: Arc<str>,
    pub message_locale: Arc<str>,
    #[serde(default)]
    pub extension_session: bool,
    pub ip_address: Arc<str>,
    pub user_agent: Arc<str>,
    pub call_count: u64,
    /// [`User::id`](crate::User::id) of the effective user when the session took that
    /// identity; the session ends when its user's id no longer matches.
    #[serde(default)]
    pub user_id: Arc<str>,
}

impl SessionRecord {
    pub fn view(&self) -> UserSession {
        UserSession {
            key: self.key.0.clone(),
            user_name: String::from(&*self.user_name),
            full_name: String::from(&*self.full_name),
            login_time: self.login_time,
            last_active_time: self.last_active_time,
            locale: String::from(&*self.locale),
            message_locale: String::from(&*self.message_locale),
            extension_session: self.extension_session,
            ip_address: String::from(&*self.ip_address),
            user_agent: String::from(&*self.user_agent),
            call_count: self.call_count,
        }
    }

    /// Whether the session has expired at `now` under `expiry`'s limits.
    pub fn expired_by(&self, now: DateTime<Utc>, expiry: Expiry) -> bool {
        self.expired(now, expiry.idle, expiry.lifetime)
    }

    /// Whether the session has expired at `now` under the given limits.
    pub fn expired(
        &self,
        now: DateTime<Utc>,
        idle: chrono::Duration,
        lifetime: Option<chrono::Duration>,
    ) -> bool {
        now - self.last_active_time >= idle || lifetime.is_some_and(|l| now - self.login_time >= l)
    }
}

/// When sessions expire: the idle timeout (`sessionTimeout`) and the maximum age
/// (`tokenLifetime`). A store's touch takes it so as not to record a call on a session
/// that has already expired, which would make it look live again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub idle: chrono::Duration,
    pub lifetime: Option<chrono::Duration>,
}

impl Expiry {
    /// No expiry: every touch is recorded.
    pub const NEVER: Expiry = Expiry {
        idle: chrono::Duration::MAX,
        lifetime: None,
    };
}
