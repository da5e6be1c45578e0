//! A client for vCenter-compatible endpoints (vsess, vcsim, a real vCenter).
//!
//! [`Client`] speaks SOAP at `/sdk` through the `wire` crate, after negotiating the API
//! version from `vimServiceVersions.xml`, and the vAPI session resources (`/api/session`
//! and the legacy `/rest/com/vmware/cis/session`). It is cheap to clone and can be shared
//! across tasks. When it holds a password, a call that fails with NotAuthenticated logs in
//! once and is retried once; concurrent callers wait for that one login (single-flight)
//! and share its outcome. A relogin refused for bad credentials is never repeated with
//! them (see [`Client::set_password`]).
//!
//! A client whose session came from, or was saved to, an on-disk session cache
//! ([`crate::cache::Session::load`], [`crate::cache::Session::login`],
//! [`crate::cache::Session::save`]) stays linked to it: that relogin takes the cache's
//! lock, uses a session another process has already put there if it is valid, and
//! otherwise logs in and writes the new session to the cache (see
//! [`crate::cache::Session::attach`]). Other clients log in again in memory only.
mod keepalive;

pub use keepalive::{KeepAlive, Ping};

use crate::error::{Error, Result};
use crate::tls::{http_builder_with, Timeouts, Tls};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, COOKIE};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use url::Url;
use vsess_core::UserSession;
use vsess_wire::soap_client::{self, Arg};
use vsess_wire::xml::Element;

/// The versions this client knows, newest first; it uses the newest the server offers.
const KNOWN_VERSIONS: &[&str] = &[
    "8.0.3.0", "8.0.2.0", "8.0.1.0", "8.0.0.0", "7.0.3.0", "7.0.2.0", "7.0.1.0", "7.0", "6.7",
    "6.5", "6.0", "5.5",
];

const SM: (&str, &str) = ("SessionManager", "SessionManager");
const SI: (&str, &str) = ("ServiceInstance", "ServiceInstance");

/// How to log in again when a session dies.
#[derive(Clone, PartialEq, Eq)]
enum Credentials {
    Password { user: String, password: String },
}

/// The credentials a relogin uses, and whether the server has refused them.
struct Stored {
    credentials: Credentials,
    /// Set when a relogin with these credentials was refused (InvalidLogin): they are
    /// not sent again, so that one wrong password cannot lock the account out. Cleared
    /// when new credentials are given ([`Client::login`], [`Client::set_password`]).
    refused: Option<String>,
}

/// What the single-flight lock guards: the attempts so far and the last one's outcome.
#[derive(Default)]
struct Relogins {
    /// Attempts finished so far (mirrored in `Inner::relogin_epoch`, read without the lock).
    finished: u64,
    /// The outcome of the last attempt, shared with the callers that were waiting for it.
    last: Option<Result<()>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password { user, .. } => {
                write!(f, "Password {{ user: {user:?}, password: <redacted> }}")
            }
        }
    }
}

/// `vim.SessionManager.LocalTicket`, from [`Client::acquire_local_ticket`]: a one-time
/// password in a file on the server's host, for a client running on that host. Read the
/// file and [`Client::login`] with `user_name` and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTicket {
    /// The user name to log in with (`userName`).
    pub user_name: String,
    /// The path, on the server's host, of the file holding the one-time password
    /// (`passwordFilePath`); vsess makes it readable only by the server's own OS user.
    pub password_file_path: String,
}

/// The vAPI session info, `cis.session.Info`: the answer of `GET /api/session` (or the
/// `value` of the legacy `POST /rest/com/vmware/cis/session?~action=get`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RestSession {
    /// The session's user name (`user`), as the server writes it (vCenter:
    /// `VSPHERE.LOCAL\alice`).
    pub user: String,
    /// When the session was created (`created_time`), RFC 3339 text, e.g.
    /// `2026-01-02T03:04:05.678Z`.
    pub created_time: String,
    /// When the session was last used (`last_accessed_time`), RFC 3339 text.
    pub last_accessed_time: String,
}

struct Inner {
    http: reqwest::Client,
    /// `https://host:port`
    base: Url,
    sdk: Url,
    version: String,
    tls: Tls,
    timeouts: Timeouts,
    session: RwLock<Option<String>>,
    credentials: RwLock<Option<Stored>>,
    /// Single flight: one relogin at a time, and its outcome for those who waited.
    relogin: tokio::sync::Mutex<Relogins>,
    relogin_epoch: AtomicU64,
    logins: AtomicU64,
    /// The session cache this client's session belongs to: a relogin updates it.
    cache: RwLock<Option<Arc<crate::cache::Session>>>,
}

/// A vSphere client. `Clone` shares the connection pool and the session.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.sdk.as_str())
            .field("version", &self.inner.version)
            .field("session", &self.session_id().map(|_| "<redacted>"))
            .finish()
    }
}

/// Refuses a user-given URL with a `\` before its host, in the raw string (before any
/// parsing). The WHATWG parser (the `url` crate) reads `\` as `/` in http(s) URLs, so
/// `https://VSPHERE.LOCAL\administrator@10.0.0.1` has the host `vsphere.local`: the login,
/// password included, would go to another host than the one the user meant. (Go's
/// net/url, govc's, refuses such a user name.)
pub fn check_no_backslash_before_host(raw: &str) -> Result<()> {
    let rest = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    // What Go's url.Parse takes as the authority: up to the first '/', '?' or '#'.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some(at) = authority.find('\\') else {
        return Ok(());
    };
    // A ':' before the '\\' (and an '@' after it) puts the '\\' in the password.
    let in_password = authority[..at].contains(':') && authority[at..].contains('@');
    Err(Error::Config(if in_password {
        "the URL's password has a '\\', which would make the part before it the host: give \
         the password with --password-stdin or $VSESS_PASSWORD instead, or write each '\\' \
         in it as %5C"
            .into()
    } else {
        "the URL has a '\\' before its host, which would make the part before it the host: \
         give a DOMAIN\\user name with -u 'DOMAIN\\user' (or $VSESS_USERNAME), or write \
         it in the URL as DOMAIN%5Cuser"
            .into()
    }))
}

