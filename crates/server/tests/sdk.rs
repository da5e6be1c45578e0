//! Integration tests: a real server on 127.0.0.1:0 over TLS, driven with raw SOAP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reqwest::StatusCode;
use vsess_core::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_faults_and_the_server_keeps_serving() {
    let kit = Kit::start("[server]\nmax_body_bytes = 4096").await;
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"<soapenv:Envelope><soapenv:Body><Login>".to_vec(), "InvalidRequest", "malformed"),
        (b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>".to_vec(), "InvalidRequest", "DTD"),
        (envelope("<Login><_this type=\"SessionManager\">SessionManager</_this><userName>\u{1}</userName></Login>").replace('\u{1}', "\u{FFFD}").into_bytes().into_iter().chain(*b"\xff").collect(), "InvalidRequest", "UTF-8"),
        (envelope("<Frobnicate xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this></Frobnicate>").into_bytes(), "MethodNotFound", "Frobnicate"),
        (envelope("<Logout xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager2</_this></Logout>").into_bytes(), "ManagedObjectNotFound", "SessionManager2"),
        (envelope("<Login xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><userName>u</userName></Login>").into_bytes(), "InvalidRequest", "password"),
        (envelope("<Login xmlns=\"urn:vim25\"><userName>u</userName></Login>").into_bytes(), "InvalidRequest", "_this"),
        (b"".to_vec(), "InvalidRequest", "root element"),
    ];
    for (body, fault, needle) in cases {
        let (s, _, text) = kit.post_raw(body, None).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
        assert_eq!(fault_type(&text), fault, "{text}");
        assert!(
            text.contains(needle),
            "fault should mention {needle}: {text}"
        );
    }
    let big = envelope(&format!("<Login>{}</Login>", "x".repeat(8192)));
    let (s, _, _) = kit.post_raw(big.into_bytes(), None).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, _, text) = kit.call(RSC, None).await;
    assert_eq!(s, StatusCode::OK, "still serving: {text}");
    assert!(
        text.contains("<sessionManager type=\"SessionManager\">SessionManager</sessionManager>")
    );
}

