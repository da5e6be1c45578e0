//! `vsess serve`.
use crate::Failure;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use vsess_server::{Config, Options, StartError, Transport};

/// `--listen`: an IP address and port; a host name gets an error that says so.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "'{s}' is not IP:PORT: give an address, not a host name (127.0.0.1:8989, \
             0.0.0.0:443, [::1]:8989)"
        )
    })
}

#[derive(Args)]
#[command(after_long_help = "\
Examples:
  vsess serve
      HTTPS on 127.0.0.1:8989, data in ./vsess-data, a self-signed certificate generated
      there on first start (its SHA-256 fingerprint is printed, for clients to pin).
  vsess serve --listen 127.0.0.1:9443 --data-dir /var/lib/vsess --config /etc/vsess.toml
  vsess serve --cert server.crt --key server.key
  vsess serve --http --listen 127.0.0.1:8080      (plain HTTP: testing only)
  vsess serve --store redis://127.0.0.1:6379/0 --listen 127.0.0.1:9001 --data-dir r1
      one replica of several sharing Redis: any replica accepts any session

Clients: pyVmomi SmartConnect(host='127.0.0.1', port=8989, ...), or
  GOVC_URL=https://USER:PASS@127.0.0.1:8989/sdk GOVC_INSECURE=1 govc about

Configuration (TOML; every key optional):
  config.vmacore.soap.sessionTimeout = 1800   # idle seconds before a session ends
  config.vmacore.soap.maxSessionCount = 3000  # live sessions at most
  vpx.sso.sts.tokenLifetime = 86400           # maximum session age, seconds (0 = none)
  [lockout]
  max_failures = 5                            # consecutive failures that lock a user
  lock_seconds = 300
  credential_cache_seconds = 300              # remember verified passwords; 0 = off
  [locale]
  supported = [\"en\", \"de\", \"fr\", \"es\", \"it\", \"ja\", \"ko\", \"zh_CN\", \"zh_TW\"]
  default = \"en\"
  [server]
  max_body_bytes = 1048576                    # larger requests get 413; at most 64 MiB
  request_timeout_seconds = 60                # a stalled request is cut off
  idle_timeout_seconds = 960                  # idle keep-alive connections close
  certificate_check_seconds = 10              # a renewed --cert/--key pair is served
                                              # this soon, no restart (0: never)
  [api]
  token_lifetime = 3600                       # /auth/request-token bearer tokens, seconds
  [metrics]                                   # Prometheus text format at GET /metrics
  enabled = false                             # off by default
  # token_file = \"/etc/vsess/metrics-token\"   # then scrapes send Authorization: Bearer
  [store]                                     # default: the embedded store in --data-dir
  fsync = \"interval\"                          # written before answering, fsynced within
                                              # fsync_interval_ms (1000); \"always\":
                                              # fsynced before answering
  # or, for replicas sharing Redis, instead of the [store] above:
  # [store]
  # kind = \"redis\"
  # url = \"redis://127.0.0.1:6379/0\"          # rediss:// for TLS
  # password_file = \"/etc/vsess/redis-password\" # AUTH, kept out of the URL; relative
                                              # paths start at this file's directory
  # cluster = false                           # Redis Cluster (url: seeds split by \",\")
  # ca_file = \"/etc/vsess/redis-ca.pem\"       # CA for rediss:// (default: system roots)
  # prefix = \"vsess\"                          # key prefix: deployments can share a Redis
  # timeout_ms = 2000                         # a slower Redis command fails the request

SIGINT, SIGTERM or SIGHUP stops the server gracefully. Sessions survive restarts and crashes of the
server; with fsync = \"always\" also an OS crash or power loss.")]
pub struct ServeArgs {
    /// Address to listen on: IP:PORT. Port 0 picks a free port (the log line says which).
    #[arg(long, default_value = "127.0.0.1:8989", env = "VSESS_LISTEN", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Data directory: users, sessions, certificate. Created (mode 0700) if missing.
    #[arg(long, default_value = "vsess-data", env = "VSESS_DATA_DIR")]
    data_dir: PathBuf,
    /// TOML configuration file (see below for the keys).
    #[arg(long, env = "VSESS_CONFIG")]
    config: Option<PathBuf>,
    /// TLS certificate (PEM) to use instead of the generated self-signed one.
    #[arg(long, requires = "key", conflicts_with = "http")]
    cert: Option<PathBuf>,
    /// TLS private key (PEM) for --cert.
    #[arg(long, requires = "cert", conflicts_with = "http")]
    key: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS. Session ids then cross the network in clear
    /// text: use only for local testing.
    #[arg(long)]
    http: bool,
    /// Keep sessions and users in Redis instead of the data directory, so that several
    /// replicas share them: redis://[:PASSWORD@]HOST:PORT/DB, or rediss:// for TLS.
    /// Overrides [store] in --config. The data directory still holds the certificate.
    #[arg(long, env = "VSESS_STORE", value_name = "URL")]
    store: Option<String>,
}

