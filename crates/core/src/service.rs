//! The SessionManager service: every method and property of `vim.SessionManager`,
//! protocol-neutral. Adapters call [`SessionService::authenticate`] once per request and
//! pass the result to the method they dispatch to.
use crate::clock::Clock;
use crate::credcache::CredentialCache;
use crate::fault::{Fault, MoRef};
use crate::ids::{random_hex, IdDigest, SessionId, SessionKey};
use crate::inventory::ComputePolicy;
use crate::password::{dummy_hash, verify_password};
use crate::policy::Policy;
use crate::privilege::{Privilege, Role};
use crate::session::{Expiry, SessionRecord, UserSession};
use crate::stats::Ended;
use crate::store::{LockState, Standing, Store};
use crate::ticket::{GenericServiceTicket, LocalTicket, ServiceRequestSpec, Ticket, TicketKind};
use crate::ticketcount::{MAX_SERVICE_TICKETS_PER_SESSION, MAX_SERVICE_TICKET_BYTES_PER_SESSION};
use crate::user::{User, UserName};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::net::IpAddr;
use std::sync::Arc;

/// Local-ticket passwords carry this prefix, so that Login only looks for a ticket when
/// the password can be one.
pub const LOCAL_TICKET_PREFIX: &str = "vsess-lt-";
/// Clone tickets carry this prefix, like vCenter's `cst-…` tickets.
pub const CLONE_TICKET_PREFIX: &str = "cst-";
/// Longest service message accepted by UpdateServiceMessage, in bytes.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// Who is calling: the credential the protocol carried, and where the call came from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub session: Option<SessionId>,
    pub ip: IpAddr,
    pub user_agent: String,
}

/// Why a login was refused, for the server's log: the caller is told only `InvalidLogin`,
/// which does not say whether the name exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a user name (`user@domain` or `DOMAIN\user`).
    BadName,
    UnknownUser,
    /// Locked out after repeated failures (a correct password too).
    Locked,
    WrongPassword,
    /// A SOAP or VI/JSON `Login` from a caller whose session is still live: it would
    /// replace the client's cookie and leave the first session holding a slot.
    SessionActive,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadName => "not a user name",
            Refusal::UnknownUser => "no such user",
            Refusal::Locked => "locked out",
            Refusal::WrongPassword => "wrong password",
            Refusal::SessionActive => "the caller's session is still live (Logout first)",
        }
    }
}

/// A refused login or token request: the fault the caller gets, and why, when it was the
/// credentials ([`Refusal`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub fault: Fault,
    pub why: Option<Refusal>,
}

impl Refused {
    pub(crate) fn invalid(why: Refusal) -> Self {
        Self {
            fault: Fault::InvalidLogin,
            why: Some(why),
        }
    }
}

impl From<Fault> for Refused {
    fn from(fault: Fault) -> Self {
        Self { fault, why: None }
    }
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Fault::from(e).into()
    }
}

/// Checks a password against a stored hash. The server runs this off the async workers,
/// because argon2id deliberately takes tens of milliseconds.
#[async_trait]
pub trait CredentialVerifier: Send + Sync + 'static {
    async fn verify(&self, phc: String, password: String) -> bool;
}

/// Verifies on the calling thread; for tests and tools.
#[derive(Debug, Default)]
pub struct InlineVerifier;

#[async_trait]
impl CredentialVerifier for InlineVerifier {
    async fn verify(&self, phc: String, password: String) -> bool {
        verify_password(&phc, &password)
    }
}

/// Where AcquireLocalTicket puts its one-time password files (the server's data directory).
pub trait LocalTicketSink: Send + Sync + 'static {
    /// Writes `secret` to a new file readable only by the server's own OS user; returns its path.
    fn write(&self, user: &str, secret: &str) -> Result<String, String>;
    /// Removes a ticket file once it is used or expired.
    fn remove(&self, path: &str);
}

/// How many of a user's sessions ImpersonateUser looks at before it looks at all of them.
const IMPERSONATION_PROBE: usize = 16;

/// `vim.AboutInfo`, as RetrieveServiceContent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AboutInfo {
    pub name: String,
    pub full_name: String,
    pub vendor: String,
    pub version: String,
    pub build: String,
    pub os_type: String,
    pub product_line_id: String,
    pub api_type: String,
    pub api_version: String,
    pub instance_uuid: String,
    pub license_product_name: String,
    pub license_product_version: String,
}

/// The longest URL or method a service ticket's spec may name.
pub const MAX_SPEC_LEN: usize = 8192;

pub struct SessionService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) policy: Policy,
    verifier: Arc<dyn CredentialVerifier>,
    local_tickets: Option<Arc<dyn LocalTicketSink>>,
    about: AboutInfo,
    pub(crate) compute_policies: Vec<ComputePolicy>,
    credentials: CredentialCache,
    /// Password verifications take turns per user name, so that the lockout counts each.
    turns: crate::turns::Turns,
    /// The service tickets each session holds (see `ticketcount`).
    service_tickets: crate::ticketcount::TicketCounts,
    /// When the session limit was last reported in the log (Unix seconds), so that a
    /// flood of refused logins writes one line a minute, not one each.
    limit_logged: std::sync::atomic::AtomicI64,
    /// What happened since start, for `/metrics`.
    pub(crate) stats: crate::stats::Stats,
}

