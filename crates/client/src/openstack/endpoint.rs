//! Finding a service's endpoint in the service catalog: [`EndpointOpts`] and
//! [`Availability`], as gophercloud's `EndpointOpts` and `V3EndpointURL`.
use super::identity::v3::tokens::{CatalogEntry, ServiceCatalog};
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Which of a service's endpoints to use: the catalog endpoint's `interface`
/// (gophercloud's `Availability`; `OS_INTERFACE`). Parses from `public`, `internal`,
/// `admin` and the v2-style `publicURL` forms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Availability {
    /// `public`: the endpoint reachable from outside the cloud. The default.
    #[default]
    Public,
    /// `internal`: the endpoint on the cloud's internal network, for clients running
    /// inside it.
    Internal,
    /// `admin`: the administrative endpoint, where a cloud still lists one (Keystone v3
    /// itself no longer needs it).
    Admin,
}

impl Availability {
    /// The catalog's spelling: `"public"`, `"internal"` or `"admin"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Availability::Public => "public",
            Availability::Internal => "internal",
            Availability::Admin => "admin",
        }
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Availability {
    type Err = Error;
    /// `public`, `internal`, `admin`, also with the v2 `URL` suffix (`publicURL`).
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.strip_suffix("url").unwrap_or(&lower) {
            "public" => Ok(Availability::Public),
            "internal" => Ok(Availability::Internal),
            "admin" => Ok(Availability::Admin),
            _ => Err(Error::Config(format!(
                "unknown endpoint interface {s:?}: expected public, internal or admin"
            ))),
        }
    }
}

/// How to pick one endpoint of a service from the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOpts {
    /// The region (matched against `region` and `region_id`); None: any region.
    pub region: Option<String>,
    /// The interface; public by default.
    pub availability: Availability,
    /// The service's name in the catalog, when several services share a type.
    pub name: Option<String>,
}

impl EndpointOpts {
    /// In `region`, public interface.
    pub fn region(region: impl Into<String>) -> Self {
        Self {
            region: Some(region.into()),
            ..Self::default()
        }
    }

    /// These options with the interface set to `availability`, e.g.
    /// `EndpointOpts::region("RegionOne").with_availability(Availability::Internal)`.
    pub fn with_availability(mut self, availability: Availability) -> Self {
        self.availability = availability;
        self
    }

    /// `OS_REGION_NAME` and `OS_INTERFACE` (public if unset), as openstackclient reads them.
    /// An `OS_INTERFACE` other than public, internal or admin gives [`Error::Config`].
    pub fn from_env() -> Result<Self> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(Self {
            region: get("OS_REGION_NAME"),
            availability: match get("OS_INTERFACE") {
                Some(i) => i.parse()?,
                None => Availability::Public,
            },
            name: None,
        })
    }
}

/// Other names a service type goes by in catalogs (from the OpenStack service-types list).
fn aliases(service_type: &str) -> &'static [&'static str] {
    match service_type {
        "block-storage" => &["block-store", "volume", "volumev2", "volumev3"],
        "shared-file-system" => &["sharev2", "share"],
        "container-infrastructure-management" => &["container-infrastructure", "container-infra"],
        "application-container" => &["container"],
        "baremetal" => &["bare-metal"],
        "message" => &["messaging"],
        "workflow" => &["workflowv2"],
        _ => &[],
    }
}

fn type_matches(entry: &CatalogEntry, service_type: &str) -> bool {
    entry.service_type == service_type
        || aliases(service_type).contains(&entry.service_type.as_str())
}