pub fn run(args: ServeArgs) -> Result<(), Failure> {
    // Log lines (one per login and logout) are written in batches by a thread of their own
    // (`logwriter`): not on the request path, and without waking a thread per line. Not
    // lossy. The guard writes what is left when `run` returns.
    let (log_writer, _log_guard) = crate::logwriter::new(std::io::stderr(), "vsess-log")
        .map_err(|e| Failure::runtime(format!("starting the log writer thread: {e}")))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(log_writer);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        logs.with_ansi(true).init();
    } else {
        // The same bytes as the default format, for a fraction of the instructions.
        logs.with_ansi(false)
            .event_format(crate::logfmt::FastFormat::new())
            .init();
    }
    let mut config = match &args.config {
        Some(p) => Config::load(p).map_err(|e| Failure::usage(e.to_string()))?,
        None => Config::default(),
    };
    if let Some(url) = &args.store {
        config.store = config.store.with_url(url).map_err(Failure::usage)?;
    }
    let transport = match (args.http, args.cert, args.key) {
        (true, _, _) => Transport::PlainHttp,
        (false, Some(cert), Some(key)) => Transport::Files { cert, key },
        _ => Transport::SelfSigned,
    };
    if args.http && !args.listen.ip().is_loopback() {
        tracing::warn!(
            "serving plain HTTP on a non-loopback address: session ids and passwords cross the network unencrypted"
        );
    }
    // Another directory than a data directory is a usage error (exit 2), as with
    // `vsess user`; the server checks it again when it opens the store.
    crate::check_data_dir_usage(&args.data_dir)?;
    let opts = Options {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        config,
        transport,
    };
    let rt = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::runtime(format!("cannot start the runtime: {e}")))?;
    let result = rt.block_on(async move {
        let running = vsess_server::start(opts).await.map_err(|e| match e {
            StartError::Bind { .. } | StartError::DataDir(_) | StartError::Tls(_) => {
                Failure::runtime(e.to_string())
            }
            StartError::Store(m) => Failure {
                code: 3,
                message: m,
            },
            StartError::StoreConfig(_) | StartError::Config(_) | StartError::TlsConfig(_) => {
                Failure::usage(e.to_string())
            }
        })?;
        if let Some(fp) = &running.fingerprint {
            if running.cert_generated {
                println!(
                    "Generated a self-signed certificate in {}",
                    args.data_dir.display()
                );
            }
            println!("TLS certificate SHA-256 fingerprint: {fp}");
        }
        if let Some(pw) = &running.admin_password {
            println!(
                "Created user {} with password: {pw}\n  (shown once; also saved, mode 0600, in {})",
                vsess_server::ADMIN_USER,
                args.data_dir
                    .join(vsess_server::ADMIN_PASSWORD_FILE)
                    .display()
            );
        } else if let Some(file) = &running.admin_password_file {
            // An earlier start created the administrator; its output may have been lost.
            println!(
                "The initial password of {} is saved in {}",
                vsess_server::ADMIN_USER,
                file.display()
            );
        }
        tracing::info!(
            data_dir = %args.data_dir.display(),
            "vsess {} listening on {} (SOAP at {}/sdk)",
            env!("CARGO_PKG_VERSION"),
            running.url,
            running.url
        );
        let mut running = running;
        let mut signals = Signals::new();
        tokio::select! {
            r = running.wait() => {
                return r.map_err(|e| Failure::runtime(format!("server stopped: {e}")));
            }
            s = signals.next() => {
                tracing::info!("{s}: shutting down");
            }
        }
        // A second signal while the requests in flight finish stops at once.
        let connections = running.connections();
        let shutdown = running.shutdown();
        tokio::pin!(shutdown);
        let r = tokio::select! {
            r = &mut shutdown => r,
            s = signals.next() => {
                let n = connections.cut();
                tracing::warn!(
                    "{} again: stopping now; cut {n} open connection(s)",
                    s.split(' ').next().unwrap_or(s)
                );
                // The session activity is still written, unless that hangs too.
                match tokio::time::timeout(std::time::Duration::from_secs(2), shutdown).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::warn!("session activity of the last second not written");
                        Ok(())
                    }
                }
            }
        };
        r.map_err(|e| Failure::runtime(format!("shutdown: {e}")))?;
        tracing::info!("stopped");
        Ok(())
    });
    // Blocking tasks (a store write, a password check) are not waited for long.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// SIGTERM, SIGINT and SIGHUP stop the server gracefully (activity flushed, the log
/// trimmed); a second one while it drains stops it at once. SIGHUP is a stop, not a
/// reload: it is what a closing terminal sends, and vsess has nothing to reload (user
/// changes apply live; configuration needs a restart).
///
/// Created once, so that no signal is missed between the first and the second.
struct Signals(Option<[tokio::signal::unix::Signal; 3]>);

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        let hup = signal(SignalKind::hangup());
        match (term, int, hup) {
            (Ok(t), Ok(i), Ok(h)) => Self(Some([t, i, h])),
            _ => Self(None),
        }
    }

    async fn next(&mut self) -> &'static str {
        match &mut self.0 {
            Some([t, i, h]) => tokio::select! {
                _ = t.recv() => "SIGTERM",
                _ = i.recv() => "SIGINT",
                _ = h.recv() => "SIGHUP (vsess has no reload: user changes apply live, configuration changes need a restart)",
            },
            None => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
}