impl SessionService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: Policy,
        verifier: Arc<dyn CredentialVerifier>,
        about: AboutInfo,
    ) -> Self {
        let credentials = CredentialCache::new(policy.credential_cache_ttl);
        Self {
            store,
            clock,
            policy,
            verifier,
            local_tickets: None,
            about,
            compute_policies: Vec::new(),
            credentials,
            turns: Default::default(),
            service_tickets: Default::default(),
            limit_logged: std::sync::atomic::AtomicI64::new(i64::MIN),
            stats: Default::default(),
        }
    }

    /// The compute policies `com.vmware.vcenter.compute.policies.list` reports.
    pub fn with_compute_policies(mut self, policies: Vec<ComputePolicy>) -> Self {
        self.compute_policies = policies;
        self
    }

    pub fn with_local_tickets(mut self, sink: Arc<dyn LocalTicketSink>) -> Self {
        self.local_tickets = Some(sink);
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The counters since start: sessions created and ended, refused logins, lockouts.
    pub fn stats(&self) -> crate::stats::StatsSnapshot {
        self.stats.snapshot()
    }

    /// A login refused for its credentials, counted.
    pub(crate) fn refuse(&self, why: Refusal) -> Refused {
        self.stats.refused(why);
        Refused::invalid(why)
    }

    /// Ends the session with this key; counts it if it was live. A session found expired
    /// or whose user was removed is logged here, with its user and key (the adapters log
    /// Logout and TerminateSession with who asked; [`SessionService::reap`] logs the
    /// sessions it ends).
    pub(crate) async fn end(
        &self,
        key: &str,
        why: crate::stats::Ended,
    ) -> Result<Option<SessionRecord>, Fault> {
        let ended = self.store.remove_session(key).await?;
        if let Some(rec) = &ended {
            self.stats.ended(why, 1);
            if matches!(why, Ended::Expired | Ended::UserRemoved) {
                tracing::info!(
                    user = %rec.user_name,
                    key = %rec.key,
                    reason = why.as_str(),
                    "session ended"
                );
            }
        }
        Ok(ended)
    }

    pub fn about(&self) -> &AboutInfo {
        &self.about
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn expired(&self, rec: &SessionRecord, now: DateTime<Utc>) -> bool {
        rec.expired_by(now, self.expiry())
    }

    fn expiry(&self) -> Expiry {
        Expiry {
            idle: self.policy.idle_timeout,
            lifetime: self.policy.max_lifetime,
        }
    }

    /// Resolves the caller's credential to a live session and records the call.
    /// An unknown, ended or expired credential is `Ok(None)`: anonymous.
    pub async fn authenticate(&self, caller: &Caller) -> Result<Option<SessionRecord>, Fault> {
        let Some(id) = &caller.session else {
            return Ok(None);
        };
        let Some(mut rec) = self.lookup(id).await? else {
            return Ok(None);
        };
        // Compared without formatting the address: this runs on every call.
        let same_ip = rec
            .ip_address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a == caller.ip);
        if !same_ip || (!caller.user_agent.is_empty() && *rec.user_agent != *caller.user_agent) {
            rec.ip_address = ip_text(caller.ip);
            if !caller.user_agent.is_empty() {
                rec.user_agent = caller.user_agent.as_str().into();
            }
            self.store.update_session(&rec).await?;
        }
        Ok(Some(rec))
    }

    /// Resolves a session id to its live session and records one call, without changing
    /// the session's recorded client (`ipAddress`, `userAgent`).
    pub async fn lookup(&self, id: &SessionId) -> Result<Option<SessionRecord>, Fault> {
        let now = self.clock.now();
        let Some((mut rec, standing)) = self
            .store
            .touch_session_standing(&id.digest(), now, self.expiry())
            .await?
        else {
            return Ok(None);
        };
        if self.expired(&rec, now) {
            self.end(rec.key.as_str(), Ended::Expired).await?;
            return Ok(None);
        }
        // The user's current role applies, and a removed user's sessions end, also when
        // an account of the same name has been added since (its id differs).
        match standing {
            Some(s) if s.same_account => {
                if s.role != rec.role {
                    rec.role = s.role;
                    self.store.update_session(&rec).await?;
                }
            }
            _ => {
                self.end(rec.key.as_str(), Ended::UserRemoved).await?;
                return Ok(None);
            }
        }
        // A session that impersonates another user lasts only while the user who logged
        // in may still do so: removed, or without Sessions.ImpersonateUser now, they do
        // not keep the rights they took on.
        if rec.login_user != rec.user_name && !self.may_still_impersonate(&rec).await? {
            self.end(rec.key.as_str(), Ended::UserRemoved).await?;
            return Ok(None);
        }
        rec.last_active_time = now;
        rec.call_count += 1;
        Ok(Some(rec))
    }

    /// Whether the user who logged in to `rec` still exists and holds
    /// Sessions.ImpersonateUser.
    async fn may_still_impersonate(&self, rec: &SessionRecord) -> Result<bool, Fault> {
        let login_user = self.store.get_user(&rec.login_user).await?;
        Ok(login_user.is_some_and(|u| u.role.has(Privilege::SessionsImpersonateUser)))
    }

    /// The session, if it holds `privilege`; otherwise the fault vCenter raises.
    pub fn require<'a>(
        &self,
        session: Option<&'a SessionRecord>,
        object: MoRef,
        privilege: Privilege,
    ) -> Result<&'a SessionRecord, Fault> {
        match session {
            None => Err(Fault::NotAuthenticated { object, privilege }),
            Some(s) if s.role.has(privilege) => Ok(s),
            Some(_) => Err(Fault::NoPermission { object, privilege }),
        }
    }

    pub(crate) fn sm(
        &self,
        session: Option<&SessionRecord>,
        p: Privilege,
    ) -> Result<SessionRecord, Fault> {
        self.require(session, MoRef::session_manager(), p).cloned()
    }

    fn check_locale(&self, locale: Option<&str>) -> Result<String, Fault> {
        match locale {
            None | Some("") => Ok(self.policy.default_locale.clone()),
            Some(l) if self.policy.locale_supported(l) => Ok(l.to_owned()),
            Some(l) => Err(Fault::InvalidLocale(l.to_owned())),
        }
    }

    /// Spends one argon2 verification, so that every failed login costs the same.
    async fn burn(&self, password: &str) {
        let _ = self
            .verifier
            .verify(dummy_hash().to_owned(), password.to_owned())
            .await;
    }

    /// A new session of `user`. A clone (`clone_of`) keeps its source's login: the user
    /// who logged in (who may be impersonating `user`) and the login time, which the
    /// maximum age (`tokenLifetime`) counts from, so that cloning does not renew it.
    #[allow(clippy::too_many_arguments)]
    async fn new_session(
        &self,
        caller: &Caller,
        user: &str,
        user_id: Arc<str>,
        full_name: &str,
        role: Role,
        locale: Arc<str>,
        clone_of: Option<&SessionRecord>,
    ) -> Result<(SessionId, UserSession), Fault> {
        let now = self.clock.now();
        let id = SessionId::generate();
        let rec = SessionRecord {
            digest: id.digest(),
            key: SessionKey::generate(),
            user_name: user.into(),
            full_name: if full_name.is_empty() {
                user
            } else {
                full_name
            }
            .into(),
            role,
            login_user: clone_of.map_or_else(|| user.into(), |s| s.login_user.clone()),
            login_time: clone_of.map_or(now, |s| s.login_time),
            last_active_time: now,
            message_locale: locale.clone(),
            locale,
            extension_session: false,
            ip_address: ip_text(caller.ip),
            user_agent: caller.user_agent.as_str().into(),
            call_count: 0,
            user_id,
        };
        let limit = self.policy.max_sessions;
        let mut inserted = self.store.insert_session(rec.clone(), limit).await?;
        if !inserted && self.reap().await? > 0 {
            inserted = self.store.insert_session(rec.clone(), limit).await?;
        }
        if !inserted {
            use std::sync::atomic::Ordering;
            let last = self.limit_logged.load(Ordering::Relaxed);
            let now_s = now.timestamp();
            if now_s.saturating_sub(last) >= 60
                && self
                    .limit_logged
                    .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    limit,
                    user,
                    "session limit reached: logins are refused until sessions end \
                     (config.vmacore.soap.maxSessionCount; logged at most once a minute)"
                );
            }
            self.stats.limit_refused();
            return Err(Fault::SessionLimit { limit });
        }
        self.stats.created();
        Ok((id, rec.view()))
    }

    // ---- methods -------------------------------------------------------------------

    /// `Login` without the vim endpoints' live-session check ([`login_over`](Self::login_over)):
    /// creates a new session whatever cookie the caller carries.
    pub async fn login(
        &self,
        caller: &Caller,
        user: &str,
        password: &str,
        locale: Option<&str>,
    ) -> Result<(SessionId, UserSession), Fault> {
        self.login_explained(caller, user, password, locale)
            .await
            .map_err(|r| r.fault)
    }

    /// `Login` on the vim endpoints (SOAP, VI/JSON), where `current` is the live session
    /// the caller's cookie resolved to. As in vcsim, a live session cannot log in again:
    /// the new session's cookie would replace the client's and orphan the first, which
    /// would then hold a slot of `maxSessionCount` until it idled out. That is refused with
    /// [`Fault::SessionActive`] (`InvalidLogin` on the wire, with a message that says why)
    /// before any password is checked: the caller already holds the session, so nothing
    /// about any credentials is revealed. The call still counts as activity of that
    /// session (the adapters resolve the session before dispatch, as for any call). An
    /// expired or unknown cookie resolves to no session, so a client that logs in again
    /// after `NotAuthenticated` while still sending its stale cookie (pyVmomi's
    /// session-oriented stub) is not affected.
    pub async fn login_over(
        &self,
        caller: &Caller,
        current: Option<&SessionRecord>,
        user: &str,
        password: &str,
        locale: Option<&str>,
    ) -> Result<(SessionId, UserSession), Refused> {
        if current.is_some() {
            self.stats.refused(Refusal::SessionActive);
            return Err(Refused {
                fault: Fault::SessionActive,
                why: Some(Refusal::SessionActive),
            });
        }
        self.login_explained(caller, user, password, locale).await
    }

    /// [`login`](Self::login), saying why a refused login was refused (for the log).
    pub async fn login_explained(
        &self,
        caller: &Caller,
        user: &str,
        password: &str,
        locale: Option<&str>,
    ) -> Result<(SessionId, UserSession), Refused> {
        let locale = self.check_locale(locale)?;
        let now = self.clock.now();
        let Some(name) = UserName::parse(user) else {
            self.burn(password).await;
            return Err(self.refuse(Refusal::BadName));
        };
        if password.starts_with(LOCAL_TICKET_PREFIX) {
            if let Some((user, taken)) = self.redeem_local_ticket(&name, password, now).await? {
                return match self.login_as(caller, &user, locale).await {
                    Ok(r) => Ok(r),
                    Err(f @ Fault::NoPermission { .. }) => Err(f.into()),
                    Err(f) => Err(self.give_back(taken, f).await.into()),
                };
            }
        }
        let user = self.check_password(&name, password, now).await?;
        Ok(self.login_as(caller, &user, locale).await?)
    }

    /// Checks a user's password under the lockout policy. Every failure (unknown user,
    /// locked account, wrong password) is `InvalidLogin` and costs one argon2 verification.
    pub(crate) async fn check_password(
        &self,
        name: &UserName,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<User, Refused> {
        let stored = self.store.lock_state(name.as_str()).await?;
        // A refusal waits for the name's turn as a verification does, whether the user
        // exists or not: concurrent guesses at one name take as long either way.
        let Some(user) = self.store.get_user_fresh(name.as_str()).await? else {
            let _turn = self.turns.take(name.as_str()).await;
            self.burn(password).await;
            return Err(self.refuse(Refusal::UnknownUser));
        };
        let account = user.lock_key();
        let lock = stored.clone().for_account(&account);
        if lock.locked_at(now) {
            let _turn = self.turns.take(name.as_str()).await;
            self.burn(password).await;
            return Err(self.refuse(Refusal::Locked));
        }
        if self
            .credentials
            .hit(name.as_str(), password, &user.password_hash, now)
        {
            // A password verified moments ago: no guess can be here.
            if stored != LockState::default() {
                self.store.clear_login_failures(name.as_str()).await?;
            }
            return Ok(user);
        }
        let turn = self.turns.take(name.as_str()).await;
        // Read again in this user's turn: the attempts before it may have failed, locked
        // the user out, or verified this very password.
        let stored = self.store.lock_state(name.as_str()).await?;
        if stored.clone().for_account(&account).locked_at(now) {
            self.burn(password).await;
            drop(turn);
            return Err(self.refuse(Refusal::Locked));
        }
        let cached = self
            .credentials
            .hit(name.as_str(), password, &user.password_hash, now);
        if !cached
            && !self
                .verifier
                .verify(user.password_hash.clone(), password.to_owned())
                .await
        {
            self.record_failure(name, &account, now).await?;
            return Err(self.refuse(Refusal::WrongPassword));
        }
        if !cached {
            self.credentials
                .insert(name.as_str(), password, &user.password_hash, now);
        }
        if stored != LockState::default() {
            self.store.clear_login_failures(name.as_str()).await?;
        }
        Ok(user)
    }

    /// Counts a wrong password under the lockout policy, and tells the operator when it
    /// locks the user out.
    async fn record_failure(
        &self,
        name: &UserName,
        account: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        let l = &self.policy.lockout;
        if l.max_failures == 0 {
            return Ok(());
        }
        let state = self
            .store
            .record_login_failure(name.as_str(), account, now, l.max_failures, l.lock_duration)
            .await?;
        if let Some(until) = state.locked_until.filter(|_| state.locked_at(now)) {
            self.stats.locked_out();
            self.credentials.forget(name.as_str());
            // Callers only ever see InvalidLogin; the operator learns of it here.
            tracing::warn!(
                user = %name.as_str(),
                failures = l.max_failures,
                until = %until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "user locked out after repeated failed logins (`vsess user unlock` ends it early)"
            );
        }
        Ok(())
    }

    async fn login_as(
        &self,
        caller: &Caller,
        user: &User,
        locale: String,
    ) -> Result<(SessionId, UserSession), Fault> {
        if !user.role.has(Privilege::SystemView) {
            return Err(Fault::NoPermission {
                object: MoRef::new("Folder", "group-d1"),
                privilege: Privilege::SystemView,
            });
        }
        self.new_session(
            caller,
            user.name.as_str(),
            user.id.as_str().into(),
            &user.full_name,
            user.role,
            locale.into(),
            None,
        )
        .await
    }

    /// The user a local ticket logs in, and the ticket, taken (see [`Self::give_back`]).
    async fn redeem_local_ticket(
        &self,
        name: &UserName,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, (IdDigest, Ticket))>, Fault> {
        let digest = IdDigest::of(password);
        let Some(t) = self.store.take_ticket(&digest).await? else {
            return Ok(None);
        };
        let TicketKind::Local { user, path } = &t.kind else {
            return Ok(None);
        };
        if let Some(sink) = &self.local_tickets {
            sink.remove(path);
        }
        if user != name.as_str() || t.expires <= now {
            return Ok(None);
        }
        match self.store.get_user_fresh(name.as_str()).await {
            Ok(Some(u)) => Ok(Some((u, (digest, t)))),
            Ok(None) => Ok(None),
            Err(e) => Err(self.give_back((digest, t), e.into()).await),
        }
    }

    /// Puts back a ticket taken for a redemption that then failed on the server's side
    /// (the store, the session limit), so that its holder can try again until it expires,
    /// as it could had the redemption not begun. Returns `fault`, the failure to report.
    async fn give_back(&self, (digest, ticket): (IdDigest, Ticket), fault: Fault) -> Fault {
        if let Err(e) = self.store.put_ticket(digest, ticket).await {
            tracing::warn!("a ticket taken by a redemption that failed is lost: {e}");
        }
        fault
    }

    /// `Logout`: ends the caller's session.
    pub async fn logout(&self, session: Option<&SessionRecord>) -> Result<(), Fault> {
        let s = self.sm(session, Privilege::SystemView)?;
        self.end(s.key.as_str(), Ended::Logout).await?;
        Ok(())
    }

    /// `SetLocale`.
    pub async fn set_locale(
        &self,
        session: Option<&SessionRecord>,
        locale: &str,
    ) -> Result<(), Fault> {
        let mut s = self.sm(session, Privilege::SystemView)?;
        let locale = self.check_locale(Some(locale))?;
        let locale: Arc<str> = locale.into();
        s.message_locale = locale.clone();
        s.locale = locale;
        self.store.update_session(&s).await?;
        Ok(())
    }

    /// `UpdateServiceMessage`.
    pub async fn update_service_message(
        &self,
        session: Option<&SessionRecord>,
        message: &str,
    ) -> Result<(), Fault> {
        self.sm(session, Privilege::SessionsGlobalMessage)?;
        if message.len() > MAX_MESSAGE_LEN {
            return Err(Fault::invalid_argument(
                "message",
                format!("The message is longer than {MAX_MESSAGE_LEN} bytes."),
            ));
        }
        self.store.set_message(message).await?;
        Ok(())
    }

    /// `TerminateSession`: ends the sessions in order; stops at the first bad key.
    pub async fn terminate_sessions(
        &self,
        session: Option<&SessionRecord>,
        keys: &[String],
    ) -> Result<(), Fault> {
        let me = self.sm(session, Privilege::SessionsTerminateSession)?;
        for key in keys {
            if key == me.key.as_str() {
                return Err(Fault::invalid_argument(
                    "sessionId",
                    "A session cannot terminate itself; use Logout to end the current session.",
                ));
            }
            // An expired session not yet reaped is not a logged-on session: it is ended
            // as expired, and reported not found, as vCenter does.
            let live = match self.store.session_by_key(key).await? {
                Some(rec) if self.expired(&rec, self.clock.now()) => {
                    self.end(key, Ended::Expired).await?;
                    false
                }
                Some(_) => self.end(key, Ended::Terminated).await?.is_some(),
                None => false,
            };
            if !live {
                return Err(Fault::NotFound(format!(
                    "The session '{key}' is not a logged-on session."
                )));
            }
        }
        Ok(())
    }

    /// `SessionIsActive`: whether the session with this key is live and belongs to `user`.
    pub async fn session_is_active(
        &self,
        session: Option<&SessionRecord>,
        key: &str,
        user: &str,
    ) -> Result<bool, Fault> {
        self.sm(session, Privilege::SessionsValidateSession)?;
        let Some(rec) = self.store.session_by_key(key).await? else {
            return Ok(false);
        };
        if self.expired(&rec, self.clock.now()) {
            return Ok(false);
        }
        if UserName::parse(user).is_none_or(|u| u.as_str() != &*rec.user_name) {
            return Ok(false);
        }
        // Live only while its user is: a removed user's session (or one of an earlier
        // account of the same name) ends on its next call.
        let account = self.store.get_user(&rec.user_name).await?;
        Ok(account.is_some_and(|a| Standing::of(&a, &rec).same_account))
    }

    /// `AcquireCloneTicket`.
    pub async fn acquire_clone_ticket(
        &self,
        session: Option<&SessionRecord>,
    ) -> Result<String, Fault> {
        let s = self.sm(session, Privilege::SystemView)?;
        let ticket = format!("{CLONE_TICKET_PREFIX}{}", random_hex(20));
        let t = Ticket {
            kind: TicketKind::Clone { session: s.key },
            expires: self.clock.now() + self.policy.clone_ticket_ttl,
        };
        self.store.put_ticket(IdDigest::of(&ticket), t).await?;
        Ok(ticket)
    }

    /// `CloneSession`: a new session for the ticket's user. The ticket works once, and
    /// only while its session lives.
    ///
    /// `current` is the live session the caller's cookie resolved to. As with
    /// [`login_over`](Self::login_over), a caller that still holds a live session is
    /// refused with [`Fault::SessionActive`]: the clone's cookie would replace the
    /// client's and orphan that session. Real clients clone from a new stub, with no
    /// cookie (pyVmomi, govmomi). The ticket is left unused, so the caller can log out and
    /// redeem it.
    pub async fn clone_session(
        &self,
        caller: &Caller,
        current: Option<&SessionRecord>,
        ticket: &str,
    ) -> Result<(SessionId, UserSession), Fault> {
        if current.is_some() {
            self.stats.refused(Refusal::SessionActive);
            return Err(Fault::SessionActive);
        }
        let now = self.clock.now();
        let digest = IdDigest::of(ticket);
        let Some(t) = self.store.take_ticket(&digest).await? else {
            return Err(Fault::InvalidLogin);
        };
        let TicketKind::Clone { session } = &t.kind else {
            return Err(Fault::InvalidLogin);
        };
        if t.expires <= now {
            return Err(Fault::InvalidLogin);
        }
        let src = match self.store.session_by_key(session.as_str()).await {
            Ok(Some(src)) => src,
            Ok(None) => return Err(Fault::InvalidLogin),
            Err(e) => return Err(self.give_back((digest, t), e.into()).await),
        };
        if self.expired(&src, now) {
            return Err(Fault::InvalidLogin);
        }
        let cloned = self
            .new_session(
                caller,
                &src.user_name,
                src.user_id.clone(),
                &src.full_name,
                src.role,
                src.locale.clone(),
                Some(&src),
            )
            .await;
        match cloned {
            Ok(r) => Ok(r),
            Err(f) => Err(self.give_back((digest, t), f).await),
        }
    }

    /// `ImpersonateUser`: the caller's session takes on the identity of a user who has a
    /// live session.
    pub async fn impersonate_user(
        &self,
        session: Option<&SessionRecord>,
        user: &str,
        locale: Option<&str>,
    ) -> Result<UserSession, Fault> {
        let mut s = self.sm(session, Privilege::SessionsImpersonateUser)?;
        let locale = match locale {
            None | Some("") => s.locale.clone(),
            l => self.check_locale(l)?.into(),
        };
        let Some(name) = UserName::parse(user) else {
            return Err(Fault::InvalidLogin);
        };
        let now = self.clock.now();
        let Some(account) = self.store.get_user(name.as_str()).await? else {
            return Err(Fault::InvalidLogin);
        };
        // Any live session of the user but the caller's own will do: look at the first
        // few, and at all of them only if those are all expired (or the caller's). A
        // session of an earlier account of the same name does not count.
        let usable = |r: &SessionRecord| {
            r.key != s.key && !self.expired(r, now) && *r.user_id == *account.id
        };
        let first = self
            .store
            .sessions_of_user(name.as_str(), IMPERSONATION_PROBE)
            .await?;
        let full = first.len() == IMPERSONATION_PROBE;
        let mut target = first.into_iter().find(|r| usable(r));
        if target.is_none() && full {
            let all = self
                .store
                .sessions_of_user(name.as_str(), usize::MAX)
                .await?;
            target = all.into_iter().find(|r| usable(r));
        }
        let Some(target) = target else {
            return Err(Fault::InvalidLogin);
        };
        s.user_name = target.user_name;
        s.full_name = target.full_name;
        s.role = target.role;
        s.user_id = target.user_id;
        s.message_locale = locale.clone();
        s.locale = locale;
        if !self.store.update_session(&s).await? {
            return Err(Fault::not_authenticated(Privilege::SessionsImpersonateUser));
        }
        Ok(s.view())
    }

    /// `AcquireLocalTicket`: a one-time password in a file only the server's OS user can
    /// read. Only for clients on the server's own host.
    pub async fn acquire_local_ticket(
        &self,
        caller: &Caller,
        user: &str,
    ) -> Result<LocalTicket, Fault> {
        if !caller.ip.is_loopback() {
            return Err(Fault::InvalidRequest(
                "AcquireLocalTicket is only available to clients on the server's own host.".into(),
            ));
        }
        let Some(sink) = &self.local_tickets else {
            return Err(Fault::NotSupported(
                "This server has no place to write local tickets.".into(),
            ));
        };
        let Some(name) = UserName::parse(user) else {
            return Err(Fault::InvalidLogin);
        };
        let Some(u) = self.store.get_user(name.as_str()).await? else {
            return Err(Fault::InvalidLogin);
        };
        if !u.role.has(Privilege::SystemView) {
            return Err(Fault::NoPermission {
                object: MoRef::new("Folder", "group-d1"),
                privilege: Privilege::SystemView,
            });
        }
        let secret = format!("{LOCAL_TICKET_PREFIX}{}", random_hex(24));
        let path = sink
            .write(name.as_str(), &secret)
            .map_err(|e| Fault::SystemError(format!("Cannot write the local ticket: {e}")))?;
        let t = Ticket {
            kind: TicketKind::Local {
                user: name.as_str().to_owned(),
                path: path.clone(),
            },
            expires: self.clock.now() + self.policy.local_ticket_ttl,
        };
        self.store.put_ticket(IdDigest::of(&secret), t).await?;
        Ok(LocalTicket {
            user_name: name.as_str().to_owned(),
            password_file_path: path,
        })
    }

    /// `AcquireGenericServiceTicket`: a one-time credential for one request matching `spec`.
    pub async fn acquire_generic_service_ticket(
        &self,
        session: Option<&SessionRecord>,
        spec: ServiceRequestSpec,
    ) -> Result<GenericServiceTicket, Fault> {
        let s = self.sm(session, Privilege::SystemAnonymous)?;
        // Every ticket is kept (in the log too) until it expires: a spec far longer than
        // any real URL or method name would let a session fill the disk.
        let too_long = |field: &str, text: &str| {
            (text.len() > MAX_SPEC_LEN).then(|| {
                Fault::invalid_argument(
                    field,
                    format!("Longer than {MAX_SPEC_LEN} bytes ({}).", text.len()),
                )
            })
        };
        if let Some(f) = match &spec {
            ServiceRequestSpec::Http { method, url } => too_long("spec.url", url)
                .or_else(|| too_long("spec.method", method.as_deref().unwrap_or_default())),
            ServiceRequestSpec::Vmomi { method } => too_long("spec.method", method),
        } {
            return Err(f);
        }
        let host_name = match &spec {
            ServiceRequestSpec::Http { url, .. } => {
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"))
                    .ok_or_else(|| {
                        Fault::invalid_argument(
                            "spec.url",
                            "The URL must start with https:// or http://.",
                        )
                    })?;
                let host = rest.split('/').next().unwrap_or_default();
                if host.is_empty() {
                    return Err(Fault::invalid_argument("spec.url", "The URL has no host."));
                }
                Some(host.to_owned())
            }
            ServiceRequestSpec::Vmomi { method } => {
                if method.is_empty() {
                    return Err(Fault::invalid_argument(
                        "spec.method",
                        "The method is empty.",
                    ));
                }
                None
            }
        };
        let now = self.clock.now();
        let expires = now + self.policy.service_ticket_ttl;
        let size = match &spec {
            ServiceRequestSpec::Http { method, url } => {
                url.len() + method.as_ref().map_or(0, String::len)
            }
            ServiceRequestSpec::Vmomi { method } => method.len(),
        };
        let (max, max_bytes) = (
            MAX_SERVICE_TICKETS_PER_SESSION,
            MAX_SERVICE_TICKET_BYTES_PER_SESSION,
        );
        if !self
            .service_tickets
            .admit(&s.key, now, (expires, size), (max, max_bytes))
        {
            return Err(Fault::InvalidRequest(format!(
                "This session already holds as many service tickets as it may ({max}, or \
                 {max_bytes} bytes of specs) until some expire ({} s after each was issued).",
                self.policy.service_ticket_ttl.num_seconds()
            )));
        }
        let id = random_hex(20);
        let session = s.key;
        let t = Ticket {
            kind: TicketKind::Service {
                session: session.clone(),
                spec,
            },
            expires,
        };
        if let Err(e) = self.store.put_ticket(IdDigest::of(&id), t).await {
            self.service_tickets.release(&session, expires);
            return Err(e.into());
        }
        Ok(GenericServiceTicket {
            id,
            host_name,
            ssl_thumbprint: None,
        })
    }

    /// Redeems a generic service ticket for one request; returns the session it speaks for.
    /// The ticket is consumed whether or not the request matches its spec.
    pub async fn redeem_service_ticket(
        &self,
        ticket: &str,
        request: &ServiceRequestSpec,
    ) -> Result<UserSession, Fault> {
        let now = self.clock.now();
        let Some(t) = self.store.take_ticket(&IdDigest::of(ticket)).await? else {
            return Err(Fault::InvalidLogin);
        };
        let TicketKind::Service { session, spec } = t.kind else {
            return Err(Fault::InvalidLogin);
        };
        self.service_tickets.release(&session, t.expires);
        let matches = match (&spec, request) {
            (
                ServiceRequestSpec::Http {
                    method: m1,
                    url: u1,
                },
                ServiceRequestSpec::Http {
                    method: m2,
                    url: u2,
                },
            ) => u1 == u2 && (m1.is_none() || m1 == m2),
            (ServiceRequestSpec::Vmomi { method: a }, ServiceRequestSpec::Vmomi { method: b }) => {
                a == b
            }
            _ => false,
        };
        if t.expires <= now || !matches {
            return Err(Fault::InvalidLogin);
        }
        match self.store.session_by_key(session.as_str()).await? {
            Some(src) if !self.expired(&src, now) => Ok(src.view()),
            _ => Err(Fault::InvalidLogin),
        }
    }

    /// `LoginBySSPI`, `LoginByToken`, `LoginExtensionByCertificate`,
    /// `LoginExtensionBySubjectName`: not available.
    pub fn unsupported_login(&self, method: &str) -> Fault {
        match method {
            "LoginBySSPI" => Fault::NotSupported(
                "LoginBySSPI (Windows SSPI pass-through) is not supported by this server; use Login."
                    .into(),
            ),
            _ => Fault::NotSupported(format!(
                "{method} is not implemented yet: this server does not yet accept SSO tokens or extension certificates; use Login or CloneSession."
            )),
        }
    }

    // ---- properties ----------------------------------------------------------------

    /// `currentSession`: readable anonymously; `None` without a session.
    pub fn current_session(&self, session: Option<&SessionRecord>) -> Option<UserSession> {
        session.map(SessionRecord::view)
    }

    /// `sessionList`: every live session, oldest first. Expired ones are reaped.
    pub async fn session_list(
        &self,
        session: Option<&SessionRecord>,
    ) -> Result<Vec<UserSession>, Fault> {
        self.sm(session, Privilege::SessionsTerminateSession)?;
        let now = self.clock.now();
        let mut live = Vec::new();
        for rec in self.store.list_sessions().await? {
            if self.expired(&rec, now) {
                self.end(rec.key.as_str(), Ended::Expired).await?;
            } else {
                live.push(rec.view());
            }
        }
        live.sort_by(|a, b| a.login_time.cmp(&b.login_time).then(a.key.cmp(&b.key)));
        Ok(live)
    }

    /// `message`.
    pub async fn message(&self, session: Option<&SessionRecord>) -> Result<String, Fault> {
        self.sm(session, Privilege::SystemView)?;
        Ok(self.store.message().await?)
    }

    /// `messageLocaleList`.
    pub fn message_locale_list(&self) -> Vec<String> {
        self.policy.supported_locales.clone()
    }

    /// `supportedLocaleList`.
    pub fn supported_locale_list(&self) -> Vec<String> {
        self.policy.supported_locales.clone()
    }

    /// `defaultLocale`.
    pub fn default_locale(&self) -> String {
        self.policy.default_locale.clone()
    }

    /// `ServiceInstance.CurrentTime`.
    pub fn current_time(&self, session: Option<&SessionRecord>) -> Result<DateTime<Utc>, Fault> {
        self.require(session, MoRef::service_instance(), Privilege::SystemView)?;
        Ok(self.clock.now())
    }

    /// Ends every expired session and drops expired tickets; returns how many sessions ended.
    /// Each ended session is logged as `SessionService::end` logs an expired one, up to
    /// 10,000 a sweep; the rest are counted in one line (see `log_reaped`).
    pub async fn reap(&self) -> Result<usize, Fault> {
        let now = self.clock.now();
        let reaped = self
            .store
            .reap_sessions(now, self.policy.idle_timeout, self.policy.max_lifetime)
            .await?;
        let n = reaped.count;
        self.stats
            .ended(Ended::Expired, u64::try_from(n).unwrap_or(u64::MAX));
        log_reaped(&reaped, REAP_LINES);
        self.store.purge_tickets(now).await?;
        self.service_tickets.purge(now);
        Ok(n)
    }
}

