//! The VI/JSON adapter: `/sdk/vim25/{release}/{Type}/{moId}/{name}`.
use crate::app::App;
use crate::auth::{credential, read_body, Carrier, API_SESSION_HEADER};
use crate::soap::{caller, too_large};
use crate::vim;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value as Json};
use std::net::SocketAddr;
use std::sync::Arc;
use vsess_core::Fault;
use vsess_wire::vijson;
use vsess_wire::vim::Outcome;

type Params = Path<(String, String, String, String)>;

fn json_response(status: StatusCode, body: &Json) -> Response {
    crate::uncached(
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
    )
}

/// The one place a `Fault` becomes a VI/JSON response.
fn fault_response(f: &Fault) -> Response {
    let (status, body) = vijson::fault(f);
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    )
}

pub async fn get(
    app: State<Arc<App>>,
    addr: ConnectInfo<SocketAddr>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(app, addr, params, headers, body, true).await
}

pub async fn post(
    app: State<Arc<App>>,
    addr: ConnectInfo<SocketAddr>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(app, addr, params, headers, body, false).await
}

async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path((release, type_, moid, name)): Params,
    headers: HeaderMap,
    body: Body,
    is_get: bool,
) -> Response {
    if !vijson::release_supported(&release) {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({
                "_typeName": "InvalidRequest",
                "faultstring": format!(
                    "Unknown VI/JSON release '{release}'. This server serves the releases: {}.",
                    vijson::releases().join(", ")
                ),
            }),
        );
    }
    let body = match read_body(&headers, body, app.max_body).await {
        Ok(b) => b,
        Err(u) => {
            return u.response(|| {
                let (_, b) = vijson::fault(&too_large(app.max_body));
                json_response(StatusCode::PAYLOAD_TOO_LARGE, &b)
            })
        }
    };
    let caller = caller(addr, &headers, credential(&headers, Carrier::Api));
    let call = match vijson::decode(&type_, &moid, &name, is_get, &body) {
        Ok(c) => c,
        Err(f) => return fault_response(&f),
    };
    let session = match app.svc.authenticate(&caller).await {
        Ok(s) => s,
        Err(f) => return fault_response(&f),
    };
    match vim::dispatch(&app, &caller, session.as_ref(), call).await {
        Ok(Outcome::NewSession(id, us)) => {
            let mut r = json_response(StatusCode::OK, &vijson::user_session(&us));
            if let Ok(v) = HeaderValue::from_str(id.expose()) {
                r.headers_mut().insert(API_SESSION_HEADER.clone(), v);
            }
            r
        }
        Ok(Outcome::Empty) => crate::uncached(StatusCode::NO_CONTENT.into_response()),
        Ok(o) => match vijson::outcome(&o) {
            Some(body) => json_response(StatusCode::OK, &body),
            // An unset property: 200 with an empty body, as vCenter sends it.
            None => {
                crate::uncached((StatusCode::OK, [(header::CONTENT_LENGTH, "0")]).into_response())
            }
        },
        Err(f) => fault_response(&f),
    }
}
