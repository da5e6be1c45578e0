//! [`ServiceClient`]: one OpenStack service's endpoint on a [`ProviderClient`], and
//! [`Response`]: what every call returns (status, headers, body) before `extract()`.
use super::errors::decode_error;
use super::provider::{ProviderClient, RequestOpts};
use crate::error::{Error, Result};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use std::fmt;
use url::Url;

/// The raw result of a call: the HTTP status, the headers and the body. The resource
/// modules wrap it in typed results whose `extract()` decodes the body.
#[derive(Clone)]
pub struct Response {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The request's HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }
    /// The URL the request was sent to (a paged call's: that page's).
    pub fn url(&self) -> &Url {
        &self.url
    }
    /// The HTTP status, one of the call's accepted codes (errors never get this far).
    pub fn status(&self) -> u16 {
        self.status
    }
    /// Every response header. May include secrets (`X-Subject-Token` on token calls),
    /// which is why `Debug` shows only their names.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    /// The raw body, as received (empty for `HEAD` and 204 answers).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// A header's value as text (None if absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Keystone's request id (`x-openstack-request-id`), for support tickets.
    pub fn request_id(&self) -> Option<&str> {
        self.header("x-openstack-request-id")
    }

    /// Decodes the whole JSON body as `T` (gophercloud's `ExtractInto`); a body that is
    /// not JSON of that shape is [`Error::Decode`].
    pub fn extract<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| decode_error(&self.url, e.to_string()))
    }

    /// Decodes the member `key` of a JSON object body, e.g. `{"project": {...}}`; a missing
    /// member or one of another shape is [`Error::Decode`].
    pub fn extract_into<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let mut v: serde_json::Value = self.extract()?;
        let Some(member) = v.get_mut(key).map(serde_json::Value::take) else {
            return Err(decode_error(
                &self.url,
                format!("the answer has no \"{key}\" member"),
            ));
        };
        serde_json::from_value(member).map_err(|e| decode_error(&self.url, format!("{key}: {e}")))
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold tokens (X-Subject-Token): show names only.
        let names: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("Response")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("status", &self.status)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// One service's endpoint (from the catalog) on a provider, as gophercloud's
/// `ServiceClient`. Cheap to clone.
#[derive(Clone)]
pub struct ServiceClient {
    provider: ProviderClient,
    endpoint: Url,
    service_type: String,
}

impl fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceClient")
            .field("service_type", &self.service_type)
            .field("endpoint", &self.endpoint.as_str())
            .finish()
    }
}

/// Parses a URL and makes its path end with a slash, as gophercloud's `NormalizeURL`.
pub(crate) fn normalize_endpoint(endpoint: &str) -> Result<Url> {
    let mut url = Url::parse(endpoint)
        .map_err(|e| Error::Config(format!("invalid endpoint URL {endpoint:?}: {e}")))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "invalid endpoint URL {endpoint:?}: expected http:// or https://"
        )));
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

impl ServiceClient {
    /// A client for `service_type` at `endpoint` (normalised to end with a slash, as
    /// gophercloud's `NormalizeURL`); [`Error::Config`] unless it is an http(s) URL.
    pub fn new(provider: ProviderClient, endpoint: &str, service_type: &str) -> Result<Self> {
        Ok(Self {
            provider,
            endpoint: normalize_endpoint(endpoint)?,
            service_type: service_type.to_owned(),
        })
    }

    pub(crate) fn from_parts(provider: ProviderClient, endpoint: Url, service_type: &str) -> Self {
        Self {
            provider,
            endpoint,
            service_type: service_type.to_owned(),
        }
    }

    /// The provider whose token and re-authentication this client's calls use.
    pub fn provider(&self) -> &ProviderClient {
        &self.provider
    }
    /// The service's base URL, ending with `/` (gophercloud's `Endpoint`), e.g.
    /// `http://127.0.0.1:5000/v3/` for Identity v3; resource URLs are built under it.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }
    /// The catalog service type this client was made for, e.g. `"identity"`.
    pub fn service_type(&self) -> &str {
        &self.service_type
    }

    /// The endpoint with path segments appended; each part is one segment, percent-encoded
    /// (so an id with a `/` in it cannot escape its segment).
    pub fn service_url(&self, parts: &[&str]) -> Result<Url> {
        let mut url = self.endpoint.clone();
        {
            let mut segs = url.path_segments_mut().map_err(|()| {
                Error::Config(format!("endpoint {} cannot take a path", self.endpoint))
            })?;
            segs.pop_if_empty();
            for p in parts {
                segs.push(p);
            }
        }
        Ok(url)
    }

    /// Sends a request through the provider (token, re-authentication, error mapping).
    pub async fn request(&self, method: Method, url: Url, opts: RequestOpts) -> Result<Response> {
        self.provider.request(method, url, opts).await
    }

    /// [`request`](Self::request) with `GET`; success by default is 200.
    pub async fn get(&self, url: Url, opts: RequestOpts) -> Result<Response> {
        self.request(Method::GET, url, opts).await
    }
    /// [`request`](Self::request) with `HEAD`; success by default is 200 or 204.
    pub async fn head(&self, url: Url, opts: RequestOpts) -> Result<Response> {
        self.request(Method::HEAD, url, opts).await
    }
    /// [`request`](Self::request) with `POST`; success by default is 201 or 202.
    pub async fn post(&self, url: Url, opts: RequestOpts) -> Result<Response> {
        self.request(Method::POST, url, opts).await
    }
    /// [`request`](Self::request) with `PUT`; success by default is 201 or 202.
    pub async fn put(&self, url: Url, opts: RequestOpts) -> Result<Response> {
        self.request(Method::PUT, url, opts).await
    }
    /// [`request`](Self::request) with `PATCH`; success by default is 200, 202 or 204.
    pub async fn patch(&self, url: Url, opts: RequestOpts) -> Result<Response> {
        self.request(Method::PATCH, url, opts).await
    }
    /// [`request`](Self::request) with `DELETE`; success by default is 202 or 204.
    pub async fn delete(&self, url: Url, opts: RequestOpts) -> Result<Response> {
        self.request(Method::DELETE, url, opts).await
    }
}