/// Parses `https://host[:port][/sdk]` (user and password are ignored here).
pub fn sdk_url(raw: &str) -> Result<Url> {
    check_no_backslash_before_host(raw)?;
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    // Messages quote the URL without its password: it may have come from stdin or the
    // environment, and the message may end up in a CI log.
    let shown = || vsess_core::redact::redact_url(raw);
    let mut u = Url::parse(&with_scheme)
        .map_err(|e| Error::Config(format!("'{}' is not a valid URL: {e}", shown())))?;
    if u.scheme() != "https" && u.scheme() != "http" {
        return Err(Error::Config(format!(
            "'{}': the scheme must be https or http",
            shown()
        )));
    }
    if u.host_str().is_none() {
        return Err(Error::Config(format!("'{}' names no host", shown())));
    }
    if u.path() == "/" || u.path().is_empty() {
        u.set_path("/sdk");
    }
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    Ok(u)
}

/// Percent-decoded user and password from a URL's userinfo.
pub fn url_credentials(u: &Url) -> Option<(String, String)> {
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let user = dec(u.username());
    if user.is_empty() {
        return None;
    }
    Some((user, dec(u.password().unwrap_or_default())))
}

impl Client {
    /// Connects to `url` (`https://host[:port]/sdk`), negotiating the API version, with
    /// the default [`Timeouts`] (10 s to connect, 60 s per request).
    pub async fn connect(url: &str, tls: Tls) -> Result<Self> {
        Self::connect_with(url, tls, Timeouts::default()).await
    }

    /// [`Client::connect`] with the given timeouts, which every later call of the client
    /// (and of a [`crate::selfservice::SelfService`] on it) keeps. A server that does
    /// not answer in time gives [`Error::Timeout`].
    pub async fn connect_with(url: &str, tls: Tls, timeouts: Timeouts) -> Result<Self> {
        let (sdk, http) = Self::http_for(url, &tls, timeouts)?;
        let versions_url = format!(
            "{}/vimServiceVersions.xml",
            sdk.as_str().trim_end_matches('/')
        );
        let resp = http
            .get(&versions_url)
            .send()
            .await
            .map_err(|e| Error::from_reqwest_within(sdk.as_str(), &e, Some(timeouts)))?;
        let offered = if resp.status().is_success() {
            let body = resp
                .bytes()
                .await
                .map_err(|e| Error::from_reqwest_within(&versions_url, &e, Some(timeouts)))?;
            soap_client::service_versions(&body)
        } else {
            Vec::new()
        };
        let version = KNOWN_VERSIONS
            .iter()
            .find(|v| offered.iter().any(|o| o == *v))
            .map(|v| v.to_string())
            .or_else(|| offered.first().cloned())
            .unwrap_or_else(|| "6.5".to_owned());
        tracing::debug!(url = %sdk, %version, "connected");
        Ok(Self::build(sdk, http, version, tls, timeouts))
    }

    /// A client for `url` that uses `version` without asking the server (no round trip):
    /// for a version negotiated before, e.g. kept with a cached session, as govmomi's
    /// session cache does.
    pub fn with_version(url: &str, tls: Tls, version: &str) -> Result<Self> {
        Self::with_version_within(url, tls, version, Timeouts::default())
    }

    /// [`Client::with_version`] with the given timeouts.
    pub fn with_version_within(
        url: &str,
        tls: Tls,
        version: &str,
        timeouts: Timeouts,
    ) -> Result<Self> {
        let (sdk, http) = Self::http_for(url, &tls, timeouts)?;
        Ok(Self::build(sdk, http, version.to_owned(), tls, timeouts))
    }

    fn http_for(url: &str, tls: &Tls, timeouts: Timeouts) -> Result<(Url, reqwest::Client)> {
        let sdk = sdk_url(url)?;
        let http = http_builder_with(tls, timeouts)?
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok((sdk, http))
    }

    fn build(
        sdk: Url,
        http: reqwest::Client,
        version: String,
        tls: Tls,
        timeouts: Timeouts,
    ) -> Self {
        let mut base = sdk.clone();
        base.set_path("");
        Self {
            inner: Arc::new(Inner {
                http,
                base,
                sdk,
                version,
                tls,
                timeouts,
                session: RwLock::new(None),
                credentials: RwLock::new(None),
                relogin: tokio::sync::Mutex::new(Relogins::default()),
                relogin_epoch: AtomicU64::new(0),
                logins: AtomicU64::new(0),
                cache: RwLock::new(None),
            }),
        }
    }

    /// The negotiated vim25 version.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The SOAP endpoint the client talks to, normalised: `https://host[:port]/sdk`, no
    /// user, password, query or fragment.
    pub fn url(&self) -> &Url {
        &self.inner.sdk
    }

    /// The certificate checking the client was built with.
    pub fn tls(&self) -> &Tls {
        &self.inner.tls
    }

    /// How long the client waits for the server.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }

    /// The error for a failed request to `url`, naming the timeout that expired if one did.
    pub(crate) fn transport_error(&self, url: &str, e: &reqwest::Error) -> Error {
        Error::from_reqwest_within(url, e, Some(self.inner.timeouts))
    }

