//! The vsess server: an axum app over the core, with TLS, configuration and the
//! embedded store.
//!
//! [`start`] binds, prepares the data directory and serves in the background, returning a
//! [`Running`] handle; the CLI's `serve` and the integration tests both use it.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
pub mod auth;
pub mod config;
pub mod metrics;
pub mod soap;
pub mod tickets;
pub mod tls;
pub mod ui;
pub mod v2;
pub mod vapi;
pub mod vijson;
pub mod vim;
pub mod watchdog;

use app::App;
use async_trait::async_trait;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vsess_core::ids::random_hex;
use vsess_core::password::{hash_password, verify_password};
use vsess_core::{
    AboutInfo, CredentialVerifier, Role, SessionService, SystemClock, User, UserName,
};
use vsess_store::{write_private_atomic, Backend, EmbeddedStore, RedisStore};

/// `Cache-Control: no-cache`, which vCenter sends with every `/sdk` answer (see the
/// real-vCenter cassettes). vsess sends it with every answer of its session endpoints
/// (SOAP, VI/JSON, vAPI and REST, their 404s and 405s included; `/v2` and `/ui` send
/// `no-store`): the answers carry live session state, and logins the session id, and
/// `no-cache` makes any cache in between revalidate before it reuses one. It is set where
/// each answer is built: a router-wide layer cost 1.3k–1.5k instructions per request.
pub(crate) fn no_cache(h: &mut axum::http::HeaderMap) {
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
}

/// [`no_cache`] on a built response.
pub(crate) fn uncached(mut r: axum::response::Response) -> axum::response::Response {
    no_cache(r.headers_mut());
    r
}

/// The audit line of a refused login on `endpoint` (empty for SOAP and VI/JSON). `user` is
/// what the client sent, so it is cut to 256 characters and written quoted, with control
/// characters and quotes escaped (`Debug`): it can forge neither a line nor a field.
pub(crate) fn login_failed(
    user: &str,
    ip: std::net::IpAddr,
    refused: &vsess_core::Refused,
    endpoint: &str,
) {
    let user = match user.char_indices().nth(256) {
        Some((cut, _)) => &user[..cut],
        None => user,
    };
    let fault = refused.fault.type_name();
    let how = if endpoint.is_empty() {
        String::new()
    } else {
        format!(" ({endpoint})")
    };
    // The reason is the operator's: the caller got only the fault.
    match refused.why {
        Some(why) => {
            tracing::info!(user = ?user, ip = %ip, fault, reason = why.as_str(), "login failed{how}")
        }
        None => tracing::info!(user = ?user, ip = %ip, fault, "login failed{how}"),
    }
}

pub use config::{Config, StoreConfig};

pub const ADMIN_USER: &str = "administrator@vsphere.local";
pub const ADMIN_PASSWORD_FILE: &str = "administrator-password";

#[derive(Debug, Clone)]
pub enum Transport {
    /// HTTPS with the data directory's certificate (generated on first start).
    SelfSigned,
    /// HTTPS with the operator's certificate and key (PEM).
    Files { cert: PathBuf, key: PathBuf },
    /// Plain HTTP; only on explicit request.
    PlainHttp,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub config: Config,
    pub transport: Transport,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("{0}")]
    DataDir(String),
    /// The data directory's certificate cannot be made or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// `--cert`/`--key` cannot be read or used together.
    #[error("TLS: {0}")]
    TlsConfig(String),
    /// The store cannot be reached (Redis down).
    #[error("{0}")]
    Store(String),
    /// The store's settings are wrong (a malformed Redis URL, an unreadable password or
    /// CA file).
    #[error("{0}")]
    StoreConfig(String),
    /// Another setting of the config file cannot be used (an unreadable token file).
    #[error("{0}")]
    Config(String),
}

