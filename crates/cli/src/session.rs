//! `vsess login|ls|rm|logout|whoami`: your sessions on vsess, vcsim or vCenter, built on
//! the client SDK and govmomi's session cache (so govc and vsess share sessions).
use crate::Failure;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use vsess_client::cache::Session;
use vsess_client::selfservice::{ListQuery, SelfService, SessionDetail};
use vsess_client::tls::{Timeouts, Tls};
use vsess_client::vsphere::{url_credentials, Client};
use vsess_client::Error;

/// Exit codes, distinct per kind of failure.
pub const EXIT_CONNECTION: u8 = 3;
pub const EXIT_TLS: u8 = 4;
pub const EXIT_AUTH: u8 = 5;

#[derive(Args, Clone, Default)]
pub struct Conn {
    /// Server URL: https://[user[:password]@]host[:port][/sdk]. Defaults to $VSESS_URL,
    /// then $GOVC_URL, then the server of your last `vsess login` (kept per
    /// $GOVMOMI_HOME). A command that uses a variable instead of a different remembered
    /// server says so on stderr; `whoami` always says where its server came from.
    #[arg(long)]
    url: Option<String>,
    /// User name (user@domain or DOMAIN\user). Defaults to $VSESS_USERNAME, then
    /// $GOVC_USERNAME, then the URL's user; as in govc, each of these replaces a user
    /// written in the URL (with a warning when they differ).
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Read the password from standard input instead of $VSESS_PASSWORD, $GOVC_PASSWORD,
    /// the URL, or a prompt.
    #[arg(long)]
    password_stdin: bool,
    /// Skip TLS verification, like govc -k (also $VSESS_INSECURE, $GOVC_INSECURE).
    #[arg(long, short = 'k')]
    insecure: bool,
    /// Accept only the certificate with this SHA-256 (or SHA-1) thumbprint, as printed by
    /// `vsess serve` (also $VSESS_TLS_THUMBPRINT).
    #[arg(long)]
    thumbprint: Option<String>,
    /// Trust the CA certificates in this PEM file, or in several separated by ':' as govc
    /// reads them (also $VSESS_TLS_CA_CERTS, $GOVC_TLS_CA_CERTS).
    #[arg(long)]
    ca_certs: Option<PathBuf>,
    /// Give up opening a connection (TCP connect and TLS handshake) after this long:
    /// 10s by default, as govc. Also $VSESS_CONNECT_TIMEOUT, then govc's
    /// $GOVC_TLS_HANDSHAKE_TIMEOUT. A duration with its unit: 500ms, 10s, 1m.
    #[arg(long, value_name = "DURATION")]
    connect_timeout: Option<String>,
    /// Give up on a request the server has not answered after this long: 60s by default
    /// (also $VSESS_TIMEOUT). A duration with its unit: 30s, 2m.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
}

/// The session commands' exit codes, for each one's `--help`.
macro_rules! exit_codes {
    () => {
        "Exit codes: 0 ok, 1 failure, 2 bad usage, 3 cannot connect or no answer in time (see
--connect-timeout, --timeout), 4 TLS verification failed, 5 authentication failed or not
logged in."
    };
}

/// What every session command's `--help` says about the cache, and its exit codes.
macro_rules! session_help {
    ($examples:literal) => {
        concat!(
            "Sessions are cached in govc's format under $GOVMOMI_HOME (default ~/.govmomi), so govc
and vsess reuse each other's sessions and repeated runs do not leak new ones. The server,
user and TLS choice of the last `vsess login` are remembered (in
$GOVMOMI_HOME/vsess-current.json, or ~/.config/vsess/current.json without GOVMOMI_HOME):
later commands need no URL. The server is, first to last: the URL argument of `login`,
--url, $VSESS_URL, $GOVC_URL, the remembered one.

Examples:
",
            $examples,
            "\n\n",
            exit_codes!()
        )
    };
}

#[derive(Subcommand)]
#[command(after_long_help = "\
Sessions are cached in govc's format under $GOVMOMI_HOME (default ~/.govmomi), so govc
and vsess reuse each other's sessions and repeated runs do not leak new ones.

Examples:
  vsess login https://administrator@vsphere.local@127.0.0.1:8989 -k
  vsess ls                      # your sessions (table); --json for JSON
  vsess rm --idle 30m           # end your sessions idle for more than 30 minutes
  vsess rm 52d8f0c4-...         # end one session by key
  vsess whoami
  vsess logout")]
