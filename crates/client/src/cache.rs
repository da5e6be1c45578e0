//! govmomi's on-disk session cache (`session/cache`), compatible both ways with govc, and
//! safer.
//!
//! Layout: `$GOVMOMI_HOME` (default `~/.govmomi`) with `sessions/` (SOAP) and
//! `rest_sessions/` (vAPI). A file is named by the hash of
//! `"<scheme>://<user>@<host><path>#insecure=<bool>"` (the password, query and fragment
//! stripped; the user empty if none; the host and port as the URL wrote them, as govc's Go
//! net/url keeps them): SHA-256 (64 hex) in current govmomi, SHA-1 (40 hex) in older releases such
//! as govc 0.24. vsess reads both names and writes both, so old and new govc and vsess
//! share one session. The file holds govc's JSON: the cookie, the URL and the
//! ServiceContent; never a password.
//!
//! Beyond govmomi: directories are 0700 and files 0600; writes go to a temp file and are
//! renamed into place; a per-endpoint lock file serialises processes, so many processes
//! started at once create one session; a corrupt file is ignored with a warning and
//! replaced. With a server that has unified sessions (vsess, vCenter 8.0U3), the SOAP
//! session also serves vAPI, so [`Session::login_rest`] reuses it instead of logging in
//! twice.
//!
//! Beside govc's file, vsess keeps a [`Hint`] (`sessions/.<sha256 name>.vsess.json`, 0600):
//! what it learned with that session (its `UserSession`, the negotiated vim25 version,
//! whether the server offers `/v2/session`), tied to the session cookie by its SHA-256.
//! govc opens its files by name and never reads it; a session that govc replaces has
//! another cookie, so the hint no longer applies and is ignored. It lets
//! [`Session::resume`] use a cached session with no round trip at all, and
//! [`Session::login`] skip version negotiation when it validates a cached session.
//!
//! Beyond govmomi, too: a client that [`Session::load`], [`Session::login`] or
//! [`Session::save`] returned or saved stays attached to the cache ([`Session::attach`]).
//! When its session dies and it logs in again by itself (the client keeps the password,
//! see [`crate::vsphere`]), the new session is written back here, files and hint, so the
//! next process (vsess or govc) reuses it instead of trying the dead one and logging in
//! again. That relogin runs under the same lock as [`Session::login`]: of several
//! processes whose shared session died, the first logs in and caches the new session,
//! and the others find it there and use it, so they log in once between them. A valid
//! session in the cache is never replaced; only a dead one (or none) is. govmomi's cache
//! is written only by its `Login`, and govc never logs in again by itself.
use crate::error::{Error, Result};
use crate::tls::{Timeouts, Tls};
use crate::vsphere::{url_credentials, Client};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use url::Url;
use vsess_core::UserSession;
use vsess_store::{ensure_private_dir, replace_private, write_private_atomic};
use vsess_wire::xml::Element;

/// The `path` that names the SOAP (vim25) session cache in [`Session::key_string`] and
/// [`Session::file_names`]; its files live in `$GOVMOMI_HOME/sessions`.
pub const SOAP_PATH: &str = "/sdk";
/// The `path` that names the vAPI (REST) session cache; its files live in
/// `$GOVMOMI_HOME/rest_sessions`.
pub const REST_PATH: &str = "/rest";

/// `$GOVMOMI_HOME`, or `~/.govmomi`.
pub fn home() -> PathBuf {
    match std::env::var_os("GOVMOMI_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".govmomi"),
    }
}

/// govmomi's `session/cache.Session`: one endpoint and user's entry in the on-disk cache
/// (see the module docs). Build it with [`Session::new`], adjust the public fields, then
/// [`Session::login`].
#[derive(Clone)]
pub struct Session {
    /// The endpoint, with `user:password@` (percent-encoded) when a login may be needed;
    /// the user is part of the cache key, the password never is.
    pub url: Url,
    /// Defaults to `$GOVMOMI_HOME/sessions`.
    pub dir_soap: Option<PathBuf>,
    /// Defaults to `$GOVMOMI_HOME/rest_sessions`.
    pub dir_rest: Option<PathBuf>,
    /// Skip certificate verification (part of the cache key, as in govmomi); when set,
    /// `tls` is ignored.
    pub insecure: bool,
    /// Do not cache at all (govmomi's `Passthrough`): log in every time, never read, write
    /// or lock the files.
    pub passthrough: bool,
    /// Ignore a cached session and log in again (the new one is cached).
    pub reauth: bool,
    /// TLS settings when not `insecure` (default: [`Tls::Verify`]); not part of the
    /// cache key.
    pub tls: Tls,
    /// How long the clients it makes wait for the server (default: 10 s to connect,
    /// 60 s per request). [`Session::login`] holds the cache's lock while it talks to the
    /// server, so these also bound how long other processes wait for it.
    pub timeouts: Timeouts,
    /// `host[:port]` exactly as [`Session::new`] was given it. `url` lowercases the host
    /// and drops a default port; Go's net/url, and so govc's cache key, keeps both.
    host_as_given: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", &self.endpoint().as_str())
            .field("insecure", &self.insecure)
            .field("passthrough", &self.passthrough)
            .field("reauth", &self.reauth)
            .finish()
    }
}

/// The result of a cached login ([`Session::login`], [`Session::load`]).
#[derive(Debug, Clone)]
pub struct Login {
    /// The logged-in client, attached to the cache (unless `passthrough`); from
    /// [`Session::login`] it also holds the URL's password, if any, for relogin.
    pub client: Client,
    /// True when a cached session was valid and reused (no Login was sent).
    pub reused: bool,
    /// The session as the server describes it (`vim.UserSession`: its key, user, login
    /// time, ...), from `currentSession` for a reused session or from `Login`.
    pub session: UserSession,
}

/// A cached session used as is, not validated (see [`Session::resume`]).
#[derive(Debug, Clone)]
pub struct Resumed {
    /// Holds the cached session id and the version negotiated for it; no password, so a
    /// dead session is never replaced behind the cache's back.
    pub client: Client,
    /// The session as it was when vsess last validated it or logged in.
    pub session: UserSession,
    /// Whether the server offered `/v2/session` when vsess last asked (`None`: unknown).
    pub self_service: Option<bool>,
}

