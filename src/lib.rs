//! # portcullis
//!
//! JWT authentication and role-based authorization for tower, axum, hyper and tonic, plus
//! a decision service for proxies. One layer guards axum routers, hyper services and tonic
//! servers: it reads the token, verifies it (HMAC secret, PEM public keys, static or remote
//! JWK sets, OIDC discovery), decides from the caller's roles whether the route or gRPC
//! method is allowed, and hands the verified [`Principal`] to your handlers.
//!
//! A framework-free core does the work: [`Authenticator::verify`] turns a token into a
//! [`Principal`], and a [`Policy`] decides `(principal, request) -> RouteDecision` with a
//! reason. [`AuthLayer`] is a thin adapter over both. For resource permissions inside
//! handlers, [`Authorizer::authorize_user`] answers `(subject, resource_uri, permission)`
//! from access records held in process. Tokens can be revoked before their `exp`
//! ([`revoke`]), on every replica with the `redis` feature.
//!
//! ## Quick start (axum)
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Principal, Signer};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = "0123456789abcdef0123456789abcdef";
//! let auth = Authenticator::builder().hmac_secret(secret).build()?;
//! let policy = Policy::builder()
//!     .allow("GET", "/reports/{id}", ["reader", "editor"])
//!     .allow("PUT", "/reports/{id}", ["editor"])
//!     .allow("GET", "/me", ["*"]) // any valid token
//!     .public_prefix("/health")
//!     .build()?;
//! let app = Router::new()
//!     .route("/reports/{id}", get(|| async { "report" }).put(|| async { "saved" }))
//!     .route("/me", get(|p: Principal| async move { p.subject().unwrap_or("").to_owned() }))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(AuthLayer::new(auth, policy));
//!
//! let reader = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&serde_json::json!({"sub": "ada", "role": "reader", "exp": 4_000_000_000u64}))?;
//! let call = |method: &str, path: &str| Request::builder().method(method).uri(path)
//!     .header("authorization", format!("Bearer {reader}")).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(call("GET", "/reports/7")).await?.status(), StatusCode::OK);
//! assert_eq!(app.clone().oneshot(call("PUT", "/reports/7")).await?.status(), StatusCode::FORBIDDEN);
//! assert_eq!(app.clone().oneshot(call("GET", "/me")).await?.status(), StatusCode::OK);
//! let anonymous = Request::get("/reports/7").body(Body::empty())?;
//! let res = app.clone().oneshot(anonymous).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
//! assert_eq!(app.oneshot(Request::get("/health").body(Body::empty())?).await?.status(), StatusCode::OK);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
//!
//! For hyper, wrap any `Service<http::Request<B>>` with [`AuthLayer`] through
//! `tower::ServiceBuilder` (see the [`AuthLayer`] docs). Everything can also come from the
//! environment, FEDn's variables included: `EnvConfig::from_env()?.build_layer()?`
//! ([`EnvConfig`], [configuration guide](guides::configuration)).
//!
//! ## Quick start (tonic)
//!
//! The same layer guards a tonic server by method name, and answers gRPC callers with
//! gRPC statuses:
//!
//! ```
//! use portcullis::{AuthLayer, Authenticator, Policy};
//! use tower::{Layer, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
//! let policy = Policy::builder()
//!     .public_grpc("/grpc.health.v1.Health/Check")
//!     .allow_grpc("/quickstart.v1.Greeter/*", ["client"])
//!     .build()?;
//! // In a server: `tonic::transport::Server::builder().layer(AuthLayer::new(auth, policy).for_grpc())`.
//! let svc = AuthLayer::new(auth, policy).for_grpc().layer(tower::service_fn(|_req: http::Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//! }));
//! let call = http::Request::post("/quickstart.v1.Greeter/SayHello")
//!     .header("content-type", "application/grpc")
//!     .body(String::new())?;
//! let res = svc.oneshot(call).await?;
//! assert_eq!(res.status(), 200); // trailers-only
//! assert_eq!(res.headers()["grpc-status"], "16"); // UNAUTHENTICATED
//! assert_eq!(res.headers()["grpc-message"], "Missing token");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
//!
//! ## Guides
//!
//! The [`guides`] module holds the longer pages, each also a Markdown file under `docs/`
//! whose examples compile here: [configuration](guides::configuration) (every environment
//! variable), the [command line and `serve`](guides::cli), [proxies](guides::proxies)
//! (nginx, Caddy, Traefik), [Envoy](guides::envoy) (Istio, Envoy Gateway, the Gateway
//! API, Contour), [revocation](guides::revocation), the
//! [client side](guides::client), [identity providers](guides::identity_providers),
//! [metrics and logs](guides::metrics), [testing](guides::testing), and the integrations:
//! [FEDn](guides::fedn), [AIStore](guides::aistore), [Authress](guides::authress),
//! [Kamiwaza](guides::kamiwaza), [anaconda-cloud-auth](guides::anaconda).
//!
//! ## Answers
//!
//! | kind | HTTP | `WWW-Authenticate` | gRPC code |
//! |---|---|---|---|
//! | missing credentials | 401 | `<Scheme> realm="..."` | `UNAUTHENTICATED` |
//! | invalid request | 400 | `error="invalid_request"` | `UNAUTHENTICATED` |
//! | invalid token | 401 | `error="invalid_token"` | `UNAUTHENTICATED` |
//! | forbidden | 403 | `error="insufficient_scope"` | `PERMISSION_DENIED` |
//! | keys unavailable | 503 | none | `UNAVAILABLE` |
//! | misuse | 500 | none | `INTERNAL` |
//!
//! Bodies are JSON, `{"error": "<code>", "message": "<text>"}`, with FEDn's texts
//! (`Missing token`, `Invalid token scheme, expected <Scheme>`, `Token expired`,
//! `Invalid token`, `Insufficient permissions`); a revoked token is `invalid_token` with
//! `Token revoked`, and a shared revocation list too old to check answers 503 with
//! `Revocation list unavailable` (an introspection endpoint that cannot answer, with
//! `Token introspection unavailable`). Authress service-client tokens
//! ([`AuthressServiceClients`]) refused for their issuer's host, their `sub` or a missing
//! `kid` are `invalid_token` with a text of their own each. Sender-constrained tokens
//! ([`sender`]) answer RFC 9449 section 7: a bad DPoP proof is 401 with
//! `WWW-Authenticate: DPoP error="invalid_dpop_proof", algs="..."` and the body error
//! `invalid_dpop_proof`, a missing server nonce 401 `use_dpop_nonce` with `DPoP-Nonce`.
//!
//! ## Security defaults
//!
//! The algorithm comes from the key, never from the token; `none` is never accepted, nor
//! HMAC from a public key; `exp` is required; `nbf` and `iat` are checked when present
//! (leeway 60 s, at most 300 s); a token that carries `aud` is refused unless an audience
//! is configured (and named by it) or [`DangerousAuthenticatorBuilder::allow_unchecked_audience`]
//! opts out; `crit`, `b64`, nested and encrypted tokens are refused; duplicate JSON members
//! are refused; HMAC secrets shorter than the hash are refused; tokens over 8 KiB are
//! refused before decoding; claim paths walk nested objects only; routes no rule names are
//! denied; a token bound by `cnf` (DPoP, certificate-bound) never passes as a bearer
//! token.
//!
//! ## How the crate is built
//!
//! Dependencies run one way: `jose` (algorithms, strict base64url and JSON, prepared keys;
//! the only module that names jsonwebtoken or aws-lc-rs) at the bottom, then `keys` (key
//! sets, JWK loading, remote sets, with their own results), then the verifier
//! ([`Authenticator`]) and beside it the [`Policy`] (compiled into an index when built),
//! then the adapters: the [`layer`] ([`AuthLayer`] → [`layer::Auth`] →
//! [`layer::ResponseFuture`]), the axum extractors and the tonic interceptor. Rejections
//! come from an answer table precomputed per authenticator.
//!
//! ## Logs (tracing)
//!
//! Events never hold a token, a key or a claim value; they name the method, the path or
//! gRPC method, the outcome and the reason.
//!
//! | target | level | what |
//! |---|---|---|
//! | `portcullis::layer` | TRACE | every allowed request (method, path, `grpc`) |
//! | `portcullis::layer` | DEBUG | every rejected request (method, path, status, reason), and route requirements that refuse |
//! | `portcullis::extract` | DEBUG | extractor refusals (`Principal` on a public route, `Claims<T>` that do not fit, naming the field) |
//! | `portcullis::forward` | DEBUG / WARN | forward-auth refusals by the access records, identity values left out; a proxy that sent no original method or URI |
//! | `portcullis::authz` | DEBUG | `Authz::require` refusals (permission and reason) |
//! | `portcullis::aistore` | DEBUG | `AisAuthz::require` refusals (access and reason) |
//! | `portcullis::keys::remote::*` | DEBUG / WARN | key sets loaded; fetch failures (once per outage for runtime problems) |
//! | `portcullis::config` | WARN | dangerous settings taken from the environment |
//! | `portcullis::sender` | WARN | the shared DPoP replay store did not answer (at most once per 10 s) |
//!
//! Any `tracing` subscriber sees them; with tracing-subscriber,
//! `EnvFilter::new("portcullis::layer=debug")` shows every rejection. The
//! [metrics and logs guide](guides::metrics) has a runnable check.
//!
//! ## Feature flags
//!
//! - `axum` (default): the [`Principal`] and [`Claims`] extractors, and [`Authz`].
//! - `watch`: `MemoryStore::watch_file`, a tokio task that reloads an access-record file.
//! - `tonic`: the `grpc` module (interceptor, status conversion, handler helpers).
//! - `token-cache` (default): the verified-token cache ([`TokenCache`]).
//! - `test-util`: a kit for your own tests: `Signer::generate` and `test_util::TestIssuer`,
//!   an OIDC issuer on loopback (discovery, JWK sets, rotation, minting).
//! - `jwks` (default): remote key sets (`jwks_url`, `issuer_jwks_url`, `oidc_issuer`,
//!   `issuer_pattern`, Authress service clients, [`JwksOptions`]) with one shared reqwest
//!   client over rustls; needs a tokio runtime.
//! - `client`: the `client` module: token sources (environment, files, `.env`, chains in
//!   FEDn's, AIStore's and anaconda-cloud-auth's orders), refreshing sources (FEDn, OAuth2,
//!   Authress service-client keys) and `TokenLayer` for outgoing hyper, axum, reqwest-style
//!   and (with `tonic`) tonic requests; needs a tokio runtime.
//! - `introspection`: the `introspection` module: opaque tokens (and JWTs of chosen
//!   issuers) checked at the authorization server's RFC 7662 introspection endpoint, the
//!   answers cached like verified tokens; needs `jwks` and a tokio runtime. See the
//!   [introspection guide](guides::introspection).
//! - `reqwest-client`: `JwksClient::from_reqwest`, to bring your own reqwest 0.13 client
//!   (proxy, custom CA, mTLS); it follows reqwest's major version.
//! - `redis`: `revoke::RedisRevocations` and `revoke::RedisRecords`, a revocation list and
//!   access records shared by every replica through Redis (`redis://`, `rediss://`), with
//!   `PORTCULLIS_REDIS_*` in [`EnvConfig`]; needs a tokio runtime.
//! - `metrics`: decisions, key-set fetches and key-set ages reported through the
//!   `metrics` facade crate to whatever recorder the application installs (see
//!   `portcullis::metrics` for the names and labels).
//! - `aistore`: the [`aistore`] module: the permission claims of AIStore's AuthN tokens
//!   (`admin`, `clusters`, `buckets`) checked with AIStore's rules, an axum extractor, and
//!   `PolicyBuilder::allow_ais`, a policy rule on `{cluster}`/`{bucket}` path segments.
//! - `admin-api`, `authress`, `kamiwaza`: the compatibility endpoints as axum routers
//!   guarded by your [`AuthLayer`]: `revoke::AdminApi` (`POST /admin/revoke`),
//!   `authress::CheckApi` (the Authress check API over your access records) and
//!   `kamiwaza::KamiwazaApi` (Kamiwaza's `/auth/verify-token` and
//!   `/auth/users/me/permissions`). They bring axum's router.
//!
//! The `portcullis` binary (`mint`, `keygen`, `inspect`, `verify`, `check`, `lint`,
//! `revoke`, and `serve`, a forward-auth service for nginx, Caddy and Traefik with a
//! Prometheus `/metrics` endpoint) is its own package, `portcullis-cli` (the `cli/` folder
//! of the repository), built on this crate's public API; the library has no command-line
//! dependency.
//!
//! MSRV: Rust 1.88 (edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod access;
#[cfg(feature = "aistore")]
#[cfg_attr(docsrs, doc(cfg(feature = "aistore")))]
pub mod aistore;
mod answer;
mod authn;
#[cfg(any(feature = "jwks", feature = "authress"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "jwks", feature = "authress"))))]
pub mod authress;
mod body;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
mod clock;
mod config;
#[cfg(any(feature = "admin-api", feature = "authress", feature = "kamiwaza"))]
mod endpoint;
mod error;
#[cfg(feature = "axum")]
mod extract;
pub mod forward;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod grpc;
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub mod introspection;
mod jose;
#[cfg(feature = "kamiwaza")]
#[cfg_attr(docsrs, doc(cfg(feature = "kamiwaza")))]
pub mod kamiwaza;
mod keys;
pub mod layer;
mod macros;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
mod policy;
mod principal;
pub mod resource_metadata;
pub mod revoke;
pub mod sender;
mod signer;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use access::Authz;
#[cfg(feature = "watch")]
#[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
pub use access::FileWatch;
pub use access::{
    AccessDecision, AccessList, AccessReason, Authorizer, Grant, MemoryStore, Record, RecordSet,
    RecordSetBuilder, RecordStore, Statement, Subject, UserId, Via, resource_uri,
};
#[cfg(feature = "token-cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "token-cache")))]
pub use authn::TokenCache;
pub use authn::{
    Authenticator, AuthenticatorBuilder, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES,
    DangerousAuthenticatorBuilder, MAX_LEEWAY, MAX_TOKEN_BYTES_CAP, TokenSource,
};
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub use authress::AuthressServiceClients;
pub use clock::Clock;
pub use config::{EnvConfig, UnknownTargets};
pub use error::{
    AuthError, AuthErrorKind, ConfigError, ConfigErrorKind, GrpcCode, StartError, UnavailableError,
};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::{AuthRejection, Claims};
pub use jose::{Algorithm, UnknownAlgorithm};
#[cfg(feature = "reqwest-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-client")))]
pub use keys::JwksClient;
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub use keys::{JwksOptions, TenantOptions};
pub use layer::{AuthBody, AuthLayer};
pub use policy::{
    Condition, Policy, PolicyBuilder, Refusal, RouteDecision, RouteReason, Target, Unmatched,
};
pub use principal::{Principal, Strs};
pub use signer::{SignError, Signer};