pub enum SessionCommand {
    /// Log in (or reuse a valid cached session) and remember the server.
    #[command(after_long_help = session_help!("  vsess login https://127.0.0.1:8989 -u administrator@vsphere.local -k
  printf '%s\\n' \"$PW\" | vsess login https://vc.example -u ops@vsphere.local --password-stdin
  vsess login https://127.0.0.1:8989 -u ops@vsphere.local --thumbprint AB:CD:...   # pin
  GOVC_URL=https://user:pass@127.0.0.1:8989 GOVC_INSECURE=1 vsess login"))]
    Login {
        /// Server URL (or use --url / $VSESS_URL / $GOVC_URL; not both URL and --url).
        #[arg(value_name = "URL")]
        server: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List your sessions on every endpoint (SOAP, VI/JSON, vAPI).
    #[command(after_long_help = session_help!("  vsess ls                      # your sessions; the current one's Idle is \".\"
  vsess ls --json               # the same as JSON
  vsess ls --all                # everyone's (needs Sessions.TerminateSession)"))]
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Everyone's sessions (needs Sessions.TerminateSession).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// End sessions: by key, or all of yours idle longer than --idle.
    #[command(after_long_help = session_help!("  vsess rm --idle 30m           # your sessions idle for more than 30 minutes
  vsess rm 52d8f0c4-...         # one session, by the key `vsess ls` shows
  vsess rm --all 52d8f0c4-...   # someone else's (needs Sessions.TerminateSession)"))]
    Rm {
        /// Session keys (UserSession.key, as `vsess ls` shows).
        keys: Vec<String>,
        /// End your sessions idle longer than this: a duration with its unit (45s, 30m,
        /// 1h, 1h30m, 2d, 0s); a bare number is refused. Never the current one.
        #[arg(long, conflicts_with = "keys")]
        idle: Option<String>,
        /// Anyone's sessions (needs Sessions.TerminateSession).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// End the cached session and forget it.
    #[command(after_long_help = session_help!("  vsess logout                  # the server of the last `vsess login`
  vsess logout --url https://127.0.0.1:8989 -u ops@vsphere.local"))]
    Logout {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show who the cached session belongs to.
    #[command(after_long_help = session_help!("  vsess whoami
  vsess whoami --json"))]
    Whoami {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// The server of the last `vsess login` (no secrets).
#[derive(Serialize, Deserialize)]
struct Current {
    url: String,
    insecure: bool,
    thumbprint: Option<String>,
    ca_certs: Option<PathBuf>,
}

/// Where the server of the last `vsess login` is kept: with the sessions it goes with.
/// With $GOVMOMI_HOME set, `$GOVMOMI_HOME/vsess-current.json`, so that runs isolated by
/// their GOVMOMI_HOME (CI jobs) each have their own; otherwise
/// `$XDG_CONFIG_HOME/vsess/current.json` (default `~/.config/vsess/current.json`).
fn current_path() -> PathBuf {
    if let Some(home) = std::env::var_os("GOVMOMI_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home).join("vsess-current.json");
    }
    config_current_path()
}

/// `$XDG_CONFIG_HOME/vsess/current.json`: where the last `vsess login` was kept before it
/// went with $GOVMOMI_HOME, and still is without it.
fn config_current_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".config")
        });
    base.join("vsess").join("current.json")
}

/// Where a command's server came from, in the order they are looked at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    /// `vsess login URL`.
    Argument,
    /// `--url`.
    Flag,
    /// `$VSESS_URL` or `$GOVC_URL`.
    Env(&'static str),
    /// The last `vsess login` (with this GOVMOMI_HOME).
    Remembered,
}

impl Source {
    /// For messages: "$GOVC_URL", "--url", ...
    fn describe(self) -> String {
        match self {
            Source::Argument => "the command line".into(),
            Source::Flag => "--url".into(),
            Source::Env(name) => format!("${name}"),
            Source::Remembered => "your last `vsess login`".into(),
        }
    }

    /// For JSON: "argument", "--url", "GOVC_URL", "login".
    fn key(self) -> &'static str {
        match self {
            Source::Argument => "argument",
            Source::Flag => "--url",
            Source::Env(name) => name,
            Source::Remembered => "login",
        }
    }
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// `$VSESS_INSECURE` or `$GOVC_INSECURE`, read as govc reads the latter: `1` or `true`
/// (any case) skip TLS verification, anything else does not. Read otherwise, a variable
/// that govc and vsess share would send them to different cache files (the key includes
/// `insecure`), and only one of them would verify the certificate.
fn insecure_from_env() -> bool {
    let Some((name, v)) = ["VSESS_INSECURE", "GOVC_INSECURE"]
        .into_iter()
        .find_map(|n| env(&[n]).map(|v| (n, v)))
    else {
        return false;
    };
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => true,
        "0" | "false" => false,
        _ => {
            eprintln!(
                "vsess: note: ${name}={v} is neither 1 nor true (as govc reads it): TLS is verified"
            );
            false
        }
    }
}

/// Maps an SDK error to a one-line message and its exit code.
pub fn failure(e: Error) -> Failure {
    // The SDK's TLS advice in the CLI's own flags (none for a pinned thumbprint that does
    // not match: the certificate was chosen, and the question is which server answered).
    if let Error::Tls { url, message } = &e {
        let advice = if e.is_thumbprint_mismatch() || e.is_plain_http() {
            ""
        } else {
            " (pin the server's certificate with --thumbprint SHA256, as `vsess serve` prints \
             it; trust its CA with --ca-certs FILE; or, for testing only, skip verification \
             with -k/--insecure)"
        };
        return Failure {
            code: EXIT_TLS,
            message: format!("TLS error talking to {url}: {message}{advice}"),
        };
    }
    let (code, hint) = match &e {
        Error::Connection { .. } => (
            EXIT_CONNECTION,
            " (is the server running and the URL right?)",
        ),
        Error::Timeout {
            connecting: true, ..
        } => (
            EXIT_CONNECTION,
            " (a slow network? raise the limit with --connect-timeout or $VSESS_CONNECT_TIMEOUT)",
        ),
        Error::Timeout { .. } => (
            EXIT_CONNECTION,
            " (is it overloaded or hung? raise the limit with --timeout or $VSESS_TIMEOUT)",
        ),
        Error::Tls { .. } => (EXIT_TLS, ""),
        Error::Authentication(_) => (
            EXIT_AUTH,
            " (run `vsess login URL` or check the credentials)",
        ),
        // A session the server no longer accepts (on any protocol), with no way to log in
        // again in this run: like refused credentials, a case for `vsess login`.
        e if e.is_unauthenticated() => {
            (EXIT_AUTH, " (the session has ended: run `vsess login URL`)")
        }
        Error::Config(_) => (2, ""),
        _ => (1, ""),
    };
    Failure {
        code,
        message: format!("{e}{hint}"),
    }
}