/// What vsess learned about one cached SOAP session, kept beside govc's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    /// SHA-256 (hex) of the session cookie this describes.
    cookie_sha256: String,
    /// The vim25 version negotiated when the session was made or validated.
    pub version: String,
    /// The session's `vim.UserSession` when it was made or last validated (its login
    /// and last-active times may be stale).
    pub session: UserSession,
    /// Whether the server offers `/v2/session` (`None`: not asked yet).
    #[serde(default)]
    pub self_service: Option<bool>,
}

fn cookie_digest(cookie: &str) -> String {
    crate::digest::sha256_hex(cookie.as_bytes())
}

impl Hint {
    fn new(cookie: &str, version: &str, session: UserSession, self_service: Option<bool>) -> Self {
        Self {
            cookie_sha256: cookie_digest(cookie),
            version: version.to_owned(),
            session,
            self_service,
        }
    }

    /// Whether it describes the session with this cookie.
    pub fn describes(&self, cookie: &str) -> bool {
        self.cookie_sha256 == cookie_digest(cookie)
    }
}

/// Go's `url.User(name).String()` escaping of a user name.
fn go_escape_user(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'~' | b'$' | b'&' | b'+' | b',' | b';' | b'='
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `host[:port]` as written in `raw` (a URL with a scheme): what Go's `url.Parse` keeps
/// as `URL.Host`, between the `://` (and any `user@`) and the path, query or fragment.
fn host_as_given(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    })
}

