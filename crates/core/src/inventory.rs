//! A minimal inventory: the root folder, folders and datacenters. Just enough for the
//! unified-sessions reference programs (CreateDatacenter, folder listing, tags).
use crate::fault::MoRef;
use serde::{Deserialize, Serialize};

pub const ROOT_FOLDER: &str = "group-d1";
/// Longest entity name vCenter accepts.
pub const MAX_NAME_LEN: usize = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntityKind {
    Folder,
    Datacenter,
}

impl EntityKind {
    pub fn type_name(self) -> &'static str {
        match self {
            EntityKind::Folder => "Folder",
            EntityKind::Datacenter => "Datacenter",
        }
    }
}

/// What a folder may contain (`Folder.childType`), and so its vAPI folder type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FolderType {
    Datacenter,
    VirtualMachine,
    Host,
    Datastore,
    Network,
}

impl FolderType {
    /// The vAPI `com.vmware.vcenter.folder.type` value.
    pub fn vapi(self) -> &'static str {
        match self {
            FolderType::Datacenter => "DATACENTER",
            FolderType::VirtualMachine => "VIRTUAL_MACHINE",
            FolderType::Host => "HOST",
            FolderType::Datastore => "DATASTORE",
            FolderType::Network => "NETWORK",
        }
    }

    pub fn from_vapi(s: &str) -> Option<Self> {
        Some(match s {
            "DATACENTER" => FolderType::Datacenter,
            "VIRTUAL_MACHINE" => FolderType::VirtualMachine,
            "HOST" => FolderType::Host,
            "DATASTORE" => FolderType::Datastore,
            "NETWORK" => FolderType::Network,
            _ => return None,
        })
    }

    /// `Folder.childType`.
    pub fn child_types(self) -> &'static [&'static str] {
        match self {
            FolderType::Datacenter => &["Folder", "Datacenter"],
            FolderType::VirtualMachine => &["Folder", "VirtualMachine", "VirtualApp"],
            FolderType::Host => &["Folder", "ComputeResource"],
            FolderType::Datastore => &["Folder", "Datastore", "StoragePod"],
            FolderType::Network => &["Folder", "Network", "DistributedVirtualSwitch"],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub id: String,
    pub kind: EntityKind,
    pub name: String,
    pub parent: Option<String>,
    /// For folders: what they hold.
    pub folder_type: Option<FolderType>,
    /// For datacenters: vm, host, datastore and network folders.
    #[serde(default)]
    pub dc_folders: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Entity {
    pub fn moref(&self) -> MoRef {
        MoRef::new(self.kind.type_name(), &self.id)
    }

    pub fn root() -> Self {
        Entity {
            id: ROOT_FOLDER.to_owned(),
            kind: EntityKind::Folder,
            name: "Datacenters".to_owned(),
            parent: None,
            folder_type: Some(FolderType::Datacenter),
            dc_folders: Vec::new(),
            tags: Vec::new(),
        }
    }
}

/// What to create under a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateKind {
    Datacenter,
    Folder,
}

/// Why a creation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    NoParent,
    /// The parent folder cannot hold this kind of child.
    NotAllowed,
    Duplicate,
}

/// The vAPI folder list filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderFilter {
    pub folders: Vec<String>,
    pub names: Vec<String>,
    pub type_: Option<FolderType>,
    pub parent_folders: Vec<String>,
    pub datacenters: Vec<String>,
}

/// `com.vmware.vcenter.compute.policies.summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputePolicy {
    pub policy: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub capability: String,
}

/// vCenter refuses empty names and names longer than 80 characters.
pub fn valid_name(name: &str) -> bool {
    !name.trim().is_empty() && name.chars().count() <= MAX_NAME_LEN
}