pub mod guides {
    //! Guides: the longer pages, one per topic. Each is a Markdown file under `docs/` in the
    //! repository, shown here so that its Rust examples compile and run as doctests.
    //!
    //! Start from the crate root's quick starts; then:
    //!
    //! - [`configuration`]: every environment variable, its default and precedence; the
    //!   policy file; the layer's options.
    //! - [`rules`]: conditions on rules (a claim bound to a path parameter, a literal or a
    //!   header), dry-run rules and shadow policies, and one shape for every rejection.
    //! - [`cli`]: the `portcullis` command line and `portcullis serve`, the forward-auth
    //!   decision service.
    //! - [`proxies`]: nginx, Caddy and Traefik in front of `serve`.
    //! - [`envoy`]: Envoy's external authorization (gRPC and HTTP), Istio, Envoy Gateway,
    //!   the Gateway API's `ExternalAuth`, Contour; RFC 9728 protected-resource metadata.
    //! - [`revocation`]: revoking tokens, in one process or on every replica through Redis.
    //! - [`sender_constrained`]: DPoP (RFC 9449) and certificate-bound tokens (RFC 8705),
    //!   behind proxies and with rustls.
    //! - [`introspection`]: RFC 9068 `at+jwt` access tokens, and opaque tokens checked at
    //!   the authorization server's introspection endpoint (RFC 7662).
    //! - [`client`]: the calling side: finding, attaching and refreshing tokens.
    //! - [`identity_providers`]: Keycloak, Auth0, Entra ID; multi-tenant issuers.
    //! - [`metrics`]: metrics and logs.
    //! - [`testing`]: testing your service with the test kit.
    //! - [`architecture`]: how the crate is built, and what a request goes through.
    //!
    //! Integrations with the systems portcullis learns from, taking their users' tokens,
    //! variables and clients as they are: [`fedn`], [`aistore`], [`authress`], [`kamiwaza`],
    //! [`anaconda`].
    //!
    //! Every guide is documented whatever the features; the examples of a guide marked with
    //! a feature run as doctests only with it.

