//! Counters of what the session service did since it started, for the server's
//! `/metrics`. Each is a relaxed atomic bumped where the event happens: logins and the ends
//! of sessions, never the calls a session makes. They are per process: with replicas on one
//! Redis, each counts its own events (Prometheus sums them).
use crate::service::Refusal;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `Logout` (SOAP, VI/JSON), `DELETE /api/session`, JSON-RPC `session.delete`.
    Logout,
    /// Ended by another session: `TerminateSession`, the self-service API, the web page.
    Terminated,
    /// Idle past `sessionTimeout` or older than `tokenLifetime`.
    Expired,
    /// Its user was removed (or removed and added again).
    UserRemoved,
}

impl Ended {
    pub const ALL: [Ended; 4] = [
        Ended::Logout,
        Ended::Terminated,
        Ended::Expired,
        Ended::UserRemoved,
    ];

    /// The label value in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Logout => "logout",
            Ended::Terminated => "terminated",
            Ended::Expired => "expired",
            Ended::UserRemoved => "user_removed",
        }
    }
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::BadName,
        Refusal::UnknownUser,
        Refusal::Locked,
        Refusal::WrongPassword,
        Refusal::SessionActive,
    ];

    /// The label value in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::BadName => "bad_name",
            Refusal::UnknownUser => "unknown_user",
            Refusal::Locked => "locked_out",
            Refusal::WrongPassword => "wrong_password",
            Refusal::SessionActive => "session_active",
        }
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub struct Stats {
    created: AtomicU64,
    limit_refusals: AtomicU64,
    refused: [AtomicU64; 5],
    ended: [AtomicU64; 4],
    lockouts: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Sessions created: logins on every endpoint and CloneSession (ImpersonateUser
    /// changes the caller's session and creates none).
    pub sessions_created: u64,
    /// Logins refused because `maxSessionCount` sessions were live.
    pub session_limit_refusals: u64,
    /// Refused logins, by reason, in [`Refusal::ALL`]'s order.
    pub logins_refused: [(Refusal, u64); 5],
    /// Ended sessions, by reason, in [`Ended::ALL`]'s order.
    pub sessions_ended: [(Ended, u64); 4],
    /// Users locked out by the lockout policy.
    pub lockouts: u64,
}

fn refusal_index(r: Refusal) -> usize {
    match r {
        Refusal::BadName => 0,
        Refusal::UnknownUser => 1,
        Refusal::Locked => 2,
        Refusal::WrongPassword => 3,
        Refusal::SessionActive => 4,
    }
}

fn ended_index(e: Ended) -> usize {
    match e {
        Ended::Logout => 0,
        Ended::Terminated => 1,
        Ended::Expired => 2,
        Ended::UserRemoved => 3,
    }
}

impl Stats {
    pub(crate) fn created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn limit_refused(&self) {
        self.limit_refusals.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, why: Refusal) {
        self.refused[refusal_index(why)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ended(&self, why: Ended, n: u64) {
        self.ended[ended_index(why)].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn locked_out(&self) {
        self.lockouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            sessions_created: get(&self.created),
            session_limit_refusals: get(&self.limit_refusals),
            logins_refused: Refusal::ALL.map(|r| (r, get(&self.refused[refusal_index(r)]))),
            sessions_ended: Ended::ALL.map(|e| (e, get(&self.ended[ended_index(e)]))),
            lockouts: get(&self.lockouts),
        }
    }
}
