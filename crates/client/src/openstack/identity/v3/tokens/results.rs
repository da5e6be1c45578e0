use crate::error::{Redacted, Result};
use crate::openstack::errors::decode_error;
use crate::openstack::identity::v3::{de_null_string, de_opt_time, de_time};
use crate::openstack::service::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;

/// A domain reference as tokens carry it (`{"id", "name"}`; gophercloud's
/// `tokens.Domain`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// The domain's id (`id`), e.g. `default`; empty if Keystone sent none.
    #[serde(default, deserialize_with = "de_null_string")]
    pub id: String,
    /// The domain's name (`name`), e.g. `Default`; empty if Keystone sent none.
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
}

/// The user a token was issued to: the token's `user` object (gophercloud's
/// `tokens.User`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUser {
    /// The user's id (`user.id`).
    pub id: String,
    /// The user's name (`user.name`), unique within `domain`.
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    /// The user's domain (`user.domain`); `None` if Keystone omitted it.
    #[serde(default)]
    pub domain: Option<Domain>,
    /// When the user's password expires (`user.password_expires_at`, UTC); `None` when
    /// it never does.
    #[serde(default, deserialize_with = "de_opt_time")]
    pub password_expires_at: Option<DateTime<Utc>>,
}

/// The project a project-scoped token is for: the token's `project` object (gophercloud's
/// `tokens.Project`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenProject {
    /// The project's id (`project.id`).
    pub id: String,
    /// The project's name (`project.name`), unique within `domain`.
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    /// The project's domain (`project.domain`); `None` if Keystone omitted it.
    #[serde(default)]
    pub domain: Option<Domain>,
}

/// A role the token grants on its scope: one entry of the token's `roles` (gophercloud's
/// `tokens.Role`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The role's id (`id`).
    pub id: String,
    /// The role's name (`name`), e.g. `admin`, `member`, `reader`; what policies check.
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
}

/// A token: its id (from `X-Subject-Token`; a secret, redacted in Debug) and what the body
/// says about it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The token itself, the value of `X-Subject-Token` to send as `X-Auth-Token`. A
    /// bearer secret: never log it. Not part of the body, so skipped by serde (empty
    /// after deserializing; [`TokenResult::extract`] fills it).
    #[serde(skip)]
    pub id: String,
    /// When the token stops being valid (`expires_at`, UTC); Keystone's default lifetime
    /// is one hour. Required: a body without it does not decode.
    #[serde(deserialize_with = "de_time")]
    pub expires_at: DateTime<Utc>,
    /// When Keystone issued it (`issued_at`, UTC); `None` if absent.
    #[serde(default, deserialize_with = "de_opt_time")]
    pub issued_at: Option<DateTime<Utc>>,
    /// How the user authenticated (`methods`): `password`, `totp`, `token`,
    /// `application_credential`, ...
    #[serde(default)]
    pub methods: Vec<String>,
    /// Keystone's audit ids (`audit_ids`): the first identifies this token, a second
    /// the chain it was rescoped from; safe to log, unlike `id`.
    #[serde(default)]
    pub audit_ids: Vec<String>,
    /// The user the token was issued to (`user`).
    pub user: TokenUser,
    /// The project of a project-scoped token (`project`); `None` otherwise.
    #[serde(default)]
    pub project: Option<TokenProject>,
    /// The domain of a domain-scoped token (`domain`); `None` otherwise.
    #[serde(default)]
    pub domain: Option<Domain>,
    /// The roles the token grants on its scope (`roles`); empty for an unscoped token.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Whether the scoped project acts as a domain (`is_domain`).
    #[serde(default)]
    pub is_domain: bool,
    /// The system scope of a system-scoped token (`system`, e.g. `{"all": true}`), as
    /// JSON; `None` otherwise.
    #[serde(default)]
    pub system: Option<serde_json::Value>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id", &Redacted(&self.id))
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .field("methods", &self.methods)
            .field("user", &self.user)
            .field("project", &self.project)
            .field("domain", &self.domain)
            .field("roles", &self.roles)
            .field("system", &self.system)
            .finish()
    }
}

/// One endpoint of a service in the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The endpoint's id (`id`); empty if Keystone sent none.
    #[serde(default, deserialize_with = "de_null_string")]
    pub id: String,
    /// `public`, `internal` or `admin` (`interface`): see [`Availability`].
    ///
    /// [`Availability`]: crate::openstack::Availability
    pub interface: String,
    /// The region's name (`region`, the legacy field); empty when the endpoint has none.
    #[serde(default, deserialize_with = "de_null_string")]
    pub region: String,
    /// The region's id (`region_id`); usually equal to `region`. Empty when none.
    #[serde(default, deserialize_with = "de_null_string")]
    pub region_id: String,
    /// The endpoint's base URL (`url`), as the catalog lists it (not normalised).
    pub url: String,
}

