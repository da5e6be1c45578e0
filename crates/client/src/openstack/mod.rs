//! OpenStack (Keystone v3), in gophercloud's shape.
