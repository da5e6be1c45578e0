//! `GET /metrics`: the session service's counters, the store's session count and the
//! process's own figures, in Prometheus' text format (0.0.4). Off unless `[metrics]
//! enabled = true`; with `token_file`, a scrape must send `Authorization: Bearer TOKEN`
//! (Prometheus: `authorization: { credentials_file: ... }`).
//!
//! Nothing here is on a request's path: the counters are bumped where sessions start and
//! end, and the rest is read when scraped.
use crate::app::App;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use vsess_core::IdDigest;

/// What `/metrics` needs besides the service.
pub struct Metrics {
    /// The bearer token scrapes must send, if one is configured.
    token: Option<Token>,
    /// When the process started serving (`process_start_time_seconds`).
    started: SystemTime,
}

/// The token file, read again as scrapes come (as Prometheus reads its
/// `credentials_file`), so that a rotated token takes effect without a restart.
struct Token {
    file: PathBuf,
    /// Scrapes within this long of the last read use what it found: a flood of requests
    /// with made-up tokens costs one file read a second, not one each.
    reread_every: Duration,
    /// How long the last token stays valid while the file cannot be read (a rotation
    /// half done); after that every scrape is refused until it can be read again.
    grace: Duration,
    state: Mutex<TokenState>,
}

struct TokenState {
    /// The token's SHA-256; `None`: every scrape is refused (an empty file revokes).
    digest: Option<IdDigest>,
    read_at: Instant,
    /// Since when the file could not be read.
    unreadable_since: Option<Instant>,
    /// The problem last logged, so that each is logged once.
    logged: Option<String>,
}

/// What a token file holds: `Ok(Some)` a token (its first line), `Ok(None)` none (empty).
fn parse_token(text: &str) -> Option<IdDigest> {
    let token = text.lines().next().unwrap_or("").trim();
    (!token.is_empty()).then(|| IdDigest::of(token))
}

impl Token {
    fn new(file: &Path, reread_every: Duration, grace: Duration) -> Result<Self, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the metrics token file {}: {e}", file.display()))?;
        let digest = parse_token(&text).ok_or_else(|| {
            format!(
                "the metrics token file {} is empty: put a long random token in it \
                 (e.g. `openssl rand -hex 32`)",
                file.display()
            )
        })?;
        Ok(Self {
            file: file.to_owned(),
            reread_every,
            grace,
            state: Mutex::new(TokenState {
                digest: Some(digest),
                read_at: Instant::now(),
                unreadable_since: None,
                logged: None,
            }),
        })
    }

    /// The token a scrape must send now (`None`: none will do).
    async fn expected(&self) -> Option<IdDigest> {
        {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.read_at.elapsed() < self.reread_every {
                return st.digest;
            }
        }
        let read = tokio::fs::read_to_string(&self.file).await;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        st.read_at = now;
        let problem = match read {
            Ok(text) => {
                st.unreadable_since = None;
                st.digest = parse_token(&text);
                st.digest.is_none().then(|| {
                    format!(
                        "the metrics token file {} is empty: every scrape is refused",
                        self.file.display()
                    )
                })
            }
            Err(e) => {
                let since = *st.unreadable_since.get_or_insert(now);
                if now.duration_since(since) >= self.grace {
                    st.digest = None;
                    Some(format!(
                        "cannot read the metrics token file {} for {} s ({e}): every scrape \
                         is refused until it can be read",
                        self.file.display(),
                        self.grace.as_secs()
                    ))
                } else {
                    Some(format!(
                        "cannot read the metrics token file {} ({e}): the token read before \
                         stays valid for up to {} s",
                        self.file.display(),
                        self.grace.as_secs()
                    ))
                }
            }
        };
        if problem != st.logged {
            if let Some(p) = &problem {
                tracing::warn!("{p}");
            }
            st.logged = problem;
        }
        st.digest
    }
}

