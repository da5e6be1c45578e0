//! Tokens: issue (`POST /v3/auth/tokens`), validate (`GET`/`HEAD`), revoke (`DELETE`).
mod requests;
mod results;
mod urls;

pub use requests::{create, get, get_self, revoke, validate};
pub use results::{
    CatalogEntry, CreateResult, Domain, Endpoint, GetResult, RevokeResult, Role, ServiceCatalog,
    Token, TokenProject, TokenResult, TokenUser,
};
