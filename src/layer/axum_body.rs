//! The layer with axum's own body (feature `axum`): [`AxumAuthLayer`], made by
//! [`AuthLayer::axum_native`].
//!
//! [`AuthLayer`] works with any inner body and answers with [`AuthBody`], which axum then
//! boxes into its own `Body` on every response that passes through (one allocation and a
//! dynamic call per body poll). This variant is for an inner service that already answers
//! with `axum::body::Body` (a `Router`, a route): an allowed request's response comes back
//! as it was made, and only a rejection's bytes become a new `Body`. It also makes the
//! layer around a whole router a `Service` that `axum::serve` takes as it is.
//!
//! What each placement answers for a path no route serves:
//!
//! - `Router::layer(layer)` wraps each route (and the fallback): an unknown path is judged
//!   by the policy like any other (403, or 401 without a token), never a 404 that tells
//!   which routes exist. `Router::route_layer` answers 404 there instead.
//! - Around the whole router (`layer.layer(router)`), every request is decided before axum
//!   routes it, unknown paths included, with the same answers. It costs less per request:
//!   axum boxes a layered route's service once more.
//!
//! ```
//! use axum::{Router, routing::get};
//! use portcullis::{AuthLayer, Authenticator, Policy};
//! use tower::{Layer, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
//! let policy = Policy::builder().allow("GET", "/me", ["*"]).public_prefix("/health").build()?;
//! let layer = AuthLayer::new(auth, policy).axum_native();
//!
//! // Per route: the response type stays `axum::response::Response`.
//! let per_route: Router = Router::new()
//!     .route("/me", get(|| async { "me" }))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(layer.clone());
//! let res = per_route.oneshot(http::Request::get("/me").body(axum::body::Body::empty())?).await?;
//! assert_eq!(res.status(), 401);
//!
//! // Around the whole router: a `Service` with axum's response, ready for
//! // `axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app))`.
//! let app = layer.layer(Router::new().route("/health", get(|| async { "ok" })));
//! let res: axum::response::Response =
//!     app.clone().oneshot(http::Request::get("/health").body(axum::body::Body::empty())?).await?;
//! assert_eq!(res.status(), 200);
//! let res = app.oneshot(http::Request::get("/nowhere").body(axum::body::Body::empty())?).await?;
//! assert_eq!(res.status(), 401);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::body::Body;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::future::Answer;
use super::{Auth, AuthBody, AuthLayer, ResponseFuture};

/// [`AuthLayer`] answering with axum's own `Body` (feature `axum`); made by
/// [`AuthLayer::axum_native`]. Same checks, answers, hook and options.
#[derive(Clone, Debug)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct AxumAuthLayer {
    layer: AuthLayer,
}

impl AuthLayer {
    /// This layer for an inner service that answers with `axum::body::Body` (a `Router`
    /// or one of its routes): its responses keep axum's own body instead of passing
    /// through [`AuthBody`], which axum would box again on every response. The checks,
    /// answers, hook and options are this layer's. See [`AxumAuthLayer`] for both
    /// placements and what each answers for unknown routes.
    pub fn axum_native(self) -> AxumAuthLayer {
        AxumAuthLayer { layer: self }
    }
}

impl AxumAuthLayer {
    /// The layer with the generic body again.
    pub fn into_inner(self) -> AuthLayer {
        self.layer
    }
}

impl<S> Layer<S> for AxumAuthLayer {
    type Service = AxumAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AxumAuth {
            inner: self.layer.layer(inner),
        }
    }
}

/// The service made by [`AxumAuthLayer`]: [`Auth`] with axum's body.
#[derive(Clone, Debug)]
pub struct AxumAuth<S> {
    inner: Auth<S>,
}

impl<S> AxumAuth<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut()
    }

    /// Consumes this service and returns the inner one.
    pub fn into_inner(self) -> S {
        self.inner.into_inner()
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for AxumAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = AxumResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        AxumResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`AxumAuth`]: [`ResponseFuture`] with axum's body.
    pub struct AxumResponseFuture<F> {
        #[pin]
        inner: ResponseFuture<F, Body>,
    }
}

impl<F> std::fmt::Debug for AxumResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AxumResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for AxumResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll_answer::<Native>(cx)
    }
}

/// axum's own body: an inner response as it came, ours with its bytes in a new `Body`.
struct Native;

impl Answer<Body> for Native {
    type Response = Response<Body>;

    #[inline(always)]
    fn inner(res: Response<Body>) -> Response<Body> {
        res
    }

    #[inline(always)]
    fn ours(res: Response<AuthBody<Body>>) -> Response<Body> {
        res.map(into_body)
    }
}

/// One of our answers' bodies (a rejection's bytes) as a new `Body`; an inner body that
/// went through the hook as it came.
fn into_body(body: AuthBody<Body>) -> Body {
    match body.into_inner() {
        Ok(inner) => inner,
        Err(bytes) if bytes.is_empty() => Body::empty(),
        Err(bytes) => Body::from(bytes),
    }
}
