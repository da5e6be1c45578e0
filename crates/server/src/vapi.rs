//! The vAPI adapters: JSON-RPC at `POST /api`, REST at `/api/session`,
//! `/api/vcenter/folder`, `/api/vcenter/compute/policies`, and the legacy
//! `/rest/com/vmware/cis/session`.
use crate::app::App;
use crate::auth::{credential, read_body, url_decode, Carrier, API_SESSION_COOKIE};
use crate::soap::{caller, too_large};
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Value as Json};
use std::net::SocketAddr;
use std::sync::Arc;
use vsess_core::inventory::{FolderFilter, FolderType};
use vsess_core::{Caller, Fault, SessionRecord};
use vsess_wire::vapi::{self, Invoke, RpcError, Security};

fn json_response(status: StatusCode, body: &Json) -> Response {
    json_bytes(status, body.to_string().into_bytes())
}

/// A JSON response from an already serialized body.
fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    crate::no_cache(h);
    r
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

// ---- JSON-RPC --------------------------------------------------------------------------

pub async fn json_rpc(
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
                let e = RpcError {
                    id: Json::Null,
                    code: -32600,
                    message: too_large(app.max_body).to_string(),
                };
                json_response(StatusCode::PAYLOAD_TOO_LARGE, &vapi::rpc_error(&e))
            })
        }
    };
    let invoke = match vapi::decode_invoke(&body) {
        Ok(i) => i,
        Err(e) => return json_response(StatusCode::OK, &vapi::rpc_error(&e)),
    };
    // As vAPI's own server does: a session header overrides the body's securityCtx.
    let session_id = credential(&headers, Carrier::Api).or(match &invoke.security {
        Security::SessionId(s) => Some(s.as_str()),
        _ => None,
    });
    let caller = caller(addr, &headers, session_id);
    let out = invoke_op(&app, &caller, &invoke).await;
    match out {
        Ok(Output::Json(output)) => {
            json_response(StatusCode::OK, &vapi::rpc_output(&invoke.id, output))
        }
        Ok(Output::SessionInfo {
            user,
            created,
            last_accessed,
        }) => json_bytes(
            StatusCode::OK,
            vapi::rpc_session_info(&invoke.id, &user, &created, &last_accessed),
        ),
        Err(f) => json_response(StatusCode::OK, &vapi::rpc_fault(&invoke.id, &f)),
    }
}

/// What an operation returns: a vAPI value, or a session's info (serialized without
/// building a `Value`).
enum Output {
    Json(Json),
    SessionInfo {
        user: String,
        created: DateTime<Utc>,
        last_accessed: DateTime<Utc>,
    },
}

async fn invoke_op(app: &App, caller: &Caller, i: &Invoke) -> Result<Output, Fault> {
    let svc = &app.svc;
    match (i.service.as_str(), i.operation.as_str()) {
        ("com.vmware.cis.session", "create") => {
            let Security::UserPass { user, password } = &i.security else {
                return Err(Fault::InvalidLogin);
            };
            let (id, us) = svc
                .login_explained(caller, user, password, None)
                .await
                .map_err(|r| login_failed(user, caller, r, "vAPI JSON-RPC"))?;
            tracing::info!(user = %us.user_name, key = %us.key, ip = %caller.ip, "login (vAPI JSON-RPC)");
            Ok(Output::Json(vapi::secret(id.expose())))
        }
        ("com.vmware.cis.session", "get") => {
            let s = require_session(app, caller).await?;
            Ok(Output::SessionInfo {
                created: s.login_time,
                last_accessed: s.last_active_time,
                user: String::from(&*s.user_name),
            })
        }
        ("com.vmware.cis.session", "delete") => {
            let s = require_session(app, caller).await?;
            svc.logout(Some(&s)).await?;
            tracing::info!(user = %s.user_name, key = %s.key, "logout (vAPI JSON-RPC)");
            Ok(Output::Json(Json::Null))
        }
        ("com.vmware.vcenter.folder", "list") => {
            let filter = vapi::folder_filter(&i.input)?;
            let session = svc.authenticate(caller).await?;
            Ok(Output::Json(vapi::folder_summaries(
                &svc.folder_list(session.as_ref(), &filter).await?,
            )))
        }
        ("com.vmware.vcenter.compute.policies", "list") => {
            let session = svc.authenticate(caller).await?;
            Ok(Output::Json(vapi::compute_policies(
                &svc.compute_policies(session.as_ref())?,
            )))
        }
        (service, operation) => Err(Fault::MethodNotFound {
            receiver: vsess_core::MoRef::new("vapi.service", service),
            method: operation.to_owned(),
        }),
    }
}

