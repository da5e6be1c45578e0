//! Store implementations for vsess.
//!
//! - [`EmbeddedStore`]: the default. Durable: every mutation is appended to a log in the
//!   data directory, and replayed on start. Logins, logouts and one-time tickets are
//!   fsynced before the call returns; `lastActiveTime` is written lazily by [`EmbeddedStore::flush`].
//! - [`UserFile`]: the user directory (`users.json`), which `vsess user …` edits while a
//!   server runs; the server picks changes up on the next lookup.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod embedded;
mod fsutil;
mod users;

pub use embedded::EmbeddedStore;
pub use fsutil::{ensure_private_dir, write_private_atomic};
pub use users::UserFile;
