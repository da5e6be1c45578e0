//! How Keystone's answers become [`crate::Error`]s: one place for the mapping.
use crate::error::Error;
use reqwest::Method;
use url::Url;

/// Longest body text kept in an [`Error::Http`].
const MAX_BODY: usize = 1024;

/// Keystone's `{"error": {"code", "message", "title"}}` message, if the body has one.
pub(crate) fn keystone_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    let msg = err.get("message")?.as_str()?;
    Some(msg.to_owned())
}

/// Lossy UTF-8, cut to a bound at a character boundary.
pub(crate) fn body_text(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.len() <= MAX_BODY {
        return s.to_owned();
    }
    let mut end = MAX_BODY;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], body.len())
}

/// The error for an unexpected HTTP status: 401 is [`Error::Authentication`] with Keystone's
/// message; anything else is [`Error::Http`] with Keystone's message (or the body's text).
pub(crate) fn status_error(method: &Method, url: &Url, status: u16, body: &[u8]) -> Error {
    let message = keystone_message(body).unwrap_or_else(|| body_text(body));
    if status == 401 {
        let message = if message.is_empty() {
            "the request requires authentication".to_owned()
        } else {
            message
        };
        return Error::Authentication(format!("{message} (HTTP 401 from {method} {url})"));
    }
    Error::Http {
        status,
        url: url.to_string(),
        body: message,
    }
}

pub(crate) fn decode_error(url: &Url, message: impl Into<String>) -> Error {
    Error::Decode {
        url: url.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_errors() {
        let url = Url::parse("http://127.0.0.1:5000/v3/auth/tokens").unwrap();
        let body = br#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#;
        match status_error(&Method::POST, &url, 401, body) {
            Error::Authentication(m) => {
                assert!(m.starts_with("The request you have made requires authentication."));
                assert!(m.contains("POST http://127.0.0.1:5000/v3/auth/tokens"));
            }
            e => panic!("{e:?}"),
        }
        let body =
            br#"{"error":{"code":404,"message":"Failed to validate token","title":"Not Found"}}"#;
        match status_error(&Method::GET, &url, 404, body) {
            Error::Http { status, body, .. } => {
                assert_eq!(status, 404);
                assert_eq!(body, "Failed to validate token");
            }
            e => panic!("{e:?}"),
        }
        match status_error(&Method::GET, &url, 502, b"<html>bad gateway</html>") {
            Error::Http { status, body, .. } => {
                assert_eq!(status, 502);
                assert_eq!(body, "<html>bad gateway</html>");
            }
            e => panic!("{e:?}"),
        }
        match status_error(&Method::GET, &url, 401, b"") {
            Error::Authentication(m) => assert!(m.contains("requires authentication")),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn long_bodies_are_cut_at_a_char_boundary() {
        let body = "é".repeat(2000);
        let t = body_text(body.as_bytes());
        assert!(t.len() < 1100);
        assert!(t.ends_with("(4000 bytes)"));
    }
}
