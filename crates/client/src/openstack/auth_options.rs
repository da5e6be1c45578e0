//! What a client needs to authenticate to Keystone v3: [`AuthOptions`], read from `OS_*`
//! variables by [`AuthOptions::from_env`], and turned into the `POST /v3/auth/tokens` body.
use crate::error::{Error, Redacted, Result};
use serde_json::{json, Map, Value};
use std::fmt;
use url::Url;

/// Credentials and scope for Keystone v3, as gophercloud's `AuthOptions`.
///
/// Exactly one way to prove identity is used, in this order: a password (with a username and
/// domain, or a user id) and/or a TOTP passcode; else a token; else an application credential
/// (by id, or by name with the user). Empty strings count as unset.
///
/// The scope comes from [`scope`](Self::scope) if set; else `system_scope`; else the project
/// id; else the project name (in `project_domain_*`, or else in the user's `domain_*`, as
/// gophercloud does); else the token is unscoped. Application credentials carry their own
/// scope. The Debug output never shows the password, passcode, token or secret.
#[derive(Clone, Default)]
pub struct AuthOptions {
    /// The Keystone URL (`OS_AUTH_URL`), e.g. `http://127.0.0.1:5000/v3`. A URL without a
    /// version gets `/v3/` appended; a v2.0 URL is refused.
    pub identity_endpoint: String,
    /// A user name (`OS_USERNAME`), unique only within its domain: it needs `domain_id` or
    /// `domain_name`.
    pub username: Option<String>,
    /// A user id (`OS_USERID`), instead of a username and domain.
    pub user_id: Option<String>,
    /// The user's password (`OS_PASSWORD`): the `password` method, sent as
    /// `auth.identity.password.user.password`. Redacted in Debug.
    pub password: Option<String>,
    /// A TOTP passcode (`OS_PASSCODE`): the `totp` method, alone or with the password
    /// (MFA). A client with a passcode never re-authenticates. Redacted in Debug.
    pub passcode: Option<String>,
    /// An existing token to authenticate with (the `token` method, e.g. to rescope); used
    /// only when no password or passcode is set. With no scope it is taken up as it is
    /// (validated, not re-issued). Never read from the environment. Redacted in Debug.
    pub token_id: Option<String>,
    /// The project (gophercloud's tenant) id to scope to (`OS_PROJECT_ID`, `OS_TENANT_ID`).
    pub project_id: Option<String>,
    /// The project name to scope to (`OS_PROJECT_NAME`, `OS_TENANT_NAME`); needs a domain.
    pub project_name: Option<String>,
    /// The user's domain by id (`OS_DOMAIN_ID`, else `OS_USER_DOMAIN_ID`); also the
    /// project's when scoping by project name and no `project_domain_*` is set.
    pub domain_id: Option<String>,
    /// The user's domain by name (`OS_DOMAIN_NAME`, else `OS_USER_DOMAIN_NAME`), e.g.
    /// `Default`; set this or `domain_id`, not both. Also the project's domain as above.
    pub domain_name: Option<String>,
    /// The project's domain when it differs from the user's (`OS_PROJECT_DOMAIN_ID`).
    pub project_domain_id: Option<String>,
    /// The project's domain by name (`OS_PROJECT_DOMAIN_NAME`, read only when
    /// `OS_PROJECT_DOMAIN_ID` is unset); `project_domain_id` wins when both are set.
    pub project_domain_name: Option<String>,
    /// An application credential's id (`OS_APPLICATION_CREDENTIAL_ID`): the
    /// `application_credential` method; needs only the secret, no user.
    pub application_credential_id: Option<String>,
    /// An application credential's name (`OS_APPLICATION_CREDENTIAL_NAME`), used when no
    /// id is set; needs the owner (`user_id`, or `username` with its domain) and the secret.
    pub application_credential_name: Option<String>,
    /// The application credential's secret (`OS_APPLICATION_CREDENTIAL_SECRET`). Redacted
    /// in Debug.
    pub application_credential_secret: Option<String>,
    /// A system-scoped token (`OS_SYSTEM_SCOPE=all`).
    pub system_scope: bool,
    /// An explicit scope; overrides `system_scope` and the project fields.
    pub scope: Option<AuthScope>,
    /// On a 401, or when the token is about to expire, authenticate again with these
    /// options and retry the call once. Off by default, as in gophercloud.
    pub allow_reauth: bool,
}

