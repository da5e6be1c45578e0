//! The SOAP adapter: `/sdk`. Decode with `vsess_wire::soap`, call the core, encode.
use crate::app::App;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use vsess_core::{Caller, Fault, MoRef, SessionId, SessionRecord};
use vsess_wire::soap::{self, ObjectContent, PropertyFilterSpec, Value, VimCall};

const XML: &str = "text/xml; charset=utf-8";

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, XML)], body).into_response()
}

/// The one place a `Fault` becomes an HTTP response on `/sdk`.
fn fault_response(f: &Fault) -> Response {
    xml(StatusCode::INTERNAL_SERVER_ERROR, soap::fault(f))
}

fn with_cookie(body: String, id: &SessionId) -> Response {
    let mut r = xml(StatusCode::OK, body);
    if let Ok(v) = HeaderValue::from_str(&soap::set_cookie(id.expose())) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
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
            .unwrap_or_default()
            .chars()
            .take(512)
            .collect(),
    }
}

pub async fn sdk(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(soap::session_cookie);
    let caller = caller(addr, &headers, cookie);
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
    match dispatch(&app, &caller, session.as_ref(), call).await {
        Ok(r) => r,
        Err(f) => {
            tracing::debug!(method, fault = f.type_name(), "fault");
            fault_response(&f)
        }
    }
}

async fn dispatch(
    app: &App,
    caller: &Caller,
    session: Option<&SessionRecord>,
    call: VimCall,
) -> Result<Response, Fault> {
    let svc = &app.svc;
    let ok = |body: String| Ok(xml(StatusCode::OK, body));
    match call {
        VimCall::RetrieveServiceContent => ok(soap::service_content(svc.about())),
        VimCall::CurrentTime => ok(soap::current_time(&svc.current_time(session)?)),
        VimCall::Fetch { obj, prop } => {
            let v = property(app, session, &obj, &prop).await?;
            ok(soap::fetch(v.as_ref()))
        }
        VimCall::RetrieveProperties { specs } => ok(soap::retrieve_properties(
            &retrieve(app, session, &specs).await?,
        )),
        VimCall::RetrievePropertiesEx { specs } => ok(soap::retrieve_properties_ex(
            &retrieve(app, session, &specs).await?,
        )),
        VimCall::Login {
            user,
            password,
            locale,
        } => match svc.login(caller, &user, &password, locale.as_deref()).await {
            Ok((id, us)) => {
                tracing::info!(user = %us.user_name, key = %us.key, id = %id.digest().short(), ip = %caller.ip, "login");
                Ok(with_cookie(soap::user_session("Login", &us), &id))
            }
            Err(f) => {
                tracing::info!(user = %user, ip = %caller.ip, fault = f.type_name(), "login failed");
                Err(f)
            }
        },
        VimCall::Logout => {
            svc.logout(session).await?;
            if let Some(s) = session {
                tracing::info!(user = %s.user_name, key = %s.key, "logout");
            }
            ok(soap::empty("Logout"))
        }
        VimCall::SetLocale { locale } => {
            svc.set_locale(session, &locale).await?;
            ok(soap::empty("SetLocale"))
        }
        VimCall::UpdateServiceMessage { message } => {
            svc.update_service_message(session, &message).await?;
            ok(soap::empty("UpdateServiceMessage"))
        }
        VimCall::TerminateSession { keys } => {
            let r = svc.terminate_sessions(session, &keys).await;
            tracing::info!(
                by = session.map(|s| s.user_name.as_str()).unwrap_or("-"),
                count = keys.len(),
                ok = r.is_ok(),
                "terminate sessions"
            );
            r?;
            ok(soap::empty("TerminateSession"))
        }
        VimCall::SessionIsActive { key, user } => {
            let b = svc.session_is_active(session, &key, &user).await?;
            ok(soap::boolean("SessionIsActive", b))
        }
        VimCall::AcquireCloneTicket => ok(soap::string(
            "AcquireCloneTicket",
            &svc.acquire_clone_ticket(session).await?,
        )),
        VimCall::CloneSession { ticket } => {
            let (id, us) = svc.clone_session(caller, &ticket).await?;
            tracing::info!(user = %us.user_name, key = %us.key, id = %id.digest().short(), "clone session");
            Ok(with_cookie(soap::user_session("CloneSession", &us), &id))
        }
        VimCall::ImpersonateUser { user, locale } => {
            let us = svc
                .impersonate_user(session, &user, locale.as_deref())
                .await?;
            tracing::info!(user = %us.user_name, key = %us.key, "impersonate user");
            ok(soap::user_session("ImpersonateUser", &us))
        }
        VimCall::AcquireLocalTicket { user } => ok(soap::local_ticket(
            &svc.acquire_local_ticket(caller, &user).await?,
        )),
        VimCall::AcquireGenericServiceTicket { spec } => ok(soap::generic_service_ticket(
            &svc.acquire_generic_service_ticket(session, spec).await?,
        )),
        VimCall::UnsupportedLogin { method } => Err(svc.unsupported_login(method)),
    }
}

