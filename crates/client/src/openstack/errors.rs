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

/// The error for an unexpected HTTP status, with Keystone's message (or the body's text).
///
/// A 401 to a `login` request (a token request, which carries credentials and no token) is
/// [`Error::Authentication`]: the credentials were refused. A 401 to any other request means
/// the token was not accepted (expired or revoked): the `NotAuthenticated` fault, for which
/// [`Error::is_unauthenticated`] is true. Anything else is [`Error::Http`].
pub(crate) fn status_error(
    method: &Method,
    url: &Url,
    status: u16,
    body: &[u8],
    login: bool,
) -> Error {
    let message = keystone_message(body).unwrap_or_else(|| body_text(body));
    if status == 401 {
        let message = if message.is_empty() {
            "the request requires authentication".to_owned()
        } else {
            message
        };
        let message = format!("{message} (HTTP 401 from {method} {url})");
        return if login {
            Error::Authentication(message)
        } else {
            Error::not_authenticated(format!(
                "the token was not accepted (expired or revoked): {message}"
            ))
        };
    }
    Error::Http {
        status,
        url: url.to_string(),
        body: message,
    }
}

/// gophercloud's `ErrUnableToReauthenticate`: `e`, the failure of the re-authentication
/// after a 401 (or of a renewal of an expired token), says so; its kind is kept.
pub(crate) fn unable_to_reauthenticate(e: Error) -> Error {
    with_context(e, "re-authentication failed")
}

/// gophercloud's `ErrErrorAfterReauthentication`: `e`, the failure of a call retried after
/// a successful re-authentication, says so; its kind is kept.
pub(crate) fn after_reauthentication(e: Error) -> Error {
    with_context(e, "after re-authentication")
}

/// `e` with `context` in its message, of the same kind (so that [`Error::is_unauthenticated`]
/// and matches on the variant still work). A timeout's message has no free text: it names
/// the URL, which tells the token request from the call.
fn with_context(e: Error, context: &str) -> Error {
    let prefix = |m: String| {
        if m.is_empty() {
            context.to_owned()
        } else {
            format!("{context}: {m}")
        }
    };
    match e {
        Error::Connection { url, message } => Error::Connection {
            url,
            message: prefix(message),
        },
        // Suffixed: the TLS helpers look at how the message starts.
        Error::Tls { url, message } => Error::Tls {
            url,
            message: format!("{message} ({context})"),
        },
        Error::Authentication(m) => Error::Authentication(prefix(m)),
        Error::Fault { kind, message } => Error::Fault {
            kind,
            message: prefix(message),
        },
        Error::Http { status, url, body } => Error::Http {
            status,
            url,
            body: prefix(body),
        },
        Error::Decode { url, message } => Error::Decode {
            url,
            message: prefix(message),
        },
        Error::Config(m) => Error::Config(prefix(m)),
        Error::Cache { path, message } => Error::Cache {
            path,
            message: prefix(message),
        },
        e @ Error::Timeout { .. } => e,
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
        // A refused login: the credentials.
        let e = status_error(&Method::POST, &url, 401, body, true);
        assert!(!e.is_unauthenticated());
        match e {
            Error::Authentication(m) => {
                assert!(m.starts_with("The request you have made requires authentication."));
                assert!(m.contains("POST http://127.0.0.1:5000/v3/auth/tokens"));
            }
            e => panic!("{e:?}"),
        }
        // A refused token: the session, not the credentials.
        let projects = Url::parse("http://127.0.0.1:5000/v3/projects").unwrap();
        let e = status_error(&Method::GET, &projects, 401, body, false);
        assert!(e.is_unauthenticated(), "{e:?}");
        assert!(!matches!(e, Error::Authentication(_)), "{e:?}");
        let m = e.to_string();
        assert!(
            m.contains("The request you have made requires authentication."),
            "{m}"
        );
        assert!(m.contains("GET http://127.0.0.1:5000/v3/projects"), "{m}");
        assert!(m.contains("expired or revoked"), "{m}");
        let body =
            br#"{"error":{"code":404,"message":"Failed to validate token","title":"Not Found"}}"#;
        match status_error(&Method::GET, &url, 404, body, false) {
            Error::Http { status, body, .. } => {
                assert_eq!(status, 404);
                assert_eq!(body, "Failed to validate token");
            }
            e => panic!("{e:?}"),
        }
        match status_error(&Method::GET, &url, 502, b"<html>bad gateway</html>", false) {
            Error::Http { status, body, .. } => {
                assert_eq!(status, 502);
                assert_eq!(body, "<html>bad gateway</html>");
            }
            e => panic!("{e:?}"),
        }
        match status_error(&Method::POST, &url, 401, b"", true) {
            Error::Authentication(m) => assert!(m.contains("requires authentication")),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn reauthentication_context_keeps_the_kind() {
        let e = unable_to_reauthenticate(Error::Authentication("refused".into()));
        assert!(matches!(&e, Error::Authentication(m) if m == "re-authentication failed: refused"));
        let e = after_reauthentication(Error::not_authenticated("nope".into()));
        assert!(e.is_unauthenticated());
        assert!(
            e.to_string().contains("after re-authentication: nope"),
            "{e}"
        );
        let e = unable_to_reauthenticate(Error::Connection {
            url: "u".into(),
            message: "refused".into(),
        });
        assert!(
            matches!(&e, Error::Connection { message, .. } if message.starts_with("re-authentication failed"))
        );
    }

    #[test]
    fn long_bodies_are_cut_at_a_char_boundary() {
        let body = "é".repeat(2000);
        let t = body_text(body.as_bytes());
        assert!(t.len() < 1100);
        assert!(t.ends_with("(4000 bytes)"));
    }
}
