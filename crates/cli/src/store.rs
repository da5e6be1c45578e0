//! `vsess store migrate`: copies the embedded store into Redis, or Redis into a data
//! directory.
use crate::user::connect_redis;
use crate::Failure;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use vsess_core::{Mutation, Store};
use vsess_server::{Config, StoreConfig};
use vsess_store::{EmbeddedStore, RedisOptions, RedisStore};

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy users, sessions, API tokens, the service message, lockout state and the
    /// inventory from one store to the other. Stop the servers first.
    #[command(after_long_help = "\
Either side is a data directory or a Redis URL (redis://… or rediss://…):
  vsess store migrate --from vsess-data --to redis://127.0.0.1:6379/0
  vsess store migrate --from redis://127.0.0.1:6379/0 --to vsess-data

The destination should be a new store: if it holds users or live sessions (servers use it,
or it was migrated into before), migrate refuses, because copying again would bring back
users removed and sessions ended there since. --merge copies anyway, into a store that is
not in use, keeping what is there (a Redis that replicas started on holds their first
administrator: migrate with --merge, or before starting them).
Users that already exist at the destination are kept as they are there (and listed).
Live sessions keep their ids, keys, activity and expiry: clients stay logged in.
Expired sessions are not copied. From Redis, one-time tickets and lockout counters are not
copied (they live minutes). The source is not changed.

The embedded side must not be in use: a running `vsess serve` holds its lock. With
--config, [store] options (password_file, prefix, TLS) and the session policy apply to the
Redis side.")]
    Migrate(MigrateArgs),
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The source: a data directory or a Redis URL.
    #[arg(long)]
    from: String,
    /// The destination: a data directory or a Redis URL.
    #[arg(long)]
    to: String,
    /// A server config whose [store] and session policy apply to the Redis side.
    #[arg(long, env = "VSESS_CONFIG")]
    config: Option<PathBuf>,
    /// Copy even if the destination already holds users or live sessions (two stores
    /// merged into one). Users and sessions removed there since an earlier copy come back.
    #[arg(long)]
    merge: bool,
}

/// Refuses a destination that holds users or live sessions, unless merging: it is in use,
/// or was migrated into before, and copying again would undo what happened there since.
async fn check_destination(dst: &dyn Store, shown: &str, merge: bool) -> Result<(), Failure> {
    if merge {
        return Ok(());
    }
    let users = dst.list_users().await.map_err(rt_err)?.len();
    let live = dst.list_sessions().await.map_err(rt_err)?.len();
    if users == 0 && live == 0 {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{shown} already holds {users} user(s) and {live} live session(s): servers use it, or \
         it was migrated into before. Copying again would bring back the users removed and \
         the sessions ended there since. To add to it anyway (a Redis that replicas started \
         on holds their first administrator), stop its servers and give --merge; or migrate \
         into a new store."
    )))
}

fn is_redis(s: &str) -> bool {
    s.starts_with("redis://") || s.starts_with("rediss://")
}

fn redis_options(config: &Config, url: &str) -> Result<RedisOptions, Failure> {
    let StoreConfig::Redis(mut o) = config.store.clone().with_url(url).map_err(Failure::usage)?
    else {
        return Err(Failure::usage("not a Redis URL"));
    };
    o.idle = config.policy.idle_timeout;
    o.lifetime = config.policy.max_lifetime;
    Ok(o)
}

/// The data directory a migration reads: it must already be one, so that a mistyped
/// `--from` is an error instead of an empty copy (and a new, empty directory).
fn open_source(dir: &str) -> Result<EmbeddedStore, Failure> {
    let path = std::path::Path::new(dir);
    if !path.is_dir() {
        return Err(Failure::usage(format!(
            "--from {dir}: no such data directory (give a server's --data-dir, or a Redis URL)"
        )));
    }
    if !EmbeddedStore::holds_data(path) {
        return Err(Failure::usage(format!(
            "--from {dir}: not a vsess data directory (it has neither sessions.log nor users.json)"
        )));
    }
    // Read as it is: a damaged log is not tidied (nor backed up) on the way out.
    EmbeddedStore::open_as_source(path).map_err(|e| Failure::runtime(e.to_string()))
}

fn open_embedded(dir: &str) -> Result<EmbeddedStore, Failure> {
    EmbeddedStore::open(std::path::Path::new(dir)).map_err(|e| Failure::runtime(e.to_string()))
}

fn rt_err(e: impl std::fmt::Display) -> Failure {
    Failure::runtime(e.to_string())
}

