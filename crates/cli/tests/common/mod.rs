//! Helpers shared by the `vsess` binary's tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_vsess");
pub const SM: &str = "<_this type=\"SessionManager\">SessionManager</_this>";

/// A server started by a test: killed when dropped, so that a test that fails (panics)
/// before its own `kill` leaves no server running behind it.
pub struct Served(pub Child);

impl std::ops::Deref for Served {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `vsess serve --listen 127.0.0.1:0 --data-dir DIR EXTRA…`; returns it and its URL once
/// it listens.
pub fn serve(dir: &Path, extra: &[&str]) -> (Served, String) {
    let (child, url, _) = serve_logged(dir, extra);
    (child, url)
}

/// [`serve`], also returning the lines the server writes to stderr (its log), as they come.
pub fn serve_logged(
    dir: &Path,
    extra: &[&str],
) -> (
    Served,
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = log.clone();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line
                .find("listening on https://")
                .or_else(|| line.find("listening on http://"))
            {
                let url: String = line[i + 13..].split_whitespace().next().unwrap().to_owned();
                let _ = tx.send(url);
            }
            lines.lock().unwrap().push(line);
        }
    });
    let child = Served(child);
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not become ready");
    (child, url, log)
}

pub fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

pub fn soap(
    c: &reqwest::blocking::Client,
    url: &str,
    inner: &str,
    cookie: Option<&str>,
) -> (u16, String, Option<String>) {
    let body = format!("<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>");
    let mut req = c
        .post(format!("{url}/sdk"))
        .header("Content-Type", "text/xml")
        .body(body);
    if let Some(ck) = cookie {
        req = req.header("Cookie", ck);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let set = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.text().unwrap(), set)
}

/// Waits up to 5 s for a line of a server's log (from [`serve_logged`]) that `what`
/// accepts; panics with the whole log if none comes.
pub fn wait_for_line(log: &std::sync::Mutex<Vec<String>>, what: &dyn Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !log.lock().unwrap().iter().any(|l| what(l)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
