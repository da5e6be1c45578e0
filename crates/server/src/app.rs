//! The axum application: routes and shared state.
use crate::{soap, ui, v2, vapi, vijson};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use vsess_core::SessionService;
use vsess_store::Backend;

pub struct App {
    pub svc: SessionService,
    /// The store behind `svc`, for housekeeping and `/healthz`.
    pub backend: Backend,
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// Whether the server speaks TLS (cookies are then `Secure`).
    pub tls: bool,
    /// Lifetime of self-service bearer tokens.
    pub token_lifetime: chrono::Duration,
    /// `/metrics`, when `[metrics] enabled`.
    pub metrics: Option<crate::metrics::Metrics>,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/sdk/vimServiceVersions.xml", get(soap::version_file))
        .route("/sdk", post(soap::sdk))
        .route("/sdk/", post(soap::sdk))
        .route(
            "/sdk/vim25/{release}/{type}/{moid}/{name}",
            get(vijson::get).post(vijson::post),
        )
        .route("/api", post(vapi::json_rpc))
        .route(
            "/api/session",
            post(vapi::rest_create)
                .get(vapi::rest_get)
                .delete(vapi::rest_delete),
        )
        .route("/api/vcenter/folder", get(vapi::rest_folders))
        .route(
            "/api/vcenter/compute/policies",
            get(vapi::rest_compute_policies),
        )
        .route(
            "/rest/com/vmware/cis/session",
            post(vapi::legacy_post)
                .get(vapi::legacy_get)
                .delete(vapi::legacy_delete),
        )
        .route(
            "/auth/request-token",
            post(v2::request_token).delete(v2::revoke_token),
        )
        .route("/v2", get(v2::root))
        .route("/v2/", get(v2::root))
        .route("/v2/openapi.json", get(v2::openapi))
        .route(
            "/v2/session",
            get(v2::list)
                .delete(v2::delete_idle)
                .options(v2::options_list),
        )
        .route(
            "/v2/session/{key}",
            get(v2::get_one)
                .delete(v2::delete_one)
                .options(v2::options_one),
        )
        // Routing's own 405s for the routes above, with `Allow` and `Cache-Control` (see
        // `crate::no_cache`); `/ui` adds its own headers to its answers.
        .method_not_allowed_fallback(method_not_allowed)
        .nest("/ui", ui::router())
        .route(
            "/ui/",
            get(|| async { axum::response::Redirect::permanent("/ui") }),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::metrics::get))
        .fallback(not_found)
        .with_state(app)
}

/// The [`router`] with what applies to every request wrapped around it once. A
/// `Router::layer` wraps each route and boxes it again: per request, a boxed clone of the
/// route's service, a boxed future and their frees for each such layer.
///
/// Each handler reads its body with `auth::read_body`, which answers an oversized body in
/// that protocol's own error shape; no handler uses axum's body extractors, so axum's
/// `DefaultBodyLimit` has nothing to limit here.
pub fn service(app: Arc<App>) -> crate::auth::DrainUnreadH2<SdkFirst> {
    use tower_layer::Layer;
    // Over HTTP/2, so that an answer given without reading the body (a 413) reaches
    // clients that lose a response sent along with the stream's reset.
    crate::auth::DrainUnreadH2Layer.layer(SdkFirst {
        router: router(app.clone()),
        app,
    })
}

/// Sends `POST /sdk`, the SOAP endpoint nearly every call of every vim client goes to,
/// straight to its handler, and every other request through the [`router`].
///
/// The router would send it to the same handler with the same arguments; on the way it
/// matches the path, clones the route's boxed service, inserts `MatchedPath` and
/// `OriginalUri` (neither of which any handler reads) and boxes the future, about 2k
/// instructions a request. Here it costs one boxed future. `/sdk/` and every other
/// method on `/sdk` still take the router (405 with `Allow` for the latter).
#[derive(Clone)]
pub struct SdkFirst {
    app: Arc<App>,
    router: Router,
}

impl tower_service::Service<axum::extract::Request> for SdkFirst {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
        >,
        axum::routing::future::RouteFuture<std::convert::Infallible>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // As the router's own: always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        use axum::extract::{ConnectInfo, State};
        if req.method() == axum::http::Method::POST && req.uri().path() == "/sdk" {
            // Inserted by `into_make_service_with_connect_info`, as the router's
            // `ConnectInfo` extractor expects (without it, the router answers).
            if let Some(addr) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
                let app = self.app.clone();
                return futures_util::future::Either::Left(Box::pin(async move {
                    Ok(soap::sdk(State(app), addr, req).await)
                }));
            }
        }
        futures_util::future::Either::Right(tower_service::Service::call(&mut self.router, req))
    }
}

/// `ok`, or 503 with the reason the store cannot serve (for load balancers' health checks).
async fn healthz(axum::extract::State(app): axum::extract::State<Arc<App>>) -> impl IntoResponse {
    match app.backend.health().await {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unavailable: {e}\n"),
        ),
    }
}

pub(crate) async fn not_found() -> axum::response::Response {
    crate::uncached(
        (
            StatusCode::NOT_FOUND,
            "Not found. vsess serves SOAP at /sdk, VI/JSON at /sdk/vim25/{release}/{Type}/{moId}/{name}, vAPI JSON-RPC at /api, and REST at /api/session and /rest/com/vmware/cis/session.\n",
        )
            .into_response(),
    )
}

async fn method_not_allowed() -> axum::response::Response {
    crate::uncached(StatusCode::METHOD_NOT_ALLOWED.into_response())
}
