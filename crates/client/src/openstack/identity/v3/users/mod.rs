//! Users: list (paged) and get.
mod requests;
mod results;
mod urls;

pub use requests::{get, list, ListOpts};
pub use results::{GetResult, User};