    /// The current session id (the `vmware_soap_session` cookie value), if any.
    pub fn session_id(&self) -> Option<String> {
        self.inner
            .session
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Uses an existing session id (from a cache, another tool, or another endpoint).
    pub fn set_session_id(&self, id: Option<String>) {
        let mut g = self
            .inner
            .session
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *g = id;
    }

    /// How many Logins this client has sent (relogins included); for tests and metrics.
    pub fn login_count(&self) -> u64 {
        self.inner.logins.load(Ordering::SeqCst)
    }

    /// Links the client to a session cache (see [`crate::cache::Session::attach`]), or
    /// unlinks it with `None`.
    pub(crate) fn set_cache(&self, cache: Option<Arc<crate::cache::Session>>) {
        *self.inner.cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
    }

    fn cache(&self) -> Option<Arc<crate::cache::Session>> {
        self.inner
            .cache
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Whether a relogin of this client writes its new session to an on-disk cache.
    pub fn is_cached(&self) -> bool {
        self.inner
            .cache
            .read()
            .map(|g| g.is_some())
            .unwrap_or_else(|e| e.into_inner().is_some())
    }

    /// Remembers a password so that a dead session is replaced by one new login. This
    /// also lifts a refusal: after a relogin was refused for bad credentials, the client
    /// logs in again only once it is given new ones (here or with [`Client::login`]).
    pub fn set_password(&self, user: &str, password: &str) {
        let mut g = self
            .inner
            .credentials
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *g = Some(Stored {
            credentials: Credentials::Password {
                user: user.to_owned(),
                password: password.to_owned(),
            },
            refused: None,
        });
    }

    fn credentials(&self) -> Option<Credentials> {
        self.inner
            .credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.credentials.clone())
    }

    /// The error for a call that needs a relogin whose credentials were refused.
    fn refused(&self) -> Option<Error> {
        // A lock poisoned by a panic elsewhere still holds the credentials and their
        // refusal: reading it as "none" would lose the refusal, and a wrong password
        // would be tried again.
        let g = self
            .inner
            .credentials
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let stored = g.as_ref()?;
        let reason = stored.refused.as_ref()?;
        let Credentials::Password { user, .. } = &stored.credentials;
        Some(Error::Authentication(format!(
            "the session is no longer valid, and logging in again as {user} was refused \
             ({reason}); that password is not tried again: log in with new credentials"
        )))
    }

    /// Marks `used` as refused, unless other credentials have replaced them meanwhile.
    fn refuse(&self, used: &Credentials, reason: &str) {
        let mut g = self
            .inner
            .credentials
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(stored) = g.as_mut().filter(|s| s.credentials == *used) {
            stored.refused = Some(reason.to_owned());
        }
    }

    /// Relogin attempts finished so far; read before a call, see [`Client::relogin`].
    pub(crate) fn relogin_epoch(&self) -> u64 {
        self.inner.relogin_epoch.load(Ordering::SeqCst)
    }

    async fn post_soap(
        &self,
        body: String,
        session: Option<&str>,
    ) -> Result<(Element, Option<String>)> {
        let url = self.inner.sdk.as_str();
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("urn:vim25/{}", self.inner.version)) {
            headers.insert("SOAPAction", v);
        }
        if let Some(s) = session {
            if let Ok(v) = HeaderValue::from_str(&format!("vmware_soap_session=\"{s}\"")) {
                headers.insert(COOKIE, v);
            }
        }
        let resp = self
            .inner
            .http
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(url, &e))?;
        let status = resp.status().as_u16();
        let cookie = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| vsess_wire::soap::session_cookie(c).map(str::to_owned));
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(url, &e))?;
        if status != 200 && status != 500 {
            let body: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            let body = format!("{}{}", body.trim_end(), self.not_sdk_hint());
            return Err(Error::Http {
                status,
                url: url.to_owned(),
                body: body.trim_start().to_owned(),
            });
        }
        match soap_client::parse_response(&bytes) {
            Ok(Ok(el)) => Ok((el, cookie)),
            Ok(Err(f)) => Err(Error::Fault {
                kind: f.kind,
                message: f.message,
            }),
            Err(message) => Err(Error::Decode {
                url: url.to_owned(),
                message: format!("{message}{}", self.not_sdk_hint()),
            }),
        }
    }

    /// For an answer that is not SOAP from a URL whose path is not `/sdk`: where the
    /// SOAP endpoint is. (`/api` is vAPI's, `/ui` a web page.)
    fn not_sdk_hint(&self) -> String {
        let u = &self.inner.sdk;
        if u.path().trim_end_matches('/').ends_with("/sdk") {
            return String::new();
        }
        let mut sdk = u.clone();
        sdk.set_path("/sdk");
        let _ = sdk.set_password(None);
        format!(" (not a SOAP endpoint? vCenter's is /sdk: {sdk})")
    }

    /// Calls a method with the current session; on NotAuthenticated, logs in once (shared
    /// by concurrent callers) and retries once.
    async fn call(
        &self,
        method: &str,
        this: (&str, &str),
        args: &[(&str, Arg<'_>)],
    ) -> Result<Element> {
        let body = soap_client::request(method, this.0, this.1, args);
        let used = self.session_id();
        let epoch = self.relogin_epoch();
        match self.post_soap(body.clone(), used.as_deref()).await {
            Err(e) if e.is_unauthenticated() && self.has_credentials() => {
                self.relogin(used.as_deref(), epoch).await?;
                let (el, _) = self.post_soap(body, self.session_id().as_deref()).await?;
                Ok(el)
            }
            r => r.map(|(el, _)| el),
        }
    }

    pub(crate) fn has_credentials(&self) -> bool {
        self.inner
            .credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Logs in again after the session `failed` was refused, single-flight: one attempt
    /// at a time, and its outcome is shared.
    ///
    /// - If another caller has already replaced `failed`, there is nothing to do.
    /// - If an attempt finished after `epoch` ([`Client::relogin_epoch`], read before the
    ///   call that failed was sent) and failed, this caller waited for it: it gets that
    ///   attempt's error and sends no Login of its own (gophercloud's reauthFuture).
    /// - Once a relogin was refused for bad credentials (InvalidLogin), no Login is sent
    ///   again with them: every later call fails at once with [`Error::Authentication`],
    ///   until new credentials are given. A wrong password would otherwise be tried by
    ///   every call and lock the account out. Other failures (the server unreachable, a
    ///   fault) leave a later call free to try again.
    ///
    /// For a client linked to a session cache whose user these credentials are for, the
    /// cache does the relogin ([`crate::cache::Session::attach`]): it may adopt a session
    /// another process cached, and it caches the new one.
    pub(crate) async fn relogin(&self, failed: Option<&str>, epoch: u64) -> Result<()> {
        if let Some(e) = self.refused() {
            return Err(e);
        }
        let mut state = self.inner.relogin.lock().await;
        if self.session_id().as_deref() != failed {
            return Ok(());
        }
        if state.finished != epoch {
            if let Some(Err(e)) = &state.last {
                return Err(e.clone());
            }
        }
        if let Some(e) = self.refused() {
            return Err(e);
        }
        let Some(creds) = self.credentials() else {
            return Err(Error::Authentication(
                "the session is not valid and no credentials are known".into(),
            ));
        };
        let outcome = self.relogin_with(&creds, failed).await;
        if let Err(Error::Authentication(reason)) = &outcome {
            self.refuse(&creds, reason);
        }
        state.finished += 1;
        state.last = Some(outcome.clone());
        self.inner
            .relogin_epoch
            .store(state.finished, Ordering::SeqCst);
        outcome
    }

    /// One relogin attempt (the single-flight lock is held).
    async fn relogin_with(&self, creds: &Credentials, failed: Option<&str>) -> Result<()> {
        let Credentials::Password { user, password } = creds;
        tracing::info!(%user, "session expired; logging in again");
        match self.cache() {
            Some(cache) if cache.is_for_user(user) => {
                cache.relogin(self, failed, user, password).await
            }
            Some(_) => {
                tracing::debug!(
                    %user,
                    "the session cache is another user's; not updating it"
                );
                self.login_inner(user, password, None).await.map(|_| ())
            }
            None => self.login_inner(user, password, None).await.map(|_| ()),
        }
    }

    fn returnval(el: &Element) -> Option<&Element> {
        el.child("returnval")
    }

    fn session_from(el: &Element, url: &str) -> Result<UserSession> {
        Self::returnval(el)
            .and_then(soap_client::user_session)
            .ok_or_else(|| Error::Decode {
                url: url.to_owned(),
                message: "the response holds no UserSession".into(),
            })
    }

    /// `Login` with no relogin around it; the new cookie replaces the client's session.
    pub(crate) async fn login_inner(
        &self,
        user: &str,
        password: &str,
        locale: Option<&str>,
    ) -> Result<UserSession> {
        let mut args = vec![
            ("userName", Arg::Str(user)),
            ("password", Arg::Str(password)),
        ];
        if let Some(l) = locale {
            args.push(("locale", Arg::Str(l)));
        }
        let body = soap_client::request("Login", SM.0, SM.1, &args);
        self.inner.logins.fetch_add(1, Ordering::SeqCst);
        // The client's session goes along, as govmomi's cookie jar and pyVmomi's stub send
        // it: a server that sees a live session refuses the Login (vsess and vcsim answer
        // InvalidLogin), where a new session would orphan it. A dead or unknown one (the
        // relogin path) counts as none.
        self.start_session("Login", body, |message| format!("{message} (user {user})"))
            .await
    }

    /// Posts a call that starts a session (`Login`, `CloneSession`) with the client's
    /// session along, and makes the new session the client's. The `InvalidLogin` fault is
    /// [`Error::Authentication`], worded by `refused` from the server's message.
    async fn start_session(
        &self,
        method: &str,
        body: String,
        refused: impl FnOnce(String) -> String,
    ) -> Result<UserSession> {
        let held = self.session_id();
        let (el, cookie) = self
            .post_soap(body, held.as_deref())
            .await
            .map_err(|e| match e {
                Error::Fault { kind, message } if kind == "InvalidLogin" => {
                    Error::Authentication(refused(message))
                }
                e => e,
            })?;
        let us = Self::session_from(&el, self.inner.sdk.as_str())?;
        let cookie = cookie.ok_or_else(|| Error::Decode {
            url: self.inner.sdk.to_string(),
            message: format!("{method} succeeded but the server set no vmware_soap_session cookie"),
        })?;
        self.set_session_id(Some(cookie));
        Ok(us)
    }

    // ---- SessionManager methods ---------------------------------------------------

    /// `SessionManager.Login` (govmomi's `session.Manager.Login`): a new session for a
    /// client that holds none, or whose session has ended; the password is kept in memory
    /// for relogin. A wrong user or password (the `InvalidLogin` fault) is
    /// [`Error::Authentication`].
    ///
    /// The client's session id is sent along, as govmomi and pyVmomi send theirs. vsess
    /// (like vcsim) refuses a Login on a session that is still live, which is also
    /// [`Error::Authentication`]: call [`Client::logout`] first, or use another `Client`,
    /// so that the first session is not left open on the server until it idles out.
    pub async fn login(&self, user: &str, password: &str) -> Result<UserSession> {
        let us = self.login_inner(user, password, None).await?;
        self.set_password(user, password);
        Ok(us)
    }

    /// [`Client::login`] with a `locale` (e.g. `en`, `de`) for the session's messages; a
    /// locale the server does not support is an `InvalidLocale` fault.
    pub async fn login_with_locale(
        &self,
        user: &str,
        password: &str,
        locale: &str,
    ) -> Result<UserSession> {
        let us = self.login_inner(user, password, Some(locale)).await?;
        self.set_password(user, password);
        Ok(us)
    }

    /// `CloneSession` (govmomi's `CloneSession`): logs in as the user of the session that
    /// made `ticket` with [`Client::acquire_clone_ticket`], and makes the new session the
    /// client's. A used, expired or unknown ticket is [`Error::Authentication`].
    ///
    /// Call it on a client that holds no session, as govmomi and pyVmomi clone from a new
    /// client. The client's session id goes along, as with [`Client::login`]: vsess
    /// refuses the clone while that session is live ([`Error::Authentication`], and the
    /// ticket stays unused), where the new session would orphan it. vcsim does not
    /// refuse, and the first session stays open there until it idles out.
    ///
    /// The client forgets any password it held from an earlier [`Client::login`]: the
    /// cloned session may be another user's, and logging in again with that password
    /// would quietly change who the client acts as. When the cloned session ends, calls
    /// fail with `NotAuthenticated` ([`Error::is_unauthenticated`]) instead.
    pub async fn login_by_ticket(&self, ticket: &str) -> Result<UserSession> {
        let body = soap_client::request(
            "CloneSession",
            SM.0,
            SM.1,
            &[("cloneTicket", Arg::Str(ticket))],
        );
        let us = self
            .start_session("CloneSession", body, |message| {
                format!("CloneSession was refused: {message}")
            })
            .await?;
        *self
            .inner
            .credentials
            .write()
            .unwrap_or_else(|e| e.into_inner()) = None;
        Ok(us)
    }

    /// `Logout`: ends the session on the server. The client forgets the session and the
    /// password even when the call fails (the error is still returned).
    pub async fn logout(&self) -> Result<()> {
        let body = soap_client::request("Logout", SM.0, SM.1, &[]);
        let r = self.post_soap(body, self.session_id().as_deref()).await;
        self.set_session_id(None);
        *self
            .inner
            .credentials
            .write()
            .unwrap_or_else(|e| e.into_inner()) = None;
        r.map(|_| ())
    }

    async fn fetch(&self, this: (&str, &str), prop: &str) -> Result<Option<Element>> {
        let el = self
            .call("Fetch", this, &[("prop", Arg::Str(prop))])
            .await?;
        Ok(Self::returnval(&el).cloned())
    }

    /// `currentSession`: `None` when the session is not valid. One round trip; never
    /// logs in again (this is how a cached session is validated).
    pub async fn current_session(&self) -> Result<Option<UserSession>> {
        self.current_session_of(self.session_id().as_deref()).await
    }

    /// [`Client::current_session`] of the session `id`, whatever the client's own is.
    pub(crate) async fn current_session_of(&self, id: Option<&str>) -> Result<Option<UserSession>> {
        let body =
            soap_client::request("Fetch", SM.0, SM.1, &[("prop", Arg::Str("currentSession"))]);
        match self.post_soap(body, id).await {
            Ok((el, _)) => Ok(Self::returnval(&el).and_then(soap_client::user_session)),
            Err(e) if e.is_unauthenticated() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `SessionManager.sessionList`: every live session on the server, every user's
    /// (needs Sessions.TerminateSession, else a `NoPermission` fault).
    pub async fn session_list(&self) -> Result<Vec<UserSession>> {
        let el = self.fetch(SM, "sessionList").await?;
        Ok(el
            .map(|v| {
                v.children_named("UserSession")
                    .filter_map(soap_client::user_session)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn string_prop(&self, prop: &str) -> Result<String> {
        Ok(self
            .fetch(SM, prop)
            .await?
            .map(|e| e.text)
            .unwrap_or_default())
    }

    async fn strings_prop(&self, prop: &str) -> Result<Vec<String>> {
        Ok(self
            .fetch(SM, prop)
            .await?
            .map(|e| e.children.into_iter().map(|c| c.text).collect())
            .unwrap_or_default())
    }

    /// `SessionManager.message`: the service message shown to users at login; empty when
    /// none is set.
    pub async fn message(&self) -> Result<String> {
        self.string_prop("message").await
    }

    /// `SessionManager.defaultLocale`: the locale new sessions get when Login names none.
    pub async fn default_locale(&self) -> Result<String> {
        self.string_prop("defaultLocale").await
    }

    /// `SessionManager.supportedLocaleList`: the locales Login and `SetLocale` accept.
    pub async fn supported_locale_list(&self) -> Result<Vec<String>> {
        self.strings_prop("supportedLocaleList").await
    }

    /// `SessionManager.messageLocaleList`: the locales the server has messages in.
    pub async fn message_locale_list(&self) -> Result<Vec<String>> {
        self.strings_prop("messageLocaleList").await
    }

    /// `SetLocale`: changes the current session's locale (and message locale); an
    /// unsupported one is an `InvalidLocale` fault.
    pub async fn set_locale(&self, locale: &str) -> Result<()> {
        self.call("SetLocale", SM, &[("locale", Arg::Str(locale))])
            .await
            .map(|_| ())
    }

    /// `UpdateServiceMessage`: sets [`Client::message`] for everyone; an empty string clears
    /// it. Needs Sessions.GlobalMessage.
    pub async fn update_service_message(&self, message: &str) -> Result<()> {
        self.call(
            "UpdateServiceMessage",
            SM,
            &[("message", Arg::Str(message))],
        )
        .await
        .map(|_| ())
    }

    /// `TerminateSession`: ends other sessions by `UserSession.key` (not their secret ids).
    /// Needs Sessions.TerminateSession. vsess ends them in order up to the first key that
    /// is not a live session (`NotFound` fault); the client's own key is `InvalidArgument`
    /// (use [`Client::logout`]).
    pub async fn terminate_session(&self, keys: &[String]) -> Result<()> {
        self.call("TerminateSession", SM, &[("sessionId", Arg::Strs(keys))])
            .await
            .map(|_| ())
    }

    /// `SessionIsActive`: whether the session with `key` is live and belongs to `user`
    /// (govmomi's `SessionIsActive`). Needs Sessions.ValidateSession.
    pub async fn session_is_active(&self, key: &str, user: &str) -> Result<bool> {
        let el = self
            .call(
                "SessionIsActive",
                SM,
                &[("sessionID", Arg::Str(key)), ("userName", Arg::Str(user))],
            )
            .await?;
        Ok(Self::returnval(&el).is_some_and(|v| v.text.trim() == "true"))
    }

    /// `AcquireCloneTicket`: a one-time ticket with which another client can join as this
    /// session's user ([`Client::login_by_ticket`]). Short-lived; a secret.
    pub async fn acquire_clone_ticket(&self) -> Result<String> {
        let el = self.call("AcquireCloneTicket", SM, &[]).await?;
        Ok(Self::returnval(&el)
            .map(|v| v.text.clone())
            .unwrap_or_default())
    }

    /// `ImpersonateUser`: the current session takes on the identity (and privileges) of
    /// `user`, who must have another live session. Needs Sessions.ImpersonateUser; no
    /// such user or session is an `InvalidLogin` fault.
    pub async fn impersonate_user(&self, user: &str) -> Result<UserSession> {
        let el = self
            .call("ImpersonateUser", SM, &[("userName", Arg::Str(user))])
            .await?;
        Self::session_from(&el, self.inner.sdk.as_str())
    }

    /// `AcquireLocalTicket` (govmomi's `AcquireLocalTicket`): a one-time password in a
    /// file on the server's host, for logging in as `user` without a password. Only for
    /// clients on that host (vsess refuses other addresses); see [`LocalTicket`].
    pub async fn acquire_local_ticket(&self, user: &str) -> Result<LocalTicket> {
        let el = self
            .call("AcquireLocalTicket", SM, &[("userName", Arg::Str(user))])
            .await?;
        let rv = Self::returnval(&el).ok_or_else(|| Error::Decode {
            url: self.inner.sdk.to_string(),
            message: "AcquireLocalTicket returned nothing".into(),
        })?;
        Ok(LocalTicket {
            user_name: rv
                .child("userName")
                .map(|e| e.text.clone())
                .unwrap_or_default(),
            password_file_path: rv
                .child("passwordFilePath")
                .map(|e| e.text.clone())
                .unwrap_or_default(),
        })
    }

    /// `AcquireGenericServiceTicket` for one HTTP request (`method`, e.g. `httpGet`, and
    /// `url`): returns the ticket id, a one-time credential for that request only
    /// (govmomi's `AcquireGenericServiceTicket`).
    pub async fn acquire_generic_service_ticket(&self, method: &str, url: &str) -> Result<String> {
        let spec = format!(
            "<method>{}</method><url>{}</url>",
            vsess_wire::xml::escape(method),
            vsess_wire::xml::escape(url)
        );
        let el = self
            .call(
                "AcquireGenericServiceTicket",
                SM,
                &[(
                    "spec",
                    Arg::Typed("SessionManagerHttpServiceRequestSpec", spec),
                )],
            )
            .await?;
        Ok(Self::returnval(&el)
            .and_then(|r| r.child("id"))
            .map(|e| e.text.clone())
            .unwrap_or_default())
    }

    /// `LoginBySSPI`, `LoginByToken`, `LoginExtensionByCertificate`,
    /// `LoginExtensionBySubjectName`: sent as is; servers that do not support them fault.
    pub async fn login_unsupported(&self, method: &str) -> Result<UserSession> {
        let el = self.call(method, SM, &[]).await?;
        Self::session_from(&el, self.inner.sdk.as_str())
    }

    /// `ServiceInstance.CurrentTime`: the server's clock, UTC; useful to compute session
    /// idle times without trusting the local clock.
    pub async fn current_time(&self) -> Result<DateTime<Utc>> {
        let el = self.call("CurrentTime", SI, &[]).await?;
        Self::returnval(&el)
            .and_then(|v| DateTime::parse_from_rfc3339(v.text.trim()).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| Error::Decode {
                url: self.inner.sdk.to_string(),
                message: "CurrentTime returned no time".into(),
            })
    }

    /// `RetrieveServiceContent`, as raw XML elements (for the session cache).
    pub async fn service_content(&self) -> Result<Element> {
        let el = self.call("RetrieveServiceContent", SI, &[]).await?;
        self.content_of(&el)
    }

    /// `RetrieveServiceContent` sent once, never followed by a relogin: for use while a
    /// relogin is in progress (it holds the single-flight lock).
    pub(crate) async fn service_content_once(&self) -> Result<Element> {
        let body = soap_client::request("RetrieveServiceContent", SI.0, SI.1, &[]);
        let (el, _) = self.post_soap(body, self.session_id().as_deref()).await?;
        self.content_of(&el)
    }

    fn content_of(&self, el: &Element) -> Result<Element> {
        Self::returnval(el).cloned().ok_or_else(|| Error::Decode {
            url: self.inner.sdk.to_string(),
            message: "RetrieveServiceContent returned nothing".into(),
        })
    }

    // ---- vAPI REST ----------------------------------------------------------------

    /// The underlying HTTP client (same TLS settings, timeouts and connection pool). It
    /// adds no session header: requests sent on it are anonymous unless you add one.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// `https://host:port` + `path` (which starts with `/`), for the REST and `/v2`
    /// resources next to `/sdk`.
    pub fn rest_url(&self, path: &str) -> String {
        format!("{}{}", self.inner.base.as_str().trim_end_matches('/'), path)
    }

    async fn rest(&self, req: reqwest::RequestBuilder, url: &str) -> Result<(u16, Vec<u8>)> {
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(url, &e))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(url, &e))?;
        Ok((status, body.to_vec()))
    }

    /// The error for a REST answer. A 401 means the credentials were refused on a login
    /// (`login`), and the session was not valid on any other call.
    fn rest_error(status: u16, url: &str, body: &[u8], login: bool) -> Error {
        let text = String::from_utf8_lossy(body).into_owned();
        let text: String = text.chars().take(300).collect();
        if status == 401 && login {
            Error::Authentication(format!("{url}: {text}"))
        } else if status == 401 {
            Error::not_authenticated(format!(
                "{url}: the session is not valid (HTTP 401: {text})"
            ))
        } else {
            Error::Http {
                status,
                url: url.to_owned(),
                body: text.chars().take(300).collect(),
            }
        }
    }

    /// `POST /api/session` with Basic auth; returns the new vAPI session id (send it as
    /// `vmware-api-session-id`). Refused credentials are [`Error::Authentication`]. The id
    /// is not the client's SOAP session and is not kept by the client.
    pub async fn rest_login(&self, user: &str, password: &str) -> Result<String> {
        let url = self.rest_url("/api/session");
        let (status, b) = self
            .rest(
                self.inner.http.post(&url).basic_auth(user, Some(password)),
                &url,
            )
            .await?;
        if status != 201 && status != 200 {
            return Err(Self::rest_error(status, &url, &b, true));
        }
        // `/api/session` answers a bare string; the older `/rest` shape wraps it in `value`.
        let id = serde_json::from_slice::<String>(&b).or_else(|_| {
            serde_json::from_slice::<serde_json::Value>(&b)
                .map(|v| v["value"].as_str().unwrap_or_default().to_owned())
        });
        match id {
            Ok(id) if !id.is_empty() => Ok(id),
            Ok(_) => Err(Error::Decode {
                url,
                message: "the login answer holds no session id".into(),
            }),
            Err(e) => Err(Error::Decode {
                url,
                message: e.to_string(),
            }),
        }
    }

    /// `GET /api/session` with `id`; `None` when the id is not a valid session.
    pub async fn rest_session(&self, id: &str) -> Result<Option<RestSession>> {
        let url = self.rest_url("/api/session");
        let (status, b) = self
            .rest(
                self.inner
                    .http
                    .get(&url)
                    .header("vmware-api-session-id", id),
                &url,
            )
            .await?;
        match status {
            200 => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Decode {
                    url,
                    message: e.to_string(),
                }),
            401 | 404 => Ok(None),
            _ => Err(Self::rest_error(status, &url, &b, false)),
        }
    }

    /// `DELETE /api/session`: ends the vAPI session `id`.
    pub async fn rest_logout(&self, id: &str) -> Result<()> {
        self.delete_session("/api/session", id).await
    }

    /// `DELETE` of a session resource with `id`; 200 and 204 both mean ended.
    async fn delete_session(&self, path: &str, id: &str) -> Result<()> {
        let url = self.rest_url(path);
        let (status, b) = self
            .rest(
                self.inner
                    .http
                    .delete(&url)
                    .header("vmware-api-session-id", id),
                &url,
            )
            .await?;
        if status == 204 || status == 200 {
            Ok(())
        } else {
            Err(Self::rest_error(status, &url, &b, false))
        }
    }

    /// Legacy `POST /rest/com/vmware/cis/session` (the REST API before `/api`), Basic auth;
    /// returns the new session id, the answer's `value`. Refused credentials are
    /// [`Error::Authentication`].
    pub async fn legacy_rest_login(&self, user: &str, password: &str) -> Result<String> {
        let url = self.rest_url("/rest/com/vmware/cis/session");
        let req = self
            .inner
            .http
            .post(&url)
            .basic_auth(user, Some(password))
            .header("vmware-use-header-authn", "true");
        let (status, b) = self.rest(req, &url).await?;
        if status != 200 {
            return Err(Self::rest_error(status, &url, &b, true));
        }
        let v: serde_json::Value = serde_json::from_slice(&b).map_err(|e| Error::Decode {
            url: url.clone(),
            message: e.to_string(),
        })?;
        v["value"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode {
                url,
                message: "no value".into(),
            })
    }

    /// Legacy `POST /rest/com/vmware/cis/session?~action=get`: the session `id`'s info,
    /// `None` when the server does not know it (401 or 404).
    pub async fn legacy_rest_session(&self, id: &str) -> Result<Option<RestSession>> {
        let url = self.rest_url("/rest/com/vmware/cis/session?~action=get");
        let (status, b) = self
            .rest(
                self.inner
                    .http
                    .post(&url)
                    .header("vmware-api-session-id", id),
                &url,
            )
            .await?;
        match status {
            200 => {
                let v: serde_json::Value =
                    serde_json::from_slice(&b).map_err(|e| Error::Decode {
                        url: url.clone(),
                        message: e.to_string(),
                    })?;
                serde_json::from_value(v["value"].clone())
                    .map(Some)
                    .map_err(|e| Error::Decode {
                        url,
                        message: e.to_string(),
                    })
            }
            401 | 404 => Ok(None),
            _ => Err(Self::rest_error(status, &url, &b, false)),
        }
    }

    /// Legacy `DELETE /rest/com/vmware/cis/session`: ends the session `id`.
    pub async fn legacy_rest_logout(&self, id: &str) -> Result<()> {
        self.delete_session("/rest/com/vmware/cis/session", id)
            .await
    }

    /// Whether the server accepts this client's SOAP session on `/api/session` (vCenter
    /// 8.0U3 and vsess do; vcsim and older vCenters do not).
    pub async fn supports_unified_sessions(&self) -> Result<bool> {
        match self.session_id() {
            Some(id) => Ok(self.rest_session(&id).await?.is_some()),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic while the credentials were held (in a caller's thread) does not make them,
    /// or their refusal, disappear.
    #[test]
    fn a_poisoned_credentials_lock_still_holds_them() {
        let c = Client::with_version("https://127.0.0.1:9/sdk", Tls::Insecure, "8.0.3.0").unwrap();
        c.set_password("ops@vsphere.local", "pw");
        let creds = c.credentials().unwrap();
        c.refuse(&creds, "wrong password");
        let inner = c.inner.clone();
        let _ = std::thread::spawn(move || {
            let _g = inner.credentials.write().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(c.inner.credentials.is_poisoned());
        assert!(c.has_credentials());
        assert_eq!(c.credentials(), Some(creds));
        assert!(
            matches!(c.refused(), Some(Error::Authentication(m)) if m.contains("ops@vsphere.local")),
            "the refusal is kept"
        );
    }

    #[test]
    fn sdk_urls_are_normalised_and_credentials_decoded() {
        let u = sdk_url("https://a%40b:p%3Ass@127.0.0.1:8989/sdk?x=1#f").unwrap();
        assert_eq!(u.as_str(), "https://127.0.0.1:8989/sdk");
        assert_eq!(
            sdk_url("vc.local").unwrap().as_str(),
            "https://vc.local/sdk"
        );
        assert!(sdk_url("ftp://x").is_err());
        let raw = Url::parse("https://a%40b:p%3Ass%2B@h/sdk").unwrap();
        assert_eq!(url_credentials(&raw), Some(("a@b".into(), "p:ss+".into())));
        assert_eq!(url_credentials(&Url::parse("https://h/sdk").unwrap()), None);
    }

    #[test]
    fn a_backslash_before_the_host_is_refused_not_taken_as_a_path() {
        // The url crate alone reads the part before the backslash as the host.
        let u = Url::parse("https://VSPHERE.LOCAL\\administrator@127.0.0.1:19600").unwrap();
        assert_eq!(u.host_str(), Some("vsphere.local"));
        for raw in [
            "https://VSPHERE.LOCAL\\administrator@127.0.0.1:19600",
            "https://VSPHERE.LOCAL\\administrator:S3cret@127.0.0.1:19600/sdk",
            "VSPHERE.LOCAL\\administrator@127.0.0.1",
            "https://127.0.0.1\\@evil.example",
        ] {
            let e = sdk_url(raw).unwrap_err().to_string();
            assert!(e.contains("-u 'DOMAIN\\user'") && e.contains("%5C"), "{e}");
            assert!(!e.contains("S3cret"), "{e}");
            let e = crate::cache::Session::new(raw, false).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e}");
        }
        // Escaped, or after the host, it is fine.
        let s =
            crate::cache::Session::new("https://VSPHERE.LOCAL%5Cadmin:pw@127.0.0.1:19600", false)
                .unwrap();
        assert_eq!(s.url.host_str(), Some("127.0.0.1"));
        assert_eq!(
            url_credentials(&s.url),
            Some(("VSPHERE.LOCAL\\admin".into(), "pw".into()))
        );
        assert!(sdk_url("https://127.0.0.1/sdk?a=\\").is_ok());
        // In the password, the advice is about the password, and the password is not shown.
        for raw in [
            "https://admin:pa\\ss@127.0.0.1:19600/sdk",
            "https://VSPHERE.LOCAL%5Cadmin:x\\y@127.0.0.1",
        ] {
            let e = sdk_url(raw).unwrap_err().to_string();
            assert!(
                e.contains("password has a '\\'") && e.contains("--password-stdin"),
                "{e}"
            );
            assert!(
                !e.contains("-u 'DOMAIN") && !e.contains("ss@") && !e.contains("x\\y"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_rejected_url_is_quoted_without_its_password() {
        for raw in [
            "ftp://a%40b:S3cretPw!@127.0.0.1:19443/sdk",
            "https://root:S3cretPw!@127.0.0.1:99999",
            "https://root:S3cretPw!@",
        ] {
            let e = sdk_url(raw).unwrap_err().to_string();
            assert!(!e.contains("S3cretPw"), "{e}");
            assert!(e.contains(":***@"), "{e}");
            let e = crate::cache::Session::new("https://root:S3cretPw!@127.0.0.1:99999", false)
                .unwrap_err()
                .to_string();
            assert!(!e.contains("S3cretPw") && e.contains("root:***@"), "{e}");
        }
    }
}
