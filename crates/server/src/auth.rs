//! Where each protocol carries the session id, and reading request bodies with a limit.
//!
//! One session id works everywhere, so every endpoint accepts every carrier; they differ
//! only in which they look at first:
//! - SOAP: the `vmware_soap_session` cookie, then the `vmware-api-session-id` header.
//! - VI/JSON, `/api`, JSON-RPC: the `vmware-api-session-id` header, then the cookies.
//! - Legacy `/rest`: the `vmware-api-session-id` cookie, then the header (as vAPI's REST
//!   layer does).
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;
use vsess_wire::soap;

/// A `HeaderName`, so that looking the header up on every call parses no name.
pub static API_SESSION_HEADER: HeaderName = HeaderName::from_static("vmware-api-session-id");
pub const API_SESSION_COOKIE: &str = "vmware-api-session-id";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Soap,
    Api,
    LegacyRest,
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

fn soap_cookie(headers: &HeaderMap) -> Option<&str> {
    cookies(headers).find_map(soap::session_cookie)
}

fn api_cookie(headers: &HeaderMap) -> Option<&str> {
    cookies(headers).find_map(|c| soap::cookie(c, API_SESSION_COOKIE))
}

fn api_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(&API_SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Whether a browser says the request comes from another site (`Sec-Fetch-Site`, which
/// programs do not send and pages cannot set).
pub fn cross_site(headers: &HeaderMap) -> bool {
    static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
    headers
        .get(&SEC_FETCH_SITE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !matches!(v, "same-origin" | "none"))
}

/// The session id the request carries, if any. A cookie does not count on a request a
/// browser marks as cross-site: a page elsewhere could otherwise have a visitor's browser
/// call the API with the session cookie it holds (CSRF; a `text/plain` form post needs no
/// preflight). The header carrier cannot be set cross-site without CORS, which vsess never
/// allows.
pub fn credential(headers: &HeaderMap, carrier: Carrier) -> Option<&str> {
    let cookies = || !cross_site(headers);
    let soap_cookie = || soap_cookie(headers).filter(|_| cookies());
    let api_cookie = || api_cookie(headers).filter(|_| cookies());
    match carrier {
        Carrier::Soap => soap_cookie().or_else(|| api_header(headers)),
        Carrier::Api => api_header(headers).or_else(soap_cookie).or_else(api_cookie),
        Carrier::LegacyRest => api_cookie()
            .or_else(|| api_header(headers))
            .or_else(soap_cookie),
    }
}

/// Why a request body was not read.
#[derive(Debug)]
pub enum Unread {
    /// It is (or says it is) larger than the limit: `413`, in each protocol's own words.
    TooLarge,
    /// It did not arrive whole: the client stopped sending it (the connection's request
    /// time limit cut it off) or the connection failed.
    Failed(String),
}

impl Unread {
    /// The answer: `too_large()` for [`Unread::TooLarge`], else a plain 400 that says the
    /// body did not arrive (so nobody goes looking at `max_body_bytes`).
    pub fn response(self, too_large: impl FnOnce() -> Response) -> Response {
        match self {
            Unread::TooLarge => too_large(),
            Unread::Failed(e) => (
                StatusCode::BAD_REQUEST,
                format!("The request body did not arrive whole: {e}.\n"),
            )
                .into_response(),
        }
    }
}

/// The request body, whole and at most `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Unread> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Unread::TooLarge);
    }
    // Frame by frame: `axum::body::to_bytes` gathers frames into a list and copies them
    // out, even the single frame most bodies arrive in, which is passed on here as it is.
    let mut body = body;
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let message = e.to_string();
            // Debug: any client can cause one (announce a length, then reset).
            tracing::debug!(error = %message, "a request body did not arrive whole");
            Unread::Failed(message)
        })?;
        // Trailers are not part of the body.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(Unread::TooLarge);
        }
        if data.is_empty() {
            continue;
        }
        if let Some(f) = first.take() {
            joined.extend_from_slice(&f);
        }
        if joined.is_empty() {
            first = Some(data);
        } else {
            joined.extend_from_slice(&data);
        }
    }
    Ok(first.unwrap_or_else(|| joined.into()))
}

/// How much of an HTTP/2 request body left unread is still read (and discarded), and for
/// how long, before the stream is reset.
const DRAIN_MAX_BYTES: usize = 8 << 20;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// Reads HTTP/2 request bodies that a handler leaves unread (it answered without them, as
/// with a 413 for an oversized body) to their end in the background.
///
/// Dropping an unread body makes h2 end the stream with RST_STREAM(NO_ERROR) right after
/// the response (RFC 9113, 8.1). A response under h2's 256-byte chaining threshold then
/// leaves in the same write as that reset, and curl 7.88 loses it and reports "(92)
/// Stream error in the HTTP/2 framing layer": the vAPI and REST 413s were lost this way,
/// while `/sdk`'s longer SOAP fault was flushed first. Read to its end, the request
/// closes without a reset. A body left over `DRAIN_MAX_BYTES`, or still coming after
/// `DRAIN_MAX_TIME`, is reset then, long after the response went out.
#[derive(Debug, Clone, Copy, Default)]
pub struct DrainUnreadH2Layer;

