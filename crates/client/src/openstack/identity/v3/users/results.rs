use crate::error::Result;
use crate::openstack::identity::v3::{de_null_string, de_opt_time};
use crate::openstack::service::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::ops::Deref;

fn yes() -> bool {
    true
}

/// A Keystone user. Fields not listed here (email, options, links) stay in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de_null_string")]
    pub domain_id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub default_project_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub password_expires_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The answer to `GET /v3/users/{id}`.
#[derive(Debug, Clone)]
pub struct GetResult(pub Response);

impl Deref for GetResult {
    type Target = Response;
    fn deref(&self) -> &Response {
        &self.0
    }
}

impl GetResult {
    pub fn extract(&self) -> Result<User> {
        self.0.extract_into("user")
    }
}
