//! The web page at `/ui` (being built).
use crate::app::App;
use axum::Router;
use std::sync::Arc;

/// Routes under `/ui`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
}
