//! Users and the two name forms vCenter accepts (`user@domain`, `DOMAIN\user`).
use crate::privilege::Role;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A canonical user name: lower case, `user@domain` (or a bare `user`). Read back
/// (`users.json`, Redis) through [`UserName::parse`] as well, so that a name edited in by
/// hand (`Ops@Example`, `EXAMPLE\ops`) names the account that `vsess user` and logins
/// name, and an impossible one is an error, not an account nobody can reach.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl TryFrom<String> for UserName {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).ok_or_else(|| {
            format!("'{raw}' is not a valid user name (user@domain or DOMAIN\\user)")
        })
    }
}

impl From<UserName> for String {
    fn from(name: UserName) -> String {
        name.0
    }
}

impl UserName {
    /// Canonicalises `DOMAIN\user` and `user@DOMAIN` to `user@domain`.
    /// Returns `None` for names that cannot be valid.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 256 || raw.chars().any(|c| c.is_control()) {
            return None;
        }
        let (user, domain) = match (raw.split_once('\\'), raw.rsplit_once('@')) {
            (Some((d, u)), None) => (u, Some(d)),
            (None, Some((u, d))) => (u, Some(d)),
            (None, None) => (raw, None),
            (Some(_), Some(_)) => return None,
        };
        if user.is_empty() || user.contains(['\\', '@', ' ']) {
            return None;
        }
        let mut name = String::with_capacity(raw.len());
        push_lowercase(&mut name, user);
        match domain {
            Some(d) if d.is_empty() || d.contains(['\\', '@', ' ']) => return None,
            Some(d) => {
                name.push('@');
                push_lowercase(&mut name, d);
            }
            None => {}
        }
        // Checked again after lowercasing, which can lengthen a name ('İ' is 2 bytes, its
        // lower case 3): what parse returns, parse takes back (names are read back with it).
        if name.len() > 256 {
            return None;
        }
        Some(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Appends `part` lowercased, as `str::to_lowercase` does (ASCII without its Unicode tables).
fn push_lowercase(out: &mut String, part: &str) {
    if part.is_ascii() {
        let start = out.len();
        out.push_str(part);
        out[start..].make_ascii_lowercase();
    } else {
        out.push_str(&part.to_lowercase());
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user of the directory. `password_hash` is an argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: UserName,
    #[serde(default)]
    pub full_name: String,
    pub role: Role,
    pub password_hash: String,
    /// A random id given when the account is added, kept by password and role changes.
    /// Sessions and API tokens carry the id their user had when they were made, and stop
    /// working when it differs: a user removed and added again under the same name does
    /// not inherit the old account's sessions. Empty for accounts added before vsess
    /// recorded ids; those match sessions that have none either.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Bumped by `vsess user unlock`: failed logins counted before are forgotten, and a
    /// lockout in force ends (see [`lock_key`](Self::lock_key)).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unlocks: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl User {
    /// A new account, with a fresh [`id`](Self::id).
    pub fn new(name: UserName, full_name: String, role: Role, password_hash: String) -> Self {
        Self {
            name,
            full_name,
            role,
            password_hash,
            id: crate::ids::random_hex(8),
            unlocks: 0,
        }
    }

    /// What failed logins are counted against: the account's id and its
    /// [`unlocks`](Self::unlocks). A new account under an old name, or an unlocked one,
    /// starts with no failures.
    pub fn lock_key(&self) -> String {
        if self.unlocks == 0 {
            self.id.clone()
        } else {
            format!("{}/{}", self.id, self.unlocks)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_are_canonical() {
        let read = |json: &str| serde_json::from_str::<UserName>(json);
        assert_eq!(read(r#""Ops@Example""#).unwrap().as_str(), "ops@example");
        assert_eq!(read(r#""EXAMPLE\\Ops""#).unwrap().as_str(), "ops@example");
        let e = read(r#""two words@x""#).unwrap_err().to_string();
        assert!(e.contains("'two words@x' is not a valid user name"), "{e}");
        let name = UserName::parse("a@b").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""a@b""#);
        // A name that lowercasing lengthens past the limit is refused when added, so every
        // stored name reads back.
        let long = format!("{}@v", "İ".repeat(120));
        assert!(long.len() <= 256);
        assert_eq!(UserName::parse(&long), None);
    }

    #[test]
    fn both_name_forms_are_one_account() {
        let a = UserName::parse("Administrator@vsphere.local").unwrap();
        let b = UserName::parse("VSPHERE.LOCAL\\administrator").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "administrator@vsphere.local");
        assert_eq!(UserName::parse("root").unwrap().as_str(), "root");
    }

    /// Each part is lowercased as `str::to_lowercase` lowercases it, ASCII or not.
    #[test]
    fn names_are_lowercased_part_by_part() {
        for (raw, user, domain) in [
            ("Ops@Example.COM", "Ops", Some("Example.COM")),
            ("ÖPS@Example.COM", "ÖPS", Some("Example.COM")),
            ("Ops@ÄB.local", "Ops", Some("ÄB.local")),
            ("CORP\\ΟΔΟΣ", "ΟΔΟΣ", Some("CORP")),
            ("Z_9-x.Y", "Z_9-x.Y", None),
            ("İSTANBUL", "İSTANBUL", None),
        ] {
            let want = match domain {
                Some(d) => format!("{}@{}", user.to_lowercase(), d.to_lowercase()),
                None => user.to_lowercase(),
            };
            assert_eq!(UserName::parse(raw).unwrap().as_str(), want, "{raw}");
        }
        assert_eq!(UserName::parse("CORP\\ΟΔΟΣ").unwrap().as_str(), "οδος@corp");
    }

    #[test]
    fn every_new_account_gets_its_own_id() {
        let name = UserName::parse("bob@vsphere.local").unwrap();
        let a = User::new(name.clone(), String::new(), Role::Admin, "h".into());
        let b = User::new(name, String::new(), Role::Admin, "h".into());
        assert_eq!(a.id.len(), 16);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn malformed_names_are_rejected() {
        for bad in ["", "@x", "x@", "\\u", "d\\", "a\\b@c", "a b@c", "x\n@y"] {
            assert!(UserName::parse(bad).is_none(), "{bad:?} accepted");
        }
    }
}
