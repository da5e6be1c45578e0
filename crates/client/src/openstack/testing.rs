//! A tiny mock Keystone on 127.0.0.1:0 for unit tests (gophercloud's testhelper): token issue
//! with a controllable clock, failures and delay, and `/v3/projects` paged in several ways.
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vsess_core::clock::{Clock, ManualClock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paging {
    /// Keystone: `links.next` on every full page, null otherwise.
    Linked,
    /// No `links` member at all: the client must page by marker.
    MarkerOnly,
    /// `links.next` is the page's own URL.
    Loop,
    /// `links.next` points at another host.
    Foreign,
}

pub(crate) struct MockState {
    pub base: Mutex<String>,
    pub clock: Arc<ManualClock>,
    pub lifetime: chrono::Duration,
    pub auth_attempts: AtomicU64,
    pub issued: AtomicU64,
    pub auth_fail: AtomicBool,
    pub auth_delay: Mutex<Duration>,
    pub reject_all: AtomicBool,
    pub valid: Mutex<HashSet<String>>,
    pub projects: Mutex<Vec<Value>>,
    pub paging: Mutex<Paging>,
    pub project_requests: AtomicU64,
}

pub(crate) struct MockKeystone {
    pub url: String,
    pub state: Arc<MockState>,
}

fn err(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message, "title": title}})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    err(
        StatusCode::UNAUTHORIZED,
        "The request you have made requires authentication.",
    )
}

impl MockState {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        if self.reject_all.load(Ordering::SeqCst) {
            return false;
        }
        let Some(t) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) else {
            return false;
        };
        self.valid.lock().unwrap().contains(t)
    }
}

async fn issue(State(s): State<Arc<MockState>>, body: Bytes) -> Response {
    s.auth_attempts.fetch_add(1, Ordering::SeqCst);
    let delay = *s.auth_delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "bad json");
    };
    if s.auth_fail.load(Ordering::SeqCst)
        || req["auth"]["identity"]["password"]["user"]["password"] != "pw"
    {
        return unauthorized();
    }
    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("tok-{n}");
    s.valid.lock().unwrap().insert(token.clone());
    (
        StatusCode::CREATED,
        [("x-subject-token", token.as_str())],
        Json(token_body(&s)),
    )
        .into_response()
}

/// `GET /v3/auth/tokens`: what Keystone knows of the `X-Subject-Token` (authorized by a
/// valid `X-Auth-Token`), with the subject echoed back.
async fn inspect(State(s): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    s.auth_attempts.fetch_add(1, Ordering::SeqCst);
    if !s.authorized(&headers) {
        return unauthorized();
    }
    let Some(subject) = headers.get("x-subject-token").and_then(|v| v.to_str().ok()) else {
        return err(StatusCode::BAD_REQUEST, "no X-Subject-Token");
    };
    if !s.valid.lock().unwrap().contains(subject) {
        return err(StatusCode::NOT_FOUND, "Failed to validate token");
    }
    (
        StatusCode::OK,
        [("x-subject-token", subject)],
        Json(token_body(&s)),
    )
        .into_response()
}

