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
