//! [`Pager`]: walks a paged collection, as gophercloud's `pagination.Pager`.
//!
//! A page's next URL is its `links.next` (Keystone, and gophercloud's `LinkedPageBase`); a
//! `null` or missing `links.next` ends the walk. When the answer has no `links.next` member at
//! all and the pager has a page size (marker paging, gophercloud's `MarkerPageBase`), a full
//! page leads to the same URL with `marker=<last item's id>`. An empty page always ends the
//! walk: Keystone sets `next` on every full page, so a collection whose size is a multiple of
//! the page size ends with an empty page. Next links must stay on the endpoint's scheme, host
//! and port (the token goes with them), and a URL seen twice is an error, not a loop.
use super::errors::decode_error;
use super::provider::RequestOpts;
use super::service::{Response, ServiceClient};
use crate::error::Result;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use url::Url;

/// One page: the raw response and its decoded items (gophercloud's `pagination.Page`).
pub struct Page<T> {
    response: Response,
    items: Vec<T>,
    next: Option<Url>,
}

impl<T> Page<T> {
    /// The HTTP answer this page came from (its URL, status, headers such as
    /// `x-openstack-request-id`, and the raw body).
    pub fn response(&self) -> &Response {
        &self.response
    }
    /// The page's items.
    pub fn items(&self) -> &[T] {
        &self.items
    }
    /// The page's items, by value.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
    /// Whether the page has no items. [`Pager`]'s walks never hand out an empty page: one
    /// ends the walk.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// The number of items on the page.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Where the next page is, if there is one.
    pub fn next_url(&self) -> Option<&Url> {
        self.next.as_ref()
    }
}

impl<T: fmt::Debug> fmt::Debug for Page<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("url", &self.response.url().as_str())
            .field("items", &self.items)
            .field("next", &self.next.as_ref().map(Url::as_str))
            .finish()
    }
}

/// A paged collection of `T` under the JSON member `key` (e.g. `"projects"`).
pub struct Pager<T> {
    client: ServiceClient,
    initial: Url,
    key: String,
    marker_limit: Option<usize>,
    _items: PhantomData<fn() -> T>,
}

impl<T> Clone for Pager<T> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            initial: self.initial.clone(),
            key: self.key.clone(),
            marker_limit: self.marker_limit,
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Pager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pager")
            .field("initial", &self.initial.as_str())
            .field("key", &self.key)
            .field("marker_limit", &self.marker_limit)
            .finish()
    }
}

impl<T: DeserializeOwned> Pager<T> {
    /// A pager that starts at `initial` (query included) and decodes the array under the
    /// JSON member `key` of each page as `T`; no request is sent until a walk starts. Each
    /// page is a `GET` through `client`, so it carries the token and re-authenticates.
    pub fn new(client: ServiceClient, initial: Url, key: impl Into<String>) -> Self {
        Self {
            client,
            initial,
            key: key.into(),
            marker_limit: None,
            _items: PhantomData,
        }
    }

    /// Falls back to marker paging with this page size when answers carry no `links.next`
    /// member: a page of `limit` items or more leads to `marker=<last id>`. `0` turns it
    /// off.
    pub fn with_marker_paging(mut self, limit: usize) -> Self {
        self.marker_limit = (limit > 0).then_some(limit);
        self
    }

    /// The first page's URL.
    pub fn initial_url(&self) -> &Url {
        &self.initial
    }

