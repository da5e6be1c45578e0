//! The axum application: routes and shared state.
use crate::soap;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use vsess_core::SessionService;
use vsess_store::EmbeddedStore;

pub struct App {
    pub svc: SessionService,
    pub store: Arc<EmbeddedStore>,
}

pub fn router(app: Arc<App>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/sdk/vimServiceVersions.xml", get(soap::version_file))
        .route("/sdk", post(soap::sdk))
        .route("/sdk/", post(soap::sdk))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        "Not found. vsess serves SOAP at /sdk (and /sdk/vimServiceVersions.xml).\n",
    )
}
