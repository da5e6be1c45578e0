//! The TOML configuration file (`--config`).
//!
//! Policy keys use vCenter's own dotted names, which TOML reads as nested tables:
//!
//! ```toml
//! config.vmacore.soap.sessionTimeout = 1800    # idle seconds
//! config.vmacore.soap.maxSessionCount = 3000
//! vpx.sso.sts.tokenLifetime = 86400            # maximum session age in seconds; 0 = none
//!
//! [lockout]
//! max_failures = 5        # consecutive failures; 0 disables lockout
//! lock_seconds = 300
//! credential_cache_seconds = 300   # remember verified passwords (0: always argon2id)
//!
//! [locale]
//! supported = ["en", "de", "fr", "es", "it", "ja", "ko", "zh_CN", "zh_TW"]
//! default = "en"
//!
//! [server]
//! max_body_bytes = 1048576      # 1024 to 67108864 (64 MiB)
//! request_timeout_seconds = 60   # no progress within a request (HTTPS): closed
//! idle_timeout_seconds = 960     # idle keep-alive (HTTPS); over pyVmomi's 900 s pool
//! certificate_check_seconds = 10 # a renewed --cert/--key pair is served this soon; 0: never
//!
//! [api]
//! token_lifetime = 3600   # seconds a /auth/request-token bearer token lives
//!
//! [store]                 # where sessions live; default: the embedded store in --data-dir
//! fsync = "interval"      # embedded: "always" (fsync before answering) or "interval"
//! fsync_interval_ms = 1000  # with "interval": written before answering, fsynced this soon
//! kind = "redis"          # "embedded" or "redis" (several replicas share one Redis)
//! url = "redis://127.0.0.1:6379/0"   # rediss:// for TLS; with cluster, seeds split by ","
//! cluster = false         # Redis Cluster
//! password_file = "/etc/vsess/redis-password"   # AUTH password, kept out of the URL
//! ca_file = "/etc/vsess/redis-ca.pem"           # CA for rediss:// (default: system roots)
//!                         # relative paths are taken from the config file's directory
//! prefix = "vsess"        # key prefix; lets deployments share one Redis
//! timeout_ms = 2000       # a Redis command slower than this fails the request
//!
//! [metrics]               # Prometheus text format at /metrics; off by default
//! enabled = true
//! token_file = "/etc/vsess/metrics-token"   # scrapes must send `Authorization: Bearer TOKEN`
//!
//! [[compute_policy]]      # reported by com.vmware.vcenter.compute.policies.list
//! policy = "policy-1"
//! name = "anti-affinity"
//! description = "keep replicas apart"
//! capability = "com.vmware.vcenter.compute.policies.capabilities.vm_vm_anti_affinity"
//! ```
use chrono::Duration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use vsess_core::inventory::ComputePolicy;
use vsess_core::Policy;
use vsess_store::{redact_url, Durability, EmbeddedOptions, RedisOptions};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    config: Option<ConfigNs>,
    vpx: Option<VpxNs>,
    lockout: Option<Lockout>,
    locale: Option<Locale>,
    server: Option<Server>,
    compute_policy: Option<Vec<ComputePolicy>>,
    api: Option<Api>,
    store: Option<StoreFile>,
    metrics: Option<MetricsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    enabled: Option<bool>,
    token_file: Option<PathBuf>,
}

/// `[metrics]`: whether `/metrics` is served, and the file holding the bearer token
/// scrapes must send (none: any client may read the figures).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    kind: Option<String>,
    url: Option<String>,
    cluster: Option<bool>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    prefix: Option<String>,
    timeout_ms: Option<u64>,
    fsync: Option<String>,
    fsync_interval_ms: Option<u64>,
}

/// The embedded store's default: every change is written before the answer (it survives
/// `kill -9`) and fsynced within a second (an OS crash or power loss can lose that second),
/// as Redis' `appendfsync everysec`. `fsync = "always"` waits for the fsync instead.
pub const DEFAULT_DURABILITY: Durability = Durability::Interval(std::time::Duration::from_secs(1));

/// Where the server keeps its state.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded store in the data directory.
    Embedded(EmbeddedOptions),
    /// Redis, shared by replicas. The session policy is filled in at start.
    Redis(RedisOptions),
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Embedded(EmbeddedOptions {
            durability: DEFAULT_DURABILITY,
        })
    }
}

