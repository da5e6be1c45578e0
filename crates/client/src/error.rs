//! One error type for the whole SDK, with variants a caller can act on.
//!
//! Every fallible call of the crate returns [`Result`]. Match on the [`Error`] variant
//! for what failed (the network, TLS, the credentials, the server's answer, the caller's
//! input, the local cache), or use the helpers: [`Error::is_unauthenticated`] (log in
//! again), [`Error::is_fault`] (a given vim fault), [`Error::is_plain_http`] and
//! [`Error::is_thumbprint_mismatch`] (TLS set-up mistakes).
//!
//! ```no_run
//! # async fn demo(client: &vsess_client::vsphere::Client) -> vsess_client::Result<()> {
//! use vsess_client::Error;
//!
//! match client.session_list().await {
//!     Ok(sessions) => println!("{} sessions", sessions.len()),
//!     Err(e) if e.is_fault("NoPermission") => eprintln!("needs Sessions.TerminateSession"),
//!     Err(e) if e.is_unauthenticated() => eprintln!("session gone; log in again: {e}"),
//!     Err(Error::Timeout { .. } | Error::Connection { .. }) => eprintln!("server unreachable"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
use std::fmt;

/// Everything that can go wrong in an SDK call; `Display` gives a one-line message that
/// names the URL or file involved (never a password or token).
///
/// `Clone`, so that callers sharing one attempt (a single-flight relogin) all get its
/// outcome. `#[non_exhaustive]`: a new kind of failure is not a breaking change, so a
/// `match` on it needs a `_` arm (the helpers such as [`Error::is_unauthenticated`] and
/// [`Error::is_fault`] need none).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached (DNS, refused, reset), or the connection broke
    /// before the answer was read. Check the host and port, or retry later; a call that
    /// changes state may or may not have taken effect.
    #[error("cannot connect to {url}: {message}")]
    Connection {
        /// The URL of the request that failed.
        url: String,
        /// The transport error with its causes, joined with `": "`.
        message: String,
    },
    /// The server did not answer in time: opening the connection (TCP connect and TLS
    /// handshake, `connecting`) or a whole request took longer than the client's
    /// [`crate::tls::Timeouts`] (`after`, when known). Like [`Error::Connection`], the
    /// server is not usable; unlike it, something accepted the connection or the packets
    /// went nowhere, so the port, a firewall or a hung server are the suspects.
    #[error("{}", timeout_message(url, *connecting, *after))]
    Timeout {
        /// The URL of the request that timed out.
        url: String,
        /// True when opening the connection timed out ([`Timeouts::connect`]); false when
        /// the whole request did ([`Timeouts::request`]), so it may have reached the server.
        ///
        /// [`Timeouts::connect`]: crate::tls::Timeouts::connect
        /// [`Timeouts::request`]: crate::tls::Timeouts::request
        connecting: bool,
        /// The limit that expired, when the client knows it (the vSphere [`Client`] and
        /// [`SelfService`] mostly do); `None` from [`Error::from_reqwest`] and the
        /// Keystone [`ProviderClient`].
        ///
        /// [`Client`]: crate::vsphere::Client
        /// [`SelfService`]: crate::selfservice::SelfService
        /// [`ProviderClient`]: crate::openstack::ProviderClient
        after: Option<std::time::Duration>,
    },
    /// TLS failed: an untrusted or mismatched certificate, a pinned thumbprint that does
    /// not match ([`Error::is_thumbprint_mismatch`]), or a plain-HTTP server behind an
    /// `https://` URL ([`Error::is_plain_http`]). Retrying does not help: fix the
    /// [`Tls`](crate::tls::Tls) setting or the URL. (An unreadable CA bundle is
    /// [`Error::Config`], found before any connection.)
    #[error("TLS error talking to {url}: {message}{}", tls_hint(message))]
    Tls {
        /// The URL of the request whose handshake failed.
        url: String,
        /// rustls's error with its causes; starts with a fixed text for the plain-HTTP
        /// case and names both thumbprints for a pinning mismatch.
        message: String,
    },
    /// The credentials were refused (a Login, a REST login, or a Keystone token request
    /// `POST /v3/auth/tokens` with a wrong password or application credential), or a relogin
    /// is impossible (no credentials, or refused before). A session or token that is not (or
    /// no longer) valid is not this: it is a `NotAuthenticated` fault on every path, Keystone
    /// included ([`Error::is_unauthenticated`]).
    ///
    /// The string says what was refused (the user, the URL, Keystone's message). Do not
    /// retry with the same credentials: ask for new ones.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The server answered with a fault (SOAP or VI/JSON) or a vAPI error. An unknown or
    /// expired session is `NotAuthenticated` whatever the protocol (SOAP, REST, `/v2`, and a
    /// Keystone 401 to a call made with a token).
    ///
    /// Test `kind` with [`Error::is_fault`]; for `NotAuthenticated`, log in again (a
    /// client holding a password has already tried once). Other faults (`NoPermission`,
    /// `InvalidArgument`, `NotFound`, ...) are the server's decision: retrying the same call
    /// gives the same fault.
    #[error("{kind}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Fault {
        /// The vim fault type name without its namespace (`InvalidLogin`,
        /// `NotAuthenticated`, `NoPermission`), from the SOAP fault's `detail` `xsi:type`;
        /// `RuntimeFault` when the fault has no detail.
        kind: String,
        /// The fault's `faultstring` (may be empty), or the SDK's account of a 401.
        message: String,
    },
    /// An HTTP status the call did not expect: a 404 for an unknown session or project,
    /// a 403 for a missing privilege or role, a 400 for a refused parameter, a 5xx from a
    /// failing server. A 401 is mostly reported as [`Error::Authentication`] or a
    /// `NotAuthenticated` [`Error::Fault`]; one that does arrive here (a SOAP answer with
    /// no fault body) still counts for [`Error::is_unauthenticated`].
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        /// The HTTP status code, e.g. `404`.
        status: u16,
        /// The URL of the request.
        url: String,
        /// The server's error message when the body has one (Keystone's `error.message`,
        /// the `/v2` API's `message`), else the start of the body (300 characters for
        /// vSphere, 1 KiB for Keystone).
        body: String,
    },
    /// The server's answer could not be decoded: not XML or JSON, a member missing (no
    /// `X-Subject-Token`, no `UserSession`), a paging link that loops or leaves the
    /// endpoint. The server or a proxy in between does not speak the expected protocol;
    /// retrying rarely helps.
    #[error("cannot decode the answer from {url}: {message}")]
    Decode {
        /// The URL whose answer was refused.
        url: String,
        /// What was wrong with it (the parser's error, or the missing member).
        message: String,
    },
    /// Bad input from the caller, found before or without a request: a malformed URL, a
    /// missing `OS_*` variable, conflicting [`AuthOptions`](crate::openstack::AuthOptions),
    /// a bad thumbprint or CA bundle, a call that needs a session the client does not have.
    /// The string says what to change; retrying as is fails the same way.
    #[error("{0}")]
    Config(String),
    /// The local session cache failed (permissions, disk full, the lock file): its
    /// directory or a file could not be created, locked or written. Corrupt or unreadable
    /// cache files are not this: they are skipped with a warning and replaced.
    #[error("session cache {path}: {message}")]
    Cache {
        /// The cache file or directory involved.
        path: String,
        /// The I/O error.
        message: String,
    },
}