/// A server serving in the background.
pub struct Running {
    pub addr: SocketAddr,
    pub url: String,
    /// SHA-256 fingerprint of the TLS certificate, if serving HTTPS.
    pub fingerprint: Option<String>,
    pub cert_generated: bool,
    /// The administrator password, when this start created the administrator.
    pub admin_password: Option<String>,
    /// The file holding the first administrator's password, if it exists (written by this
    /// start or an earlier one).
    pub admin_password_file: Option<PathBuf>,
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    connections: Connections,
    task: JoinHandle<std::io::Result<()>>,
}

/// How long [`Running::shutdown`] lets requests in flight finish before it cuts their
/// connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A server's open connections: counted, and cut at once (a second SIGTERM while
/// draining).
#[derive(Clone)]
pub struct Connections(ConnectionsOf);

#[derive(Clone)]
enum ConnectionsOf {
    Plain(watchdog::OpenConnections),
    Tls(axum_server::Handle<SocketAddr>),
}

impl Connections {
    /// How many connections are open.
    pub fn open(&self) -> usize {
        match &self.0 {
            ConnectionsOf::Plain(o) => o.count(),
            ConnectionsOf::Tls(h) => h.connection_count(),
        }
    }

    /// Closes every open connection now, requests in flight or not; returns how many
    /// were open.
    pub fn cut(&self) -> usize {
        match &self.0 {
            ConnectionsOf::Plain(o) => o.cut_all(),
            ConnectionsOf::Tls(h) => {
                let n = h.connection_count();
                h.shutdown();
                n
            }
        }
    }
}

impl Running {
    /// Its open connections, to count or cut them (also while [`shutdown`](Self::shutdown)
    /// drains them).
    pub fn connections(&self) -> Connections {
        self.connections.clone()
    }

    /// Stops accepting connections, lets requests in flight finish (up to
    /// [`DRAIN_TIMEOUT`]), and writes pending state to disk.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.shutdown_within(DRAIN_TIMEOUT).await
    }

    /// [`shutdown`](Self::shutdown), cutting the connections still open after `cap`.
    pub async fn shutdown_within(self, cap: Duration) -> std::io::Result<()> {
        tracing::info!(
            "draining: waiting up to {}s for {} open connection(s) to finish",
            cap.as_secs_f64(),
            self.connections.open()
        );
        let _ = self.shutdown.send(true);
        if let ConnectionsOf::Tls(h) = &self.connections.0 {
            // Cut at `cap` below, as plain HTTP's.
            h.graceful_shutdown(None);
        }
        let mut task = self.task;
        let joined = match tokio::time::timeout(cap, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                let n = self.connections.cut();
                tracing::warn!(
                    "cut {n} connection(s) still open after {}s",
                    cap.as_secs_f64()
                );
                // Their tasks end as their sockets do; a handler stuck on something else
                // (the store) is not waited for long.
                match tokio::time::timeout(Duration::from_secs(1), &mut task).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        task.abort();
                        Ok(Ok(()))
                    }
                }
            }
        };
        let r = match joined {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        if let Err(e) = self.app.backend.close().await {
            tracing::error!("cannot write session activity on shutdown: {e}");
        }
        r
    }

    /// Waits until the server stops by itself (it only does on an I/O error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }
}

/// Runs argon2 on the blocking pool, so a burst of logins does not stall other requests,
/// and at most one verification per CPU at once. Each argon2id verification holds 19 MiB
/// for tens of milliseconds: a flood of failed logins (every one costs a verification,
/// unknown users too) would otherwise run one per blocking thread, up to tokio's 512, and
/// take gigabytes. The rest wait their turn, which costs them nothing but time; repeated
/// logins of a verified password skip argon2 altogether (the credential cache). A
/// verification keeps its place until it ends, also when its client has gone away.
struct BlockingVerifier {
    permits: Arc<tokio::sync::Semaphore>,
    check: fn(&str, &str) -> bool,
}

