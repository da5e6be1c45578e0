//! Codecs shared by the vsess server and client.
//!
//! - [`xml`]: a small, bounded XML reader (no DTDs, no custom entities) and escaping.
//! - [`soap`]: vim25 SOAP: request decoding into [`vim::VimCall`], response and fault
//!   encoding, and `vimServiceVersions.xml`.
//! - [`x509`]: a certificate's validity dates, read from its DER.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod soap;
pub mod soap_client;
pub mod vapi;
pub mod vijson;
pub mod vim;
pub mod x509;
pub mod xml;

/// The tests' deterministic source of random choices (xorshift64): `next(n)` is in `0..n`.
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed;
    move |n| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    }
}
