//! Store implementations for vsess.
//!
//! - [`EmbeddedStore`]: the default. Durable: every mutation is appended to a log in the
//!   data directory, and replayed on start. `lastActiveTime` is written lazily by
//!   [`EmbeddedStore::flush`].
//! - [`UserFile`]: the embedded store's user directory (`users.json`), which `vsess user …`
//!   edits while a server runs; the server picks changes up on the next lookup.
//! - [`RedisStore`]: shared by several replicas; see its module for the key layout.
//! - [`Backend`]: whichever of the two a server runs on.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod embedded;
mod fsutil;
mod logtail;
mod redis_store;
#[cfg(feature = "testing")]
pub mod testing;
mod users;

pub use embedded::{Durability, EmbeddedOptions, EmbeddedStore};
pub use fsutil::{
    check_data_dir, ensure_data_dir, ensure_private_dir, replace_private, warn_if_exposed,
    write_private_atomic,
};
#[cfg(feature = "testing")]
pub use redis_store::LostScript;
pub use redis_store::{redact_url, RedisOptions, RedisStore};
pub use users::UserFile;

use std::sync::Arc;
use vsess_core::{Store, StoreResult};

/// The store a server runs on.
#[derive(Clone)]
pub enum Backend {
    Embedded(Arc<EmbeddedStore>),
    Redis(RedisStore),
}

impl Backend {
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Embedded(s) => s.clone(),
            Backend::Redis(s) => Arc::new(s.clone()),
        }
    }

    /// Writes lazily kept state (session activity); the server calls it every second and
    /// on shutdown.
    pub async fn flush(&self) -> StoreResult<()> {
        match self {
            Backend::Embedded(s) => off_the_workers(s, EmbeddedStore::flush).await,
            Backend::Redis(s) => s.flush().await,
        }
    }

    /// On shutdown: [`flush`](Self::flush), and the embedded store trims its log's
    /// preallocated space.
    pub async fn close(&self) -> StoreResult<()> {
        match self {
            Backend::Embedded(s) => off_the_workers(s, EmbeddedStore::close).await,
            Backend::Redis(s) => s.flush().await,
        }
    }

    /// Whether the store can serve now.
    pub async fn health(&self) -> StoreResult<()> {
        match self {
            Backend::Embedded(s) => off_the_workers(s, EmbeddedStore::health).await,
            Backend::Redis(s) => s.health().await,
        }
    }

    /// How many sessions the store holds: live ones, and expired ones until the next reap
    /// (within seconds). With Redis, every replica's: the count is the same on each.
    pub async fn session_count(&self) -> StoreResult<u64> {
        match self {
            Backend::Embedded(s) => Ok(u64::try_from(s.list_sessions_len()).unwrap_or(u64::MAX)),
            Backend::Redis(s) => s.session_count().await,
        }
    }

    /// For logs: `embedded store in DIR` or `Redis at URL` (password hidden).
    pub fn describe(&self) -> String {
        match self {
            Backend::Embedded(s) => format!("embedded store in {}", s.dir().display()),
            Backend::Redis(s) => format!("Redis at {}", s.shown_url()),
        }
    }
}

/// Runs a blocking call of the embedded store (file I/O, fsync) on tokio's blocking pool.
async fn off_the_workers(
    s: &Arc<EmbeddedStore>,
    f: fn(&EmbeddedStore) -> StoreResult<()>,
) -> StoreResult<()> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| vsess_core::StoreError::Io(e.to_string()))?
}