    #[cfg(any(all(doc, not(doctest)), feature = "axum"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    #[doc = include_str!("../docs/fedn.md")]
    pub mod fedn {}

    #[cfg(any(all(doc, not(doctest)), all(feature = "aistore", feature = "axum")))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "aistore", feature = "axum"))))]
    #[doc = include_str!("../docs/aistore.md")]
    pub mod aistore {}

    #[cfg(any(all(doc, not(doctest)), feature = "jwks"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    #[doc = include_str!("../docs/authress.md")]
    pub mod authress {}

    #[doc = include_str!("../docs/kamiwaza.md")]
    pub mod kamiwaza {}

    #[cfg(any(all(doc, not(doctest)), all(feature = "client", feature = "axum")))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "client", feature = "axum"))))]
    #[doc = include_str!("../docs/anaconda.md")]
    pub mod anaconda {}

    #[cfg(any(all(doc, not(doctest)), feature = "axum"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    #[doc = include_str!("../docs/configuration.md")]
    pub mod configuration {}

    #[cfg(any(all(doc, not(doctest)), feature = "axum"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    #[doc = include_str!("../docs/rules.md")]
    pub mod rules {}

    #[doc = include_str!("../docs/cli.md")]
    pub mod cli {}

    #[doc = include_str!("../docs/proxies.md")]
    pub mod proxies {}

