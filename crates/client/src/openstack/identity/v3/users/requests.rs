use super::results::{GetResult, User};
use super::urls::{get_url, list_url};
use crate::error::Result;
use crate::openstack::pagination::Pager;
use crate::openstack::provider::RequestOpts;
use crate::openstack::service::ServiceClient;

/// Filters and paging for [`list`] (gophercloud's `users.ListOpts`), sent as query
/// parameters of the same names; unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOpts {
    /// Only users of this domain (`domain_id`).
    pub domain_id: Option<String>,
    /// Only the user with exactly this name (`name`; names are unique per domain).
    pub name: Option<String>,
    /// Only enabled (`true`) or disabled (`false`) users (`enabled`).
    pub enabled: Option<bool>,
    /// Page size (`limit`); Keystone caps it at its `max_db_limit`. Also turns on marker
    /// paging when the answers have no `links.next`.
    pub limit: Option<usize>,
    /// Start after this user id (`marker`); later pages set it themselves.
    pub marker: Option<String>,
}

/// `GET /v3/users` (needs an admin or reader role), paged like projects.
pub fn list(client: &ServiceClient, opts: &ListOpts) -> Result<Pager<User>> {
    let mut url = list_url(client)?;
    {
        let mut q = url.query_pairs_mut();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.append_pair(k, &v);
            }
        };
        put("domain_id", opts.domain_id.clone());
        put("name", opts.name.clone());
        put("enabled", opts.enabled.map(|b| b.to_string()));
        put("limit", opts.limit.map(|l| l.to_string()));
        put("marker", opts.marker.clone());
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let pager = Pager::new(client.clone(), url, "users");
    Ok(match opts.limit {
        Some(l) => pager.with_marker_paging(l),
        None => pager,
    })
}

/// `GET /v3/users/{id}`.
pub async fn get(client: &ServiceClient, id: &str) -> Result<GetResult> {
    let resp = client
        .get(get_url(client, id)?, RequestOpts::ok(&[200]))
        .await?;
    Ok(GetResult(resp))
}
