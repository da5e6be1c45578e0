//! Where each protocol carries the session id, and reading request bodies with a limit.
//!
//! One session id works everywhere, so every endpoint accepts every carrier; they differ
//! only in which they look at first:
//! - SOAP: the `vmware_soap_session` cookie, then the `vmware-api-session-id` header.
//! - VI/JSON, `/api`, JSON-RPC: the `vmware-api-session-id` header, then the cookies.
//! - Legacy `/rest`: the `vmware-api-session-id` cookie, then the header (as vAPI's REST
//!   layer does).
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use vsess_wire::soap;

pub const API_SESSION_HEADER: &str = "vmware-api-session-id";
pub const API_SESSION_COOKIE: &str = "vmware-api-session-id";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Soap,
    Api,
    LegacyRest,
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

fn soap_cookie(headers: &HeaderMap) -> Option<&str> {
    cookies(headers).find_map(soap::session_cookie)
}

fn api_cookie(headers: &HeaderMap) -> Option<&str> {
    cookies(headers).find_map(|c| soap::cookie(c, API_SESSION_COOKIE))
}

fn api_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(API_SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The session id the request carries, if any.
pub fn credential(headers: &HeaderMap, carrier: Carrier) -> Option<&str> {
    match carrier {
        Carrier::Soap => soap_cookie(headers).or_else(|| api_header(headers)),
        Carrier::Api => api_header(headers)
            .or_else(|| soap_cookie(headers))
            .or_else(|| api_cookie(headers)),
        Carrier::LegacyRest => api_cookie(headers)
            .or_else(|| api_header(headers))
            .or_else(|| soap_cookie(headers)),
    }
}

/// The request body, or `None` when it is larger than `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Option<Bytes> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return None;
    }
    axum::body::to_bytes(body, limit).await.ok()
}

/// Decodes a query component: `+` is a space, `%XX` a byte; malformed escapes stay as is.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