impl Metrics {
    /// Reads the token file, if any: it must hold a token (its first line).
    pub fn new(token_file: Option<&Path>) -> Result<Self, String> {
        let token = match token_file {
            None => None,
            Some(p) => {
                vsess_store::warn_if_exposed(p, "the metrics token file");
                Some(Token::new(
                    p,
                    Duration::from_secs(1),
                    Duration::from_secs(60),
                )?)
            }
        };
        Ok(Self {
            token,
            started: SystemTime::now(),
        })
    }

    async fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(sent) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
        else {
            // Refused before the file is read.
            return false;
        };
        // Digests of equal length, compared without an early exit.
        let sent = IdDigest::of(sent);
        token
            .expected()
            .await
            .is_some_and(|want| crate::ui::constant_time_eq(&sent.0, &want.0))
    }
}

pub async fn get(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(m) = &app.metrics else {
        return crate::app::not_found().await.into_response();
    };
    if !m.allows(&headers).await {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"vsess metrics\"")],
            "Send the token from [metrics] token_file as `Authorization: Bearer TOKEN`.\n",
        )
            .into_response();
    }
    let sessions = app.backend.session_count().await;
    let up = app.backend.health().await.is_ok();
    let body = render(&app.svc.stats(), sessions.ok(), up, m.started);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// One metric family: its HELP and TYPE lines, then its samples (labels, value).
fn family<L: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, f64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn render(
    s: &vsess_core::stats::StatsSnapshot,
    sessions: Option<u64>,
    up: bool,
    started: SystemTime,
) -> String {
    // Counters stay exact in an f64 up to 2^53.
    let f = |n: u64| n as f64;
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "vsess_build_info",
        "gauge",
        "The running version of vsess.",
        [(
            concat!("{version=\"", env!("CARGO_PKG_VERSION"), "\"}"),
            1.0,
        )],
    );
    family(
        &mut out,
        "vsess_store_up",
        "gauge",
        "1 if the store takes changes (as /healthz reports), else 0.",
        [("", if up { 1.0 } else { 0.0 })],
    );
    if let Some(n) = sessions {
        family(
            &mut out,
            "vsess_sessions",
            "gauge",
            "Sessions in the store: live ones, and expired ones until the next reap. With \
             Redis, all replicas' sessions.",
            [("", f(n))],
        );
    }
    family(
        &mut out,
        "vsess_sessions_created_total",
        "counter",
        "Sessions this process created: logins on every endpoint and CloneSession.",
        [("", f(s.sessions_created))],
    );
    family(
        &mut out,
        "vsess_sessions_ended_total",
        "counter",
        "Sessions this process ended, by reason.",
        s.sessions_ended
            .iter()
            .map(|(why, n)| (format!("{{reason=\"{}\"}}", why.as_str()), f(*n))),
    );
    family(
        &mut out,
        "vsess_logins_refused_total",
        "counter",
        "Logins and token requests refused, by reason (clients are told only InvalidLogin); \
         session_active is a Login from a caller whose session is still live.",
        s.logins_refused
            .iter()
            .map(|(why, n)| (format!("{{reason=\"{}\"}}", why.label()), f(*n))),
    );
    family(
        &mut out,
        "vsess_session_limit_refusals_total",
        "counter",
        "Logins refused because config.vmacore.soap.maxSessionCount sessions were live.",
        [("", f(s.session_limit_refusals))],
    );
    family(
        &mut out,
        "vsess_lockouts_total",
        "counter",
        "Users locked out after repeated failed logins.",
        [("", f(s.lockouts))],
    );
    process(&mut out, started);
    out
}