/// An explicit token scope: the `auth.scope` member of `POST /v3/auth/tokens`
/// (gophercloud's `tokens.Scope`). Set it in [`AuthOptions::scope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthScope {
    /// A project by id: `{"project": {"id": ...}}`.
    ProjectId(String),
    /// A project by name, which is unique only within its domain:
    /// `{"project": {"name": ..., "domain": ...}}`.
    ProjectName {
        /// The project's name (`scope.project.name`).
        name: String,
        /// The domain that owns the project (`scope.project.domain`): names are only
        /// unique within it.
        domain: DomainRef,
    },
    /// A domain-scoped token: `{"domain": ...}`, for managing the domain's users and
    /// projects.
    Domain(DomainRef),
    /// A system-scoped token: `{"system": {"all": true}}` (`OS_SYSTEM_SCOPE=all`).
    System,
    /// No scope at all, even if project fields are set: the token carries no roles and
    /// no catalog (use it to list [`projects::list_available`] and rescope).
    ///
    /// [`projects::list_available`]: crate::openstack::identity::v3::projects::list_available
    Unscoped,
}

/// A domain, by id or by name, as Keystone's `{"id": ...}` or `{"name": ...}` domain
/// reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRef {
    /// The domain's id (e.g. `default`).
    Id(String),
    /// The domain's name (e.g. `Default`).
    Name(String),
}

impl DomainRef {
    fn to_json(&self) -> Value {
        match self {
            DomainRef::Id(id) => json!({ "id": id }),
            DomainRef::Name(name) => json!({ "name": name }),
        }
    }
}

/// Some(non-empty) or None.
pub(crate) fn nz(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn redact(v: &Option<String>) -> Option<Redacted<'_>> {
    v.as_deref().map(Redacted)
}

impl fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthOptions")
            .field("identity_endpoint", &self.identity_endpoint)
            .field("username", &self.username)
            .field("user_id", &self.user_id)
            .field("password", &redact(&self.password))
            .field("passcode", &redact(&self.passcode))
            .field("token_id", &redact(&self.token_id))
            .field("project_id", &self.project_id)
            .field("project_name", &self.project_name)
            .field("domain_id", &self.domain_id)
            .field("domain_name", &self.domain_name)
            .field("project_domain_id", &self.project_domain_id)
            .field("project_domain_name", &self.project_domain_name)
            .field("application_credential_id", &self.application_credential_id)
            .field(
                "application_credential_name",
                &self.application_credential_name,
            )
            .field(
                "application_credential_secret",
                &redact(&self.application_credential_secret),
            )
            .field("system_scope", &self.system_scope)
            .field("scope", &self.scope)
            .field("allow_reauth", &self.allow_reauth)
            .finish()
    }
}

fn missing(var: &str) -> Error {
    Error::Config(format!("missing environment variable {var}"))
}

fn missing_any(vars: &[&str]) -> Error {
    Error::Config(format!(
        "missing environment variable: set one of {}",
        vars.join(", ")
    ))
}

