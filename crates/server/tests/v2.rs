//! The self-service API against a real server: tokens, listing with filters, sorting and
//! paging, details, ending sessions, access rules, OPTIONS and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

impl Kit {
    async fn token(&self, user: &str, pw: &str) -> String {
        let r = self
            .http
            .post(self.url("/auth/request-token"))
            .basic_auth(user, Some(pw))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert!(v["expires"].as_str().unwrap().ends_with('Z'));
        v["token"].as_str().unwrap().to_owned()
    }

    async fn v2(&self, method: Method, path: &str, token: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let s = r.status();
        let text = r.text().await.unwrap();
        (
            s,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }

    async fn soap_login_as(&self, user: &str, pw: &str, agent: &str) -> String {
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

    /// `n` SOAP sessions of reader@vsphere.local, with user agents agent-0, agent-1, ….
    async fn reader_sessions(&self, n: usize) {
        for i in 0..n {
            self.soap_login_as("reader@vsphere.local", "reader-pw", &format!("agent-{i}"))
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_sorting_paging_and_details() {
    let kit = Kit::start("").await;
    kit.reader_sessions(5).await;
    kit.soap_login_as("admin@vsphere.local", "admin-pw", "admin-tool")
        .await;
    let t = kit.token("reader@vsphere.local", "reader-pw").await;
    let (s, v) = kit.v2(Method::GET, "/v2/session", &t).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["meta"]["count"], 5, "only the reader's own sessions: {v}");
    assert_eq!(v["meta"]["user"], "reader");
    assert!(v["meta"]["time"].as_str().unwrap().ends_with('s'));
    assert!(v["_links"]["api"].as_str().unwrap().ends_with("/v2/"));
    let first = &v["data"][0];
    assert_eq!(first["username"], "VSPHERE.LOCAL\\reader");
    let key = first["key"].as_str().unwrap().to_owned();
    assert!(first["_links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v2/session/{key}")));
    assert!(
        first.get("lastActiveTime").is_none(),
        "the reference's list items are summaries: {first}"
    );
    // expand=true (vsess's extension): the same items with every detail attribute.
    let (_, e) = kit.v2(Method::GET, "/v2/session?expand=true", &t).await;
    let e0 = &e["data"][0];
    assert_eq!(e0["key"], first["key"]);
    assert_eq!(e0["_links"], first["_links"]);
    let (_, one) = kit.v2(Method::GET, &format!("/v2/session/{key}"), &t).await;
    for field in ["domain", "ip", "loginTime", "userAgent", "username"] {
        assert_eq!(e0[field], one["data"][0][field], "{field}: {e0}");
    }
    assert!(e0["lastActiveTimeDelta"].is_string(), "{e0}");
    let (s, _) = kit.v2(Method::GET, "/v2/session?expand=maybe", &t).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Paging: 2 per page, 3 pages, next/prev links.
    let (_, p1) = kit.v2(Method::GET, "/v2/session?per_page=2", &t).await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    assert_eq!(p1["meta"]["pages"], 3);
    assert!(p1["_links"].get("prev").is_none());
    let next = p1["_links"]["next"].as_str().unwrap();
    assert!(
        next.contains("page=2") && next.contains("per_page=2"),
        "{next}"
    );
    let (_, p3) = kit
        .v2(Method::GET, "/v2/session?per_page=2&page=3", &t)
        .await;
    assert_eq!(p3["data"].as_array().unwrap().len(), 1);
    assert!(p3["_links"].get("next").is_none());
    assert!(p3["_links"]["prev"].as_str().unwrap().contains("page=2"));
    // Filters and sorting.
    let (_, f) = kit
        .v2(Method::GET, "/v2/session?user_agent=AGENT-3", &t)
        .await;
    assert_eq!(f["meta"]["count"], 1);
    let (_, f) = kit
        .v2(Method::GET, "/v2/session?ip=127.0.0.1&idle_gt=1h", &t)
        .await;
    assert_eq!(f["meta"]["count"], 0);
    let (_, asc) = kit.v2(Method::GET, "/v2/session?sort=loginTime", &t).await;
    let (_, desc) = kit.v2(Method::GET, "/v2/session?sort=-loginTime", &t).await;
    assert_eq!(asc["data"][0]["key"], desc["data"][4]["key"]);
    // One session's details in the reference's names and formats.
    let (s, d) = kit.v2(Method::GET, &format!("/v2/session/{key}"), &t).await;
    assert_eq!(s, StatusCode::OK);
    let d0 = &d["data"][0];
    for field in [
        "domain",
        "ip",
        "lastActiveTime",
        "lastActiveTimeDelta",
        "loginTime",
        "loginTimeDelta",
        "userAgent",
        "username",
    ] {
        assert!(d0.get(field).is_some(), "missing {field}: {d}");
    }
    assert_eq!(d0["domain"], "VSPHERE.LOCAL");
    assert_eq!(d0["ip"], "127.0.0.1");
    assert_eq!(
        d0["loginTime"].as_str().unwrap().len(),
        19,
        "YYYY-MM-DD HH:MM:SS"
    );
    assert!(d0["loginTimeDelta"].as_str().unwrap().starts_with("0:00:"));
    assert!(d["_links"]["session"]
        .as_str()
        .unwrap()
        .ends_with("/v2/session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_errors_and_ending_sessions() {
    let kit = Kit::start("").await;
    let reader_cookie = kit
        .soap_login_as("reader@vsphere.local", "reader-pw", "r")
        .await;
    let admin_cookie = kit
        .soap_login_as("admin@vsphere.local", "admin-pw", "a")
        .await;
    let rt = kit.token("reader@vsphere.local", "reader-pw").await;
    let at = kit.token("admin@vsphere.local", "admin-pw").await;
    let (_, admin_list) = kit.v2(Method::GET, "/v2/session", &at).await;
    let admin_key = admin_list["data"][0]["key"].as_str().unwrap().to_owned();
    // Another user's key is a plain 404, with the same body as a missing key.
    let (s1, b1) = kit
        .v2(Method::GET, &format!("/v2/session/{admin_key}"), &rt)
        .await;
    let (s2, _) = kit
        .v2(
            Method::GET,
            "/v2/session/52000000-0000-0000-0000-000000000000",
            &rt,
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert!(
        !b1.to_string().contains("admin"),
        "no hint that it exists: {b1}"
    );
    let (s, _) = kit
        .v2(Method::DELETE, &format!("/v2/session/{admin_key}"), &rt)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = kit.v2(Method::GET, "/v2/session?all=true", &rt).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // `all` without the privilege is refused alike on one session, also on one's own.
    for key in [admin_key.as_str(), "nonexistent"] {
        for method in [Method::GET, Method::DELETE] {
            let path = format!("/v2/session/{key}?all=true");
            let (s, _) = kit.v2(method.clone(), &path, &rt).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}");
        }
    }
    let (s, all) = kit.v2(Method::GET, "/v2/session?all=true", &at).await;
    assert_eq!(
        (s, all["meta"]["count"].as_u64()),
        (StatusCode::OK, Some(2))
    );
    // Bad tokens and parameters.
    for bad in ["", "garbage", "vst-0000", &format!("{}x", rt)] {
        let (s, v) = kit.v2(Method::GET, "/v2/session", bad).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "token {bad:?}");
        assert!(v["message"].as_str().unwrap().contains("request-token"));
    }
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = kit.http.get(kit.url("/v2/session"));
        let r = r.header("Authorization", format!("{scheme} {rt}"));
        let r = r.send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "the scheme in any case: {scheme}"
        );
    }
    let r = kit.http.get(kit.url("/v2/session")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let sid = between(&reader_cookie, "\"", "\"").to_owned();
    let (s, _) = kit.v2(Method::GET, "/v2/session", &sid).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a session id is not a token");
    let soap = kit
        .call(
            &fetch("currentSession"),
            Some(&format!("vmware_soap_session=\"{rt}\"")),
        )
        .await
        .2;
    assert!(!soap.contains("<userName>"), "a token is not a session id");
    for bad in [
        "idle_gt=soon",
        "idle_gt=9223372036854775807",
        "idle_gt=9999999999999w",
        "per_page=0",
        "sort=name",
        "bogus=1",
    ] {
        for method in [Method::GET, Method::DELETE] {
            let (s, v) = kit
                .v2(method.clone(), &format!("/v2/session?{bad}"), &rt)
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {bad}");
            assert!(!v["message"].as_str().unwrap().is_empty());
        }
    }
    let (s, _) = kit.v2(Method::DELETE, "/v2/session", &rt).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "DELETE needs idle_gt");
    // Ending: one by key, then all idle ones; the admin's session is untouched.
    kit.soap_login_as("reader@vsphere.local", "reader-pw", "r2")
        .await;
    let (_, mine) = kit.v2(Method::GET, "/v2/session", &rt).await;
    let k = mine["data"][0]["key"].as_str().unwrap().to_owned();
    let (s, _) = kit
        .v2(Method::DELETE, &format!("/v2/session/{k}"), &rt)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = kit.v2(Method::DELETE, "/v2/session?idle_gt=0s", &rt).await;
    assert_eq!((s, v["data"]["ended"].as_u64()), (StatusCode::OK, Some(1)));
    let (_, mine) = kit.v2(Method::GET, "/v2/session", &rt).await;
    assert_eq!(mine["meta"]["count"], 0);
    let soap = kit
        .call(&fetch("currentSession"), Some(&reader_cookie))
        .await
        .2;
    assert!(
        !soap.contains("<userName>"),
        "ended sessions are dead on SOAP too"
    );
    let soap = kit
        .call(&fetch("currentSession"), Some(&admin_cookie))
        .await
        .2;
    assert!(soap.contains("<userName>admin@vsphere.local</userName>"));
    // Revocation.
    let r = kit
        .http
        .delete(kit.url("/auth/request-token"))
        .bearer_auth(&rt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (s, v) = kit.v2(Method::GET, "/v2/session", &rt).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["message"].as_str().unwrap().contains("revoked"), "{v}");
    // A refused token says so (RFC 6750), so that a client knows to get a new one; a
    // refused session id says that; a refused password asks for Basic again.
    let challenge =
        |r: &reqwest::Response| r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let r = kit.http.get(kit.url("/v2/session")).bearer_auth(&rt);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&r).contains("error=\"invalid_token\""),
        "{}",
        challenge(&r)
    );
    let r = kit.http.get(kit.url("/v2/session"));
    let r = r
        .header("vmware-api-session-id", "ended")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!challenge(&r).contains("invalid_token"));
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("vmware-api-session-id"),
        "{v}"
    );
    let r = kit
        .http
        .post(kit.url("/auth/request-token"))
        .basic_auth("reader@vsphere.local", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).starts_with("Basic "), "{}", challenge(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_and_openapi_describe_the_api() {
    let kit = Kit::start("").await;
    let r = kit
        .http
        .request(Method::OPTIONS, kit.url("/v2/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["allow"], "GET, DELETE, OPTIONS");
    let v: Value = r.json().await.unwrap();
    assert!(v["methods"]["GET"]["parameters"]["idle_gt"].is_string());
    let r = kit
        .http
        .request(Method::OPTIONS, kit.url("/v2/session/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = kit
        .http
        .get(kit.url("/v2/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    for p in ["/auth/request-token", "/v2/session", "/v2/session/{key}"] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
    // What the server enforces, the document says: DELETE /v2/session needs idle_gt, and
    // takes the list's filters; a session id authorises as well as a token.
    let delete = &doc["paths"]["/v2/session"]["delete"];
    let param = |name: &str| {
        delete["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("DELETE /v2/session lacks {name}"))
    };
    assert_eq!(param("idle_gt")["required"], true);
    for name in ["user_agent", "ip", "all", "exclude"] {
        assert_eq!(param(name)["required"], false, "{name}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["session"]["name"],
        "vmware-api-session-id"
    );
    assert!(delete["security"].to_string().contains("session"));
    assert!(doc["paths"]["/v2/session/{key}"]["get"]["responses"]["403"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_id_also_authorizes_its_own_user() {
    let kit = Kit::start("").await;
    let cookie = kit
        .soap_login_as("reader@vsphere.local", "reader-pw", "pyvmomi-like")
        .await;
    kit.soap_login_as("admin@vsphere.local", "admin-pw", "a")
        .await;
    let sid = between(&cookie, "\"", "\"").to_owned();
    let r = kit
        .http
        .get(kit.url("/v2/session"))
        .header("vmware-api-session-id", &sid)
        .header("User-Agent", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["meta"]["count"], 1);
    let key = v["data"][0]["key"].as_str().unwrap().to_owned();
    let r = kit
        .http
        .get(kit.url(&format!("/v2/session/{key}")))
        .header("vmware-api-session-id", &sid)
        .send()
        .await
        .unwrap();
    let d: Value = r.json().await.unwrap();
    assert_eq!(
        d["data"][0]["userAgent"], "pyvmomi-like",
        "reading /v2 does not rewrite the session's client"
    );
    // Ending idle sessions never ends the one the request came with, even at 0s.
    kit.soap_login_as("reader@vsphere.local", "reader-pw", "second")
        .await;
    let r = kit
        .http
        .delete(kit.url("/v2/session?idle_gt=0s"))
        .header("vmware-api-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["ended"], 1, "{v}");
    assert_ne!(v["data"]["keys"][0], key.as_str(), "{v}");
    let r = kit
        .http
        .get(kit.url("/v2/session"))
        .header("vmware-api-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the caller's session lives on");
    let r = kit
        .http
        .get(kit.url("/v2/session"))
        .header("vmware-api-session-id", "deadbeef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_over_http2_name_the_requested_authority() {
    let kit = Kit::start("").await;
    kit.reader_sessions(2).await;
    let t = kit.token("reader@vsphere.local", "reader-pw").await;
    let base = kit.url("");
    for (version, client) in [
        (reqwest::Version::HTTP_11, kit.http.clone()),
        (reqwest::Version::HTTP_2, http2_client()),
    ] {
        let r = client
            .get(kit.url("/v2/session?per_page=1"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), version);
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        let links = &v["_links"];
        assert_eq!(links["api"], format!("{base}/v2/"), "{version:?}: {v}");
        assert_eq!(links["self"], format!("{base}/v2/session?per_page=1"));
        assert_eq!(
            links["next"],
            format!("{base}/v2/session?per_page=1&page=2")
        );
        assert!(
            v["data"][0]["_links"]["self"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{base}/v2/session/")),
            "{v}"
        );
    }
}
