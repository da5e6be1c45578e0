//! `vsess-bench-baseline`: the trivial HTTPS server that marks the machine's limit in
//! bench/run.
//!
//! It runs on the same stack as `vsess serve` (axum 0.8, axum-server 0.8, rustls with
//! ring, a self-signed certificate, tokio's multi-threaded runtime, mimalloc) and does the least a
//! session server must do per request: read the body, find the session id where the
//! protocol carries it, look it up in an in-memory map behind a mutex, and answer a fixed
//! body of the same size and shape as vsess's answer:
//!
//! - `POST /sdk`: the `vmware_soap_session` cookie; a known id gets a fixed
//!   `FetchResponse` (a `UserSession`), anything else a fixed `RetrieveServiceContent`
//!   answer (the anonymous path).
//! - `GET /api/session`: the `vmware-api-session-id` header; a fixed session info JSON,
//!   or 401.
//! - `POST /api`: the header or the JSON-RPC `securityCtx.sessionId`; a fixed
//!   `com.vmware.cis.session.get` result.
//!
//! Usage: `vsess-bench-baseline [--listen 127.0.0.1:0] [--sessions N]`. It prints
//! `listening on https://ADDR` and then one `session ID` line per valid id on stdout.
use anyhow::{anyhow, Context, Result};

#[path = "../../../../crates/cli/src/mi.rs"]
mod mi;

/// The same allocator as `vsess serve` (crates/cli/src/mi.rs), so the baseline stays the
/// ceiling of vsess's own stack.
#[global_allocator]
static GLOBAL: mi::Mi = mi::Mi;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::RngCore;
use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

const XML: &str = "text/xml; charset=utf-8";
const JSON: &str = "application/json";

const FETCH: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body>
<FetchResponse xmlns="urn:vim25"><returnval xsi:type="UserSession"><key>52ce2690-50b0-403d-b0c4-b01328e8e878</key><userName>bench@vsphere.local</userName><fullName>bench@vsphere.local</fullName><loginTime>2026-11-22T06:47:31.714609Z</loginTime><lastActiveTime>2026-11-22T06:47:31.737181Z</lastActiveTime><locale>en</locale><messageLocale>en</messageLocale><extensionSession>false</extensionSession><ipAddress>127.0.0.1</ipAddress><userAgent></userAgent><callCount>1</callCount></returnval></FetchResponse>
</soapenv:Body>
</soapenv:Envelope>"#;

const SERVICE_CONTENT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body>
<RetrieveServiceContentResponse xmlns="urn:vim25"><returnval><rootFolder type="Folder">group-d1</rootFolder><propertyCollector type="PropertyCollector">propertyCollector</propertyCollector><viewManager type="ViewManager">ViewManager</viewManager><about><name>baseline</name><fullName>baseline 0.1.0 (vSphere SessionManager) build-0.1.0</fullName><vendor>vsess</vendor><version>8.0.3</version><build>0.1.0</build><localeVersion>INTL</localeVersion><localeBuild>000</localeBuild><osType>linux-x64</osType><productLineId>vpx</productLineId><apiType>VirtualCenter</apiType><apiVersion>8.0.3.0</apiVersion><instanceUuid>5b0c7e33-0000-4000-8000-000000000000</instanceUuid><licenseProductName>VMware VirtualCenter Server</licenseProductName><licenseProductVersion>8.0</licenseProductVersion></about><setting type="OptionManager">VpxSettings</setting><userDirectory type="UserDirectory">UserDirectory</userDirectory><sessionManager type="SessionManager">SessionManager</sessionManager><authorizationManager type="AuthorizationManager">AuthorizationManager</authorizationManager><perfManager type="PerformanceManager">PerfMgr</perfManager><searchIndex type="SearchIndex">SearchIndex</searchIndex><taskManager type="TaskManager">TaskManager</taskManager><eventManager type="EventManager">EventManager</eventManager></returnval></RetrieveServiceContentResponse>
</soapenv:Body>
</soapenv:Envelope>"#;

const REST_INFO: &str = r#"{"user":"bench@vsphere.local","created_time":"2026-11-22T06:47:31.714Z","last_accessed_time":"2026-11-22T06:47:31.737Z"}"#;

