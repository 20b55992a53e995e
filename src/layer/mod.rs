//! The tower layer: guards any `Service<http::Request<B>>` (axum routers, hyper services,
//! tonic servers).
//!
//! For each request it checks the path, skips public prefixes, authenticates the token,
//! asks the policy, and then either calls the inner service with the [`Principal`] in the
//! request extensions, or answers itself with the status, `WWW-Authenticate` and JSON body
//! of the answer table (the [`AuthError`] goes into the response extensions). A rejection
//! is a response, never `Service::Error`, so the inner error type is untouched.
//!
//! The server, never the client, chooses which rules apply. [`AuthLayer::new`] judges
//! every request by the policy's HTTP rules and answers over HTTP. On a tonic server use
//! [`AuthLayer::for_grpc`]: every request is judged by the gRPC rules, the path being the
//! full method name `/pkg.Service/Method` (exactly two segments; anything else is an
//! invalid request), and gRPC requests (content type `application/grpc`, `+proto`,
//! `grpc-web`...) are answered with trailers-only gRPC statuses, while anything else keeps
//! the HTTP answers. A user agent opens only the methods its allow-list entry names.
//!
//! ```
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use portcullis::{AuthLayer, Authenticator, Policy};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test_block_on(async {
//! let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
//! let policy = Policy::builder().allow("GET", "/hello", ["*"]).public_prefix("/health").build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::new(auth, policy))
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hi"))))
//!     }));
//!
//! let res = svc.clone().oneshot(Request::get("/hello").body(Full::default())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
//!
//! let res = svc.oneshot(Request::get("/health").body(Full::default())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod body;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

pub use body::AuthBody;

use crate::authn::{Authenticator, Step};
use crate::error::AuthError;
use crate::policy::Policy;
use crate::principal::Principal;

struct Shared {
    authenticator: Authenticator,
    policy: Policy,
    /// Judge requests by the gRPC rules (a tonic server) rather than the HTTP rules.
    grpc: bool,
}

/// The tower [`Layer`] that authenticates and authorizes requests.
///
/// Cheap to clone (one `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("authenticator", &self.shared.authenticator)
            .field("policy", &self.shared.policy)
            .field("grpc", &self.shared.grpc)
            .finish()
    }
}

impl AuthLayer {
    /// A layer that verifies tokens with `authenticator` and decides with `policy`.
    pub fn new(authenticator: Authenticator, policy: Policy) -> Self {
        Self {
            shared: Arc::new(Shared {
                authenticator,
                policy,
                grpc: false,
            }),
        }
    }

    /// The same layer for a tonic server: every request is judged by the policy's gRPC
    /// rules (method patterns, public methods, user agents, the gRPC unmatched default),
    /// whatever its content type says, and gRPC requests get gRPC statuses.
    ///
    /// ```
    /// use portcullis::{AuthLayer, Authenticator, Policy};
    /// use tower::{Layer, ServiceExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
    /// let policy = Policy::builder().public_grpc("/grpc.health.v1.Health/Check").build()?;
    /// let layer = AuthLayer::new(auth, policy).for_grpc();
    /// let svc = layer.layer(tower::service_fn(|_req: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }));
    /// let check = http::Request::post("/grpc.health.v1.Health/Check")
    ///     .header("content-type", "application/grpc")
    ///     .body(String::new())?;
    /// assert_eq!(svc.oneshot(check).await?.status(), 200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # });
    /// ```
    pub fn for_grpc(self) -> Self {
        Self {
            shared: Arc::new(Shared {
                authenticator: self.shared.authenticator.clone(),
                policy: self.shared.policy.clone(),
                grpc: true,
            }),
        }
    }

    /// The authenticator this layer uses.
    pub fn authenticator(&self) -> &Authenticator {
        &self.shared.authenticator
    }

    /// The policy this layer uses.
    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Shared {
    fn target<'a>(
        &self,
        parts: &'a http::request::Parts,
    ) -> Result<crate::policy::Target<'a>, AuthError> {
        if self.grpc {
            let agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
            self.policy.grpc_target(parts.uri.path(), agent)
        } else {
            self.policy.target(&parts.method, parts.uri.path())
        }
    }

    /// Answers at once, or says remote keys must be fetched first (`Step::Fetch`).
    fn check(&self, parts: &http::request::Parts) -> Result<Option<Principal>, Step> {
        let target = self.target(parts)?;
        if target.is_public() {
            return Ok(None);
        }
        let principal = self.authenticator.authenticate_or_fetch(&parts.headers)?;
        self.policy.authorize(&principal, &target)?;
        Ok(Some(principal))
    }

    /// The same check, waiting for remote keys.
    async fn check_async(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<Principal>, AuthError> {
        let target = self.target(parts)?;
        if target.is_public() {
            return Ok(None);
        }
        let principal = self
            .authenticator
            .authenticate_async(&parts.headers)
            .await?;
        self.policy.authorize(&principal, &target)?;
        Ok(Some(principal))
    }

    /// Whether to answer `headers`' request in gRPC form: only on a gRPC layer, and only
    /// for a gRPC content type.
    fn answers_grpc(&self, headers: &http::HeaderMap) -> bool {
        self.grpc && is_grpc(headers)
    }

    fn reject<B>(&self, err: AuthError, grpc: bool) -> Response<AuthBody<B>> {
        tracing::debug!(error = %err, status = err.status().as_u16(), grpc, "request rejected");
        if grpc {
            grpc_rejection(&err)
        } else {
            rejection_response(&err, self.authenticator.challenge(&err))
        }
    }
}

