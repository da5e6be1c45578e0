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

#[cfg(test)]
mod tests {
    use super::redact_url;

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
