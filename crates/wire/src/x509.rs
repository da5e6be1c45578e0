//! What the SDK and the server read from an X.509 certificate's DER themselves: its
//! validity dates (RFC 5280 §4.1). rustls checks certificates; this is for telling an
//! operator when one expires, and for the SDK's check of a self-signed server certificate
//! trusted as it is.
use chrono::{DateTime, Utc};

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), as RFC 5280 writes
/// them in a certificate's validity.
fn der_time(tag: u8, content: &[u8]) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    let full = match (tag, text.len()) {
        // RFC 5280: a two-digit year of 50 or more is 19YY.
        (0x17, 12) => {
            let yy: u32 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        (0x18, 14) => text.to_owned(),
        _ => return None,
    };
    chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

/// A certificate's notBefore and notAfter (RFC 5280 §4.1), read from its DER.
pub fn validity(der: &[u8]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (0x30, cert, _) = der_element(der)? else {
        return None;
    };
    let (0x30, mut tbs, _) = der_element(cert)? else {
        return None;
    };
    // [0] version (absent in v1), serialNumber, signature, issuer; then validity.
    let mut fields = 0;
    while fields < 3 {
        let (tag, _, rest) = der_element(tbs)?;
        tbs = rest;
        if tag != 0xa0 {
            fields += 1;
        }
    }
    let (0x30, validity, _) = der_element(tbs)? else {
        return None;
    };
    let (t1, c1, rest) = der_element(validity)?;
    let (t2, c2, _) = der_element(rest)?;
    Some((der_time(t1, c1)?, der_time(t2, c2)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_date() {
        // A UTCTime of 12 bytes that are not digits; no panic.
        assert_eq!(der_time(0x17, "€€€€Z".as_bytes()), None);
        assert_eq!(der_time(0x17, b"99O101000000Z"), None);
        assert_eq!(validity(b"\x30\x03\x30\x01\x00"), None);
        assert_eq!(validity(b""), None);
    }
}
