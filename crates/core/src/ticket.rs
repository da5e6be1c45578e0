//! One-time tickets: clone tickets, local tickets and generic service tickets.
use crate::ids::SessionKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TicketKind {
    /// From AcquireCloneTicket; redeemed by CloneSession. Dies with its session.
    Clone { session: SessionKey },
    /// From AcquireLocalTicket; redeemed by one Login of `user`.
    Local { user: String, path: String },
    /// From AcquireGenericServiceTicket; valid for one request matching the spec.
    Service {
        session: SessionKey,
        spec: ServiceRequestSpec,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub kind: TicketKind,
    pub expires: DateTime<Utc>,
}

/// `vim.SessionManager.ServiceRequestSpec` and its subtypes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServiceRequestSpec {
    /// `SessionManagerHttpServiceRequestSpec`: an HTTP method (`httpGet`, …) on a URL.
    Http { method: Option<String>, url: String },
    /// `SessionManagerVmomiServiceRequestSpec`: one vmomi method.
    Vmomi { method: String },
}

/// `vim.SessionManager.LocalTicket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTicket {
    pub user_name: String,
    pub password_file_path: String,
}

/// `vim.SessionManager.GenericServiceTicket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericServiceTicket {
    pub id: String,
    pub host_name: Option<String>,
    pub ssl_thumbprint: Option<String>,
}

impl Ticket {
    /// Whether this ticket dies when the session `key` ends.
    pub fn belongs_to(&self, key: &SessionKey) -> bool {
        match &self.kind {
            TicketKind::Clone { session } | TicketKind::Service { session, .. } => session == key,
            TicketKind::Local { .. } => false,
        }
    }
}