/// How many of the sessions one sweep ends are logged one by one. Sessions expire about
/// as fast as they are made, and each login was logged, so this bounds only a burst: a
/// store that comes back after more than the idle timeout ends every session in its first
/// sweep. Measured with a million such sessions (release build, a slow 2-core VM): one
/// line each took 1.4 s of a runtime worker and wrote 160 MB of log; 10,000 lines and a
/// count took 12 ms and 1.6 MB.
const REAP_LINES: usize = 10_000;

/// `ip` as `IpAddr`'s `Display` writes it; an IPv4 address without the formatting machinery
/// (every Login records the caller's address).
fn ip_text(ip: IpAddr) -> Arc<str> {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string().into();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text.into()
}

/// Logs what a sweep ended: each named session as `session ended` (as
/// [`SessionService::end`] logs an expired one), at most `named` of them, and the rest in
/// one line with their number: those past `named`, and on Redis, whose records expire by
/// their TTL before the sweep finds them, all of them.
fn log_reaped(reaped: &crate::store::Reaped, named: usize) {
    let why = Ended::Expired.as_str();
    for (key, user) in reaped.sessions.iter().take(named) {
        tracing::info!(user = %user, key = %key, reason = why, "session ended");
    }
    let rest = reaped
        .count
        .saturating_sub(reaped.sessions.len().min(named));
    if rest > 0 {
        tracing::info!(
            count = rest,
            reason = why,
            "sessions ended without a line of their own"
        );
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
