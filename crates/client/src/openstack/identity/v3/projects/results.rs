use crate::error::Result;
use crate::openstack::identity::v3::de_null_string;
use crate::openstack::service::Response;
use serde::{Deserialize, Serialize};
use std::ops::Deref;

fn yes() -> bool {
    true
}

/// A Keystone project (gophercloud's `projects.Project`), decoded from the `project`
/// object of the Identity API. Fields Keystone adds that are not listed here stay in
/// `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// The project's id (`id`), what scopes and role assignments refer to.
    pub id: String,
    /// The project's name (`name`), unique within its domain; empty if Keystone sent none.
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    /// The id of the domain that owns the project (`domain_id`).
    #[serde(default, deserialize_with = "de_null_string")]
    pub domain_id: String,
    /// Free text (`description`); empty when Keystone has `null` or none.
    #[serde(default, deserialize_with = "de_null_string")]
    pub description: String,
    /// Whether the project is enabled (`enabled`); a token cannot be scoped to a disabled
    /// one. True when Keystone omits it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The parent project's id (`parent_id`); for a top-level project, Keystone gives its
    /// domain's id. `None` when absent or `null`.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Whether the project is a domain itself (`is_domain`, Keystone's projects-as-domains).
    #[serde(default)]
    pub is_domain: bool,
    /// The project's tags (`tags`); empty when none.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Every other member of the object (`links`, `options`, ...), as JSON; written back
    /// at the top level when serialized.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The answer to `GET /v3/projects/{id}` (gophercloud's `projects.GetResult`); the raw
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
    /// The [`Project`] in the body's `project` member; [`Error::Decode`] when it is
    /// missing or malformed.
    ///
    /// [`Error::Decode`]: crate::Error::Decode
    pub fn extract(&self) -> Result<Project> {
        self.0.extract_into("project")
    }
}
