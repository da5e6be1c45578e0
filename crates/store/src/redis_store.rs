//! The Redis store: several vsess replicas share users, sessions, tickets, tokens, the
//! service message, lockout counters and the inventory.
//!
//! # Keys
//!
//! Every key starts with the prefix (`vsess` by default). `{…}` is a Redis Cluster hash tag:
//! the keys a script touches always share one slot.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{s:<digest>}` | hash | one session: `rec` (the record as JSON), `la` (lastActiveTime, ms), `cc` (callCount), `lt` (loginTime, ms); its TTL is the session's deadline |
//! | `P:key:{<key>}` | string | session key → digest, same TTL (for TerminateSession and the self-service API) |
//! | `P:live` | sorted set | digest → deadline (ms): the global session count for `maxSessionCount` |
//! | `P:us:<user>` | sorted set | digest → loginTime (ms): the sessions of one user (ImpersonateUser, "list my sessions"); members of sessions that have ended are dropped when a read finds them, and a few at random on each of the user's logins |
//! | `P:us-built` | string | set once the per-user sets hold every session (a replica builds them on start if not) |
//! | `P:t:<digest>` | string | a one-time ticket, with its expiry as TTL; taken with `GETDEL` |
//! | `P:tok:<digest>` | string | a self-service API token, with its expiry as TTL |
//! | `P:users` | hash | user name → user (JSON, argon2id hash) |
//! | `{P:users}:gen` | string | a random token, replaced by every change to `P:users` in the same script (same slot: the tag is `P:users`'s name) |
//! | `P:lock:<user>` | hash | lockout: `f` failures, `u` locked until (ms, or -1), `a` the account's lock key |
//! | `P:message` | string | the service message |
//! | `P:{inv}:entities`, `P:{inv}:ver` | hash, string | the inventory, and its version for compare-and-set |
//! | `P:instance-uuid` | string | the `instanceUuid` all replicas report |
//!
//! # Costs and precision
//!
//! - Validating a session is one `HGETALL`: one round trip. Nothing about sessions is
//!   cached locally, so an ended session is refused by every replica on its next request.
//! - `lastActiveTime` and `callCount` are batched per replica and written every second
//!   ([`RedisStore::flush`]), which also slides the TTL. `lastActiveTime` in Redis is
//!   therefore up to one flush interval (plus one round trip) old, and idle expiry is precise
//!   to about a second. A replica that dies loses at most its last second of activity
//!   counts; never a session.
//! - Users are cached per replica for the session check, keyed by the generation token they
//!   were read with. The session lookup reads the current token in the same round trip as
//!   the session, so a change made through vsess and completed before a request began is
//!   seen by that request on every replica; a cached user costs no second round trip. An
//!   entry is also dropped after [`USER_CACHE_MAX_AGE`], so a change made otherwise
//!   (`redis-cli`, an earlier vsess during a rolling upgrade) is seen within a second.
//!   Writers also publish `users` on channel `P:events`, which earlier versions listen to.
//! - Times (deadlines, TTLs via `PEXPIREAT`) come from the replicas' clocks: keep them in
//!   sync (NTP), as for any cluster.
use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::future::{join_all, try_join};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use vsess_core::ids::{IdDigest, SessionKey};
use vsess_core::inventory::{CreateError, CreateKind, Entity, ROOT_FOLDER};
use vsess_core::ticket::Ticket;
use vsess_core::{
    Expiry, LockState, MemoryState, Mutation, Reaped, SessionRecord, Standing, Store, StoreError,
    StoreResult, TokenRecord, User,
};

/// How to reach Redis, and the session policy its TTLs follow.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port/db` or `rediss://…` for TLS. With `cluster`, a
    /// comma-separated list of seed nodes.
    pub url: String,
    pub cluster: bool,
    /// A file holding the password (instead of putting it in the URL).
    pub password_file: Option<PathBuf>,
    /// A PEM file of CA certificates for `rediss://` (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Prefix of every key; lets several vsess deployments share one Redis.
    pub prefix: String,
    /// How long one Redis command may take before the request fails.
    pub timeout: std::time::Duration,
    pub idle: Duration,
    pub lifetime: Option<Duration>,
}

impl RedisOptions {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            cluster: false,
            password_file: None,
            ca_file: None,
            prefix: "vsess".into(),
            timeout: std::time::Duration::from_secs(2),
            idle: Duration::seconds(1800),
            lifetime: Some(Duration::seconds(86_400)),
        }
    }
}

/// `url` (one Redis URL, or a comma-separated list of them for a cluster) with every
/// password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(vsess_core::redact::redact_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// One connection handle, to a single Redis or to a cluster; both multiplex and reconnect.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Activity recorded by this replica and not yet written.
#[derive(Debug, Clone)]
struct Pending {
    key: SessionKey,
    at: DateTime<Utc>,
    calls: u64,
    login: DateTime<Utc>,
}

/// How long a cached user is used at most, whatever the generation token says: the bound on
/// how late a change made other than through vsess's own scripts is seen.
pub const USER_CACHE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Users as read at one generation of `P:users` (`None`: no change recorded yet).
#[derive(Default)]
struct UserCache {
    generation: Option<String>,
    users: HashMap<String, (Option<User>, std::time::Instant)>,
}

impl UserCache {
    /// What `read` makes of the cached answer for `name`, if the cache was read at
    /// `generation` and recently.
    fn get<T>(
        &self,
        generation: &Option<String>,
        name: &str,
        read: impl FnOnce(Option<&User>) -> T,
    ) -> Option<T> {
        if self.generation != *generation {
            return None;
        }
        let (user, at) = self.users.get(name)?;
        (at.elapsed() < USER_CACHE_MAX_AGE).then(|| read(user.as_ref()))
    }

    /// Records `user` as read at `generation`; a cache of another generation is dropped.
    fn put(&mut self, generation: Option<String>, name: &str, user: Option<User>) {
        if self.generation != generation {
            self.users.clear();
            self.generation = generation;
        }
        self.users
            .insert(name.to_owned(), (user, std::time::Instant::now()));
    }
}

/// Test support (feature `testing`): the scripts whose answers
/// [`RedisStore::lose_answers`] can lose.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy)]
pub enum LostScript {
    /// A login's reservation of a `maxSessionCount` slot.
    Reserve,
    /// The end of a session (Logout, TerminateSession).
    End,
}

struct Inner {
    conn: Conn,
    opts: RedisOptions,
    shown_url: String,
    pending: Mutex<HashMap<IdDigest, Pending>>,
    /// Sessions whose ending script failed, and may or may not have run: asked to end,
    /// they are ended by [`RedisStore::flush`], which then frees their slots.
    unended: Mutex<HashSet<IdDigest>>,
    /// Live-set members of sessions that have ended, whose removal failed: each would hold
    /// a `maxSessionCount` slot until its deadline. [`RedisStore::flush`] retries them.
    unlive: Mutex<HashSet<String>>,
    /// Test support: how many more answers of each script (by hash) are lost.
    #[cfg(feature = "testing")]
    lost_answers: Mutex<HashMap<String, usize>>,
    user_cache: Mutex<UserCache>,
    /// Users read from Redis (cache misses and direct lookups), for tests and metrics.
    user_reads: std::sync::atomic::AtomicU64,
    scripts: Scripts,
}