impl AuthOptions {
    /// Reads the `OS_*` variables that gophercloud's `AuthOptionsFromEnv` reads, with its
    /// precedence and checks:
    ///
    /// - `OS_AUTH_URL` (required), `OS_USERNAME` or `OS_USERID`, `OS_PASSWORD` (or
    ///   `OS_PASSCODE`, or an application credential), `OS_DOMAIN_ID`, `OS_DOMAIN_NAME`;
    /// - `OS_PROJECT_ID` over `OS_TENANT_ID`, `OS_PROJECT_NAME` over `OS_TENANT_NAME`;
    /// - `OS_APPLICATION_CREDENTIAL_ID`, `_NAME`, `_SECRET`; `OS_SYSTEM_SCOPE=all`.
    ///
    /// Beyond gophercloud, so that an openstackclient `openrc` works too: when neither
    /// `OS_DOMAIN_ID` nor `OS_DOMAIN_NAME` is set, `OS_USER_DOMAIN_ID`/`_NAME` give the user's
    /// domain, and `OS_PROJECT_DOMAIN_ID`/`_NAME` always give the project's.
    ///
    /// `allow_reauth` stays false, as in gophercloud; set it on the result. A missing
    /// variable gives [`Error::Config`] naming it.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables (tests, config files).
    pub fn from_lookup<F>(lookup: F) -> Result<Self>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let auth_url = get("OS_AUTH_URL");
        let username = get("OS_USERNAME");
        let user_id = get("OS_USERID");
        let password = get("OS_PASSWORD");
        let passcode = get("OS_PASSCODE");
        let project_id = get("OS_PROJECT_ID").or_else(|| get("OS_TENANT_ID"));
        let project_name = get("OS_PROJECT_NAME").or_else(|| get("OS_TENANT_NAME"));
        let mut domain_id = get("OS_DOMAIN_ID");
        let mut domain_name = get("OS_DOMAIN_NAME");
        if domain_id.is_none() && domain_name.is_none() && user_id.is_none() {
            domain_id = get("OS_USER_DOMAIN_ID");
            if domain_id.is_none() {
                domain_name = get("OS_USER_DOMAIN_NAME");
            }
        }
        let project_domain_id = get("OS_PROJECT_DOMAIN_ID");
        let project_domain_name = if project_domain_id.is_none() {
            get("OS_PROJECT_DOMAIN_NAME")
        } else {
            None
        };
        let ac_id = get("OS_APPLICATION_CREDENTIAL_ID");
        let ac_name = get("OS_APPLICATION_CREDENTIAL_NAME");
        let ac_secret = get("OS_APPLICATION_CREDENTIAL_SECRET");
        let system_scope = get("OS_SYSTEM_SCOPE").as_deref() == Some("all");

        let Some(auth_url) = auth_url else {
            return Err(missing("OS_AUTH_URL"));
        };
        if user_id.is_none() && username.is_none() && ac_id.is_none() && ac_secret.is_none() {
            return Err(missing_any(&["OS_USERID", "OS_USERNAME"]));
        }
        if password.is_none() && passcode.is_none() && ac_id.is_none() && ac_name.is_none() {
            return Err(missing("OS_PASSWORD"));
        }
        if (ac_id.is_some() || ac_name.is_some()) && ac_secret.is_none() {
            return Err(missing("OS_APPLICATION_CREDENTIAL_SECRET"));
        }
        let any_domain = domain_id.is_some()
            || domain_name.is_some()
            || project_domain_id.is_some()
            || project_domain_name.is_some();
        if !any_domain && project_id.is_none() && project_name.is_some() {
            return Err(Error::Config(
                "missing environment variable OS_PROJECT_ID (or a domain for OS_PROJECT_NAME: \
                 OS_DOMAIN_ID, OS_DOMAIN_NAME or OS_PROJECT_DOMAIN_ID)"
                    .into(),
            ));
        }
        if ac_id.is_none() && ac_name.is_some() {
            if user_id.is_none() && username.is_none() {
                return Err(missing_any(&["OS_USERID", "OS_USERNAME"]));
            }
            if username.is_some() && domain_id.is_none() && domain_name.is_none() {
                return Err(missing_any(&["OS_DOMAIN_ID", "OS_DOMAIN_NAME"]));
            }
        }