const RPC_INFO: &str = r#"{"jsonrpc":"2.0","id":"1","result":{"output":{"STRUCTURE":{"com.vmware.cis.session.info":{"user":"bench@vsphere.local","created_time":"2026-11-22T06:47:31.714Z","last_accessed_time":"2026-11-22T06:47:31.737Z"}}}}}"#;

const REST_UNAUTH: &str = r#"{"error_type":"UNAUTHENTICATED","messages":[{"args":[],"default_message":"Authentication required.","id":"vapi.method.authentication.required"}]}"#;

struct Sessions {
    ids: Mutex<HashSet<String>>,
}

impl Sessions {
    fn known(&self, id: &str) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }
}

/// The `vmware_soap_session` cookie's value, without the quotes vsess puts around it.
fn soap_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "vmware_soap_session")
        .map(|(_, v)| v.trim_matches('"'))
}

fn api_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("vmware-api-session-id")
        .and_then(|v| v.to_str().ok())
}

/// `"sessionId":"…"` in a JSON-RPC body, found without parsing the whole document.
fn rpc_session(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = &text[text.find("\"sessionId\"")? + "\"sessionId\"".len()..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(&rest[..rest.find('"')?])
}

async fn sdk(State(s): State<Arc<Sessions>>, headers: HeaderMap, body: Bytes) -> Response {
    let known = !body.is_empty() && soap_cookie(&headers).is_some_and(|c| s.known(c));
    let text = if known { FETCH } else { SERVICE_CONTENT };
    (StatusCode::OK, [(header::CONTENT_TYPE, XML)], text).into_response()
}

async fn rest_get(State(s): State<Arc<Sessions>>, headers: HeaderMap) -> Response {
    if api_header(&headers).is_some_and(|c| s.known(c)) {
        (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], REST_INFO).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, JSON)],
            REST_UNAUTH,
        )
            .into_response()
    }
}

async fn rpc(State(s): State<Arc<Sessions>>, headers: HeaderMap, body: Bytes) -> Response {
    let id = api_header(&headers).or_else(|| rpc_session(&body));
    if id.is_some_and(|c| s.known(c)) {
        (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], RPC_INFO).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, JSON)],
            REST_UNAUTH,
        )
            .into_response()
    }
}

fn args() -> Result<(SocketAddr, usize)> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut sessions = 4usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = value()?.parse().context("--listen")?,
            "--sessions" => sessions = value()?.parse().context("--sessions")?,
            "-h" | "--help" => {
                println!("usage: vsess-bench-baseline [--listen 127.0.0.1:0] [--sessions N]");
                std::process::exit(0);
            }
            other => return Err(anyhow!("unknown argument {other}")),
        }
    }
    Ok((listen, sessions))
}

#[tokio::main]
async fn main() -> Result<()> {
    let (listen, count) = args()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .context("generating the certificate")?;
    let cfg = axum_server::tls_rustls::RustlsConfig::from_pem(
        ck.cert.pem().into_bytes(),
        ck.signing_key.serialize_pem().into_bytes(),
    )
    .await
    .context("TLS configuration")?;
    let mut ids = HashSet::new();
    let mut rng = rand::rngs::OsRng;
    while ids.len() < count {
        let mut b = [0u8; 20];
        rng.fill_bytes(&mut b);
        ids.insert(hex::encode(b));
    }
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on https://{addr}")?;
        for id in &ids {
            writeln!(out, "session {id}")?;
        }
        out.flush()?;
    }
    let state = Arc::new(Sessions {
        ids: Mutex::new(ids),
    });
    let app = Router::new()
        .route("/sdk", post(sdk))
        .route("/api/session", get(rest_get))
        .route("/api", post(rpc))
        .with_state(state);
    // TCP_NODELAY, as vsess sets it.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(cfg)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .serve(app.into_make_service())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_in_each_carrier() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; vmware_soap_session=\"abc\"; c=d"
                .parse()
                .unwrap_or_else(|_| header::HeaderValue::from_static("")),
        );
        assert_eq!(soap_cookie(&h), Some("abc"));
        let body = br#"{"securityCtx":{"schemeId":"x","sessionId":"s1d"}}"#;
        assert_eq!(rpc_session(body), Some("s1d"));
        assert_eq!(rpc_session(b"{}"), None);
    }
}
