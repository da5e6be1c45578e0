//! One password verification at a time per user name.
//!
//! The lockout reads a user's failed-login count before verifying a password and records a
//! failure after. Verifications running side by side would all read the count from before
//! any of them failed, so a burst of guesses sent at once would all be verified inside one
//! lockout window (the security audit got 30 guesses through a limit of 3). Taking turns
//! per name makes each verification see every failure recorded before it. Replicas sharing
//! Redis each take turns on their own, so at most one guess per replica is in flight.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Turn = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
pub(crate) struct Turns {
    /// The names someone holds or waits for a turn on; an entry goes with its last user.
    names: Mutex<HashMap<String, Turn>>,
}

/// A user name's turn; the next waiter's starts when this drops.
pub(crate) struct TurnGuard<'a> {
    turns: &'a Turns,
    name: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turns {
    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<String, Turn>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for `name`'s turn.
    pub(crate) async fn take(&self, name: &str) -> TurnGuard<'_> {
        let turn = {
            let mut names = self.names();
            // A waiter cancelled after the turn passed to it (its guard never existed)
            // leaves an entry nobody holds or awaits: only the map refers to it. Such
            // entries go here, so the map holds the names in use, not every name a
            // cancelled login ever named. Verifications are the slow path (argon2), and
            // the map is as long as the logins verifying at once.
            names.retain(|_, t| Arc::strong_count(t) > 1);
            names.entry(name.to_owned()).or_default().clone()
        };
        TurnGuard {
            turns: self,
            name: name.to_owned(),
            guard: Some(turn.lock_owned().await),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.names().len()
    }
}

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut names = self.turns.names();
        // The map's own reference is the last one: nobody holds or awaits this name.
        if names
            .get(&self.name)
            .is_some_and(|t| Arc::strong_count(t) == 1)
        {
            names.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_cancelled_after_its_turn_came_leaves_no_entry_behind() {
        let turns = Arc::new(Turns::default());
        let first = turns.take("u@v").await;
        let waiter = tokio::spawn({
            let turns = turns.clone();
            async move {
                let _t = turns.take("u@v").await;
            }
        });
        // The waiter queues for the turn...
        tokio::task::yield_now().await;
        // ...which passes to it, and it is cancelled before it runs again.
        drop(first);
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(turns.len(), 1, "the cancelled waiter's entry");
        // The next verification, of any name, clears it.
        let other = turns.take("w@v").await;
        assert_eq!(turns.len(), 1);
        drop(other);
        assert_eq!(turns.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_turn_per_name_at_a_time_and_entries_go_with_their_last_user() {
        let turns = Arc::new(Turns::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (turns, inside, most) = (turns.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _t = turns.take("u@v").await;
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(turns.len(), 0);
        // Other names do not wait.
        let a = turns.take("a").await;
        let b = turns.take("b").await;
        assert_eq!(turns.len(), 2);
        drop((a, b));
        assert_eq!(turns.len(), 0);
    }
}