impl ServiceCatalog {
    /// The URL of `service_type`'s endpoint that `opts` selects (gophercloud's
    /// `V3EndpointURL`): the first match in catalog order, a service type's other names
    /// counting (`volumev3` for `block-storage`). None matching, or an empty catalog (an
    /// unscoped token), gives [`Error::Config`] saying what the catalog does have.
    pub fn endpoint_url(&self, service_type: &str, opts: &EndpointOpts) -> Result<String> {
        if self.entries.is_empty() {
            return Err(Error::Config(format!(
                "no endpoint for service type \"{service_type}\": the service catalog is empty \
                 (an unscoped token has none; scope to a project, domain or system)"
            )));
        }
        let name = opts.name.as_deref().filter(|n| !n.is_empty());
        let region = opts.region.as_deref().filter(|r| !r.is_empty());
        let services: Vec<&CatalogEntry> = self
            .entries
            .iter()
            .filter(|e| type_matches(e, service_type) && name.is_none_or(|n| e.name == n))
            .collect();
        if services.is_empty() {
            let have: Vec<String> = self
                .entries
                .iter()
                .map(|e| format!("{} ({})", e.service_type, e.name))
                .collect();
            let named = name.map(|n| format!(" named \"{n}\"")).unwrap_or_default();
            return Err(Error::Config(format!(
                "the service catalog has no service of type \"{service_type}\"{named} (it has: {})",
                have.join(", ")
            )));
        }
        for entry in &services {
            for ep in &entry.endpoints {
                if ep.interface != opts.availability.as_str() {
                    continue;
                }
                if let Some(r) = region {
                    if ep.region != r && ep.region_id != r {
                        continue;
                    }
                }
                return Ok(ep.url.clone());
            }
        }
        let have: Vec<String> = services
            .iter()
            .flat_map(|e| e.endpoints.iter())
            .map(|ep| {
                let r = if ep.region_id.is_empty() {
                    &ep.region
                } else {
                    &ep.region_id
                };
                format!(
                    "{} in {}",
                    ep.interface,
                    if r.is_empty() { "no region" } else { r }
                )
            })
            .collect();
        let where_ = region
            .map(|r| format!(" in region \"{r}\""))
            .unwrap_or_default();
        Err(Error::Config(format!(
            "no {} endpoint for service type \"{service_type}\"{where_} in the service catalog \
             (its endpoints: {})",
            opts.availability,
            if have.is_empty() {
                "none".to_owned()
            } else {
                have.join(", ")
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> ServiceCatalog {
        // The shape of wire/keystone/12 (after seed.py).
        let body = serde_json::json!({"catalog": [
            {"type": "identity", "name": "keystone", "id": "k", "endpoints": [
                {"id": "1", "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": "http://127.0.0.1:5000/v3"},
                {"id": "2", "interface": "internal", "region_id": "RegionOne", "region": "RegionOne", "url": "http://127.0.0.1:5000/v3"}]},
            {"type": "compute", "name": "nova", "id": "n", "endpoints": [
                {"id": "3", "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": "http://127.0.0.1:8774/v2.1"},
                {"id": "4", "interface": "internal", "region_id": "RegionOne", "region": "RegionOne", "url": "http://127.0.0.1:8774/v2.1"},
                {"id": "5", "interface": "public", "region_id": "RegionTwo", "region": "RegionTwo", "url": "http://127.0.0.1:18774/v2.1"}]},
            {"type": "volumev3", "name": "cinder", "id": "c", "endpoints": [
                {"id": "6", "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": "http://127.0.0.1:8776/v3"}]},
            {"type": "object-store", "name": "swift", "id": "s", "endpoints": [
                {"id": "7", "interface": "public", "region_id": "RegionTwo", "region": "RegionTwo", "url": "http://127.0.0.1:18080/v1/AUTH_x"}]}
        ]});
        ServiceCatalog {
            entries: serde_json::from_value(body["catalog"].clone()).unwrap(),
        }
    }

    #[test]
    fn looks_up_by_type_region_and_interface() {
        let c = catalog();
        let url = |t: &str, o: EndpointOpts| c.endpoint_url(t, &o);
        assert_eq!(
            url("compute", EndpointOpts::region("RegionOne")).unwrap(),
            "http://127.0.0.1:8774/v2.1"
        );
        assert_eq!(
            url("compute", EndpointOpts::region("RegionTwo")).unwrap(),
            "http://127.0.0.1:18774/v2.1"
        );
        assert_eq!(
            url("compute", EndpointOpts::default()).unwrap(),
            "http://127.0.0.1:8774/v2.1"
        );
        assert_eq!(
            url("block-storage", EndpointOpts::default()).unwrap(),
            "http://127.0.0.1:8776/v3"
        );
        let e = url(
            "compute",
            EndpointOpts::region("RegionTwo").with_availability(Availability::Internal),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no internal endpoint for service type \"compute\" in region \"RegionTwo\""),
            "{e}"
        );
        assert!(e.contains("public in RegionTwo"), "{e}");
        let e = url("object-store", EndpointOpts::region("RegionOne"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("its endpoints: public in RegionTwo"), "{e}");
        let e = url("image", EndpointOpts::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no service of type \"image\""), "{e}");
        assert!(e.contains("compute (nova)"), "{e}");
        let named = EndpointOpts {
            name: Some("nova-legacy".into()),
            ..EndpointOpts::default()
        };
        assert!(url("compute", named).is_err());
        let empty = ServiceCatalog::default();
        assert!(empty
            .endpoint_url("identity", &EndpointOpts::default())
            .unwrap_err()
            .to_string()
            .contains("catalog is empty"));
    }

    #[test]
    fn availability_parses() {
        assert_eq!(
            "publicURL".parse::<Availability>().unwrap(),
            Availability::Public
        );
        assert_eq!(
            "internal".parse::<Availability>().unwrap(),
            Availability::Internal
        );
        assert_eq!(
            "Admin".parse::<Availability>().unwrap(),
            Availability::Admin
        );
        assert!("private".parse::<Availability>().is_err());
        for (s, a) in [
            ("publicurl", Availability::Public),
            ("INTERNALURL", Availability::Internal),
            (" adminURL ", Availability::Admin),
        ] {
            assert_eq!(s.parse::<Availability>().unwrap(), a, "{s}");
        }
        assert!("url".parse::<Availability>().is_err());
    }
}