/// One service in the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The service's id (`id`); empty if Keystone sent none.
    #[serde(default, deserialize_with = "de_null_string")]
    pub id: String,
    /// The service's name (`name`), e.g. `keystone`, `nova`: what
    /// [`EndpointOpts::name`](crate::openstack::EndpointOpts::name) matches.
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    /// The service type (`type`), e.g. `identity`, `compute`, `volumev3`.
    #[serde(rename = "type")]
    pub service_type: String,
    /// The service's endpoints (`endpoints`), one per interface and region.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// The services and endpoints a token may use (see [`ServiceCatalog::endpoint_url`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCatalog {
    /// The services, in the order of the token's `catalog` array.
    pub entries: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
struct CatalogOnly {
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
struct UserOnly {
    user: TokenUser,
}

#[derive(Deserialize)]
struct ProjectOnly {
    #[serde(default)]
    project: Option<TokenProject>,
}

#[derive(Deserialize)]
struct RolesOnly {
    #[serde(default)]
    roles: Vec<Role>,
}

/// The answer to a token issue or validation (gophercloud's `tokens.commonResult`); the
/// raw [`Response`] through `Deref`.
#[derive(Debug, Clone)]
pub struct TokenResult(pub Response);
/// What [`create`](super::create) returns (gophercloud's `tokens.CreateResult`).
pub type CreateResult = TokenResult;
/// What [`get`](super::get) and [`get_self`](super::get_self) return (gophercloud's
/// `tokens.GetResult`).
pub type GetResult = TokenResult;

impl Deref for TokenResult {
    type Target = Response;
    fn deref(&self) -> &Response {
        &self.0
    }
}

impl TokenResult {
    /// The token id from the `X-Subject-Token` header (gophercloud's `ExtractTokenID`);
    /// [`Error::Decode`](crate::Error::Decode) when it is missing or empty.
    pub fn extract_token_id(&self) -> Result<String> {
        match self.0.header("x-subject-token") {
            Some(t) if !t.is_empty() => Ok(t.to_owned()),
            _ => Err(decode_error(
                self.0.url(),
                "the answer has no X-Subject-Token header",
            )),
        }
    }

    /// The token from the body's `token` member, with its id from `X-Subject-Token`
    /// (gophercloud's `ExtractToken`); [`Error::Decode`](crate::Error::Decode) when either
    /// is missing or malformed.
    pub fn extract(&self) -> Result<Token> {
        let mut token: Token = self.0.extract_into("token")?;
        token.id = self.extract_token_id()?;
        Ok(token)
    }

    /// The catalog in the token (empty for unscoped tokens and `?nocatalog`).
    pub fn extract_service_catalog(&self) -> Result<ServiceCatalog> {
        let c: CatalogOnly = self.0.extract_into("token")?;
        Ok(ServiceCatalog { entries: c.catalog })
    }

    /// The token's user (gophercloud's `ExtractUser`). Like gophercloud, it reads only the
    /// body's `token.user`: the `X-Subject-Token` header is not needed (a proxy may strip
    /// it). [`Error::Decode`](crate::Error::Decode) when `user` is missing or malformed.
    pub fn extract_user(&self) -> Result<TokenUser> {
        Ok(self.0.extract_into::<UserOnly>("token")?.user)
    }

    /// The token's project, `None` unless project-scoped (gophercloud's
    /// `ExtractProject`). Reads only `token.project`, as [`extract_user`](Self::extract_user)
    /// reads `token.user`.
    pub fn extract_project(&self) -> Result<Option<TokenProject>> {
        Ok(self.0.extract_into::<ProjectOnly>("token")?.project)
    }

    /// The roles the token grants (gophercloud's `ExtractRoles`). Reads only
    /// `token.roles`, as [`extract_user`](Self::extract_user) reads `token.user`.
    pub fn extract_roles(&self) -> Result<Vec<Role>> {
        Ok(self.0.extract_into::<RolesOnly>("token")?.roles)
    }
}

/// The answer to a revocation (204, no body; gophercloud's `tokens.RevokeResult`); the
/// raw [`Response`] through `Deref`.
#[derive(Debug, Clone)]
pub struct RevokeResult(pub Response);

impl Deref for RevokeResult {
    type Target = Response;
    fn deref(&self) -> &Response {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};
    use reqwest::Method;

