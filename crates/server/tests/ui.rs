//! The web page's endpoints against a real server: the page and its assets with strict
//! security headers, sign-in's cookie, CSRF on every state-changing request, what
//! readers and administrators may see and do, and sign-out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const COOKIE: &str = "__Host-vsess-ui";

/// A signed-in page: its cookie (as the browser sends it back) and CSRF token.
struct Page {
    cookie: String,
    csrf: String,
    me: Value,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Kit {
    async fn ui(
        &self,
        method: Method,
        path: &str,
        page: Option<&Page>,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, self.url(path));
        if let Some(p) = page {
            req = req.header("Cookie", &p.cookie);
        }
        if let Some(c) = csrf {
            req = req.header("X-CSRF-Token", c);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn sign_in(&self, user: &str, pw: &str) -> (Page, String) {
        let a = self
            .ui(
                Method::POST,
                "/ui/api/sign-in",
                None,
                None,
                Some(json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let set: Vec<_> = a.headers.get_all("set-cookie").iter().collect();
        assert_eq!(set.len(), 1, "one Set-Cookie");
        let set = set[0].to_str().unwrap().to_owned();
        let pair = set.split(';').next().unwrap().trim().to_owned();
        let csrf = a.body["csrf"].as_str().unwrap().to_owned();
        (
            Page {
                cookie: pair,
                csrf,
                me: a.body,
            },
            set,
        )
    }

    async fn soap_session(&self, user: &str, pw: &str, agent: &str) -> String {
        let r = self
            .http
            .post(self.url("/sdk"))
            .header("User-Agent", agent)
            .body(envelope(&login_body(user, pw)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.headers()["set-cookie"].to_str().unwrap().to_owned()
    }

    /// Whether a SOAP session (its Set-Cookie) is still logged in.
    async fn soap_alive(&self, cookie: &str) -> bool {
        let body = self.call(&fetch("currentSession"), Some(cookie)).await.2;
        body.contains("<userName>")
    }

    async fn key_of(&self, cookie: &str) -> String {
        let body = self.call(&fetch("currentSession"), Some(cookie)).await.2;
        between(&body, "<key>", "</key>").to_owned()
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

fn assert_strict_headers(h: &HeaderMap, what: &str) {
    let csp = header(h, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: CSP lacks {directive}: {csp}"
        );
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains('*'),
        "{what}: {csp}"
    );
    assert_eq!(header(h, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(h, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(h, "referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header(h, "cache-control"), "no-store", "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_local_and_strictly_headed() {
    let kit = Kit::start("").await;
    for (path, ctype) in [
        ("/ui", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let r = kit.http.get(kit.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            header(r.headers(), "content-type").starts_with(ctype),
            "{path}"
        );
        assert_strict_headers(r.headers(), path);
        let text = r.text().await.unwrap();
        if path == "/ui" {
            assert!(text.contains("<script src=\"/ui/app.js\""), "{text}");
            assert!(text.contains("href=\"/ui/app.css\""));
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("<script>"), "no inline script");
            assert!(!text.contains("<style"), "no inline style");
        }
    }
    // Errors under /ui carry the same headers: unknown paths, API calls without a cookie,
    // and wrong methods.
    for (method, path, status) in [
        (Method::GET, "/ui/nope", StatusCode::NOT_FOUND),
        (Method::GET, "/ui/api/sessions", StatusCode::UNAUTHORIZED),
        (Method::GET, "/ui/api/message", StatusCode::UNAUTHORIZED),
        (Method::DELETE, "/ui/api/me", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let a = kit.ui(method, path, None, None, None).await;
        assert_eq!(a.status, status, "{path}");
        assert_strict_headers(&a.headers, path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_secure_httponly_strict_cookie() {
    let kit = Kit::start("").await;
    // Wrong password: 401, and no cookie.
    let a = kit
        .ui(
            Method::POST,
            "/ui/api/sign-in",
            None,
            None,
            Some(json!({"username": "reader@vsphere.local", "password": "nope"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.get("set-cookie").is_none());
    assert!(!a.body["error"].as_str().unwrap().is_empty());
    // A cross-site form (not JSON) or a browser's own word that the request is cross-site:
    // no sign-in (login CSRF).
    let r = kit
        .http
        .post(kit.url("/ui/api/sign-in"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("username=reader%40vsphere.local&password=reader-pw")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.headers().get("set-cookie").is_none());
    let r = kit
        .http
        .post(kit.url("/ui/api/sign-in"))
        .header("Content-Type", "application/json")
        .header("Sec-Fetch-Site", "cross-site")
        .body(json!({"username": "reader@vsphere.local", "password": "reader-pw"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());
    // The right password.
    let (page, set) = kit.sign_in("VSPHERE.LOCAL\\reader", "reader-pw").await;
    assert!(set.starts_with(&format!("{COOKIE}=vst-")), "{set}");
    let attrs: Vec<String> = set
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} in {set}");
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{set}");
    assert_eq!(page.me["user"], "VSPHERE.LOCAL\\reader");
    assert_eq!(page.me["admin"], false);
    assert_eq!(page.csrf.len(), 64);
    assert!(
        !set.contains(&page.csrf),
        "the CSRF token is not the cookie"
    );
    // The cookie signs the page in; without it, nothing.
    let a = kit
        .ui(Method::GET, "/ui/api/me", Some(&page), None, None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["csrf"], page.csrf.as_str());
    assert_eq!(a.body["role"], "ReadOnly");
    assert_eq!(a.body["signedIn"], true);
    let forged = Page {
        cookie: format!("{COOKIE}=vst-0000"),
        csrf: String::new(),
        me: Value::Null,
    };
    for p in [Some(&forged), None] {
        let a = kit.ui(Method::GET, "/ui/api/me", p, None, None).await;
        assert_eq!(a.status, StatusCode::OK, "an answer, not an error");
        assert_eq!(a.body, json!({"signedIn": false}));
        let a = kit.ui(Method::GET, "/ui/api/sessions", p, None, None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    // Signing in again from the same browser ends the previous sign-in.
    let again = kit
        .http
        .post(kit.url("/ui/api/sign-in"))
        .header("Cookie", &page.cookie)
        .header("Content-Type", "application/json")
        .body(json!({"username": "reader@vsphere.local", "password": "reader-pw"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let a = kit
        .ui(Method::GET, "/ui/api/me", Some(&page), None, None)
        .await;
    assert_eq!(a.body["signedIn"], false, "the old cookie is revoked");
    let (page, _) = kit.sign_in("reader@vsphere.local", "reader-pw").await;
    // The page's session is not a vim session: it is not in the session list.
    let a = kit
        .ui(Method::GET, "/ui/api/sessions", Some(&page), None, None)
        .await;
    assert_eq!(a.body["count"], 0, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_is_enforced_on_every_state_changing_request() {
    let kit = Kit::start("").await;
    let soap = kit
        .soap_session("reader@vsphere.local", "reader-pw", "pyvmomi-like")
        .await;
    let key = kit.key_of(&soap).await;
    let (page, _) = kit.sign_in("reader@vsphere.local", "reader-pw").await;
    let (admin, _) = kit.sign_in("admin@vsphere.local", "admin-pw").await;
    let end = format!("/ui/api/sessions/{key}");
    let wrong = "0".repeat(64);
    let short = &page.csrf[..63];
    // Missing, wrong, truncated, or another sign-in's token: 403, and nothing happens.
    for (what, csrf) in [
        ("missing", None),
        ("wrong", Some(wrong.as_str())),
        ("truncated", Some(short)),
        ("another sign-in's", Some(admin.csrf.as_str())),
    ] {
        let a = kit.ui(Method::DELETE, &end, Some(&page), csrf, None).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
        assert!(kit.soap_alive(&soap).await, "{what}: the session survives");
    }
    // A cross-site request with the right token is refused too.
    let r = kit
        .http
        .delete(kit.url(&end))
        .header("Cookie", &page.cookie)
        .header("X-CSRF-Token", &page.csrf)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(kit.soap_alive(&soap).await);
    // The message and sign-out need it as well.
    let a = kit
        .ui(
            Method::PUT,
            "/ui/api/message",
            Some(&admin),
            None,
            Some(json!({"message": "csrf"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = kit
        .ui(
            Method::PUT,
            "/ui/api/message",
            Some(&admin),
            Some(&wrong),
            Some(json!({"message": "csrf"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = kit
        .ui(Method::GET, "/ui/api/message", Some(&admin), None, None)
        .await;
    assert_eq!(a.body["message"], "", "unchanged");
    let a = kit
        .ui(Method::POST, "/ui/api/sign-out", Some(&page), None, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = kit
        .ui(Method::GET, "/ui/api/me", Some(&page), None, None)
        .await;
    assert_eq!(a.body["signedIn"], true, "still signed in");
    // The right token ends the session everywhere.
    let a = kit
        .ui(Method::DELETE, &end, Some(&page), Some(&page.csrf), None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert!(!kit.soap_alive(&soap).await, "ended");
    let a = kit
        .ui(Method::DELETE, &end, Some(&page), Some(&page.csrf), None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_only_their_own_sessions_and_cannot_set_the_message() {
    let kit = Kit::start("").await;
    let r1 = kit
        .soap_session("reader@vsphere.local", "reader-pw", "pyvmomi-like/1")
        .await;
    let r2 = kit
        .soap_session("reader@vsphere.local", "reader-pw", "<b>govc</b>")
        .await;
    let a1 = kit
        .soap_session("admin@vsphere.local", "admin-pw", "admin-tool")
        .await;
    // (A SOAP call records its User-Agent, so the readers' keys come from the list.)
    let admin_key = kit.key_of(&a1).await;
    let (page, _) = kit.sign_in("reader@vsphere.local", "reader-pw").await;
    let a = kit
        .ui(Method::GET, "/ui/api/sessions", Some(&page), None, None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["scope"], "mine");
    let rows = a.body["sessions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", a.body);
    assert!(rows.iter().all(|r| r["user"] == "VSPHERE.LOCAL\\reader"));
    assert!(rows.iter().all(|r| r["key"] != admin_key.as_str()));
    let agents: Vec<&str> = rows
        .iter()
        .map(|r| r["userAgent"].as_str().unwrap())
        .collect();
    assert_eq!(
        agents,
        ["pyvmomi-like/1", "<b>govc</b>"],
        "oldest first, raw text"
    );
    let r1_key = rows[0]["key"].as_str().unwrap().to_owned();
    for r in rows {
        assert_eq!(r["ip"], "127.0.0.1");
        assert!(r["loginTime"].as_str().unwrap().ends_with(" UTC"));
        assert!(r["idleSeconds"].as_i64().unwrap() >= 0);
    }
    // Everyone's sessions, another user's session, the message: not for readers.
    let a = kit
        .ui(
            Method::GET,
            "/ui/api/sessions?scope=all",
            Some(&page),
            None,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = kit
        .ui(
            Method::DELETE,
            &format!("/ui/api/sessions/{admin_key}"),
            Some(&page),
            Some(&page.csrf),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "looks like a missing key");
    assert!(kit.soap_alive(&a1).await);
    let a = kit
        .ui(Method::GET, "/ui/api/message", Some(&page), None, None)
        .await;
    assert_eq!(
        (a.status, a.body["canSetMessage"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let a = kit
        .ui(
            Method::PUT,
            "/ui/api/message",
            Some(&page),
            Some(&page.csrf),
            Some(json!({"message": "hijacked"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body["error"]
        .as_str()
        .unwrap()
        .contains("Sessions.GlobalMessage"));
    let body = kit.call(&fetch("message"), Some(&a1)).await.2;
    assert!(!body.contains("hijacked"), "{body}");
    // Their own sessions they may end.
    let a = kit
        .ui(
            Method::DELETE,
            &format!("/ui/api/sessions/{r1_key}"),
            Some(&page),
            Some(&page.csrf),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(!kit.soap_alive(&r1).await);
    assert!(kit.soap_alive(&r2).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_everyone_and_set_the_message() {
    let kit = Kit::start("").await;
    let r1 = kit
        .soap_session("reader@vsphere.local", "reader-pw", "reader-tool")
        .await;
    let a1 = kit
        .soap_session("admin@vsphere.local", "admin-pw", "admin-tool")
        .await;
    let (page, _) = kit.sign_in("admin@vsphere.local", "admin-pw").await;
    assert_eq!(page.me["admin"], true);
    assert_eq!(page.me["canSetMessage"], true);
    let a = kit
        .ui(Method::GET, "/ui/api/sessions", Some(&page), None, None)
        .await;
    assert_eq!(a.body["count"], 1, "'mine' is the admin's own: {}", a.body);
    let a = kit
        .ui(
            Method::GET,
            "/ui/api/sessions?scope=all",
            Some(&page),
            None,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["scope"], "all");
    let users: Vec<&str> = a.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["VSPHERE.LOCAL\\reader", "VSPHERE.LOCAL\\admin"]);
    let a = kit
        .ui(
            Method::GET,
            "/ui/api/sessions?scope=bogus",
            Some(&page),
            None,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // The message: set here, seen by SOAP clients and by readers' pages.
    let text = "Maintenance tonight <18:00> & \"after\"";
    let a = kit
        .ui(
            Method::PUT,
            "/ui/api/message",
            Some(&page),
            Some(&page.csrf),
            Some(json!({ "message": text })),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let body = kit.call(&fetch("message"), Some(&r1)).await.2;
    assert!(body.contains("Maintenance tonight &lt;18:00&gt;"), "{body}");
    let (reader, _) = kit.sign_in("reader@vsphere.local", "reader-pw").await;
    let a = kit
        .ui(Method::GET, "/ui/api/message", Some(&reader), None, None)
        .await;
    assert_eq!(a.body["message"], text);
    let a = kit
        .ui(
            Method::PUT,
            "/ui/api/message",
            Some(&page),
            Some(&page.csrf),
            Some(json!({ "message": "x".repeat(64 * 1024 + 1) })),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "too long");
    let r = kit
        .http
        .put(kit.url("/ui/api/message"))
        .header("Cookie", &page.cookie)
        .header("X-CSRF-Token", &page.csrf)
        .body("message=plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Ending another user's session.
    let key = kit.key_of(&r1).await;
    let a = kit
        .ui(
            Method::DELETE,
            &format!("/ui/api/sessions/{key}"),
            Some(&page),
            Some(&page.csrf),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(!kit.soap_alive(&r1).await);
    assert!(kit.soap_alive(&a1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_revokes_the_page_session() {
    let kit = Kit::start("").await;
    let (page, set) = kit.sign_in("reader@vsphere.local", "reader-pw").await;
    let token = set
        .split(';')
        .next()
        .unwrap()
        .trim()
        .strip_prefix(&format!("{COOKIE}="))
        .unwrap()
        .to_owned();
    let a = kit
        .ui(
            Method::POST,
            "/ui/api/sign-out",
            Some(&page),
            Some(&page.csrf),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let cleared = header(&a.headers, "set-cookie");
    assert!(cleared.starts_with(&format!("{COOKIE}=;")), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie no longer works, here or as a bearer token on /v2.
    let a = kit
        .ui(Method::GET, "/ui/api/me", Some(&page), None, None)
        .await;
    assert_eq!(a.body["signedIn"], false);
    let a = kit
        .ui(Method::GET, "/ui/api/sessions", Some(&page), None, None)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let r = kit
        .http
        .get(kit.url("/v2/session"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let a = kit
        .ui(
            Method::POST,
            "/ui/api/sign-out",
            Some(&page),
            Some(&page.csrf),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "already signed out");
}

/// A user demoted to NoAccess loses the page, but can still sign out of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_demoted_to_no_access_can_still_sign_out() {
    let kit = Kit::start("").await;
    let (page, _) = kit.sign_in("reader@vsphere.local", "reader-pw").await;
    vsess_store::UserFile::open(kit.dir.path())
        .unwrap()
        .modify(|u| {
            u.get_mut("reader@vsphere.local").unwrap().role = vsess_core::Role::NoAccess;
            Ok(())
        })
        .unwrap();
    let a = kit
        .ui(Method::GET, "/ui/api/sessions", Some(&page), None, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Without the CSRF token it is still refused.
    let a = kit
        .ui(Method::POST, "/ui/api/sign-out", Some(&page), None, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = kit
        .ui(
            Method::POST,
            "/ui/api/sign-out",
            Some(&page),
            Some(&page.csrf),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = kit
        .ui(Method::GET, "/ui/api/me", Some(&page), None, None)
        .await;
    assert_eq!(a.body["signedIn"], false);
}
