use crate::error::Result;
use crate::openstack::service::ServiceClient;
use url::Url;

pub(super) fn list_url(client: &ServiceClient) -> Result<Url> {
    client.service_url(&["projects"])
}

pub(super) fn get_url(client: &ServiceClient, id: &str) -> Result<Url> {
    client.service_url(&["projects", id])
}

pub(super) fn list_available_url(client: &ServiceClient) -> Result<Url> {
    client.service_url(&["auth", "projects"])
}
