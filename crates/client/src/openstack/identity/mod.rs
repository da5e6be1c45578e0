//! The Identity service (Keystone).
pub mod v3;