struct Resolved {
    session: Session,
    tls_desc: Current,
    /// Where the server came from.
    source: Source,
}

impl Resolved {
    /// The server's URL for messages: without the user, which they name on their own.
    fn server(&self) -> String {
        let mut u = self.session.endpoint();
        let _ = u.set_username("");
        u.to_string()
    }
}

/// An endpoint string without its user, for messages.
fn without_user(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(mut u) => {
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => endpoint.to_owned(),
    }
}

impl Conn {
    fn resolve(&self, positional: Option<&str>) -> Result<Resolved, Failure> {
        // A login remembered before it was kept with $GOVMOMI_HOME still counts, until the
        // next `vsess login` writes the new file.
        let saved: Option<Current> = std::fs::read(current_path())
            .or_else(|_| std::fs::read(config_current_path()))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok());
        if positional.is_some() && self.url.is_some() {
            return Err(Failure::usage(
                "two servers: give the URL either as the argument or with --url, not both",
            ));
        }
        let from_env = ["VSESS_URL", "GOVC_URL"]
            .into_iter()
            .find_map(|n| env(&[n]).map(|v| (v, Source::Env(n))));
        let (raw, source) = positional
            .map(|p| (p.to_owned(), Source::Argument))
            .or_else(|| self.url.clone().map(|u| (u, Source::Flag)))
            .or(from_env)
            .or_else(|| saved.as_ref().map(|c| (c.url.clone(), Source::Remembered)))
            .ok_or_else(|| {
                Failure::usage("no server: pass a URL, set VSESS_URL or GOVC_URL, or run `vsess login URL` first")
            })?;
        let from_saved = source == Source::Remembered;
        let insecure = self.insecure
            || insecure_from_env()
            || (from_saved && saved.as_ref().is_some_and(|c| c.insecure));
        let thumbprint = self
            .thumbprint
            .clone()
            .or_else(|| env(&["VSESS_TLS_THUMBPRINT"]))
            .or_else(|| {
                saved
                    .as_ref()
                    .filter(|_| from_saved)
                    .and_then(|c| c.thumbprint.clone())
            });
        let ca_certs = self
            .ca_certs
            .clone()
            .or_else(|| env(&["VSESS_TLS_CA_CERTS", "GOVC_TLS_CA_CERTS"]).map(PathBuf::from))
            .or_else(|| {
                saved
                    .as_ref()
                    .filter(|_| from_saved)
                    .and_then(|c| c.ca_certs.clone())
            });
        let mut session = Session::new(&raw, insecure).map_err(failure)?;
        session.timeouts = self.timeouts()?;
        // As govc: a user given apart from the URL replaces the URL's. Said when they
        // differ, since the URL's user is then silently not the one logged in as.
        let named_user = self.user.clone().map(|u| (u, "-u".to_owned())).or_else(|| {
            ["VSESS_USERNAME", "GOVC_USERNAME"]
                .into_iter()
                .find_map(|n| env(&[n]).map(|v| (v, format!("${n}"))))
        });
        if let Some((user, from)) = named_user {
            // Compared as the server would: `DOMAIN\user` and `user@domain`, any case.
            let same = |a: &str, b: &str| {
                a == b
                    || matches!(
                        (vsess_core::UserName::parse(a), vsess_core::UserName::parse(b)),
                        (Some(x), Some(y)) if x == y
                    )
            };
            if let Some((in_url, _)) =
                url_credentials(&session.url).filter(|(u, _)| !same(u, &user))
            {
                if source != Source::Remembered {
                    tracing::warn!(
                        "the user {user} from {from} replaces the URL's user {in_url}, as in govc"
                    );
                }
            }
            let _ = session.url.set_username(&user);
        }
        if !insecure {
            session.tls = match (&thumbprint, &ca_certs) {
                (Some(t), _) => Tls::Thumbprint(t.clone()),
                (None, Some(p)) => Tls::CaBundle(p.clone()),
                _ => Tls::Verify,
            };
        }
        let endpoint = session.endpoint_as_given();
        // The environment beats the remembered login; say so when they differ, since the
        // user may have forgotten a variable set for something else.
        if let (Source::Env(name), Some(saved)) = (source, &saved) {
            if saved.url != endpoint {
                eprintln!(
                    "vsess: note: using ${name} ({}), not the server of your last `vsess login` ({})",
                    without_user(&endpoint),
                    without_user(&saved.url)
                );
            }
        }
        Ok(Resolved {
            session,
            tls_desc: Current {
                url: endpoint,
                insecure,
                thumbprint,
                ca_certs,
            },
            source,
        })
    }

    /// The timeouts from the flags, the environment, or the SDK's defaults.
    fn timeouts(&self) -> Result<Timeouts, Failure> {
        let pick = |flag: &Option<String>, flag_name: &str, vars: &[&str]| {
            let (value, from) = match flag {
                Some(v) => (v.clone(), flag_name.to_owned()),
                None => match vars
                    .iter()
                    .find_map(|n| env(&[n]).map(|v| (v, format!("${n}"))))
                {
                    Some(found) => found,
                    None => return Ok(None),
                },
            };
            parse_timeout(&value).map(Some).ok_or_else(|| {
                Failure::usage(format!(
                    "{from} '{value}' is not a duration: give a positive number with its unit, \
                     e.g. 500ms, 10s or 2m"
                ))
            })
        };
        let defaults = Timeouts::default();
        Ok(Timeouts {
            connect: pick(
                &self.connect_timeout,
                "--connect-timeout",
                &["VSESS_CONNECT_TIMEOUT", "GOVC_TLS_HANDSHAKE_TIMEOUT"],
            )?
            .unwrap_or(defaults.connect),
            request: pick(&self.timeout, "--timeout", &["VSESS_TIMEOUT"])?
                .unwrap_or(defaults.request),
        })
    }

    /// Fills in the password from stdin, the environment or a prompt (only when needed).
    fn add_password(&self, session: &mut Session) -> Result<(), Failure> {
        if url_credentials(&session.url).is_none_or(|(_, p)| p.is_empty()) {
            let user = url_credentials(&session.url).map(|(u, _)| u);
            let password = if self.password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| Failure::runtime(format!("cannot read the password: {e}")))?;
                Some(line.trim_end_matches(['\n', '\r']).to_owned())
            } else if let Some(p) = env(&["VSESS_PASSWORD", "GOVC_PASSWORD"]) {
                Some(p)
            } else if user.is_some() && std::io::stdin().is_terminal() {
                Some(
                    rpassword::prompt_password(format!(
                        "Password for {}: ",
                        user.unwrap_or_default()
                    ))
                    .map_err(|e| Failure::runtime(format!("cannot read the password: {e}")))?,
                )
            } else {
                None
            };
            if let Some(p) = password {
                let _ = session.url.set_password(Some(&p));
            }
        }
        Ok(())
    }
}

