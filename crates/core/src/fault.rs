//! One enum of the vim/vmodl faults the SessionManager raises.
//!
//! Each protocol maps a `Fault` to its own error shape in one place (SOAP: `wire::soap`).
use crate::privilege::Privilege;
use std::fmt;

/// A managed object reference: `<obj type="SessionManager">SessionManager</obj>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoRef {
    pub type_: String,
    pub value: String,
}

impl MoRef {
    pub fn new(type_: &str, value: &str) -> Self {
        Self {
            type_: type_.to_owned(),
            value: value.to_owned(),
        }
    }

    pub fn session_manager() -> Self {
        Self::new("SessionManager", "SessionManager")
    }

    pub fn service_instance() -> Self {
        Self::new("ServiceInstance", "ServiceInstance")
    }

    pub fn property_collector() -> Self {
        Self::new("PropertyCollector", "propertyCollector")
    }
}

impl fmt::Display for MoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.type_, self.value)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    /// Wrong user or password, a bad ticket, or a locked account (never revealed).
    #[error("Cannot complete login due to an incorrect user name or password.")]
    InvalidLogin,
    /// A Login from a caller whose session is still live: `InvalidLogin` on the wire, as
    /// vcsim answers it, with a message that says why (the caller holds the session, so
    /// this reveals nothing about any credentials).
    #[error(
        "This session is already logged in: call Logout first, or log in without its session id to open another session."
    )]
    SessionActive,
    #[error("The locale '{0}' is not supported by this server; see supportedLocaleList.")]
    InvalidLocale(String),
    #[error(
        "Permission to perform this operation was denied: {privilege} is required on {object}."
    )]
    NoPermission { object: MoRef, privilege: Privilege },
    #[error("The session is not authenticated.")]
    NotAuthenticated { object: MoRef, privilege: Privilege },
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    InvalidArgument {
        property: Option<String>,
        message: String,
    },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{receiver} does not implement: {method}")]
    MethodNotFound { receiver: MoRef, method: String },
    #[error("The object '{0}' has already been deleted or has not been completely created")]
    ManagedObjectNotFound(MoRef),
    #[error("The property '{0}' does not exist.")]
    InvalidProperty(String),
    #[error(
        "Cannot create session: the server's limit of {limit} sessions (config.vmacore.soap.maxSessionCount) is reached. Log out unused sessions or ask the operator to raise the limit."
    )]
    SessionLimit { limit: usize },
    #[error("An object named '{name}' already exists in {parent}.")]
    DuplicateName { name: String, parent: MoRef },
    #[error("The name '{name}' is not valid: it must be 1 to 80 characters.")]
    InvalidName { name: String },
    /// Internal failure (for example the store is unavailable); the message is safe to show.
    #[error("{0}")]
    SystemError(String),
    /// The session store cannot be reached (Redis down); retry later. REST answers 503.
    #[error("{0}")]
    Unavailable(String),
}

impl Fault {
    /// The vim/vmodl data type name of this fault (`xsi:type`, `_typeName`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Fault::InvalidLogin | Fault::SessionActive => "InvalidLogin",
            Fault::InvalidLocale(_) => "InvalidLocale",
            Fault::NoPermission { .. } => "NoPermission",
            Fault::NotAuthenticated { .. } => "NotAuthenticated",
            Fault::NotFound(_) => "NotFound",
            Fault::InvalidArgument { .. } => "InvalidArgument",
            Fault::InvalidRequest(_) => "InvalidRequest",
            Fault::NotSupported(_) => "NotSupported",
            Fault::MethodNotFound { .. } => "MethodNotFound",
            Fault::ManagedObjectNotFound(_) => "ManagedObjectNotFound",
            Fault::InvalidProperty(_) => "InvalidProperty",
            Fault::DuplicateName { .. } => "DuplicateName",
            Fault::InvalidName { .. } => "InvalidName",
            Fault::SessionLimit { .. } | Fault::SystemError(_) | Fault::Unavailable(_) => {
                "SystemError"
            }
        }
    }

    pub fn not_authenticated(privilege: Privilege) -> Self {
        Fault::NotAuthenticated {
            object: MoRef::session_manager(),
            privilege,
        }
    }

    pub fn invalid_argument(property: &str, message: impl Into<String>) -> Self {
        Fault::InvalidArgument {
            property: Some(property.to_owned()),
            message: message.into(),
        }
    }
}

impl From<crate::store::StoreError> for Fault {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(m) => Fault::Unavailable(format!(
                "The session store is unavailable: {m}. The request may not have taken effect (a store that did not answer in time may still carry it out); retry when the store is back."
            )),
            e => Fault::SystemError(format!("The session store failed: {e}")),
        }
    }
}