struct Scripts {
    reserve: Script,
    touch: Script,
    update: Script,
    end: Script,
    fail: Script,
    cas_inventory: Script,
    add_user: Script,
    update_user: Script,
    remove_user: Script,
    read_user: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            // KEYS[1] live; ARGV now, limit, deadline, member
            reserve: Script::new(
                r"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
return 1",
            ),
            // KEYS[1] session; ARGV at, calls, idle, lifetime (-1: none). Returns the deadline.
            touch: Script::new(
                r"if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local la = tonumber(redis.call('HGET', KEYS[1], 'la') or '0')
local at = tonumber(ARGV[1])
if at > la then la = at; redis.call('HSET', KEYS[1], 'la', ARGV[1]) end
redis.call('HINCRBY', KEYS[1], 'cc', ARGV[2])
local deadline = la + tonumber(ARGV[3])
local lifetime = tonumber(ARGV[4])
if lifetime >= 0 then
  local cap = tonumber(redis.call('HGET', KEYS[1], 'lt') or '0') + lifetime
  if cap < deadline then deadline = cap end
end
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', deadline))
return string.format('%.0f', deadline)",
            ),
            // KEYS[1] session; ARGV rec. Returns the record it replaced, or false.
            update: Script::new(
                r"local old = redis.call('HGET', KEYS[1], 'rec')
if not old then return false end
redis.call('HSET', KEYS[1], 'rec', ARGV[1])
return old",
            ),
            // KEYS[1] session: deletes it, returning {rec, la, cc} if it existed.
            end: Script::new(
                r"local r = redis.call('HMGET', KEYS[1], 'rec', 'la', 'cc')
if not r[1] then return false end
redis.call('DEL', KEYS[1])
return r",
            ),
            // KEYS[1] lock; ARGV now, max failures, lock ms, account. Returns {failures, until}.
            fail: Script::new(
                r"local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
local u = tonumber(redis.call('HGET', KEYS[1], 'u') or '-1')
local now = tonumber(ARGV[1])
if (redis.call('HGET', KEYS[1], 'a') or '') ~= ARGV[4] then f = 0; u = -1 end
if u >= 0 and now >= u then f = 0; u = -1 end
f = f + 1
if f >= tonumber(ARGV[2]) then f = 0; u = now + tonumber(ARGV[3]) end
redis.call('HSET', KEYS[1], 'f', string.format('%.0f', f), 'u', string.format('%.0f', u), 'a', ARGV[4])
return {string.format('%.0f', f), string.format('%.0f', u)}",
            ),
            // KEYS[1] entities, KEYS[2] version; ARGV expected version, then id/json pairs.
            cas_inventory: Script::new(
                r"local v = redis.call('GET', KEYS[2]) or '0'
if v ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('INCR', KEYS[2])
return 1",
            ),
            // The user scripts replace the generation token with every change they make.
            // KEYS[1] users, KEYS[2] generation; ARGV new token, name, json, only-if-empty
            add_user: Script::new(
                r"if ARGV[4] == '1' and redis.call('HLEN', KEYS[1]) > 0 then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1",
            ),
            // KEYS[1] users, KEYS[2] generation; ARGV new token, name, json, the json it
            // replaces (a compare-and-set: 0 if the record is gone or not that one)
            update_user: Script::new(
                r"if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1])
return 1",
            ),
            // KEYS[1] users, KEYS[2] generation; ARGV new token, name
            remove_user: Script::new(
                r"if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1",
            ),
            // KEYS[1] users, KEYS[2] generation; ARGV name: {user or nil, token or nil}
            read_user: Script::new(
                r"return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('GET', KEYS[2])}",
            ),
        }
    }
}

/// What to do about an error that means Redis refused the credentials or the database
/// (not that it is down).
fn credential_advice(e: &RedisError) -> Option<&'static str> {
    if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("WRONGPASS") {
        Some("Redis refused the password: check [store] password_file, or the URL's password")
    } else if e.code() == Some("NOAUTH") {
        Some("Redis needs a password: put it in a file named by [store] password_file")
    } else if e.to_string().contains("refused to switch database") {
        Some("Redis has no such database: fix the /N at the end of the store URL")
    } else {
        None
    }
}

/// The Redis [`Store`]. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("Redis holds an invalid {what}: {e}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Io(format!("cannot encode: {e}")))
}

