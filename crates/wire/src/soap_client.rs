//! The client side of vim25 SOAP: request envelopes and response parsing, for the SDK.
use crate::xml::{self, escape_into, Element};
use chrono::{DateTime, Utc};
use vsess_core::UserSession;

/// One argument of a SOAP request.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Str(&'a str),
    Strs(&'a [String]),
    /// Pre-encoded XML children (for data objects).
    Xml(String),
    /// A managed object reference.
    Ref(&'a str, &'a str),
    /// A data object of a given `xsi:type`, as pre-encoded XML children.
    Typed(&'a str, String),
}

/// A complete request envelope for `method` on `this`.
pub fn request(
    method: &str,
    this_type: &str,
    this_value: &str,
    args: &[(&str, Arg<'_>)],
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><");
    out.push_str(method);
    out.push_str(" xmlns=\"urn:vim25\"><_this type=\"");
    escape_into(&mut out, this_type);
    out.push_str("\">");
    escape_into(&mut out, this_value);
    out.push_str("</_this>");
    for (name, arg) in args {
        let one = |out: &mut String, inner: &dyn Fn(&mut String), attrs: &str| {
            out.push('<');
            out.push_str(name);
            out.push_str(attrs);
            out.push('>');
            inner(out);
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        };
        match arg {
            Arg::Str(s) => one(&mut out, &|o| escape_into(o, s), ""),
            Arg::Strs(list) => {
                for s in list.iter() {
                    one(&mut out, &|o| escape_into(o, s), "");
                }
            }
            Arg::Xml(x) => one(&mut out, &|o| o.push_str(x), ""),
            Arg::Ref(t, v) => {
                let attrs = format!(" type=\"{}\"", xml::escape(t));
                one(&mut out, &|o| escape_into(o, v), &attrs)
            }
            Arg::Typed(t, x) => {
                let attrs = format!(" xsi:type=\"{}\"", xml::escape(t));
                one(&mut out, &|o| o.push_str(x), &attrs)
            }
        }
    }
    out.push_str("</");
    out.push_str(method);
    out.push_str("></soapenv:Body></soapenv:Envelope>");
    out
}

/// A SOAP fault as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// The vim fault type (`InvalidLogin`), from the detail's `xsi:type`.
    pub kind: String,
    pub message: String,
}

/// Parses a response: the `…Response` element, or the fault.
pub fn parse_response(body: &[u8]) -> Result<Result<Element, SoapFault>, String> {
    let env = xml::parse(body).map_err(|e| e.to_string())?;
    let body = env
        .child("Body")
        .ok_or_else(|| "the response has no SOAP Body".to_owned())?;
    let first = body
        .children
        .first()
        .ok_or_else(|| "the SOAP Body is empty".to_owned())?;
    if first.name != "Fault" {
        return Ok(Ok(first.clone()));
    }
    let message = first
        .child("faultstring")
        .map(|e| e.text.trim().to_owned())
        .unwrap_or_default();
    let kind = first
        .child("detail")
        .and_then(|d| d.children.first())
        .map(|f| {
            f.attr("type")
                .map(|t| t.rsplit(':').next().unwrap_or(t).to_owned())
                .unwrap_or_else(|| f.name.trim_end_matches("Fault").to_owned())
        })
        .unwrap_or_else(|| "RuntimeFault".to_owned());
    Ok(Err(SoapFault { kind, message }))
}

fn time(el: &Element, name: &str) -> Option<DateTime<Utc>> {
    el.child(name)
        .and_then(|e| DateTime::parse_from_rfc3339(e.text.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn text(el: &Element, name: &str) -> String {
    el.child(name).map(|e| e.text.clone()).unwrap_or_default()
}

/// A `UserSession` from its element (`returnval`, `val`, `UserSession`).
pub fn user_session(el: &Element) -> Option<UserSession> {
    Some(UserSession {
        key: el.child("key")?.text.clone(),
        user_name: text(el, "userName"),
        full_name: text(el, "fullName"),
        login_time: time(el, "loginTime")?,
        last_active_time: time(el, "lastActiveTime").or_else(|| time(el, "loginTime"))?,
        locale: text(el, "locale"),
        message_locale: text(el, "messageLocale"),
        extension_session: text(el, "extensionSession") == "true",
        ip_address: text(el, "ipAddress"),
        user_agent: text(el, "userAgent"),
        call_count: text(el, "callCount").parse().unwrap_or(0),
    })
}

/// The versions a `vimServiceVersions.xml` offers, newest first.
pub fn service_versions(body: &[u8]) -> Vec<String> {
    let Ok(root) = xml::parse(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ns in root.children_named("namespace") {
        if let Some(v) = ns.child("version") {
            out.push(v.text.trim().to_owned());
        }
        if let Some(p) = ns.child("priorVersions") {
            out.extend(
                p.children_named("version")
                    .map(|v| v.text.trim().to_owned()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_escape_and_repeat_arrays() {
        let keys = vec!["a".to_owned(), "b<".to_owned()];
        let r = request(
            "TerminateSession",
            "SessionManager",
            "SessionManager",
            &[("sessionId", Arg::Strs(&keys))],
        );
        assert!(r.contains("<sessionId>a</sessionId><sessionId>b&lt;</sessionId>"));
        let c = crate::soap::decode(r.as_bytes()).unwrap();
        assert_eq!(c.method(), "TerminateSession");
    }

    #[test]
    fn parses_server_faults_and_sessions() {
        let f = crate::soap::fault(&vsess_core::Fault::InvalidLogin);
        let err = parse_response(f.as_bytes()).unwrap().unwrap_err();
        assert_eq!(err.kind, "InvalidLogin");
        assert!(err.message.contains("incorrect"));
        let us = UserSession {
            key: "k".into(),
            user_name: "u".into(),
            full_name: "u".into(),
            login_time: Utc::now(),
            last_active_time: Utc::now(),
            locale: "en".into(),
            message_locale: "en".into(),
            extension_session: false,
            ip_address: "127.0.0.1".into(),
            user_agent: "t".into(),
            call_count: 3,
        };
        let body = crate::soap::outcome("Login", &crate::vim::Outcome::Session(us.clone()));
        let el = parse_response(body.as_bytes()).unwrap().unwrap();
        let got = user_session(el.child("returnval").unwrap()).unwrap();
        assert_eq!(got.key, "k");
        assert_eq!(got.call_count, 3);
        assert!(parse_response(b"<nope/>").is_err());
    }

    #[test]
    fn reads_service_versions() {
        let v = service_versions(crate::soap::vim_service_versions().as_bytes());
        assert_eq!(v[0], "8.0.3.0");
        assert!(v.contains(&"6.5".to_owned()));
    }
}
