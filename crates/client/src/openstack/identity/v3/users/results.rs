use crate::error::Result;
use crate::openstack::identity::v3::{de_null_string, de_opt_time};
use crate::openstack::service::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::ops::Deref;

fn yes() -> bool {
    true
}

/// A Keystone user (gophercloud's `users.User`), decoded from the `user` object of the
/// Identity API. Fields not listed here (email, options, links) stay in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The user's id (`id`), what `AuthOptions::user_id` and role assignments take.
    pub id: String,
    /// The login name (`name`), unique within the user's domain.
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    /// The id of the user's domain (`domain_id`).
    #[serde(default, deserialize_with = "de_null_string")]
    pub domain_id: String,
    /// Whether the user may authenticate (`enabled`); true when Keystone omits it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The project a token is scoped to when the user asks for no scope
    /// (`default_project_id`); `None` when unset.
    #[serde(default)]
    pub default_project_id: Option<String>,
    /// Free text (`description`); `None` when absent or `null`.
    #[serde(default)]
    pub description: Option<String>,
    /// When the user's password expires (`password_expires_at`, UTC); `None` when it
    /// never does.
    #[serde(default, deserialize_with = "de_opt_time")]
    pub password_expires_at: Option<DateTime<Utc>>,
    /// Every other member of the object (`email`, `options`, `links`, ...), as JSON;
    /// written back at the top level when serialized.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The answer to `GET /v3/users/{id}` (gophercloud's `users.GetResult`); the raw
/// [`Response`] through `Deref`.
#[derive(Debug, Clone)]
pub struct GetResult(pub Response);

impl Deref for GetResult {
    type Target = Response;
    fn deref(&self) -> &Response {
        &self.0
    }
}

impl GetResult {
    /// The [`User`] in the body's `user` member; [`Error::Decode`] when it is missing or
    /// malformed.
    ///
    /// [`Error::Decode`]: crate::Error::Decode
    pub fn extract(&self) -> Result<User> {
        self.0.extract_into("user")
    }
}