/// The cached session, logging in (with a prompt if needed) when it is not valid.
async fn connect(
    conn: &Conn,
    positional: Option<&str>,
    login: bool,
) -> Result<(vsess_client::cache::Login, Resolved), Failure> {
    let r = conn.resolve(positional)?;
    connect_resolved(conn, r, login).await
}

async fn connect_resolved(
    conn: &Conn,
    mut r: Resolved,
    login: bool,
) -> Result<(vsess_client::cache::Login, Resolved), Failure> {
    // No cached session has an empty user, so there is nothing to reuse or log in as.
    if login && url_credentials(&r.session.url).is_none() {
        return Err(no_credentials(&r));
    }
    // The cached session first: the password (a prompt, stdin) is asked for only when a
    // login is needed.
    match r.session.login().await {
        Ok(l) => Ok((l, r)),
        Err(Error::Authentication(m)) if m.contains("no valid cached session") => {
            conn.add_password(&mut r.session)?;
            if url_credentials(&r.session.url).is_some_and(|(_, p)| !p.is_empty()) {
                let l = r
                    .session
                    .login()
                    .await
                    .map_err(|e| login_failure(e, login))?;
                return Ok((l, r));
            }
            Err(no_credentials(&r))
        }
        Err(e) => Err(login_failure(e, login)),
    }
}

/// [`failure`] for a login's error. During `vsess login`, refused credentials are not
/// followed by advice to run `vsess login`.
fn login_failure(e: Error, login: bool) -> Failure {
    match e {
        Error::Authentication(m) if login => Failure {
            code: EXIT_AUTH,
            message: format!("authentication failed: {m} (check the user name and password)"),
        },
        e => failure(e),
    }
}

/// No valid cached session and nothing to log in with: says which of the two is missing
/// and how to give it.
fn no_credentials(r: &Resolved) -> Failure {
    let url = r.server();
    let message = match url_credentials(&r.session.url) {
        None => format!(
            "not logged in to {url}, and no user to log in as: give one with -u USER (or \
             $VSESS_USERNAME), e.g. `vsess login {url} -u administrator@vsphere.local`"
        ),
        // A hint is left by a session vsess cached: it was there, and the server refused it.
        Some((user, _)) if r.session.hint().is_some() => format!(
            "the session cached for {url} has expired or was ended, and there is no password \
             for {user} to log in again: pass --password-stdin, set $VSESS_PASSWORD, or run \
             in a terminal to be prompted"
        ),
        Some((user, _)) => format!(
            "not logged in to {url}, and no password for {user}: pass --password-stdin, \
             set $VSESS_PASSWORD, or run in a terminal to be prompted"
        ),
    };
    Failure {
        code: EXIT_AUTH,
        message,
    }
}