/// Whether a request is gRPC: its content type is `application/grpc`,
/// `application/grpc+<codec>`, or gRPC-web (`application/grpc-web...`).
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= 16
            && v[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(v.get(16), None | Some(b'+') | Some(b';') | Some(b'-'))
    })
}

/// Builds the gRPC answer for `err`: a trailers-only response (HTTP 200, `grpc-status`
/// and `grpc-message` in the headers, no body), with the error in the extensions.
pub(crate) fn grpc_rejection<B>(err: &AuthError) -> Response<AuthBody<B>> {
    let mut res = Response::new(AuthBody::empty());
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(err.grpc_code() as u16));
    // The fixed messages are printable ASCII without `%`, so they need no percent-encoding.
    if let Ok(message) = HeaderValue::from_str(&err.message()) {
        headers.insert("grpc-message", message);
    }
    res.extensions_mut().insert(err.clone());
    res
}

/// Builds the HTTP answer for `err`: status, `WWW-Authenticate`, JSON body, and the error
/// in the response extensions.
pub(crate) fn rejection_response<B>(
    err: &AuthError,
    challenge: Option<String>,
) -> Response<AuthBody<B>> {
    let mut res = Response::new(AuthBody::full(Bytes::from(err.body())));
    *res.status_mut() = err.status();
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    res.extensions_mut().insert(err.clone());
    res
}

/// The path of a request that must wait for remote keys: check, then call the inner
/// service (already ready) with the principal. Boxed, and taken only when a fetch is due.
fn checked<S, ReqBody>(
    shared: Arc<Shared>,
    mut parts: http::request::Parts,
    body: ReqBody,
    mut inner: S,
) -> Pin<Box<dyn Future<Output = Result<S::Future, AuthError>> + Send>>
where
    S: Service<Request<ReqBody>> + Send + 'static,
    ReqBody: Send + 'static,
{
    Box::pin(async move {
        if let Some(p) = shared.check_async(&parts).await? {
            parts.extensions.insert(p);
        }
        Ok(inner.call(Request::from_parts(parts, body)))
    })
}

/// `S: Clone + Send + 'static` and `ReqBody: Send + 'static`: a request that must wait
/// for remote keys (feature `jwks`) is checked in a boxed future that owns a ready clone of
/// the inner service; every other request is answered at once, without boxing.
impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        // Identity comes only from our own verification: drop anything already there.
        parts.extensions.remove::<Principal>();
        match self.shared.check(&parts) {
            Ok(principal) => {
                if let Some(p) = principal {
                    parts.extensions.insert(p);
                }
                ResponseFuture {
                    state: State::Inner {
                        fut: self.inner.call(Request::from_parts(parts, body)),
                        shared: self.shared.clone(),
                    },
                }
            }
            Err(Step::Fail(err)) => ResponseFuture {
                state: State::Reject {
                    res: Some(
                        self.shared
                            .reject(err, self.shared.answers_grpc(&parts.headers)),
                    ),
                },
            },
            Err(Step::Fetch(_)) => {
                // `self.inner` was polled ready: it goes into the future, a clone stays.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let grpc = self.shared.answers_grpc(&parts.headers);
                ResponseFuture {
                    state: State::Fetch {
                        fut: checked(self.shared.clone(), parts, body, inner),
                        shared: self.shared.clone(),
                        grpc,
                    },
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Auth`]: the inner service's, or an immediate rejection.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] fut: F, shared: Arc<Shared> },
        Reject { res: Option<Response<AuthBody<B>>> },
        Fetch {
            fut: Pin<Box<dyn Future<Output = Result<F, AuthError>> + Send>>,
            shared: Arc<Shared>,
            grpc: bool,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        // Only a request that waits for remote keys starts in `Fetch`; it moves on to
        // `Inner` (or answers with the rejection) once the keys are there.
        while let StateProj::Fetch { fut, shared, grpc } = state.as_mut().project() {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(inner)) => {
                    let shared = shared.clone();
                    state.set(State::Inner { fut: inner, shared });
                }
                Poll::Ready(Err(err)) => {
                    let res = shared.reject(err, *grpc);
                    state.set(State::Reject { res: Some(res) });
                }
            }
        }
        match state.project() {
            StateProj::Fetch { .. } => Poll::Pending,
            StateProj::Inner { fut, shared } => fut.poll(cx).map(|r| {
                r.map(|mut res| {
                    // A handler that answers with an `AuthError` gets the challenge the
                    // table asks for, with this layer's scheme and realm.
                    if !res.headers().contains_key(WWW_AUTHENTICATE) {
                        let challenge = res
                            .extensions()
                            .get::<AuthError>()
                            .and_then(|e| shared.authenticator.challenge(e));
                        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok())
                        {
                            res.headers_mut().insert(WWW_AUTHENTICATE, value);
                        }
                    }
                    res.map(AuthBody::inner)
                })
            }),
            StateProj::Reject { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("ResponseFuture polled after completion"),
            },
        }
    }
}