fn token_body(s: &MockState) -> Value {
    let now = s.clock.now();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let base = s.base.lock().unwrap().clone();
    json!({"token": {
        "methods": ["password"],
        "user": {"id": "u1", "name": "admin", "domain": {"id": "default", "name": "Default"}},
        "project": {"id": "p-admin", "name": "admin", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r1", "name": "admin"}],
        "issued_at": fmt(now),
        "expires_at": fmt(now + s.lifetime),
        "catalog": [{"type": "identity", "name": "keystone", "id": "k", "endpoints": [
            {"id": "e1", "interface": "public", "region": "RegionOne", "region_id": "RegionOne",
             "url": format!("{base}/v3")}]}],
    }})
}

async fn list_projects(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.project_requests.fetch_add(1, Ordering::SeqCst);
    if !s.authorized(&headers) {
        return unauthorized();
    }
    let all = s.projects.lock().unwrap().clone();
    let start = match q.get("marker") {
        Some(m) => match all.iter().position(|p| p["id"] == m.as_str()) {
            Some(i) => i + 1,
            None => return err(StatusCode::NOT_FOUND, "Could not find project"),
        },
        None => 0,
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit.unwrap_or(usize::MAX))
        .cloned()
        .collect();
    let base = s.base.lock().unwrap().clone();
    let full = limit.is_some_and(|l| page.len() == l);
    let next = match (full, page.last()) {
        (true, Some(last)) => json!(format!(
            "{base}/v3/projects?limit={}&marker={}",
            limit.unwrap_or_default(),
            last["id"].as_str().unwrap_or_default()
        )),
        _ => Value::Null,
    };
    let paging = *s.paging.lock().unwrap();
    let body = match paging {
        Paging::Linked => {
            json!({"projects": page, "links": {"self": format!("{base}{uri}"), "next": next, "previous": null}})
        }
        Paging::MarkerOnly => json!({"projects": page}),
        Paging::Loop => {
            json!({"projects": page, "links": {"next": format!("{base}{uri}")}})
        }
        Paging::Foreign => {
            json!({"projects": page, "links": {"next": "http://127.0.0.2:9/v3/projects?marker=x"}})
        }
    };
    Json(body).into_response()
}

async fn get_project(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    s.project_requests.fetch_add(1, Ordering::SeqCst);
    if !s.authorized(&headers) {
        return unauthorized();
    }
    let all = s.projects.lock().unwrap().clone();
    match all.into_iter().find(|p| p["id"] == id.as_str()) {
        Some(p) => Json(json!({ "project": p })).into_response(),
        None => err(
            StatusCode::NOT_FOUND,
            &format!("Could not find project: {id}."),
        ),
    }
}

async fn garbage() -> Response {
    (StatusCode::OK, "this is not json").into_response()
}

async fn odd_projects() -> Response {
    Json(json!({"projects": {"not": "a list"}})).into_response()
}

async fn boom() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error, traceback hidden",
    )
        .into_response()
}

impl MockKeystone {
    /// Starts a mock with `projects` projects (ids p-00, p-01, ...) and tokens that live
    /// `lifetime` by `clock`.
    pub async fn start(projects: usize, lifetime: chrono::Duration) -> Self {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let state = Arc::new(MockState {
            base: Mutex::new(String::new()),
            clock,
            lifetime,
            auth_attempts: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            auth_fail: AtomicBool::new(false),
            auth_delay: Mutex::new(Duration::ZERO),
            reject_all: AtomicBool::new(false),
            valid: Mutex::new(HashSet::new()),
            projects: Mutex::new(
                (0..projects)
                    .map(|i| json!({"id": format!("p-{i:02}"), "name": format!("page-{i:02}"), "domain_id": "default", "enabled": true}))
                    .collect(),
            ),
            paging: Mutex::new(Paging::Linked),
            project_requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v3/auth/tokens", post(issue).get(inspect))
            .route("/v3/projects", get(list_projects))
            .route("/v3/projects/{id}", get(get_project))
            .route("/v3/garbage", get(garbage))
            .route("/v3/garbage/projects", get(garbage))
            .route("/v3/odd/projects", get(odd_projects))
            .route("/v3/boom", get(boom))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = url.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state }
    }

    /// Invalidates every token issued so far (as an expiry or a revocation would).
    pub fn expire_all(&self) {
        self.state.valid.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::openstack::identity::v3::projects::{self, ListOpts};
    use crate::openstack::{
        authenticated_client_with, identity_v3, AuthOptions, EndpointOpts, ProviderClient,
        ProviderConfig, RequestOpts, ServiceClient,
    };

    fn opts(mock: &MockKeystone, allow_reauth: bool) -> AuthOptions {
        AuthOptions {
            identity_endpoint: format!("{}/v3", mock.url),
            username: Some("admin".into()),
            password: Some("pw".into()),
            domain_id: Some("default".into()),
            project_name: Some("admin".into()),
            allow_reauth,
            ..AuthOptions::default()
        }
    }

    fn config(mock: &MockKeystone) -> ProviderConfig {
        ProviderConfig {
            clock: mock.state.clock.clone(),
            ..ProviderConfig::default()
        }
    }

    async fn setup(
        projects: usize,
        allow_reauth: bool,
    ) -> (MockKeystone, ProviderClient, ServiceClient) {
        let mock = MockKeystone::start(projects, chrono::Duration::hours(1)).await;
        let provider = authenticated_client_with(opts(&mock, allow_reauth), config(&mock))
            .await
            .unwrap();
        let identity = identity_v3(&provider, &EndpointOpts::default()).unwrap();
        (mock, provider, identity)
    }

    fn limit(n: usize) -> ListOpts {
        ListOpts {
            limit: Some(n),
            ..ListOpts::default()
        }
    }

    #[tokio::test]
    async fn each_page_counts_pages_and_stops_early() {
        let (mock, _p, identity) = setup(27, false).await;
        let pager = projects::list(&identity, &limit(10)).unwrap();
        let mut sizes = Vec::new();
        pager
            .each_page(|page| {
                sizes.push(page.len());
                Ok(true)
            })
            .await
            .unwrap();
        assert_eq!(sizes, vec![10, 10, 7]);
        assert_eq!(mock.state.project_requests.load(Ordering::SeqCst), 3);

        // Returning false after the second page fetches no third page.
        let mut seen = 0;
        pager
            .each_page(|_| {
                seen += 1;
                Ok(seen < 2)
            })
            .await
            .unwrap();
        assert_eq!(seen, 2);
        assert_eq!(mock.state.project_requests.load(Ordering::SeqCst), 5);

        // An error from the handler stops the walk and comes back.
        let r = pager
            .each_page(|_| Err(Error::Config("stop here".into())))
            .await;
        assert!(matches!(r, Err(Error::Config(m)) if m == "stop here"));

        let all = pager.all_pages().await.unwrap();
        let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), 27);
        assert_eq!(ids[0], "p-00");
        assert_eq!(ids[26], "p-26");
    }