        Ok(AuthOptions {
            identity_endpoint: auth_url,
            username,
            user_id,
            password,
            passcode,
            token_id: None,
            project_id,
            project_name,
            domain_id,
            domain_name,
            project_domain_id,
            project_domain_name,
            application_credential_id: ac_id,
            application_credential_name: ac_name,
            application_credential_secret: ac_secret,
            system_scope,
            scope: None,
            allow_reauth: false,
        })
    }

    /// Whether a client may authenticate again with these options (gophercloud's
    /// `CanReauth`): `allow_reauth`, and no one-time passcode.
    pub fn can_reauth(&self) -> bool {
        self.allow_reauth && nz(&self.passcode).is_none()
    }

    /// The token to use as it is, gophercloud's "passthrough": a token, no password or
    /// passcode, and no scope (or an explicitly unscoped one). Sent to `POST
    /// /v3/auth/tokens` instead, it would come back re-issued without the scope it has
    /// (Keystone scopes a scopeless request to the user's default project, or not at all),
    /// and with its old expiry; so it is validated with `GET /v3/auth/tokens` and used.
    pub(crate) fn passthrough_token(&self) -> Option<&str> {
        if nz(&self.password).is_some() || nz(&self.passcode).is_some() {
            return None;
        }
        let token = nz(&self.token_id)?;
        match self.effective_scope() {
            Ok(None | Some(AuthScope::Unscoped)) => Some(token),
            _ => None,
        }
    }

    /// The `auth.identity` part of the token request.
    fn identity_json(&self) -> Result<Value> {
        let cfg = |m: &str| Err(Error::Config(m.to_owned()));
        let password = nz(&self.password);
        let passcode = nz(&self.passcode);
        let username = nz(&self.username);
        let user_id = nz(&self.user_id);
        let domain_id = nz(&self.domain_id);
        let domain_name = nz(&self.domain_name);
        let app_credential = nz(&self.application_credential_id)
            .or(nz(&self.application_credential_name))
            .is_some();
        if app_credential && (password.is_some() || passcode.is_some()) {
            // Which one was meant? A password would win and ask for an unscoped token
            // (application credentials carry their own scope): say so instead.
            return cfg(
                "both a password (or passcode) and an application credential are set: keep \
                 one (e.g. unset OS_PASSWORD, or OS_APPLICATION_CREDENTIAL_ID/NAME)",
            );
        }

        if password.is_none() && passcode.is_none() {
            if let Some(token) = nz(&self.token_id) {
                if username.is_some() || user_id.is_some() {
                    return cfg("a token cannot be combined with a username or user id");
                }
                if domain_id.is_some() || domain_name.is_some() {
                    return cfg("a token cannot be combined with a user domain");
                }
                return Ok(json!({ "methods": ["token"], "token": { "id": token } }));
            }
            let secret = nz(&self.application_credential_secret);
            if let Some(id) = nz(&self.application_credential_id) {
                let Some(secret) = secret else {
                    return cfg("an application credential needs its secret");
                };
                return Ok(json!({
                    "methods": ["application_credential"],
                    "application_credential": { "id": id, "secret": secret },
                }));
            }
            if let Some(name) = nz(&self.application_credential_name) {
                let Some(secret) = secret else {
                    return cfg("an application credential needs its secret");
                };
                let user = if let Some(id) = user_id {
                    json!({ "id": id })
                } else if let Some(username) = username {
                    match (domain_id, domain_name) {
                        (Some(d), _) => json!({ "name": username, "domain": { "id": d } }),
                        (None, Some(d)) => json!({ "name": username, "domain": { "name": d } }),
                        (None, None) => {
                            return cfg("an application credential by name with a username needs the user's domain id or name")
                        }
                    }
                } else {
                    return cfg("an application credential by name needs a username or user id");
                };
                return Ok(json!({
                    "methods": ["application_credential"],
                    "application_credential": { "name": name, "user": user, "secret": secret },
                }));
            }
            return cfg(
                "no credentials: set a password (or passcode), a token, or an application credential",
            );
        }

        let mut user = Map::new();
        match (username, user_id) {
            (None, None) => return cfg("a password needs a username or a user id"),
            (Some(_), Some(_)) => return cfg("set a username or a user id, not both"),
            (Some(name), None) => {
                user.insert("name".into(), json!(name));
                let domain = match (domain_id, domain_name) {
                    (None, None) => {
                        return cfg("a username needs its domain: set the domain id or name")
                    }
                    (Some(_), Some(_)) => {
                        return cfg("set the domain id or the domain name, not both")
                    }
                    (Some(id), None) => json!({ "id": id }),
                    (None, Some(name)) => json!({ "name": name }),
                };
                user.insert("domain".into(), domain);
            }
            (None, Some(id)) => {
                if domain_id.is_some() || domain_name.is_some() {
                    return cfg("a user id cannot be combined with a user domain");
                }
                user.insert("id".into(), json!(id));
            }
        }
        let mut identity = Map::new();
        let mut methods = Vec::new();
        if let Some(pw) = password {
            methods.push("password");
            let mut u = user.clone();
            u.insert("password".into(), json!(pw));
            identity.insert("password".into(), json!({ "user": u }));
        }
        if let Some(code) = passcode {
            methods.push("totp");
            let mut u = user;
            u.insert("passcode".into(), json!(code));
            identity.insert("totp".into(), json!({ "user": u }));
        }
        identity.insert("methods".into(), json!(methods));
        Ok(Value::Object(identity))
    }

    /// The scope the token request will ask for, resolved as the type's docs say: `Ok(None)`
    /// for an unscoped token (also for application credentials, which carry their own).
    /// A project name with no domain at all gives [`Error::Config`].
    pub fn effective_scope(&self) -> Result<Option<AuthScope>> {
        if nz(&self.application_credential_id).is_some()
            || nz(&self.application_credential_name).is_some()
        {
            return Ok(None);
        }
        if let Some(scope) = &self.scope {
            return Ok(match scope {
                AuthScope::Unscoped => None,
                s => Some(s.clone()),
            });
        }
        if self.system_scope {
            return Ok(Some(AuthScope::System));
        }
        if let Some(id) = nz(&self.project_id) {
            return Ok(Some(AuthScope::ProjectId(id.to_owned())));
        }
        if let Some(name) = nz(&self.project_name) {
            let domain = if let Some(id) = nz(&self.project_domain_id) {
                DomainRef::Id(id.to_owned())
            } else if let Some(n) = nz(&self.project_domain_name) {
                DomainRef::Name(n.to_owned())
            } else if let Some(id) = nz(&self.domain_id) {
                DomainRef::Id(id.to_owned())
            } else if let Some(n) = nz(&self.domain_name) {
                DomainRef::Name(n.to_owned())
            } else {
                return Err(Error::Config(format!(
                    "the project name {name:?} needs its domain: set a domain id or name"
                )));
            };
            return Ok(Some(AuthScope::ProjectName {
                name: name.to_owned(),
                domain,
            }));
        }
        Ok(None)
    }

    /// The JSON body of `POST /v3/auth/tokens` for these options (gophercloud's
    /// `ToTokenV3CreateMap` and `ToTokenV3ScopeMap`): `{"auth": {"identity": ..., "scope":
    /// ...}}`. Contradictory or missing credentials (no method at all, a username without
    /// a domain, both a username and a user id) give [`Error::Config`].
    pub fn to_token_v3_body(&self) -> Result<Value> {
        let identity = self.identity_json()?;
        let mut auth = Map::new();
        auth.insert("identity".into(), identity);
        if let Some(scope) = self.effective_scope()? {
            let s = match scope {
                AuthScope::ProjectId(id) => json!({ "project": { "id": id } }),
                AuthScope::ProjectName { name, domain } => {
                    json!({ "project": { "name": name, "domain": domain.to_json() } })
                }
                AuthScope::Domain(d) => json!({ "domain": d.to_json() }),
                AuthScope::System => json!({ "system": { "all": true } }),
                AuthScope::Unscoped => Value::Null,
            };
            if !s.is_null() {
                auth.insert("scope".into(), s);
            }
        }
        Ok(json!({ "auth": auth }))
    }
}