    /// A cursor over the pages, for callers that want to await between pages.
    pub fn pages(&self) -> Pages<'_, T> {
        Pages {
            pager: self,
            next: Some(self.initial.clone()),
            seen: HashSet::new(),
        }
    }

    /// Hands each non-empty page to `f` in order; `f` returns `Ok(false)` to stop early (no
    /// further page is fetched) or an error to stop with it.
    pub async fn each_page<F>(&self, mut f: F) -> Result<()>
    where
        F: FnMut(Page<T>) -> Result<bool>,
    {
        let mut pages = self.pages();
        while let Some(page) = pages.next_page().await {
            if !f(page?)? {
                break;
            }
        }
        Ok(())
    }

    /// Every item of every page, fetched in order (gophercloud's `AllPages`). The first
    /// failing page's error is returned: a request error, or [`Error::Decode`] for a body
    /// without the `key` array, a `links.next` off the endpoint, or a loop.
    ///
    /// [`Error::Decode`]: crate::Error::Decode
    pub async fn all_pages(&self) -> Result<Vec<T>> {
        let mut all = Vec::new();
        self.each_page(|page| {
            all.extend(page.into_items());
            Ok(true)
        })
        .await?;
        Ok(all)
    }

    async fn fetch(&self, url: Url) -> Result<Page<T>> {
        let response = self.client.get(url, RequestOpts::ok(&[200])).await?;
        let mut body: Value = response.extract()?;
        let raw = match body.get_mut(&self.key).map(Value::take) {
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(decode_error(
                    response.url(),
                    format!("\"{}\" is not a list", self.key),
                ))
            }
            None => {
                return Err(decode_error(
                    response.url(),
                    format!("the answer has no \"{}\" member", self.key),
                ))
            }
        };
        let last_id = raw
            .last()
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let count = raw.len();
        let items = raw
            .into_iter()
            .map(|v| serde_json::from_value::<T>(v))
            .collect::<std::result::Result<Vec<T>, _>>()
            .map_err(|e| decode_error(response.url(), format!("{}: {e}", self.key)))?;
        let next = if count == 0 {
            None
        } else {
            self.next_url(&response, &body, count, last_id)?
        };
        Ok(Page {
            response,
            items,
            next,
        })
    }

    fn next_url(
        &self,
        response: &Response,
        body: &Value,
        count: usize,
        last_id: Option<String>,
    ) -> Result<Option<Url>> {
        let current = response.url();
        let links_next = body.get("links").and_then(|l| l.get("next"));
        let next = match links_next {
            Some(Value::String(s)) if !s.is_empty() => current
                .join(s)
                .map_err(|e| decode_error(current, format!("bad links.next {s:?}: {e}")))?,
            Some(Value::String(_)) | Some(Value::Null) => return Ok(None),
            Some(other) => {
                return Err(decode_error(
                    current,
                    format!("links.next is neither a URL nor null: {other}"),
                ))
            }
            None => match (self.marker_limit, last_id) {
                (Some(limit), Some(marker)) if count >= limit => with_marker(current, &marker),
                _ => return Ok(None),
            },
        };
        let base = self.client.endpoint();
        if next.scheme() != base.scheme()
            || next.host_str() != base.host_str()
            || next.port_or_known_default() != base.port_or_known_default()
        {
            return Err(decode_error(
                current,
                format!(
                    "links.next points away from the service endpoint ({} is not on {}); \
                     refusing to send the token there",
                    next.origin().ascii_serialization(),
                    base.origin().ascii_serialization()
                ),
            ));
        }
        Ok(Some(next))
    }
}

/// `url` with its `marker` query parameter set to `marker`.
fn with_marker(url: &Url, marker: &str) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "marker")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    {
        let mut q = next.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        q.append_pair("marker", marker);
    }
    next
}

/// A cursor over a [`Pager`]'s pages.
pub struct Pages<'a, T> {
    pager: &'a Pager<T>,
    next: Option<Url>,
    seen: HashSet<String>,
}

impl<T: DeserializeOwned> Pages<'_, T> {
    /// The next non-empty page, None at the end, or the error that ended the walk.
    pub async fn next_page(&mut self) -> Option<Result<Page<T>>> {
        let url = self.next.take()?;
        if !self.seen.insert(url.as_str().to_owned()) {
            return Some(Err(decode_error(
                &url,
                "pagination loops: this page was already fetched",
            )));
        }
        match self.pager.fetch(url).await {
            Ok(page) if page.is_empty() => None,
            Ok(page) => {
                self.next = page.next.clone();
                Some(Ok(page))
            }
            Err(e) => Some(Err(e)),
        }
    }
}
