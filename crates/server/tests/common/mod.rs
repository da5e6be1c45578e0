//! A test kit: a real server on 127.0.0.1:0 over TLS, with two users, and helpers to
//! drive it with raw requests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod redis;

use reqwest::StatusCode;
use std::net::SocketAddr;
use vsess_core::password::hash_password;
use vsess_core::{Role, User, UserName};
use vsess_server::{Config, Options, Running, Transport};
use vsess_store::UserFile;

pub struct Kit {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub config: Config,
}

pub fn add_user(dir: &std::path::Path, name: &str, role: Role, pw: &str) {
    let hash = hash_password(pw).unwrap();
    let name = UserName::parse(name).unwrap();
    UserFile::open(dir)
        .unwrap()
        .modify(|u| {
            u.insert(
                name.as_str().to_owned(),
                User::new(name.clone(), String::new(), role, hash),
            );
            Ok(())
        })
        .unwrap();
}

impl Kit {
    pub async fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        add_user(dir.path(), "admin@vsphere.local", Role::Admin, "admin-pw");
        add_user(
            dir.path(),
            "reader@vsphere.local",
            Role::ReadOnly,
            "reader-pw",
        );
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .http1_only()
            .build()
            .unwrap();
        let mut kit = Kit {
            running: None,
            dir,
            http,
            config: Config::parse(config).unwrap(),
        };
        kit.boot().await;
        kit
    }

    async fn boot(&mut self) {
        let opts = Options {
            listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
            data_dir: self.dir.path().to_owned(),
            config: self.config.clone(),
            transport: Transport::SelfSigned,
        };
        self.running = Some(vsess_server::start(opts).await.unwrap());
    }

    pub async fn restart(&mut self) {
        self.running.take().unwrap().shutdown().await.unwrap();
        self.boot().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.as_ref().unwrap().url)
    }

    pub async fn post_raw(
        &self,
        body: Vec<u8>,
        cookie: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        self.post_to("/sdk", body, cookie).await
    }

    /// [`Kit::post_raw`] to another path.
    pub async fn post_to(
        &self,
        path: &str,
        body: Vec<u8>,
        cookie: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("Content-Type", "text/xml; charset=UTF-8")
            .header("SOAPAction", "\"urn:vim25/8.0.3.0\"")
            .header("User-Agent", "vsess-it")
            .body(body);
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let r = req.send().await.unwrap();
        let (s, h) = (r.status(), r.headers().clone());
        (s, h, r.text().await.unwrap())
    }

    pub async fn call(
        &self,
        inner: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        self.post_raw(envelope(inner).into_bytes(), cookie).await
    }

    /// Logs in and returns the cookie header value exactly as pyVmomi echoes it back.
    pub async fn login(&self, user: &str, pw: &str) -> String {
        let (s, h, body) = self.call(&login_body(user, pw), None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(cookies.len(), 1, "exactly one Set-Cookie");
        cookies[0].to_str().unwrap().to_owned()
    }
}

/// A client that speaks only HTTP/2 (negotiated with ALPN), like `curl --http2`: the
/// authority travels in `:authority`, with no `Host` header.
pub fn http2_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

pub fn envelope(inner: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>")
}

pub fn login_body(user: &str, pw: &str) -> String {
    format!("<Login xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><userName>{user}</userName><password>{pw}</password></Login>")
}

pub fn fetch(prop: &str) -> String {
    format!("<Fetch xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><prop>{prop}</prop></Fetch>")
}

pub const LOGOUT: &str =
    "<Logout xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this></Logout>";

pub const RSC: &str = "<RetrieveServiceContent xmlns=\"urn:vim25\"><_this type=\"ServiceInstance\">ServiceInstance</_this></RetrieveServiceContent>";

pub fn fault_type(body: &str) -> &str {
    let start = body.find("xsi:type=\"").map(|i| i + 10).unwrap_or(0);
    let end = body[start..].find('"').map(|i| start + i).unwrap_or(start);
    &body[start..end]
}

pub fn between<'a>(body: &'a str, open: &str, close: &str) -> &'a str {
    let s = body.find(open).unwrap() + open.len();
    let e = body[s..].find(close).unwrap() + s;
    &body[s..e]
}
