//! The tower layer: guards any `Service<http::Request<B>>` (axum routers, hyper services,
//! tonic servers). [`AuthLayer`] makes the service [`Auth`], whose future is
//! [`ResponseFuture`] and whose body is [`AuthBody`].
//!
//! For each request it checks the path, skips public prefixes, authenticates the token,
//! asks the policy, and then either calls the inner service with the [`Principal`](crate::Principal) in the
//! request extensions, or answers itself with the status, `WWW-Authenticate` and JSON body
//! of the answer table (and, with [`AuthLayer::attach_errors`], the
//! [`AuthError`](crate::AuthError) in the response extensions). A rejection
//! is a response, never `Service::Error`, so the inner error type is untouched.
//!
//! The server, never the client, chooses which rules apply. [`AuthLayer::new`] judges
//! every request by the policy's HTTP rules and answers over HTTP. On a tonic server use
//! [`AuthLayer::for_grpc`]: every request is judged by the gRPC rules, the path being the
//! full method name `/pkg.Service/Method` (exactly two segments; anything else is an
//! invalid request), and gRPC requests (content type `application/grpc`, `+proto`,
//! `grpc-web`...) are answered with trailers-only gRPC statuses under the request's own
//! content type (a gRPC-web client rejects `application/grpc`), while anything else keeps
//! the HTTP answers. A user agent opens only the methods its allow-list entry names.
//!
//! Servers clone a service per request (axum for each layered route, `axum::serve` for the
//! whole app). The layer's services and response futures share its state through a handle
//! that counts on a per-thread replica of it, so a request writes no reference count that
//! other cores share; each thread keeps the replicas of the two layers it served last
//! (one small allocation each) until it serves two others or ends.
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

#[cfg(feature = "axum")]
mod axum_body;
mod future;
mod handle;
pub mod require;
mod service;

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use tower_layer::Layer;

pub use crate::body::AuthBody;
#[cfg(feature = "axum")]
pub use axum_body::{AxumAuth, AxumAuthLayer, AxumResponseFuture};
pub use future::ResponseFuture;
pub use require::{Require, RequireLayer, require_claim, require_roles};
pub use service::Auth;

/// Marks a request the policy made public, for extractors that need a principal: they
/// answer 401 there (no valid token came), where a missing layer is a 500.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicTarget;

use crate::answer::Answers;
use crate::authn::Authenticator;
use crate::policy::Policy;

/// What every service of one layer shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) authenticator: Authenticator,
    pub(crate) policy: Policy,
    /// Judge requests by the gRPC rules (a tonic server) rather than the HTTP rules.
    pub(crate) grpc: bool,
    pub(crate) on_rejection: Option<Arc<RejectionHook>>,
    pub(crate) public_auth: PublicAuth,
    pub(crate) cors_preflight: bool,
    /// The authenticator's answers with every challenge naming the RFC 9728 metadata
    /// URL, when [`AuthLayer::resource_metadata`] set one.
    pub(crate) metadata_answers: Option<Arc<Answers>>,
    /// Put the [`AuthError`](crate::AuthError) into the extensions of this layer's own
    /// rejections ([`AuthLayer::attach_errors`]).
    pub(crate) attach_errors: bool,
}

impl Shared {
    /// The answers this layer gives: the authenticator's, or the same naming the
    /// resource metadata.
    pub(crate) fn answers(&self) -> &Arc<Answers> {
        self.metadata_answers
            .as_ref()
            .unwrap_or_else(|| self.authenticator.answers())
    }
}

/// A rejection hook: gets the error and the answer the layer would give, returns the
/// answer to send.
pub(crate) type RejectionHook =
    dyn Fn(&crate::AuthError, Response<Bytes>) -> Response<Bytes> + Send + Sync;