impl RedisStore {
    /// Connects (failing at once if Redis cannot be reached) and subscribes to invalidations.
    pub async fn connect(opts: RedisOptions) -> StoreResult<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shown_url = redact_url(&opts.url);
        let password = match &opts.password_file {
            Some(p) => Some({
                crate::warn_if_exposed(p, "the Redis password file");
                std::fs::read_to_string(p)
                    .map_err(|e| {
                        StoreError::Io(format!(
                            "cannot read the Redis password file {}: {e}",
                            p.display()
                        ))
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned()
            }),
            None => None,
        };
        let root_cert = match &opts.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                StoreError::Io(format!(
                    "cannot read the Redis CA file {}: {e}",
                    p.display()
                ))
            })?),
            None => None,
        };
        let bad_url = |e: RedisError| {
            StoreError::Io(format!(
                "invalid Redis URL {shown_url}: {e} (expected redis://host:port/db or rediss://…)"
            ))
        };
        let mut infos = Vec::new();
        for u in opts.url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let mut info = redis::IntoConnectionInfo::into_connection_info(u).map_err(bad_url)?;
            if let Some(pw) = &password {
                let settings = info.redis_settings().clone().set_password(pw);
                info = info.set_redis_settings(settings);
            }
            infos.push(info);
        }
        let Some(first) = infos.first().cloned() else {
            return Err(StoreError::Io("the Redis URL is empty".into()));
        };
        let client_for = |info: redis::ConnectionInfo| match &root_cert {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => redis::Client::open(info),
        };
        let unreachable = |e: RedisError| match credential_advice(&e) {
            // Redis answered: the password or the database is wrong (exit 2, not 3).
            Some(advice) => StoreError::Io(format!("Redis at {shown_url}: {e}; {advice}")),
            None => StoreError::Unavailable(format!(
                "cannot reach Redis at {shown_url}: {e}; start Redis, or fix the store URL \
                 (--store, VSESS_STORE or [store] url)"
            )),
        };
        let single_client = client_for(first).map_err(bad_url)?;
        let conn = if opts.cluster {
            let mut b = redis::cluster::ClusterClientBuilder::new(infos)
                .connection_timeout(std::time::Duration::from_millis(500))
                .response_timeout(opts.timeout);
            if let Some(pem) = &root_cert {
                b = b.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                });
            }
            let client = b.build().map_err(bad_url)?;
            let c = tokio::time::timeout(opts.timeout, client.get_async_connection())
                .await
                .map_err(|_| {
                    StoreError::Unavailable(format!("Redis cluster at {shown_url} did not answer"))
                })?
                .map_err(unreachable)?;
            Conn::Cluster(c)
        } else {
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(std::time::Duration::from_millis(500)))
                .set_response_timeout(Some(opts.timeout))
                .set_number_of_retries(1)
                .set_max_delay(std::time::Duration::from_millis(500));
            let c = tokio::time::timeout(
                opts.timeout,
                single_client.get_connection_manager_with_config(cfg),
            )
            .await
            .map_err(|_| StoreError::Unavailable(format!("Redis at {shown_url} did not answer")))?
            .map_err(unreachable)?;
            Conn::Single(c)
        };
        let store = Self {
            inner: Arc::new(Inner {
                conn,
                opts,
                shown_url,
                pending: Mutex::new(HashMap::new()),
                unended: Mutex::new(HashSet::new()),
                unlive: Mutex::new(HashSet::new()),
                #[cfg(feature = "testing")]
                lost_answers: Mutex::new(HashMap::new()),
                user_cache: Mutex::new(UserCache::default()),
                user_reads: std::sync::atomic::AtomicU64::new(0),
                scripts: Scripts::new(),
            }),
        };
        store.health().await?;
        Ok(store)
    }

    /// Fills the per-user session sets from the live sessions, once per Redis: a starting
    /// server calls it in the background, and `P:us-built` records that it is done. Until
    /// then, a user's sessions from before the sets may be missing from their set.
    pub async fn build_user_index(&self) -> StoreResult<()> {
        let built = self.k("us-built");
        let done: bool = self.query(redis::cmd("EXISTS").arg(&built)).await?;
        if done {
            return Ok(());
        }
        let sessions = self.list_sessions().await?;
        for chunk in sessions.chunks(512) {
            let adds = join_all(chunk.iter().map(|rec| self.index_session(rec))).await;
            adds.into_iter().collect::<StoreResult<Vec<()>>>()?;
        }
        let _: () = self.query(redis::cmd("SET").arg(&built).arg("1")).await?;
        if !sessions.is_empty() {
            tracing::info!(
                sessions = sessions.len(),
                "indexed the sessions in Redis by user"
            );
        }
        Ok(())
    }

    /// Adds a session to its user's set.
    async fn index_session(&self, rec: &SessionRecord) -> StoreResult<()> {
        let _: i64 = self
            .query(
                redis::cmd("ZADD")
                    .arg(self.user_sessions_key(&rec.user_name))
                    .arg(ms(rec.login_time))
                    .arg(rec.digest.to_hex()),
            )
            .await?;
        Ok(())
    }

    /// Drops `members` (digests) from `user`'s set.
    async fn unindex(&self, user: &str, members: &[String]) -> StoreResult<()> {
        if members.is_empty() {
            return Ok(());
        }
        let _: i64 = self
            .query(
                redis::cmd("ZREM")
                    .arg(self.user_sessions_key(user))
                    .arg(members),
            )
            .await?;
        Ok(())
    }

    /// The sessions behind `members` (digests): `None` for those that have ended.
    async fn sessions_by_digest(
        &self,
        members: &[String],
    ) -> StoreResult<Vec<Option<SessionRecord>>> {
        let mut out = Vec::with_capacity(members.len());
        for chunk in members.chunks(512) {
            let maps = join_all(chunk.iter().map(|m| async move {
                match IdDigest::from_hex(m) {
                    Some(d) => self.hgetall(&self.session_key(&d)).await,
                    None => Ok(HashMap::new()),
                }
            }))
            .await;
            for h in maps {
                out.push(self.decode_session(&h?)?);
            }
        }
        Ok(out)
    }

    /// Checks two random members of `user`'s set and drops those whose session has ended
    /// (they expire by TTL, which no one hears of): on each login, so the set stays near
    /// the size of the user's live sessions even if no one ever reads it.
    async fn prune_user_index(&self, user: &str) -> StoreResult<()> {
        let members: Vec<String> = self
            .query(
                redis::cmd("ZRANDMEMBER")
                    .arg(self.user_sessions_key(user))
                    .arg(2),
            )
            .await?;
        let found = self.sessions_by_digest(&members).await?;
        let dead: Vec<String> = members
            .into_iter()
            .zip(found)
            .filter(|(_, rec)| rec.as_ref().is_none_or(|r| *r.user_name != *user))
            .map(|(m, _)| m)
            .collect();
        self.unindex(user, &dead).await
    }

    /// How many users this replica has cached for session checks (users of sessions it
    /// has served since the last user change).
    pub fn cached_users(&self) -> usize {
        self.user_cache().users.len()
    }

    /// How many times this replica has read a user from Redis.
    pub fn user_reads(&self) -> u64 {
        self.inner
            .user_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The URL, with any password hidden.
    pub fn shown_url(&self) -> &str {
        &self.inner.shown_url
    }

    fn k(&self, rest: &str) -> String {
        format!("{}:{rest}", self.inner.opts.prefix)
    }

    fn session_key(&self, d: &IdDigest) -> String {
        self.k(&format!("{{s:{}}}", d.to_hex()))
    }

    fn key_index(&self, key: &str) -> String {
        self.k(&format!("key:{{{key}}}"))
    }

    fn live_key(&self) -> String {
        self.k("live")
    }

    fn users_key(&self) -> String {
        self.k("users")
    }

    /// The users' generation token: in `P:users`'s slot (its name is the hash tag; a prefix
    /// has no braces).
    fn users_generation_key(&self) -> String {
        format!("{{{}}}:gen", self.users_key())
    }

    /// The sorted set of one user's sessions.
    fn user_sessions_key(&self, user: &str) -> String {
        self.k(&format!("us:{user}"))
    }

    fn err(&self, e: RedisError) -> StoreError {
        let msg = format!("Redis at {}: {e}", self.inner.shown_url);
        if let Some(advice) = credential_advice(&e) {
            StoreError::Io(format!("{msg}; {advice}"))
        } else if e.is_io_error()
            // Redis restarting (loading its dataset), a cluster failing over: retry later.
            // A master demoted in a failover (READONLY), a script running too long (BUSY).
            || matches!(
                e.code(),
                Some("LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "READONLY" | "BUSY")
            )
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            StoreError::Unavailable(msg)
        } else {
            StoreError::Io(msg)
        }
    }

    /// Runs one Redis exchange under the command timeout.
    async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(self.inner.opts.timeout, fut).await {
            Ok(r) => r.map_err(|e| self.err(e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis at {} did not answer within {} ms",
                self.inner.shown_url,
                self.inner.opts.timeout.as_millis()
            ))),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> StoreResult<T> {
        let mut c = self.inner.conn.clone();
        self.run(cmd.query_async(&mut c)).await
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> StoreResult<T> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(a);
        }
        let mut c = self.inner.conn.clone();
        let answer = self.run(inv.invoke_async(&mut c)).await;
        #[cfg(feature = "testing")]
        if self.answer_lost(script) {
            return Err(StoreError::Unavailable(
                "the answer was lost (test support: RedisStore::lose_answers)".into(),
            ));
        }
        answer
    }

    /// Test support (feature `testing`): Redis runs the next `n` invocations of `script`,
    /// but their answers are lost, as when a connection drops or a timeout strikes after
    /// Redis did the work.
    #[cfg(feature = "testing")]
    pub fn lose_answers(&self, script: LostScript, n: usize) {
        let hash = match script {
            LostScript::Reserve => self.inner.scripts.reserve.get_hash(),
            LostScript::End => self.inner.scripts.end.get_hash(),
        };
        let mut lost = self
            .inner
            .lost_answers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        lost.insert(hash.to_owned(), n);
    }

    #[cfg(feature = "testing")]
    fn answer_lost(&self, script: &Script) -> bool {
        let mut lost = self
            .inner
            .lost_answers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match lost.get_mut(script.get_hash()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// The sessions in the live set (`ZCARD`): live ones, and expired ones until a reap.
    pub async fn session_count(&self) -> StoreResult<u64> {
        self.query(redis::cmd("ZCARD").arg(self.live_key())).await
    }

    /// `PING`; `/healthz` reports the error.
    pub async fn health(&self) -> StoreResult<()> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "Redis at {} answered PING with {pong:?}",
                self.inner.shown_url
            )))
        }
    }

    fn deadline(&self, last_active: DateTime<Utc>, login: DateTime<Utc>) -> i64 {
        let idle = ms(last_active) + self.inner.opts.idle.num_milliseconds();
        match self.inner.opts.lifetime {
            Some(l) => idle.min(ms(login) + l.num_milliseconds()),
            None => idle,
        }
    }

    /// Decodes a session hash, merged with this replica's unwritten activity.
    fn decode_session(&self, h: &HashMap<String, String>) -> StoreResult<Option<SessionRecord>> {
        let Some(rec) = h.get("rec") else {
            return Ok(None);
        };
        let mut rec: SessionRecord =
            serde_json::from_str(rec).map_err(|e| corrupt("session record", e))?;
        if let Some(la) = h.get("la").and_then(|v| v.parse::<i64>().ok()) {
            rec.last_active_time = from_ms(la);
        }
        if let Some(cc) = h.get("cc").and_then(|v| v.parse::<u64>().ok()) {
            rec.call_count = cc;
        }
        self.merge_pending(&mut rec);
        Ok(Some(rec))
    }

    fn merge_pending(&self, rec: &mut SessionRecord) {
        let pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pending.get(&rec.digest) {
            rec.last_active_time = rec.last_active_time.max(p.at);
            rec.call_count += p.calls;
        }
    }

    /// Decodes a looked-up session hash and batches one call on it at `now` (written by
    /// [`RedisStore::flush`]). Returns the record as it was before this call.
    fn record_call(
        &self,
        digest: &IdDigest,
        h: &HashMap<String, String>,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> StoreResult<Option<SessionRecord>> {
        let Some(rec) = self.decode_session(h)? else {
            return Ok(None);
        };
        if rec.expired_by(now, expiry) {
            // Not touched: it must not look live again before its TTL takes it.
            return Ok(Some(rec));
        }
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        let p = pending.entry(*digest).or_insert_with(|| Pending {
            key: rec.key.clone(),
            at: now,
            calls: 0,
            login: rec.login_time,
        });
        p.at = p.at.max(now);
        p.calls += 1;
        Ok(Some(rec))
    }

    /// `SET key json PXAT expires`: the value lives until `expires`.
    async fn set_until<T: serde::Serialize>(
        &self,
        key: String,
        value: &T,
        expires: DateTime<Utc>,
    ) -> StoreResult<()> {
        let _: () = self
            .query(
                redis::cmd("SET")
                    .arg(key)
                    .arg(to_json(value)?)
                    .arg("PXAT")
                    .arg(ms(expires).max(1)),
            )
            .await?;
        Ok(())
    }

    /// Runs `cmd`, whose answer is a JSON `what` or nil.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        cmd: &Cmd,
        what: &str,
    ) -> StoreResult<Option<T>> {
        let v: Option<String> = self.query(cmd).await?;
        v.map(|j| serde_json::from_str(&j).map_err(|e| corrupt(what, e)))
            .transpose()
    }

    async fn hgetall(&self, key: &str) -> StoreResult<HashMap<String, String>> {
        self.query(redis::cmd("HGETALL").arg(key)).await
    }

    async fn digest_of_key(&self, key: &str) -> StoreResult<Option<IdDigest>> {
        let d: Option<String> = self
            .query(redis::cmd("GET").arg(self.key_index(key)))
            .await?;
        Ok(d.and_then(|d| IdDigest::from_hex(&d)))
    }

    /// Takes `member` out of the live set, or, if Redis refuses, leaves it to
    /// [`RedisStore::flush`]: its session has ended either way.
    async fn release_slot(&self, member: String) {
        let r: StoreResult<i64> = self
            .query(redis::cmd("ZREM").arg(self.live_key()).arg(&member))
            .await;
        if let Err(e) = r {
            tracing::warn!("an ended session still holds a maxSessionCount slot; retrying: {e}");
            self.release_later(member);
        }
    }

    /// Leaves `member`'s removal from the live set to the next [`RedisStore::flush`].
    fn release_later(&self, member: String) {
        let mut u = self.inner.unlive.lock().unwrap_or_else(|e| e.into_inner());
        u.insert(member);
    }

    /// Retries the live-set removals that failed (see [`RedisStore::release_slot`]).
    async fn release_slots(&self) -> StoreResult<()> {
        let members: Vec<String> = {
            let mut u = self.inner.unlive.lock().unwrap_or_else(|e| e.into_inner());
            u.drain().collect()
        };
        if members.is_empty() {
            return Ok(());
        }
        let r: StoreResult<i64> = self
            .query(redis::cmd("ZREM").arg(self.live_key()).arg(&members))
            .await;
        if r.is_err() {
            let mut u = self.inner.unlive.lock().unwrap_or_else(|e| e.into_inner());
            u.extend(members);
        }
        r.map(drop)
    }

    /// Ends the sessions whose ending failed (see [`Store::remove_session`]), leaving their
    /// slots to [`RedisStore::release_slots`], which runs next; stops at the first failure,
    /// keeping the rest for the next flush.
    async fn finish_ends(&self) -> StoreResult<()> {
        let mut todo: Vec<IdDigest> = {
            let mut u = self.inner.unended.lock().unwrap_or_else(|e| e.into_inner());
            u.drain().collect()
        };
        while let Some(d) = todo.pop() {
            let ended: StoreResult<Value> = self
                .script(&self.inner.scripts.end, &[&self.session_key(&d)], &[])
                .await;
            if let Err(e) = ended {
                todo.push(d);
                let mut u = self.inner.unended.lock().unwrap_or_else(|e| e.into_inner());
                u.extend(todo);
                return Err(e);
            }
            self.release_later(d.to_hex());
        }
        Ok(())
    }

    /// Writes this replica's batched activity and slides the TTLs; first it finishes the
    /// ends and frees the slots that failed before. Called every second.
    pub async fn flush(&self) -> StoreResult<()> {
        // Neither holds back the activity. The ends first: their slots are freed with the
        // others, in one ZREM.
        let ended = self.finish_ends().await;
        let cleaned = ended.and(self.release_slots().await);
        let batch: Vec<(IdDigest, Pending)> = {
            let mut p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.drain().collect()
        };
        if batch.is_empty() {
            return cleaned;
        }
        // The live set's deadlines first, so that they never fall behind a TTL (the set
        // must never undercount live sessions).
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(self.live_key()).arg("XX").arg("GT");
        for (d, p) in &batch {
            zadd.arg(self.deadline(p.at, p.login)).arg(d.to_hex());
        }
        if let Err(e) = self.query::<i64>(&zadd).await {
            self.requeue(batch);
            return cleaned.and(Err(e));
        }
        let idle = self.inner.opts.idle.num_milliseconds().to_string();
        let lifetime = self
            .inner
            .opts
            .lifetime
            .map_or(-1, |l| l.num_milliseconds())
            .to_string();
        let mut failed = Vec::new();
        let mut first_error = None;
        let mut items = batch.into_iter().peekable();
        while items.peek().is_some() {
            let chunk: Vec<(IdDigest, Pending)> = items.by_ref().take(256).collect();
            let outs = join_all(
                chunk
                    .iter()
                    .map(|(d, p)| self.write_activity(d, p, &idle, &lifetime)),
            )
            .await;
            for ((d, mut p), out) in chunk.into_iter().zip(outs) {
                if let Err((e, counted)) = out {
                    if counted {
                        // Only the index is left to write: the calls must not count twice.
                        p.calls = 0;
                    }
                    failed.push((d, p));
                    first_error.get_or_insert(e);
                }
            }
        }
        self.requeue(failed);
        cleaned.and(first_error.map_or(Ok(()), Err))
    }

    /// One session's batched activity: its record, TTL and key index. On failure, says
    /// whether its calls were already counted.
    async fn write_activity(
        &self,
        d: &IdDigest,
        p: &Pending,
        idle: &str,
        lifetime: &str,
    ) -> Result<(), (StoreError, bool)> {
        let args = [
            ms(p.at).to_string(),
            p.calls.to_string(),
            idle.to_owned(),
            lifetime.to_owned(),
        ];
        let deadline: i64 = self
            .script(&self.inner.scripts.touch, &[&self.session_key(d)], &args)
            .await
            .map_err(|e| (e, false))?;
        if deadline > 0 {
            // SET, not PEXPIREAT: an index entry lost to an earlier failure comes back.
            let mut index = redis::cmd("SET");
            index
                .arg(self.key_index(p.key.as_str()))
                .arg(d.to_hex())
                .arg("PXAT")
                .arg(deadline);
            self.query::<()>(&index).await.map_err(|e| (e, true))?;
        }
        Ok(())
    }

    /// Keeps activity that could not be written for the next flush.
    fn requeue(&self, items: Vec<(IdDigest, Pending)>) {
        if items.is_empty() {
            return;
        }
        let mut p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (d, b) in items {
            p.entry(d)
                .and_modify(|cur| {
                    cur.at = cur.at.max(b.at);
                    cur.calls += b.calls;
                })
                .or_insert(b);
        }
    }

    // ---- users (the directory `vsess user …` edits) ----

    /// A user and the generation token read with it (one script, so at one instant).
    async fn fetch_user(&self, name: &str) -> StoreResult<(Option<User>, Option<String>)> {
        self.inner
            .user_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (json, generation): (Option<String>, Option<String>) = self
            .script(
                &self.inner.scripts.read_user,
                &[&self.users_key(), &self.users_generation_key()],
                &[name.to_owned()],
            )
            .await?;
        let user = json
            .map(|j| serde_json::from_str::<User>(&j).map_err(|e| corrupt("user", e)))
            .transpose()?;
        Ok((user, generation))
    }

    fn user_cache(&self) -> std::sync::MutexGuard<'_, UserCache> {
        self.inner
            .user_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one of the user scripts, which take a new generation token first. A change is
    /// also published on `P:events`, for replicas of earlier versions, whose user caches
    /// listen there (best effort).
    async fn user_script(&self, script: &Script, args: Vec<String>) -> StoreResult<bool> {
        let mut all = vec![vsess_core::ids::random_hex(16)];
        all.extend(args);
        let keys = [self.users_key(), self.users_generation_key()];
        let done: i64 = self.script(script, &[&keys[0], &keys[1]], &all).await?;
        if done == 1 {
            let published: StoreResult<i64> = self
                .query(redis::cmd("PUBLISH").arg(self.k("events")).arg("users"))
                .await;
            if let Err(e) = published {
                tracing::debug!("cannot publish a user change for earlier versions: {e}");
            }
        }
        Ok(done == 1)
    }

    /// Adds a user unless the name exists (or, with `only_if_empty`, unless any user
    /// exists); returns whether it did.
    pub async fn add_user(&self, user: &User, only_if_empty: bool) -> StoreResult<bool> {
        let args = vec![
            user.name.as_str().to_owned(),
            to_json(user)?,
            if only_if_empty { "1" } else { "0" }.to_owned(),
        ];
        self.user_script(&self.inner.scripts.add_user, args).await
    }

    /// Changes an existing user with `change`; returns false if there is none. The
    /// record is written back only if it is still the one `change` saw: a change made in
    /// between (a `vsess user passwd` of another process, or the name removed and added
    /// again) is not overwritten; the record is read again and `change` applied to it.
    pub async fn modify_user(
        &self,
        name: &str,
        mut change: impl FnMut(&mut User),
    ) -> StoreResult<bool> {
        for _ in 0..32 {
            let raw: Option<String> = self
                .query(redis::cmd("HGET").arg(self.users_key()).arg(name))
                .await?;
            let Some(raw) = raw else {
                return Ok(false);
            };
            let mut user: User = serde_json::from_str(&raw).map_err(|e| corrupt("user", e))?;
            change(&mut user);
            let args = vec![name.to_owned(), to_json(&user)?, raw];
            if self
                .user_script(&self.inner.scripts.update_user, args)
                .await?
            {
                return Ok(true);
            }
        }
        Err(StoreError::Unavailable(format!(
            "user {name} kept changing while this change was made; try again"
        )))
    }

    /// Removes a user; their sessions end on their next request, on every replica. Their
    /// session set and login-failure count go too, so that nothing is left behind for
    /// good and an account added later under the name starts clean. (Those keys hash to
    /// other slots than the users' hash, so they are deleted after it, not in its script.)
    pub async fn remove_user(&self, name: &str) -> StoreResult<bool> {
        let removed = self
            .user_script(&self.inner.scripts.remove_user, vec![name.to_owned()])
            .await?;
        if !removed {
            return Ok(false);
        }
        // Best effort: the removal took effect and is not reported as failed. What is
        // left is harmless (ended sessions are dropped from a set when it is read, and a
        // login-failure count names the account it counts for).
        for key in [
            self.user_sessions_key(name),
            self.k(&format!("lock:{name}")),
        ] {
            if let Err(e) = self.query::<i64>(redis::cmd("DEL").arg(&key)).await {
                tracing::warn!("user {name} is removed, but its key {key} is left: {e}");
            }
        }
        Ok(true)
    }

    /// The `instanceUuid` shared by every replica: `candidate` if none is set yet.
    pub async fn instance_uuid(&self, candidate: &str) -> StoreResult<String> {
        let key = self.k("instance-uuid");
        let _: Option<String> = self
            .query(redis::cmd("SET").arg(&key).arg(candidate).arg("NX"))
            .await?;
        let v: Option<String> = self.query(redis::cmd("GET").arg(&key)).await?;
        Ok(v.unwrap_or_else(|| candidate.to_owned()))
    }

    // ---- migration ----

    /// Writes one mutation as it is (for `vsess store migrate`); sessions keep their
    /// activity and ignore the session limit.
    pub async fn import(&self, m: &Mutation, now: DateTime<Utc>) -> StoreResult<()> {
        match m {
            Mutation::PutSession { rec } => {
                let deadline = self.deadline(rec.last_active_time, rec.login_time);
                if deadline > ms(now) {
                    self.write_session(rec, deadline).await?;
                    let _: i64 = self
                        .query(
                            redis::cmd("ZADD")
                                .arg(self.live_key())
                                .arg(deadline)
                                .arg(rec.digest.to_hex()),
                        )
                        .await?;
                }
            }
            Mutation::PutTicket { digest, ticket } => {
                self.put_ticket(*digest, ticket.clone()).await?
            }
            Mutation::PutToken { digest, token } => self.put_token(*digest, token.clone()).await?,
            Mutation::Message { text } => self.set_message(text).await?,
            Mutation::Lock { user, state } => {
                let key = self.k(&format!("lock:{user}"));
                let until = state.locked_until.map_or(-1, ms);
                let _: i64 = self
                    .query(
                        redis::cmd("HSET")
                            .arg(&key)
                            .arg("f")
                            .arg(state.failures)
                            .arg("u")
                            .arg(until)
                            .arg("a")
                            .arg(&state.account),
                    )
                    .await?;
            }
            Mutation::PutEntity { entity } => {
                let _: i64 = self
                    .query(
                        redis::cmd("HSET")
                            .arg(self.k("{inv}:entities"))
                            .arg(&entity.id)
                            .arg(to_json(entity)?),
                    )
                    .await?;
                let _: i64 = self
                    .query(redis::cmd("INCR").arg(self.k("{inv}:ver")))
                    .await?;
            }
            Mutation::EndSession { .. }
            | Mutation::Touch { .. }
            | Mutation::TakeTicket { .. }
            | Mutation::RevokeToken { .. } => {}
        }
        Ok(())
    }

    /// Everything but the users, as mutations (for `vsess store migrate` back to a data
    /// directory). Tickets and lockout counters are not exported: they live minutes.
    pub async fn export(&self) -> StoreResult<Vec<Mutation>> {
        let mut out: Vec<Mutation> = self
            .entities()
            .await?
            .into_iter()
            .filter(|e| e.id != ROOT_FOLDER)
            .map(|entity| Mutation::PutEntity { entity })
            .collect();
        out.extend(
            self.list_sessions()
                .await?
                .into_iter()
                .map(|rec| Mutation::PutSession { rec }),
        );
        let message = self.message().await?;
        if !message.is_empty() {
            out.push(Mutation::Message { text: message });
        }
        if let Conn::Single(_) = self.inner.conn {
            for key in self.scan(&self.k("tok:*")).await? {
                let Some(hex) = key.rsplit(':').next() else {
                    continue;
                };
                let Some(digest) = IdDigest::from_hex(hex) else {
                    continue;
                };
                if let Some(token) = self.get_token(&digest).await? {
                    out.push(Mutation::PutToken { digest, token });
                }
            }
        }
        Ok(out)
    }

    async fn scan(&self, pattern: &str) -> StoreResult<Vec<String>> {
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    async fn write_session(&self, rec: &SessionRecord, deadline: i64) -> StoreResult<()> {
        let key = self.session_key(&rec.digest);
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("rec")
            .arg(to_json(rec)?)
            .arg("la")
            .arg(ms(rec.last_active_time))
            .arg("cc")
            .arg(rec.call_count)
            .arg("lt")
            .arg(ms(rec.login_time))
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(deadline)
            .ignore();
        let mut c = self.inner.conn.clone();
        self.run(p.query_async::<()>(&mut c)).await?;
        let mut key_index = redis::cmd("SET");
        key_index
            .arg(self.key_index(rec.key.as_str()))
            .arg(rec.digest.to_hex())
            .arg("PXAT")
            .arg(deadline);
        try_join(self.query::<()>(&key_index), self.index_session(rec)).await?;
        Ok(())
    }

    async fn inventory(&self) -> StoreResult<(String, MemoryState)> {
        let mut p = redis::pipe();
        p.atomic()
            .cmd("GET")
            .arg(self.k("{inv}:ver"))
            .cmd("HGETALL")
            .arg(self.k("{inv}:entities"));
        let mut c = self.inner.conn.clone();
        let (ver, all): (Option<String>, HashMap<String, String>) =
            self.run(p.query_async(&mut c)).await?;
        let mut state = MemoryState::default();
        for json in all.values() {
            let entity: Entity = serde_json::from_str(json).map_err(|e| corrupt("entity", e))?;
            state.apply(&Mutation::PutEntity { entity });
        }
        Ok((ver.unwrap_or_else(|| "0".into()), state))
    }
}

