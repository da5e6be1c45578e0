//! Projects: list (paged), list the caller's (`/v3/auth/projects`), get.
mod requests;
mod results;
mod urls;

pub use requests::{get, list, list_available, ListOpts};
pub use results::{GetResult, Project};