/// `std::result::Result` with the SDK's [`Error`]; what every fallible call returns.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether this is an [`Error::Fault`] whose `kind` is exactly `kind` (a vim fault type
    /// name such as `"NoPermission"`, case-sensitive).
    pub fn is_fault(&self, kind: &str) -> bool {
        matches!(self, Error::Fault { kind: k, .. } if k == kind)
    }

    /// Whether the error means the session is not valid (SOAP NotAuthenticated, HTTP 401,
    /// vAPI UNAUTHENTICATED): the cue to log in again. Rejected credentials
    /// ([`Error::Authentication`]) are not: logging in again would not help.
    pub fn is_unauthenticated(&self) -> bool {
        match self {
            Error::Fault { kind, .. } => {
                kind == "NotAuthenticated" || kind == "UNAUTHENTICATED" || kind == "unauthenticated"
            }
            Error::Http { status, .. } => *status == 401,
            _ => false,
        }
    }

    /// The error for a session the server did not accept on a REST or `/v2` call (HTTP
    /// 401): the same `NotAuthenticated` fault that SOAP answers.
    pub(crate) fn not_authenticated(message: String) -> Self {
        Error::Fault {
            kind: "NotAuthenticated".into(),
            message,
        }
    }

    /// A TLS error because the server answered the TLS handshake in plain HTTP: an
    /// `https://` URL for an `http://` server, or the wrong port. No certificate setting
    /// helps.
    pub fn is_plain_http(&self) -> bool {
        matches!(self, Error::Tls { message, .. } if message.starts_with(PLAIN_HTTP))
    }

    /// A TLS error because the server's certificate is not the pinned thumbprint (the
    /// caller chose whom to trust; the question is which server answered).
    pub fn is_thumbprint_mismatch(&self) -> bool {
        matches!(self, Error::Tls { message, .. } if thumbprint_mismatch(message))
    }

    /// Converts a reqwest error for a request to `url` into [`Error::Timeout`],
    /// [`Error::Tls`], [`Error::Decode`] or else [`Error::Connection`], for callers that
    /// send their own requests with [`Client::http`](crate::vsphere::Client::http).
    ///
    /// Classifies a transport error from reqwest by what failed, never by its text (which
    /// quotes the URL): a TLS error is one that carries a `rustls::Error` somewhere in its
    /// chain (a refused certificate, a pinned thumbprint's mismatch, a handshake the peer
    /// broke off with a TLS alert, a peer that does not speak TLS).
    pub fn from_reqwest(url: &str, e: &reqwest::Error) -> Self {
        Self::from_reqwest_within(url, e, None)
    }

    /// [`Error::from_reqwest`] by a client with these timeouts, which a timeout error
    /// then names.
    pub(crate) fn from_reqwest_within(
        url: &str,
        e: &reqwest::Error,
        timeouts: Option<crate::tls::Timeouts>,
    ) -> Self {
        if e.is_timeout() {
            let connecting = e.is_connect();
            return Error::Timeout {
                url: url.to_owned(),
                connecting,
                after: timeouts.map(|t| if connecting { t.connect } else { t.request }),
            };
        }
        let message = chain(e);
        if let Some(r) = refused_redirect(e) {
            return Error::Http {
                status: r.status,
                url: url.to_owned(),
                body: r.to_string(),
            };
        }
        if is_tls(e) {
            let message = if plain_http_answer(e) {
                format!("{PLAIN_HTTP}: use http:// or check the port ({message})")
            } else {
                message
            };
            Error::Tls {
                url: url.to_owned(),
                message,
            }
        } else if e.is_decode() {
            Error::Decode {
                url: url.to_owned(),
                message,
            }
        } else {
            Error::Connection {
                url: url.to_owned(),
                message,
            }
        }
    }
}