/// Go's `URL.String()` escaping of a host (its `encodeHost` mode): ASCII letters and
/// digits, `-._~` and `!$&'()*+,;=:[]<>"` as they are, anything else (bytes of
/// non-ASCII names) as `%XX`.
fn go_escape_host(host: &str) -> String {
    let mut out = String::new();
    for b in host.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'<'
                    | b'>'
                    | b'"'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Session {
    /// A cache session for `url` (`https://user:pass@host:port/sdk`; `https://` and `/sdk`
    /// added when missing), govmomi's defaults. No file is touched. [`Error::Config`] for
    /// an unparsable URL or a `\` before the host.
    pub fn new(url: &str, insecure: bool) -> Result<Self> {
        // Spaces and line ends around a URL (a CRLF environment file, a pasted value) are
        // dropped, as a URL parser drops them: kept, they would name another cache entry
        // for the same server (and so another session). Inside one, they are refused.
        let url = url.trim_matches(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
        if url.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(Error::Config(format!(
                "'{}' is not a valid URL: it holds a space or a control character",
                vsess_core::redact::redact_url(url).escape_debug()
            )));
        }
        crate::vsphere::check_no_backslash_before_host(url)?;
        let with_scheme = if url.contains("://") {
            url.to_owned()
        } else {
            format!("https://{url}")
        };
        let mut u = Url::parse(&with_scheme).map_err(|e| {
            Error::Config(format!(
                "'{}' is not a valid URL: {e}",
                vsess_core::redact::redact_url(url)
            ))
        })?;
        if u.path() == "/" || u.path().is_empty() {
            u.set_path(SOAP_PATH);
        }
        Ok(Self {
            url: u,
            dir_soap: None,
            dir_rest: None,
            insecure,
            passthrough: false,
            reauth: false,
            tls: if insecure { Tls::Insecure } else { Tls::Verify },
            timeouts: Timeouts::default(),
            host_as_given: host_as_given(&with_scheme).map(str::to_owned),
        })
    }

    /// The URL without password, query and fragment (govmomi's `Endpoint()`).
    pub fn endpoint(&self) -> Url {
        let mut p = self.url.clone();
        let _ = p.set_password(None);
        p.set_query(None);
        p.set_fragment(None);
        p
    }

    /// [`endpoint`](Self::endpoint) as text, with the host as the URL given to
    /// [`Session::new`] wrote it: its case, and its port even when it is the scheme's
    /// default, which [`Url`] would drop. The cache files are named by that host, as govc
    /// names them, so a session made again from this text finds them.
    pub fn endpoint_as_given(&self) -> String {
        let e = self.endpoint();
        let Some(host) = self.given_host() else {
            return e.to_string();
        };
        let user = match e.username() {
            "" => String::new(),
            u => format!("{u}@"),
        };
        format!("{}://{user}{host}{}", e.scheme(), e.path())
    }

    fn user(&self) -> String {
        url_credentials(&self.url)
            .map(|(u, _)| u)
            .unwrap_or_default()
    }

    /// `host[:port]` as govc has it: as the URL given to [`Session::new`] wrote it (its
    /// case, and its port even when it is the scheme's default), escaped as Go's
    /// `URL.String()` does. If `url` has since been pointed at another host or port, its
    /// own `host[:port]`.
    fn host(&self) -> String {
        if let Some(given) = self.given_host() {
            return go_escape_host(given);
        }
        match (self.url.host_str(), self.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => String::new(),
        }
    }

    /// The host as the URL given to [`Session::new`] wrote it, unless `url` has since been
    /// pointed at another host or port.
    fn given_host(&self) -> Option<&str> {
        let given = self.host_as_given.as_deref()?;
        let same = Url::parse(&format!("{}://{given}", self.url.scheme())).is_ok_and(|g| {
            g.host() == self.url.host()
                && g.port_or_known_default() == self.url.port_or_known_default()
        });
        same.then_some(given)
    }

    /// The string govc hashes for `path` (`/sdk` or `/rest`): its `soap.ParseURL` gives
    /// the URL a user (an empty one if none), and the cache's `Endpoint()` and `key()`
    /// make `"<scheme>://<user>@<host as given><path>#insecure=<bool>"` of it with Go's
    /// `URL.String()`.
    pub fn key_string(&self, path: &str) -> String {
        format!(
            "{}://{}@{}{path}#insecure={}",
            self.url.scheme(),
            go_escape_user(&self.user()),
            self.host(),
            self.insecure
        )
    }

    /// The cache file names for `path`: current govmomi's (SHA-256) first, then older
    /// releases' (SHA-1).
    pub fn file_names(&self, path: &str) -> [String; 2] {
        let key = self.key_string(path);
        [
            crate::digest::sha256_hex(key.as_bytes()),
            crate::digest::sha1_hex(key.as_bytes()),
        ]
    }

    fn dir(&self, path: &str) -> PathBuf {
        match path {
            REST_PATH => self
                .dir_rest
                .clone()
                .unwrap_or_else(|| home().join("rest_sessions")),
            _ => self
                .dir_soap
                .clone()
                .unwrap_or_else(|| home().join("sessions")),
        }
    }

    fn files(&self, path: &str) -> Vec<PathBuf> {
        let dir = self.dir(path);
        self.file_names(path).iter().map(|n| dir.join(n)).collect()
    }

    fn cache_err(path: &Path, e: impl std::fmt::Display) -> Error {
        Error::Cache {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Takes the per-endpoint lock (a separate file, so govc never sees it).
    async fn lock(&self, path: &str) -> Result<File> {
        let dir = self.dir(path);
        ensure_private_dir(&dir).map_err(|e| Self::cache_err(&dir, e))?;
        let lock_path = dir.join(format!(".{}.lock", self.file_names(path)[0]));
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| Self::cache_err(&lock_path, e))?;
        // Uncontended (the usual case), the lock is taken here; otherwise a blocking thread
        // waits for it, so the runtime is not blocked.
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(Self::cache_err(&lock_path, e)),
        }
        tokio::task::spawn_blocking(move || {
            f.lock().map_err(|e| Self::cache_err(&lock_path, e))?;
            Ok(f)
        })
        .await
        .map_err(|e| Error::Cache {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?
    }

    /// Reads the first cache file for `path` that parses; corrupt files are reported and
    /// skipped (a later save replaces them).
    fn read(&self, path: &str) -> Option<Value> {
        self.read_all(path).into_iter().next()
    }

    /// Every cache file for `path` that parses, current govmomi's name first. They can
    /// differ: govc 0.24 rewrites only the SHA-1 file when it logs in again.
    fn read_all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for file in self.files(path) {
            let data = match std::fs::read(&file) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(file = %file.display(), "cannot read the session cache: {e}");
                    continue;
                }
            };
            match first_json_value(&data) {
                Ok(v) if v.is_object() => out.push(v),
                _ => tracing::warn!(
                    file = %file.display(),
                    "ignoring a corrupt session cache file; it will be replaced"
                ),
            }
        }
        out
    }

    fn write(&self, path: &str, doc: &Value) -> Result<()> {
        let data = serde_json::to_vec(doc).map_err(|e| Error::Cache {
            path: path.into(),
            message: e.to_string(),
        })?;
        let dir = self.dir(path);
        ensure_private_dir(&dir).map_err(|e| Self::cache_err(&dir, e))?;
        for file in self.files(path) {
            write_private_atomic(&file, &data).map_err(|e| Self::cache_err(&file, e))?;
        }
        Ok(())
    }

    fn hint_path(&self) -> PathBuf {
        self.dir(SOAP_PATH)
            .join(format!(".{}.vsess.json", self.file_names(SOAP_PATH)[0]))
    }

    /// The hint kept beside the cached SOAP session, whichever cookie it describes.
    pub fn hint(&self) -> Option<Hint> {
        let data = std::fs::read(self.hint_path()).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Keeps `hint` (best effort: it only saves round trips). Not synced to disk: after a
    /// crash it may be lost or unreadable, and is then ignored.
    fn write_hint(&self, hint: &Hint) {
        let path = self.hint_path();
        let r = (|| -> std::io::Result<()> {
            let data = serde_json::to_vec(hint)?;
            ensure_private_dir(&self.dir(SOAP_PATH))?;
            replace_private(&path, &data)
        })();
        if let Err(e) = r {
            tracing::debug!(file = %path.display(), "cannot keep the session hint: {e}");
        }
    }

    /// Records what was learned with `client`'s session, unless the hint already says it.
    /// `self_service: None` keeps what the hint said for that same session.
    fn update_hint(&self, client: &Client, session: &UserSession, self_service: Option<bool>) {
        if self.passthrough {
            return;
        }
        let Some(cookie) = client.session_id() else {
            return;
        };
        let old = self.hint().filter(|h| h.describes(&cookie));
        let self_service = self_service.or(old.as_ref().and_then(|h| h.self_service));
        let new = Hint::new(&cookie, client.version(), session.clone(), self_service);
        let same = old.is_some_and(|o| {
            o.version == new.version
                && o.self_service == new.self_service
                && o.session.key == new.session.key
                && o.session.user_name == new.session.user_name
        });
        if !same {
            self.write_hint(&new);
        }
    }

    /// Records whether the server offers `/v2/session`, for [`Session::resume`].
    pub fn remember_self_service(&self, login: &Login, available: bool) {
        self.update_hint(&login.client, &login.session, Some(available));
    }

    /// The cached session, as is: no round trip, no lock, not validated. `None` unless
    /// vsess left a hint for the cached cookie (and with `passthrough` or `reauth`).
    ///
    /// The first call authorised by the session tells whether it is still valid. If it
    /// is not (HTTP 401, NotAuthenticated), or the server no longer answers as the hint
    /// says, call [`Session::login`]: it validates the cached session or logs in again
    /// (once, under the lock), and corrects the cache.
    pub fn resume(&self) -> Result<Option<Resumed>> {
        if self.passthrough || self.reauth {
            return Ok(None);
        }
        let Some(hint) = self.hint() else {
            return Ok(None);
        };
        for file in self.files(SOAP_PATH) {
            let Ok(data) = std::fs::read(&file) else {
                continue;
            };
            let Some(cookie) = soap_cookie_in(&data) else {
                continue;
            };
            if hint.describes(&cookie) {
                let client = Client::with_version_within(
                    self.url.as_str(),
                    self.tls(),
                    &hint.version,
                    self.timeouts,
                )?;
                client.set_session_id(Some(cookie));
                return Ok(Some(Resumed {
                    client,
                    session: hint.session,
                    self_service: hint.self_service,
                }));
            }
        }
        Ok(None)
    }

    fn tls(&self) -> Tls {
        if self.insecure {
            Tls::Insecure
        } else {
            self.tls.clone()
        }
    }

    fn soap_client_json(&self, path: &str, version: &str, cookies: Value) -> Value {
        json!({
            "Cookies": cookies,
            "URL": {"Scheme": self.url.scheme(), "Host": self.host(), "Path": path},
            "Insecure": self.insecure,
            "Version": version,
        })
    }

    /// `Login`: the cached session if it is valid (one round trip), otherwise a new login
    /// that is then cached. Concurrent processes wait for each other. The client returned
    /// is attached to the cache ([`Session::attach`]), unless `passthrough`.
    ///
    /// When vsess's hint describes a cached session, the vim25 version negotiated for it
    /// is used without asking again; if that session is no longer valid, the version is
    /// negotiated afresh before logging in.
    ///
    /// Errors: no valid cached session and no user and password in `url` is
    /// [`Error::Authentication`], as is a refused password; a cache directory or lock
    /// that cannot be used is [`Error::Cache`].
    pub async fn login(&self) -> Result<Login> {
        let creds = url_credentials(&self.url);
        let with_creds = |client: Client| {
            // A user without a password (the CLI tries the cache before it asks for one)
            // gives nothing to log in again with: an empty password would only be refused,
            // and count towards the account's lockout.
            if let Some((u, p)) = creds.as_ref().filter(|(_, p)| !p.is_empty()) {
                client.set_password(u, p);
            }
            client
        };
        if self.passthrough {
            let client = with_creds(
                Client::connect_with(self.url.as_str(), self.tls(), self.timeouts).await?,
            );
            return self.fresh_login(client, creds.clone()).await;
        }
        let _lock = self.lock(SOAP_PATH).await?;
        if !self.reauth {
            let known = self.hint().filter(|h| {
                self.read_all(SOAP_PATH)
                    .iter()
                    .filter_map(soap_cookie)
                    .any(|c| h.describes(&c))
            });
            let client = match &known {
                Some(h) => Client::with_version_within(
                    self.url.as_str(),
                    self.tls(),
                    &h.version,
                    self.timeouts,
                )?,
                None => Client::connect_with(self.url.as_str(), self.tls(), self.timeouts).await?,
            };
            let client = with_creds(client);
            if let Some(login) = self.load(&client).await? {
                return Ok(login);
            }
            if known.is_none() {
                return self.fresh_and_save(client, creds.clone()).await;
            }
        }
        let client =
            with_creds(Client::connect_with(self.url.as_str(), self.tls(), self.timeouts).await?);
        self.fresh_and_save(client, creds.clone()).await
    }

    async fn fresh_and_save(
        &self,
        client: Client,
        creds: Option<(String, String)>,
    ) -> Result<Login> {
        let login = self.fresh_login(client, creds).await?;
        if let Err(e) = self.save(&login.client).await {
            // Nobody would hold the new session, and it would stay open on the server
            // until its idle timeout: end it (best effort).
            if let Err(le) = login.client.logout().await {
                tracing::warn!("cannot log out the new session after failing to cache it: {le}");
            }
            return Err(e);
        }
        self.update_hint(&login.client, &login.session, None);
        Ok(login)
    }

    async fn fresh_login(&self, client: Client, creds: Option<(String, String)>) -> Result<Login> {
        let Some((user, password)) = creds.filter(|(_, p)| !p.is_empty()) else {
            return Err(Error::Authentication(format!(
                "no valid cached session for {} and no credentials to log in with: give a user and password (the URL's user:password)",
                self.endpoint()
            )));
        };
        let session = client.login(&user, &password).await?;
        Ok(Login {
            client,
            reused: false,
            session,
        })
    }

    /// Loads and validates a cached SOAP session (`currentSession`, one round trip per
    /// distinct cached cookie: usually one). Both file names are tried: govc 0.24 rewrites
    /// only the SHA-1 file when it logs in again.
    pub async fn load(&self, client: &Client) -> Result<Option<Login>> {
        let mut tried: Vec<String> = Vec::new();
        for doc in self.read_all(SOAP_PATH) {
            let Some(cookie) = soap_cookie(&doc) else {
                tracing::warn!("a cached session has no vmware_soap_session cookie; ignoring it");
                continue;
            };
            if tried.contains(&cookie) {
                continue;
            }
            tried.push(cookie.clone());
            client.set_session_id(Some(cookie));
            if let Some(session) = client.current_session().await? {
                self.update_hint(client, &session, None);
                self.attach(client);
                return Ok(Some(Login {
                    client: client.clone(),
                    reused: true,
                    session,
                }));
            }
        }
        client.set_session_id(None);
        Ok(None)
    }

    /// Saves the client's SOAP session (both file names), in govc's format, and links the
    /// client to this cache ([`Session::attach`]). It replaces what the files hold, as a
    /// login with `reauth` does, even a session that is still valid, which is then neither
    /// cached nor logged out: [`Session::login`] is what keeps a valid cached session.
    pub async fn save(&self, client: &Client) -> Result<()> {
        if self.passthrough {
            return Ok(());
        }
        let Some(id) = client.session_id() else {
            return Err(Error::Config("the client has no session to save".into()));
        };
        let content = client.service_content().await?;
        self.write_soap(&id, client.version(), element_json(&content))?;
        self.attach(client);
        Ok(())
    }

    /// Writes a SOAP session (cookie `id`) with `content` as its ServiceContent.
    fn write_soap(&self, id: &str, version: &str, content: Value) -> Result<()> {
        let doc = json!({
            "SoapClient": self.soap_client_json(
                SOAP_PATH,
                version,
                json!([{"Name": "vmware_soap_session", "Value": id, "Path": "/", "Secure": !self.url.scheme().eq("http"), "HttpOnly": true}]),
            ),
            "ServiceContent": content,
        });
        self.write(SOAP_PATH, &doc)
    }

    /// Links `client` to this cache, so that when its session dies and it logs in again
    /// (it needs a password for that) the cache follows:
    ///
    /// - The relogin takes the cache's per-endpoint lock, as [`Session::login`] does, so
    ///   it is single-flight across processes as well as within one.
    /// - If a cache file now holds another session than the one that failed (another
    ///   process has logged in again already) and that session is valid, the client uses
    ///   it: no Login, and nothing is written but the hint.
    /// - Otherwise it logs in, then writes the new cookie to both file names (same files,
    ///   permissions and atomic rename as [`Session::save`]) and the [`Hint`] for it.
    ///   Only a dead session, or none, is ever replaced: a valid one found under the lock
    ///   is adopted instead.
    /// - Only a relogin with this cache's user's credentials touches it; a failure to
    ///   write it is logged, and the call that needed the relogin still succeeds.
    ///
    /// [`Session::load`], [`Session::login`] and [`Session::save`] attach the client they
    /// return or save; call this for a client made otherwise (a [`Resumed`] one, given a
    /// password with [`Client::set_password`]). Nothing happens with `passthrough`.
    pub fn attach(&self, client: &Client) {
        if self.passthrough {
            return;
        }
        let mut link = self.clone();
        // The client keeps its own credentials; the link needs no password.
        let _ = link.url.set_password(None);
        client.set_cache(Some(Arc::new(link)));
    }

    /// Whether a login as `user` makes a session for this cache's files.
    pub(crate) fn is_for_user(&self, user: &str) -> bool {
        self.user() == user
    }

    /// The relogin of a client attached to this cache ([`Session::attach`]). `failed` is
    /// the session that was refused; the client's single-flight lock is held.
    pub(crate) async fn relogin(
        &self,
        client: &Client,
        failed: Option<&str>,
        user: &str,
        password: &str,
    ) -> Result<()> {
        let _lock = match self.lock(SOAP_PATH).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("cannot lock the session cache, so not updating it: {e}");
                return client.login_inner(user, password, None).await.map(|_| ());
            }
        };
        let docs = self.read_all(SOAP_PATH);
        // Another process may have logged in again already: use its session if valid.
        let mut tried: Vec<String> = Vec::new();
        for cookie in docs.iter().filter_map(soap_cookie) {
            if Some(cookie.as_str()) == failed || tried.contains(&cookie) {
                continue;
            }
            tried.push(cookie.clone());
            if let Some(session) = client.current_session_of(Some(&cookie)).await? {
                tracing::info!(
                    key = %session.key,
                    "another process has cached a new session; using it"
                );
                client.set_session_id(Some(cookie));
                self.update_hint(client, &session, None);
                return Ok(());
            }
        }
        let session = client.login_inner(user, password, None).await?;
        if let Err(e) = self.store_relogin(client, &session, &docs).await {
            tracing::warn!("logged in again, but cannot update the session cache: {e}");
        }
        Ok(())
    }

    /// Caches the session a relogin made (files and hint), reusing a cached
    /// ServiceContent (it describes the server, not the session) when there is one.
    async fn store_relogin(
        &self,
        client: &Client,
        session: &UserSession,
        docs: &[Value],
    ) -> Result<()> {
        let Some(id) = client.session_id() else {
            return Err(Error::Config("the client has no session to save".into()));
        };
        let cached = docs
            .iter()
            .filter_map(|d| get_ci(d, "ServiceContent"))
            .find(|c| c.is_object())
            .cloned();
        let content = match cached {
            Some(c) => c,
            None => element_json(&client.service_content_once().await?),
        };
        self.write_soap(&id, client.version(), content)?;
        // Whether the server offers /v2/session does not change with the session.
        let self_service = self.hint().and_then(|h| h.self_service);
        self.write_hint(&Hint::new(
            &id,
            client.version(),
            session.clone(),
            self_service,
        ));
        tracing::debug!(key = %session.key, "cached the session of the relogin");
        Ok(())
    }

    /// Logs out, and removes the cache files that hold this session (and the hint that
    /// describes it). Only those: another process may have cached a newer session since
    /// this one was read, and its files stay. A `passthrough` session was never cached, so
    /// the files are left alone (govmomi's `Logout` never touches them). If the Logout
    /// failed (a timeout, a lost connection), the session may still be live, and its files
    /// stay for another try, as govmomi keeps them; unless the server said that the
    /// session is already gone.
    pub async fn logout(&self, client: &Client) -> Result<()> {
        // Before the logout, which forgets it.
        let mine = client.session_id().filter(|_| !self.passthrough);
        let r = client.logout().await;
        let Some(mine) = mine else {
            return r;
        };
        if r.as_ref().is_err_and(|e| !e.is_unauthenticated()) {
            return r;
        }
        let unquoted = mine.trim_matches('"').to_owned();
        let forgotten = self
            .forget(SOAP_PATH, |doc| {
                soap_cookie(doc).is_some_and(|c| c.trim_matches('"') == unquoted)
            })
            .await;
        if forgotten.is_ok() && self.hint().is_some_and(|h| h.describes(&mine)) {
            let _ = std::fs::remove_file(self.hint_path());
        }
        r.and(forgotten)
    }

    /// Under the lock, removes the cache files for `path` whose document `holds` says are
    /// the session being ended; a corrupt file is left for the next save to replace.
    async fn forget(&self, path: &str, holds: impl Fn(&Value) -> bool) -> Result<()> {
        let _lock = self.lock(path).await?;
        for file in self.files(path) {
            let Ok(data) = std::fs::read(&file) else {
                continue;
            };
            if first_json_value(&data).is_ok_and(|doc| holds(&doc)) {
                std::fs::remove_file(&file).map_err(|e| Self::cache_err(&file, e))?;
            }
        }
        Ok(())
    }

    /// The vAPI session: the cached one if valid; else, when the server has unified
    /// sessions, the SOAP session of `soap`; else a new legacy REST login. Returns the id
    /// and whether it was reused from the cache.
    pub async fn login_rest(&self, soap: Option<&Client>) -> Result<(String, bool)> {
        let client = match soap {
            Some(c) => c.clone(),
            None => Client::connect_with(self.url.as_str(), self.tls(), self.timeouts).await?,
        };
        let _lock = if self.passthrough {
            None
        } else {
            Some(self.lock(REST_PATH).await?)
        };
        if !self.passthrough && !self.reauth {
            if let Some(id) = self.read(REST_PATH).as_ref().and_then(rest_session_id) {
                if client.legacy_rest_session(&id).await?.is_some() {
                    return Ok((id, true));
                }
            }
        }
        // Whether `id` is a new legacy REST session of ours (not the SOAP client's).
        let mut fresh = false;
        let id = match soap {
            Some(c) if c.supports_unified_sessions().await? => c.session_id().unwrap_or_default(),
            _ => {
                let (user, password) = url_credentials(&self.url).ok_or_else(|| {
                    Error::Authentication(
                        "no valid cached REST session and no credentials in the URL".into(),
                    )
                })?;
                fresh = true;
                client.legacy_rest_login(&user, &password).await?
            }
        };
        if !self.passthrough {
            let doc = json!({
                "SoapClient": self.soap_client_json(REST_PATH, client.version(), json!([])),
                "SessionID": id,
            });
            if let Err(e) = self.write(REST_PATH, &doc) {
                // The caller never gets the id: end the session rather than leave it open
                // on the server (best effort). A unified session is the SOAP client's.
                if fresh {
                    if let Err(le) = client.legacy_rest_logout(&id).await {
                        tracing::warn!(
                            "cannot log out the new REST session after failing to cache it: {le}"
                        );
                    }
                }
                return Err(e);
            }
        }
        Ok((id, false))
    }

    /// Ends the vAPI session and removes the cache files that hold it (see
    /// [`Session::logout`]).
    pub async fn logout_rest(&self, client: &Client, id: &str) -> Result<()> {
        let r = client.legacy_rest_logout(id).await;
        if self.passthrough || r.as_ref().is_err_and(|e| !e.is_unauthenticated()) {
            return r;
        }
        let forgotten = self
            .forget(REST_PATH, |doc| rest_session_id(doc).as_deref() == Some(id))
            .await;
        r.and(forgotten)
    }
}