/// Prometheus' standard process metrics, from `/proc/self`.
fn process(out: &mut String, started: SystemTime) {
    if let Ok(t) = started.duration_since(SystemTime::UNIX_EPOCH) {
        family(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            [("", t.as_secs_f64().floor())],
        );
    }
    // utime and stime are fields 14 and 15, counted after the command's closing
    // parenthesis (the command itself may hold spaces and parentheses).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if let (Some(u), Some(s), true) = (
        fields.get(11).and_then(|v| v.parse::<u64>().ok()),
        fields.get(12).and_then(|v| v.parse::<u64>().ok()),
        ticks > 0,
    ) {
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            [("", (u + s) as f64 / ticks as f64)],
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kb) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        family(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, in bytes.",
            [("", (kb * 1024) as f64)],
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        family(
            out,
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            [("", fds.count() as f64)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_every_family_once_with_help_and_type() {
        let svc_stats = vsess_core::stats::Stats::default().snapshot();
        let text = render(&svc_stats, Some(7), true, SystemTime::now());
        let mut seen = std::collections::HashSet::new();
        for line in text.lines().filter(|l| !l.starts_with("# HELP ")) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(seen.insert(name.to_owned()), "{name} twice");
                assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            } else {
                // name{labels} value: the value parses, the name belongs to a family.
                let (name, value) = line.rsplit_once(' ').unwrap();
                value.parse::<f64>().unwrap();
                let family = name.split('{').next().unwrap();
                assert!(seen.contains(family), "{line}");
            }
        }
        assert!(text.contains("\nvsess_sessions 7\n"), "{text}");
        assert!(text.contains("vsess_sessions_ended_total{reason=\"expired\"} 0\n"));
        assert!(text.contains("vsess_logins_refused_total{reason=\"wrong_password\"} 0\n"));
        assert!(text.contains("\nvsess_store_up 1\n"));
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        // Without a count (the store did not answer), the family is left out.
        let text = render(&svc_stats, None, false, SystemTime::now());
        assert!(!text.contains("vsess_sessions "), "{text}");
        assert!(text.contains("\nvsess_store_up 0\n"));
    }

    #[tokio::test]
    async fn a_token_is_required_when_configured_and_read_again_when_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok");
        std::fs::write(&file, "s3cret-token\n").unwrap();
        let m = Metrics {
            token: Some(Token::new(&file, Duration::ZERO, Duration::from_millis(200)).unwrap()),
            started: SystemTime::now(),
        };
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            let m = &m;
            async move { m.allows(&h).await }
        };
        assert!(with("Bearer s3cret-token").await);
        assert!(!with("Bearer s3cret-toke").await);
        assert!(!with("Basic s3cret-token").await);
        assert!(!m.allows(&HeaderMap::new()).await);
        assert!(Metrics::new(None).unwrap().allows(&HeaderMap::new()).await);
        // Rotated: the new token at once, the old one no longer.
        std::fs::write(dir.path().join("tok.new"), "rotated\n").unwrap();
        std::fs::rename(dir.path().join("tok.new"), &file).unwrap();
        assert!(with("Bearer rotated").await);
        assert!(!with("Bearer s3cret-token").await);
        // A file gone for a moment keeps the last token, for the grace period only.
        std::fs::remove_file(&file).unwrap();
        assert!(with("Bearer rotated").await);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!with("Bearer rotated").await);
        // Back: valid again. An empty file revokes every token at once.
        std::fs::write(&file, "rotated\n").unwrap();
        assert!(with("Bearer rotated").await);
        std::fs::write(&file, "\n").unwrap();
        assert!(!with("Bearer rotated").await);
        assert!(!with("Bearer ").await);
        // At start, an empty or missing file is refused.
        let refused = |p: &Path| match Metrics::new(Some(p)) {
            Err(e) => e,
            Ok(_) => panic!("{} accepted", p.display()),
        };
        assert!(refused(&file).contains("empty"));
        assert!(refused(&dir.path().join("none")).contains("cannot read"));
    }

    /// Within `reread_every` of a read, the file is not read again.
    #[tokio::test]
    async fn the_token_file_is_read_at_most_once_a_period() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok");
        std::fs::write(&file, "one\n").unwrap();
        let t = Token::new(&file, Duration::from_secs(3600), Duration::ZERO).unwrap();
        std::fs::write(&file, "two\n").unwrap();
        assert_eq!(t.expected().await, Some(IdDigest::of("one")));
    }
}
