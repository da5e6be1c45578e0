//! The self-service API: `/auth/request-token` and `/v2/session`, in the shape of the
//! public `/v2/session` reference (`_links`, `data`, `meta`), plus ending your own
//! sessions, filters, sorting, paging, `OPTIONS` and an OpenAPI document.
use crate::app::App;
use crate::auth::{read_body, url_decode};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value as Json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use vsess_core::selfservice::{format_delta, format_time, parse_duration};
use vsess_core::{Fault, SessionRecord, TokenRecord};
use vsess_wire::vapi::basic_auth;

pub const MAX_PER_PAGE: usize = 100;
pub const DEFAULT_PER_PAGE: usize = 20;

fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The one place a `Fault` becomes a `/v2` error: 401, 403, 404, 400 or 503/500.
fn error(f: &Fault) -> Response {
    let (status, title) = match f {
        Fault::InvalidLogin | Fault::NotAuthenticated { .. } => {
            (StatusCode::UNAUTHORIZED, "Unauthorized")
        }
        Fault::NoPermission { .. } => (StatusCode::FORBIDDEN, "Forbidden"),
        Fault::NotFound(_) => (StatusCode::NOT_FOUND, "Not Found"),
        Fault::InvalidArgument { .. } | Fault::InvalidRequest(_) => {
            (StatusCode::BAD_REQUEST, "Bad Request")
        }
        Fault::SessionLimit { .. } | Fault::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    };
    let message = match f {
        Fault::NotAuthenticated { .. } => {
            "A valid bearer token is required: get one with POST /auth/request-token (HTTP Basic auth) and send it as 'Authorization: Bearer <token>'.".to_owned()
        }
        f => f.to_string(),
    };
    let mut r = json_response(
        status,
        &json!({"status": status.as_u16(), "error": title, "message": message}),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"vsess\""),
        );
    }
    r
}

fn bad(message: impl Into<String>) -> Fault {
    Fault::InvalidRequest(message.into())
}

/// `scheme://host` for the links in responses. The host is the request's authority: the
/// URI's (HTTP/2's `:authority`, or an absolute-form request target), else the `Host`
/// header, else `localhost`. Only host-like values are used, so that a request cannot put
/// arbitrary text into the links.
fn base_url(tls: bool, uri: &Uri, headers: &HeaderMap) -> String {
    let host_like = |h: &&str| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
    };
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .filter(host_like)
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .filter(host_like)
        })
        .unwrap_or("localhost");
    format!("{}://{host}", if tls { "https" } else { "http" })
}

/// The token of an `Authorization: Bearer …` header (the scheme in any case, RFC 9110
/// §11.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// [`error`] for a request that [`authorize`] refused or that failed later: a 401 says
/// which credential the request carried and why it did not do (RFC 6750 §3.1's
/// `invalid_token` for a bearer token), so that a client knows whether to get a new
/// token, log in again, or send one at all.
fn refused(headers: &HeaderMap, f: &Fault) -> Response {
    let r = error(f);
    if r.status() != StatusCode::UNAUTHORIZED {
        return r;
    }
    let (challenge, message) = if bearer(headers).is_some() {
        (
            "Bearer realm=\"vsess\", error=\"invalid_token\", error_description=\"unknown, expired or revoked token\"",
            "The bearer token is unknown, has expired or was revoked: get a new one with POST /auth/request-token.",
        )
    } else if headers.contains_key(&crate::auth::API_SESSION_HEADER) {
        (
            "Bearer realm=\"vsess\"",
            "The session in vmware-api-session-id is unknown or has ended: log in again, or use a bearer token from POST /auth/request-token.",
        )
    } else {
        return r;
    };
    let mut r = json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"status": 401, "error": "Unauthorized", "message": message}),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