/// Field lookup that ignores case, as Go's JSON decoding does.
fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn soap_cookie(doc: &Value) -> Option<String> {
    let cookies = get_ci(get_ci(doc, "SoapClient")?, "Cookies")?.as_array()?;
    cookies.iter().find_map(soap_cookie_of)
}

/// [`soap_cookie`] straight from a file's bytes, skipping everything else (the
/// ServiceContent is most of the file) instead of building a JSON tree. Keys match
/// case-insensitively, as Go's JSON decoding does.
fn soap_cookie_in(data: &[u8]) -> Option<String> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// Visits a JSON object, handing the value of the key `key` (any case) to `inner`.
    struct Field<V> {
        key: &'static str,
        inner: V,
    }
    impl<'de, V: Visitor<'de, Value = Option<String>> + Copy> Visitor<'de> for Field<V> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "an object with {}", self.key)
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if found.is_none() && k.eq_ignore_ascii_case(self.key) {
                    found = map.next_value_seed(Seed(self.inner))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    #[derive(Clone, Copy)]
    struct Seed<V>(V);
    impl<'de, V: Visitor<'de, Value = Option<String>>> serde::de::DeserializeSeed<'de> for Seed<V> {
        type Value = Option<String>;
        fn deserialize<D: serde::Deserializer<'de>>(
            self,
            d: D,
        ) -> std::result::Result<Self::Value, D::Error> {
            d.deserialize_any(self.0)
        }
    }
    /// `Cookies`: the value of the first `vmware_soap_session` cookie.
    #[derive(Clone, Copy)]
    struct Cookies;
    impl<'de> Visitor<'de> for Cookies {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of cookies")
        }
        fn visit_seq<A: SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(c) = seq.next_element::<Value>()? {
                if found.is_none() {
                    found = soap_cookie_of(&c);
                }
            }
            Ok(found)
        }
        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
    }
    #[derive(Clone, Copy)]
    struct SoapClient;
    impl<'de> Visitor<'de> for SoapClient {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a SOAP client")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            Field {
                key: "Cookies",
                inner: Cookies,
            }
            .visit_map(map)
        }
        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(data);
    let cookie = de
        .deserialize_map(Field {
            key: "SoapClient",
            inner: SoapClient,
        })
        .ok()?;
    // What follows the first value is not read (see `first_json_value`).
    cookie
}

