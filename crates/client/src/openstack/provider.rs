//! [`ProviderClient`]: one authenticated session with a cloud (the token and its service
//! catalog), the request path every service call takes, and re-authentication.
//!
//! Re-authentication follows gophercloud: when `allow_reauth` is set and a call gets a 401,
//! the client authenticates again once and retries that call once. Concurrent callers share
//! one attempt (single flight): each remembers the token its call failed with; the first to
//! arrive authenticates, the others wait for its outcome; one that arrives after the token
//! has already changed simply retries with the new token. The client also renews a token
//! before use when it is within a margin of its `expires_at` (30 s by default, at most half
//! the token's lifetime), so long jobs do not first hit a 401. A failed early renewal is not
//! retried for [`RENEWAL_BACKOFF`] (or until the token expires, if sooner), so that a refused
//! password does not cost one failed login per call; a token that is already within the
//! margin by the local clock when issued (clock skew) is never renewed early. A 401 still
//! re-authenticates as above.
//!
//! Errors: a 401 to the token request is [`Error::Authentication`] (the credentials were
//! refused); a 401 to any other call is the `NotAuthenticated` fault
//! ([`Error::is_unauthenticated`]): the token expired or was revoked and re-authentication is
//! off, or the call still got a 401 after re-authenticating (its message then says "after
//! re-authentication", gophercloud's `ErrErrorAfterReauthentication`). When the
//! re-authentication itself fails, the error is that failure's (a refused password stays
//! [`Error::Authentication`], an unreachable Keystone [`Error::Connection`]), its message
//! starting "re-authentication failed" (gophercloud's `ErrUnableToReauthenticate`).
use super::auth_options::{identity_v3_url, AuthOptions};
use super::endpoint::EndpointOpts;
use super::errors::{after_reauthentication, status_error, unable_to_reauthenticate};
use super::identity::v3::tokens::{self, ServiceCatalog, Token};
use super::service::{Response, ServiceClient};
use crate::error::{Error, Redacted, Result};
use crate::tls::{http_builder, Tls};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use url::Url;
use vsess_core::clock::{Clock, SystemClock};

/// How a [`ProviderClient`] talks to the cloud.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Renew a token this long before its `expires_at` (capped at half its lifetime), when
    /// re-authentication is allowed; 30 s by default. None: never ahead of time, only after a 401. After a
    /// failed renewal the next try waits [`RENEWAL_BACKOFF`] (or until the token expires).
    pub expiry_margin: Option<Duration>,
    /// Time, injected for tests; the wall clock by default.
    pub clock: Arc<dyn Clock>,
    /// Certificate checking for HTTPS endpoints (Keystone's and every catalog endpoint's);
    /// [`Tls::Verify`] by default.
    pub tls: Tls,
    /// The whole-request timeout, from sending to the end of the answer's body; 60 s by
    /// default. Connecting has its own 10 s limit ([`Timeouts::DEFAULT_CONNECT`]).
    ///
    /// [`Timeouts::DEFAULT_CONNECT`]: crate::tls::Timeouts::DEFAULT_CONNECT
    pub timeout: Duration,
    /// A ready-made HTTP client (proxies, custom roots); overrides `tls` and `timeout`.
    pub http_client: Option<reqwest::Client>,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            expiry_margin: Some(Duration::from_secs(30)),
            clock: Arc::new(SystemClock),
            tls: Tls::Verify,
            timeout: Duration::from_secs(60),
            http_client: None,
        }
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("expiry_margin", &self.expiry_margin)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("http_client", &self.http_client.is_some())
            .finish()
    }
}

/// Per-request options, as gophercloud's `RequestOpts`.
#[derive(Debug, Clone, Default)]
pub struct RequestOpts {
    /// A JSON body.
    pub json: Option<serde_json::Value>,
    /// Extra headers. Their values are never logged.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Statuses that count as success; empty means the method's default (GET 200; POST and
    /// PUT 201, 202; PATCH 200, 202, 204; DELETE 202, 204; HEAD 200 and 204).
    pub ok_codes: Vec<u16>,
    /// Send no `X-Auth-Token` (token issue) and never re-authenticate.
    pub omit_auth: bool,
    /// Do not re-authenticate on a 401 for this call.
    pub omit_reauth: bool,
}

impl RequestOpts {
    /// Options that accept exactly `codes` as success and are otherwise the defaults (no
    /// body, no extra headers, token sent, re-authentication allowed), e.g.
    /// `RequestOpts::ok(&[200])`.
    pub fn ok(codes: &[u16]) -> Self {
        Self {
            ok_codes: codes.to_vec(),
            ..Self::default()
        }
    }
}