/// The caller: a bearer token, or else a live session id in `vmware-api-session-id`
/// (so that tools holding a session, like `vsess ls`, need no second credential).
async fn authorize(app: &App, headers: &HeaderMap) -> Result<TokenRecord, Fault> {
    Ok(authorize_with_session(app, headers).await?.0)
}

/// [`authorize`], with the key of the session that authorised the request, if one did.
async fn authorize_with_session(
    app: &App,
    headers: &HeaderMap,
) -> Result<(TokenRecord, Option<String>), Fault> {
    if let Some(token) = bearer(headers) {
        return Ok((app.svc.token(token).await?, None));
    }
    let unauth = || Fault::not_authenticated(vsess_core::Privilege::SystemView);
    let id = headers
        .get(&crate::auth::API_SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(vsess_core::SessionId::parse)
        .ok_or_else(unauth)?;
    let s = app.svc.lookup(&id).await?.ok_or_else(unauth)?;
    let token = TokenRecord {
        user: String::from(&*s.user_name),
        role: s.role,
        created: s.login_time,
        expires: s.login_time,
        user_id: String::from(&*s.user_id),
    };
    Ok((token, Some(s.key.0)))
}

/// `DOMAIN\user` (the reference's form) for `user@domain`.
fn display_user(name: &str) -> String {
    match name.split_once('@') {
        Some((u, d)) => format!("{}\\{u}", d.to_uppercase()),
        None => name.to_owned(),
    }
}

fn short_user(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

fn meta(count: usize, started: Instant, token: &TokenRecord) -> Json {
    json!({
        "count": count,
        "time": format!("{:.5}s", started.elapsed().as_secs_f64()),
        "user": short_user(&token.user),
    })
}

// ---- tokens -----------------------------------------------------------------------------

pub async fn request_token(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = addr.ip().to_canonical();
    if let Err(u) = read_body(&headers, body, app.max_body).await {
        return u.response(|| {
            json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"status": 413, "error": "Payload Too Large",
                        "message": "The request body is too large."}),
            )
        });
    }
    let Some((user, password)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_auth)
    else {
        let mut r = error(&Fault::InvalidLogin);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"vsess\""),
        );
        return r;
    };
    match app
        .svc
        .request_token_explained(&user, &password, app.token_lifetime)
        .await
    {
        Ok((token, rec)) => {
            tracing::info!(user = %rec.user, ip = %ip, "API token issued");
            json_response(
                StatusCode::OK,
                &json!({"token": token, "expires": rec.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
            )
        }
        Err(refused) => {
            crate::login_failed(&user, ip, &refused, "API token");
            let mut r = error(&refused.fault);
            if r.status() == StatusCode::UNAUTHORIZED {
                // The credential this resource takes is Basic (RFC 9110 §15.5.2).
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"vsess\""),
                );
            }
            r
        }
    }
}

pub async fn revoke_token(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return error(&Fault::not_authenticated(vsess_core::Privilege::SystemView));
    };
    match app.svc.revoke_token(token).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => refused(&headers, &f),
    }
}

// ---- query -----------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Query {
    idle_gt: Option<Duration>,
    user_agent: Option<String>,
    ip: Option<String>,
    sort: Option<(String, bool)>,
    page: usize,
    per_page: usize,
    all: bool,
    exclude: Vec<String>,
    /// vsess's extension: list items carry every detail attribute, so that a client needs
    /// no GET per session.
    expand: bool,
}

