//! Hot paths of the wire codecs: SOAP envelope decoding, `UserSession` encoding (SOAP and
//! VI/JSON), session cookie parsing, and vAPI JSON-RPC decoding.
//!
//! The request bodies are verbatim from pyVmomi 9.1.1.0 and the vSphere Automation SDK
//! 9.1.1.0 (`create_vsphere_client`), as captured in the wire reference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use vsess_core::{UserSession, Value};
use vsess_wire::vim::{Outcome, VimCall};
use vsess_wire::{soap, vapi, vijson};

/// pyVmomi's `si.content.sessionManager.currentSession` (a `Fetch`), verbatim.
const PYVMOMI_FETCH_CURRENT_SESSION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\n<soapenv:Body><Fetch xmlns=\"urn:vim25\"><_this versionId=\"8.0.3.0\" type=\"SessionManager\">SessionManager</_this><prop versionId=\"8.0.3.0\">currentSession</prop></Fetch></soapenv:Body>\n</soapenv:Envelope>";

/// pyVmomi's `SmartConnect` Login, verbatim.
const PYVMOMI_LOGIN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\n<soapenv:Body><Login xmlns=\"urn:vim25\"><_this versionId=\"8.0.3.0\" type=\"SessionManager\">SessionManager</_this><userName versionId=\"8.0.3.0\">administrator@vsphere.local</userName><password versionId=\"8.0.3.0\">VMware1!</password></Login></soapenv:Body>\n</soapenv:Envelope>";

/// `create_vsphere_client`'s `com.vmware.cis.session.get`, verbatim.
const VAPI_SESSION_GET: &str = r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.session","operationId":"get","input":{"STRUCTURE":{"operation-input":{}}},"ctx":{"appCtx":{"opId":"82f2657a-183e-45f9-a1df-671333e9ba7d"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":"30c562b93f671fdaee145e46158e52d099777c47"}}},"id":"1"}"#;

/// The `Cookie` header pyVmomi sends back: the whole `Set-Cookie` value.
const PYVMOMI_COOKIE: &str =
    "vmware_soap_session=\"fa0fd524edbbb46640e7d061375d2dbd9225dbdb\"; Path=/; HttpOnly; Secure;";
/// The `Cookie` header govc (Go's cookie jar) sends: just `name=value`.
const GOVC_COOKIE: &str = "vmware_soap_session=fa0fd524edbbb46640e7d061375d2dbd9225dbdb";

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The session of the pyVmomi capture.
fn session() -> UserSession {
    UserSession {
        key: "525d7d8c-c06a-4940-8d7d-5138fe4d6683".into(),
        user_name: "administrator@vsphere.local".into(),
        full_name: "administrator@vsphere.local".into(),
        login_time: ts("2026-11-22T04:33:28.570262Z"),
        last_active_time: ts("2026-11-22T04:33:28.664780Z"),
        locale: "en".into(),
        message_locale: "en".into(),
        extension_session: false,
        ip_address: "127.0.0.1".into(),
        user_agent: "pyvmomi 9.1.1.0 OSS Python/3.11.7 (Linux; 6.18.44-fc-v669; x86_64)".into(),
        call_count: 2,
    }
}

fn decode(c: &mut Criterion) {
    // The bodies are the captured ones (their Content-Length), and decode to what the
    // benchmark claims to measure.
    assert_eq!(PYVMOMI_FETCH_CURRENT_SESSION.len(), 473);
    assert_eq!(PYVMOMI_LOGIN.len(), 543);
    assert_eq!(VAPI_SESSION_GET.len(), 346);
    assert!(matches!(
        soap::decode(PYVMOMI_FETCH_CURRENT_SESSION.as_bytes()).unwrap(),
        VimCall::Fetch { ref prop, .. } if prop == "currentSession"
    ));
    assert!(matches!(
        soap::decode(PYVMOMI_LOGIN.as_bytes()).unwrap(),
        VimCall::Login { .. }
    ));
    let inv = vapi::decode_invoke(VAPI_SESSION_GET.as_bytes()).unwrap();
    assert_eq!(
        (inv.service.as_str(), inv.operation.as_str()),
        ("com.vmware.cis.session", "get")
    );

    let mut g = c.benchmark_group("decode");
    g.bench_function("soap_fetch_current_session", |b| {
        b.iter(|| soap::decode(black_box(PYVMOMI_FETCH_CURRENT_SESSION.as_bytes())))
    });
    g.bench_function("soap_login", |b| {
        b.iter(|| soap::decode(black_box(PYVMOMI_LOGIN.as_bytes())))
    });
    g.bench_function("vapi_invoke_session_get", |b| {
        b.iter(|| vapi::decode_invoke(black_box(VAPI_SESSION_GET.as_bytes())))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let fetch = Outcome::Value(Some(Value::Session(session())));
    let login = Outcome::Session(session());
    let us = session();
    assert!(soap::outcome("Fetch", &fetch).contains("<returnval xsi:type=\"UserSession\">"));
    assert!(soap::outcome("Login", &login).contains("<LoginResponse xmlns=\"urn:vim25\">"));

    let mut g = c.benchmark_group("encode_user_session");
    g.bench_function("soap_fetch", |b| {
        b.iter(|| soap::outcome(black_box("Fetch"), black_box(&fetch)))
    });
    g.bench_function("soap_login", |b| {
        b.iter(|| soap::outcome(black_box("Login"), black_box(&login)))
    });
    g.bench_function("vijson", |b| {
        b.iter(|| vijson::user_session(black_box(&us)))
    });
    g.finish();
}

fn cookie(c: &mut Criterion) {
    let id = "fa0fd524edbbb46640e7d061375d2dbd9225dbdb";
    assert_eq!(soap::session_cookie(PYVMOMI_COOKIE), Some(id));
    assert_eq!(soap::session_cookie(GOVC_COOKIE), Some(id));

    let mut g = c.benchmark_group("session_cookie");
    g.bench_function("pyvmomi", |b| {
        b.iter(|| soap::session_cookie(black_box(PYVMOMI_COOKIE)))
    });
    g.bench_function("govc", |b| {
        b.iter(|| soap::session_cookie(black_box(GOVC_COOKIE)))
    });
    g.finish();
}

criterion_group!(benches, decode, encode, cookie);
criterion_main!(benches);
