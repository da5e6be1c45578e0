//! The web page at `/ui`: sign in, see and end your own sessions on every endpoint, and
//! (administrators) everyone's sessions and the service message.
//!
//! - **The page's own session** is a self-service bearer token (`/auth/request-token`'s
//!   kind, so it is durable, expires, and is shared by replicas), kept in a `Secure`,
//!   `HttpOnly`, `SameSite=Strict` cookie. It is not a vim session and never appears in a
//!   session list.
//! - **CSRF.** Every state-changing request (`POST`, `PUT`, `DELETE`) carries
//!   `X-CSRF-Token`, which must equal a digest of the cookie's token (a signed double
//!   submit: only a page that read `/ui/api/me` or the sign-in answer knows it), compared in
//!   constant time. Sign-in, which has no cookie yet, must be a JSON request and must not
//!   come from another site (`Sec-Fetch-Site`), so a cross-site form cannot sign a
//!   victim in.
//! - **Offline and strict.** The HTML, script, style sheet and icon are embedded in the
//!   binary and served from `/ui`; every answer under `/ui` carries a CSP without
//!   `unsafe-inline`, `nosniff`, `frame-ancestors 'none'`/`X-Frame-Options: DENY`,
//!   `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
use crate::app::App;
use crate::auth::{cross_site, read_body};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use vsess_core::selfservice::format_time;
use vsess_core::{Fault, Privilege, SessionRecord, TokenRecord};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");
const FAVICON_SVG: &str = include_str!("ui/favicon.svg");

/// The page's Content-Security-Policy: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The header that carries the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The cookie over TLS: `__Host-` binds it to this origin (Secure, `Path=/`, no Domain).
pub const COOKIE_TLS: &str = "__Host-vsess-ui";
/// The cookie over plain HTTP (`--http`, local testing only), where browsers refuse the
/// `__Host-` prefix outside localhost.
pub const COOKIE_PLAIN: &str = "vsess-ui";

/// Routes under `/ui`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/app.js", get(script))
        .route("/app.css", get(style))
        .route("/favicon.svg", get(icon))
        .route("/api/sign-in", post(sign_in))
        .route("/api/sign-out", post(sign_out))
        .route("/api/me", get(me))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{key}", delete(end_session))
        .route("/api/message", get(message).put(set_message))
        .fallback(not_found)
        .layer(map_response(security_headers))
}

// ---- headers, errors ---------------------------------------------------------------------

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    );
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The request body, or the page's answer when it is too large or did not arrive whole.
async fn body_bytes(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Response> {
    read_body(headers, body, app.max_body).await.map_err(|u| {
        u.response(|| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            )
        })
    })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message: String = message.into();
    json_response(
        status,
        &json!({"status": status.as_u16(), "error": message}),
    )
}

/// The one place a `Fault` becomes a `/ui/api` error.
fn fault(f: &Fault) -> Response {
    let status = match f {
        Fault::InvalidLogin | Fault::NotAuthenticated { .. } => StatusCode::UNAUTHORIZED,
        Fault::NoPermission { .. } => StatusCode::FORBIDDEN,
        Fault::NotFound(_) => StatusCode::NOT_FOUND,
        Fault::InvalidArgument { .. } | Fault::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        Fault::SessionLimit { .. } | Fault::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match f {
        Fault::NotAuthenticated { .. } => {
            "You are not signed in, or your sign-in has expired.".to_owned()
        }
        Fault::NoPermission { privilege, .. } => {
            format!("You do not have permission to do this: it needs {privilege}.")
        }
        f => f.to_string(),
    };
    error(status, message)
}

fn unauthenticated() -> Fault {
    Fault::not_authenticated(Privilege::SystemView)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found. The web page is at /ui.")
}

// ---- cookie and CSRF ---------------------------------------------------------------------

fn cookie_name(app: &App) -> &'static str {
    if app.tls {
        COOKIE_TLS
    } else {
        COOKIE_PLAIN
    }
}

fn session_cookie(app: &App, token: &str) -> String {
    // Secure even over plain HTTP: browsers accept that from localhost only, which is
    // what `--http` is for.
    format!(
        "{}={token}; Path=/; Secure; HttpOnly; SameSite=Strict",
        cookie_name(app)
    )
}

fn clear_cookie(app: &App) -> String {
    format!(
        "{}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict",
        cookie_name(app)
    )
}

fn cookie_token<'a>(app: &App, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = cookie_name(app);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| vsess_wire::soap::cookie(c, name))
}