fn parse_query(q: Option<&str>) -> Result<Query, Fault> {
    let mut out = Query {
        page: 1,
        per_page: DEFAULT_PER_PAGE,
        ..Default::default()
    };
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = url_decode(v);
        match k {
            "idle_gt" => {
                out.idle_gt = Some(parse_duration(&v).ok_or_else(|| {
                    bad(format!(
                        "idle_gt '{v}' is not a duration of at most 100 years: use e.g. 30m, 1h, 45s or 0s"
                    ))
                })?)
            }
            "user_agent" => out.user_agent = Some(v),
            "ip" => out.ip = Some(v),
            "sort" => {
                let (field, desc) = match v.strip_prefix('-') {
                    Some(f) => (f.to_owned(), true),
                    None => (v.clone(), false),
                };
                if field != "loginTime" && field != "lastActiveTime" {
                    return Err(bad(format!("sort '{v}' is not supported: use loginTime or lastActiveTime, with '-' for descending")));
                }
                out.sort = Some((field, desc));
            }
            "page" => {
                out.page = v
                    .parse()
                    .ok()
                    .filter(|p| *p >= 1)
                    .ok_or_else(|| bad(format!("page '{v}' must be a whole number from 1")))?
            }
            "per_page" => {
                out.per_page = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=MAX_PER_PAGE).contains(p))
                    .ok_or_else(|| {
                        bad(format!(
                            "per_page '{v}' must be a whole number from 1 to {MAX_PER_PAGE}"
                        ))
                    })?
            }
            "all" => {
                out.all = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad(format!("all '{v}' must be true or false"))),
                }
            }
            "exclude" => out.exclude.push(v),
            "expand" => {
                out.expand = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad(format!("expand '{v}' must be true or false"))),
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter '{other}': see OPTIONS /v2/session for the parameters"
                )))
            }
        }
    }
    Ok(out)
}

