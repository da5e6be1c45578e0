use super::results::{GetResult, Project};
use super::urls::{get_url, list_available_url, list_url};
use crate::error::Result;
use crate::openstack::pagination::Pager;
use crate::openstack::provider::RequestOpts;
use crate::openstack::service::ServiceClient;

/// Filters and paging for [`list`] (gophercloud's `projects.ListOpts`), sent as query
/// parameters of the same names; unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOpts {
    /// Only projects owned by this domain (`domain_id`).
    pub domain_id: Option<String>,
    /// Only the project with exactly this name (`name`; names are unique per domain).
    pub name: Option<String>,
    /// Only enabled (`true`) or disabled (`false`) projects (`enabled`).
    pub enabled: Option<bool>,
    /// Only projects that act as domains (`true`) or only ordinary ones (`false`)
    /// (`is_domain`).
    pub is_domain: Option<bool>,
    /// Only the direct children of this project (`parent_id`) in a project hierarchy.
    pub parent_id: Option<String>,
    /// Page size (`limit`); Keystone caps it at its `max_db_limit`.
    pub limit: Option<usize>,
    /// Start after this project id (`marker`); later pages set it themselves.
    pub marker: Option<String>,
}

/// `GET /v3/projects`, paged by `links.next` (or by marker when `limit` is set).
pub fn list(client: &ServiceClient, opts: &ListOpts) -> Result<Pager<Project>> {
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
        put("is_domain", opts.is_domain.map(|b| b.to_string()));
        put("parent_id", opts.parent_id.clone());
        put("limit", opts.limit.map(|l| l.to_string()));
        put("marker", opts.marker.clone());
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let pager = Pager::new(client.clone(), url, "projects");
    Ok(match opts.limit {
        Some(l) => pager.with_marker_paging(l),
        None => pager,
    })
}

/// `GET /v3/auth/projects`: the projects the token's user may scope to.
pub fn list_available(client: &ServiceClient) -> Result<Pager<Project>> {
    Ok(Pager::new(
        client.clone(),
        list_available_url(client)?,
        "projects",
    ))
}

/// `GET /v3/projects/{id}`.
pub async fn get(client: &ServiceClient, id: &str) -> Result<GetResult> {
    let resp = client
        .get(get_url(client, id)?, RequestOpts::ok(&[200]))
        .await?;
    Ok(GetResult(resp))
}