/// `POST /sdk` skips the router (`app::SdkFirst`); `/sdk/` takes it to the same handler.
/// Both must answer alike, and the router must still answer the rest of `/sdk`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_answers_as_the_router_does() {
    let kit = Kit::start("[server]\nmax_body_bytes = 4096").await;
    let cookie = kit.login("admin@vsphere.local", "admin-pw").await;
    let frob = "<Frobnicate xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this></Frobnicate>";
    let big = format!("<Login>{}</Login>", "x".repeat(8192));
    let cases: Vec<(String, Option<&str>)> = vec![
        (RSC.to_owned(), None),
        (fetch("currentSession"), None),
        (fetch("sessionList"), None),
        (fetch("currentSession"), Some(&cookie)),
        (frob.to_owned(), Some(&cookie)),
        (login_body("admin@vsphere.local", "wrong"), None),
        (big, None),
    ];
    let keep = |h: &reqwest::header::HeaderMap| {
        let mut v: Vec<(String, String)> = h
            .iter()
            .filter(|(n, _)| *n != "date")
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        v.sort();
        v
    };
    for (inner, c) in cases {
        let body = envelope(&inner).into_bytes();
        let (s1, h1, b1) = kit.post_to("/sdk", body.clone(), c).await;
        let (s2, h2, b2) = kit.post_to("/sdk/", body, c).await;
        assert_eq!((s1, keep(&h1)), (s2, keep(&h2)), "{inner:.60}");
        // A session's answer differs only in its call count and last active time.
        let strip = |b: &str| {
            b.split("<lastActiveTime>")
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(strip(&b1), strip(&b2), "{inner:.60}");
    }
    // The session seen through /sdk carries the caller's address (ConnectInfo).
    let (_, _, body) = kit.call(&fetch("currentSession"), Some(&cookie)).await;
    assert_eq!(between(&body, "<ipAddress>", "</ipAddress>"), "127.0.0.1");
    // Any other method on /sdk is the router's 405, with the methods it takes.
    let r = kit.http.get(kit.url("/sdk")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    // And over HTTP/2.
    let r = http2_client()
        .post(kit.url("/sdk"))
        .header("Content-Type", "text/xml; charset=UTF-8")
        .body(envelope(RSC))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("<sessionManager"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cookie_and_property_privileges() {
    let kit = Kit::start("").await;
    let set_cookie = kit.login("VSPHERE.LOCAL\\admin", "admin-pw").await;
    assert!(set_cookie.starts_with("vmware_soap_session=\""));
    assert!(
        set_cookie.ends_with("\"; Path=/; HttpOnly; Secure;"),
        "{set_cookie}"
    );
    let id = between(&set_cookie, "\"", "\"");
    assert!(id.len() >= 32);
    // pyVmomi sends the whole Set-Cookie value back.
    let (s, _, body) = kit.call(&fetch("currentSession"), Some(&set_cookie)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("<returnval xsi:type=\"UserSession\">"));
    let key = between(&body, "<key>", "</key>");
    assert_ne!(key, id, "the public key is not the secret id");
    assert!(body.contains("<userName>admin@vsphere.local</userName>"));
    assert!(body.contains("<userAgent>vsess-it</userAgent>"));
    // Anonymous currentSession is empty, not a fault; a stale cookie is anonymous.
    for cookie in [None, Some("vmware_soap_session=\"deadbeef\"")] {
        let (s, _, body) = kit.call(&fetch("currentSession"), cookie).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            body.contains("<FetchResponse xmlns=\"urn:vim25\"></FetchResponse>"),
            "{body}"
        );
    }
    let (s, _, body) = kit.call(&fetch("sessionList"), None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fault_type(&body), "NotAuthenticated");
    assert!(body.contains("<privilegeId>Sessions.TerminateSession</privilegeId>"));
    let reader = kit.login("reader@vsphere.local", "reader-pw").await;
    let (_, _, body) = kit.call(&fetch("sessionList"), Some(&reader)).await;
    assert_eq!(fault_type(&body), "NoPermission");
    let (_, _, body) = kit.call(&fetch("sessionList"), Some(&set_cookie)).await;
    assert!(body.contains("xsi:type=\"ArrayOfUserSession\""));
    assert_eq!(
        body.matches("<UserSession xsi:type=\"UserSession\">")
            .count(),
        2
    );
    // Login works with a stale cookie present, and sets a new one.
    let (s, h, _) = kit
        .call(
            &login_body("admin@vsphere.local", "admin-pw"),
            Some("vmware_soap_session=\"stale\""),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get_all("set-cookie").iter().count(), 1);
    let (_, _, body) = kit.call(&fetch("sessionList"), Some(&set_cookie)).await;
    let live = body
        .matches("<UserSession xsi:type=\"UserSession\">")
        .count();
    // A Login on a live session is refused (vcsim's InvalidLogin), also with the right
    // password and as another user: it would orphan the first session. Nothing is created.
    for (user, pw) in [
        ("admin@vsphere.local", "admin-pw"),
        ("reader@vsphere.local", "reader-pw"),
    ] {
        let (s, h, body) = kit.call(&login_body(user, pw), Some(&set_cookie)).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(fault_type(&body), "InvalidLogin", "{body}");
        assert!(
            body.contains("already logged in: call Logout first"),
            "{body}"
        );
        assert_eq!(h.get_all("set-cookie").iter().count(), 0);
    }
    let (_, _, body) = kit.call(&fetch("sessionList"), Some(&set_cookie)).await;
    assert_eq!(
        body.matches("<UserSession xsi:type=\"UserSession\">")
            .count(),
        live
    );
    let (_, _, body) = kit.call(&fetch("currentSession"), Some(&set_cookie)).await;
    assert!(body.contains(&format!("<key>{key}</key>")), "{body}");
    // After Logout the same cookie is stale, and Login works with it again.
    let logout = "<Logout xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this></Logout>";
    let (s, _, _) = kit.call(logout, Some(&set_cookie)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, h, body) = kit
        .call(
            &login_body("admin@vsphere.local", "admin-pw"),
            Some(&set_cookie),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(h.get_all("set-cookie").iter().count(), 1);
    let (_, _, body) = kit
        .call(&login_body("admin@vsphere.local", "wrong"), None)
        .await;
    assert_eq!(fault_type(&body), "InvalidLogin");
    assert!(body.contains("<detail><InvalidLoginFault xmlns=\"urn:vim25\" xsi:type=\"InvalidLogin\"></InvalidLoginFault></detail>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieve_properties_as_govc_sends_it() {
    let kit = Kit::start("").await;
    let c = kit.login("admin@vsphere.local", "admin-pw").await;
    let rp = "<RetrieveProperties xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><specSet><propSet><type>SessionManager</type><pathSet>currentSession</pathSet><pathSet>sessionList</pathSet></propSet><objectSet><obj type=\"SessionManager\">SessionManager</obj></objectSet></specSet></RetrieveProperties>";
    let (s, _, body) = kit.call(rp, Some(&c)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("<propSet><name>currentSession</name><val xsi:type=\"UserSession\">"));
    assert!(body.contains("<propSet><name>sessionList</name><val xsi:type=\"ArrayOfUserSession\">"));
    let rpx = rp
        .replace("RetrieveProperties ", "RetrievePropertiesEx ")
        .replace(
            "</RetrieveProperties>",
            "<options></options></RetrievePropertiesEx>",
        );
    let (s, _, body) = kit.call(&rpx, Some(&c)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval><objects><obj type=\"SessionManager\">SessionManager</obj>"));
    let (_, _, body) = kit.call("<CurrentTime xmlns=\"urn:vim25\"><_this type=\"ServiceInstance\">ServiceInstance</_this></CurrentTime>", Some(&c)).await;
    assert!(body.contains("<CurrentTimeResponse xmlns=\"urn:vim25\"><returnval>20"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_never_exceed_max_session_count() {
    let kit = std::sync::Arc::new(Kit::start("config.vmacore.soap.maxSessionCount = 5").await);
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let kit = kit.clone();
        tasks.push(tokio::spawn(async move {
            kit.call(&login_body("admin@vsphere.local", "admin-pw"), None)
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (s, _, body) = t.await.unwrap();
        if s == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(fault_type(&body), "SystemError", "{body}");
            assert!(body.contains("maxSessionCount"), "{body}");
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(
        kit.running
            .as_ref()
            .unwrap()
            .app
            .svc
            .store()
            .list_sessions()
            .await
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_added_while_running_can_log_in_and_sessions_survive_restart() {
    let mut kit = Kit::start("").await;
    let (_, _, body) = kit
        .call(&login_body("late@vsphere.local", "late-pw"), None)
        .await;
    assert_eq!(fault_type(&body), "InvalidLogin");
    add_user(kit.dir.path(), "late@vsphere.local", Role::Admin, "late-pw");
    let cookie = kit.login("late@vsphere.local", "late-pw").await;
    let msg = "<UpdateServiceMessage xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><message>back at 5 &amp; later</message></UpdateServiceMessage>";
    let (s, _, _) = kit.call(msg, Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK);
    kit.restart().await;
    let (_, _, body) = kit.call(&fetch("currentSession"), Some(&cookie)).await;
    assert!(
        body.contains("<userName>late@vsphere.local</userName>"),
        "{body}"
    );
    let (_, _, body) = kit.call(&fetch("message"), Some(&cookie)).await;
    assert!(body.contains("back at 5 &amp; later"), "{body}");
}

/// A body that stops arriving is cut off by the request time limit, and the answer says
/// so: not 413, which would send the operator to `max_body_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_not_called_too_large() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let running = vsess_server::start(vsess_server::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        config: vsess_server::Config::parse("[server]\nrequest_timeout_seconds = 1").unwrap(),
        transport: vsess_server::Transport::PlainHttp,
    })
    .await
    .unwrap();
    let addr = running.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        // 100 bytes announced, one sent, then nothing.
        c.write_all(b"POST /sdk HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 100\r\n\r\n<")
            .unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("did not arrive whole"), "{answer}");
    assert!(!answer.contains("max_body_bytes"), "{answer}");
    running.shutdown().await.unwrap();
}