/// The CSRF token for a sign-in: a digest of its bearer token, so that the server keeps
/// no extra state and only a same-origin page (which was told it) can present it.
pub fn csrf_token(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"vsess-ui-csrf\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The signed-in caller: the cookie's token, resolved by the core.
async fn signed_in(app: &App, headers: &HeaderMap) -> Result<(String, TokenRecord), Fault> {
    let token = cookie_token(app, headers).ok_or_else(unauthenticated)?;
    let rec = app.svc.token(token).await?;
    Ok((token.to_owned(), rec))
}

/// For state-changing requests: signed in, same site, and the right CSRF token.
async fn signed_in_csrf(app: &App, headers: &HeaderMap) -> Result<(String, TokenRecord), Response> {
    let (token, rec) = signed_in(app, headers).await.map_err(|f| fault(&f))?;
    match csrf_refusal(headers, &token) {
        Some(refused) => Err(refused),
        None => Ok((token, rec)),
    }
}

/// Why a state-changing request of the sign-in `token` is refused: it is cross-site, or it
/// lacks that sign-in's CSRF token. `None` when it may go on.
fn csrf_refusal(headers: &HeaderMap, token: &str) -> Option<Response> {
    let forbidden = |m: &str| Some(error(StatusCode::FORBIDDEN, m));
    if cross_site(headers) {
        return forbidden("Cross-site requests are refused.");
    }
    let Some(sent) = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes) else {
        return forbidden("The X-CSRF-Token header is missing: reload the page.");
    };
    if !constant_time_eq(sent, csrf_token(token).as_bytes()) {
        return forbidden("The X-CSRF-Token header is wrong: reload the page.");
    }
    None
}

// ---- the page ----------------------------------------------------------------------------

async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn icon() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}

// ---- the API -----------------------------------------------------------------------------

/// `user@domain` as `DOMAIN\user`, the way session lists show it.
fn display_user(name: &str) -> String {
    match name.split_once('@') {
        Some((u, d)) => format!("{}\\{u}", d.to_uppercase()),
        None => name.to_owned(),
    }
}

fn may_see_all(rec: &TokenRecord) -> bool {
    rec.role.has(Privilege::SessionsTerminateSession)
}

