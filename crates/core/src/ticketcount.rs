//! How many generic service tickets each session holds, and how many bytes of specs, so
//! that one session cannot fill the store with them.
//!
//! A service ticket is kept (in the embedded store's log too, or in Redis) until it
//! expires (vsess serves none of the resources a ticket is for, so none is used up here),
//! and its spec may be up to [`crate::service::MAX_SPEC_LEN`] bytes: a session asking for
//! tickets in a loop would otherwise hold gigabytes of them for the ticket lifetime. A
//! client asks for one per transfer (govc's datastore transfers through a host), so the
//! limits leave room for thousands of transfers within a ticket's lifetime.
//!
//! The count is this process's: replicas sharing Redis each count the tickets handed out
//! through them, so a session holds at most the limit times the number of replicas, and a
//! restart forgets the count (tickets from before it still expire on time).
use crate::ids::SessionKey;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// The most service tickets a session may hold at once (not expired).
pub const MAX_SERVICE_TICKETS_PER_SESSION: usize = 5000;

/// The most bytes of specs (URLs, method names) a session's tickets may hold at once.
pub const MAX_SERVICE_TICKET_BYTES_PER_SESSION: usize = 1 << 20;

/// Per session: the expiry and spec size of each ticket it holds.
type Held = HashMap<SessionKey, Vec<(DateTime<Utc>, usize)>>;

#[derive(Default)]
pub(crate) struct TicketCounts {
    held: Mutex<Held>,
}

impl TicketCounts {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new ticket of `session` that expires at `expires` with a spec of `size`
    /// bytes; `false` (and nothing counted) when the session's unexpired tickets would then
    /// number more than `max` or hold more than `max_bytes`.
    pub(crate) fn admit(
        &self,
        session: &SessionKey,
        now: DateTime<Utc>,
        (expires, size): (DateTime<Utc>, usize),
        (max, max_bytes): (usize, usize),
    ) -> bool {
        let mut held = self.held();
        let mine = held.entry(session.clone()).or_default();
        mine.retain(|(e, _)| *e > now);
        let bytes: usize = mine.iter().map(|(_, n)| n).sum();
        if mine.len() >= max || bytes + size > max_bytes {
            return false;
        }
        mine.push((expires, size));
        true
    }

    /// A ticket of `session` that expires at `expires` was used, or not stored after all.
    pub(crate) fn release(&self, session: &SessionKey, expires: DateTime<Utc>) {
        let mut held = self.held();
        if let Some(mine) = held.get_mut(session) {
            if let Some(i) = mine.iter().position(|(e, _)| *e == expires) {
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
            mine.retain(|(e, _)| *e > now);
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
        let lim = (2, 100);
        assert!(c.admit(&a, t0, (exp(10), 10), lim));
        assert!(c.admit(&a, t0, (exp(20), 10), lim));
        assert!(!c.admit(&a, t0, (exp(20), 10), lim), "a third");
        assert!(
            c.admit(&b, t0, (exp(20), 10), lim),
            "other sessions are counted apart"
        );
        c.release(&a, exp(10));
        assert!(c.admit(&a, t0, (exp(30), 10), lim), "after one was used");
        assert!(!c.admit(&a, t0, (exp(30), 10), lim));
        // At 20 s, the two that expire then are gone.
        assert!(c.admit(&a, exp(20), (exp(40), 10), lim));
        // The bytes count too: b holds 10; 10 + 50 + 50 is over 100.
        assert!(c.admit(&b, t0, (exp(20), 50), (10, 100)));
        assert!(!c.admit(&b, t0, (exp(20), 50), (10, 100)));
        assert!(c.admit(&b, t0, (exp(20), 40), (10, 100)));
        c.purge(exp(40));
        assert_eq!(c.sessions(), 0);
        // Releasing what is not counted changes nothing.
        c.release(&a, exp(99));
        assert_eq!(c.sessions(), 0);
    }
}
