//! The vsess self-service API (`/v2/session`): your own sessions on every endpoint.
//!
//! Authorised by a live session id (the client's own SOAP session), or by a bearer token
//! from `POST /auth/request-token`.
//!
//! ```no_run
//! # async fn demo() -> vsess_client::Result<()> {
//! use vsess_client::selfservice::{ListQuery, SelfService};
//! use vsess_client::{tls::Tls, vsphere::Client};
//!
//! let client = Client::connect("https://vsess.example:19443/sdk", Tls::Verify).await?;
//! client.login("alice@vsphere.local", "secret").await?;
//! let me = SelfService::with_session(&client);
//! let idle = ListQuery { idle_gt: Some("1h".into()), ..Default::default() };
//! for s in me.list(&idle).await? {
//!     println!("{} {} idle {}", s.key, s.user_agent, s.last_active_time_delta);
//! }
//! let ended = me.end_idle("1h", &[], false).await?; // never ends the session in use
//! println!("ended {}", ended.len());
//! # Ok(()) }
//! ```
use crate::error::{Error, Result};
use crate::vsphere::Client;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// The self-service list resource; its pages' links stay on it.
const LIST_PATH: &str = "/v2/session";

/// One session, as `GET /v2/session/{key}` describes it (an item of its `data`; JSON
/// keys in camelCase). Times and deltas are the server's text, as the public `/v2/session`
/// reference writes them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDetail {
    /// The session's key (`key`): `UserSession.key`, what [`SelfService::end`] and
    /// `TerminateSession` take; not the secret session id.
    #[serde(default)]
    pub key: String,
    /// The user's domain in upper case (`domain`), e.g. `VSPHERE.LOCAL`; empty for a
    /// user name without `@domain`.
    pub domain: String,
    /// The client address the session was made from (`ip`; `UserSession.ipAddress`).
    pub ip: String,
    /// When the session was last used (`lastActiveTime`), UTC as `2016-05-09 10:58:21`.
    pub last_active_time: String,
    /// How long ago that was (`lastActiveTimeDelta`) when the server answered, as Python's
    /// `timedelta` prints it: `0:13:59.079416`, `24 days, 0:00:51.439527`.
    pub last_active_time_delta: String,
    /// When the session logged in (`loginTime`), UTC as `2016-05-09 10:58:21`.
    pub login_time: String,
    /// How long ago that was (`loginTimeDelta`), in the same form as
    /// `last_active_time_delta`.
    pub login_time_delta: String,
    /// The client's `User-Agent` at login (`userAgent`; `UserSession.userAgent`).
    pub user_agent: String,
    /// The user as `DOMAIN\user` (`username`), e.g. `VSPHERE.LOCAL\alice`.
    pub username: String,
}

/// One item of a list page: full details with `expand=true` on vsess, else at least the
/// key (the details are then fetched one by one).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageItem {
    #[serde(default)]
    key: Option<String>,
    domain: Option<String>,
    ip: Option<String>,
    last_active_time: Option<String>,
    last_active_time_delta: Option<String>,
    login_time: Option<String>,
    login_time_delta: Option<String>,
    user_agent: Option<String>,
    username: Option<String>,
}

impl PageItem {
    fn detail(self) -> std::result::Result<SessionDetail, Option<String>> {
        match self {
            PageItem {
                key: Some(key),
                domain: Some(domain),
                ip: Some(ip),
                last_active_time: Some(last_active_time),
                last_active_time_delta: Some(last_active_time_delta),
                login_time: Some(login_time),
                login_time_delta: Some(login_time_delta),
                user_agent: Some(user_agent),
                username: Some(username),
            } if !key.is_empty() => Ok(SessionDetail {
                key,
                domain,
                ip,
                last_active_time,
                last_active_time_delta,
                login_time,
                login_time_delta,
                user_agent,
                username,
            }),
            other => Err(other.key),
        }
    }
}

#[derive(Deserialize, Default)]
struct PageLinks {
    #[serde(default)]
    next: Option<String>,
}

