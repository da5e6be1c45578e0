use super::urls::catalog_url;
use crate::error::Result;
use crate::openstack::identity::v3::tokens::{CatalogEntry, ServiceCatalog};
use crate::openstack::pagination::Pager;
use crate::openstack::service::ServiceClient;

/// `GET /v3/auth/catalog` as a pager (one page in practice), like gophercloud's
/// `catalog.List`.
pub fn list(client: &ServiceClient) -> Result<Pager<CatalogEntry>> {
    Ok(Pager::new(client.clone(), catalog_url(client)?, "catalog"))
}

/// The whole catalog of the client's token.
pub async fn get(client: &ServiceClient) -> Result<ServiceCatalog> {
    Ok(ServiceCatalog {
        entries: list(client)?.all_pages().await?,
    })
}