    /// wire/keystone/03, trimmed.
    const ISSUE: &str = r#"{"token": {"methods": ["password"],
        "user": {"domain": {"id": "default", "name": "Default"}, "id": "4555", "name": "admin", "password_expires_at": null},
        "audit_ids": ["lMbTOj79Tl2nHQzB-ERWxQ"],
        "expires_at": "2026-11-22T05:56:12.000000Z", "issued_at": "2026-11-22T04:56:12.000000Z",
        "project": {"domain": {"id": "default", "name": "Default"}, "id": "4ab9", "name": "admin"},
        "is_domain": false, "roles": [{"id": "615c", "name": "manager"}, {"id": "73d6", "name": "admin"}],
        "catalog": [{"endpoints": [{"id": "7aa3", "interface": "public", "region_id": "RegionOne",
            "url": "http://127.0.0.1:5000/v3", "region": "RegionOne"}], "id": "59fe", "type": "identity", "name": "keystone"},
          {"endpoints": [{"id": "x", "interface": "public", "region_id": null, "url": "http://h/", "region": null}],
           "id": "y", "type": "dns", "name": "designate"}]}}"#;

    fn result(body: &str, subject: Option<&str>) -> TokenResult {
        let mut headers = HeaderMap::new();
        if let Some(s) = subject {
            headers.insert("x-subject-token", HeaderValue::from_str(s).unwrap());
        }
        TokenResult(Response {
            method: Method::POST,
            url: "http://127.0.0.1:5000/v3/auth/tokens".parse().unwrap(),
            status: 201,
            headers,
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn extracts_a_keystone_token() {
        let r = result(ISSUE, Some("gAAAAABsecret"));
        let t = r.extract().unwrap();
        assert_eq!(t.id, "gAAAAABsecret");
        assert_eq!(t.user.name, "admin");
        assert_eq!(t.user.domain.as_ref().unwrap().id, "default");
        assert_eq!(t.project.as_ref().unwrap().id, "4ab9");
        assert_eq!(t.expires_at.to_rfc3339(), "2026-11-22T05:56:12+00:00");
        assert_eq!(t.roles.len(), 2);
        assert!(!format!("{t:?}").contains("gAAAAABsecret"));
        let c = r.extract_service_catalog().unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[0].endpoints[0].region, "RegionOne");
        assert_eq!(c.entries[1].endpoints[0].region, "");
    }

    #[test]
    fn bad_answers_are_decode_errors() {
        use crate::error::Error;
        let is_decode = |r: Result<Token>| matches!(r, Err(Error::Decode { .. }));
        assert!(is_decode(result(ISSUE, None).extract()));
        assert!(is_decode(result("<html>", Some("t")).extract()));
        assert!(is_decode(result(r#"{"tokens": {}}"#, Some("t")).extract()));
        assert!(is_decode(
            result(
                r#"{"token": {"expires_at": "soon", "user": {"id": "u"}}}"#,
                Some("t")
            )
            .extract()
        ));
        // An unscoped token has no catalog: that is an empty catalog, not an error.
        let unscoped = r#"{"token": {"expires_at": "2026-11-22T05:56:12.000000Z", "user": {"id": "u", "name": "n"}}}"#;
        let r = result(unscoped, Some("t"));
        assert!(r.extract().unwrap().project.is_none());
        assert!(r.extract_service_catalog().unwrap().entries.is_empty());
    }

    /// As gophercloud's `ExtractUser`, `ExtractProject` and `ExtractRoles`: the body alone,
    /// without `X-Subject-Token`; a body without a user is still an error.
    #[test]
    fn user_project_and_roles_need_only_the_body() {
        let r = result(ISSUE, None);
        assert_eq!(r.extract_user().unwrap().name, "admin");
        assert_eq!(r.extract_project().unwrap().unwrap().id, "4ab9");
        assert_eq!(r.extract_roles().unwrap().len(), 2);
        let unscoped = r#"{"token": {"expires_at": "2026-11-22T05:56:12.000000Z", "user": {"id": "u", "name": "n"}}}"#;
        let r = result(unscoped, None);
        assert!(r.extract_project().unwrap().is_none());
        assert!(r.extract_roles().unwrap().is_empty());
        assert!(matches!(
            result(r#"{"token": {}}"#, Some("t")).extract_user(),
            Err(crate::error::Error::Decode { .. })
        ));
    }
}
