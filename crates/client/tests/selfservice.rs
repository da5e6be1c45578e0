//! `SelfService` against tiny fake `/v2/session` servers (plain HTTP on 127.0.0.1:0),
//! for what a real vsess never does: page links to other origins or outside the API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use vsess_client::selfservice::{ListQuery, SelfService};
use vsess_client::tls::Tls;
use vsess_client::vsphere::Client;
use vsess_client::Error;

/// One request a fake server received, with the credentials it carried.
#[derive(Debug, Clone)]
struct Seen {
    uri: String,
    session: Option<String>,
    authorization: Option<String>,
}

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// `_links.next` of each page (by its `page` parameter, 1 when absent).
    next: Arc<Mutex<HashMap<u32, String>>>,
}

impl Fake {
    fn record(&self, uri: &Uri, headers: &HeaderMap) {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.seen.lock().unwrap().push(Seen {
            uri: uri.to_string(),
            session: h("vmware-api-session-id"),
            authorization: h("authorization"),
        });
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn link(&self, page: u32, next: String) {
        self.next.lock().unwrap().insert(page, next);
    }
}

fn item(key: &str) -> Value {
    json!({"key": key, "domain": "VSPHERE.LOCAL", "ip": "127.0.0.1",
        "lastActiveTime": "2026-01-01 00:00:00", "lastActiveTimeDelta": "0:00:01",
        "loginTime": "2026-01-01 00:00:00", "loginTimeDelta": "0:00:02",
        "userAgent": "test", "username": "VSPHERE.LOCAL\\ops"})
}

async fn list(
    State(f): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    f.record(&uri, &headers);
    let page: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let mut links = json!({"self": uri.to_string()});
    if let Some(next) = f.next.lock().unwrap().get(&page) {
        links["next"] = json!(next);
    }
    Json(json!({"_links": links, "data": [item(&format!("key-{page}"))], "meta": {}}))
}

async fn token(State(f): State<Fake>, uri: Uri, headers: HeaderMap) -> Json<Value> {
    f.record(&uri, &headers);
    Json(json!({"token": "the-token"}))
}

async fn other(State(f): State<Fake>, uri: Uri, headers: HeaderMap) -> &'static str {
    f.record(&uri, &headers);
    "{}"
}

/// Starts a fake server; returns its state and port.
async fn start() -> (Fake, u16) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/v2/session", get(list))
        .route("/auth/request-token", post(token))
        .fallback(other)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, port)
}

fn client(port: u16) -> Client {
    let c = Client::with_version(
        &format!("http://127.0.0.1:{port}/sdk"),
        Tls::Insecure,
        "8.0.3.0",
    )
    .unwrap();
    c.set_session_id(Some("the-session-id".into()));
    c
}

/// The self-service clients to try: by session id and by bearer token.
async fn both(c: &Client) -> [SelfService; 2] {
    [
        SelfService::with_session(c),
        SelfService::with_password(c, "ops@vsphere.local", "pw")
            .await
            .unwrap(),
    ]
}

#[tokio::test]
async fn page_links_to_another_origin_are_followed_on_the_clients_own() {
    let (home, port) = start().await;
    let (elsewhere, other_port) = start().await;
    let q = "per_page=100&expand=true";
    // Another origin altogether, then this server by another scheme (as a server behind
    // a TLS-terminating proxy may name itself), then a relative link.
    home.link(
        1,
        format!("http://127.0.0.1:{other_port}/v2/session?page=2&{q}"),
    );
    home.link(2, format!("https://127.0.0.1:{port}/v2/session?page=3&{q}"));
    home.link(3, format!("/v2/session?page=4&{q}"));
    let c = client(port);
    for ss in both(&c).await {
        let before = home.seen().len();
        let list = ss.list(&ListQuery::default()).await.unwrap();
        let keys: Vec<_> = list.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["key-1", "key-2", "key-3", "key-4"]);
        let pages: Vec<_> = home.seen()[before..]
            .iter()
            .filter(|s| s.uri.starts_with("/v2/session"))
            .cloned()
            .collect();
        assert_eq!(pages.len(), 4, "{pages:?}");
        for (n, s) in pages.iter().enumerate().skip(1) {
            assert!(s.uri.contains(&format!("page={}", n + 1)), "{s:?}");
        }
        assert!(
            pages
                .iter()
                .all(|s| s.session.is_some() || s.authorization.is_some()),
            "{pages:?}"
        );
    }
    assert!(
        elsewhere.seen().is_empty(),
        "credentials went to another origin: {:?}",
        elsewhere.seen()
    );
}

#[tokio::test]
async fn page_links_outside_the_api_or_looping_are_refused() {
    let (home, port) = start().await;
    let (elsewhere, other_port) = start().await;
    let c = client(port);
    for link in [
        format!("http://127.0.0.1:{other_port}/auth/request-token"),
        format!("http://127.0.0.1:{port}/admin?page=2"),
        "/v2/session/../../auth/request-token?page=2".to_owned(),
        "/v2/session/%2e%2e/x?page=2".to_owned(),
        "/v2/sessions?page=2".to_owned(),
    ] {
        home.link(1, link.clone());
        for ss in both(&c).await {
            let before = home.seen().len();
            let err = ss.list(&ListQuery::default()).await.unwrap_err();
            assert!(
                matches!(&err, Error::Decode { message, .. } if message.contains("outside /v2/session")),
                "{link}: {err}"
            );
            let after: Vec<_> = home.seen()[before..]
                .iter()
                .filter(|s| s.uri != "/auth/request-token")
                .cloned()
                .collect();
            assert_eq!(after.len(), 1, "{link}: only the first page: {after:?}");
        }
    }
    // A link back to a page already fetched.
    home.link(1, "/v2/session?page=2".to_owned());
    home.link(2, "/v2/session?page=1".to_owned());
    home.link(3, "/v2/session?page=1".to_owned());
    let err = SelfService::with_session(&c)
        .list(&ListQuery::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Decode { message, .. } if message.contains("loop")),
        "{err}"
    );
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
}

/// An answer whose body stops coming is a timeout that names the client's limit.
#[tokio::test]
async fn a_body_that_stops_coming_times_out_naming_the_limit() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"data\":",
            );
            std::thread::sleep(Duration::from_secs(3));
        }
    });
    let timeouts = vsess_client::tls::Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_millis(300),
    };
    let c = Client::with_version_within(
        &format!("http://127.0.0.1:{port}/sdk"),
        Tls::Insecure,
        "8.0.3.0",
        timeouts,
    )
    .unwrap();
    c.set_session_id(Some("the-session-id".into()));
    let err = SelfService::with_session(&c)
        .list(&ListQuery::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after: Some(d), .. } if d == timeouts.request),
        "{err:?}"
    );
}