fn whoami(rec: &TokenRecord, token: &str) -> Json {
    json!({
        "signedIn": true,
        "user": display_user(&rec.user),
        "userName": rec.user,
        "role": rec.role.as_str(),
        "admin": may_see_all(rec),
        "canSetMessage": rec.role.has(Privilege::SessionsGlobalMessage),
        "csrf": csrf_token(token),
        "expires": rec.expires.to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

#[derive(Deserialize)]
struct SignIn {
    username: String,
    password: String,
}

async fn sign_in(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = addr.ip().to_canonical();
    if cross_site(&headers) {
        return error(StatusCode::FORBIDDEN, "Cross-site sign-in is refused.");
    }
    if !is_json(&headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the user name and password as application/json.",
        );
    }
    let bytes = match body_bytes(&app, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(form) = serde_json::from_slice::<SignIn>(&bytes) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Expected {\"username\": …, \"password\": …}.",
        );
    };
    match app
        .svc
        .request_token_explained(form.username.trim(), &form.password, app.token_lifetime)
        .await
    {
        Ok((token, rec)) => {
            // Signing in again (as anyone) ends the sign-in this browser had.
            if let Some(old) = cookie_token(&app, &headers) {
                let _ = app.svc.revoke_token(old).await;
            }
            tracing::info!(user = %rec.user, ip = %ip, "web page sign-in");
            let mut r = json_response(StatusCode::OK, &whoami(&rec, &token));
            if let Ok(v) = HeaderValue::from_str(&session_cookie(&app, &token)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(r) => {
            crate::login_failed(&form.username, ip, &r, "web page");
            fault(&r.fault)
        }
    }
}

async fn sign_out(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    // A user who may no longer use the page (demoted to NoAccess) may still sign out: the
    // token is checked by revoking it, not through `signed_in`.
    let Some(token) = cookie_token(&app, &headers) else {
        return fault(&unauthenticated());
    };
    if let Some(refused) = csrf_refusal(&headers, token) {
        return refused;
    }
    let rec = match app.svc.revoke_token(token).await {
        Ok(rec) => rec,
        Err(f) => return fault(&f),
    };
    tracing::info!(user = %rec.user, "web page sign-out");
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(&app)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Who is signed in. Not being signed in is an answer here, not an error, so that the
/// page's first load leaves no failed request in the browser's console.
async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers).await {
        Ok((token, rec)) => json_response(StatusCode::OK, &whoami(&rec, &token)),
        Err(Fault::NotAuthenticated { .. }) => {
            json_response(StatusCode::OK, &json!({"signedIn": false}))
        }
        Err(f) => fault(&f),
    }
}

fn row(s: &SessionRecord, now: chrono::DateTime<chrono::Utc>) -> Json {
    json!({
        "key": s.key.0,
        "user": display_user(&s.user_name),
        "userAgent": s.user_agent,
        "ip": s.ip_address,
        "loginTime": format!("{} UTC", format_time(s.login_time)),
        "loginTimeIso": s.login_time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "idleSeconds": (now - s.last_active_time).num_seconds().max(0),
    })
}

async fn sessions(
    State(app): State<Arc<App>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let all = match raw.as_deref().unwrap_or_default() {
        "" | "scope=mine" => false,
        "scope=all" => true,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "The only parameter is scope=mine or scope=all.",
            )
        }
    };
    let r = async {
        let (_, rec) = signed_in(&app, &headers).await?;
        app.svc.sessions_for(&rec, all).await
    };
    match r.await {
        Ok(list) => {
            let now = app.svc.now();
            let rows: Vec<Json> = list.iter().map(|s| row(s, now)).collect();
            json_response(
                StatusCode::OK,
                &json!({
                    "scope": if all { "all" } else { "mine" },
                    "count": rows.len(),
                    "sessions": rows,
                    "serverTime": now.to_rfc3339_opts(SecondsFormat::Secs, true),
                }),
            )
        }
        Err(f) => fault(&f),
    }
}

async fn end_session(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let rec = match signed_in_csrf(&app, &headers).await {
        Ok((_, rec)) => rec,
        Err(r) => return r,
    };
    let all = may_see_all(&rec);
    match app.svc.end_session_for(&rec, &key, all).await {
        Ok(s) => {
            tracing::info!(by = %rec.user, user = %s.user_name, key = %s.key, "session ended (web page)");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(f) => fault(&f),
    }
}

async fn message(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let r = async {
        let (_, rec) = signed_in(&app, &headers).await?;
        let m = app.svc.message_for(&rec).await?;
        Ok::<_, Fault>((rec, m))
    };
    match r.await {
        Ok((rec, m)) => json_response(
            StatusCode::OK,
            &json!({"message": m, "canSetMessage": rec.role.has(Privilege::SessionsGlobalMessage)}),
        ),
        Err(f) => fault(&f),
    }
}

#[derive(Deserialize)]
struct NewMessage {
    message: String,
}

async fn set_message(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let rec = match signed_in_csrf(&app, &headers).await {
        Ok((_, rec)) => rec,
        Err(r) => return r,
    };
    if !is_json(&headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the message as application/json.",
        );
    }
    let bytes = match body_bytes(&app, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(m) = serde_json::from_slice::<NewMessage>(&bytes) else {
        return error(StatusCode::BAD_REQUEST, "Expected {\"message\": …}.");
    };
    match app.svc.set_message_for(&rec, &m.message).await {
        Ok(()) => {
            tracing::info!(by = %rec.user, len = m.message.len(), "service message set (web page)");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(f) => fault(&f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_sign_in_and_compared_whole() {
        let a = csrf_token("vst-aaaa");
        assert_eq!(a.len(), 64);
        assert_ne!(a, csrf_token("vst-aaab"));
        assert!(!a.contains("aaaa"), "the token is not readable from it");
        assert!(constant_time_eq(a.as_bytes(), a.as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), &a.as_bytes()[..63]));
        assert!(!constant_time_eq(b"", a.as_bytes()));
    }

    #[test]
    fn assets_are_offline_and_inline_free() {
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("//cdn") && !text.contains("@import"));
        }
        // The icon's only URL is its XML namespace, which is never fetched.
        assert_eq!(FAVICON_SVG.matches("http").count(), 1);
        assert!(!INDEX_HTML.contains("<script>") && !INDEX_HTML.contains("style="));
        let inline_handler = INDEX_HTML
            .split_whitespace()
            .any(|w| w.starts_with("on") && w.split_once('=').is_some_and(|(a, _)| a.len() > 2));
        assert!(!inline_handler, "no inline event handlers");
        assert!(
            !APP_JS.contains("innerHTML"),
            "data goes in with textContent"
        );
    }
}