fn save_current(c: &Current) {
    let path = current_path();
    // A missing directory is made private; an existing one (a $GOVMOMI_HOME that may be a
    // shared workspace) is left as it is: the file itself is 0600.
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        if vsess_store::ensure_private_dir(dir).is_err() {
            return;
        }
    }
    if let Ok(data) = serde_json::to_vec_pretty(c) {
        let _ = vsess_store::write_private_atomic(&path, &data);
    }
}

/// A timeout as Go writes durations (`GOVC_TLS_HANDSHAKE_TIMEOUT`): numbers with units
/// `ms`, `s`, `m`, `h`, e.g. `500ms`, `1.5s`, `1m30s`. A bare number is refused: its unit
/// would be a guess. Zero (which would mean no limit to reqwest's caller) is refused too.
fn parse_timeout(s: &str) -> Option<std::time::Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_len].parse().ok()?;
        rest = &rest[n_len..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        total += n * unit;
    }
    (total > 0.0 && total <= 365.0 * 86_400.0).then(|| std::time::Duration::from_secs_f64(total))
}

/// Compact idle time: `42s`, `5m03s`, `2h01m`, `3d04h`.
fn compact(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
        _ => format!("{}d{:02}h", s / 86_400, (s / 3600) % 24),
    }
}

/// Seconds in a Python-style delta (`0:13:59.079416`, `24 days, 0:00:51`).
fn delta_secs(d: &str) -> i64 {
    let (days, rest) = match d.split_once(", ") {
        Some((days, rest)) => (
            days.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            rest,
        ),
        None => (0i64, d),
    };
    let mut parts = rest.split(':');
    let h: i64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let m: i64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let s: i64 = parts
        .next()
        .and_then(|p| p.split('.').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    days * 86_400 + h * 3600 + m * 60 + s
}

/// One row of `vsess ls`.
#[derive(Serialize)]
struct Row {
    key: String,
    #[serde(rename = "userName")]
    user_name: String,
    /// RFC 3339 in UTC in the JSON (`2026-11-22T20:16:42Z`), as in `whoami --json`.
    #[serde(rename = "loginTime", serialize_with = "rfc3339_secs")]
    login_time: chrono::DateTime<chrono::Utc>,
    #[serde(rename = "idleSeconds")]
    idle_seconds: i64,
    #[serde(rename = "ipAddress")]
    ip_address: String,
    #[serde(rename = "userAgent")]
    user_agent: String,
    current: bool,
    /// Exact idle time, for `rm --idle` (the JSON shows whole seconds).
    #[serde(skip)]
    idle: chrono::Duration,
}

/// The rows from vsess's `/v2/session` list.
async fn v2_rows(client: &Client, me: &str, all: bool) -> Result<Vec<Row>, Error> {
    let q = ListQuery {
        all,
        ..Default::default()
    };
    let list = SelfService::with_session(client).list(&q).await?;
    detail_rows(list, me)
}

fn rfc3339_secs<S: serde::Serializer>(
    t: &chrono::DateTime<chrono::Utc>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A `/v2/session` time: the reference's `YYYY-MM-DD HH:MM:SS` in UTC (fractions of a
/// second are accepted), or RFC 3339.
fn v2_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()))
        .ok()
}

fn detail_rows(list: Vec<SessionDetail>, me: &str) -> Result<Vec<Row>, Error> {
    list.into_iter()
        .map(|d| {
            let login_time = v2_time(&d.login_time).ok_or_else(|| Error::Decode {
                url: "/v2/session".into(),
                message: format!(
                    "session {}: loginTime '{}' is not a time",
                    d.key, d.login_time
                ),
            })?;
            Ok(Row {
                current: d.key == me,
                key: d.key,
                user_name: d.username,
                login_time,
                idle: chrono::Duration::seconds(delta_secs(&d.last_active_time_delta)),
                idle_seconds: delta_secs(&d.last_active_time_delta),
                ip_address: d.ip,
                user_agent: d.user_agent,
            })
        })
        .collect()
}

/// `vsess ls` with the cached session as is, when vsess's hint says the server has
/// `/v2/session`: one round trip, which also validates the session. `None` when that
/// cannot be done or the server answers as if the session or the API is gone: then the
/// caller takes the validated way (and corrects the hint).
async fn quick_rows(r: &Resolved, all: bool) -> Result<Option<Vec<Row>>, Failure> {
    let Some(resumed) = r.session.resume().map_err(failure)? else {
        return Ok(None);
    };
    if resumed.self_service != Some(true) {
        return Ok(None);
    }
    match v2_rows(&resumed.client, &resumed.session.key, all).await {
        Ok(rows) => Ok(Some(rows)),
        Err(e) if resume_failed(&e) => {
            tracing::debug!("the cached session did not serve as is ({e}); validating it");
            Ok(None)
        }
        Err(e) => Err(failure(e)),
    }
}

/// Whether a call with a resumed session failed as if the session had ended or the
/// server no longer offered what the hint says.
fn resume_failed(e: &Error) -> bool {
    e.is_unauthenticated()
        || matches!(
            e,
            Error::Authentication(_)
                | Error::Decode { .. }
                | Error::Http {
                    status: 400 | 404 | 405 | 410 | 501,
                    ..
                }
        )
}