/// The caller's live session, or the Unauthenticated fault.
async fn require_session(app: &App, caller: &Caller) -> Result<SessionRecord, Fault> {
    app.svc
        .authenticate(caller)
        .await?
        .ok_or_else(|| Fault::NotAuthenticated {
            object: vsess_core::MoRef::session_manager(),
            privilege: vsess_core::Privilege::SystemView,
        })
}

// ---- REST /api -------------------------------------------------------------------------

fn rest_fault(f: &Fault) -> Response {
    let (code, body) = vapi::rest_error(f);
    json_response(status(code), &body)
}

fn basic(headers: &HeaderMap) -> Result<(String, String), Fault> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(vapi::basic_auth)
        .ok_or(Fault::InvalidLogin)
}

async fn rest_body_ok(app: &App, headers: &HeaderMap, body: Body) -> Result<(), Response> {
    match read_body(headers, body, app.max_body).await {
        Ok(_) => Ok(()),
        Err(u) => Err(u.response(|| {
            let (_, b) = vapi::rest_error(&too_large(app.max_body));
            json_response(StatusCode::PAYLOAD_TOO_LARGE, &b)
        })),
    }
}

/// The audit line of a refused login, as SOAP's (`vim.rs`) with the endpoint named.
/// Logs the refusal and gives the caller's fault.
fn login_failed(user: &str, caller: &Caller, r: vsess_core::Refused, endpoint: &str) -> Fault {
    crate::login_failed(user, caller.ip, &r, endpoint);
    r.fault
}

async fn login_basic(app: &App, addr: SocketAddr, headers: &HeaderMap) -> Result<String, Fault> {
    let (user, password) = basic(headers)?;
    let caller = caller(addr, headers, None);
    let (id, us) = app
        .svc
        .login_explained(&caller, &user, &password, None)
        .await
        .map_err(|r| login_failed(&user, &caller, r, "REST"))?;
    tracing::info!(user = %us.user_name, key = %us.key, ip = %caller.ip, "login (REST)");
    Ok(id.expose().to_owned())
}

pub async fn rest_create(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = rest_body_ok(&app, &headers, body).await {
        return r;
    }
    match login_basic(&app, addr, &headers).await {
        Ok(id) => json_response(StatusCode::CREATED, &json!(id)),
        Err(f) => rest_fault(&f),
    }
}

async fn current(
    app: &App,
    addr: SocketAddr,
    headers: &HeaderMap,
    carrier: Carrier,
) -> Result<SessionRecord, Fault> {
    let caller = caller(addr, headers, credential(headers, carrier));
    require_session(app, &caller).await
}

pub async fn rest_get(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let headers = req.into_parts().0.headers;
    match current(&app, addr, &headers, Carrier::Api).await {
        Ok(s) => json_bytes(
            StatusCode::OK,
            vapi::rest_session_info_bytes(&s.user_name, &s.login_time, &s.last_active_time),
        ),
        Err(f) => rest_fault(&f),
    }
}

pub async fn rest_delete(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match end_current(&app, addr, &headers, Carrier::Api).await {
        Ok(()) => crate::uncached(StatusCode::NO_CONTENT.into_response()),
        Err(f) => rest_fault(&f),
    }
}

/// Ends the caller's session (REST and legacy REST DELETE).
async fn end_current(
    app: &App,
    addr: SocketAddr,
    headers: &HeaderMap,
    carrier: Carrier,
) -> Result<(), Fault> {
    let s = current(app, addr, headers, carrier).await?;
    app.svc.logout(Some(&s)).await?;
    tracing::info!(user = %s.user_name, key = %s.key, ?carrier, "logout (REST)");
    Ok(())
}

