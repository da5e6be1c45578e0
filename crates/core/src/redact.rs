//! Secrets kept out of messages.

/// `raw` fit for a message: the password in its userinfo (`user:secret@host`) becomes
/// `***`. It works on strings that are not valid URLs too, since those are the ones error
/// messages quote. Everything between the scheme and the last `@` counts as userinfo, so a
/// password with an unescaped `/` or `@` is still hidden (at worst a path with an `@`
/// loses a little more to the mask).
pub fn redact_url(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let Some(at) = raw[start..].rfind('@').map(|i| start + i) else {
        return raw.to_owned();
    };
    match raw[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &raw[..start + colon], &raw[at..]),
        None => raw.to_owned(),
    }
}

/// Text a client sent (a user name that failed to log in), fit for a log line: control
/// characters escaped (`\n` cannot start a line that looks like the server's own) and at
/// most `max` characters kept.
pub fn untrusted(raw: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if raw.len() <= max && !raw.chars().any(char::is_control) {
        return raw.into();
    }
    let mut out = String::new();
    for (i, c) in raw.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::{redact_url, untrusted};

    #[test]
    fn untrusted_text_cannot_forge_a_log_line() {
        assert_eq!(untrusted("bob@vsphere.local", 256), "bob@vsphere.local");
        assert_eq!(
            untrusted(
                "evil\n2026-01-01T00:00:00Z  INFO login user=admin\r\u{1b}[0m",
                256
            ),
            "evil\\n2026-01-01T00:00:00Z  INFO login user=admin\\r\\u{1b}[0m"
        );
        assert_eq!(untrusted(&"é".repeat(300), 4), "éééé…");
        assert!(
            !untrusted("a\u{85}b", 256).contains('\u{85}'),
            "C1 controls too"
        );
    }

    #[test]
    fn redact_url_hides_the_password_and_keeps_the_rest() {
        for (raw, want) in [
            (
                "ftp://a%40b:S3cretPw!@127.0.0.1:19443/sdk",
                "ftp://a%40b:***@127.0.0.1:19443/sdk",
            ),
            (
                "https://root:S3cret@127.0.0.1:99999",
                "https://root:***@127.0.0.1:99999",
            ),
            ("root:pw@vc.example:443", "root:***@vc.example:443"),
            ("https://u:pa/ss@host/sdk", "https://u:***@host/sdk"),
            ("https://u:p@ss@host", "https://u:***@host"),
            ("https://u:@host", "https://u:***@host"),
            ("https://user@host/sdk", "https://user@host/sdk"),
            ("https://host:443/sdk", "https://host:443/sdk"),
            ("not a url", "not a url"),
            ("", ""),
        ] {
            assert_eq!(redact_url(raw), want, "{raw}");
        }
    }
}
