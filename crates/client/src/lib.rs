//! vsess-client: the SDK (vSphere and OpenStack clients). Grows in a later issue.
