//! The SOAP adapter: `/sdk`. Decode with `vsess_wire::soap`, call the core, encode.
use crate::app::App;
use crate::auth::{credential, read_body, Carrier};
use crate::vim;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use vsess_core::{AboutInfo, Caller, Fault, SessionId};
use vsess_wire::soap;
use vsess_wire::vim::{Outcome, VimCall};

const XML: &str = "text/xml; charset=utf-8";

fn xml(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(XML));
    crate::no_cache(h);
    r
}

thread_local! {
    /// The last `RetrieveServiceContent` answer this thread rendered, with the
    /// `AboutInfo` it was rendered from.
    static SERVICE_CONTENT: RefCell<Option<(AboutInfo, Bytes)>> = const { RefCell::new(None) };
}

/// The `RetrieveServiceContent` answer: the same bytes for every caller of a server, so
/// rendered once (per worker thread) and shared.
fn service_content(about: &AboutInfo) -> Bytes {
    SERVICE_CONTENT.with_borrow_mut(|cached| match cached {
        Some((a, body)) if a == about => body.clone(),
        _ => {
            let body = Bytes::from(soap::service_content(about));
            *cached = Some((about.clone(), body.clone()));
            body
        }
    })
}

/// The one place a `Fault` becomes an HTTP response on `/sdk`.
fn fault_response(f: &Fault) -> Response {
    xml(StatusCode::INTERNAL_SERVER_ERROR, soap::fault(f))
}

fn with_cookie(body: String, id: &SessionId, tls: bool) -> Response {
    let mut r = xml(StatusCode::OK, body);
    if let Ok(v) = HeaderValue::from_str(&soap::set_cookie(id.expose(), tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The fault for a request body over the configured limit (sent with HTTP 413).
pub fn too_large(limit: usize) -> Fault {
    Fault::InvalidRequest(format!(
        "The request body is larger than this server accepts ({limit} bytes; see server.max_body_bytes)."
    ))
}

pub async fn version_file() -> Response {
    xml(StatusCode::OK, soap::vim_service_versions())
}

pub fn caller(addr: SocketAddr, headers: &HeaderMap, session: Option<&str>) -> Caller {
    Caller {
        session: session.and_then(SessionId::parse),
        ip: addr.ip().to_canonical(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            // At most 512 characters (no more than 512 bytes has no more than that).
            .map(|ua| {
                if ua.len() <= 512 {
                    ua.to_owned()
                } else {
                    ua.chars().take(512).collect()
                }
            })
            .unwrap_or_default(),
    }
}

pub async fn sdk(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    // The request's own headers (the `HeaderMap` extractor would clone them).
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let body = match read_body(&headers, body, app.max_body).await {
        Ok(b) => b,
        Err(u) => {
            return u.response(|| {
                xml(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    soap::fault(&too_large(app.max_body)),
                )
            })
        }
    };
    let caller = caller(addr, &headers, credential(&headers, Carrier::Soap));
    let call = match soap::decode(&body) {
        Ok(c) => c,
        Err(f) => {
            tracing::debug!(fault = f.type_name(), "rejected SOAP request: {f}");
            return fault_response(&f);
        }
    };
    let method = call.method();
    let session = match app.svc.authenticate(&caller).await {
        Ok(s) => s,
        Err(f) => return fault_response(&f),
    };
    if let VimCall::RetrieveServiceContent = call {
        // What `vim::dispatch` and `soap::outcome` would produce, without the copying.
        return xml(StatusCode::OK, service_content(app.svc.about()));
    }
    match vim::dispatch(&app, &caller, session.as_ref(), call).await {
        Ok(Outcome::NewSession(id, us)) => {
            with_cookie(soap::outcome(method, &Outcome::Session(us)), &id, app.tls)
        }
        Ok(o) => xml(StatusCode::OK, soap::outcome(method, &o)),
        Err(f) => {
            tracing::debug!(method, fault = f.type_name(), "fault");
            fault_response(&f)
        }
    }
}
