//! The protocol-neutral vim call: what SOAP and VI/JSON requests decode to, and what a
//! call returns before a codec encodes it.
use vsess_core::{
    GenericServiceTicket, LocalTicket, MoRef, ObjectContent, PropertyFilterSpec,
    ServiceRequestSpec, SessionId, UserSession, Value,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VimCall {
    RetrieveServiceContent,
    CurrentTime,
    Fetch {
        obj: MoRef,
        prop: String,
    },
    RetrieveProperties {
        specs: Vec<PropertyFilterSpec>,
    },
    RetrievePropertiesEx {
        specs: Vec<PropertyFilterSpec>,
    },
    Login {
        user: String,
        password: String,
        locale: Option<String>,
    },
    Logout,
    SetLocale {
        locale: String,
    },
    UpdateServiceMessage {
        message: String,
    },
    TerminateSession {
        keys: Vec<String>,
    },
    SessionIsActive {
        key: String,
        user: String,
    },
    AcquireCloneTicket,
    CloneSession {
        ticket: String,
    },
    ImpersonateUser {
        user: String,
        locale: Option<String>,
    },
    AcquireLocalTicket {
        user: String,
    },
    AcquireGenericServiceTicket {
        spec: ServiceRequestSpec,
    },
    /// LoginBySSPI, LoginByToken, LoginExtensionByCertificate, LoginExtensionBySubjectName.
    UnsupportedLogin {
        method: &'static str,
    },
    CreateDatacenter {
        folder: MoRef,
        name: String,
    },
    CreateFolder {
        folder: MoRef,
        name: String,
    },
}

impl VimCall {
    /// The vim method name, for responses and logs.
    pub fn method(&self) -> &'static str {
        match self {
            VimCall::RetrieveServiceContent => "RetrieveServiceContent",
            VimCall::CurrentTime => "CurrentTime",
            VimCall::Fetch { .. } => "Fetch",
            VimCall::RetrieveProperties { .. } => "RetrieveProperties",
            VimCall::RetrievePropertiesEx { .. } => "RetrievePropertiesEx",
            VimCall::Login { .. } => "Login",
            VimCall::Logout => "Logout",
            VimCall::SetLocale { .. } => "SetLocale",
            VimCall::UpdateServiceMessage { .. } => "UpdateServiceMessage",
            VimCall::TerminateSession { .. } => "TerminateSession",
            VimCall::SessionIsActive { .. } => "SessionIsActive",
            VimCall::AcquireCloneTicket => "AcquireCloneTicket",
            VimCall::CloneSession { .. } => "CloneSession",
            VimCall::ImpersonateUser { .. } => "ImpersonateUser",
            VimCall::AcquireLocalTicket { .. } => "AcquireLocalTicket",
            VimCall::AcquireGenericServiceTicket { .. } => "AcquireGenericServiceTicket",
            VimCall::UnsupportedLogin { method } => method,
            VimCall::CreateDatacenter { .. } => "CreateDatacenter",
            VimCall::CreateFolder { .. } => "CreateFolder",
        }
    }
}

/// The managed object type a method belongs to; `None` for an unknown method,
/// `Some("*")` for `Fetch`, which every object has.
pub fn receiver_of(method: &str) -> Option<&'static str> {
    Some(match method {
        "RetrieveServiceContent" | "CurrentTime" => "ServiceInstance",
        "RetrieveProperties" | "RetrievePropertiesEx" => "PropertyCollector",
        "Login"
        | "Logout"
        | "SetLocale"
        | "UpdateServiceMessage"
        | "TerminateSession"
        | "SessionIsActive"
        | "AcquireCloneTicket"
        | "CloneSession"
        | "ImpersonateUser"
        | "AcquireLocalTicket"
        | "AcquireGenericServiceTicket"
        | "LoginBySSPI"
        | "LoginByToken"
        | "LoginExtensionByCertificate"
        | "LoginExtensionBySubjectName" => "SessionManager",
        "CreateDatacenter" | "CreateFolder" => "Folder",
        "Fetch" => "*",
        _ => return None,
    })
}

/// The singleton objects, by type, with their one id. Inventory types (Folder,
/// Datacenter) have many ids, checked against the store when the call runs.
pub const SINGLETONS: &[(&str, &str)] = &[
    ("ServiceInstance", "ServiceInstance"),
    ("SessionManager", "SessionManager"),
    ("PropertyCollector", "propertyCollector"),
];
pub const INVENTORY_TYPES: &[&str] = &["Folder", "Datacenter"];

/// Checks that `this` can receive `method`: `MethodNotFound` for an unknown method or
/// one of another type, `ManagedObjectNotFound` for an unknown object.
pub fn check_receiver(this: &MoRef, method: &str) -> Result<(), vsess_core::Fault> {
    use vsess_core::Fault;
    let not_found = || Fault::MethodNotFound {
        receiver: this.clone(),
        method: method.to_owned(),
    };
    let receiver = receiver_of(method).ok_or_else(not_found)?;
    let singleton = SINGLETONS.iter().find(|(t, _)| *t == this.type_);
    let inventory = INVENTORY_TYPES.contains(&this.type_.as_str());
    if singleton.is_none() && !inventory {
        return Err(Fault::ManagedObjectNotFound(this.clone()));
    }
    if receiver != "*" && receiver != this.type_ {
        return Err(not_found());
    }
    match singleton {
        Some((_, id)) if *id != this.value => Err(Fault::ManagedObjectNotFound(this.clone())),
        _ => Ok(()),
    }
}

/// What a call returned, before encoding.
#[derive(Debug)]
pub enum Outcome {
    /// A void method.
    Empty,
    /// A method or property value; `None` is an unset property.
    Value(Option<Value>),
    /// Login and CloneSession: a new session whose id the transport hands to the client.
    NewSession(SessionId, UserSession),
    /// ImpersonateUser.
    Session(UserSession),
    Objects {
        ex: bool,
        objects: Vec<ObjectContent>,
    },
    LocalTicket(LocalTicket),
    ServiceTicket(GenericServiceTicket),
}