/// A side that looks like a URL but is not a Redis one (`redis:/host`, `http://…`) is a
/// mistake, not a directory name.
fn check_side(flag: &str, side: &str) -> Result<(), Failure> {
    let scheme = side.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let url_like = side.contains("://")
        || scheme
            .as_deref()
            .is_some_and(|s| s.starts_with("redis") || s.starts_with("http"));
    if url_like && !is_redis(side) {
        return Err(Failure::usage(format!(
            "{flag} {}: not a Redis URL (redis://host:port/db or rediss://…) nor a data \
             directory",
            vsess_core::redact::redact_url(side)
        )));
    }
    Ok(())
}

pub fn run(cmd: StoreCommand) -> Result<(), Failure> {
    // Warnings from the stores (a damaged log, a directory tightened) reach stderr.
    crate::session::init_logging();
    let StoreCommand::Migrate(a) = cmd;
    check_side("--from", &a.from)?;
    check_side("--to", &a.to)?;
    let config = match &a.config {
        Some(p) => Config::load(p).map_err(|e| Failure::usage(e.to_string()))?,
        None => Config::default(),
    };
    match (is_redis(&a.from), is_redis(&a.to)) {
        (false, true) => {
            let src = open_source(&a.from)?;
            let (dst, rt) = connect_redis(redis_options(&config, &a.to)?)?;
            rt.block_on(async {
                check_destination(&dst, dst.shown_url(), a.merge).await?;
                to_redis(&src, &dst).await
            })
        }
        (true, false) => {
            // A wrong destination is refused before Redis is asked anything.
            crate::check_data_dir_usage(std::path::Path::new(&a.to))?;
            let (src, rt) = connect_redis(redis_options(&config, &a.from)?)?;
            let dst = open_embedded(&a.to)?;
            rt.block_on(async {
                check_destination(&dst, &format!("--to {}", a.to), a.merge).await?;
                to_embedded(&src, &dst).await
            })
        }
        (true, true) => Err(Failure::usage(
            "both sides are Redis; copy between Redis servers with Redis' own tools (MIGRATE, replication)",
        )),
        (false, false) => Err(Failure::usage(
            "both sides are data directories; copy the directory instead (with the servers stopped)",
        )),
    }
}

fn report(what: &str, counts: &Counts) -> Result<(), Failure> {
    outln!(
        "{what}: {} users ({} kept as they were at the destination), {} sessions, {} API tokens, {} inventory objects{}",
        counts.users,
        counts.kept.len(),
        counts.sessions,
        counts.tokens,
        counts.entities,
        if counts.message { ", the service message" } else { "" }
    )?;
    for k in &counts.kept {
        outln!("  kept existing user {k}")?;
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    users: usize,
    kept: Vec<String>,
    sessions: usize,
    tokens: usize,
    entities: usize,
    message: bool,
}

impl Counts {
    fn count(&mut self, m: &Mutation) {
        match m {
            Mutation::PutSession { .. } => self.sessions += 1,
            Mutation::PutToken { .. } => self.tokens += 1,
            Mutation::PutEntity { .. } => self.entities += 1,
            Mutation::Message { .. } => self.message = true,
            _ => {}
        }
    }
}

async fn to_redis(src: &EmbeddedStore, dst: &RedisStore) -> Result<(), Failure> {
    let mut c = Counts::default();
    for u in src.users().list().map_err(rt_err)? {
        if dst.add_user(&u, false).await.map_err(rt_err)? {
            c.users += 1;
        } else {
            c.kept.push(u.name.as_str().to_owned());
        }
    }
    let now = chrono::Utc::now();
    for m in src.export() {
        c.count(&m);
        dst.import(&m, now).await.map_err(rt_err)?;
    }
    report(&format!("copied to Redis at {}", dst.shown_url()), &c)
}

async fn to_embedded(src: &RedisStore, dst: &EmbeddedStore) -> Result<(), Failure> {
    let mut c = Counts::default();
    for u in src.list_users().await.map_err(rt_err)? {
        let name = u.name.as_str().to_owned();
        let added = dst
            .users()
            .modify(move |users| {
                if users.contains_key(u.name.as_str()) {
                    return Ok(false);
                }
                users.insert(u.name.as_str().to_owned(), u);
                Ok(true)
            })
            .map_err(rt_err)?;
        if added {
            c.users += 1;
        } else {
            c.kept.push(name);
        }
    }
    let muts = src.export().await.map_err(rt_err)?;
    for m in &muts {
        c.count(m);
    }
    dst.import(muts).map_err(rt_err)?;
    dst.flush().map_err(rt_err)?;
    report(&format!("copied to {}", dst.dir().display()), &c)
}
