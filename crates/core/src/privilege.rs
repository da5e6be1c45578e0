//! Privileges named by the SessionManager reference, and the roles that grant them.
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Privilege {
    SystemAnonymous,
    SystemView,
    SystemRead,
    SessionsTerminateSession,
    SessionsValidateSession,
    SessionsImpersonateUser,
    SessionsGlobalMessage,
    DatacenterCreate,
    FolderCreate,
}

impl Privilege {
    pub fn id(self) -> &'static str {
        match self {
            Self::SystemAnonymous => "System.Anonymous",
            Self::SystemView => "System.View",
            Self::SystemRead => "System.Read",
            Self::SessionsTerminateSession => "Sessions.TerminateSession",
            Self::SessionsValidateSession => "Sessions.ValidateSession",
            Self::SessionsImpersonateUser => "Sessions.ImpersonateUser",
            Self::SessionsGlobalMessage => "Sessions.GlobalMessage",
            Self::DatacenterCreate => "Datacenter.Create",
            Self::FolderCreate => "Folder.Create",
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// vCenter's three system roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Admin,
    ReadOnly,
    NoAccess,
}

impl Role {
    pub fn has(self, p: Privilege) -> bool {
        use Privilege::*;
        match self {
            Role::Admin => true,
            Role::ReadOnly => matches!(p, SystemAnonymous | SystemView | SystemRead),
            Role::NoAccess => false,
        }
    }

    pub fn privileges(self) -> Vec<Privilege> {
        use Privilege::*;
        [
            SystemAnonymous,
            SystemView,
            SystemRead,
            SessionsTerminateSession,
            SessionsValidateSession,
            SessionsImpersonateUser,
            SessionsGlobalMessage,
            DatacenterCreate,
            FolderCreate,
        ]
        .into_iter()
        .filter(|p| self.has(*p))
        .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::ReadOnly => "ReadOnly",
            Role::NoAccess => "NoAccess",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "readonly" | "read-only" => Ok(Role::ReadOnly),
            "noaccess" | "no-access" => Ok(Role::NoAccess),
            _ => Err(format!(
                "unknown role '{s}': expected Admin, ReadOnly or NoAccess"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_reference_names() {
        assert!(Role::Admin.has(Privilege::SessionsTerminateSession));
        assert!(Role::ReadOnly.has(Privilege::SystemView));
        assert!(!Role::ReadOnly.has(Privilege::SessionsTerminateSession));
        assert!(!Role::ReadOnly.has(Privilege::SessionsGlobalMessage));
        assert!(!Role::NoAccess.has(Privilege::SystemAnonymous));
        assert_eq!(Role::Admin.privileges().len(), 9);
        assert!(!Role::ReadOnly.has(Privilege::DatacenterCreate));
    }

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!("readonly".parse::<Role>(), Ok(Role::ReadOnly));
        assert!("root".parse::<Role>().is_err());
    }
}
