//! vsess-client: the SDK.
//!
//! - [`vsphere`]: a vCenter-compatible client (vsess, vcsim, a real vCenter): SOAP
//!   SessionManager calls, vAPI REST sessions, TLS pinning, relogin with single-flight.
//! - [`cache`]: govmomi's on-disk session cache, made safe (0700/0600, atomic writes,
//!   a file lock across processes); a client's relogin writes its new session back.
//! - [`openstack`]: Keystone v3 in gophercloud's provider → service → resource shape.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cache;
mod digest;
pub mod error;
pub mod openstack;
pub mod selfservice;
pub mod tls;
pub mod vsphere;

pub use error::{Error, Result};