impl BlockingVerifier {
    fn new(at_once: usize, check: fn(&str, &str) -> bool) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(at_once.max(1))),
            check,
        }
    }
}

#[async_trait]
impl CredentialVerifier for BlockingVerifier {
    async fn verify(&self, phc: String, password: String) -> bool {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        let check = self.check;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            check(&phc, &password)
        })
        .await
        .unwrap_or(false)
    }
}

/// Puts this replica's `instanceUuid` back into Redis if it is gone (a Redis restarted
/// without its data), so that a replica started afterwards adopts it instead of writing
/// its own: replicas behind one address must all report the same one. The first replica
/// to come back wins, as at first start. A replica whose uuid lost that race (it differs
/// from the stored one) says so once: it keeps its own until it is restarted.
async fn reassert_instance_uuid(r: &RedisStore, mine: &str, warned: &mut bool) {
    // Unreachable Redis is reported by the activity flush just before; nothing to add.
    if let Ok(stored) = r.instance_uuid(mine).await {
        if stored != mine && !*warned {
            tracing::warn!(
                stored = %stored,
                mine = %mine,
                "Redis holds another instanceUuid than this replica reports (Redis lost its \
                 data and another replica wrote its own first); restart this replica to \
                 report the same one as the others"
            );
            *warned = true;
        }
    }
}

fn about(instance_uuid: String) -> AboutInfo {
    let v = env!("CARGO_PKG_VERSION");
    AboutInfo {
        name: "vsess".into(),
        full_name: format!("vsess {v} (vSphere SessionManager) build-{v}"),
        vendor: "vsess".into(),
        version: "8.0.3".into(),
        build: v.into(),
        os_type: "linux-x64".into(),
        product_line_id: "vpx".into(),
        api_type: "VirtualCenter".into(),
        api_version: vsess_wire::soap::API_VERSIONS[0].into(),
        instance_uuid,
        license_product_name: "VMware VirtualCenter Server".into(),
        license_product_version: "8.0".into(),
    }
}