fn default_ok_codes(method: &Method) -> &'static [u16] {
    match *method {
        Method::GET => &[200],
        Method::POST | Method::PUT => &[201, 202],
        Method::PATCH => &[200, 202, 204],
        Method::DELETE => &[202, 204],
        // gophercloud's is 200 (Keystone's HEAD /v3/auth/tokens answers 200); some
        // services answer a HEAD with 204.
        Method::HEAD => &[200, 204],
        _ => &[200, 201, 202, 204],
    }
}

/// A short, non-reversible fingerprint of a token for logs.
pub(crate) fn fingerprint(token: &str) -> String {
    crate::digest::sha256_prefix_hex(token.as_bytes(), 4)
}

/// How long a token whose early renewal failed is used without trying again (unless it
/// expires sooner), so that a refused password costs one failed login per back-off, not one
/// per call (Keystone may lock the account out after a few).
pub const RENEWAL_BACKOFF: Duration = Duration::from_secs(30);

/// The current token and what came with it.
struct Session {
    token: Token,
    catalog: ServiceCatalog,
    /// No early renewal of this token before this time (after a failed renewal, or never
    /// when the token was within the margin already when issued).
    renew_not_before: Mutex<Option<DateTime<Utc>>>,
}

impl Session {
    fn may_renew_early(&self, now: DateTime<Utc>) -> bool {
        self.renew_not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|t| now >= t)
    }

    fn hold_renewal(&self, until: DateTime<Utc>) {
        *self
            .renew_not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(until);
    }
}

type Outcome = std::result::Result<(), Arc<Error>>;

struct Inner {
    http: reqwest::Client,
    identity_endpoint: Url,
    auth: AuthOptions,
    config: ProviderConfig,
    session: RwLock<Option<Arc<Session>>>,
    /// The re-authentication in flight, if any: its outcome arrives on this channel.
    flight: Mutex<Option<watch::Receiver<Option<Outcome>>>>,
    token_issues: AtomicU64,
    reauths: AtomicU64,
    unauthorized: AtomicU64,
}

/// An authenticated session with one cloud, as gophercloud's `ProviderClient`: the token,
/// the service catalog, and the request path (token header, re-authentication, errors).
/// Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct ProviderClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.session();
        f.debug_struct("ProviderClient")
            .field("identity_endpoint", &self.inner.identity_endpoint.as_str())
            .field("token", &Redacted(s.as_ref().map_or("", |s| &s.token.id)))
            .field("user", &s.as_ref().map(|s| s.token.user.name.clone()))
            .field("expires_at", &s.as_ref().map(|s| s.token.expires_at))
            .field("allow_reauth", &self.inner.auth.can_reauth())
            .finish()
    }
}

/// Clears the in-flight marker when the leader finishes or is cancelled.
struct FlightGuard<'a> {
    slot: &'a Mutex<Option<watch::Receiver<Option<Outcome>>>>,
    mine: watch::Receiver<Option<Outcome>>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|rx| rx.same_channel(&self.mine)) {
            *slot = None;
        }
    }
}

enum Role {
    Leader(
        watch::Sender<Option<Outcome>>,
        watch::Receiver<Option<Outcome>>,
    ),
    Follower(watch::Receiver<Option<Outcome>>),
}