const SESSION_MANAGER_PROPS: &[&str] = &[
    "sessionList",
    "currentSession",
    "message",
    "messageLocaleList",
    "supportedLocaleList",
    "defaultLocale",
];
const SERVICE_INSTANCE_PROPS: &[&str] = &["content", "serverClock"];

/// Reads one property; `None` when it is unset.
async fn property<'a>(
    app: &'a App,
    session: Option<&SessionRecord>,
    obj: &MoRef,
    prop: &str,
) -> Result<Option<Value<'a>>, Fault> {
    let svc = &app.svc;
    Ok(match (obj.type_.as_str(), prop) {
        ("SessionManager", "sessionList") => {
            Some(Value::Sessions(svc.session_list(session).await?))
        }
        ("SessionManager", "currentSession") => svc.current_session(session).map(Value::Session),
        ("SessionManager", "message") => Some(Value::Str(svc.message(session).await?)),
        ("SessionManager", "messageLocaleList") => Some(Value::Strs(svc.message_locale_list())),
        ("SessionManager", "supportedLocaleList") => Some(Value::Strs(svc.supported_locale_list())),
        ("SessionManager", "defaultLocale") => Some(Value::Str(svc.default_locale())),
        ("ServiceInstance", "content") => Some(Value::Content(svc.about())),
        ("ServiceInstance", "serverClock") => Some(Value::Time(svc.current_time(session)?)),
        _ => return Err(Fault::InvalidProperty(prop.to_owned())),
    })
}

async fn retrieve<'a>(
    app: &'a App,
    session: Option<&SessionRecord>,
    specs: &[PropertyFilterSpec],
) -> Result<Vec<ObjectContent<'a>>, Fault> {
    let mut out = Vec::new();
    for spec in specs {
        for obj in &spec.objects {
            let all = match obj.type_.as_str() {
                "SessionManager" if obj.value == "SessionManager" => SESSION_MANAGER_PROPS,
                "ServiceInstance" if obj.value == "ServiceInstance" => SERVICE_INSTANCE_PROPS,
                "PropertyCollector" if obj.value == "propertyCollector" => &[],
                _ => return Err(Fault::ManagedObjectNotFound(obj.clone())),
            };
            let mut names: Vec<&str> = Vec::new();
            for p in spec.props.iter().filter(|p| p.type_ == obj.type_) {
                if p.all {
                    names.extend(all.iter().copied());
                } else {
                    names.extend(p.paths.iter().map(String::as_str));
                }
            }
            let mut props = Vec::new();
            for name in names {
                if let Some(v) = property(app, session, obj, name).await? {
                    props.push((name.to_owned(), v));
                }
            }
            out.push(ObjectContent {
                obj: obj.clone(),
                props,
            });
        }
    }
    Ok(out)
}