fn instance_uuid(dir: &Path) -> Result<String, StartError> {
    let path = dir.join("instance-uuid");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_owned();
        if uuid::Uuid::parse_str(&s).is_ok() {
            return Ok(s);
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    write_private_atomic(&path, id.as_bytes())
        .map_err(|e| StartError::DataDir(format!("cannot write {}: {e}", path.display())))?;
    Ok(id)
}

/// Creates `administrator@vsphere.local` with a random password when there are no users;
/// the password goes to a 0600 file in the data directory and is returned once. With Redis,
/// only the replica that created the administrator has the file.
async fn bootstrap_admin(backend: &Backend, dir: &Path) -> Result<Option<String>, StartError> {
    let err = |e: vsess_core::StoreError| StartError::DataDir(e.to_string());
    let users = backend.store().list_users().await.map_err(err)?;
    if !users.is_empty() {
        // Users added before the first start (or an administrator removed since): no
        // administrator is made, so say who can administer, if anyone.
        if !users.iter().any(|u| u.role == Role::Admin) {
            tracing::warn!(
                users = users.len(),
                "no user has the Admin role, so nobody can end other users' sessions or set \
                 the service message (the first administrator is created only in an empty \
                 store): add one with `vsess user add NAME --role Admin`"
            );
        }
        return Ok(None);
    }
    let password = random_hex(16);
    let hash = hash_password(&password).map_err(StartError::DataDir)?;
    let name = UserName::parse(ADMIN_USER)
        .ok_or_else(|| StartError::DataDir("invalid administrator name".into()))?;
    let admin = User::new(name.clone(), "Administrator".into(), Role::Admin, hash);
    let created = match backend {
        Backend::Embedded(store) => store
            .users()
            .modify(move |users| {
                if !users.is_empty() {
                    return Ok(false);
                }
                users.insert(name.as_str().to_owned(), admin);
                Ok(true)
            })
            .map_err(err)?,
        Backend::Redis(store) => store.add_user(&admin, true).await.map_err(err)?,
    };
    if !created {
        return Ok(None);
    }
    let path = dir.join(ADMIN_PASSWORD_FILE);
    write_private_atomic(&path, format!("{password}\n").as_bytes())
        .map_err(|e| StartError::DataDir(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(password))
}

/// The first administrator's password file, if it still holds that user's password.
/// After a `vsess user passwd` (or `rm`) it holds a stale secret: pointing at it would
/// send the operator to a password that no longer works, so a WARN says to delete it.
async fn current_admin_password_file(backend: &Backend, dir: &Path) -> Option<PathBuf> {
    let path = dir.join(ADMIN_PASSWORD_FILE);
    let saved = std::fs::read_to_string(&path).ok()?;
    let saved = saved.trim_end_matches(['\n', '\r']).to_owned();
    let hash = match backend.store().get_user(ADMIN_USER).await {
        Ok(Some(u)) => u.password_hash,
        Ok(None) => String::new(),
        // Cannot tell: point at it, as before.
        Err(_) => return Some(path),
    };
    let current = !hash.is_empty()
        && tokio::task::spawn_blocking(move || {
            vsess_core::password::verify_password(&hash, &saved)
        })
        .await
        .unwrap_or(false);
    if !current {
        tracing::warn!(
            file = %path.display(),
            "{ADMIN_USER}'s password was changed (or the user removed) since this file was \
             written; it holds a password that no longer works: delete it"
        );
        return None;
    }
    Some(path)
}

/// Opens the configured store. The data directory still holds the certificate and local
/// tickets in Redis mode.
async fn open_backend(opts: &Options) -> Result<Backend, StartError> {
    match &opts.config.store {
        StoreConfig::Embedded(o) => {
            let dir = opts.data_dir.clone();
            let o = o.clone();
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open_with(&dir, o))
                .await
                .map_err(|e| StartError::DataDir(e.to_string()))?
                .map_err(|e| StartError::DataDir(e.to_string()))?;
            Ok(Backend::Embedded(Arc::new(store)))
        }
        StoreConfig::Redis(o) => {
            vsess_store::ensure_data_dir(&opts.data_dir).map_err(|e| {
                StartError::DataDir(format!(
                    "cannot use data directory {}: {e}",
                    opts.data_dir.display()
                ))
            })?;
            let mut o = o.clone();
            o.idle = opts.config.policy.idle_timeout;
            o.lifetime = opts.config.policy.max_lifetime;
            let store = RedisStore::connect(o).await.map_err(|e| match e {
                vsess_core::StoreError::Unavailable(m) => StartError::Store(m),
                e => StartError::StoreConfig(e.to_string()),
            })?;
            // Sessions from before the per-user sets: indexed while the replica serves.
            let indexer = store.clone();
            tokio::spawn(async move {
                if let Err(e) = indexer.build_user_index().await {
                    tracing::warn!(
                        "cannot index the sessions in Redis by user (the next start tries again): {e}"
                    );
                }
            });
            Ok(Backend::Redis(store))
        }
    }
}

/// The listener, ready to serve, prepared before the administrator is created.
enum Serving {
    Plain(tokio::net::TcpListener),
    Tls {
        server: Box<axum_server::Server<SocketAddr>>,
        cfg: axum_server::tls_rustls::RustlsConfig,
        fingerprint: String,
        generated: bool,
        watch: tls::Watch,
    },
}

/// Checks the certificate and key files every `every`, and serves a changed pair once it
/// reads and checks out; until then (a pair caught half-written, a key that does not
/// match) the previous one stays in use. Stops with the server.
async fn serve_renewed_certificates(
    cfg: axum_server::tls_rustls::RustlsConfig,
    mut watch: tls::Watch,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let polled = match tokio::task::spawn_blocking(move || {
            let polled = watch.poll();
            (watch, polled)
        })
        .await
        {
            Ok((w, polled)) => {
                watch = w;
                polled
            }
            Err(_) => break,
        };
        let m = match polled {
            None => continue,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!("the TLS certificate files changed but cannot be used ({e}); still serving the previous certificate");
                continue;
            }
        };
        match rustls_config(&m).await {
            Ok(c) => {
                cfg.reload_from_config(c);
                tracing::info!(
                    cert = %m.cert_path.display(),
                    fingerprint = %m.fingerprint,
                    "serving the renewed TLS certificate (new connections; clients that pin the old fingerprint need this one)"
                );
                if let Some(w) = m.validity_warning(chrono::Utc::now()) {
                    tracing::warn!("{w}");
                }
            }
            Err(e) => tracing::warn!(
                "the TLS certificate files changed but cannot be used ({}); still serving the previous certificate",
                tls::explain_pair(&m, &e)
            ),
        }
    }
}

