//! Test support (feature `testing`): a real redis-server (Debian's) on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `redis-server` binary: `$VSESS_REDIS_SERVER`, or `redis-server` on PATH.
pub fn redis_server_bin() -> PathBuf {
    std::env::var_os("VSESS_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// A redis-server process with an append-only file (fsync every second), as an operator
/// who cares about sessions runs it. Killed on drop.
pub struct RedisProc {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra `redis-server` arguments, kept for [`RedisProc::restart`].
    extra: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisProc {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra `redis-server` arguments, which override the defaults (e.g.
    /// `["--appendfsync", "always"]`) and apply again on restart.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut r = RedisProc {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
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
            .args(&self.extra)
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

    /// redis-server speaking only TLS on `port`, with the given PEM files, requiring
    /// `password` (AUTH); clients need no certificate of their own.
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path, password: &str) -> Self {
        let port = free_port();
        let mut r = RedisProc {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            extra: [
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                &cert.display().to_string(),
                "--tls-key-file",
                &key.display().to_string(),
                "--tls-ca-cert-file",
                &ca.display().to_string(),
                "--tls-auth-clients",
                "no",
                "--requirepass",
                password,
            ]
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        };
        r.spawn();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs a command with `redis-cli` and returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(redis_cli_bin())
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// How many times the server has run `command` (lowercase), from `INFO commandstats`.
    pub fn command_calls(&self, command: &str) -> u64 {
        let text = self.cli(&["info", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |rest| {
                rest.split(',').next().unwrap().trim().parse().unwrap()
            })
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

/// `redis-cli` (Debian's redis-tools): next to `redis-server`, or on PATH.
pub fn redis_cli_bin() -> PathBuf {
    let cli = redis_server_bin().with_file_name("redis-cli");
    if cli.exists() {
        cli
    } else {
        PathBuf::from("redis-cli")
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of `n` masters (no replicas) on free loopback ports, made with
/// `redis-cli --cluster create` (Debian's redis-tools).
pub struct RedisCluster {
    pub nodes: Vec<RedisProc>,
}

impl RedisCluster {
    pub fn start(n: usize) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(RedisProc::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]));
        }
        let cli = redis_cli_bin();
        let mut cmd = Command::new(&cli);
        cmd.arg("--cluster").arg("create");
        for r in &nodes {
            cmd.arg(format!("127.0.0.1:{}", r.port));
        }
        let out = cmd
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} (Debian's redis-tools)", cli.display()));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for r in &nodes {
            loop {
                let info = Command::new(&cli)
                    .args(["-p", &r.port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not become ready"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        RedisCluster { nodes }
    }

    /// Every node's URL, comma-separated (the `url` of `[store] cluster = true`).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisProc::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
