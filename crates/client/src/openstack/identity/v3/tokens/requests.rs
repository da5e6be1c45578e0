use super::results::{CreateResult, GetResult, RevokeResult, TokenResult};
use super::urls::tokens_url;
use crate::error::{Error, Result};
use crate::openstack::auth_options::AuthOptions;
use crate::openstack::provider::RequestOpts;
use crate::openstack::service::ServiceClient;
use reqwest::header::{HeaderName, HeaderValue};

fn subject(token_id: &str) -> Result<(HeaderName, HeaderValue)> {
    let mut v = HeaderValue::from_str(token_id)
        .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
    v.set_sensitive(true);
    Ok((HeaderName::from_static("x-subject-token"), v))
}

/// Issues a token for `opts` (no `X-Auth-Token` is sent; the new token comes back in the
/// `X-Subject-Token` header, with the catalog in the body when scoped); gophercloud's
/// `tokens.Create`. Refused credentials are [`Error::Authentication`]; options that make
/// no valid request are [`Error::Config`], before anything is sent.
pub async fn create(client: &ServiceClient, opts: &AuthOptions) -> Result<CreateResult> {
    let body = opts.to_token_v3_body()?;
    let resp = client
        .post(
            tokens_url(client)?,
            RequestOpts {
                json: Some(body),
                ok_codes: vec![201],
                omit_auth: true,
                ..RequestOpts::default()
            },
        )
        .await?;
    Ok(TokenResult(resp))
}

/// Validates `token_id` and returns what Keystone knows about it. An invalid, expired or
/// revoked token gives [`Error::Http`] 404 ("Failed to validate token"); gophercloud's
/// `tokens.Get`. The client's own token authorises the call.
pub async fn get(client: &ServiceClient, token_id: &str) -> Result<GetResult> {
    let resp = client
        .get(
            tokens_url(client)?,
            RequestOpts {
                headers: vec![subject(token_id)?],
                ok_codes: vec![200, 203],
                ..RequestOpts::default()
            },
        )
        .await?;
    Ok(TokenResult(resp))
}

/// What Keystone knows about `token_id`, asked with the token itself as the credential
/// (`X-Auth-Token` and `X-Subject-Token` both `token_id`): how a client takes up a token
/// it was given (gophercloud's passthrough).
pub async fn get_self(client: &ServiceClient, token_id: &str) -> Result<GetResult> {
    let mut auth = HeaderValue::from_str(token_id)
        .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
    auth.set_sensitive(true);
    let resp = client
        .get(
            tokens_url(client)?,
            RequestOpts {
                headers: vec![
                    (HeaderName::from_static("x-auth-token"), auth),
                    subject(token_id)?,
                ],
                ok_codes: vec![200, 203],
                omit_auth: true,
                ..RequestOpts::default()
            },
        )
        .await?;
    Ok(TokenResult(resp))
}

/// Whether `token_id` is valid (`HEAD /v3/auth/tokens`): false on 404; gophercloud's
/// `tokens.Validate`. Other failures (the client's own token refused, a 403) are errors.
pub async fn validate(client: &ServiceClient, token_id: &str) -> Result<bool> {
    let r = client
        .head(
            tokens_url(client)?,
            RequestOpts {
                headers: vec![subject(token_id)?],
                ok_codes: vec![200, 204],
                ..RequestOpts::default()
            },
        )
        .await;
    match r {
        Ok(_) => Ok(true),
        Err(Error::Http { status: 404, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Revokes `token_id` (204); gophercloud's `tokens.Revoke`. Using it afterwards gives 401;
/// validating it gives 404. Revoking the provider's own token makes its next call
/// re-authenticate (if allowed) or fail as not authenticated.
pub async fn revoke(client: &ServiceClient, token_id: &str) -> Result<RevokeResult> {
    let resp = client
        .delete(
            tokens_url(client)?,
            RequestOpts {
                headers: vec![subject(token_id)?],
                ok_codes: vec![204],
                ..RequestOpts::default()
            },
        )
        .await?;
    Ok(RevokeResult(resp))
}
