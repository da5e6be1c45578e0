//! A real `redis-server` (Debian's) on a free loopback port, and vsess replicas sharing it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vsess_core::password::hash_password;
use vsess_core::{Role, User, UserName};
use vsess_server::{Config, Options, Running, StoreConfig, Transport};
use vsess_store::{RedisOptions, RedisStore};

/// The `redis-server` binary: `$VSESS_REDIS_SERVER`, or `redis-server` on PATH.
pub fn redis_server_bin() -> PathBuf {
    std::env::var_os("VSESS_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

pub struct RedisProc {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisProc {
    /// Starts redis-server with an append-only file (fsync every second), as an operator
    /// who cares about sessions would run it.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut r = RedisProc {
            port: free_port(),
            dir,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new(redis_server_bin())
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e} (install Debian's redis-server; scripts/test does)",
                    redis_server_bin().display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// SIGKILL: no shutdown save; only what the append-only file holds survives.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory (the AOF is replayed).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn redis_config(base: &str, url: &str, prefix: &str) -> Config {
    let mut c = Config::parse(base).unwrap();
    let mut o = RedisOptions::new(url);
    o.prefix = prefix.to_owned();
    o.timeout = Duration::from_millis(1000);
    c.store = StoreConfig::Redis(o);
    c
}

/// A store handle of the test's own, as `vsess user … --store` would have.
pub async fn admin_handle(url: &str, prefix: &str) -> RedisStore {
    let mut o = RedisOptions::new(url);
    o.prefix = prefix.to_owned();
    RedisStore::connect(o).await.unwrap()
}

pub async fn add_user(store: &RedisStore, name: &str, role: Role, pw: &str) {
    let user = User {
        name: UserName::parse(name).unwrap(),
        full_name: String::new(),
        role,
        password_hash: hash_password(pw).unwrap(),
    };
    assert!(store.add_user(&user, false).await.unwrap());
}

/// `n` vsess replicas on one Redis, each with its own data directory (certificate).
pub struct Replicas {
    pub servers: Vec<Running>,
    pub dirs: Vec<tempfile::TempDir>,
    pub http: reqwest::Client,
}

impl Replicas {
    pub async fn start(n: usize, config: &Config) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut servers = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().unwrap();
            servers.push(start_one(dir.path(), config).await);
            dirs.push(dir);
        }
        let http = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .http1_only()
            .build()
            .unwrap();
        Replicas {
            servers,
            dirs,
            http,
        }
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.servers[i % self.servers.len()].url)
    }

    pub async fn soap(
        &self,
        i: usize,
        inner: &str,
        cookie: Option<&str>,
    ) -> (u16, String, Option<String>) {
        let mut req = self
            .http
            .post(self.url(i, "/sdk"))
            .header("Content-Type", "text/xml; charset=UTF-8")
            .header("SOAPAction", "\"urn:vim25/8.0.3.0\"")
            .body(super::envelope(inner));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
        (status, r.text().await.unwrap(), cookie)
    }

    pub async fn login(&self, i: usize, user: &str, pw: &str) -> String {
        let (s, body, cookie) = self.soap(i, &super::login_body(user, pw), None).await;
        assert_eq!(s, 200, "{body}");
        cookie.unwrap()
    }
}

pub async fn start_one(dir: &Path, config: &Config) -> Running {
    vsess_server::start(Options {
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        data_dir: dir.to_owned(),
        config: config.clone(),
        transport: Transport::SelfSigned,
    })
    .await
    .unwrap()
}