impl ProviderClient {
    /// A client for `opts.identity_endpoint`, not yet authenticated (see
    /// [`authenticate`](Self::authenticate), or use [`super::authenticated_client`]). No
    /// request is sent. [`Error::Config`] for an identity endpoint that is not an http(s)
    /// URL or is Keystone v2.0, for `allow_reauth` with a bare token (which cannot renew
    /// itself), or for a TLS setting that cannot be built (an unreadable CA bundle).
    pub fn new(opts: AuthOptions, config: ProviderConfig) -> Result<Self> {
        let identity_endpoint = identity_v3_url(&opts.identity_endpoint)?;
        if opts.passthrough_token().is_some() && opts.can_reauth() {
            // gophercloud refuses this too: the only way to "re-authenticate" would be to
            // re-issue the token without its scope, and with its old expiry.
            return Err(Error::Config(
                "allow_reauth cannot be used with a token and no scope: a token cannot renew \
                 itself. Give a scope (to get a new token scoped so), or credentials, or turn \
                 allow_reauth off"
                    .into(),
            ));
        }
        let http = match &config.http_client {
            Some(c) => c.clone(),
            None => http_builder(&config.tls)?
                .timeout(config.timeout)
                .build()
                .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                identity_endpoint,
                auth: opts,
                config,
                session: RwLock::new(None),
                flight: Mutex::new(None),
                token_issues: AtomicU64::new(0),
                reauths: AtomicU64::new(0),
                unauthorized: AtomicU64::new(0),
            }),
        })
    }

    /// The Keystone v3 URL the client authenticates at (ends with `/v3/`).
    pub fn identity_endpoint(&self) -> &Url {
        &self.inner.identity_endpoint
    }

    /// The HTTP client every request of this provider goes through:
    /// [`ProviderConfig::http_client`] if one was given, else one built from its `tls` and
    /// `timeout`. Requests sent on it directly carry no token.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Whether the client re-authenticates (AuthOptions::allow_reauth, no passcode).
    pub fn allows_reauth(&self) -> bool {
        self.inner.auth.can_reauth()
    }

    fn session(&self) -> Option<Arc<Session>> {
        self.inner
            .session
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current token id: a secret bearer credential. Never log it.
    pub fn token_id(&self) -> Option<String> {
        self.session().map(|s| s.token.id.clone())
    }

    /// The current token (its id, expiry, user, project, roles).
    pub fn token(&self) -> Option<Token> {
        self.session().map(|s| s.token.clone())
    }

    /// The service catalog that came with the current token (empty when unscoped).
    pub fn catalog(&self) -> ServiceCatalog {
        self.session()
            .map(|s| s.catalog.clone())
            .unwrap_or_default()
    }

    /// The URL of a service's endpoint in the current catalog.
    pub fn endpoint_url(&self, service_type: &str, opts: &EndpointOpts) -> Result<String> {
        self.catalog().endpoint_url(service_type, opts)
    }

    /// Tokens issued to this client so far (the first authentication included).
    pub fn token_issue_count(&self) -> u64 {
        self.inner.token_issues.load(Ordering::SeqCst)
    }

    /// Re-authentication attempts so far (successful or not).
    pub fn reauth_count(&self) -> u64 {
        self.inner.reauths.load(Ordering::SeqCst)
    }

    /// 401 answers seen on authenticated calls.
    pub fn unauthorized_count(&self) -> u64 {
        self.inner.unauthorized.load(Ordering::SeqCst)
    }

    /// The identity service at the endpoint the client authenticates at (no catalog needed).
    pub(crate) fn auth_service(&self) -> ServiceClient {
        ServiceClient::from_parts(
            self.clone(),
            self.inner.identity_endpoint.clone(),
            "identity",
        )
    }

    /// Issues a token with the stored options and makes it current. A token given with no
    /// scope and no other credentials is used as it is, once Keystone has said what it is
    /// (`GET /v3/auth/tokens`), as gophercloud does.
    ///
    /// Keystone refusing the credentials is [`Error::Authentication`]; options that make
    /// no valid token request are [`Error::Config`].
    pub async fn authenticate(&self) -> Result<()> {
        let result = match self.inner.auth.passthrough_token() {
            Some(token) => tokens::get_self(&self.auth_service(), token).await?,
            None => tokens::create(&self.auth_service(), &self.inner.auth).await?,
        };
        let token = result.extract()?;
        let catalog = result.extract_service_catalog()?;
        self.inner.token_issues.fetch_add(1, Ordering::SeqCst);
        info!(
            user = %token.user.name,
            token = %fingerprint(&token.id),
            expires_at = %token.expires_at,
            "keystone: token issued"
        );
        let now = self.inner.config.clock.now();
        let renew_not_before = if self.allows_reauth() && self.needs_renewal(&token, now) {
            // Renewing would give a token in the same state: one login per call.
            warn!(
                token = %fingerprint(&token.id),
                expires_at = %token.expires_at,
                local_time = %now,
                "keystone: the new token is already due for renewal by the local clock (clock \
                 skew?); it will not be renewed early, only after a 401"
            );
            Some(DateTime::<Utc>::MAX_UTC)
        } else {
            None
        };
        *self
            .inner
            .session
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Session {
            token,
            catalog,
            renew_not_before: Mutex::new(renew_not_before),
        }));
        Ok(())
    }

    /// Authenticates again unless the token has changed since `previous_token` failed (then
    /// another caller already did). Concurrent callers share one attempt and its outcome.
    /// With re-authentication off ([`allows_reauth`](Self::allows_reauth) false) it fails
    /// at once with [`Error::Authentication`]. [`request`](Self::request) calls it itself.
    pub async fn reauthenticate(&self, previous_token: &str) -> Result<()> {
        if !self.inner.auth.can_reauth() {
            return Err(Error::Authentication(
                "the token is no longer valid and re-authentication is off (AuthOptions::allow_reauth)"
                    .into(),
            ));
        }
        loop {
            let role = {
                let mut slot = self
                    .inner
                    .flight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match slot.as_ref() {
                    Some(rx) => Role::Follower(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        *slot = Some(rx.clone());
                        Role::Leader(tx, rx)
                    }
                }
            };
            match role {
                Role::Leader(tx, mine) => {
                    let guard = FlightGuard {
                        slot: &self.inner.flight,
                        mine,
                    };
                    let current = self.token_id();
                    let outcome: Outcome =
                        if current.as_deref().is_some_and(|t| t != previous_token) {
                            Ok(())
                        } else {
                            self.inner.reauths.fetch_add(1, Ordering::SeqCst);
                            info!(
                                token = %fingerprint(previous_token),
                                "keystone: re-authenticating"
                            );
                            // Boxed: authenticate → request → reauthenticate is a cycle.
                            Box::pin(self.authenticate()).await.map_err(Arc::new)
                        };
                    drop(guard);
                    tx.send_replace(Some(outcome.clone()));
                    return outcome.map_err(|e| Error::clone(&e));
                }
                Role::Follower(mut rx) => {
                    let got = rx
                        .wait_for(Option::is_some)
                        .await
                        .map(|v| v.as_ref().cloned());
                    match got {
                        Ok(Some(outcome)) => return outcome.map_err(|e| Error::clone(&e)),
                        // The leader was cancelled before it finished: try again.
                        _ => continue,
                    }
                }
            }
        }
    }

    /// Whether `token` should be renewed before use at `now`.
    fn needs_renewal(&self, token: &Token, now: DateTime<Utc>) -> bool {
        self.inner
            .config
            .expiry_margin
            .is_some_and(|margin| needs_renewal(token, now, margin))
    }

    /// Sends one request: the token header, a proactive renewal when the token is about to
    /// expire, one re-authentication and retry on a 401, and the error mapping (see the
    /// module docs). A status outside `opts.ok_codes` is [`Error::Http`]; calling this
    /// before [`authenticate`](Self::authenticate) is [`Error::Config`].
    pub async fn request(&self, method: Method, url: Url, opts: RequestOpts) -> Result<Response> {
        let mut retried = false;
        loop {
            let token = if opts.omit_auth {
                None
            } else {
                let Some(mut s) = self.session() else {
                    return Err(Error::Config(
                        "the client is not authenticated: call authenticate() first".into(),
                    ));
                };
                let now = self.inner.config.clock.now();
                if !retried
                    && self.allows_reauth()
                    && self.needs_renewal(&s.token, now)
                    && s.may_renew_early(now)
                {
                    debug!(token = %fingerprint(&s.token.id), "keystone: token about to expire");
                    if let Err(e) = self.reauthenticate(&s.token.id).await {
                        let backoff = chrono::Duration::from_std(RENEWAL_BACKOFF)
                            .unwrap_or(chrono::Duration::MAX);
                        let until = now
                            .checked_add_signed(backoff)
                            .map_or(s.token.expires_at, |t| t.min(s.token.expires_at));
                        s.hold_renewal(until);
                        if now >= s.token.expires_at {
                            return Err(unable_to_reauthenticate(e));
                        }
                        // Not expired yet: carry on with the old token; a 401 still
                        // re-authenticates.
                        warn!(
                            error = %e,
                            retry_after = %until,
                            "keystone: early token renewal failed"
                        );
                    }
                    if let Some(fresh) = self.session() {
                        s = fresh;
                    }
                }
                Some(s.token.id.clone())
            };

            let resp = self.send(&method, &url, &opts, token.as_deref()).await?;
            let status = resp.status;
            if status == 401 && !opts.omit_auth {
                self.inner.unauthorized.fetch_add(1, Ordering::SeqCst);
                if !retried && !opts.omit_reauth && self.allows_reauth() {
                    if let Some(t) = token {
                        self.reauthenticate(&t)
                            .await
                            .map_err(unable_to_reauthenticate)?;
                        retried = true;
                        continue;
                    }
                }
            }
            let ok: &[u16] = if opts.ok_codes.is_empty() {
                default_ok_codes(&method)
            } else {
                &opts.ok_codes
            };
            if !ok.contains(&status) {
                let e = status_error(&method, &url, status, &resp.body, opts.omit_auth);
                return Err(if retried {
                    after_reauthentication(e)
                } else {
                    e
                });
            }
            return Ok(resp);
        }
    }

    /// One HTTP exchange, no retries.
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        opts: &RequestOpts,
        token: Option<&str>,
    ) -> Result<Response> {
        let mut req = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(t) = token {
            let mut v = HeaderValue::from_str(t)
                .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
            v.set_sensitive(true);
            req = req.header("X-Auth-Token", v);
        }
        for (k, v) in &opts.headers {
            req = req.header(k.clone(), v.clone());
        }
        if let Some(body) = &opts.json {
            req = req.json(body);
        }
        // The limits of the client built here, which a timeout then names; a client
        // given in `ProviderConfig::http_client` has its own, unknown here.
        let limits = self
            .inner
            .config
            .http_client
            .is_none()
            .then(|| crate::tls::Timeouts {
                connect: crate::tls::Timeouts::DEFAULT_CONNECT,
                request: self.inner.config.timeout,
            });
        let failed = |e: reqwest::Error| Error::from_reqwest_within(url.as_str(), &e, limits);
        let resp = req.send().await.map_err(failed)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(failed)?.to_vec();
        debug!(%method, url = %url, status, "keystone: request");
        Ok(Response {
            method: method.clone(),
            url: url.clone(),
            status,
            headers,
            body,
        })
    }
}

