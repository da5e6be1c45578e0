//! Self-service: bearer tokens for the `/v2/session` API, with which any user lists,
//! inspects and ends their own sessions (and holders of Sessions.TerminateSession, all).
use crate::fault::{Fault, MoRef};
use crate::ids::{random_hex, IdDigest};
use crate::privilege::{Privilege, Role};
use crate::service::{Refusal, Refused, SessionService};
use crate::session::SessionRecord;
use crate::stats::Ended;
use crate::user::UserName;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Bearer tokens carry this prefix, so they are never mistaken for session ids.
pub const TOKEN_PREFIX: &str = "vst-";

/// What a store keeps per API token (the token itself only as its digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user: String,
    pub role: Role,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    /// [`User::id`](crate::User::id) when the token was issued.
    #[serde(default)]
    pub user_id: String,
}

impl SessionService {
    /// `POST /auth/request-token`: checks the password (under the lockout policy) and
    /// issues a bearer token valid for `lifetime`. A token is not a session id.
    pub async fn request_token(
        &self,
        user: &str,
        password: &str,
        lifetime: Duration,
    ) -> Result<(String, TokenRecord), Fault> {
        self.request_token_explained(user, password, lifetime)
            .await
            .map_err(|r| r.fault)
    }

    /// [`request_token`](Self::request_token), saying why a refusal was one (for the log).
    pub async fn request_token_explained(
        &self,
        user: &str,
        password: &str,
        lifetime: Duration,
    ) -> Result<(String, TokenRecord), Refused> {
        let now = self.clock.now();
        let Some(name) = UserName::parse(user) else {
            return Err(self.refuse(Refusal::BadName));
        };
        let u = self.check_password(&name, password, now).await?;
        if !u.role.has(Privilege::SystemView) {
            return Err(Fault::NoPermission {
                object: MoRef::session_manager(),
                privilege: Privilege::SystemView,
            }
            .into());
        }
        let token = format!("{TOKEN_PREFIX}{}", random_hex(24));
        let rec = TokenRecord {
            user: u.name.as_str().to_owned(),
            role: u.role,
            created: now,
            expires: now + lifetime,
            user_id: u.id,
        };
        self.store
            .put_token(IdDigest::of(&token), rec.clone())
            .await?;
        Ok((token, rec))
    }

    /// Resolves a bearer token; unknown, revoked and expired tokens are NotAuthenticated.
    /// A token whose user may no longer log in (their role lacks System.View: NoAccess)
    /// is NoPermission, as their Login would be.
    pub async fn token(&self, token: &str) -> Result<TokenRecord, Fault> {
        let t = self.token_record(token).await?;
        may_serve_itself(&t)?;
        Ok(t)
    }

    /// A bearer token's record, with its user's current role.
    async fn token_record(&self, token: &str) -> Result<TokenRecord, Fault> {
        let unauth = || Fault::not_authenticated(Privilege::SystemView);
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 256 {
            return Err(unauth());
        }
        let mut t = match self.store.get_token(&IdDigest::of(token)).await? {
            Some(t) if t.expires > self.clock.now() => t,
            _ => return Err(unauth()),
        };
        // The user's current role applies; a removed user's tokens stop working, and so
        // do they when an account of the same name has been added since.
        match self.store.get_user(&t.user).await? {
            Some(u) if u.id == t.user_id => t.role = u.role,
            _ => return Err(unauth()),
        }
        Ok(t)
    }

    /// `DELETE /auth/request-token`: revokes the token.
    /// Returns the record it revoked. Any valid token may be revoked, even one whose user
    /// may no longer use it.
    pub async fn revoke_token(&self, token: &str) -> Result<TokenRecord, Fault> {
        let rec = self.token_record(token).await?;
        self.store.revoke_token(&IdDigest::of(token)).await?;
        Ok(rec)
    }