/// The certificate and key (the given ones, or the data directory's, generated on first
/// start) and rustls's configuration for them; failures are `fail`'s kind.
async fn tls_config(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
    fail: fn(String) -> StartError,
) -> Result<(tls::TlsMaterial, axum_server::tls_rustls::RustlsConfig), StartError> {
    let m = tls::load_or_generate(data_dir, cert, key).map_err(fail)?;
    let c = rustls_config(&m)
        .await
        .map_err(|e| fail(tls::explain_pair(&m, &e)))?;
    Ok((m, axum_server::tls_rustls::RustlsConfig::from_config(c)))
}

/// The protocols offered in ALPN, in the server's order of preference. axum-server's
/// configurations offer `h2` and `http/1.1` only, and rustls refuses a client whose list
/// shares none of them (`no_application_protocol`), so `curl --http1.0`, which offers
/// only `http/1.0`, could not connect; hyper serves HTTP/1.0 on the same connection
/// code.
const ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", b"http/1.0"];

/// rustls's configuration for `m` as axum-server builds it (and words its errors), with
/// [`ALPN`]: made whole before it is served, so no connection sees it half set.
async fn rustls_config(m: &tls::TlsMaterial) -> std::io::Result<Arc<rustls::ServerConfig>> {
    let built =
        axum_server::tls_rustls::RustlsConfig::from_pem(m.cert_pem.clone(), m.key_pem.clone())
            .await?;
    let mut c = (*built.get_inner()).clone();
    c.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(c))
}