    #[tokio::test]
    async fn an_exact_multiple_ends_on_an_empty_page() {
        let (mock, _p, identity) = setup(20, false).await;
        let mut pages = 0;
        projects::list(&identity, &limit(10))
            .unwrap()
            .each_page(|_| {
                pages += 1;
                Ok(true)
            })
            .await
            .unwrap();
        assert_eq!(pages, 2, "the empty third page is not handed out");
        assert_eq!(mock.state.project_requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn marker_paging_without_links() {
        let (mock, _p, identity) = setup(25, false).await;
        *mock.state.paging.lock().unwrap() = Paging::MarkerOnly;
        let pager = projects::list(&identity, &limit(10)).unwrap();
        let mut urls = Vec::new();
        pager
            .each_page(|page| {
                urls.push(page.response().url().to_string());
                Ok(true)
            })
            .await
            .unwrap();
        assert_eq!(urls.len(), 3);
        assert!(urls[1].ends_with("limit=10&marker=p-09"), "{}", urls[1]);
        assert!(urls[2].ends_with("limit=10&marker=p-19"), "{}", urls[2]);
        assert_eq!(pager.all_pages().await.unwrap().len(), 25);
        // Without a page size there is nothing to page by: one request.
        let before = mock.state.project_requests.load(Ordering::SeqCst);
        let all = projects::list(&identity, &ListOpts::default())
            .unwrap()
            .all_pages()
            .await
            .unwrap();
        assert_eq!(all.len(), 25);
        assert_eq!(
            mock.state.project_requests.load(Ordering::SeqCst),
            before + 1
        );
    }

    #[tokio::test]
    async fn loops_and_foreign_next_links_are_refused() {
        let (mock, _p, identity) = setup(5, false).await;
        *mock.state.paging.lock().unwrap() = Paging::Loop;
        let r = projects::list(&identity, &limit(2))
            .unwrap()
            .all_pages()
            .await;
        assert!(
            matches!(&r, Err(Error::Decode { message, .. }) if message.contains("loops")),
            "{r:?}"
        );
        *mock.state.paging.lock().unwrap() = Paging::Foreign;
        let r = projects::list(&identity, &limit(2))
            .unwrap()
            .all_pages()
            .await;
        assert!(
            matches!(&r, Err(Error::Decode { message, .. }) if message.contains("refusing")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn bad_answers_map_to_errors() {
        let (mock, provider, identity) = setup(3, false).await;
        let r = identity
            .get(
                identity.service_url(&["garbage"]).unwrap(),
                RequestOpts::default(),
            )
            .await
            .unwrap();
        assert!(matches!(r.extract::<Value>(), Err(Error::Decode { .. })));
        let r = projects::list(
            &ServiceClient::new(
                provider.clone(),
                identity.service_url(&["garbage"]).unwrap().as_str(),
                "x",
            )
            .unwrap(),
            &ListOpts::default(),
        )
        .unwrap()
        .all_pages()
        .await;
        assert!(matches!(r, Err(Error::Decode { .. })), "{r:?}");
        let odd =
            ServiceClient::new(provider.clone(), &format!("{}/v3/odd", mock.url), "x").unwrap();
        let r = projects::list(&odd, &ListOpts::default())
            .unwrap()
            .all_pages()
            .await;
        assert!(
            matches!(&r, Err(Error::Decode { message, .. }) if message.contains("not a list")),
            "{r:?}"
        );
        let r = identity
            .get(
                identity.service_url(&["boom"]).unwrap(),
                RequestOpts::default(),
            )
            .await;
        assert!(matches!(r, Err(Error::Http { status: 500, .. })), "{r:?}");
        let r = projects::get(&identity, "nope").await;
        match r {
            Err(Error::Http {
                status: 404, body, ..
            }) => {
                assert_eq!(body, "Could not find project: nope.")
            }
            other => panic!("{other:?}"),
        }
        // Nothing listens on this port: a connection error.
        let dead = ServiceClient::new(provider, "http://127.0.0.1:9/v3/", "x").unwrap();
        let r = projects::get(&dead, "p").await;
        assert!(matches!(r, Err(Error::Connection { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn wrong_password_is_an_authentication_error() {
        let mock = MockKeystone::start(0, chrono::Duration::hours(1)).await;
        let mut o = opts(&mock, true);
        o.password = Some("wrong".into());
        match authenticated_client_with(o, config(&mock)).await {
            Err(Error::Authentication(m)) => {
                assert!(m.contains("requires authentication"), "{m}");
                assert!(!m.contains("wrong"), "the password leaked: {m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_401s_share_one_reauthentication() {
        let (mock, provider, identity) = setup(3, true).await;
        let first = provider.token_id().unwrap();
        mock.expire_all();
        *mock.state.auth_delay.lock().unwrap() = Duration::from_millis(200);
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let c = identity.clone();
                tokio::spawn(
                    async move { projects::get(&c, &format!("p-0{}", i % 3)).await?.extract() },
                )
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        assert_eq!(mock.state.issued.load(Ordering::SeqCst), 2, "one new token");
        assert_eq!(provider.token_issue_count(), 2);
        assert_eq!(provider.reauth_count(), 1);
        assert_ne!(provider.token_id().unwrap(), first);
        assert!(provider.unauthorized_count() >= 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failed_reauthentication_is_shared_not_repeated() {
        let (mock, provider, identity) = setup(3, true).await;
        mock.expire_all();
        mock.state.auth_fail.store(true, Ordering::SeqCst);
        *mock.state.auth_delay.lock().unwrap() = Duration::from_millis(300);
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let c = identity.clone();
                tokio::spawn(async move { projects::get(&c, "p-00").await.map(|_| ()) })
            })
            .collect();
        let mut auth_errors = 0;
        for c in calls {
            // The refused login's kind, saying that it was the re-authentication.
            if let Err(Error::Authentication(m)) = c.await.unwrap() {
                assert!(m.starts_with("re-authentication failed: "), "{m}");
                auth_errors += 1;
            }
        }
        assert_eq!(auth_errors, 20);
        // The first login plus one shared attempt (a straggler whose 401 arrived after the
        // attempt ended may start one more; never one per caller).
        let attempts = mock.state.auth_attempts.load(Ordering::SeqCst);
        assert!((2..=3).contains(&attempts), "{attempts} token requests");
        assert_eq!(provider.token_issue_count(), 1);

        // Later calls try again, and succeed once Keystone does.
        mock.state.auth_fail.store(false, Ordering::SeqCst);
        *mock.state.auth_delay.lock().unwrap() = Duration::ZERO;
        projects::get(&identity, "p-00").await.unwrap();
        assert_eq!(provider.token_issue_count(), 2);
    }

    #[tokio::test]
    async fn a_call_is_retried_once_only() {
        let (mock, provider, identity) = setup(3, true).await;
        mock.state.reject_all.store(true, Ordering::SeqCst);
        // The new token is refused too: a session error (not the credentials), after
        // re-authentication.
        let e = projects::get(&identity, "p-00").await.unwrap_err();
        assert!(e.is_unauthenticated(), "{e:?}");
        assert!(!matches!(e, Error::Authentication(_)), "{e:?}");
        assert!(e.to_string().contains("after re-authentication"), "{e}");
        assert_eq!(
            provider.token_issue_count(),
            2,
            "one re-authentication, no loop"
        );
        assert_eq!(mock.state.project_requests.load(Ordering::SeqCst), 2);
    }

    /// A HEAD that Keystone answers 200 (as `HEAD /v3/auth/tokens` does) succeeds with the
    /// default statuses, as in gophercloud.
    #[tokio::test]
    async fn a_head_answered_200_succeeds_by_default() {
        let (_mock, _p, identity) = setup(3, false).await;
        let url = identity.service_url(&["projects", "p-00"]).unwrap();
        let r = identity.head(url, RequestOpts::default()).await.unwrap();
        assert_eq!(r.status(), 200);
    }

    /// A token given with no scope is used as it is (gophercloud's passthrough): validated
    /// with itself, never sent to be re-issued (which would drop its scope).
    #[tokio::test]
    async fn a_token_given_without_a_scope_is_used_as_it_is() {
        let (mock, first, _) = setup(3, false).await;
        let token = first.token_id().unwrap();
        let attempts = mock.state.auth_attempts.load(Ordering::SeqCst);
        let given = AuthOptions {
            identity_endpoint: format!("{}/v3", mock.url),
            token_id: Some(token.clone()),
            ..AuthOptions::default()
        };
        let second = authenticated_client_with(given.clone(), config(&mock))
            .await
            .unwrap();
        assert_eq!(second.token_id().unwrap(), token, "re-issued");
        assert_eq!(mock.state.issued.load(Ordering::SeqCst), 1);
        assert_eq!(
            mock.state.auth_attempts.load(Ordering::SeqCst),
            attempts + 1
        );
        // The catalog came with it: the token's project scope is kept.
        let identity = identity_v3(&second, &EndpointOpts::default()).unwrap();
        projects::get(&identity, "p-00").await.unwrap();
        // A token that is no longer valid is a refused credential (it is the credential).
        mock.expire_all();
        let e = authenticated_client_with(given.clone(), config(&mock))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Authentication(_)), "{e:?}");
        // It cannot renew itself: allow_reauth is refused up front, as in gophercloud.
        let e = ProviderClient::new(
            AuthOptions {
                allow_reauth: true,
                ..given
            },
            config(&mock),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("allow_reauth cannot be used with a token and no scope")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn without_allow_reauth_a_401_is_returned() {
        let (mock, provider, identity) = setup(3, false).await;
        mock.expire_all();
        // An expired token is a session error, not refused credentials.
        match projects::get(&identity, "p-00").await {
            Err(e) => {
                assert!(e.is_unauthenticated(), "{e:?}");
                assert!(!matches!(e, Error::Authentication(_)), "{e:?}");
                let m = e.to_string();
                assert!(
                    m.contains("The request you have made requires authentication."),
                    "{m}"
                );
                assert!(!m.contains("tok-1"), "the token leaked: {m}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(provider.token_issue_count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn tokens_are_renewed_before_they_expire() {
        let (mock, provider, identity) = setup(3, true).await;
        let first = provider.token().unwrap();
        projects::get(&identity, "p-00").await.unwrap();
        assert_eq!(provider.token_issue_count(), 1);

        // 40 s before expiry: outside the 30 s margin, nothing happens.
        mock.state.clock.advance(chrono::Duration::seconds(3560));
        projects::get(&identity, "p-00").await.unwrap();
        assert_eq!(provider.token_issue_count(), 1);

        // 20 s before expiry: renewed before the call, once, for all concurrent callers.
        mock.state.clock.advance(chrono::Duration::seconds(20));
        *mock.state.auth_delay.lock().unwrap() = Duration::from_millis(100);
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let c = identity.clone();
                tokio::spawn(async move { projects::get(&c, "p-01").await.map(|_| ()) })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        assert_eq!(provider.token_issue_count(), 2);
        assert_eq!(provider.unauthorized_count(), 0, "renewed without a 401");
        let second = provider.token().unwrap();
        assert_ne!(second.id, first.id);
        assert!(second.expires_at > first.expires_at);

        // A failed early renewal is not fatal while the token still works...
        mock.state.clock.advance(chrono::Duration::seconds(3590));
        mock.state.auth_fail.store(true, Ordering::SeqCst);
        *mock.state.auth_delay.lock().unwrap() = Duration::ZERO;
        projects::get(&identity, "p-00").await.unwrap();
        assert_eq!(provider.token().unwrap().id, second.id);
        // ...but it is once the token has expired.
        mock.state.clock.advance(chrono::Duration::seconds(20));
        let r = projects::get(&identity, "p-00").await;
        assert!(matches!(r, Err(Error::Authentication(_))), "{r:?}");
    }

    #[tokio::test]
    async fn a_failed_early_renewal_waits_before_trying_again() {
        let mock = MockKeystone::start(3, chrono::Duration::hours(1)).await;
        let cfg = ProviderConfig {
            expiry_margin: Some(Duration::from_secs(600)),
            ..config(&mock)
        };
        let provider = authenticated_client_with(opts(&mock, true), cfg)
            .await
            .unwrap();
        let identity = identity_v3(&provider, &EndpointOpts::default()).unwrap();
        let attempts = || mock.state.auth_attempts.load(Ordering::SeqCst);
        assert_eq!(attempts(), 1);

        // 5 min before expiry, inside the 10 min margin, and Keystone refuses the password:
        // one failed renewal, not one per call.
        mock.state.clock.advance(chrono::Duration::minutes(55));
        mock.state.auth_fail.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            projects::get(&identity, "p-00").await.unwrap();
        }
        assert_eq!(attempts(), 2, "one early renewal attempt for 5 calls");
        mock.state.clock.advance(chrono::Duration::seconds(29));
        projects::get(&identity, "p-00").await.unwrap();
        assert_eq!(attempts(), 2, "still backing off");
        // After the back-off, one more try.
        mock.state.clock.advance(chrono::Duration::seconds(2));
        projects::get(&identity, "p-00").await.unwrap();
        projects::get(&identity, "p-00").await.unwrap();
        assert_eq!(attempts(), 3);
        assert_eq!(provider.token_issue_count(), 1);

        // A real 401 still re-authenticates at once.
        mock.state.auth_fail.store(false, Ordering::SeqCst);
        mock.expire_all();
        projects::get(&identity, "p-00").await.unwrap();
        assert_eq!(provider.token_issue_count(), 2);
        assert_eq!(provider.unauthorized_count(), 1);
    }

    #[tokio::test]
    async fn a_token_expired_by_the_local_clock_is_not_renewed_on_every_call() {
        let mock = MockKeystone::start(3, chrono::Duration::hours(1)).await;
        // The local clock is two hours ahead of Keystone's: every token it issues has
        // expired by the local clock.
        let skewed = Arc::new(ManualClock::new(
            mock.state.clock.now() + chrono::Duration::hours(2),
        ));
        let cfg = ProviderConfig {
            clock: skewed,
            ..config(&mock)
        };
        let provider = authenticated_client_with(opts(&mock, true), cfg)
            .await
            .unwrap();
        let identity = identity_v3(&provider, &EndpointOpts::default()).unwrap();
        for _ in 0..5 {
            projects::get(&identity, "p-00").await.unwrap();
        }
        assert_eq!(provider.token_issue_count(), 1, "no renewal per call");
        assert_eq!(mock.state.auth_attempts.load(Ordering::SeqCst), 1);

        // Keystone's 401 is what renews it.
        mock.expire_all();
        projects::get(&identity, "p-00").await.unwrap();
        projects::get(&identity, "p-00").await.unwrap();
        assert_eq!(provider.token_issue_count(), 2);
        assert_eq!(provider.unauthorized_count(), 1);
    }
}