/// What the layer does with a token sent to a public route or method.
///
/// ```
/// use portcullis::{AuthLayer, Authenticator, Policy, layer::PublicAuth};
///
/// let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
/// let policy = Policy::builder().public_prefix("/docs").build()?;
/// // A valid token on /docs fills `Option<Principal>`; an invalid one is ignored.
/// let layer = AuthLayer::new(auth, policy).public_auth(PublicAuth::IfValid);
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PublicAuth {
    /// Never look at a token on a public target: handlers see no principal there
    /// (`PORTCULLIS_PUBLIC_AUTH=ignore`, the default).
    #[default]
    Ignore,
    /// Verify a token when one is sent: a valid one puts the [`Principal`](crate::Principal)
    /// into the request (so `Option<Principal>` is `Some`), an invalid or missing one is
    /// ignored and the request goes on without it (`PORTCULLIS_PUBLIC_AUTH=optional`).
    IfValid,
    /// Verify a token when one is sent: a valid one puts the principal into the request,
    /// an invalid one is refused as on a guarded route; no token at all still passes
    /// (`PORTCULLIS_PUBLIC_AUTH=strict`).
    Verify,
}

/// The tower [`Layer`] that authenticates and authorizes requests.
///
/// Cheap to clone (one `Arc`), `Send + Sync`.
///
/// For a hyper service, wrap it like any tower service and hand it to hyper through
/// `hyper_util::service::TowerToHyperService`:
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use portcullis::{AuthLayer, Authenticator, Policy};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
/// let policy = Policy::builder().public_prefix("/health").build()?;
/// let svc = ServiceBuilder::new()
///     .layer(AuthLayer::new(auth, policy))
///     .service_fn(|_req: http::Request<hyper::body::Incoming>| async {
///         Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
///     });
/// // In a server: `hyper::server::conn::http1::Builder::new()
/// //     .serve_connection(io, hyper_util::service::TowerToHyperService::new(svc))`.
/// let _hyper_service = hyper_util::service::TowerToHyperService::new(svc);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Clone)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct AuthLayer {
    /// A handle like its services': when the layer is dropped after them, the state goes
    /// with it, this thread's replica included.
    shared: handle::Handle,
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
        Self::from_shared(Shared {
            authenticator,
            policy,
            grpc: false,
            on_rejection: None,
            public_auth: PublicAuth::Ignore,
            cors_preflight: false,
            metadata_answers: None,
            attach_errors: false,
        })
    }

    fn from_shared(shared: Shared) -> Self {
        Self {
            shared: handle::Handle::new(Arc::new(shared)),
        }
    }

    fn with(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared.into_arc());
        f(&mut shared);
        Self::from_shared(shared)
    }

    /// Replaces the layer's rejections with your own answers. `hook` gets the error and
    /// the answer the layer would send (status, `WWW-Authenticate`, JSON body, or for gRPC
    /// requests the trailers-only status with `grpc-status`), and returns the answer to
    /// send. Start from the given answer to keep what you do not change: the challenge
    /// stays unless you remove it on purpose. The hook always gets the full
    /// [`AuthError`](crate::AuthError); with [`attach_errors`](Self::attach_errors) it is
    /// also in the extensions of what you return, whatever you do with them. The default
    /// answers are precomputed and cost nothing beyond the response; a hook costs what it
    /// does.
    ///
    /// The hook shapes every rejection made for a request that goes through this layer:
    /// its own, and those made behind it (the require layers, the `Principal`,
    /// `Claims<T>`, `Authz` and `AisAuthz` extractors, an `AuthError` a handler returns),
    /// which it reshapes on their way out; the forward-auth and compatibility endpoints
    /// answer through it too. Not reached: an extractor with no layer in front, and gRPC
    /// answers. The [rules guide](crate::guides::rules) lists them.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::header::CONTENT_TYPE;
    /// use portcullis::{AuthLayer, Authenticator, Policy};
    /// use tower::{Layer, ServiceExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
    /// let policy = Policy::builder().allow("GET", "/me", ["*"]).build()?;
    /// let layer = AuthLayer::new(auth, policy).on_rejection(|err, mut res| {
    ///     // Our own body shape; status and challenge kept.
    ///     *res.body_mut() = Bytes::from(format!(r#"{{"code":{},"detail":"{}"}}"#, err.status().as_u16(), err.message()));
    ///     res.headers_mut().insert(CONTENT_TYPE, "application/problem+json".parse().unwrap());
    ///     res
    /// });
    /// let svc = layer.layer(tower::service_fn(|_req: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }));
    /// let res = svc.oneshot(http::Request::get("/me").body(String::new())?).await?;
    /// assert_eq!(res.status(), 401);
    /// assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
    /// assert_eq!(res.headers()["content-type"], "application/problem+json");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # });
    /// ```
    pub fn on_rejection<F>(self, hook: F) -> Self
    where
        F: Fn(&crate::AuthError, Response<Bytes>) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.with(|s| s.on_rejection = Some(Arc::new(hook)))
    }

    /// Puts the full [`AuthError`](crate::AuthError) into the extensions of every
    /// rejection this layer answers, for a logging or metrics layer in front of it to read
    /// (`res.extensions().get::<AuthError>()`: the kind, the fixed message, and the detail
    /// its `Display` gives). Off by default: a rejection then costs its response and
    /// nothing more (no extensions map, no copy of the error), which keeps floods of bad
    /// requests cheap. Either way the [rejection hook](Self::on_rejection) receives the
    /// full error, the layer's DEBUG event names the reason, and rejections made behind
    /// the layer (require layers, extractors, an `AuthError` a handler returns) carry
    /// their error, since this layer reads it to shape them. An `AuthLayer` nested inside
    /// another whose hook should reshape its rejections needs this switch too: the outer
    /// layer knows a rejection by its error.
    ///
    /// ```
    /// use portcullis::{AuthError, AuthErrorKind, AuthLayer, Authenticator, Policy};
    /// use tower::{Layer, ServiceExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
    /// let policy = Policy::builder().allow("GET", "/me", ["*"]).build()?;
    /// let app = tower::service_fn(|_req: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// });
    /// let plain = AuthLayer::new(auth.clone(), policy.clone()).layer(app.clone());
    /// let res = plain.oneshot(http::Request::get("/me").body(String::new())?).await?;
    /// assert_eq!(res.status(), 401);
    /// assert!(res.extensions().get::<AuthError>().is_none());
    ///
    /// let logged = AuthLayer::new(auth, policy).attach_errors().layer(app);
    /// let res = logged.oneshot(http::Request::get("/me").body(String::new())?).await?;
    /// assert_eq!(res.extensions().get::<AuthError>().map(|e| e.kind()), Some(AuthErrorKind::MissingCredentials));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # });
    /// ```
    pub fn attach_errors(self) -> Self {
        self.with(|s| s.attach_errors = true)
    }

    /// What happens to a token sent to a public route or method. Default
    /// [`PublicAuth::Ignore`]: it is never looked at.
    pub fn public_auth(self, mode: PublicAuth) -> Self {
        self.with(|s| s.public_auth = mode)
    }

    /// Lets CORS preflight requests through unauthenticated: `OPTIONS` with both `Origin`
    /// and `Access-Control-Request-Method` (`PORTCULLIS_CORS_PREFLIGHT=true`). Off by
    /// default. Browsers send preflights without credentials, so a guarded route refuses
    /// them with 401 otherwise. The preferred set-up is tower-http's `CorsLayer` *outside*
    /// this layer (added after it, so it runs first and answers preflights itself); this
    /// switch is for when the CORS handling sits inside, behind the guard. The real request
    /// that follows is guarded as usual.
    pub fn allow_cors_preflight(self) -> Self {
        self.with(|s| s.cors_preflight = true)
    }

    /// Names the RFC 9728 protected-resource metadata in every challenge this layer (and
    /// what it guards: [`require_roles`], the extractors, an `AuthError` a handler returns)
    /// gives: `WWW-Authenticate: Bearer realm="api", resource_metadata="<url>"`, the URL
    /// being [`ResourceMetadata::url`](crate::resource_metadata::ResourceMetadata::url).
    /// Clients such as the Model Context Protocol's find the authorization servers from
    /// there (RFC 9728 section 5.1). Off by default.
    ///
    /// The decisions do not change, and nothing is fetched: the challenges are computed
    /// here, once, like the rest of the answer table, so a 401 costs what it did. Every
    /// challenge carries the parameter (401, 400 and 403 with `insufficient_scope`, where
    /// a client may look for other scopes); the document itself is served by
    /// [`ResourceMetadata::into_router`](crate::resource_metadata::ResourceMetadata::into_router)
    /// (feature `resource-metadata`) or your own route.
    ///
    /// ```
    /// use portcullis::resource_metadata::ResourceMetadata;
    /// use portcullis::{AuthLayer, Authenticator, Policy};
    ///
    /// let auth = Authenticator::builder()
    ///     .hmac_secret("0123456789abcdef0123456789abcdef")
    ///     .issuer("https://id.example.com")
    ///     .audience("https://api.example.com/mcp")
    ///     .build()?;
    /// let metadata = ResourceMetadata::builder(&auth).build()?;
    /// let layer = AuthLayer::new(auth, Policy::builder().build()?).resource_metadata(&metadata);
    /// let res = layer.rejection::<String>(portcullis::AuthError::forbidden());
    /// assert_eq!(
    ///     res.headers()["www-authenticate"],
    ///     r#"Bearer realm="api", error="insufficient_scope", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp""#,
    /// );
    /// # Ok::<(), portcullis::ConfigError>(())
    /// ```
    pub fn resource_metadata(self, metadata: &crate::resource_metadata::ResourceMetadata) -> Self {
        let answers = self
            .shared
            .authenticator
            .answers()
            .with_resource_metadata(metadata.url());
        self.with(|s| s.metadata_answers = Some(Arc::new(answers)))
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
        self.with(|s| s.grpc = true)
    }

    /// The answer this layer gives for `err`, for code that decides outside it (a handler,
    /// a forward-auth or compatibility endpoint) and must answer the same: the answer
    /// table's status, JSON body and challenge (with the authenticator's scheme and
    /// realm), shaped by the [rejection hook](Self::on_rejection) when one is set, with the
    /// error in the response extensions when the layer [attaches errors](Self::attach_errors).
    ///
    /// ```
    /// use portcullis::{AuthError, AuthLayer, Authenticator, Policy};
    ///
    /// let layer = AuthLayer::new(
    ///     Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?,
    ///     Policy::builder().build()?,
    /// );
    /// let res = layer.rejection::<String>(AuthError::forbidden());
    /// assert_eq!(res.status(), 403);
    /// assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api", error="insufficient_scope""#);
    /// # Ok::<(), portcullis::ConfigError>(())
    /// ```
    pub fn rejection<B>(&self, err: crate::AuthError) -> Response<AuthBody<B>> {
        self.shared.reject(err, None)
    }

    /// The same layer (authenticator, rejection hook, settings) deciding with `policy`:
    /// for endpoints of your own beside the guarded app, with
    /// [`Policy::required_claims_only`] for "any verified caller that meets the app's
    /// required claims", answered exactly as the app answers.
    pub fn with_policy(self, policy: Policy) -> Self {
        self.with(|s| s.policy = policy)
    }

    /// The guard of endpoints beside the app (the compatibility routers): this layer with
    /// [`Policy::required_claims_only`].
    #[cfg(any(feature = "admin-api", feature = "authress"))]
    pub(crate) fn endpoint_guard(&self) -> Self {
        self.clone()
            .with_policy(self.shared.policy.required_claims_only())
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
        Auth::new(inner, self.shared.clone())
    }
}