impl<S> tower_layer::Layer<S> for DrainUnreadH2Layer {
    type Service = DrainUnreadH2<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DrainUnreadH2(inner)
    }
}

/// See [`DrainUnreadH2Layer`].
#[derive(Debug, Clone)]
pub struct DrainUnreadH2<S>(S);

/// Over any body, so that it can wrap the whole router (see `app::service`): the body
/// becomes axum's [`Body`] here, as the router would make it (a no-op for one already).
impl<S, B> Service<axum::http::Request<B>> for DrainUnreadH2<S>
where
    S: Service<Request>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> S::Future {
        if req.version() >= Version::HTTP_2 {
            self.0
                .call(req.map(|b| Body::new(DrainOnDrop(Some(Body::new(b))))))
        } else {
            self.0.call(req.map(Body::new))
        }
    }
}

/// A request body that, dropped before its end, is drained by a background task.
struct DrainOnDrop(Option<Body>);

impl http_body::Body for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.0.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map(|b| b.size_hint()).unwrap_or_default()
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let drain = async {
                let mut left = DRAIN_MAX_BYTES;
                while let Some(Ok(frame)) = body.frame().await {
                    let n = frame.data_ref().map_or(0, Bytes::len);
                    if n > left {
                        break;
                    }
                    left -= n;
                }
            };
            let _ = tokio::time::timeout(DRAIN_MAX_TIME, drain).await;
        });
    }
}

/// Decodes a query component: `+` is a space, `%XX` a byte; malformed escapes stay as is.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A browser's cross-site request does not get to use the session cookie it carries.
    #[test]
    fn cookies_do_not_count_on_cross_site_requests() {
        let id = "0123456789abcdef0123456789abcdef01234567";
        for carrier in [Carrier::Soap, Carrier::Api, Carrier::LegacyRest] {
            for (cookie, site, want) in [
                (format!("vmware_soap_session=\"{id}\""), None, Some(id)),
                (
                    format!("vmware_soap_session=\"{id}\""),
                    Some("same-origin"),
                    Some(id),
                ),
                (
                    format!("vmware_soap_session=\"{id}\""),
                    Some("none"),
                    Some(id),
                ),
                (
                    format!("vmware_soap_session=\"{id}\""),
                    Some("cross-site"),
                    None,
                ),
                (
                    format!("vmware_soap_session=\"{id}\""),
                    Some("same-site"),
                    None,
                ),
                (
                    format!("{API_SESSION_COOKIE}={id}"),
                    Some("cross-site"),
                    None,
                ),
            ] {
                let mut h = HeaderMap::new();
                h.insert(header::COOKIE, cookie.parse().unwrap());
                if let Some(s) = site {
                    h.insert("sec-fetch-site", s.parse().unwrap());
                }
                let got = credential(&h, carrier);
                if cookie.starts_with("vmware_soap_session") || carrier != Carrier::Soap {
                    assert_eq!(got, want, "{carrier:?} {cookie} {site:?}");
                }
            }
            // The header carrier is not a browser's ambient credential.
            let mut h = HeaderMap::new();
            h.insert(API_SESSION_HEADER.clone(), id.parse().unwrap());
            h.insert("sec-fetch-site", "cross-site".parse().unwrap());
            assert_eq!(credential(&h, carrier), Some(id));
        }
    }

    /// A body of `frames` (an `Err` is a failed read).
    fn body(frames: Vec<Result<Frame<Bytes>, &'static str>>) -> Body {
        Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames.into_iter().map(|f| f.map_err(std::io::Error::other)),
        )))
    }

    fn data(s: &'static str) -> Result<Frame<Bytes>, &'static str> {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    #[tokio::test]
    async fn bodies_are_read_whole_within_the_limit() {
        let none = HeaderMap::new();
        // One frame is passed on as it came, not copied.
        let one = Bytes::from_static(b"<Envelope/>");
        let got = read_body(&none, body(vec![Ok(Frame::data(one.clone()))]), 100)
            .await
            .unwrap();
        assert_eq!((got.as_ptr(), got.len()), (one.as_ptr(), one.len()));
        // Frames are joined in order; empty frames and trailers add nothing.
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", "1".parse().unwrap());
        let frames = || {
            vec![
                data("ab"),
                data(""),
                data("cd"),
                Ok(Frame::trailers(trailers.clone())),
                data("e"),
            ]
        };
        assert_eq!(
            &read_body(&none, body(frames()), 5).await.unwrap()[..],
            b"abcde"
        );
        assert!(matches!(
            read_body(&none, body(frames()), 4).await,
            Err(Unread::TooLarge)
        ));
        assert!(read_body(&none, body(vec![]), 0).await.unwrap().is_empty());
        // A declared length over the limit is refused before anything is read.
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, "6".parse().unwrap());
        assert!(matches!(
            read_body(&declared, body(vec![data("ab")]), 5).await,
            Err(Unread::TooLarge)
        ));
        // A read that fails says why.
        match read_body(&none, body(vec![data("ab"), Err("connection reset")]), 100).await {
            Err(Unread::Failed(m)) => assert!(m.contains("connection reset"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
