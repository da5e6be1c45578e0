//! Integration tests of unified sessions: one id on SOAP, VI/JSON, vAPI JSON-RPC, REST
//! and legacy REST, each answering errors in its own shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const VI: &str = "/sdk/vim25/8.0.3.0";

fn rpc(service: &str, op: &str, sid: Option<&str>, id: &str) -> Value {
    let ctx = match sid {
        Some(s) => {
            json!({"securityCtx": {"schemeId": "com.vmware.vapi.std.security.session_id", "sessionId": s}})
        }
        None => json!({}),
    };
    json!({"jsonrpc": "2.0", "method": "invoke", "id": id, "params": {
        "serviceId": service, "operationId": op,
        "input": {"STRUCTURE": {"operation-input": {}}}, "ctx": ctx}})
}

impl Kit {
    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        sid: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(s) = sid {
            req = req.header("vmware-api-session-id", s);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let (s, h) = (r.status(), r.headers().clone());
        (s, h, r.text().await.unwrap())
    }

    /// Logs in on one endpoint and returns the bare session id.
    async fn login_via(&self, how: &str) -> String {
        let (user, pw) = ("admin@vsphere.local", "admin-pw");
        match how {
            "soap" => {
                let c = self.login(user, pw).await;
                between(&c, "\"", "\"").to_owned()
            }
            "vijson" => {
                let (s, h, body) = self
                    .json(
                        reqwest::Method::POST,
                        &format!("{VI}/SessionManager/SessionManager/Login"),
                        None,
                        Some(json!({"userName": user, "password": pw})),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{body}");
                let us: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(us["_typeName"], "UserSession");
                h["vmware-api-session-id"].to_str().unwrap().to_owned()
            }
            "api" => {
                let r = self
                    .http
                    .post(self.url("/api/session"))
                    .basic_auth(user, Some(pw))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                r.json::<String>().await.unwrap()
            }
            "rest" => {
                let r = self
                    .http
                    .post(self.url("/rest/com/vmware/cis/session"))
                    .basic_auth(user, Some(pw))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
                assert!(cookie.contains("Path=/rest"), "{cookie}");
                let v: Value = r.json().await.unwrap();
                v["value"].as_str().unwrap().to_owned()
            }
            "jsonrpc" => {
                let mut body = rpc("com.vmware.cis.session", "create", None, "0");
                body["params"]["ctx"] = json!({"securityCtx": {"schemeId": "com.vmware.vapi.std.security.user_pass", "userName": user, "password": pw}});
                let (s, _, text) = self
                    .json(reqwest::Method::POST, "/api", None, Some(body))
                    .await;
                assert_eq!(s, StatusCode::OK);
                let v: Value = serde_json::from_str(&text).unwrap();
                v["result"]["output"]["SECRET"].as_str().unwrap().to_owned()
            }
            _ => unreachable!(),
        }
    }

    /// Whether `sid` is a live session for admin on each of the five transports.
    async fn alive_on_all(&self, sid: &str) -> [bool; 5] {
        let soap_cookie = format!("vmware_soap_session=\"{sid}\"");
        let (_, _, soap) = self
            .call(&fetch("currentSession"), Some(&soap_cookie))
            .await;
        let (s1, _, vj) = self
            .json(
                reqwest::Method::GET,
                &format!("{VI}/SessionManager/SessionManager/currentSession"),
                Some(sid),
                None,
            )
            .await;
        let (s2, _, _) = self
            .json(reqwest::Method::GET, "/api/session", Some(sid), None)
            .await;
        let legacy = self
            .http
            .get(self.url("/rest/com/vmware/cis/session"))
            .header("Cookie", format!("vmware-api-session-id={sid}"))
            .send()
            .await
            .unwrap()
            .status();
        let (_, _, r) = self
            .json(
                reqwest::Method::POST,
                "/api",
                None,
                Some(rpc("com.vmware.cis.session", "get", Some(sid), "9")),
            )
            .await;
        let r: Value = serde_json::from_str(&r).unwrap();
        [
            soap.contains("<userName>admin@vsphere.local</userName>"),
            s1 == StatusCode::OK && vj.contains("admin@vsphere.local"),
            s2 == StatusCode::OK,
            legacy == StatusCode::OK,
            r["result"]["output"]["STRUCTURE"]["com.vmware.cis.session.info"]["user"]
                == "admin@vsphere.local",
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_login_works_everywhere_and_every_end_ends_it_everywhere() {
    let kit = Kit::start("").await;
    for how in ["soap", "vijson", "api", "rest", "jsonrpc"] {
        let sid = kit.login_via(how).await;
        assert_eq!(kit.alive_on_all(&sid).await, [true; 5], "{how} session");
    }
    for end in ["soap", "vijson", "api", "rest", "jsonrpc"] {
        let sid = kit.login_via("api").await;
        match end {
            "soap" => {
                let (s, _, _) = kit
                    .call(common::LOGOUT, Some(&format!("vmware_soap_session={sid}")))
                    .await;
                assert_eq!(s, StatusCode::OK);
            }
            "vijson" => {
                let (s, _, _) = kit
                    .json(
                        reqwest::Method::POST,
                        &format!("{VI}/SessionManager/SessionManager/Logout"),
                        Some(&sid),
                        None,
                    )
                    .await;
                assert_eq!(s, StatusCode::NO_CONTENT);
            }
            "api" => {
                let (s, _, _) = kit
                    .json(reqwest::Method::DELETE, "/api/session", Some(&sid), None)
                    .await;
                assert_eq!(s, StatusCode::NO_CONTENT);
            }
            "rest" => {
                let (s, _, _) = kit
                    .json(
                        reqwest::Method::DELETE,
                        "/rest/com/vmware/cis/session",
                        Some(&sid),
                        None,
                    )
                    .await;
                assert_eq!(s, StatusCode::OK);
            }
            _ => {
                let (_, _, r) = kit
                    .json(
                        reqwest::Method::POST,
                        "/api",
                        None,
                        Some(rpc("com.vmware.cis.session", "delete", Some(&sid), "1")),
                    )
                    .await;
                assert_eq!(
                    serde_json::from_str::<Value>(&r).unwrap()["result"]["output"],
                    Value::Null
                );
            }
        }
        assert_eq!(kit.alive_on_all(&sid).await, [false; 5], "ended via {end}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_in_each_protocols_own_shape() {
    let kit = Kit::start("[server]\nmax_body_bytes = 2048").await;
    // Wrong password.
    let (s, _, body) = kit
        .json(
            reqwest::Method::POST,
            &format!("{VI}/SessionManager/SessionManager/Login"),
            None,
            Some(json!({"userName": "admin@vsphere.local", "password": "x"})),
        )
        .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (s, v["_typeName"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("InvalidLogin"))
    );
    let r = kit
        .http
        .post(kit.url("/api/session"))
        .basic_auth("admin@vsphere.local", Some("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_type"],
        "UNAUTHENTICATED"
    );
    let r = kit
        .http
        .post(kit.url("/rest/com/vmware/cis/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["type"],
        "com.vmware.vapi.std.errors.unauthenticated"
    );
    let mut create = rpc("com.vmware.cis.session", "create", None, "4");
    create["params"]["ctx"] = json!({"securityCtx": {"schemeId": "com.vmware.vapi.std.security.user_pass", "userName": "admin@vsphere.local", "password": "x"}});
    let (s, _, body) = kit
        .json(reqwest::Method::POST, "/api", None, Some(create))
        .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s, StatusCode::OK, "vAPI errors are HTTP 200");
    assert_eq!(v["id"], "4");
    assert!(
        v["result"]["error"]["ERROR"]["com.vmware.vapi.std.errors.unauthenticated"].is_object(),
        "{v}"
    );
    // Malformed JSON.
    let r = kit
        .http
        .post(kit.url(&format!("{VI}/SessionManager/SessionManager/Login")))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["_typeName"],
        "InvalidRequest"
    );
    let r = kit
        .http
        .post(kit.url("/api"))
        .body("{nope")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"]["code"].as_i64(), &v["id"]),
        (Some(-32700), &Value::Null)
    );
    // Unknown method, property, operation and release.
    let sid = kit.login_via("api").await;
    // A VI/JSON Login on a live session (here a REST one) is refused, as on SOAP, and
    // gives no session id.
    let (s, h, body) = kit
        .json(
            reqwest::Method::POST,
            &format!("{VI}/SessionManager/SessionManager/Login"),
            Some(&sid),
            Some(json!({"userName": "admin@vsphere.local", "password": "admin-pw"})),
        )
        .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (s, v["_typeName"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("InvalidLogin"))
    );
    assert!(h.get("vmware-api-session-id").is_none(), "{h:?}");
    assert!(body.contains("already logged in"), "{body}");
    let (_, _, body) = kit
        .json(
            reqwest::Method::POST,
            &format!("{VI}/SessionManager/SessionManager/Frobnicate"),
            Some(&sid),
            None,
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["_typeName"],
        "MethodNotFound"
    );
    let (_, _, body) = kit
        .json(
            reqwest::Method::GET,
            &format!("{VI}/SessionManager/SessionManager/colour"),
            Some(&sid),
            None,
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["_typeName"],
        "InvalidProperty"
    );
    let (_, _, body) = kit
        .json(
            reqwest::Method::POST,
            "/api",
            None,
            Some(rpc("com.vmware.nope", "list", Some(&sid), "2")),
        )
        .await;
    assert!(
        serde_json::from_str::<Value>(&body).unwrap()["result"]["error"]["ERROR"]
            ["com.vmware.vapi.std.errors.operation_not_found"]
            .is_object()
    );
    let (s, _, body) = kit
        .json(
            reqwest::Method::GET,
            "/sdk/vim25/5.1.0.0/Folder/group-d1/tag",
            Some(&sid),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        body.contains("8.0.3.0"),
        "names the supported releases: {body}"
    );
    // Oversized bodies.
    let big = "x".repeat(4096);
    for path in [
        format!("{VI}/SessionManager/SessionManager/Login"),
        "/api".into(),
        "/api/session".into(),
        "/rest/com/vmware/cis/session".into(),
        "/sdk".into(),
        "/auth/request-token".into(),
    ] {
        let r = kit
            .http
            .post(kit.url(&path))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    // Still serving, and odd tokens are just unauthenticated.
    for token in ["x".repeat(3000), "y".repeat(5000)] {
        let (s, _, _) = kit
            .json(reqwest::Method::GET, "/api/session", Some(&token), None)
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(kit.alive_on_all(&sid).await, [true; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_over_vijson_and_rest_persists() {
    let mut kit = Kit::start("").await;
    let sid = kit.login_via("vijson").await;
    let (s, _, body) = kit
        .json(
            reqwest::Method::POST,
            &format!("{VI}/Folder/group-d1/CreateDatacenter"),
            Some(&sid),
            Some(json!({"name": "TEST"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let dc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dc["_typeName"], "ManagedObjectReference");
    assert_eq!(dc["type"], "Datacenter");
    let (_, _, body) = kit
        .json(
            reqwest::Method::POST,
            &format!("{VI}/Folder/group-d1/CreateDatacenter"),
            Some(&sid),
            Some(json!({"name": "TEST"})),
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["_typeName"],
        "DuplicateName"
    );
    let reader = kit
        .http
        .post(kit.url("/api/session"))
        .basic_auth("reader@vsphere.local", Some("reader-pw"))
        .send()
        .await
        .unwrap()
        .json::<String>()
        .await
        .unwrap();
    let (_, _, body) = kit
        .json(
            reqwest::Method::POST,
            &format!("{VI}/Folder/group-d1/CreateFolder"),
            Some(&reader),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["_typeName"],
        "NoPermission"
    );
    kit.restart().await;
    let (_, _, body) = kit
        .json(
            reqwest::Method::GET,
            &format!("{VI}/Folder/group-d1/childEntity"),
            Some(&sid),
            None,
        )
        .await;
    let kids: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(kids[0]["value"], dc["value"], "{body}");
    let (_, _, body) = kit
        .json(
            reqwest::Method::GET,
            "/api/vcenter/folder?type=DATACENTER&names=Datacenters",
            Some(&sid),
            None,
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!([{"folder": "group-d1", "name": "Datacenters", "type": "DATACENTER"}])
    );
    let (s, _, body) = kit
        .json(
            reqwest::Method::GET,
            "/api/vcenter/folder?type=BOGUS",
            Some(&sid),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error_type"],
        "INVALID_ARGUMENT"
    );
    let (s, h, body) = kit
        .json(
            reqwest::Method::GET,
            &format!("{VI}/Folder/group-d1/parent"),
            Some(&sid),
            None,
        )
        .await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::OK, ""),
        "unset property: 200 with no body"
    );
    assert_eq!(h["content-length"], "0");
}

/// Over HTTP/2 a body over the limit gets the endpoint's 413 too, while the client is
/// still sending it (2 MiB is more than a stream's flow-control window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_over_http2() {
    let kit = Kit::start("[server]\nmax_body_bytes = 2048").await;
    let h2 = http2_client();
    let big = vec![b'a'; 2 << 20];
    for path in [
        "/api/session",
        "/api",
        "/rest/com/vmware/cis/session",
        "/sdk",
        "/sdk/vim25/8.0.3.0/SessionManager/SessionManager/Login",
    ] {
        let r = h2
            .post(kit.url(path))
            .header("Content-Type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
}

/// A client whose ALPN list holds only `http/1.0` (`curl --http1.0`) is served HTTP/1.0,
/// not refused for sharing no protocol with the server.
#[tokio::test]
async fn a_client_offering_only_http10_is_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let kit = Kit::start("").await;
    let mut tls = tls_connect(&kit, b"http/1.0").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.0"[..]));
    tls.write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    // The server's preference still decides among what a client offers.
    let both = {
        let tls = tls_connect_offering(&kit, &[b"http/1.0", b"http/1.1", b"h2"]).await;
        tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    };
    assert_eq!(both.as_deref(), Some(&b"h2"[..]));
}

/// A TLS connection to the kit's server offering `alpn`, trusting its certificate.
async fn tls_connect(
    kit: &Kit,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_connect_offering(kit, &[alpn]).await
}

/// [`tls_connect`] offering each of `alpn`, in that order.
async fn tls_connect_offering(
    kit: &Kit,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let pem = std::fs::read(kit.dir.path().join("server.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&pem).unwrap())
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(kit.running.as_ref().unwrap().addr)
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Slowloris: a connection that stops in the middle of a request is closed after
/// `request_timeout_seconds`; an idle keep-alive connection lives for
/// `idle_timeout_seconds`, and serves requests all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_requests_and_idle_connections_are_closed_in_time() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let kit = Kit::start("[server]\nrequest_timeout_seconds = 1\nidle_timeout_seconds = 4").await;
    let closed_after = |mut tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>| async move {
        let t0 = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut buf)).await;
        (t0.elapsed(), buf)
    };
    // A partial header, a partial body.
    let mut partial = Vec::new();
    for bytes in [
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\n"[..],
        &b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"[..],
    ] {
        let mut tls = tls_connect(&kit, b"http/1.1").await;
        tls.write_all(bytes).await.unwrap();
        partial.push(tokio::spawn(closed_after(tls)));
    }
    for p in partial {
        let (took, _) = p.await.unwrap();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "a stalled request was closed after {took:?}"
        );
    }
    // Idle between requests: past the request limit it still serves, then it is closed.
    let mut tls = tls_connect(&kit, b"http/1.1").await;
    let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut buf = [0u8; 4096];
    for _ in 0..2 {
        tls.write_all(get).await.unwrap();
        let n = tls.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let (took, _) = closed_after(tls).await;
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "idle, closed {took:?} after the last wait"
    );
    // HTTP/2 multiplexes: only the idle limit applies, even with bytes unanswered.
    let mut tls = tls_connect(&kit, b"h2").await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let (took, _) = closed_after(tls).await;
    assert!(
        took >= Duration::from_secs(3),
        "HTTP/2 closed after {took:?}"
    );
}

/// `serve --http` (for tests) has the same limits: a stalled request is cut off, and an
/// idle connection stays until its own limit.
#[tokio::test]
async fn plain_http_connections_have_the_same_limits() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let running = vsess_server::start(vsess_server::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        config: vsess_server::Config::parse(
            "[server]\nrequest_timeout_seconds = 1\nidle_timeout_seconds = 3",
        )
        .unwrap(),
        transport: vsess_server::Transport::PlainHttp,
    })
    .await
    .unwrap();
    let addr = running.url.trim_start_matches("http://").to_owned();
    let closed_after = |mut tcp: tokio::net::TcpStream| async move {
        let t0 = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut buf)).await;
        (t0.elapsed(), buf)
    };
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (took, _) = closed_after(tcp).await;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "a stalled request over plain HTTP was closed after {took:?}"
    );
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let (took, _) = closed_after(tcp).await;
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(6),
        "an idle plain connection was closed after {took:?}"
    );
    running.shutdown().await.unwrap();
}

/// An HTTP/2 connection to the kit's server, trusting its generated certificate.
async fn h2_connect(kit: &Kit) -> h2::client::SendRequest<bytes::Bytes> {
    let tls = tls_connect(kit, b"h2").await;
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    send
}

/// The 413 for an oversized HTTP/2 body is not followed by a reset of the stream: the
/// server reads the rest of the body, so that the response does not leave in the same
/// write as a RST_STREAM, which curl 7.88 answers with "(92) Stream error in the HTTP/2
/// framing layer" instead of the 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_http2_bodies_are_answered_without_a_reset() {
    use std::future::poll_fn;
    let kit = Kit::start("[server]\nmax_body_bytes = 2048").await;
    let port = kit.running.as_ref().unwrap().addr.port();
    let len = 2 << 20;
    for path in [
        "/api/session",
        "/api",
        "/rest/com/vmware/cis/session",
        "/sdk",
    ] {
        let mut h2 = h2_connect(&kit).await.ready().await.unwrap();
        let req = axum::http::Request::post(format!("https://127.0.0.1:{port}{path}"))
            .header("content-type", "application/json")
            .header("content-length", len)
            .body(())
            .unwrap();
        let (response, mut body) = h2.send_request(req, false).unwrap();
        let response = tokio::time::timeout(std::time::Duration::from_secs(10), response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let send_all = async {
            let mut left = len;
            while left > 0 {
                body.reserve_capacity(left.min(64 << 10));
                let n = match poll_fn(|cx| body.poll_capacity(cx)).await {
                    Some(Ok(n)) => n.min(left),
                    Some(Err(e)) => return Err(format!("{e} with {left} bytes left")),
                    None => return Err(format!("stream closed with {left} bytes left")),
                };
                left -= n;
                body.send_data(bytes::Bytes::from(vec![b'a'; n]), left == 0)
                    .map_err(|e| format!("{e} with {left} bytes left"))?;
            }
            Ok(())
        };
        let sent = tokio::time::timeout(std::time::Duration::from_secs(10), send_all).await;
        assert_eq!(sent, Ok(Ok(())), "{path}: the server reset the stream");
        let reset = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            poll_fn(|cx| body.poll_reset(cx)),
        )
        .await;
        assert!(reset.is_err(), "{path}: reset after the body: {reset:?}");
    }
}

/// Every session endpoint's answer says `Cache-Control: no-cache`, as vCenter's `/sdk`
/// does: answers carry live session state, and logins the session id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_answers_say_no_cache() {
    use reqwest::Method;
    let kit = Kit::start("[server]\nmax_body_bytes = 4096").await;
    let sid = kit.login_via("api").await;
    let cookie = format!("vmware_soap_session=\"{sid}\"");
    let creds = json!({"userName": "admin@vsphere.local", "password": "admin-pw"});
    let session = format!("{VI}/SessionManager/SessionManager/currentSession");
    let vi_login = format!("{VI}/SessionManager/SessionManager/Login");
    let vi_logout = format!("{VI}/SessionManager/SessionManager/Logout");
    let mut answers = Vec::new();
    let (_, h, _) = kit
        .call(&login_body("admin@vsphere.local", "admin-pw"), None)
        .await;
    answers.push(("SOAP Login", h));
    let (_, h, _) = kit.call(&fetch("currentSession"), Some(&cookie)).await;
    answers.push(("SOAP Fetch", h));
    let (_, h, _) = kit
        .call(&login_body("admin@vsphere.local", "wrong"), None)
        .await;
    answers.push(("SOAP fault", h));
    let (_, h, _) = kit
        .json(Method::POST, &vi_login, None, Some(creds.clone()))
        .await;
    let vi_sid = h["vmware-api-session-id"].to_str().unwrap().to_owned();
    answers.push(("VI/JSON Login", h));
    let (_, h, _) = kit.json(Method::GET, &session, Some(&sid), None).await;
    answers.push(("VI/JSON property", h));
    let (_, h, _) = kit.json(Method::GET, &session, None, None).await;
    answers.push(("VI/JSON unset property", h));
    let (s, h, _) = kit
        .json(Method::POST, &vi_logout, Some(&vi_sid), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    answers.push(("VI/JSON Logout", h));
    let (_, h, _) = kit
        .json(Method::GET, "/api/session", Some(&sid), None)
        .await;
    answers.push(("REST get", h));
    let (_, h, _) = kit.json(Method::GET, "/api/session", None, None).await;
    answers.push(("REST fault", h));
    let (_, h, _) = kit
        .json(
            Method::POST,
            "/api",
            None,
            Some(rpc("com.vmware.cis.session", "get", Some(&sid), "1")),
        )
        .await;
    answers.push(("JSON-RPC", h));
    let (_, h, _) = kit
        .json(
            Method::GET,
            "/rest/com/vmware/cis/session",
            Some(&sid),
            None,
        )
        .await;
    answers.push(("legacy REST", h));
    let r = kit
        .http
        .post(kit.url("/api/session"))
        .basic_auth("admin@vsphere.local", Some("admin-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    answers.push(("REST create", r.headers().clone()));
    let (s, h, _) = kit
        .json(Method::DELETE, "/api/session", Some(&sid), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    answers.push(("REST delete", h));
    // Answers from outside the handlers: routing's 404 and 405, and a body over the limit.
    for (method, path, status) in [
        (Method::GET, "/sdk", StatusCode::METHOD_NOT_ALLOWED),
        (Method::PUT, "/api/session", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/api/nope", StatusCode::NOT_FOUND),
        (
            Method::GET,
            "/sdk/vim25/8.0.3.0/SessionManager",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (s, h, _) = kit.json(method.clone(), path, None, None).await;
        assert_eq!(s, status, "{method} {path}");
        if s == StatusCode::METHOD_NOT_ALLOWED {
            assert!(h.get("allow").is_some(), "{path}: {h:?}");
        }
        answers.push((path, h));
    }
    let r = kit
        .http
        .post(kit.url("/sdk"))
        .body(vec![b' '; 8192])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    answers.push(("SOAP 413", r.headers().clone()));
    // /v2 keeps its stricter no-store.
    let (_, h, _) = kit.json(Method::GET, "/v2/session", None, None).await;
    assert_eq!(h["cache-control"], "no-store");
    for (what, h) in answers {
        assert_eq!(
            h.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-cache"),
            "{what}: {h:?}"
        );
    }
}
