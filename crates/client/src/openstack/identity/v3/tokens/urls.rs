use crate::error::Result;
use crate::openstack::service::ServiceClient;
use url::Url;

pub(super) fn tokens_url(client: &ServiceClient) -> Result<Url> {
    client.service_url(&["auth", "tokens"])
}
