//! The token's catalog: `GET /v3/auth/catalog`.
mod requests;
mod urls;

pub use crate::openstack::identity::v3::tokens::{CatalogEntry, Endpoint, ServiceCatalog};
pub use requests::{get, list};