/// The Keystone v3 base URL (with a trailing slash) for an `OS_AUTH_URL`: `.../v3` as is, a
/// URL without a version gets `v3/`; v2.0 is refused.
pub fn identity_v3_url(auth_url: &str) -> Result<Url> {
    let bad = |why: String| Error::Config(format!("invalid identity endpoint {auth_url:?}: {why}"));
    let mut url = Url::parse(auth_url.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(bad("expected an http:// or https:// URL".into()));
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    let last = path.rsplit('/').next().unwrap_or_default();
    let new_path = if last == "v3" {
        format!("{path}/")
    } else if last == "v2.0" || last == "v2" {
        return Err(bad(
            "Keystone v2.0 is not supported; use the v3 endpoint (.../v3)".into(),
        ));
    } else {
        format!("{path}/v3/")
    };
    url.set_path(&new_path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<AuthOptions> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AuthOptions::from_lookup(|k| map.get(k).cloned())
    }

    fn config_msg(r: Result<AuthOptions>) -> String {
        match r {
            Err(Error::Config(m)) => m,
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    const BASE: &[(&str, &str)] = &[
        ("OS_AUTH_URL", "http://127.0.0.1:5000/v3"),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", "pw"),
        ("OS_DOMAIN_ID", "default"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn from_env_reads_the_gophercloud_set() {
        let o = from(&with(&[
            ("OS_TENANT_ID", "t1"),
            ("OS_TENANT_NAME", "tn"),
            ("OS_DOMAIN_NAME", "Default"),
        ]))
        .unwrap();
        assert_eq!(o.identity_endpoint, "http://127.0.0.1:5000/v3");
        assert_eq!(o.username.as_deref(), Some("admin"));
        assert_eq!(o.password.as_deref(), Some("pw"));
        assert_eq!(o.project_id.as_deref(), Some("t1"));
        assert_eq!(o.project_name.as_deref(), Some("tn"));
        assert_eq!(o.domain_id.as_deref(), Some("default"));
        assert_eq!(o.domain_name.as_deref(), Some("Default"));
        assert!(!o.allow_reauth);
        assert!(!o.system_scope);
    }

    #[test]
    fn project_vars_win_over_tenant_vars() {
        let o = from(&with(&[
            ("OS_TENANT_ID", "t1"),
            ("OS_PROJECT_ID", "p1"),
            ("OS_TENANT_NAME", "tn"),
            ("OS_PROJECT_NAME", "pn"),
        ]))
        .unwrap();
        assert_eq!(o.project_id.as_deref(), Some("p1"));
        assert_eq!(o.project_name.as_deref(), Some("pn"));
        // An empty OS_PROJECT_ID does not hide OS_TENANT_ID.
        let o = from(&with(&[("OS_TENANT_ID", "t1"), ("OS_PROJECT_ID", "")])).unwrap();
        assert_eq!(o.project_id.as_deref(), Some("t1"));
    }

    #[test]
    fn missing_variables_are_named() {
        assert_eq!(
            config_msg(from(&[("OS_USERNAME", "a"), ("OS_PASSWORD", "b")])),
            "missing environment variable OS_AUTH_URL"
        );
        assert!(config_msg(from(&[
            ("OS_AUTH_URL", "http://x/v3"),
            ("OS_PASSWORD", "b")
        ]))
        .contains("OS_USERID, OS_USERNAME"));
        assert_eq!(
            config_msg(from(&[
                ("OS_AUTH_URL", "http://x/v3"),
                ("OS_USERNAME", "a")
            ])),
            "missing environment variable OS_PASSWORD"
        );
        assert_eq!(
            config_msg(from(&[
                ("OS_AUTH_URL", "http://x/v3"),
                ("OS_APPLICATION_CREDENTIAL_ID", "ac")
            ])),
            "missing environment variable OS_APPLICATION_CREDENTIAL_SECRET"
        );
        // A project name without any domain: gophercloud asks for OS_PROJECT_ID.
        assert!(config_msg(from(&[
            ("OS_AUTH_URL", "http://x/v3"),
            ("OS_USERID", "u"),
            ("OS_PASSWORD", "p"),
            ("OS_PROJECT_NAME", "demo")
        ]))
        .contains("OS_PROJECT_ID"));
        // Application credential by name with a username needs the domain.
        assert!(config_msg(from(&[
            ("OS_AUTH_URL", "http://x/v3"),
            ("OS_USERNAME", "u"),
            ("OS_APPLICATION_CREDENTIAL_NAME", "n"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s")
        ]))
        .contains("OS_DOMAIN_ID, OS_DOMAIN_NAME"));
    }

    #[test]
    fn application_credential_id_needs_no_user_or_password() {
        let o = from(&[
            ("OS_AUTH_URL", "http://x/v3"),
            ("OS_APPLICATION_CREDENTIAL_ID", "ac"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s3cret"),
            ("OS_PROJECT_ID", "ignored-for-app-creds"),
        ])
        .unwrap();
        let body = o.to_token_v3_body().unwrap();
        assert_eq!(
            body,
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": "ac", "secret": "s3cret"}}}})
        );
        assert!(!format!("{o:?}").contains("s3cret"));
        // With a password as well, which one was meant is not guessed.
        for (var, value) in [("OS_PASSWORD", "pw"), ("OS_PASSCODE", "123456")] {
            let o = from(&[
                ("OS_AUTH_URL", "http://x/v3"),
                ("OS_USERNAME", "u"),
                ("OS_USER_DOMAIN_NAME", "Default"),
                (var, value),
                ("OS_APPLICATION_CREDENTIAL_ID", "ac"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "s3cret"),
                ("OS_PROJECT_ID", "p"),
            ])
            .unwrap();
            let err = o.to_token_v3_body().unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{var}: {err}");
            assert!(err.to_string().contains("application credential"), "{err}");
        }
    }

    #[test]
    fn system_scope_and_openrc_domains() {
        let o = from(&with(&[("OS_SYSTEM_SCOPE", "all"), ("OS_PROJECT_ID", "p")])).unwrap();
        assert!(o.system_scope);
        assert_eq!(
            o.to_token_v3_body().unwrap()["auth"]["scope"],
            json!({"system": {"all": true}})
        );
        // OS_SYSTEM_SCOPE other than "all" is ignored, like gophercloud.
        assert!(
            !from(&with(&[("OS_SYSTEM_SCOPE", "yes")]))
                .unwrap()
                .system_scope
        );

        // openstackclient's openrc: user and project domains by name.
        let o = from(&[
            ("OS_AUTH_URL", "http://x/v3"),
            ("OS_USERNAME", "admin"),
            ("OS_PASSWORD", "pw"),
            ("OS_PROJECT_NAME", "admin"),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN_ID", "default"),
        ])
        .unwrap();
        assert_eq!(o.domain_name.as_deref(), Some("Default"));
        assert_eq!(o.project_domain_id.as_deref(), Some("default"));
        let body = o.to_token_v3_body().unwrap();
        assert_eq!(
            body["auth"]["identity"]["password"]["user"]["domain"],
            json!({"name": "Default"})
        );
        assert_eq!(
            body["auth"]["scope"],
            json!({"project": {"name": "admin", "domain": {"id": "default"}}})
        );
        // OS_DOMAIN_ID wins over OS_USER_DOMAIN_*.
        let o = from(&with(&[("OS_USER_DOMAIN_ID", "other")])).unwrap();
        assert_eq!(o.domain_id.as_deref(), Some("default"));
    }

    #[test]
    fn password_body_matches_keystone_wire_format() {
        // wire/keystone/03: user name + domain id, project name + domain id.
        let o = AuthOptions {
            identity_endpoint: "http://127.0.0.1:5000/v3".into(),
            username: Some("admin".into()),
            password: Some("admin-secret".into()),
            domain_id: Some("default".into()),
            project_name: Some("admin".into()),
            ..Default::default()
        };
        assert_eq!(
            o.to_token_v3_body().unwrap(),
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"id": "default"}, "password": "admin-secret"}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
        );
        // wire/keystone/04: user id + project id.
        let o = AuthOptions {
            user_id: Some("u1".into()),
            password: Some("pw".into()),
            project_id: Some("p1".into()),
            ..Default::default()
        };
        assert_eq!(
            o.to_token_v3_body().unwrap(),
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {"id": "u1", "password": "pw"}}},
                "scope": {"project": {"id": "p1"}}}})
        );
        // wire/keystone/06: token method.
        let o = AuthOptions {
            token_id: Some("tok".into()),
            project_id: Some("p1".into()),
            ..Default::default()
        };
        assert_eq!(
            o.to_token_v3_body().unwrap(),
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "tok"}},
                "scope": {"project": {"id": "p1"}}}})
        );
    }

    #[test]
    fn invalid_combinations_are_config_errors() {
        let bad = |o: AuthOptions| match o.to_token_v3_body() {
            Err(Error::Config(m)) => m,
            other => panic!("expected Config error, got {other:?}"),
        };
        assert!(bad(AuthOptions::default()).contains("no credentials"));
        assert!(bad(AuthOptions {
            username: Some("a".into()),
            password: Some("p".into()),
            ..Default::default()
        })
        .contains("domain"));
        assert!(bad(AuthOptions {
            user_id: Some("a".into()),
            domain_id: Some("d".into()),
            password: Some("p".into()),
            ..Default::default()
        })
        .contains("user id"));
        assert!(bad(AuthOptions {
            token_id: Some("t".into()),
            username: Some("a".into()),
            ..Default::default()
        })
        .contains("token"));
        assert!(bad(AuthOptions {
            user_id: Some("a".into()),
            password: Some("p".into()),
            project_name: Some("x".into()),
            ..Default::default()
        })
        .contains("needs its domain"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let o = AuthOptions {
            password: Some("hunter2".into()),
            passcode: Some("123456".into()),
            token_id: Some("gAAAAAtok".into()),
            application_credential_secret: Some("acsecret".into()),
            ..Default::default()
        };
        let d = format!("{o:?}");
        for s in ["hunter2", "123456", "gAAAAAtok", "acsecret"] {
            assert!(!d.contains(s), "{s} leaked in {d}");
        }
        assert!(d.contains("<redacted>"));
    }

    #[test]
    fn identity_urls_are_normalised() {
        let u = |s: &str| identity_v3_url(s).map(|u| u.to_string());
        assert_eq!(
            u("http://127.0.0.1:5000/v3").unwrap(),
            "http://127.0.0.1:5000/v3/"
        );
        assert_eq!(
            u("http://127.0.0.1:5000/v3/").unwrap(),
            "http://127.0.0.1:5000/v3/"
        );
        assert_eq!(
            u("http://127.0.0.1:5000").unwrap(),
            "http://127.0.0.1:5000/v3/"
        );
        assert_eq!(
            u("https://cloud.example/identity/").unwrap(),
            "https://cloud.example/identity/v3/"
        );
        assert!(u("http://127.0.0.1:5000/v2.0").is_err());
        assert!(u("ftp://x/v3").is_err());
        assert!(u("not a url").is_err());
    }
}