impl StoreConfig {
    /// `--store URL`: Redis at `URL`, keeping the rest of a `[store]` table.
    pub fn with_url(self, url: &str) -> Result<Self, String> {
        if url.trim().is_empty() {
            // Typically VSESS_STORE= from an environment file.
            return Err("the store URL (--store or VSESS_STORE) is empty: give \
                        redis://HOST:PORT/DB, or leave it unset for the embedded store"
                .into());
        }
        check_redis_url(url)?;
        let mut o = match self {
            StoreConfig::Redis(o) => o,
            StoreConfig::Embedded(e) if e.durability != DEFAULT_DURABILITY => {
                return Err(format!(
                    "--store {} selects Redis, but the config's [store] sets fsync for the \
                     embedded store: remove fsync/fsync_interval_ms from [store] (Redis' own \
                     appendfsync decides there), or drop --store",
                    redact_url(url)
                ))
            }
            StoreConfig::Embedded(_) => RedisOptions::new(url),
        };
        o.url = url.to_owned();
        Ok(StoreConfig::Redis(o))
    }
}

fn check_redis_url(url: &str) -> Result<(), String> {
    if url
        .split(',')
        .all(|u| u.trim().starts_with("redis://") || u.trim().starts_with("rediss://"))
    {
        Ok(())
    } else {
        Err(format!(
            "store URL {} must start with redis:// or rediss:// (TLS)",
            redact_url(url)
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Api {
    token_lifetime: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigNs {
    vmacore: Vmacore,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vmacore {
    soap: Soap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Soap {
    session_timeout: Option<i64>,
    max_session_count: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VpxNs {
    sso: Sso,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sso {
    sts: Sts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Sts {
    token_lifetime: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lockout {
    max_failures: Option<u32>,
    lock_seconds: Option<i64>,
    /// Seconds a verified password is remembered, so repeated logins skip argon2id.
    credential_cache_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Locale {
    supported: Option<Vec<String>>,
    default: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Server {
    max_body_bytes: Option<usize>,
    request_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    certificate_check_seconds: Option<u64>,
}

/// The largest `server.max_body_bytes` accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    pub max_body_bytes: usize,
    /// When an HTTPS connection without progress is closed (see [`crate::watchdog`]).
    pub connection_limits: crate::watchdog::Limits,
    /// How often the certificate and key files are checked for a renewal; `None`: never.
    pub certificate_check: Option<std::time::Duration>,
    /// What `com.vmware.vcenter.compute.policies.list` reports.
    pub compute_policies: Vec<ComputePolicy>,
    /// Lifetime of `/auth/request-token` bearer tokens.
    pub token_lifetime: chrono::Duration,
    pub store: StoreConfig,
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            max_body_bytes: 1024 * 1024,
            connection_limits: crate::watchdog::Limits::default(),
            certificate_check: Some(std::time::Duration::from_secs(10)),
            compute_policies: Vec::new(),
            token_lifetime: Duration::seconds(3600),
            store: StoreConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// Reads and checks a config file. Relative paths in it (`[store] password_file`,
    /// `ca_file`, `[metrics] token_file`) are taken from the file's own directory, as cargo and systemd do, so
    /// that the server reads the same files whatever directory it was started from.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Takes the config's relative paths from `base` (the config file's directory).
    fn resolve_paths(&mut self, base: &Path) {
        let mut files = vec![&mut self.metrics.token_file];
        if let StoreConfig::Redis(o) = &mut self.store {
            files.extend([&mut o.password_file, &mut o.ca_file]);
        }
        for file in files.into_iter().flatten() {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        // Durations are capped far beyond any use (and inside what times can be shifted
        // by, here and in Redis' expiry times).
        let max = vsess_core::selfservice::MAX_DURATION_SECS;
        let capped = |name: &str, t: i64| {
            if t > max {
                Err(format!("{name} must be at most {max} seconds (100 years)"))
            } else {
                Ok(Duration::seconds(t))
            }
        };
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut c = Config::default();
        let p = &mut c.policy;
        if let Some(soap) = f.config.map(|n| n.vmacore.soap) {
            if let Some(t) = soap.session_timeout {
                if t < 1 {
                    return Err(
                        "config.vmacore.soap.sessionTimeout must be at least 1 second".into(),
                    );
                }
                p.idle_timeout = capped("config.vmacore.soap.sessionTimeout", t)?;
            }
            if let Some(n) = soap.max_session_count {
                if n < 1 {
                    return Err("config.vmacore.soap.maxSessionCount must be at least 1".into());
                }
                p.max_sessions = n;
            }
        }
        if let Some(t) = f.vpx.and_then(|v| v.sso.sts.token_lifetime) {
            if t < 0 {
                return Err("vpx.sso.sts.tokenLifetime must be 0 (no limit) or positive".into());
            }
            let lifetime = capped("vpx.sso.sts.tokenLifetime", t)?;
            p.max_lifetime = (t > 0).then_some(lifetime);
        }
        if let Some(l) = f.lockout {
            if let Some(n) = l.max_failures {
                p.lockout.max_failures = n;
            }
            if let Some(s) = l.lock_seconds {
                if s < 1 {
                    return Err("lockout.lock_seconds must be at least 1".into());
                }
                p.lockout.lock_duration = capped("lockout.lock_seconds", s)?;
            }
            if let Some(s) = l.credential_cache_seconds {
                if s < 0 {
                    return Err(
                        "lockout.credential_cache_seconds must be 0 (off) or positive".into(),
                    );
                }
                p.credential_cache_ttl = capped("lockout.credential_cache_seconds", s)?;
            }
        }
        if let Some(l) = f.locale {
            if let Some(s) = l.supported {
                if s.is_empty() {
                    return Err("locale.supported must name at least one locale".into());
                }
                p.supported_locales = s;
            }
            if let Some(d) = l.default {
                p.default_locale = d;
            }
            if !p.locale_supported(&p.default_locale) {
                return Err(format!(
                    "locale.default '{}' is not in locale.supported",
                    p.default_locale
                ));
            }
        }
        if let Some(s) = f.server {
            if let Some(n) = s.max_body_bytes {
                // A request body is held in memory whole until it is decoded, on every
                // connection at once; no SessionManager call comes near 64 MiB.
                if !(1024..=MAX_BODY_BYTES).contains(&n) {
                    return Err(format!(
                        "server.max_body_bytes must be from 1024 to {MAX_BODY_BYTES} (64 MiB)"
                    ));
                }
                c.max_body_bytes = n;
            }
            let secs = |name: &str, v: u64| {
                if (1..=86_400).contains(&v) {
                    Ok(std::time::Duration::from_secs(v))
                } else {
                    Err(format!("server.{name} must be from 1 to 86400 seconds"))
                }
            };
            if let Some(v) = s.request_timeout_seconds {
                c.connection_limits.request = secs("request_timeout_seconds", v)?;
            }
            if let Some(v) = s.idle_timeout_seconds {
                c.connection_limits.idle = secs("idle_timeout_seconds", v)?;
            }
            if let Some(v) = s.certificate_check_seconds {
                c.certificate_check = match v {
                    0 => None,
                    v => Some(secs("certificate_check_seconds", v).map_err(|_| {
                        "server.certificate_check_seconds must be 0 (never) or from 1 to \
                         86400 seconds"
                            .to_owned()
                    })?),
                };
            }
        }
        c.compute_policies = f.compute_policy.unwrap_or_default();
        if let Some(t) = f.api.and_then(|a| a.token_lifetime) {
            if t < 1 {
                return Err("api.token_lifetime must be at least 1 second".into());
            }
            c.token_lifetime = capped("api.token_lifetime", t)?;
        }
        if let Some(st) = f.store {
            c.store = store_config(st)?;
        }
        if let Some(m) = f.metrics {
            if m.token_file.is_some() && m.enabled != Some(true) {
                return Err("metrics.token_file is set but metrics.enabled is not true".into());
            }
            c.metrics = MetricsConfig {
                enabled: m.enabled.unwrap_or(false),
                token_file: m.token_file,
            };
        }
        Ok(c)
    }
}

fn store_config(st: StoreFile) -> Result<StoreConfig, String> {
    match st.kind.as_deref().unwrap_or(if st.url.is_some() {
        "redis"
    } else {
        "embedded"
    }) {
        "embedded" => {
            if st.url.is_some()
                || st.cluster.is_some()
                || st.password_file.is_some()
                || st.ca_file.is_some()
                || st.prefix.is_some()
                || st.timeout_ms.is_some()
            {
                return Err(
                    "store.url, cluster, password_file, ca_file, prefix and timeout_ms \
                            apply only to kind = \"redis\""
                        .into(),
                );
            }
            let interval = match st.fsync_interval_ms {
                Some(ms) if !(1..=60_000).contains(&ms) => {
                    return Err("store.fsync_interval_ms must be 1 to 60000".into())
                }
                Some(ms) => std::time::Duration::from_millis(ms),
                None => std::time::Duration::from_secs(1),
            };
            let durability = match st.fsync.as_deref() {
                None | Some("interval") => Durability::Interval(interval),
                Some("always") => Durability::Always,
                Some(other) => {
                    return Err(format!(
                        "store.fsync must be \"always\" or \"interval\", not {other:?}"
                    ))
                }
            };
            Ok(StoreConfig::Embedded(EmbeddedOptions { durability }))
        }
        "redis" => {
            if st.fsync.is_some() || st.fsync_interval_ms.is_some() {
                return Err("store.fsync applies to the embedded store; Redis' own appendfsync decides there".into());
            }
            let url = st.url.ok_or(
                "store.kind = \"redis\" needs store.url, e.g. \"redis://127.0.0.1:6379/0\"",
            )?;
            check_redis_url(&url)?;
            let mut o = RedisOptions::new(&url);
            o.cluster = st.cluster.unwrap_or(false);
            o.password_file = st.password_file;
            o.ca_file = st.ca_file;
            if let Some(p) = st.prefix {
                if p.is_empty() || p.contains(['{', '}', ' ']) {
                    return Err("store.prefix must be non-empty, without braces or spaces".into());
                }
                o.prefix = p;
            }
            if let Some(t) = st.timeout_ms {
                if t < 10 {
                    return Err("store.timeout_ms must be at least 10".into());
                }
                o.timeout = std::time::Duration::from_millis(t);
            }
            Ok(StoreConfig::Redis(o))
        }
        other => Err(format!(
            "store.kind must be \"embedded\" or \"redis\", not {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vcenter_names() {
        let c = Config::parse(
            "config.vmacore.soap.sessionTimeout = 60\nconfig.vmacore.soap.maxSessionCount = 5\nvpx.sso.sts.tokenLifetime = 0\n[lockout]\nmax_failures = 3\n[locale]\nsupported = [\"en\", \"de\"]\ndefault = \"de\"\n",
        )
        .unwrap();
        assert_eq!(c.policy.idle_timeout, Duration::seconds(60));
        assert_eq!(c.policy.max_sessions, 5);
        assert_eq!(c.policy.max_lifetime, None);
        assert_eq!(c.policy.lockout.max_failures, 3);
        assert_eq!(c.policy.default_locale, "de");
        let c = Config::parse(
            "[[compute_policy]]\npolicy = \"p-1\"\nname = \"n\"\ncapability = \"c\"\n",
        )
        .unwrap();
        assert_eq!(c.compute_policies.len(), 1);
        assert_eq!(c.compute_policies[0].name, "n");
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(Config::parse("config.vmacore.soap.sessionTimeOut = 60")
            .unwrap_err()
            .contains("sessionTimeOut"));
        assert!(Config::parse("config.vmacore.soap.maxSessionCount = 0").is_err());
        assert!(Config::parse("[locale]\ndefault = \"xx\"").is_err());
        assert!(Config::parse("").is_ok());
        // Durations past 100 years are refused by name (chrono would panic on some).
        for (key, text) in [
            ("sessionTimeout", "config.vmacore.soap.sessionTimeout"),
            ("tokenLifetime", "vpx.sso.sts.tokenLifetime"),
            ("lock_seconds", "lockout.lock_seconds"),
            (
                "credential_cache_seconds",
                "lockout.credential_cache_seconds",
            ),
            ("token_lifetime", "api.token_lifetime"),
        ] {
            let (table, name) = text.rsplit_once('.').unwrap();
            for (v, ok) in [
                ("3155760000", true),
                ("3162240001", false),
                (&i64::MAX.to_string()[..], false),
            ] {
                let doc = format!("[{table}]\n{name} = {v}\n");
                let r = Config::parse(&doc);
                assert_eq!(r.is_ok(), ok, "{doc}: {r:?}");
                if !ok {
                    assert!(r.unwrap_err().contains(key), "{doc}");
                }
            }
        }
    }

    #[test]
    fn store_section() {
        let c = Config::parse(
            "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:7/1\"\nprefix = \"ci\"\n",
        )
        .unwrap();
        let StoreConfig::Redis(o) = c.store else {
            panic!("not redis")
        };
        assert_eq!(
            (o.url.as_str(), o.prefix.as_str()),
            ("redis://127.0.0.1:7/1", "ci")
        );
        assert!(Config::parse("[store]\nkind = \"redis\"")
            .unwrap_err()
            .contains("needs store.url"));
        assert!(Config::parse("[store]\nurl = \"http://x\"").is_err());
        assert!(Config::parse("[store]\nkind = \"etcd\"").is_err());
        let c = Config::parse("[store]\nfsync = \"always\"\n").unwrap();
        assert!(matches!(
            c.store,
            StoreConfig::Embedded(EmbeddedOptions {
                durability: Durability::Always
            })
        ));
        assert!(Config::parse("[store]\nfsync = \"never\"\n").is_err());
        // --store over a config that tunes the embedded store's fsync is refused, not
        // silently dropped.
        let err = Config::parse("[store]\nfsync = \"always\"\n")
            .unwrap()
            .store
            .with_url("redis://127.0.0.1:6379/0")
            .unwrap_err();
        assert!(err.contains("fsync"), "{err}");
        assert!(Config::parse("")
            .unwrap()
            .store
            .with_url("redis://127.0.0.1:6379/0")
            .is_ok());
        for redis_only in ["prefix = \"x\"", "timeout_ms = 5", "ca_file = \"/x\""] {
            let err = Config::parse(&format!("[store]\n{redis_only}\n")).unwrap_err();
            assert!(
                err.contains("only to kind = \"redis\""),
                "{redis_only}: {err}"
            );
        }
        let err = StoreConfig::default().with_url("").unwrap_err();
        assert!(
            err.contains("VSESS_STORE") && err.contains("empty"),
            "{err}"
        );
        let err = StoreConfig::default().with_url("http://:pw@h").unwrap_err();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn certificate_check() {
        let every = |doc: &str| Config::parse(doc).map(|c| c.certificate_check);
        assert_eq!(every(""), Ok(Some(std::time::Duration::from_secs(10))));
        assert_eq!(every("[server]\ncertificate_check_seconds = 0\n"), Ok(None));
        assert_eq!(
            every("[server]\ncertificate_check_seconds = 2\n"),
            Ok(Some(std::time::Duration::from_secs(2)))
        );
        assert!(every("[server]\ncertificate_check_seconds = 86401\n").is_err());
    }

    #[test]
    fn body_limit_is_bounded() {
        for (v, ok) in [
            ("1023", false),
            ("1024", true),
            ("67108864", true),
            ("67108865", false),
            ("18446744073709551615", false),
        ] {
            let r = Config::parse(&format!("[server]\nmax_body_bytes = {v}\n"));
            assert_eq!(r.is_ok(), ok, "{v}: {r:?}");
        }
    }

    #[test]
    fn store_files_are_taken_from_the_config_files_directory() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let path = etc.join("vsess.toml");
        std::fs::write(
            &path,
            "[store]\nurl = \"redis://127.0.0.1:7/0\"\npassword_file = \"redis.pw\"\n\
             ca_file = \"/abs/ca.pem\"\n",
        )
        .unwrap();
        let StoreConfig::Redis(o) = Config::load(&path).unwrap().store else {
            panic!("not redis")
        };
        assert_eq!(o.password_file.unwrap(), etc.join("redis.pw"));
        assert_eq!(o.ca_file.unwrap(), PathBuf::from("/abs/ca.pem"));
        // So does a relative path with directories in it.
        std::fs::write(
            &path,
            "[store]\nurl = \"redis://127.0.0.1:7/0\"\nca_file = \"sub/ca.pem\"\n",
        )
        .unwrap();
        let StoreConfig::Redis(o) = Config::load(&path).unwrap().store else {
            panic!("not redis")
        };
        assert_eq!(o.ca_file.unwrap(), etc.join("sub/ca.pem"));
        std::fs::write(&path, "[metrics]\nenabled = true\ntoken_file = \"tok\"\n").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.metrics.token_file.unwrap(), etc.join("tok"));
    }

    #[test]
    fn metrics_section() {
        assert_eq!(Config::parse("").unwrap().metrics, MetricsConfig::default());
        assert!(
            Config::parse("[metrics]\nenabled = true\n")
                .unwrap()
                .metrics
                .enabled
        );
        let err = Config::parse("[metrics]\ntoken_file = \"/t\"\n").unwrap_err();
        assert!(err.contains("metrics.enabled"), "{err}");
        assert!(Config::parse("[metrics]\nport = 9\n").is_err());
    }
}
