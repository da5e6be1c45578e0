//! The vim dispatcher shared by SOAP and VI/JSON: one [`VimCall`] in, one [`Outcome`]
//! (or a [`Fault`]) out.
use crate::app::App;
use vsess_core::inventory::CreateKind;
use vsess_core::{Caller, Fault, SessionRecord, Value};
use vsess_wire::vim::{Outcome, VimCall};

pub async fn dispatch(
    app: &App,
    caller: &Caller,
    session: Option<&SessionRecord>,
    call: VimCall,
) -> Result<Outcome, Fault> {
    let svc = &app.svc;
    let value = |v: Value| Ok(Outcome::Value(Some(v)));
    match call {
        VimCall::RetrieveServiceContent => value(Value::Content(Box::new(svc.about().clone()))),
        VimCall::CurrentTime => value(Value::Time(svc.current_time(session)?)),
        VimCall::Fetch { obj, prop } => {
            Ok(Outcome::Value(svc.property(session, &obj, &prop).await?))
        }
        VimCall::RetrieveProperties { specs } => Ok(Outcome::Objects {
            ex: false,
            objects: svc.retrieve(session, &specs).await?,
        }),
        VimCall::RetrievePropertiesEx { specs } => Ok(Outcome::Objects {
            ex: true,
            objects: svc.retrieve(session, &specs).await?,
        }),
        VimCall::Login {
            user,
            password,
            locale,
        } => match svc
            .login_over(caller, session, &user, &password, locale.as_deref())
            .await
        {
            Ok((id, us)) => {
                // The key names the session; a digest of the id here cost a second SHA-256
                // per login.
                tracing::info!(user = %us.user_name, key = %us.key, ip = %caller.ip, "login");
                Ok(Outcome::NewSession(id, us))
            }
            Err(r) => {
                crate::login_failed(&user, caller.ip, &r, "");
                Err(r.fault)
            }
        },
        VimCall::Logout => {
            svc.logout(session).await?;
            if let Some(s) = session {
                tracing::info!(user = %s.user_name, key = %s.key, "logout");
            }
            Ok(Outcome::Empty)
        }
        VimCall::SetLocale { locale } => {
            svc.set_locale(session, &locale).await?;
            Ok(Outcome::Empty)
        }
        VimCall::UpdateServiceMessage { message } => {
            svc.update_service_message(session, &message).await?;
            Ok(Outcome::Empty)
        }
        VimCall::TerminateSession { keys } => {
            let r = svc.terminate_sessions(session, &keys).await;
            // The keys only when every one ended a session: then each is a public
            // UserSession.key. A refused call may carry anything, a session's secret id
            // (clients confuse the two) or a megabyte of text; at most 16 are named.
            let named = if r.is_ok() {
                &keys[..keys.len().min(16)]
            } else {
                &[]
            };
            tracing::info!(
                by = session.map(|s| &*s.user_name).unwrap_or("-"),
                count = keys.len(),
                keys = ?named,
                ok = r.is_ok(),
                "terminate sessions"
            );
            r?;
            Ok(Outcome::Empty)
        }
        VimCall::SessionIsActive { key, user } => value(Value::Bool(
            svc.session_is_active(session, &key, &user).await?,
        )),
        VimCall::AcquireCloneTicket => value(Value::Str(svc.acquire_clone_ticket(session).await?)),
        VimCall::CloneSession { ticket } => {
            let (id, us) = svc.clone_session(caller, session, &ticket).await?;
            tracing::info!(user = %us.user_name, key = %us.key, "clone session");
            Ok(Outcome::NewSession(id, us))
        }
        VimCall::ImpersonateUser { user, locale } => {
            let us = svc
                .impersonate_user(session, &user, locale.as_deref())
                .await?;
            tracing::info!(user = %us.user_name, key = %us.key, "impersonate user");
            Ok(Outcome::Session(us))
        }
        VimCall::AcquireLocalTicket { user } => Ok(Outcome::LocalTicket(
            svc.acquire_local_ticket(caller, &user).await?,
        )),
        VimCall::AcquireGenericServiceTicket { spec } => Ok(Outcome::ServiceTicket(
            svc.acquire_generic_service_ticket(session, spec).await?,
        )),
        VimCall::UnsupportedLogin { method } => Err(svc.unsupported_login(method)),
        VimCall::CreateDatacenter { folder, name } => value(Value::Ref(
            svc.create_entity(session, &folder, &name, CreateKind::Datacenter)
                .await?,
        )),
        VimCall::CreateFolder { folder, name } => value(Value::Ref(
            svc.create_entity(session, &folder, &name, CreateKind::Folder)
                .await?,
        )),
    }
}
