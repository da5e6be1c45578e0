//! SHA-256 and SHA-1 in hex: govc's cache file names, certificate thumbprints, log
//! fingerprints.
//!
//! From ring, which rustls links anyway: it probes the CPU once for the TLS handshake,
//! where the sha1 and sha2 crates each ran CPUID again (4 instructions that trap to the
//! hypervisor in a VM, ~20 µs of a cached `vsess ls` on the benchmark machine).
use ring::digest::{digest, Algorithm, SHA1_FOR_LEGACY_USE_ONLY, SHA256};

fn hex_of(algorithm: &'static Algorithm, data: &[u8]) -> String {
    hex::encode(digest(algorithm, data))
}

/// SHA-256 of `data`, lower-case hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex_of(&SHA256, data)
}

/// The first `n` bytes (at most 32) of SHA-256 of `data`, lower-case hex.
pub(crate) fn sha256_prefix_hex(data: &[u8], n: usize) -> String {
    let d = digest(&SHA256, data);
    let bytes = d.as_ref();
    hex::encode(&bytes[..n.min(bytes.len())])
}

/// SHA-1 of `data`, lower-case hex (govc's older cache names and `-thumbprint`).
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    hex_of(&SHA1_FOR_LEGACY_USE_ONLY, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_prefix_hex(b"abc", 4), "ba7816bf");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}
