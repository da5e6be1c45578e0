//! A real `redis-server` (Debian's) on a free loopback port, and vsess replicas sharing it.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use vsess_core::password::hash_password;
use vsess_core::{Role, User, UserName};
use vsess_server::{Config, Options, Running, StoreConfig, Transport};
use vsess_store::{RedisOptions, RedisStore};

pub use vsess_store::testing::{RedisCluster, RedisProc};

pub fn redis_config(base: &str, url: &str, prefix: &str) -> Config {
    let mut c = Config::parse(base).unwrap();
    let mut o = RedisOptions::new(url);
    o.cluster = url.contains(',');
    o.prefix = prefix.to_owned();
    o.timeout = Duration::from_millis(1000);
    c.store = StoreConfig::Redis(o);
    c
}

/// A store handle of the test's own, as `vsess user … --store` would have.
pub async fn admin_handle(url: &str, prefix: &str) -> RedisStore {
    let mut o = RedisOptions::new(url);
    o.cluster = url.contains(',');
    o.prefix = prefix.to_owned();
    RedisStore::connect(o).await.unwrap()
}

pub async fn add_user(store: &RedisStore, name: &str, role: Role, pw: &str) {
    let user = User::new(
        UserName::parse(name).unwrap(),
        String::new(),
        role,
        hash_password(pw).unwrap(),
    );
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

    /// `n` SOAP calls at once, call `i` to replica `i mod len`; their answers in order.
    pub async fn race(
        self: &std::sync::Arc<Self>,
        n: usize,
        inner: &str,
        cookie: Option<&str>,
    ) -> Vec<(u16, String, Option<String>)> {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (r, inner, cookie) =
                    (self.clone(), inner.to_owned(), cookie.map(str::to_owned));
                tokio::spawn(async move { r.soap(i, &inner, cookie.as_deref()).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
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