/// "no answer from HOST:PORT within 10 s ...", for [`Error::Timeout`].
fn timeout_message(url: &str, connecting: bool, after: Option<std::time::Duration>) -> String {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port_or_known_default() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .unwrap_or_else(|| url.to_owned());
    let within = after
        .map(|d| format!(" within {}", seconds(d)))
        .unwrap_or_default();
    if connecting {
        format!(
            "no answer from {host}{within} while connecting (TCP connect and TLS handshake): \
             is the server up, and is this its port?"
        )
    } else {
        format!("no answer from {host}{within} to a request to {url}: the server accepted the connection but did not answer in time")
    }
}

/// `10 s`, `1.5 s`, `250 ms`.
fn seconds(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

/// How [`Error::is_plain_http`]'s message starts.
const PLAIN_HTTP: &str = "the server answered in plain HTTP, not TLS";

/// Whether rustls refused the answer to its ClientHello as a record of an unknown content
/// type: the first bytes of an HTTP answer ("HTTP/1.1 400") read as a TLS record header.
fn plain_http_answer(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        rustls_error(e),
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
        ))
    )
}

/// Whether `e` or an error under it is a `rustls::Error`.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    rustls_error(e).is_some()
}

/// The first `rustls::Error` in `e`'s chain.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // `io::Error::source` skips the error an io::Error wraps (it returns that error's
        // own source), and the TLS stream wraps rustls's error in one, often twice.
        if let Some(r) = c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| rustls_error(inner))
        {
            return Some(r);
        }
        cur = c.source();
    }
    None
}

/// Whether a TLS error's message is `tls`'s pinned-thumbprint mismatch.
fn thumbprint_mismatch(message: &str) -> bool {
    message.contains("thumbprint mismatch")
}

/// What to do about a TLS error, unless it is a pinned thumbprint's mismatch.
fn tls_hint(message: &str) -> &'static str {
    if thumbprint_mismatch(message) || message.starts_with(PLAIN_HTTP) {
        ""
    } else {
        " (pin the certificate with a thumbprint, pass a CA bundle, or use the insecure flag for testing)"
    }
}

/// An error with its sources, joined with ": ".
/// The redirect that [`crate::tls::http_builder`]'s clients refused, if that is what `e` is.
fn refused_redirect(e: &reqwest::Error) -> Option<&crate::tls::RedirectRefused> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<crate::tls::RedirectRefused>() {
            return Some(r);
        }
        cur = c.source();
    }
    None
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// A redacting wrapper for secrets in Debug output.
pub struct Redacted<'a>(pub &'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"<redacted>\"")
        }
    }
}