/// A list page, decoded straight into its items (no intermediate JSON tree).
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<PageItem>,
    #[serde(default, rename = "_links")]
    links: PageLinks,
}

/// What to list: the query parameters of `GET /v2/session` (of the same names). The
/// default lists all of your own sessions, in login order. The server refuses a bad value
/// with HTTP 400 ([`Error::Http`]).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only sessions idle for longer than this (`idle_gt`): a duration such as `30m`,
    /// `1h30m`, `45s`, `2d`, or a bare number of seconds.
    pub idle_gt: Option<String>,
    /// Only sessions whose user agent contains this text, case-insensitively
    /// (`user_agent`).
    pub user_agent: Option<String>,
    /// Only sessions from exactly this client address (`ip`).
    pub ip: Option<String>,
    /// The order (`sort`): `loginTime` or `lastActiveTime`, with a leading `-` for
    /// descending. Unset: by login time.
    pub sort: Option<String>,
    /// Everyone's sessions, not only yours (`all=true`); needs the
    /// Sessions.TerminateSession privilege, else HTTP 403.
    pub all: bool,
    /// Session keys to leave out (`exclude`, repeated).
    pub exclude: Vec<String>,
}

impl ListQuery {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if let Some(v) = &self.idle_gt {
            p.push(("idle_gt", v.clone()));
        }
        if let Some(v) = &self.user_agent {
            p.push(("user_agent", v.clone()));
        }
        if let Some(v) = &self.ip {
            p.push(("ip", v.clone()));
        }
        if let Some(v) = &self.sort {
            p.push(("sort", v.clone()));
        }
        if self.all {
            p.push(("all", "true".into()));
        }
        for k in &self.exclude {
            p.push(("exclude", k.clone()));
        }
        p
    }
}

/// How requests are authorised.
#[derive(Clone)]
enum Auth {
    Session,
    Bearer(String),
}

/// A self-service client over a [`Client`]'s connection (its URL, TLS settings,
/// timeouts and, with [`SelfService::with_session`], its session). Cheap to clone.
#[derive(Clone)]
pub struct SelfService {
    client: Client,
    auth: Auth,
}

impl std::fmt::Debug for SelfService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfService")
            .field("client", &self.client)
            .field(
                "auth",
                &match self.auth {
                    Auth::Session => "session",
                    Auth::Bearer(_) => "bearer <redacted>",
                },
            )
            .finish()
    }
}

impl SelfService {
    /// Uses the client's current session as the credential. When the server no longer
    /// accepts it (HTTP 401) and the client holds a password, the client logs in again,
    /// as its own calls do (one relogin shared by concurrent callers; a refused password
    /// is not tried again), and the request is sent once more with the new session.
    pub fn with_session(client: &Client) -> Self {
        Self {
            client: client.clone(),
            auth: Auth::Session,
        }
    }