/// Binds, opens the data directory and starts serving in the background.
pub async fn start(opts: Options) -> Result<Running, StartError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind(opts.listen).map_err(|source| StartError::Bind {
        addr: opts.listen,
        hint: if source.kind() == std::io::ErrorKind::AddrInUse {
            " (another process is using this port; stop it or pass --listen with another port)"
        } else {
            ""
        },
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| StartError::DataDir(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::DataDir(e.to_string()))?;

    // The operator's own files are settings: checked before the data directory is
    // touched, so that a mistyped path creates nothing and is a usage error.
    let given_pair = match &opts.transport {
        Transport::Files { cert, key } => {
            Some(tls_config(&opts.data_dir, Some(cert), Some(key), StartError::TlsConfig).await?)
        }
        _ => None,
    };
    let metrics = match &opts.config.metrics {
        m if m.enabled => {
            Some(metrics::Metrics::new(m.token_file.as_deref()).map_err(StartError::Config)?)
        }
        _ => None,
    };
    let backend = open_backend(&opts).await?;
    tracing::info!("sessions are kept in the {}", backend.describe());
    // Everything that can fail comes before the administrator is created: a start that
    // fails must not leave behind an administrator whose password was never printed.
    let serving = match &opts.transport {
        Transport::PlainHttp => Serving::Plain(
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| StartError::DataDir(e.to_string()))?,
        ),
        _ => {
            let (m, cfg) = match given_pair {
                Some(pair) => pair,
                None => tls_config(&opts.data_dir, None, None, StartError::Tls).await?,
            };
            if let Some(w) = m.validity_warning(chrono::Utc::now()) {
                tracing::warn!("{w}");
            }
            let server =
                axum_server::from_tcp(listener).map_err(|e| StartError::DataDir(e.to_string()))?;
            Serving::Tls {
                server: Box::new(server),
                cfg,
                watch: tls::Watch::new(&m),
                fingerprint: m.fingerprint,
                generated: m.generated,
            }
        }
    };
    let mut uuid = instance_uuid(&opts.data_dir)?;
    if let Backend::Redis(r) = &backend {
        uuid = r
            .instance_uuid(&uuid)
            .await
            .map_err(|e| StartError::Store(e.to_string()))?;
    }
    let ticket_dir = Arc::new(tickets::TicketDir::new(&opts.data_dir).map_err(|e| {
        StartError::DataDir(format!(
            "cannot create {}: {e}",
            opts.data_dir.join("local-tickets").display()
        ))
    })?);
    let admin_password = bootstrap_admin(&backend, &opts.data_dir).await?;
    let admin_password_file = current_admin_password_file(&backend, &opts.data_dir).await;
    let instance = uuid.clone();
    let policy = opts.config.policy.clone();
    let local_ttl = policy
        .local_ticket_ttl
        .to_std()
        .unwrap_or(Duration::from_secs(300));
    let svc = SessionService::new(
        backend.store(),
        Arc::new(SystemClock),
        policy,
        Arc::new(BlockingVerifier::new(
            std::thread::available_parallelism().map_or(2, usize::from),
            verify_password,
        )),
        about(uuid),
    )
    .with_local_tickets(ticket_dir.clone())
    .with_compute_policies(opts.config.compute_policies.clone());
    let app = Arc::new(App {
        svc,
        backend,
        max_body: opts.config.max_body_bytes,
        tls: !matches!(opts.transport, Transport::PlainHttp),
        token_lifetime: opts.config.token_lifetime,
        metrics,
    });
    let router = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        SocketAddr,
    >(app::service(app.clone()));

    let (tx, mut rx) = watch::channel(false);
    let (scheme, fingerprint, cert_generated, connections, task) = match serving {
        Serving::Plain(l) => {
            let mut rx2 = rx.clone();
            let l = watchdog::GuardedListener::new(l, opts.config.connection_limits);
            let open = l.open_connections();
            // `tap_io` (a no-op here) is what gives a custom listener axum's `ConnectInfo`.
            let l = axum::serve::ListenerExt::tap_io(l, |_| {});
            let task = tokio::spawn(async move {
                axum::serve(l, router)
                    .with_graceful_shutdown(async move {
                        let _ = rx2.wait_for(|s| *s).await;
                    })
                    .await
            });
            let connections = Connections(ConnectionsOf::Plain(open));
            ("http", None, false, connections, task)
        }
        Serving::Tls {
            server,
            cfg,
            fingerprint,
            generated,
            watch,
        } => {
            if let Some(every) = opts.config.certificate_check {
                tokio::spawn(serve_renewed_certificates(
                    cfg.clone(),
                    watch,
                    every,
                    rx.clone(),
                ));
            }
            let handle = axum_server::Handle::new();
            let connections = Connections(ConnectionsOf::Tls(handle.clone()));
            // A `Running` dropped without `shutdown()` still stops its server (as plain
            // HTTP's `with_graceful_shutdown` does); `shutdown_within` drains it itself.
            let (h2, mut rx2) = (handle.clone(), rx.clone());
            tokio::spawn(async move {
                if rx2.wait_for(|s| *s).await.is_err() {
                    h2.graceful_shutdown(Some(DRAIN_TIMEOUT));
                }
            });
            // TCP_NODELAY: small request/response exchanges must not wait on Nagle's
            // algorithm (it cost ~40 ms stalls on keep-alive connections).
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(cfg)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            // Connections that stall mid-request, or idle past any client's pool, close.
            let acceptor = watchdog::WatchdogAcceptor::new(acceptor, opts.config.connection_limits);
            let server = (*server).acceptor(acceptor).handle(handle);
            let task = tokio::spawn(async move { server.serve(router).await });
            ("https", Some(fingerprint), generated, connections, task)
        }
    };

    // Housekeeping: lazy persistence of activity, reaping of expired sessions and tickets.
    let house = app.clone();
    tokio::spawn(async move {
        // Activity is written every second (Redis slides its TTLs then). The first reap
        // waits a full period, so that a large store is not walked as it comes up.
        let mut flush = tokio::time::interval(Duration::from_secs(1));
        let mut uuid_warned = false;
        let mut reap = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        loop {
            tokio::select! {
                _ = rx.changed() => break,
                _ = flush.tick() => {
                    if let Err(e) = house.backend.flush().await {
                        tracing::error!("cannot write session activity: {e}");
                    }
                    if let Backend::Redis(r) = &house.backend {
                        reassert_instance_uuid(r, &instance, &mut uuid_warned).await;
                    }
                }
                _ = reap.tick() => {
                    // `reap` logs each session it ends.
                    match house.svc.reap().await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(count = n, "reaped expired sessions"),
                        Err(e) => tracing::error!("cannot reap sessions: {e}"),
                    }
                    let dir = ticket_dir.clone();
                    let _ = tokio::task::spawn_blocking(move || dir.sweep(local_ttl)).await;
                }
            }
        }
    });

    let url = format!("{scheme}://{addr}");
    Ok(Running {
        addr,
        url,
        fingerprint,
        cert_generated,
        admin_password,
        admin_password_file,
        app,
        shutdown: tx,
        connections,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static MOST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn slow_check(_: &str, _: &str) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let now = IN_FLIGHT.fetch_add(1, SeqCst) + 1;
        MOST.fetch_max(now, SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        IN_FLIGHT.fetch_sub(1, SeqCst);
        false
    }

    /// However many logins come at once, and even when their clients go away mid-way,
    /// no more verifications run at once than there are permits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifications_run_at_most_n_at_once() {
        use std::sync::atomic::Ordering::SeqCst;
        let v = Arc::new(BlockingVerifier::new(2, slow_check));
        let mut tasks = Vec::new();
        for i in 0..24 {
            let v = v.clone();
            let t = tokio::spawn(async move { v.verify("x".into(), "y".into()).await });
            // Every third caller gives up (its connection closed) soon after it started.
            if i % 3 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                t.abort();
            } else {
                tasks.push(t);
            }
        }
        for t in tasks {
            assert!(!t.await.unwrap());
        }
        while IN_FLIGHT.load(SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(MOST.load(SeqCst), 2);
    }

    fn options(dir: &Path, transport: Transport) -> Options {
        Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.to_owned(),
            config: Config::default(),
            transport,
        }
    }

    /// A plain-HTTP client stalled in the middle of a request, once the server counts it.
    async fn stalled_client(running: &Running) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut c = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        c.write_all(b"POST /sdk HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<Env")
            .await
            .unwrap();
        for _ in 0..200 {
            if running.connections().open() == 1 {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server never counted the connection");
    }

    /// The client's connection was closed by the server (end of stream or reset).
    async fn assert_cut(c: &mut tokio::net::TcpStream) {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await {
                Err(_) => panic!("the stalled connection is still open"),
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {} // a response (400) before the end
            }
        }
    }

    #[tokio::test]
    async fn a_dropped_running_server_stops_serving() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(options(dir.path(), Transport::SelfSigned))
            .await
            .unwrap();
        let addr = running.addr;
        drop(running);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("still accepting connections 5 s after its Running was dropped");
    }

    #[tokio::test]
    async fn a_stalled_plain_http_client_holds_shutdown_no_longer_than_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(options(dir.path(), Transport::PlainHttp))
            .await
            .unwrap();
        let mut c = stalled_client(&running).await;
        let t0 = std::time::Instant::now();
        // Without a cap this waits for the request timeout (60 s).
        tokio::time::timeout(
            Duration::from_secs(5),
            running.shutdown_within(Duration::from_millis(300)),
        )
        .await
        .expect("shutdown waited past its cap")
        .unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "the client got its cap"
        );
        assert_cut(&mut c).await;
    }

    #[tokio::test]
    async fn cutting_the_connections_ends_a_drain_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(options(dir.path(), Transport::PlainHttp))
            .await
            .unwrap();
        let mut c = stalled_client(&running).await;
        let connections = running.connections();
        let drain = tokio::spawn(running.shutdown_within(Duration::from_secs(60)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!drain.is_finished(), "the stalled request is waited for");
        assert_eq!(connections.cut(), 1);
        tokio::time::timeout(Duration::from_secs(3), drain)
            .await
            .expect("the drain went on after the connections were cut")
            .unwrap()
            .unwrap();
        assert_cut(&mut c).await;
        assert_eq!(connections.open(), 0);
    }

    #[tokio::test]
    async fn a_certificate_with_another_key_says_which_files_and_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
        }
        tls::load_or_generate(&a, None, None).unwrap();
        tls::load_or_generate(&b, None, None).unwrap();
        let mixed = Transport::Files {
            cert: a.join(tls::CERT_FILE),
            key: b.join(tls::KEY_FILE),
        };
        let Err(StartError::TlsConfig(m)) = start(options(&dir.path().join("data"), mixed)).await
        else {
            panic!("a certificate with another's key must not start");
        };
        assert!(
            m.contains("a/server.crt")
                && m.contains("b/server.key")
                && m.contains("must come first"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn a_failed_start_creates_no_administrator() {
        let dir = tempfile::tempdir().unwrap();
        let pw_file = dir.path().join(ADMIN_PASSWORD_FILE);
        let bad = Transport::Files {
            cert: dir.path().join("nonexist.crt"),
            key: dir.path().join("nonexist.key"),
        };
        let Err(StartError::TlsConfig(m)) = start(options(dir.path(), bad)).await else {
            panic!("a start with an unreadable certificate must fail");
        };
        assert!(m.contains("cannot read"), "{m}");
        assert!(!pw_file.exists(), "no password file after a failed start");

        // The next good start creates the administrator, and prints its password.
        let running = start(options(dir.path(), Transport::SelfSigned))
            .await
            .unwrap();
        let pw = running
            .admin_password
            .clone()
            .expect("administrator created");
        assert_eq!(
            running.admin_password_file.as_deref(),
            Some(pw_file.as_path())
        );
        assert_eq!(std::fs::read_to_string(&pw_file).unwrap().trim(), pw);
        running.shutdown().await.unwrap();

        // Later starts only point at the file.
        let running = start(options(dir.path(), Transport::SelfSigned))
            .await
            .unwrap();
        assert_eq!(running.admin_password, None);
        assert_eq!(
            running.admin_password_file.as_deref(),
            Some(pw_file.as_path())
        );
        running.shutdown().await.unwrap();

        // Once the password is changed, the file is stale: not pointed at any more.
        let store = vsess_store::UserFile::open(dir.path()).unwrap();
        store
            .modify(|users| {
                let admin = users.get_mut(ADMIN_USER).unwrap();
                admin.password_hash = vsess_core::password::hash_password("new-pw").unwrap();
                Ok(())
            })
            .unwrap();
        let running = start(options(dir.path(), Transport::SelfSigned))
            .await
            .unwrap();
        assert_eq!(running.admin_password, None);
        assert_eq!(running.admin_password_file, None);
        running.shutdown().await.unwrap();
    }
}
