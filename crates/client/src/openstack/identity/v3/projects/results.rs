use crate::error::Result;
use crate::openstack::identity::v3::de_null_string;
use crate::openstack::service::Response;
use serde::{Deserialize, Serialize};
use std::ops::Deref;

fn yes() -> bool {
    true
}

/// A Keystone project. Fields Keystone adds that are not listed here stay in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub domain_id: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub is_domain: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The answer to `GET /v3/projects/{id}`.
#[derive(Debug, Clone)]
pub struct GetResult(pub Response);

impl Deref for GetResult {
    type Target = Response;
    fn deref(&self) -> &Response {
        &self.0
    }
}

impl GetResult {
    pub fn extract(&self) -> Result<Project> {
        self.0.extract_into("project")
    }
}