    /// Gets a bearer token with a password (`POST /auth/request-token`, HTTP Basic) and
    /// uses it for every call. The token expires on the server's schedule and is never
    /// renewed: calls then fail with a `NotAuthenticated` fault
    /// ([`Error::is_unauthenticated`]); make a new `SelfService`. A refused password is
    /// [`Error::Authentication`].
    pub async fn with_password(client: &Client, user: &str, password: &str) -> Result<Self> {
        let url = client.rest_url("/auth/request-token");
        let resp = client
            .http()
            .post(&url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .map_err(|e| client.transport_error(&url, &e))?;
        let v = Self::json_of(client, resp, &url, true).await?;
        let token = v["token"].as_str().ok_or_else(|| Error::Decode {
            url,
            message: "no token in the answer".into(),
        })?;
        Ok(Self {
            client: client.clone(),
            auth: Auth::Bearer(token.to_owned()),
        })
    }

    /// Sends one request with the credential: the bearer token, or the session `id`.
    async fn once(
        &self,
        method: reqwest::Method,
        url: &str,
        id: Option<&str>,
    ) -> Result<reqwest::Response> {
        let r = self.client.http().request(method, url);
        let r = match &self.auth {
            Auth::Bearer(t) => r.bearer_auth(t),
            Auth::Session => {
                let id = id.ok_or_else(|| {
                    Error::not_authenticated(
                        "not logged in: the client has no session to authorise with".into(),
                    )
                })?;
                r.header("vmware-api-session-id", id)
            }
        };
        r.send()
            .await
            .map_err(|e| self.client.transport_error(url, &e))
    }

    /// Sends a request. With the client's session, a 401 (or no session at all) lets the
    /// client log in again, if it has a password, through its single-flight relogin
    /// (concurrent callers share one Login, and a refused password is not tried again):
    /// then `Ok(None)` says the request must be sent again, with [`SelfService::resend`].
    async fn first(&self, method: reqwest::Method, url: &str) -> Result<Option<reqwest::Response>> {
        let used = self.client.session_id();
        let epoch = self.client.relogin_epoch();
        let may_relogin = matches!(self.auth, Auth::Session) && self.client.has_credentials();
        match self.once(method, url, used.as_deref()).await {
            Ok(resp) if resp.status() == reqwest::StatusCode::UNAUTHORIZED && may_relogin => {}
            Err(e) if e.is_unauthenticated() && may_relogin => {}
            other => return other.map(Some),
        }
        self.client.relogin(used.as_deref(), epoch).await?;
        Ok(None)
    }

    /// Sends a request again after a relogin, with the new session; no more relogins.
    async fn resend(&self, method: reqwest::Method, url: &str) -> Result<reqwest::Response> {
        self.once(method, url, self.client.session_id().as_deref())
            .await
    }

    /// [`SelfService::first`], then [`SelfService::resend`] if a relogin happened.
    async fn send(&self, method: reqwest::Method, url: &str) -> Result<reqwest::Response> {
        match self.first(method.clone(), url).await? {
            Some(resp) => Ok(resp),
            None => self.resend(method, url).await,
        }
    }

    async fn json(&self, resp: reqwest::Response, url: &str) -> Result<Value> {
        Self::json_of(&self.client, resp, url, false).await
    }

    /// The answer as JSON; `login` when the request carried a password, so that a 401
    /// means it was refused rather than that the session or token is not valid.
    async fn json_of(
        client: &Client,
        resp: reqwest::Response,
        url: &str,
        login: bool,
    ) -> Result<Value> {
        let (status, body) = Self::body(client, resp, url).await?;
        let v: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).map_err(|e| Error::Decode {
                url: url.to_owned(),
                message: e.to_string(),
            })?
        };
        match status {
            200..=299 => Ok(v),
            _ => Err(Self::failed(status, url, &v, &body, login)),
        }
    }

    /// A successful answer decoded as `T`; a failure as [`SelfService::json`] reports it.
    async fn typed<T: DeserializeOwned>(&self, resp: reqwest::Response, url: &str) -> Result<T> {
        let (status, body) = Self::body(&self.client, resp, url).await?;
        if (200..=299).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| Error::Decode {
                url: url.to_owned(),
                message: e.to_string(),
            });
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Err(Self::failed(status, url, &v, &body, false))
    }

    /// The status and the whole body; a body that stops coming is a timeout naming the
    /// client's limit.
    async fn body(
        client: &Client,
        resp: reqwest::Response,
        url: &str,
    ) -> Result<(u16, bytes::Bytes)> {
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| client.transport_error(url, &e))?;
        Ok((status, body))
    }

    /// The error for a failed answer. A 401 is [`Error::Authentication`] when `login`
    /// (the password was refused), else a `NotAuthenticated` fault: the session (or the
    /// token) is not valid, as SOAP says it.
    fn failed(status: u16, url: &str, v: &Value, body: &[u8], login: bool) -> Error {
        let message = v["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
        match status {
            401 if login => Error::Authentication(message),
            401 => Error::not_authenticated(format!(
                "{url}: the server did not accept the session or token (HTTP 401: {message})"
            )),
            _ => Error::Http {
                status,
                url: url.to_owned(),
                body: message,
            },
        }
    }

    /// Whether the server offers `/v2/session` (vsess does; vcsim and vCenter do not): an
    /// unauthenticated `OPTIONS /v2/session` answered with a 2xx. Only transport failures
    /// are errors.
    pub async fn available(&self) -> Result<bool> {
        let url = self.client.rest_url("/v2/session");
        let resp = self
            .client
            .http()
            .request(reqwest::Method::OPTIONS, &url)
            .send()
            .await
            .map_err(|e| self.client.transport_error(&url, &e))?;
        Ok(resp.status().is_success())
    }

    /// Every matching session (all pages), with details.
    ///
    /// The pages' `_links.next` are followed on the client's own server only: a link to
    /// another origin (a server behind a TLS-terminating proxy may name itself with
    /// `http://`, or by an inner name) gives its path and query, sent to the client's base
    /// URL; the session or token is never sent elsewhere. A link outside `/v2/session`,
    /// or back to a page already fetched, is an error.
    pub async fn list(&self, q: &ListQuery) -> Result<Vec<SessionDetail>> {
        let mut url = reqwest::Url::parse(&self.client.rest_url(LIST_PATH))
            .map_err(|e| Error::Config(e.to_string()))?;
        {
            let mut qp = url.query_pairs_mut();
            for (k, v) in q.params() {
                qp.append_pair(k, &v);
            }
            qp.append_pair("per_page", "100");
            // vsess puts the details in the list itself; other servers ignore or refuse
            // `expand`, and then each session is fetched on its own.
            qp.append_pair("expand", "true");
        }
        let mut out = Vec::new();
        let mut keys = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(url);
        while let Some(page_url) = next.take() {
            let u = page_url.to_string();
            if !seen.insert(u.clone()) {
                return Err(Error::Decode {
                    url: u,
                    message: "the pages' next links loop: this page was already fetched".into(),
                });
            }
            let resp = self.send(reqwest::Method::GET, &u).await?;
            let page: Page = self.typed(resp, &u).await?;
            for item in page.data {
                match item.detail() {
                    Ok(detail) => out.push(detail),
                    Err(Some(k)) => keys.push(k),
                    Err(None) => {}
                }
            }
            next = match page.links.next {
                Some(link) => Some(self.next_page(&page_url, &link)?),
                None => None,
            };
        }
        for k in keys {
            match self.get(&k, q.all).await {
                Ok(d) => out.push(d),
                // Ended between the list and the detail: skip it.
                Err(Error::Http { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Where to fetch the page that `link` (a page's `_links.next`, absolute or relative
    /// to `current`) names: its path and query on the client's base URL, whatever origin
    /// it names, and only within `/v2/session`.
    fn next_page(&self, current: &reqwest::Url, link: &str) -> Result<reqwest::Url> {
        let refused = |message: String| Error::Decode {
            url: current.to_string(),
            message,
        };
        let named = current
            .join(link)
            .map_err(|e| refused(format!("the next-page link is not a URL: {e}")))?;
        let mut next = reqwest::Url::parse(&self.client.rest_url(LIST_PATH))
            .map_err(|e| Error::Config(e.to_string()))?;
        if named.origin() != next.origin() {
            tracing::debug!(
                link = %named.origin().ascii_serialization(),
                base = %next.origin().ascii_serialization(),
                "the next-page link names another origin; using its path on the client's"
            );
        }
        // `join` has resolved any dot segments, so the path is what the server would see.
        next.set_path(named.path());
        next.set_query(named.query());
        if next.path().trim_end_matches('/') != LIST_PATH {
            return Err(refused(format!(
                "the next-page link points outside {LIST_PATH} ({}); not following it",
                named.path()
            )));
        }
        Ok(next)
    }

    /// One session's details (`GET /v2/session/{key}`); `all` to see another user's (needs
    /// Sessions.TerminateSession). A key that does not exist, or is another user's without
    /// `all`, is [`Error::Http`] 404.
    pub async fn get(&self, key: &str, all: bool) -> Result<SessionDetail> {
        let url = self.key_url(key, all)?;
        let resp = self.send(reqwest::Method::GET, &url).await?;
        let v = self.json(resp, &url).await?;
        let mut d: SessionDetail =
            serde_json::from_value(v["data"][0].clone()).map_err(|e| Error::Decode {
                url: url.clone(),
                message: e.to_string(),
            })?;
        if d.key.is_empty() {
            d.key = key.to_owned();
        }
        Ok(d)
    }

    fn key_url(&self, key: &str, all: bool) -> Result<String> {
        let mut u = self
            .client
            .rest_url(&format!("/v2/session/{}", key_segment(key)?));
        if all {
            u.push_str("?all=true");
        }
        Ok(u)
    }

    /// Ends one session by key (`DELETE /v2/session/{key}`): yours, or anyone's with `all`
    /// (needs Sessions.TerminateSession). An unknown key is [`Error::Http`] 404.
    pub async fn end(&self, key: &str, all: bool) -> Result<()> {
        let url = self.key_url(key, all)?;
        let resp = self.send(reqwest::Method::DELETE, &url).await?;
        self.json(resp, &url).await.map(|_| ())
    }

    /// Ends your sessions idle longer than `idle` (e.g. `30m`), except `exclude`. If the
    /// client's session had to be replaced first (see [`SelfService::with_session`]), the
    /// new one is never ended either, nor is the session that authorises the request.
    /// Returns the keys of the sessions ended (`DELETE /v2/session?idle_gt=...`); `all`
    /// extends it to everyone's sessions (needs Sessions.TerminateSession). An `idle` the
    /// server cannot parse is [`Error::Http`] 400.
    pub async fn end_idle(&self, idle: &str, exclude: &[String], all: bool) -> Result<Vec<String>> {
        let url = |also: Option<&str>| -> Result<String> {
            let mut url = reqwest::Url::parse(&self.client.rest_url(LIST_PATH))
                .map_err(|e| Error::Config(e.to_string()))?;
            {
                let mut qp = url.query_pairs_mut();
                qp.append_pair("idle_gt", idle);
                for k in exclude.iter().map(String::as_str).chain(also) {
                    qp.append_pair("exclude", k);
                }
                if all {
                    qp.append_pair("all", "true");
                }
            }
            Ok(url.to_string())
        };
        let mut u = url(None)?;
        let resp = match self.first(reqwest::Method::DELETE, &u).await? {
            Some(resp) => resp,
            None => {
                // The caller excluded its session, which has just been replaced: exclude
                // the new one (a relogin session is idle for no time, but `0s` ends all).
                let current = self.client.current_session().await?.map(|s| s.key);
                u = url(current.as_deref())?;
                self.resend(reqwest::Method::DELETE, &u).await?
            }
        };
        let v = self.json(resp, &u).await?;
        Ok(v["data"]["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect())
    }
}

/// A session key as one URL path segment: everything but unreserved characters is
/// %-encoded (a space as `%20`; form encoding's `+` would be a literal plus in a path).
/// An empty key, `.` and `..` are refused: as a path segment they would name another
/// resource.
fn key_segment(key: &str) -> Result<String> {
    if matches!(key, "" | "." | "..") {
        return Err(Error::Config(format!("{key:?} is not a session key")));
    }
    Ok(key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_is_one_path_segment() {
        assert_eq!(
            super::key_segment("52d8f0c4-9a1e-4b7a").unwrap(),
            "52d8f0c4-9a1e-4b7a"
        );
        assert_eq!(
            super::key_segment("a b+c/../d?e#f%").unwrap(),
            "a%20b%2Bc%2F..%2Fd%3Fe%23f%25"
        );
        for bad in ["", ".", ".."] {
            assert!(super::key_segment(bad).is_err(), "{bad:?}");
        }
    }
}