#[async_trait]
impl Store for RedisStore {
    /// Always read from Redis: only [`Store::touch_session_standing`] knows the generation to
    /// check the cache against without a round trip of its own. Not cached either: a
    /// Login with any name comes here, and the cache would grow with every name tried.
    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        Ok(self.fetch_user(name).await?.0)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let all: HashMap<String, String> = self.hgetall(&self.users_key()).await?;
        let mut users = all
            .values()
            .map(|j| serde_json::from_str::<User>(j).map_err(|e| corrupt("user", e)))
            .collect::<StoreResult<Vec<User>>>()?;
        users.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok(users)
    }

    async fn insert_session(&self, rec: SessionRecord, limit: usize) -> StoreResult<bool> {
        let deadline = self.deadline(rec.last_active_time, rec.login_time);
        let member = rec.digest.to_hex();
        let reserved: StoreResult<i64> = self
            .script(
                &self.inner.scripts.reserve,
                &[&self.live_key()],
                &[
                    ms(rec.login_time).to_string(),
                    limit.min(i64::MAX as usize).to_string(),
                    deadline.to_string(),
                    member.clone(),
                ],
            )
            .await;
        let reserved = match reserved {
            Ok(r) => r,
            Err(e) => {
                // The script may have run with its answer lost, or may still run: a slot
                // with no session. Freed now, and again at the next flush, in case the
                // script ran after this.
                self.release_slot(member.clone()).await;
                self.release_later(member);
                return Err(e);
            }
        };
        if reserved != 1 {
            return Ok(false);
        }
        if let Err(e) = self.write_session(&rec, deadline).await {
            // No one has the id: drop what was written, or it would be listed until its
            // deadline, and give the slot back (later, if Redis refuses now).
            let mut drop_record = redis::cmd("DEL");
            drop_record.arg(self.session_key(&rec.digest));
            let _: StoreResult<i64> = self.query(&drop_record).await;
            self.release_slot(member).await;
            return Err(e);
        }
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = store.prune_user_index(&rec.user_name).await {
                tracing::debug!("cannot prune a user's session set: {e}");
            }
        });
        Ok(true)
    }

    async fn touch_session(
        &self,
        digest: &IdDigest,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> StoreResult<Option<SessionRecord>> {
        let h = self.hgetall(&self.session_key(digest)).await?;
        self.record_call(digest, &h, now, expiry)
    }

    /// One round trip for the session and the users' generation token, and a second one
    /// only when this replica has not read the session's user at that generation.
    async fn touch_session_standing(
        &self,
        digest: &IdDigest,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> StoreResult<Option<(SessionRecord, Option<Standing>)>> {
        let session_key = self.session_key(digest);
        let mut generation_cmd = redis::cmd("GET");
        generation_cmd.arg(self.users_generation_key());
        let (h, generation) = try_join(
            self.hgetall(&session_key),
            self.query::<Option<String>>(&generation_cmd),
        )
        .await?;
        let Some(rec) = self.record_call(digest, &h, now, expiry)? else {
            return Ok(None);
        };
        let cached = self.user_cache().get(&generation, &rec.user_name, |u| {
            u.map(|u| Standing::of(u, &rec))
        });
        let standing = match cached {
            Some(s) => s,
            None => {
                // Only users of live sessions are cached, so the cache stays that small.
                let (user, generation) = self.fetch_user(&rec.user_name).await?;
                let standing = user.as_ref().map(|u| Standing::of(u, &rec));
                self.user_cache().put(generation, &rec.user_name, user);
                standing
            }
        };
        Ok(Some((rec, standing)))
    }

    async fn session_by_key(&self, key: &str) -> StoreResult<Option<SessionRecord>> {
        let Some(d) = self.digest_of_key(key).await? else {
            return Ok(None);
        };
        let h = self.hgetall(&self.session_key(&d)).await?;
        self.decode_session(&h)
    }

    async fn update_session(&self, rec: &SessionRecord) -> StoreResult<bool> {
        let old: Option<String> = self
            .script(
                &self.inner.scripts.update,
                &[&self.session_key(&rec.digest)],
                &[to_json(rec)?],
            )
            .await?;
        let Some(old) = old else { return Ok(false) };
        // ImpersonateUser moves the session to another user's set.
        let old: SessionRecord =
            serde_json::from_str(&old).map_err(|e| corrupt("session record", e))?;
        if old.user_name != rec.user_name {
            // The change is made: the sets follow on a best-effort basis (a member left
            // behind is dropped when read; a missing one only hides the session from
            // the user's list).
            let moved = try_join(
                self.index_session(rec),
                self.unindex(&old.user_name, &[rec.digest.to_hex()]),
            )
            .await;
            if let Err(e) = moved {
                tracing::warn!("cannot move a session to its new user's set: {e}");
            }
        }
        Ok(true)
    }

    async fn remove_session(&self, key: &str) -> StoreResult<Option<SessionRecord>> {
        let Some(d) = self.digest_of_key(key).await? else {
            return Ok(None);
        };
        let ended: StoreResult<Option<Vec<Option<String>>>> = self
            .script(&self.inner.scripts.end, &[&self.session_key(&d)], &[])
            .await;
        let r = match ended {
            Ok(r) => r,
            Err(e) => {
                // It may have run, its answer lost. Asked to end, the session ends: the
                // next flush finishes the job, whatever the caller is told now.
                let mut u = self.inner.unended.lock().unwrap_or_else(|e| e.into_inner());
                u.insert(d);
                return Err(e);
            }
        };
        // The session has ended: what follows is bookkeeping, which must not turn its
        // Logout into an error. Its slot is retried until freed; its key's index entry
        // points at nothing now and expires with the session's deadline.
        self.release_slot(d.to_hex()).await;
        let mut drop_index = redis::cmd("DEL");
        drop_index.arg(self.key_index(key));
        if let Err(e) = self.query::<i64>(&drop_index).await {
            tracing::debug!("cannot drop an ended session's key index (it expires): {e}");
        }
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&d);
        let Some(fields) = r else { return Ok(None) };
        let mut h = HashMap::new();
        for (name, v) in ["rec", "la", "cc"].into_iter().zip(fields) {
            if let Some(v) = v {
                h.insert(name.to_owned(), v);
            }
        }
        let rec = self.decode_session(&h)?;
        if let Some(rec) = &rec {
            // The session has ended; a member left behind is dropped when read.
            if let Err(e) = self.unindex(&rec.user_name, &[d.to_hex()]).await {
                tracing::debug!("cannot take an ended session out of its user's set: {e}");
            }
        }
        Ok(rec)
    }

    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        let now = ms(Utc::now());
        let members: Vec<String> = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.live_key())
                    .arg(format!("({now}"))
                    .arg("+inf")
                    .arg("BYSCORE"),
            )
            .await?;
        Ok(self
            .sessions_by_digest(&members)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// From the user's set, oldest login first; members whose session has ended (or,
    /// after an ImpersonateUser, belongs to another user) are dropped from it.
    async fn sessions_of_user(&self, user: &str, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        let key = self.user_sessions_key(user);
        let (mut out, mut dead) = (Vec::new(), Vec::new());
        // Pages go by score (login time) from the last one seen, skipping the members
        // already seen at that score: ranks shift when a concurrent Logout or prune takes
        // a member out, scores do not.
        let mut from: Option<i64> = None;
        let mut seen_at_from: Vec<String> = Vec::new();
        while out.len() < limit {
            let asked = (limit - out.len()).clamp(1, 512) + seen_at_from.len();
            let rows: Vec<(String, f64)> = self
                .query(
                    redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(from.map_or_else(|| "-inf".to_owned(), |f| f.to_string()))
                        .arg("+inf")
                        .arg("BYSCORE")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(asked)
                        .arg("WITHSCORES"),
                )
                .await?;
            let at_end = rows.len() < asked;
            let fresh: Vec<(String, i64)> = rows
                .into_iter()
                .filter(|(m, _)| !seen_at_from.contains(m))
                .map(|(m, score)| (m, score as i64))
                .collect();
            let Some(&(_, last)) = fresh.last() else {
                break;
            };
            if from != Some(last) {
                seen_at_from.clear();
                from = Some(last);
            }
            seen_at_from.extend(
                fresh
                    .iter()
                    .filter(|(_, score)| *score == last)
                    .map(|(m, _)| m.clone()),
            );
            let members: Vec<String> = fresh.into_iter().map(|(m, _)| m).collect();
            let found = self.sessions_by_digest(&members).await?;
            for (m, rec) in members.into_iter().zip(found) {
                match rec {
                    Some(r) if *r.user_name == *user => out.push(r),
                    _ => dead.push(m),
                }
            }
            if at_end {
                break;
            }
        }
        if let Err(e) = self.unindex(user, &dead).await {
            tracing::debug!("cannot drop ended sessions from a user's set: {e}");
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn reap_sessions(
        &self,
        now: DateTime<Utc>,
        _idle: Duration,
        _lifetime: Option<Duration>,
    ) -> StoreResult<Reaped> {
        // Session keys expire by their TTL, which takes their records (key and user); this
        // drops their entries from the live set.
        let n: usize = self
            .query(
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(self.live_key())
                    .arg("-inf")
                    .arg(ms(now)),
            )
            .await?;
        Ok(Reaped {
            count: n,
            sessions: Vec::new(),
        })
    }

    async fn put_ticket(&self, digest: IdDigest, ticket: Ticket) -> StoreResult<()> {
        let key = self.k(&format!("t:{}", digest.to_hex()));
        self.set_until(key, &ticket, ticket.expires).await
    }

    async fn take_ticket(&self, digest: &IdDigest) -> StoreResult<Option<Ticket>> {
        let key = self.k(&format!("t:{}", digest.to_hex()));
        self.json(redis::cmd("GETDEL").arg(key), "ticket").await
    }

    async fn purge_tickets(&self, _now: DateTime<Utc>) -> StoreResult<usize> {
        // Tickets and tokens carry their expiry as a TTL.
        Ok(0)
    }

    async fn put_token(&self, digest: IdDigest, token: TokenRecord) -> StoreResult<()> {
        let key = self.k(&format!("tok:{}", digest.to_hex()));
        self.set_until(key, &token, token.expires).await
    }

    async fn get_token(&self, digest: &IdDigest) -> StoreResult<Option<TokenRecord>> {
        let key = self.k(&format!("tok:{}", digest.to_hex()));
        self.json(redis::cmd("GET").arg(key), "token").await
    }

    async fn revoke_token(&self, digest: &IdDigest) -> StoreResult<()> {
        let _: i64 = self
            .query(redis::cmd("DEL").arg(self.k(&format!("tok:{}", digest.to_hex()))))
            .await?;
        Ok(())
    }

    async fn message(&self) -> StoreResult<String> {
        let v: Option<String> = self.query(redis::cmd("GET").arg(self.k("message"))).await?;
        Ok(v.unwrap_or_default())
    }

    async fn set_message(&self, message: &str) -> StoreResult<()> {
        let _: () = self
            .query(redis::cmd("SET").arg(self.k("message")).arg(message))
            .await?;
        Ok(())
    }

    async fn lock_state(&self, user: &str) -> StoreResult<LockState> {
        let (f, u, a): (Option<u32>, Option<i64>, Option<String>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(self.k(&format!("lock:{user}")))
                    .arg("f")
                    .arg("u")
                    .arg("a"),
            )
            .await?;
        Ok(LockState {
            failures: f.unwrap_or(0),
            locked_until: u.filter(|u| *u >= 0).map(from_ms),
            account: a.unwrap_or_default(),
        })
    }

    async fn record_login_failure(
        &self,
        user: &str,
        account: &str,
        now: DateTime<Utc>,
        max_failures: u32,
        lock_for: Duration,
    ) -> StoreResult<LockState> {
        let (f, u): (String, String) = self
            .script(
                &self.inner.scripts.fail,
                &[&self.k(&format!("lock:{user}"))],
                &[
                    ms(now).to_string(),
                    max_failures.to_string(),
                    lock_for.num_milliseconds().to_string(),
                    account.to_owned(),
                ],
            )
            .await?;
        let u: i64 = u.parse().map_err(|e| corrupt("lock", e))?;
        Ok(LockState {
            failures: f.parse().map_err(|e| corrupt("lock", e))?,
            locked_until: (u >= 0).then(|| from_ms(u)),
            account: account.to_owned(),
        })
    }

    async fn clear_login_failures(&self, user: &str) -> StoreResult<()> {
        let _: i64 = self
            .query(redis::cmd("DEL").arg(self.k(&format!("lock:{user}"))))
            .await?;
        Ok(())
    }

    async fn entity(&self, id: &str) -> StoreResult<Option<Entity>> {
        let e = self
            .json(
                redis::cmd("HGET").arg(self.k("{inv}:entities")).arg(id),
                "entity",
            )
            .await?;
        Ok(e.or_else(|| (id == ROOT_FOLDER).then(Entity::root)))
    }

    async fn entities(&self) -> StoreResult<Vec<Entity>> {
        Ok(self.inventory().await?.1.entities())
    }

    async fn create_entity(
        &self,
        parent: &str,
        name: &str,
        kind: CreateKind,
    ) -> StoreResult<Result<Entity, CreateError>> {
        // Optimistic: compute the change on a snapshot, apply it only if nobody changed
        // the inventory meanwhile; otherwise start again.
        for _ in 0..50 {
            let (ver, mut state) = self.inventory().await?;
            let (entity, muts) = match state.create_entity(parent, name, kind) {
                Ok(x) => x,
                Err(e) => return Ok(Err(e)),
            };
            let mut args = vec![ver];
            for m in &muts {
                if let Mutation::PutEntity { entity } = m {
                    args.push(entity.id.clone());
                    args.push(to_json(entity)?);
                }
            }
            let done: i64 = self
                .script(
                    &self.inner.scripts.cas_inventory,
                    &[&self.k("{inv}:entities"), &self.k("{inv}:ver")],
                    &args,
                )
                .await?;
            if done == 1 {
                return Ok(Ok(entity));
            }
        }
        Err(StoreError::Unavailable(
            "the inventory is changing too fast to create an entity; retry".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:pw@h:1/2?x=1,redis://h2:3"),
            "rediss://app:***@h:1/2?x=1,redis://h2:3"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("redis://app@h:1"), "redis://app@h:1");
        // An unescaped '/' in the password no longer ends the part that is masked.
        assert_eq!(
            redact_url("redis://:pa/ss@h:1/0,redis://:x@h2:2"),
            "redis://:***@h:1/0,redis://:***@h2:2"
        );
    }
}
