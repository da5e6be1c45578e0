//! Reading properties of the managed objects vsess serves (ServiceInstance,
//! SessionManager, the inventory), the PropertyCollector, and the inventory methods.
use crate::fault::{Fault, MoRef};
use crate::inventory::{
    valid_name, ComputePolicy, CreateError, CreateKind, Entity, EntityKind, FolderFilter,
};
use crate::privilege::Privilege;
use crate::service::SessionService;
use crate::session::SessionRecord;
use crate::value::{ObjectContent, PropertyFilterSpec, Value};
use std::collections::{HashMap, HashSet};

pub const SESSION_MANAGER_PROPS: &[&str] = &[
    "sessionList",
    "currentSession",
    "message",
    "messageLocaleList",
    "supportedLocaleList",
    "defaultLocale",
];
pub const SERVICE_INSTANCE_PROPS: &[&str] = &["content", "serverClock"];
pub const FOLDER_PROPS: &[&str] = &["name", "parent", "childEntity", "childType", "tag"];
pub const DATACENTER_PROPS: &[&str] = &[
    "name",
    "parent",
    "vmFolder",
    "hostFolder",
    "datastoreFolder",
    "networkFolder",
    "tag",
];

impl SessionService {
    /// An inventory entity the caller may see (System.View on it).
    async fn visible_entity(
        &self,
        session: Option<&SessionRecord>,
        obj: &MoRef,
    ) -> Result<Entity, Fault> {
        let e = self
            .store
            .entity(&obj.value)
            .await?
            .filter(|e| e.kind.type_name() == obj.type_)
            .ok_or_else(|| Fault::ManagedObjectNotFound(obj.clone()))?;
        self.require(session, obj.clone(), Privilege::SystemView)?;
        Ok(e)
    }

    /// Reads one property; `None` when it is unset.
    pub async fn property(
        &self,
        session: Option<&SessionRecord>,
        obj: &MoRef,
        prop: &str,
    ) -> Result<Option<Value>, Fault> {
        let bad = || Fault::InvalidProperty(prop.to_owned());
        match obj.type_.as_str() {
            "SessionManager" => Ok(match prop {
                "sessionList" => Some(Value::Sessions(self.session_list(session).await?)),
                "currentSession" => self.current_session(session).map(Value::Session),
                "message" => Some(Value::Str(self.message(session).await?)),
                "messageLocaleList" => Some(Value::Strs(self.message_locale_list())),
                "supportedLocaleList" => Some(Value::Strs(self.supported_locale_list())),
                "defaultLocale" => Some(Value::Str(self.default_locale())),
                _ => return Err(bad()),
            }),
            "ServiceInstance" => Ok(match prop {
                "content" => Some(Value::Content(Box::new(self.about().clone()))),
                "serverClock" => Some(Value::Time(self.current_time(session)?)),
                _ => return Err(bad()),
            }),
            "Folder" | "Datacenter" => {
                let e = self.visible_entity(session, obj).await?;
                let folder_ref = |i: usize| {
                    e.dc_folders
                        .get(i)
                        .map(|id| Value::Ref(MoRef::new("Folder", id)))
                };
                Ok(match (e.kind, prop) {
                    (_, "name") => Some(Value::Str(e.name.clone())),
                    (_, "parent") => e.parent.as_ref().map(|p| {
                        let ty = if p.starts_with("datacenter-") {
                            "Datacenter"
                        } else {
                            "Folder"
                        };
                        Value::Ref(MoRef::new(ty, p))
                    }),
                    (_, "tag") => Some(Value::Tags(e.tags.clone())),
                    (EntityKind::Folder, "childEntity") => Some(Value::Refs(
                        self.store
                            .entities()
                            .await?
                            .into_iter()
                            .filter(|c| c.parent.as_deref() == Some(e.id.as_str()))
                            .map(|c| c.moref())
                            .collect(),
                    )),
                    (EntityKind::Folder, "childType") => Some(Value::Strs(
                        e.folder_type
                            .map(|t| t.child_types().iter().map(|s| s.to_string()).collect())
                            .unwrap_or_default(),
                    )),
                    (EntityKind::Datacenter, "vmFolder") => folder_ref(0),
                    (EntityKind::Datacenter, "hostFolder") => folder_ref(1),
                    (EntityKind::Datacenter, "datastoreFolder") => folder_ref(2),
                    (EntityKind::Datacenter, "networkFolder") => folder_ref(3),
                    _ => return Err(bad()),
                })
            }
            "PropertyCollector" if obj.value == "propertyCollector" => Err(bad()),
            _ => Err(Fault::ManagedObjectNotFound(obj.clone())),
        }
    }