/// What ending a session by key did.
enum Ended {
    Yes,
    /// The server knows no such session, or none of the user's.
    NotFound,
}

/// The outcome of [`end_each`].
#[derive(Default)]
struct EndOutcome {
    ended: Vec<String>,
    missing: Vec<String>,
    /// The error that stopped it (not a missing key: the server unreachable, a refusal).
    stopped: Option<Failure>,
}

/// Ends each key in turn, carrying on past keys the server does not know, stopping at the
/// first other error (it would most likely fail the next keys the same way).
async fn end_each<'a, F, Fut>(keys: &'a [String], mut end: F) -> EndOutcome
where
    F: FnMut(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<Ended, Failure>>,
{
    let mut out = EndOutcome::default();
    for k in keys {
        match end(k).await {
            Ok(Ended::Yes) => out.ended.push(k.clone()),
            Ok(Ended::NotFound) => out.missing.push(k.clone()),
            Err(f) => {
                out.stopped = Some(f);
                break;
            }
        }
    }
    out
}

/// Ends one session with `DELETE /v2/session/KEY`; 404 is another user's key or none.
async fn v2_end(ss: &SelfService, key: &str, all: bool) -> Result<Ended, Failure> {
    match ss.end(key, all).await {
        Ok(()) => Ok(Ended::Yes),
        Err(Error::Http { status: 404, .. }) => Ok(Ended::NotFound),
        Err(e) => Err(failure(e)),
    }
}

/// Ends one session with SOAP TerminateSession, by itself: with a list, one unknown key
/// fails the whole call (NotFound), after ending the keys before it on some servers and
/// none on others.
async fn soap_end(client: &Client, key: &str) -> Result<Ended, Failure> {
    match client.terminate_session(&[key.to_owned()]).await {
        Ok(()) => Ok(Ended::Yes),
        Err(e) if e.is_fault("NotFound") => Ok(Ended::NotFound),
        Err(e) => Err(failure(e)),
    }
}

/// Whether the server offers `/v2/session`; the answer is kept with the cached session.
async fn self_service_available(
    r: &Resolved,
    login: &vsess_client::cache::Login,
) -> Result<bool, Failure> {
    let v2 = SelfService::with_session(&login.client)
        .available()
        .await
        .map_err(failure)?;
    r.session.remember_self_service(login, v2);
    Ok(v2)
}

async fn rows(client: &Client, me: &str, all: bool, v2: bool) -> Result<Vec<Row>, Failure> {
    if v2 {
        return v2_rows(client, me, all).await.map_err(failure);
    }
    // vcsim or vCenter: SessionManager.sessionList (needs Sessions.TerminateSession).
    let now = client.current_time().await.map_err(failure)?;
    let who = client.current_session().await.map_err(failure)?;
    let mine = who.map(|s| s.user_name).unwrap_or_default();
    Ok(client
        .session_list()
        .await
        .map_err(failure)?
        .into_iter()
        .filter(|s| all || s.user_name == mine)
        .map(|s| Row {
            current: s.key == me,
            idle: now - s.last_active_time,
            idle_seconds: (now - s.last_active_time).num_seconds(),
            login_time: s.login_time,
            key: s.key,
            user_name: s.user_name,
            ip_address: s.ip_address,
            user_agent: s.user_agent,
        })
        .collect())
}

fn table(rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{:<37} {:<28} {:<17} {:>7}  {:<15} Agent\n",
        "Key", "Name", "Created", "Idle", "Host"
    );
    for r in rows {
        let idle = if r.current {
            ".".to_owned()
        } else {
            compact(r.idle_seconds)
        };
        let created = r.login_time.format("%Y-%m-%d %H:%M").to_string();
        let _ = writeln!(
            out,
            "{:<37} {:<28} {:<17} {:>7}  {:<15} {}",
            r.key, r.user_name, created, idle, r.ip_address, r.user_agent
        );
    }
    out
}

/// Writes `text` to stdout at once (one write, not one per line); a closed pipe (`| head`)
/// is not an error.
pub(crate) fn emit(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::runtime(format!("cannot write the output: {e}"))),
    }
}

/// Logs to stderr for the session commands: warnings and errors (a corrupt cache file, a
/// cache that cannot be written) as `vsess: warning: ...` lines, or, with `RUST_LOG` set,
/// what it asks for in tracing's usual format. Without `RUST_LOG` this is
/// [`crate::clilog::Warnings`], which costs next to nothing at start-up (tracing's fmt
/// subscriber builds its span registry first: about 5% of a cached `vsess ls`'s
/// instructions).
pub(crate) fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty()) {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
    } else {
        let _ = tracing::subscriber::set_global_default(crate::clilog::Warnings);
    }
}

pub fn run(cmd: SessionCommand) -> Result<(), Failure> {
    init_logging();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run_async(cmd))
}

