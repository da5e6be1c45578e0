//! vsess-core: the domain of vCenter's `vim.SessionManager`, with no I/O.
//!
//! Protocol adapters (SOAP, VI/JSON, vAPI) decode a request into a call on
//! [`SessionService`], which checks the session and the privilege, acts through a
//! [`Store`], and returns a result or a [`Fault`]. Each protocol maps a `Fault` to its
//! own error shape in exactly one place.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod clock;
pub mod credcache;
pub mod fault;
pub mod ids;
pub mod inventory;
pub mod memory;
pub mod objects;
pub mod password;
pub mod policy;
pub mod privilege;
pub mod redact;
pub mod selfservice;
pub mod service;
pub mod session;
pub mod stats;
pub mod store;
pub mod ticket;
pub mod ticketcount;
mod turns;
pub mod user;
pub mod value;

pub use clock::{Clock, ManualClock, SystemClock};
pub use fault::{Fault, MoRef};
pub use ids::{IdDigest, SessionId, SessionKey};
pub use memory::{MemoryState, MemoryStore, Mutation};
pub use policy::{LockoutPolicy, Policy};
pub use privilege::{Privilege, Role};
pub use selfservice::TokenRecord;
pub use service::{
    AboutInfo, Caller, CredentialVerifier, InlineVerifier, LocalTicketSink, Refusal, Refused,
    SessionService,
};
pub use session::{Expiry, SessionRecord, UserSession};
pub use store::{LockState, Reaped, Standing, Store, StoreError, StoreResult};
pub use ticket::{GenericServiceTicket, LocalTicket, ServiceRequestSpec, Ticket, TicketKind};
pub use user::{User, UserName};
pub use value::{ObjectContent, PropertyFilterSpec, PropertySpec, Value};