/// The first JSON value in a cache file, as Go's `json.Decoder` reads it: whatever follows
/// is ignored. govc rewrites its cache files in place without truncating them
/// (`os.OpenFile(p, O_CREATE|O_WRONLY)` in govmomi's session/cache), so a shorter session
/// leaves the end of the longer one behind it; read strictly, the file would look corrupt,
/// and vsess would log in again and leave govc's session open.
fn first_json_value(data: &[u8]) -> serde_json::Result<Value> {
    serde_json::Deserializer::from_slice(data)
        .into_iter::<Value>()
        .next()
        .unwrap_or_else(|| serde_json::from_slice::<Value>(data))
}

/// The value of one cookie object if it is `vmware_soap_session`.
fn soap_cookie_of(c: &Value) -> Option<String> {
    (get_ci(c, "Name")?.as_str()? == "vmware_soap_session")
        .then(|| {
            get_ci(c, "Value")?
                .as_str()
                .map(|s| s.trim_matches('"').to_owned())
        })
        .flatten()
}

fn rest_session_id(doc: &Value) -> Option<String> {
    get_ci(doc, "SessionID")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A SOAP data object as JSON with its WSDL field names (Go's JSON decoding matches them
/// to govmomi's fields case-insensitively). A MoRef becomes `{"Type", "Value"}`.
fn element_json(el: &Element) -> Value {
    if let Some(t) = el.attr("type") {
        return json!({"Type": t, "Value": el.text.trim()});
    }
    if el.children.is_empty() {
        return Value::String(el.text.clone());
    }
    let mut m = Map::new();
    for c in &el.children {
        m.insert(c.name.clone(), element_json(c));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected names computed with Go's net/url and crypto/sha1, crypto/sha256, exactly as
    // govmomi's session/cache key() does.
    #[test]
    fn file_names_match_govmomi() {
        let s = Session::new(
            "https://administrator%40vsphere.local:S3cret!@127.0.0.1:8989/sdk",
            true,
        )
        .unwrap();
        assert_eq!(
            s.key_string(SOAP_PATH),
            "https://administrator%40vsphere.local@127.0.0.1:8989/sdk#insecure=true"
        );
        assert_eq!(
            s.file_names(SOAP_PATH),
            [
                "84d132243e28e71cad12031920012bbb9110c18665b83344c6f680a8ef331a63".to_owned(),
                "ab77f4e1ce0d565312d2ae960f1a407124bfdd8e".to_owned(),
            ]
        );
        let s = Session::new(
            "https://administrator%40vsphere.local:S3cret!@127.0.0.1:8989/sdk",
            false,
        )
        .unwrap();
        assert_eq!(
            s.file_names(REST_PATH)[0],
            "3c90d7bee8ed2bf40b756f47f9a4a08360bb030d57fe3a67a9703f4247482441"
        );
        assert_eq!(
            s.file_names(REST_PATH)[1],
            "6d2209fa2435abe6408bc8fb3d77518758679866"
        );
        let s = Session::new(
            "https://VSPHERE.LOCAL%5Cops:x@vc.example.com/sdk?a=b#frag",
            false,
        )
        .unwrap();
        assert_eq!(
            s.file_names(SOAP_PATH)[1],
            "0a4794cc9923b7476e2f664371088698bfea3dac"
        );
        // No user: govc's soap.ParseURL gives the URL an empty one, so the key has "@".
        let s = Session::new("https://127.0.0.1:8989/sdk", true).unwrap();
        assert_eq!(
            s.key_string(SOAP_PATH),
            "https://@127.0.0.1:8989/sdk#insecure=true"
        );
        assert_eq!(
            s.file_names(SOAP_PATH)[0],
            "931ab53712f487b9633655779fd355fe83cddd88881adb785f5445bb6985181e"
        );
    }

    /// A URL with a trailing CR (a CRLF environment file) or spaces around it names the
    /// same cache entry, so the same session; a control character inside one is refused.
    #[test]
    fn spaces_and_line_ends_around_a_url_name_the_same_entry() {
        let clean = Session::new("https://127.0.0.1:8989", true).unwrap();
        for messy in [
            "https://127.0.0.1:8989\r",
            "https://127.0.0.1:8989\r\n",
            " https://127.0.0.1:8989 ",
            "\thttps://127.0.0.1:8989",
        ] {
            let s = Session::new(messy, true).unwrap();
            assert_eq!(
                s.file_names(SOAP_PATH),
                clean.file_names(SOAP_PATH),
                "{messy:?}"
            );
        }
        for bad in ["https://127.0.0.1:8989/s dk", "https://127.0.\n0.1:8989"] {
            assert!(
                matches!(Session::new(bad, true), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }

    // govc keeps the host as written (Go's net/url neither lowercases it nor drops a
    // default port); the url crate does both. Expected keys and names computed with Go's
    // net/url, crypto/sha256 and crypto/sha1 from govc's rule: soap.ParseURL, then
    // session/cache's Endpoint() and key().
    #[test]
    fn file_names_match_govc_for_mixed_case_hosts_and_default_ports() {
        for (url, insecure, key, sha256, sha1) in [
            (
                "https://u:p@VC.Example.com:443/sdk",
                false,
                "https://u@VC.Example.com:443/sdk#insecure=false",
                "3b731b37f6deadb7b62540a521a516dfcc7d83f05f190c8f6fcf01bfe8db40e0",
                "1916300ac683c4a332ffcaf7050af340d4a35083",
            ),
            (
                "VC.EXAMPLE.COM:443",
                false,
                "https://@VC.EXAMPLE.COM:443/sdk#insecure=false",
                "cd89f069a69200ca2117d0f7bdbbf19a5d7079b2a6df2c4334cafc35e02c0868",
                "16f90858fd910a4f675d4c567f7990a83ee487d0",
            ),
            (
                "https://u:p@Vc.Example.COM",
                false,
                "https://u@Vc.Example.COM/sdk#insecure=false",
                "138804531d67f70714501b284730544c03f624991c5d6d6e9cab26a3eafe6365",
                "37de1e67d2ce29f5501a80949eae02944fc852ef",
            ),
            (
                "http://u@Host.Local:80/sdk",
                false,
                "http://u@Host.Local:80/sdk#insecure=false",
                "a742ecf92f7a8681ee88bf14f6630d7f8d117b3d75a19b0bd9d7fc8fd2c85e89",
                "9007a20a472954492b83f1c72a0895e34fec5054",
            ),
            (
                "https://u:p@[FE80::1]:443/sdk",
                false,
                "https://u@[FE80::1]:443/sdk#insecure=false",
                "ef7bbb800e718d8571f27ffb06b6c4db9dcc1e671214a58633e2b1bc4bdcb1bf",
                "83e66bbffdf2c4a5e933f428f47eead263bb16de",
            ),
            (
                "HTTPS://u:p@VC.example.com/sdk/",
                false,
                "https://u@VC.example.com/sdk#insecure=false",
                "1b2a3ab1a275acd781dc99518a4ba36b9aea45dcf7d731a16ea73a8fe4c93f13",
                "9c7244e62cddc49c974cc5de4cd91fc53226f724",
            ),
            (
                "https://u:p@127.0.0.1:08989/sdk",
                false,
                "https://u@127.0.0.1:08989/sdk#insecure=false",
                "7e56a589efef61f1863c27e66fae3148e8ba8164c0a181dd4220420f251264e0",
                "6990960ea004249a7b9176be3a19fbe8d43b1068",
            ),
            // The name govc 0.24.2 itself gave this URL's session file (SHA-1).
            (
                "user:pass@LocalHost:18989",
                true,
                "https://user@LocalHost:18989/sdk#insecure=true",
                "091704e02cd5f43038bad03818366f6f58d0d0cdec93c0bf2bfa5c25a07c8f1d",
                "e6d2fbb1d6ff18466b8955c7ed47975c73312b7e",
            ),
            (
                "https://u:p@Bücher.Example:443/sdk",
                false,
                "https://u@B%C3%BCcher.Example:443/sdk#insecure=false",
                "aa0e3e8cc61ecad8e2ce8ad4aeedc2c465907ba740f557bac401a3ba69e9f3ec",
                "0f3194ee7cd40a70d915ad00a24ab2ff8a4f8589",
            ),
        ] {
            let s = Session::new(url, insecure).unwrap();
            assert_eq!(s.key_string(SOAP_PATH), key, "{url}");
            assert_eq!(
                s.file_names(SOAP_PATH),
                [sha256.to_owned(), sha1.to_owned()],
                "{url}"
            );
        }
        let s = Session::new("https://u:p@VC.Example.com:443/sdk", false).unwrap();
        assert_eq!(
            s.file_names(REST_PATH),
            [
                "c1263b6c7f6125ea5cdeb925e909e0a60874fb8a51ee78e6eb31ab7c32ddb02c".to_owned(),
                "28d990ce91ca7ae11c024f456aa867370fd8cd65".to_owned(),
            ]
        );
        // Another user (as `vsess -u` sets it) keeps the host as given.
        let mut s = Session::new("https://u:p@VC.Example.com:443/sdk", false).unwrap();
        let _ = s.url.set_username("x");
        let _ = s.url.set_password(Some("y"));
        assert_eq!(
            s.file_names(SOAP_PATH)[0],
            "909ad8e00c6c9dd804caa9fce66866273edf26f4bfccb0e87d509fa79b6f0085"
        );
        // A URL pointed elsewhere afterwards is keyed by its own host.
        s.url = Url::parse("https://x:y@other.example:8443/sdk").unwrap();
        assert_eq!(
            s.key_string(SOAP_PATH),
            "https://x@other.example:8443/sdk#insecure=false"
        );
        s.url = Url::parse("https://x:y@vc.example.com:8443/sdk").unwrap();
        assert_eq!(
            s.key_string(SOAP_PATH),
            "https://x@vc.example.com:8443/sdk#insecure=false"
        );
    }

    #[test]
    fn endpoint_strips_password_query_and_fragment() {
        let s = Session::new("https://u:p@h:1/sdk?x=1#y", false).unwrap();
        assert_eq!(s.endpoint().as_str(), "https://u@h:1/sdk");
        assert!(!format!("{s:?}").contains(":p@"));
    }

    /// What the CLI remembers of a login names the same cache files as the URL given:
    /// [`Url`] would lowercase the host and drop a default port.
    #[test]
    fn the_endpoint_as_given_keeps_the_cache_files_of_the_url_given() {
        let given = "https://u%40corp:p@VC01.Example.com:443/sdk?x=1";
        let s = Session::new(given, true).unwrap();
        assert_eq!(
            s.endpoint().as_str(),
            "https://u%40corp@vc01.example.com/sdk"
        );
        assert_eq!(
            s.endpoint_as_given(),
            "https://u%40corp@VC01.Example.com:443/sdk"
        );
        let again = Session::new(&s.endpoint_as_given(), true).unwrap();
        assert_eq!(again.file_names(SOAP_PATH), s.file_names(SOAP_PATH));
        assert_eq!(again.file_names(REST_PATH), s.file_names(REST_PATH));
        // Pointed elsewhere, the URL is its own.
        let mut moved = Session::new(given, true).unwrap();
        moved.url = Url::parse("https://u@other.example:8443/sdk").unwrap();
        assert_eq!(
            moved.endpoint_as_given(),
            "https://u@other.example:8443/sdk"
        );
    }

    #[test]
    fn reads_govc_files_and_skips_corrupt_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::new("https://u:p@127.0.0.1:1/sdk", true).unwrap();
        s.dir_soap = Some(dir.path().to_owned());
        let [new, old] = s.file_names(SOAP_PATH);
        std::fs::write(dir.path().join(&new), b"{corrupt").unwrap();
        // govc 0.24 writes this shape under the SHA-1 name.
        std::fs::write(dir.path().join(&old), br#"{"SoapClient":{"Cookies":[{"Name":"vmware_soap_session","Value":"abc","Path":""}],"URL":{"Scheme":"https"},"Insecure":true,"Version":"7.0"},"ServiceContent":{"SessionManager":{"Type":"SessionManager","Value":"SessionManager"}}}"#).unwrap();
        let doc = s.read(SOAP_PATH).unwrap();
        assert_eq!(soap_cookie(&doc).as_deref(), Some("abc"));
        // Current govmomi's lower-case keys work too.
        let v: Value = serde_json::from_str(
            r#"{"soapClient":{"cookies":[{"name":"vmware_soap_session","value":"\"q\""}]}}"#,
        )
        .unwrap();
        assert_eq!(soap_cookie(&v).as_deref(), Some("q"));
    }

    #[test]
    fn the_quick_cookie_reader_agrees_with_the_full_one() {
        let docs: &[&str] = &[
            r#"{"SoapClient":{"Cookies":[{"Name":"vmware_soap_session","Value":"abc","Path":""}],"URL":{"Scheme":"https"},"Insecure":true,"Version":"7.0"},"ServiceContent":{"SessionManager":{"Type":"SessionManager","Value":"SessionManager"}}}"#,
            r#"{"ServiceContent":{"about":{"a":[1,2,{"b":null}]}},"soapClient":{"cookies":[{"name":"other","value":"x"},{"name":"vmware_soap_session","value":"\"q\""}]}}"#,
            r#"{"SoapClient":{"Cookies":null}}"#,
            r#"{"SoapClient":null}"#,
            r#"{"SoapClient":{"Cookies":[{"Name":"vmware_soap_session"}]}}"#,
            r#"{"soapclient":{"COOKIES":[{"NAME":"vmware_soap_session","VALUE":"up"}]}}"#,
            r#"{}"#,
            r#"[]"#,
            r#"{"SoapClient":{"Cookies":[]}} trailing"#,
            "{\"SoapClient\":{\"Cookies\":[{\"Name\":\"vmware_soap_session\",\"Value\":\"t\"}]}}\n\"Insecure\":true}}\n",
            r#"{corrupt"#,
        ];
        for d in docs {
            let full = first_json_value(d.as_bytes())
                .ok()
                .filter(Value::is_object)
                .as_ref()
                .and_then(soap_cookie);
            assert_eq!(soap_cookie_in(d.as_bytes()), full, "{d}");
        }
        assert_eq!(soap_cookie_in(docs[1].as_bytes()).as_deref(), Some("q"));
        assert_eq!(soap_cookie_in(docs[5].as_bytes()).as_deref(), Some("up"));
        // What govc leaves behind a shorter rewrite does not hide the session.
        assert_eq!(soap_cookie_in(docs[9].as_bytes()).as_deref(), Some("t"));
    }

    #[test]
    fn writes_are_private_and_carry_no_password() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::new("https://u:secret-pw@127.0.0.1:1/sdk", true).unwrap();
        s.dir_rest = Some(dir.path().join("rest"));
        s.write(REST_PATH, &json!({"SoapClient": s.soap_client_json(REST_PATH, "8.0.3.0", json!([])), "SessionID": "id"})).unwrap();
        for f in s.files(REST_PATH) {
            let meta = std::fs::metadata(&f).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(!text.contains("secret-pw"));
            assert!(text.contains("\"SessionID\":\"id\""));
        }
        let mode = std::fs::metadata(dir.path().join("rest"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn go_escaping_of_user_names() {
        assert_eq!(go_escape_user("a@b.c"), "a%40b.c");
        assert_eq!(go_escape_user("D\\u"), "D%5Cu");
        assert_eq!(go_escape_user("x:y/z?"), "x%3Ay%2Fz%3F");
        assert_eq!(go_escape_user("a+b=c;d"), "a+b=c;d");
    }
}
