use crate::error::{Redacted, Result};
use crate::openstack::errors::decode_error;
use crate::openstack::identity::v3::{de_null_string, de_opt_time, de_time};
use crate::openstack::service::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;

/// A domain reference as tokens carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    #[serde(default, deserialize_with = "de_null_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUser {
    pub id: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    #[serde(default)]
    pub domain: Option<Domain>,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub password_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenProject {
    pub id: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    #[serde(default)]
    pub domain: Option<Domain>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
}

/// A token: its id (from `X-Subject-Token`; a secret, redacted in Debug) and what the body
/// says about it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    #[serde(skip)]
    pub id: String,
    #[serde(deserialize_with = "de_time")]
    pub expires_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub audit_ids: Vec<String>,
    pub user: TokenUser,
    #[serde(default)]
    pub project: Option<TokenProject>,
    #[serde(default)]
    pub domain: Option<Domain>,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub is_domain: bool,
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
    #[serde(default, deserialize_with = "de_null_string")]
    pub id: String,
    /// public, internal or admin.
    pub interface: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub region: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub region_id: String,
    pub url: String,
}

/// One service in the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    #[serde(default, deserialize_with = "de_null_string")]
    pub id: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// The services and endpoints a token may use (see [`ServiceCatalog::endpoint_url`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCatalog {
    pub entries: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
struct CatalogOnly {
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

/// The answer to a token issue or validation.
#[derive(Debug, Clone)]
pub struct TokenResult(pub Response);
pub type CreateResult = TokenResult;
pub type GetResult = TokenResult;

impl Deref for TokenResult {
    type Target = Response;
    fn deref(&self) -> &Response {
        &self.0
    }
}

impl TokenResult {
    /// The token id from the `X-Subject-Token` header.
    pub fn extract_token_id(&self) -> Result<String> {
        match self.0.header("x-subject-token") {
            Some(t) if !t.is_empty() => Ok(t.to_owned()),
            _ => Err(decode_error(
                self.0.url(),
                "the answer has no X-Subject-Token header",
            )),
        }
    }

    /// The token, with its id.
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

    pub fn extract_user(&self) -> Result<TokenUser> {
        Ok(self.extract()?.user)
    }

    pub fn extract_project(&self) -> Result<Option<TokenProject>> {
        Ok(self.extract()?.project)
    }

    pub fn extract_roles(&self) -> Result<Vec<Role>> {
        Ok(self.extract()?.roles)
    }
}

/// The answer to a revocation (204, no body).
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
}
