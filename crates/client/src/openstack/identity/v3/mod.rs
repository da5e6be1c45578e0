//! Identity v3 resources, one module per resource, each split into requests, results and
//! urls as in gophercloud.
pub mod catalog;
pub mod projects;
pub mod tokens;
pub mod users;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

/// Keystone's timestamps: RFC 3339 (`2026-11-22T05:56:12.000000Z`), or without an offset
/// (then UTC).
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

pub(crate) fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    parse_time(&s).ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s:?}")))
}

pub(crate) fn de_opt_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_time(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s:?}"))),
    }
}

/// A string that Keystone may send as `null`.
pub(crate) fn de_null_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_timestamps_parse() {
        let t = parse_time("2026-11-22T05:56:12.000000Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T05:56:12+00:00");
        assert_eq!(parse_time("2026-11-22T05:56:12.000000").unwrap(), t);
        assert_eq!(parse_time("2026-11-22T05:56:12+00:00").unwrap(), t);
        assert!(parse_time("yesterday").is_none());
    }
}