    /// The live sessions a token may see: its user's own (found through
    /// [`Store::sessions_of_user`](crate::Store::sessions_of_user), not a walk over every
    /// session, since any user may ask), or with `all` (which needs
    /// Sessions.TerminateSession) everyone's. Expired sessions among those are reaped, not
    /// listed. Ordered by login time, then key.
    pub async fn sessions_for(
        &self,
        token: &TokenRecord,
        all: bool,
    ) -> Result<Vec<SessionRecord>, Fault> {
        may_serve_itself(token)?;
        if all && !token.role.has(Privilege::SessionsTerminateSession) {
            return Err(Fault::NoPermission {
                object: MoRef::session_manager(),
                privilege: Privilege::SessionsTerminateSession,
            });
        }
        let now = self.clock.now();
        let seen = if all {
            self.store.list_sessions().await?
        } else {
            self.store.sessions_of_user(&token.user, usize::MAX).await?
        };
        let mut out = Vec::new();
        for rec in seen {
            // An earlier account of the same name left these: they are dead (the next
            // call with one ends it), so end them now rather than list them.
            let stale = !all && *rec.user_id != *token.user_id;
            if stale || self.expired(&rec, now) {
                let why = if stale {
                    Ended::UserRemoved
                } else {
                    Ended::Expired
                };
                self.end(rec.key.as_str(), why).await?;
            } else {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.login_time.cmp(&b.login_time).then(a.key.cmp(&b.key)));
        Ok(out)
    }

    /// One session the token may see; another user's session is NotFound, exactly like a
    /// key that does not exist.
    pub async fn session_for(
        &self,
        token: &TokenRecord,
        key: &str,
        all: bool,
    ) -> Result<SessionRecord, Fault> {
        let not_found = || Fault::NotFound(format!("No session '{key}'."));
        may_serve_itself(token)?;
        if all && !token.role.has(Privilege::SessionsTerminateSession) {
            // As the list answers `all` without the privilege.
            return Err(Fault::NoPermission {
                object: MoRef::session_manager(),
                privilege: Privilege::SessionsTerminateSession,
            });
        }
        // Without `all`, only the token's own account's sessions (not those of an earlier
        // account of the same name).
        let mine = |r: &SessionRecord| *r.user_name == *token.user && *r.user_id == *token.user_id;
        match self.store.session_by_key(key).await? {
            Some(r) if !self.expired(&r, self.clock.now()) && (all || mine(&r)) => Ok(r),
            _ => Err(not_found()),
        }
    }

    /// Ends one session the token may see.
    pub async fn end_session_for(
        &self,
        token: &TokenRecord,
        key: &str,
        all: bool,
    ) -> Result<SessionRecord, Fault> {
        self.session_for(token, key, all).await?;
        self.end(key, Ended::Terminated)
            .await?
            .ok_or_else(|| Fault::NotFound(format!("No session '{key}'.")))
    }
}

/// Self-service is for users who may log in: a role without System.View (NoAccess), say
/// after `vsess user passwd --role NoAccess`, loses it with the tokens and sessions it
/// still holds.
fn may_serve_itself(token: &TokenRecord) -> Result<(), Fault> {
    if token.role.has(Privilege::SystemView) {
        Ok(())
    } else {
        Err(Fault::NoPermission {
            object: MoRef::session_manager(),
            privilege: Privilege::SystemView,
        })
    }
}

impl SessionService {
    /// The service message, for the web page (any token holder may read it, as any
    /// session with System.View may read `SessionManager.message`).
    pub async fn message_for(&self, token: &TokenRecord) -> Result<String, Fault> {
        if !token.role.has(Privilege::SystemView) {
            return Err(Fault::NoPermission {
                object: MoRef::session_manager(),
                privilege: Privilege::SystemView,
            });
        }
        Ok(self.store.message().await?)
    }

    /// Sets the service message from the web page: UpdateServiceMessage's rules (the
    /// Sessions.GlobalMessage privilege, at most `MAX_MESSAGE_LEN` bytes) for a token.
    pub async fn set_message_for(&self, token: &TokenRecord, message: &str) -> Result<(), Fault> {
        if !token.role.has(Privilege::SessionsGlobalMessage) {
            return Err(Fault::NoPermission {
                object: MoRef::session_manager(),
                privilege: Privilege::SessionsGlobalMessage,
            });
        }
        if message.len() > crate::service::MAX_MESSAGE_LEN {
            return Err(Fault::invalid_argument(
                "message",
                format!(
                    "The message is longer than {} bytes.",
                    crate::service::MAX_MESSAGE_LEN
                ),
            ));
        }
        self.store.set_message(message).await?;
        Ok(())
    }
}

/// The longest duration [`parse_duration`] accepts: 100 years, far beyond any session's
/// life, and far inside what times can be shifted by.
pub const MAX_DURATION_SECS: i64 = 100 * 366 * 86_400;

/// Parses a duration such as `30m`, `1h30m`, `45s`, `2d` or `90` (seconds), up to
/// [`MAX_DURATION_SECS`]; anything else (or longer) is `None`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let secs = |n: i64| {
        (0..=MAX_DURATION_SECS)
            .contains(&n)
            .then(|| Duration::seconds(n))
    };
    if let Ok(n) = s.parse::<i64>() {
        return secs(n);
    }
    let mut total = 0i64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !num.is_empty() {
        return None;
    }
    secs(total)
}

/// A delta as Python's `str(timedelta)` writes it (the reference's format):
/// `0:13:59.079416`, `24 days, 0:00:51.439527`.
pub fn format_delta(d: Duration) -> String {
    let d = if d < Duration::zero() {
        Duration::zero()
    } else {
        d
    };
    let days = d.num_days();
    let rest = d - Duration::days(days);
    let secs = rest.num_seconds();
    let micros = (rest - Duration::seconds(secs))
        .num_microseconds()
        .unwrap_or(0);
    let hms = format!("{}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60);
    let hms = if micros > 0 {
        format!("{hms}.{micros:06}")
    } else {
        hms
    };
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        n => format!("{n} days, {hms}"),
    }
}

/// A time as the reference writes it: `2016-05-09 10:58:21` (UTC).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_the_cli_takes_them() {
        assert_eq!(parse_duration("30m"), Some(Duration::minutes(30)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("0s"), Some(Duration::zero()));
        assert_eq!(parse_duration("90"), Some(Duration::seconds(90)));
        assert_eq!(parse_duration("2d"), Some(Duration::days(2)));
        assert_eq!(
            parse_duration("5218w"),
            Some(Duration::weeks(5218)),
            "just under 100 years"
        );
        // Beyond 100 years, and beyond what chrono can hold: refused, not a panic.
        for bad in [
            "",
            "m",
            "5x",
            "-5",
            "1h30",
            "99999999999999999999d",
            "5300w",
            "9223372036854775807",
            "10000000000000000s",
            "9999999999999w",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn deltas_and_times_use_the_reference_formats() {
        assert_eq!(
            format_delta(Duration::seconds(839) + Duration::microseconds(79416)),
            "0:13:59.079416"
        );
        assert_eq!(
            format_delta(
                Duration::days(24) + Duration::seconds(51) + Duration::microseconds(439527)
            ),
            "24 days, 0:00:51.439527"
        );
        assert_eq!(format_delta(Duration::days(1)), "1 day, 0:00:00");
        assert_eq!(format_delta(Duration::seconds(-5)), "0:00:00");
        let t = DateTime::parse_from_rfc3339("2016-05-09T10:58:21.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(t), "2016-05-09 10:58:21");
    }
}