/// `name=a&name=b` pairs, percent-decoded.
fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn rest_filter(q: Option<&str>) -> Result<FolderFilter, Fault> {
    let mut f = FolderFilter::default();
    for (k, v) in query_pairs(q) {
        let key = k.strip_prefix("filter.").unwrap_or(&k);
        match key {
            "folders" => f.folders.push(v),
            "names" => f.names.push(v),
            "parent_folders" => f.parent_folders.push(v),
            "datacenters" => f.datacenters.push(v),
            "type" => {
                f.type_ = Some(FolderType::from_vapi(&v).ok_or_else(|| {
                    Fault::invalid_argument(
                        "type",
                        format!("Unknown folder type '{v}': expected DATACENTER, VIRTUAL_MACHINE, HOST, DATASTORE or NETWORK."),
                    )
                })?)
            }
            other => {
                return Err(Fault::invalid_argument(
                    other,
                    format!("Unsupported query parameter '{other}'."),
                ))
            }
        }
    }
    Ok(f)
}

pub async fn rest_folders(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let filter = rest_filter(q.as_deref())?;
        let caller = caller(addr, &headers, credential(&headers, Carrier::Api));
        let s = require_session(&app, &caller).await?;
        app.svc.folder_list(Some(&s), &filter).await
    };
    match r.await {
        Ok(list) => json_response(StatusCode::OK, &vapi::rest_folders(&list)),
        Err(f) => rest_fault(&f),
    }
}

pub async fn rest_compute_policies(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let s = current(&app, addr, &headers, Carrier::Api).await?;
        app.svc.compute_policies(Some(&s))
    };
    match r.await {
        Ok(list) => json_response(StatusCode::OK, &vapi::rest_compute_policies(&list)),
        Err(f) => rest_fault(&f),
    }
}

// ---- legacy /rest ----------------------------------------------------------------------

fn legacy_fault(f: &Fault) -> Response {
    let (code, body) = vapi::legacy_error(f);
    json_response(status(code), &body)
}

fn legacy_get_response(s: &SessionRecord) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"value": vapi::rest_session_info(&s.view())}),
    )
}

pub async fn legacy_post(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(u) = read_body(&headers, body, app.max_body).await {
        return u.response(|| {
            let (_, b) = vapi::legacy_error(&too_large(app.max_body));
            json_response(StatusCode::PAYLOAD_TOO_LARGE, &b)
        });
    }
    if query_pairs(q.as_deref())
        .iter()
        .any(|(k, v)| k == "~action" && v == "get")
    {
        return match current(&app, addr, &headers, Carrier::LegacyRest).await {
            Ok(s) => legacy_get_response(&s),
            Err(f) => legacy_fault(&f),
        };
    }
    match login_basic(&app, addr, &headers).await {
        Ok(id) => {
            let mut r = json_response(StatusCode::OK, &json!({ "value": id }));
            if !headers.contains_key("vmware-use-header-authn") {
                let secure = if app.tls { "; Secure" } else { "" };
                let cookie = format!("{API_SESSION_COOKIE}={id}; Path=/rest; HttpOnly{secure}");
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
            }
            r
        }
        Err(f) => legacy_fault(&f),
    }
}

pub async fn legacy_get(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match current(&app, addr, &headers, Carrier::LegacyRest).await {
        Ok(s) => legacy_get_response(&s),
        Err(f) => legacy_fault(&f),
    }
}

pub async fn legacy_delete(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match end_current(&app, addr, &headers, Carrier::LegacyRest).await {
        Ok(()) => crate::uncached(StatusCode::OK.into_response()),
        Err(f) => legacy_fault(&f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_filters_decode_repeated_keys_and_reject_unknowns() {
        let f = rest_filter(Some("type=DATACENTER&names=a%20b&names=c&folders=group-d1")).unwrap();
        assert_eq!(f.type_, Some(FolderType::Datacenter));
        assert_eq!(f.names, ["a b", "c"]);
        assert_eq!(f.folders, ["group-d1"]);
        assert!(rest_filter(Some("type=BOGUS")).is_err());
        assert!(rest_filter(Some("colour=red")).is_err());
        assert_eq!(url_decode("%zz%41+x"), "%zzA x");
    }
}
