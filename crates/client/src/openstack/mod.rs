//! OpenStack (Keystone v3), in gophercloud's provider → service → resource shape.
//!
//! - A **provider** ([`ProviderClient`]) is one authenticated session with a cloud: the token,
//!   its service catalog, and re-authentication ([`authenticated_client`]).
//! - A **service** ([`ServiceClient`]) is one service's endpoint, found in the catalog with
//!   [`EndpointOpts`] (region, interface): [`identity_v3`], or [`service_client`] for any type.
//! - **Resources** live in one module each, split into requests, results and urls:
//!   [`identity::v3::tokens`], [`identity::v3::projects`], [`identity::v3::users`],
//!   [`identity::v3::catalog`]. Calls return results that carry the status, headers and body
//!   ([`Response`]); `extract()` decodes them. Collections come as a [`Pager`].
//!
//! ```no_run
//! # async fn demo() -> vsess_client::Result<()> {
//! use vsess_client::openstack::{self, identity::v3::projects, AuthOptions, EndpointOpts};
//!
//! let mut opts = AuthOptions::from_env()?; // OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, ...
//! opts.allow_reauth = true;
//! let provider = openstack::authenticated_client(opts).await?;
//! let identity = openstack::identity_v3(&provider, &EndpointOpts::region("RegionOne"))?;
//! projects::list(&identity, &projects::ListOpts { limit: Some(10), ..Default::default() })?
//!     .each_page(|page| {
//!         for p in page.items() {
//!             println!("{} {}", p.id, p.name);
//!         }
//!         Ok(true) // false stops after this page
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
pub mod auth_options;
pub mod endpoint;
mod errors;
pub mod identity;
pub mod pagination;
pub mod provider;
pub mod service;

#[cfg(test)]
mod testing;

pub use auth_options::{AuthOptions, AuthScope, DomainRef};
pub use endpoint::{Availability, EndpointOpts};
pub use identity::v3::tokens::{CatalogEntry, Endpoint, ServiceCatalog, Token};
pub use pagination::{Page, Pager};
pub use provider::{ProviderClient, ProviderConfig, RequestOpts};
pub use service::{Response, ServiceClient};

use crate::error::{Error, Result};

/// Authenticates with `opts` and returns the provider client holding the token and catalog
/// (gophercloud's `AuthenticatedClient`).
pub async fn authenticated_client(opts: AuthOptions) -> Result<ProviderClient> {
    authenticated_client_with(opts, ProviderConfig::default()).await
}

/// [`authenticated_client`] with client settings (expiry margin, TLS, clock, timeout).
pub async fn authenticated_client_with(
    opts: AuthOptions,
    config: ProviderConfig,
) -> Result<ProviderClient> {
    let provider = ProviderClient::new(opts, config)?;
    provider.authenticate().await?;
    Ok(provider)
}

/// A client for the service of `service_type` that `opts` selects in the provider's catalog
/// (gophercloud's `initClientOpts`).
pub fn service_client(
    provider: &ProviderClient,
    service_type: &str,
    opts: &EndpointOpts,
) -> Result<ServiceClient> {
    let url = provider.endpoint_url(service_type, opts)?;
    ServiceClient::new(provider.clone(), &url, service_type)
}

/// The Identity v3 service (gophercloud's `NewIdentityV3`): its endpoint from the catalog,
/// with `v3/` appended if the catalog lists it without a version. With an unscoped token
/// (no catalog) it is the endpoint the client authenticated at.
pub fn identity_v3(provider: &ProviderClient, opts: &EndpointOpts) -> Result<ServiceClient> {
    if provider.catalog().entries.is_empty() {
        return Ok(provider.auth_service());
    }
    let url = provider.endpoint_url("identity", opts)?;
    let url = versionless_v3(&url)?;
    ServiceClient::new(provider.clone(), url.as_str(), "identity")
}

/// A catalog's identity endpoint made the v3 one, as gophercloud's `BaseEndpoint` does:
/// the path up to a version segment (`/v2.0`, `/v3`), if any, plus `v3/`. Older clouds
/// still list `.../v2.0`, although their Keystone serves v3 beside it.
fn versionless_v3(endpoint: &str) -> Result<url::Url> {
    let mut url = url::Url::parse(endpoint).map_err(|e| {
        Error::Config(format!(
            "invalid identity endpoint {endpoint:?} in the catalog: {e}"
        ))
    })?;
    let is_version = |seg: &str| {
        seg.strip_prefix('v').is_some_and(|v| {
            !v.is_empty()
                && v.split('.')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    let mut base = String::new();
    for seg in url.path().split('/').filter(|s| !s.is_empty()) {
        if is_version(seg) {
            break;
        }
        base.push('/');
        base.push_str(seg);
    }
    url.set_path(&format!("{base}/v3/"));
    url.set_query(None);
    url.set_fragment(None);
    auth_options::identity_v3_url(url.as_str())
}

#[cfg(test)]
mod tests {
    /// A catalog's identity endpoint, with or without a version, gives the v3 endpoint;
    /// one listed as v2.0 (older clouds) too, as in gophercloud.
    #[test]
    fn catalog_identity_endpoints_become_v3() {
        for (listed, v3) in [
            ("http://ctl:5000/v2.0", "http://ctl:5000/v3/"),
            ("http://ctl:5000/v2.0/", "http://ctl:5000/v3/"),
            ("https://ctl/identity/v3", "https://ctl/identity/v3/"),
            ("https://ctl/identity", "https://ctl/identity/v3/"),
            ("https://ctl:5000/", "https://ctl:5000/v3/"),
            (
                "https://ctl/identity/v3/projects",
                "https://ctl/identity/v3/",
            ),
            ("https://ctl/vault/v2.0", "https://ctl/vault/v3/"),
        ] {
            assert_eq!(
                super::versionless_v3(listed).unwrap().as_str(),
                v3,
                "{listed}"
            );
        }
        assert!(super::versionless_v3("ftp://ctl/v3").is_err());
    }
}
