//! How many generic service tickets each session holds, so that one session cannot fill
//! the store with them.
//!
//! A service ticket is kept (in the embedded store's log too, or in Redis) until it is
//! used or expires, and its spec may be up to [`crate::service::MAX_SPEC_LEN`] bytes: a
//! session asking for tickets in a loop would otherwise hold gigabytes of them for the
//! ticket lifetime. Clients use a ticket right after asking for it (govc's datastore
//! transfers, one ticket per request), so they hold a few at a time.
//!
//! The count is this process's: replicas sharing Redis each count the tickets handed out
//! through them, so a session holds at most the limit times the number of replicas, and a
//! restart forgets the count (tickets from before it still expire on time).
use crate::ids::SessionKey;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// The most service tickets a session may hold at once (not yet used, not expired).
pub const MAX_SERVICE_TICKETS_PER_SESSION: usize = 100;

#[derive(Default)]
pub(crate) struct TicketCounts {
    /// Per session: the expiry of each ticket it holds.
    held: Mutex<HashMap<SessionKey, Vec<DateTime<Utc>>>>,
}

impl TicketCounts {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Vec<DateTime<Utc>>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new ticket of `session` that expires at `expires`; `false` (and nothing
    /// counted) when the session already holds `max` tickets that have not expired.
    pub(crate) fn admit(
        &self,
        session: &SessionKey,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
        max: usize,
    ) -> bool {
        let mut held = self.held();
        let mine = held.entry(session.clone()).or_default();
        mine.retain(|e| *e > now);
        if mine.len() >= max {
            return false;
        }
        mine.push(expires);
        true
    }

    /// A ticket of `session` that expires at `expires` was used, or not stored after all.
    pub(crate) fn release(&self, session: &SessionKey, expires: DateTime<Utc>) {
        let mut held = self.held();
        if let Some(mine) = held.get_mut(session) {
            if let Some(i) = mine.iter().position(|e| *e == expires) {
                mine.swap_remove(i);
            }
            if mine.is_empty() {
                held.remove(session);
            }
        }
    }

    /// Forgets expired tickets, and the sessions left with none (the reaper calls it).
    pub(crate) fn purge(&self, now: DateTime<Utc>) {
        self.held().retain(|_, mine| {
            mine.retain(|e| *e > now);
            !mine.is_empty()
        });
    }

    #[cfg(test)]
    pub(crate) fn sessions(&self) -> usize {
        self.held().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_session_holds_at_most_max_until_some_are_used_or_expire() {
        let c = TicketCounts::default();
        let (a, b) = (SessionKey("a".into()), SessionKey("b".into()));
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let exp = |s: i64| t0 + Duration::seconds(s);
        assert!(c.admit(&a, t0, exp(10), 2));
        assert!(c.admit(&a, t0, exp(20), 2));
        assert!(!c.admit(&a, t0, exp(20), 2), "a third");
        assert!(
            c.admit(&b, t0, exp(20), 2),
            "other sessions are counted apart"
        );
        c.release(&a, exp(10));
        assert!(c.admit(&a, t0, exp(30), 2), "after one was used");
        assert!(!c.admit(&a, t0, exp(30), 2));
        // At 20 s, the two that expire then are gone.
        assert!(c.admit(&a, exp(20), exp(40), 2));
        c.purge(exp(40));
        assert_eq!(c.sessions(), 0);
        // Releasing what is not counted changes nothing.
        c.release(&a, exp(99));
        assert_eq!(c.sessions(), 0);
    }
}
