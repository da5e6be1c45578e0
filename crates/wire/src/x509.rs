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

/// Whether a certificate may serve TLS servers by its extended key usage (RFC 5280
/// §4.2.1.12), as Go's crypto/x509 decides for a server's certificate: no extension at
/// all, or one that lists `serverAuth` or `anyExtendedKeyUsage`. `None` if the DER cannot
/// be read that far.
pub fn allows_server_auth(der: &[u8]) -> Option<bool> {
    const EKU: &[u8] = &[0x55, 0x1d, 0x25];
    const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    const ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
    let (0x30, cert, _) = der_element(der)? else {
        return None;
    };
    let (0x30, mut tbs, _) = der_element(cert)? else {
        return None;
    };
    // The extensions are tbsCertificate's [3], after the required fields and the
    // optional [1] and [2] unique identifiers.
    let extensions = loop {
        if tbs.is_empty() {
            return Some(true);
        }
        let (tag, content, rest) = der_element(tbs)?;
        tbs = rest;
        if tag == 0xa3 {
            break content;
        }
    };
    let (0x30, mut list, _) = der_element(extensions)? else {
        return None;
    };
    while !list.is_empty() {
        let (0x30, ext, rest) = der_element(list)? else {
            return None;
        };
        list = rest;
        let (0x06, oid, mut fields) = der_element(ext)? else {
            return None;
        };
        if oid != EKU {
            continue;
        }
        // `critical` (a BOOLEAN) may come before the value.
        let (mut tag, mut value, rest) = der_element(fields)?;
        if tag == 0x01 {
            fields = rest;
            (tag, value, _) = der_element(fields)?;
        }
        if tag != 0x04 {
            return None;
        }
        let (0x30, mut purposes, _) = der_element(value)? else {
            return None;
        };
        while !purposes.is_empty() {
            let (0x06, purpose, rest) = der_element(purposes)? else {
                return None;
            };
            if purpose == SERVER_AUTH || purpose == ANY {
                return Some(true);
            }
            purposes = rest;
        }
        return Some(false);
    }
    Some(true)
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
        assert_eq!(allows_server_auth(b""), None);
        assert_eq!(allows_server_auth(b"\x30\x03\x30\x01\x00"), None);
    }
}