/// Whether a token expiring at `token.expires_at` should be renewed at `now`: within
/// `margin` of its expiry, the margin capped at half the token's lifetime (so that a margin
/// longer than the lifetime cannot make every call re-authenticate).
pub(crate) fn needs_renewal(token: &Token, now: DateTime<Utc>, margin: Duration) -> bool {
    let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
    let margin = match token.issued_at {
        Some(issued) => {
            let half = (token.expires_at - issued) / 2;
            margin.min(half.max(chrono::Duration::zero()))
        }
        None => margin,
    };
    now.checked_add_signed(margin)
        .is_none_or(|t| t >= token.expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn token(issued: i64, expires: i64) -> Token {
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        Token {
            id: "t".into(),
            expires_at: t(expires),
            issued_at: Some(t(issued)),
            ..Token::default()
        }
    }

    #[test]
    fn renewal_margin_is_capped_at_half_the_lifetime() {
        let now = |s| Utc.timestamp_opt(s, 0).unwrap();
        let m30 = Duration::from_secs(30);
        // One-hour token: renew from 30 s before expiry.
        let t = token(0, 3600);
        assert!(!needs_renewal(&t, now(3569), m30));
        assert!(needs_renewal(&t, now(3570), m30));
        assert!(needs_renewal(&t, now(4000), m30));
        // Ten-second token: the 30 s margin is capped at 5 s.
        let t = token(0, 10);
        assert!(!needs_renewal(&t, now(0), m30));
        assert!(!needs_renewal(&t, now(4), m30));
        assert!(needs_renewal(&t, now(5), m30));
        // Zero margin: only once expired.
        assert!(!needs_renewal(&t, now(9), Duration::ZERO));
        assert!(needs_renewal(&t, now(10), Duration::ZERO));
    }

    /// A Keystone that accepts the connection and never answers: the timeout error names
    /// the limit of the client built from the config (and none for a caller's own client).
    #[tokio::test]
    async fn a_silent_keystone_times_out_naming_the_limit() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let opts = AuthOptions {
            identity_endpoint: format!("http://127.0.0.1:{port}/v3"),
            username: Some("u".into()),
            password: Some("p".into()),
            domain_name: Some("Default".into()),
            ..AuthOptions::default()
        };
        let limit = Duration::from_millis(300);
        let config = ProviderConfig {
            timeout: limit,
            ..ProviderConfig::default()
        };
        let err = ProviderClient::new(opts.clone(), config)
            .unwrap()
            .authenticate()
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Timeout { connecting: false, after: Some(d), .. } if d == limit),
            "{err:?}"
        );
        assert!(err.to_string().contains("within 300 ms"), "{err}");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let own = reqwest::Client::builder().timeout(limit).build().unwrap();
        let config = ProviderConfig {
            http_client: Some(own),
            ..ProviderConfig::default()
        };
        let err = ProviderClient::new(opts, config)
            .unwrap()
            .authenticate()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { after: None, .. }), "{err:?}");
    }

    #[test]
    fn fingerprints_do_not_reveal_the_token() {
        let f = fingerprint("gAAAAABsecret");
        assert_eq!(f.len(), 8);
        assert!(!f.contains("secret"));
    }
}