    /// Every property name of an object's type, for `all = true`.
    fn all_props(obj: &MoRef) -> &'static [&'static str] {
        match obj.type_.as_str() {
            "SessionManager" => SESSION_MANAGER_PROPS,
            "ServiceInstance" => SERVICE_INSTANCE_PROPS,
            "Folder" => FOLDER_PROPS,
            "Datacenter" => DATACENTER_PROPS,
            _ => &[],
        }
    }

    /// PropertyCollector `RetrieveProperties`: the named properties of the named objects.
    pub async fn retrieve(
        &self,
        session: Option<&SessionRecord>,
        specs: &[PropertyFilterSpec],
    ) -> Result<Vec<ObjectContent>, Fault> {
        // Each object once, each of its properties once (in the order first asked for): a
        // request repeating objects and paths (anonymously, for ServiceInstance) must not
        // multiply into a response of objects × paths copies.
        let mut wanted: Vec<(&MoRef, Vec<&str>, HashSet<&str>)> = Vec::new();
        let mut index: HashMap<(&str, &str), usize> = HashMap::new();
        for spec in specs {
            for obj in &spec.objects {
                let i = *index
                    .entry((obj.type_.as_str(), obj.value.as_str()))
                    .or_insert_with(|| {
                        wanted.push((obj, Vec::new(), HashSet::new()));
                        wanted.len() - 1
                    });
                let (_, names, seen) = &mut wanted[i];
                for p in spec.props.iter().filter(|p| p.type_ == obj.type_) {
                    let paths: Box<dyn Iterator<Item = &str>> = if p.all {
                        Box::new(Self::all_props(obj).iter().copied())
                    } else {
                        Box::new(p.paths.iter().map(String::as_str))
                    };
                    names.extend(paths.filter(|n| seen.insert(*n)));
                }
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        for (obj, names, _) in wanted {
            let mut props = Vec::new();
            for name in names {
                if let Some(v) = self.property(session, obj, name).await? {
                    props.push((name.to_owned(), v));
                }
            }
            out.push(ObjectContent {
                obj: obj.clone(),
                props,
            });
        }
        Ok(out)
    }

    /// `Folder.CreateDatacenter` and `Folder.CreateFolder`.
    pub async fn create_entity(
        &self,
        session: Option<&SessionRecord>,
        folder: &MoRef,
        name: &str,
        kind: CreateKind,
    ) -> Result<MoRef, Fault> {
        if folder.type_ != "Folder" {
            return Err(Fault::ManagedObjectNotFound(folder.clone()));
        }
        self.visible_entity(session, folder).await?;
        let privilege = match kind {
            CreateKind::Datacenter => Privilege::DatacenterCreate,
            CreateKind::Folder => Privilege::FolderCreate,
        };
        self.require(session, folder.clone(), privilege)?;
        if !valid_name(name) {
            return Err(Fault::InvalidName {
                name: name.to_owned(),
            });
        }
        match self.store.create_entity(&folder.value, name, kind).await? {
            Ok(e) => Ok(e.moref()),
            Err(CreateError::Duplicate) => Err(Fault::DuplicateName {
                name: name.to_owned(),
                parent: folder.clone(),
            }),
            Err(CreateError::NoParent) => Err(Fault::ManagedObjectNotFound(folder.clone())),
            Err(CreateError::NotAllowed) => Err(Fault::NotSupported(format!(
                "The folder {} cannot contain this kind of object.",
                folder.value
            ))),
        }
    }

    /// `com.vmware.vcenter.folder.list`: (folder id, name, type) of matching folders.
    pub async fn folder_list(
        &self,
        session: Option<&SessionRecord>,
        filter: &FolderFilter,
    ) -> Result<Vec<(String, String, &'static str)>, Fault> {
        self.require(
            session,
            MoRef::new("Folder", crate::inventory::ROOT_FOLDER),
            Privilege::SystemView,
        )?;
        let all = self.store.entities().await?;
        let dc_of = |e: &Entity| -> Option<String> {
            let mut cur = e.parent.clone();
            while let Some(p) = cur {
                if p.starts_with("datacenter-") {
                    return Some(p);
                }
                cur = all
                    .iter()
                    .find(|x| x.id == p)
                    .and_then(|x| x.parent.clone());
            }
            None
        };
        Ok(all
            .iter()
            .filter(|e| e.kind == EntityKind::Folder)
            .filter(|e| filter.folders.is_empty() || filter.folders.contains(&e.id))
            .filter(|e| filter.names.is_empty() || filter.names.contains(&e.name))
            .filter(|e| filter.type_.is_none() || e.folder_type == filter.type_)
            .filter(|e| {
                filter.parent_folders.is_empty()
                    || e.parent
                        .as_ref()
                        .is_some_and(|p| filter.parent_folders.contains(p))
            })
            .filter(|e| {
                filter.datacenters.is_empty()
                    || dc_of(e).is_some_and(|d| filter.datacenters.contains(&d))
            })
            .filter_map(|e| Some((e.id.clone(), e.name.clone(), e.folder_type?.vapi())))
            .collect())
    }

    /// `com.vmware.vcenter.compute.policies.list`.
    pub fn compute_policies(
        &self,
        session: Option<&SessionRecord>,
    ) -> Result<Vec<ComputePolicy>, Fault> {
        self.require(
            session,
            MoRef::new("Folder", crate::inventory::ROOT_FOLDER),
            Privilege::SystemView,
        )?;
        Ok(self.compute_policies.clone())
    }
}