fn filtered(sessions: Vec<SessionRecord>, q: &Query, now: DateTime<Utc>) -> Vec<SessionRecord> {
    let mut v: Vec<SessionRecord> = sessions
        .into_iter()
        .filter(|s| q.idle_gt.is_none_or(|d| now - s.last_active_time > d))
        .filter(|s| {
            q.user_agent
                .as_ref()
                .is_none_or(|ua| s.user_agent.to_lowercase().contains(&ua.to_lowercase()))
        })
        .filter(|s| q.ip.as_ref().is_none_or(|ip| *s.ip_address == **ip))
        .filter(|s| !q.exclude.contains(&s.key.0))
        .collect();
    if let Some((field, desc)) = &q.sort {
        v.sort_by(|a, b| {
            let o = if field == "loginTime" {
                a.login_time.cmp(&b.login_time)
            } else {
                a.last_active_time.cmp(&b.last_active_time)
            };
            if *desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    v
}

fn with_page(base: &str, q: Option<&str>, page: usize) -> String {
    let mut parts: Vec<String> = q
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("page="))
        .map(str::to_owned)
        .collect();
    parts.push(format!("page={page}"));
    format!("{base}/v2/session?{}", parts.join("&"))
}

// ---- handlers ----------------------------------------------------------------------------

pub async fn root(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    let base = base_url(app.tls, &uri, &headers);
    json_response(
        StatusCode::OK,
        &json!({"_links": {"self": format!("{base}/v2/"), "session": format!("{base}/v2/session"),
            "openapi": format!("{base}/v2/openapi.json"), "token": format!("{base}/auth/request-token")}}),
    )
}

pub async fn list(
    State(app): State<Arc<App>>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let r = async {
        let q = parse_query(raw.as_deref())?;
        let token = authorize(&app, &headers).await?;
        let sessions = app.svc.sessions_for(&token, q.all).await?;
        Ok::<_, Fault>((q, token, sessions))
    };
    let (q, token, sessions) = match r.await {
        Ok(x) => x,
        Err(f) => return refused(&headers, &f),
    };
    let base = base_url(app.tls, &uri, &headers);
    let now = app.svc.now();
    let all = filtered(sessions, &q, now);
    let total = all.len();
    let pages = total.div_ceil(q.per_page).max(1);
    let data: Vec<Json> = all
        .iter()
        .skip((q.page - 1) * q.per_page)
        .take(q.per_page)
        .map(|s| {
            let link = json!({"self": format!("{base}/v2/session/{}", s.key.0)});
            if q.expand {
                let mut d = detail(s, now);
                d["_links"] = link;
                d
            } else {
                json!({"key": s.key.0, "username": display_user(&s.user_name), "_links": link})
            }
        })
        .collect();
    let self_link = match raw.as_deref() {
        Some(r) if !r.is_empty() => format!("{base}/v2/session?{r}"),
        _ => format!("{base}/v2/session"),
    };
    let mut links = json!({"api": format!("{base}/v2/"), "self": self_link});
    if q.page < pages {
        links["next"] = json!(with_page(&base, raw.as_deref(), q.page + 1));
    }
    if q.page > 1 {
        links["prev"] = json!(with_page(&base, raw.as_deref(), (q.page - 1).min(pages)));
    }
    let mut m = meta(total, started, &token);
    m["page"] = json!(q.page);
    m["per_page"] = json!(q.per_page);
    m["pages"] = json!(pages);
    json_response(
        StatusCode::OK,
        &json!({"_links": links, "data": data, "meta": m}),
    )
}

fn detail(s: &SessionRecord, now: DateTime<Utc>) -> Json {
    json!({
        "key": s.key.0,
        "domain": s.user_name.split_once('@').map(|(_, d)| d.to_uppercase()).unwrap_or_default(),
        "ip": s.ip_address,
        "lastActiveTime": format_time(s.last_active_time),
        "lastActiveTimeDelta": format_delta(now - s.last_active_time),
        "loginTime": format_time(s.login_time),
        "loginTimeDelta": format_delta(now - s.login_time),
        "userAgent": s.user_agent,
        "username": display_user(&s.user_name),
    })
}

pub async fn get_one(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let r = async {
        let q = parse_query(raw.as_deref())?;
        let token = authorize(&app, &headers).await?;
        let s = app.svc.session_for(&token, &key, q.all).await?;
        Ok::<_, Fault>((token, s))
    };
    match r.await {
        Ok((token, s)) => {
            let base = base_url(app.tls, &uri, &headers);
            json_response(
                StatusCode::OK,
                &json!({
                    "_links": {"self": format!("{base}/v2/session/{key}"), "session": format!("{base}/v2/session")},
                    "data": [detail(&s, app.svc.now())],
                    "meta": meta(1, started, &token),
                }),
            )
        }
        Err(f) => refused(&headers, &f),
    }
}

pub async fn delete_one(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let q = parse_query(raw.as_deref())?;
        let token = authorize(&app, &headers).await?;
        let s = app.svc.end_session_for(&token, &key, q.all).await?;
        Ok::<_, Fault>((token, s))
    };
    match r.await {
        Ok((token, s)) => {
            tracing::info!(by = %token.user, user = %s.user_name, key = %s.key, "session ended (self-service)");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(f) => refused(&headers, &f),
    }
}

/// `DELETE /v2/session?idle_gt=…`: ends the caller's sessions idle longer than that.
pub async fn delete_idle(
    State(app): State<Arc<App>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let r = async {
        let mut q = parse_query(raw.as_deref())?;
        if q.idle_gt.is_none() {
            return Err(bad("DELETE /v2/session needs idle_gt, e.g. ?idle_gt=30m (use ?idle_gt=0s for all of them)"));
        }
        let (token, own) = authorize_with_session(&app, &headers).await?;
        // The session the request came with is never ended by it (`vsess rm --idle 0s`).
        q.exclude.extend(own);
        let sessions = app.svc.sessions_for(&token, q.all).await?;
        let mut ended = Vec::new();
        for s in filtered(sessions, &q, app.svc.now()) {
            if app
                .svc
                .end_session_for(&token, &s.key.0, q.all)
                .await
                .is_ok()
            {
                ended.push(s.key.0);
            }
        }
        Ok::<_, Fault>((token, ended))
    };
    match r.await {
        Ok((token, ended)) => {
            tracing::info!(by = %token.user, count = ended.len(), "idle sessions ended (self-service)");
            json_response(
                StatusCode::OK,
                &json!({"data": {"ended": ended.len(), "keys": ended}, "meta": meta(ended.len(), started, &token)}),
            )
        }
        Err(f) => refused(&headers, &f),
    }
}

const LIST_PARAMS: &[(&str, &str)] = &[
    (
        "idle_gt",
        "only sessions idle longer than this duration (30m, 1h, 45s, 0s)",
    ),
    (
        "user_agent",
        "only sessions whose user agent contains this text (case-insensitive)",
    ),
    ("ip", "only sessions from this IP address"),
    (
        "sort",
        "loginTime or lastActiveTime; prefix '-' for descending",
    ),
    ("page", "page number, from 1"),
    ("per_page", "sessions per page, 1 to 100 (default 20)"),
    (
        "all",
        "true: everyone's sessions (needs Sessions.TerminateSession)",
    ),
    ("exclude", "a session key to leave out (repeatable)"),
    (
        "expand",
        "true: each item carries every detail attribute (a vsess extension)",
    ),
];

fn options(allow: &'static str, body: Json) -> Response {
    let mut r = json_response(StatusCode::OK, &body);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

pub async fn options_list() -> Response {
    let params: serde_json::Map<String, Json> = LIST_PARAMS
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    options(
        "GET, DELETE, OPTIONS",
        json!({
            "name": "Session",
            "description": "The live vCenter sessions of the user making the request, on every endpoint (SOAP, VI/JSON, vAPI).",
            "methods": {
                "GET": {"description": "List your sessions.", "parameters": params},
                "DELETE": {"description": "End your sessions idle longer than idle_gt; reports how many ended.",
                    "parameters": {"idle_gt": "required", "user_agent": "optional", "ip": "optional", "all": "optional", "exclude": "optional"}},
                "OPTIONS": {"description": "This description."}
            },
            "authentication": "Authorization: Bearer <token from POST /auth/request-token>"
        }),
    )
}

pub async fn options_one() -> Response {
    options(
        "GET, DELETE, OPTIONS",
        json!({
            "name": "Session",
            "description": "One of your sessions.",
            "methods": {
                "GET": {"description": "Details: domain, ip, lastActiveTime, lastActiveTimeDelta, loginTime, loginTimeDelta, userAgent, username.", "parameters": {"all": "true: any user's session (needs Sessions.TerminateSession)"}},
                "DELETE": {"description": "End this session (204).", "parameters": {"all": "true: any user's session (needs Sessions.TerminateSession)"}},
                "OPTIONS": {"description": "This description."}
            },
            "authentication": "Authorization: Bearer <token from POST /auth/request-token>"
        }),
    )
}

pub async fn openapi() -> Response {
    json_response(StatusCode::OK, &openapi_doc())
}

fn openapi_doc() -> Json {
    let param = |name: &str, desc: &str, schema: Json| json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema});
    // Whole seconds, or numbers each with a unit: 90, 30m, 1h30m (not 1h30).
    let duration = json!({"type": "string", "pattern": "^([0-9]+|([0-9]+[smhdw])+)$"});
    // A bearer token, or a live session id (`vsess ls` uses its session).
    let auth = json!([{"bearer": []}, {"session": []}]);
    let list_params: Vec<Json> = vec![
        param(
            "idle_gt",
            "only sessions idle longer than this duration (30m, 1h, 45s, 0s)",
            duration.clone(),
        ),
        param(
            "user_agent",
            "user agent contains (case-insensitive)",
            json!({"type": "string"}),
        ),
        param("ip", "client IP address", json!({"type": "string"})),
        param(
            "sort",
            "sort order",
            json!({"type": "string", "enum": ["loginTime", "-loginTime", "lastActiveTime", "-lastActiveTime"]}),
        ),
        param(
            "page",
            "page number",
            json!({"type": "integer", "minimum": 1, "default": 1}),
        ),
        param(
            "per_page",
            "page size",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE}),
        ),
        param(
            "all",
            "everyone's sessions (Sessions.TerminateSession)",
            json!({"type": "boolean", "default": false}),
        ),
        param(
            "exclude",
            "session key to leave out",
            json!({"type": "string"}),
        ),
        param(
            "expand",
            "items carry every SessionDetail attribute (vsess extension)",
            json!({"type": "boolean", "default": false}),
        ),
    ];
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "vsess self-service sessions", "version": env!("CARGO_PKG_VERSION"),
            "description": "List, inspect and end your own vCenter sessions on every endpoint."},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "session": {"type": "apiKey", "in": "header", "name": "vmware-api-session-id",
                    "description": "a live session id from any vsess endpoint"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["status", "error", "message"], "properties": {
                    "status": {"type": "integer"}, "error": {"type": "string"}, "message": {"type": "string"}}},
                "Token": {"type": "object", "required": ["token", "expires"], "properties": {
                    "token": {"type": "string"}, "expires": {"type": "string", "format": "date-time"}}},
                "Meta": {"type": "object", "required": ["count", "time", "user"], "properties": {
                    "count": {"type": "integer", "description": "the sessions that match, on every page (one session: 1; ended: how many)"},
                    "time": {"type": "string"}, "user": {"type": "string"},
                    "page": {"type": "integer"}, "per_page": {"type": "integer"}, "pages": {"type": "integer"}}},
                "SessionRef": {"type": "object", "required": ["key", "username", "_links"], "properties": {
                    "key": {"type": "string"}, "username": {"type": "string"},
                    "_links": {"type": "object", "properties": {"self": {"type": "string"}}}}},
                "SessionList": {"type": "object", "required": ["_links", "data", "meta"], "properties": {
                    "_links": {"type": "object", "properties": {"api": {"type": "string"}, "self": {"type": "string"},
                        "next": {"type": "string"}, "prev": {"type": "string"}}},
                    "data": {"type": "array", "items": {"$ref": "#/components/schemas/SessionRef"},
                        "description": "with expand=true, each item also has every SessionDetail attribute"},
                    "meta": {"$ref": "#/components/schemas/Meta"}}},
                "SessionDetail": {"type": "object", "required": ["domain", "ip", "lastActiveTime", "lastActiveTimeDelta", "loginTime", "loginTimeDelta", "userAgent", "username"], "properties": {
                    "key": {"type": "string"}, "domain": {"type": "string"}, "ip": {"type": "string"},
                    "lastActiveTime": {"type": "string"}, "lastActiveTimeDelta": {"type": "string"},
                    "loginTime": {"type": "string"}, "loginTimeDelta": {"type": "string"},
                    "userAgent": {"type": "string"}, "username": {"type": "string"}}},
                "SessionOne": {"type": "object", "required": ["_links", "data", "meta"], "properties": {
                    "_links": {"type": "object"}, "data": {"type": "array", "items": {"$ref": "#/components/schemas/SessionDetail"}},
                    "meta": {"$ref": "#/components/schemas/Meta"}}},
                "Ended": {"type": "object", "required": ["data", "meta"], "properties": {
                    "data": {"type": "object", "properties": {"ended": {"type": "integer"}, "keys": {"type": "array", "items": {"type": "string"}}}},
                    "meta": {"$ref": "#/components/schemas/Meta"}}}
            }
        },
        "paths": {
            "/auth/request-token": {
                "post": {"summary": "Issue a bearer token", "security": [{"basic": []}],
                    "responses": {"200": {"description": "token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Token"}}}}, "401": err}},
                "delete": {"summary": "Revoke the bearer token", "security": [{"bearer": []}],
                    "responses": {"204": {"description": "revoked"}, "401": err}}
            },
            "/v2/session": {
                "get": {"summary": "List your sessions", "security": auth, "parameters": list_params,
                    "responses": {"200": {"description": "sessions", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionList"}}}}, "400": err, "401": err, "403": err}},
                "delete": {"summary": "End your idle sessions", "security": auth,
                    "parameters": [
                        {"name": "idle_gt", "in": "query", "required": true, "schema": duration,
                            "description": "end sessions idle longer than this (0s: all but excluded ones)"},
                        param("user_agent", "only sessions whose user agent contains this (case-insensitive)", json!({"type": "string"})),
                        param("ip", "only sessions from this client IP address", json!({"type": "string"})),
                        param("all", "everyone's sessions (Sessions.TerminateSession)", json!({"type": "boolean", "default": false})),
                        param("exclude", "a session key to keep (repeatable)", json!({"type": "string"}))],
                    "responses": {"200": {"description": "ended", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ended"}}}}, "400": err, "401": err, "403": err}},
                "options": {"summary": "Describe this resource", "responses": {"200": {"description": "description"}}}
            },
            "/v2/session/{key}": {
                "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "One of your sessions", "security": auth,
                    "parameters": [param("all", "any user's (Sessions.TerminateSession)", json!({"type": "boolean", "default": false}))],
                    "responses": {"200": {"description": "session", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionOne"}}}}, "400": err, "401": err, "403": err, "404": err}},
                "delete": {"summary": "End one of your sessions", "security": auth,
                    "parameters": [param("all", "any user's (Sessions.TerminateSession)", json!({"type": "boolean", "default": false}))],
                    "responses": {"204": {"description": "ended"}, "400": err, "401": err, "403": err, "404": err}},
                "options": {"summary": "Describe this resource", "responses": {"200": {"description": "description"}}}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_reject_bad_values() {
        let q = parse_query(Some("idle_gt=30m&user_agent=py%20vmomi&sort=-loginTime&page=2&per_page=10&all=true&exclude=k")).unwrap();
        assert_eq!(q.idle_gt, Some(Duration::minutes(30)));
        assert_eq!(q.user_agent.as_deref(), Some("py vmomi"));
        assert_eq!(q.sort, Some(("loginTime".into(), true)));
        assert_eq!((q.page, q.per_page, q.all), (2, 10, true));
        for bad in [
            "idle_gt=soon",
            "sort=name",
            "page=0",
            "per_page=101",
            "all=maybe",
            "colour=red",
        ] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_links_replace_the_page() {
        assert_eq!(
            with_page("https://h", Some("per_page=2&page=1"), 2),
            "https://h/v2/session?per_page=2&page=2"
        );
        assert_eq!(display_user("josem@vskey5"), "VSKEY5\\josem");
    }

    #[test]
    fn links_use_the_uri_authority_then_the_host_header() {
        let mut host = HeaderMap::new();
        host.insert(header::HOST, HeaderValue::from_static("h1.example:8989"));
        // HTTP/2: the authority is in the URI and there is no Host header.
        let h2: Uri = "https://127.0.0.1:8989/v2/session?per_page=1"
            .parse()
            .unwrap();
        assert_eq!(
            base_url(true, &h2, &HeaderMap::new()),
            "https://127.0.0.1:8989"
        );
        assert_eq!(base_url(true, &h2, &host), "https://127.0.0.1:8989");
        // HTTP/1.1: an origin-form target; the Host header names the server.
        let h1: Uri = "/v2/session".parse().unwrap();
        assert_eq!(base_url(true, &h1, &host), "https://h1.example:8989");
        assert_eq!(base_url(false, &h1, &HeaderMap::new()), "http://localhost");
        // Nothing but host-like text reaches the links.
        let mut bad = HeaderMap::new();
        bad.insert(header::HOST, HeaderValue::from_static("a\"><b"));
        assert_eq!(base_url(true, &h1, &bad), "https://localhost");
        let userinfo: Uri = "https://u@evil/v2/session".parse().unwrap();
        assert_eq!(base_url(true, &userinfo, &host), "https://h1.example:8989");
    }
}