    #[doc = include_str!("../docs/envoy.md")]
    pub mod envoy {}

    #[cfg(any(all(doc, not(doctest)), feature = "axum"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    #[doc = include_str!("../docs/revocation.md")]
    pub mod revocation {}

    #[cfg(any(all(doc, not(doctest)), feature = "axum"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    #[doc = include_str!("../docs/sender-constrained.md")]
    pub mod sender_constrained {}

    #[cfg(any(all(doc, not(doctest)), feature = "client"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    #[doc = include_str!("../docs/client.md")]
    pub mod client {}

    #[cfg(any(
        all(doc, not(doctest)),
        all(feature = "introspection", feature = "axum")
    ))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "introspection", feature = "axum"))))]
    #[doc = include_str!("../docs/introspection.md")]
    pub mod introspection {}

    #[cfg(any(all(doc, not(doctest)), feature = "jwks"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    #[doc = include_str!("../docs/identity-providers.md")]
    pub mod identity_providers {}

    #[cfg(any(all(doc, not(doctest)), feature = "metrics"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[doc = include_str!("../docs/metrics.md")]
    pub mod metrics {}

    #[cfg(any(all(doc, not(doctest)), all(feature = "test-util", feature = "axum")))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "test-util", feature = "axum"))))]
    #[doc = include_str!("../docs/testing.md")]
    pub mod testing {}

    #[doc = include_str!("../docs/architecture.md")]
    pub mod architecture {}
}

// The integrations plugged into the core's extension points that no caller registers: the
// policy file's sections. The crate root is where they meet; the core names none of them.
/// The sections a policy file may hold beside the core's keys.
#[cfg(feature = "aistore")]
pub(crate) const POLICY_FILE_SECTIONS: &[policy::FileSection] = &[aistore::POLICY_FILE_SECTION];
/// Without the feature, AIStore's keys are refused with the fix.
#[cfg(not(feature = "aistore"))]
pub(crate) const POLICY_FILE_SECTIONS: &[policy::FileSection] = &[policy::FileSection {
    keys: &["ais_cluster", "ais"],
    read: |_, _, origin| {
        Err(ConfigError::at(
            ConfigErrorKind::Policy,
            origin,
            "ais",
            "AIStore rules need the `aistore` feature of portcullis",
        ))
    },
}];