async fn run_async(cmd: SessionCommand) -> Result<(), Failure> {
    match cmd {
        SessionCommand::Login { server, conn } => {
            let (login, r) = connect(&conn, server.as_deref(), true).await?;
            save_current(&r.tls_desc);
            outln!(
                "Logged in to {} as {} (session {}, {})",
                r.server(),
                login.session.user_name,
                login.session.key,
                if login.reused {
                    "cached session reused"
                } else {
                    "new session"
                }
            )?;
            Ok(())
        }
        SessionCommand::Ls { json, all, conn } => {
            let r = conn.resolve(None)?;
            let rows = match quick_rows(&r, all).await? {
                Some(rows) => rows,
                None => {
                    let (login, r) = connect_resolved(&conn, r, false).await?;
                    let v2 = self_service_available(&r, &login).await?;
                    rows(&login.client, &login.session.key, all, v2).await?
                }
            };
            if json {
                let mut text = serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into());
                text.push('\n');
                emit(&text)
            } else {
                emit(&table(&rows))
            }
        }
        SessionCommand::Rm {
            keys,
            idle,
            all,
            conn,
        } => {
            if keys.is_empty() && idle.is_none() {
                return Err(Failure::usage(
                    "nothing to end: give session keys, or --idle DURATION (e.g. --idle 30m)",
                ));
            }
            if let Some(d) = &idle {
                let t = d.trim();
                // What parses as a plain integer (`30`, `+30`, `-0`) would be seconds.
                if let Ok(n) = t.parse::<i64>() {
                    return Err(Failure::usage(format!(
                        "--idle '{d}' has no unit: write {n}s, {n}m or {n}h (seconds, minutes, hours)"
                    )));
                }
                if vsess_core::selfservice::parse_duration(d).is_none() {
                    return Err(Failure::usage(format!(
                        "--idle '{d}' is not a duration of at most 100 years: use e.g. 30m, 1h, 45s or 0s"
                    )));
                }
            }
            let (login, r) = connect(&conn, None, false).await?;
            let me = login.session.key.clone();
            let client = &login.client;
            let ss = SelfService::with_session(client);
            let v2 = self_service_available(&r, &login).await?;
            if keys.contains(&me) {
                return Err(Failure::usage(
                    "that is the current session: use `vsess logout`",
                ));
            }
            // Keys the server does not know (or that are not the user's), and the error that
            // stopped the command, if any: reported after what was ended.
            let mut missing: Vec<String> = Vec::new();
            let mut stopped: Option<Failure> = None;
            let ended: Vec<String> = match (&idle, v2) {
                (Some(d), true) => ss
                    .end_idle(d, std::slice::from_ref(&me), all)
                    .await
                    .map_err(failure)?,
                (Some(d), false) => {
                    let limit = vsess_core::selfservice::parse_duration(d).unwrap_or_default();
                    let victims: Vec<String> = rows(client, &me, all, false)
                        .await?
                        .into_iter()
                        .filter(|r| !r.current && r.idle > limit)
                        .map(|r| r.key)
                        .collect();
                    // One by one: TerminateSession fails as a whole if one key is gone, and
                    // a session that ended since the listing is no reason to stop.
                    let outcome = end_each(&victims, |k| soap_end(client, k)).await;
                    stopped = outcome.stopped;
                    outcome.ended
                }
                (None, true) => {
                    let outcome = end_each(&keys, |k| v2_end(&ss, k, all)).await;
                    missing = outcome.missing;
                    stopped = outcome.stopped;
                    outcome.ended
                }
                (None, false) => {
                    let outcome = end_each(&keys, |k| soap_end(client, k)).await;
                    missing = outcome.missing;
                    stopped = outcome.stopped;
                    outcome.ended
                }
            };
            // What was ended is printed even when a key was not found or an error stopped
            // the command, so that the user knows which sessions are gone.
            if idle.is_some() || !ended.is_empty() {
                let mut text = format!(
                    "ended {} session{}\n",
                    ended.len(),
                    if ended.len() == 1 { "" } else { "s" }
                );
                for k in &ended {
                    text.push_str(&format!("  {k}\n"));
                }
                emit(&text)?;
            }
            if !missing.is_empty() {
                let others = match (ended.len(), stopped.is_some()) {
                    (0, _) => String::new(),
                    (1, false) => "; the other one was ended".to_owned(),
                    (n, false) => format!("; the other {n} were ended"),
                    (1, true) => "; 1 was ended".to_owned(),
                    (n, true) => format!("; {n} were ended"),
                };
                let m = format!(
                    "no session {} (unknown, already ended, or not yours){others}",
                    missing.join(", ")
                );
                match &mut stopped {
                    Some(f) => f.message = format!("{m}; then: {}", f.message),
                    None => stopped = Some(Failure::runtime(m)),
                }
            }
            match stopped {
                Some(f) => Err(f),
                None => Ok(()),
            }
        }
        SessionCommand::Logout { conn } => {
            let r = conn.resolve(None)?;
            let client = Client::connect_with(
                r.session.url.as_str(),
                if r.session.insecure {
                    Tls::Insecure
                } else {
                    r.session.tls.clone()
                },
                r.session.timeouts,
            )
            .await
            .map_err(failure)?;
            match r.session.load(&client).await.map_err(failure)? {
                Some(l) => {
                    r.session.logout(&l.client).await.map_err(|e| {
                        let gone = e.is_unauthenticated();
                        let mut f = failure(e);
                        if !gone {
                            f.message.push_str(
                                "\nThe session may still be live, so it stays cached: \
                                 run `vsess logout` again",
                            );
                        }
                        f
                    })?;
                    outln!(
                        "Logged out of {} (session {} ended)",
                        r.server(),
                        l.session.key
                    )?;
                }
                None => outln!("No valid cached session for {}; nothing to end", r.server())?,
            }
            Ok(())
        }
        SessionCommand::Whoami { json, conn } => {
            let (login, r) = connect(&conn, None, false).await?;
            let s = login.session;
            if json {
                outln!(
                    "{}",
                    serde_json::json!({"server": r.tls_desc.url, "serverFrom": r.source.key(),
                        "userName": s.user_name, "key": s.key,
                        "loginTime": s.login_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "ipAddress": s.ip_address, "locale": s.locale})
                )?;
            } else {
                outln!(
                    "{} on {} (session {}, logged in {}; server from {})",
                    s.user_name,
                    r.server(),
                    s.key,
                    s.login_time.format("%Y-%m-%d %H:%M:%S UTC"),
                    r.source.describe()
                )?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_name_the_flags_except_for_a_pinned_mismatch() {
        let tls = |message: &str| {
            failure(Error::Tls {
                url: "https://h/sdk".into(),
                message: message.into(),
            })
        };
        let f = tls("invalid peer certificate: UnknownIssuer");
        assert_eq!(f.code, EXIT_TLS);
        for flag in ["--thumbprint", "--ca-certs", "--insecure"] {
            assert!(f.message.contains(flag), "{}", f.message);
        }
        let f = tls("certificate thumbprint mismatch: the server presented ab, expected cd");
        assert_eq!(f.code, EXIT_TLS);
        assert!(!f.message.contains("--thumbprint"), "{}", f.message);
        assert!(f.message.ends_with("expected cd"), "{}", f.message);
        // No certificate flag helps a plain-HTTP server either.
        let f = tls("the server answered in plain HTTP, not TLS: use http:// or check the port");
        assert_eq!(f.code, EXIT_TLS);
        assert!(!f.message.contains("--thumbprint"), "{}", f.message);
    }

    #[test]
    fn ls_json_times_are_rfc3339_whatever_the_server_wrote() {
        for (v2, want) in [
            ("2026-11-22 20:16:42", "2026-11-22T20:16:42Z"),
            ("2026-11-22 20:16:42.250", "2026-11-22T20:16:42Z"),
            ("2026-11-22T21:16:42+01:00", "2026-11-22T20:16:42Z"),
        ] {
            let t = v2_time(v2).unwrap_or_else(|| panic!("{v2} did not parse"));
            let row = Row {
                key: "k".into(),
                user_name: "u".into(),
                login_time: t,
                idle_seconds: 0,
                ip_address: String::new(),
                user_agent: String::new(),
                current: true,
                idle: chrono::Duration::zero(),
            };
            let json = serde_json::to_value(&row).unwrap_or_default();
            assert_eq!(json["loginTime"], want, "{v2}");
        }
        assert_eq!(v2_time("yesterday"), None);
        assert_eq!(v2_time("2026-11-22"), None);
    }

    #[test]
    fn an_ended_session_exits_like_refused_credentials() {
        for e in [
            Error::Fault {
                kind: "NotAuthenticated".into(),
                message: "The session is not authenticated.".into(),
            },
            Error::Authentication("bad password".into()),
        ] {
            let f = failure(e);
            assert_eq!(f.code, EXIT_AUTH, "{}", f.message);
            assert!(f.message.contains("vsess login"), "{}", f.message);
        }
        let f = failure(Error::Fault {
            kind: "InvalidArgument".into(),
            message: String::new(),
        });
        assert_eq!(f.code, 1);
    }

    #[test]
    fn timeouts_need_a_unit_and_read_like_go_durations() {
        use std::time::Duration;
        assert_eq!(parse_timeout("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_timeout("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_timeout("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["10", "", "0s", "ten", "10x", "s", "-1s", "1e3s"] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_timeout_exits_like_an_unreachable_server_and_names_its_knob() {
        let f = failure(Error::Timeout {
            url: "https://127.0.0.1:1/sdk".into(),
            connecting: true,
            after: Some(std::time::Duration::from_secs(10)),
        });
        assert_eq!(f.code, EXIT_CONNECTION);
        assert!(
            f.message.contains("no answer from 127.0.0.1:1 within 10 s")
                && f.message.contains("--connect-timeout"),
            "{}",
            f.message
        );
        let f = failure(Error::Timeout {
            url: "https://127.0.0.1:1/sdk".into(),
            connecting: false,
            after: Some(std::time::Duration::from_secs(60)),
        });
        assert_eq!(f.code, EXIT_CONNECTION);
        assert!(f.message.contains("--timeout"), "{}", f.message);
    }

    #[test]
    fn idle_formats() {
        assert_eq!(compact(42), "42s");
        assert_eq!(compact(303), "5m03s");
        assert_eq!(compact(7260), "2h01m");
        assert_eq!(delta_secs("0:13:59.079416"), 839);
        assert_eq!(delta_secs("24 days, 0:00:51.439527"), 24 * 86_400 + 51);
    }
}
