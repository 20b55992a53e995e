//! # portcullis
//!
//! JWT authentication and role-based authorization for the tower ecosystem: one layer
//! that guards axum routers and hyper services, with FEDn's environment configuration.
//!
//! A framework-free core does the work: [`Authenticator::verify`] turns a token into a
//! [`Principal`], and a [`Policy`] decides `(principal, request) -> Decision` with a
//! reason. [`AuthLayer`] is a thin adapter over both.
//!
//! For resource permissions inside handlers, [`Authorizer::authorize_user`] answers
//! `(subject, resource_uri, permission)` from access records held in process (roles,
//! groups, statements; Authress-like), with the reason, and reloads without blocking.
//!
//! Tokens can be revoked before their `exp` ([`revoke`]): by `(iss, jti)`, by subject, or
//! as the exact token, checked on every request (verified-token cache hits included) by a
//! local look-up; with the `redis` feature the list, and the access records, are shared by
//! every replica of a service through Redis.
//!
//! ## Quick start (axum)
//!
//! ```
//! use axum::{Router, routing::{get, post}, body::Body};
//! use http::{Request, StatusCode};
//! use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Principal, Signer};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = "0123456789abcdef0123456789abcdef";
//! let auth = Authenticator::builder().hmac_secret(secret).build()?;
//! let policy = Policy::fedn_rest().allow("GET", "/me", ["*"]).build()?;
//! let app = Router::new()
//!     .route("/api/v1/clients/add", post(|| async { "added" }))
//!     .route("/api/v1/clients/", get(|| async { "[]" }))
//!     .route("/me", get(|p: Principal| async move { p.subject().unwrap_or("").to_owned() }))
//!     .layer(AuthLayer::new(auth, policy));
//!
//! let client = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&serde_json::json!({"sub": "c1", "role": "client", "exp": 4_000_000_000u64}))?;
//! let call = |method: &str, path: &str| Request::builder().method(method).uri(path)
//!     .header("authorization", format!("Bearer {client}")).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(call("POST", "/api/v1/clients/add")).await?.status(), StatusCode::OK);
//! assert_eq!(app.clone().oneshot(call("GET", "/api/v1/clients/")).await?.status(), StatusCode::FORBIDDEN);
//! assert_eq!(app.oneshot(call("GET", "/me")).await?.status(), StatusCode::OK);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
//!
//! For hyper, wrap any `Service<http::Request<B>>` with [`AuthLayer`] through
//! `tower::ServiceBuilder` (see the [`AuthLayer`] docs).
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
//! `Revocation list unavailable`. Authress service-client tokens
//! ([`AuthressServiceClients`]) refused for their issuer's host, their `sub` or a missing
//! `kid` are `invalid_token` with a text of their own each.
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
//! denied.
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
//! | `portcullis::authz` | DEBUG | `Authz::require` refusals (permission and reason) |
//! | `portcullis::aistore` | DEBUG | `AisAuthz::require` refusals (access and reason) |
//! | `portcullis::keys::remote::*` | DEBUG / WARN | key sets loaded; fetch failures (once per outage for runtime problems) |
//! | `portcullis::config` | WARN | dangerous settings taken from the environment |
//!
//! Any `tracing` subscriber sees them; with tracing-subscriber,
//! `EnvFilter::new("portcullis::layer=debug")` shows every rejection. A runnable check
//! with a bare subscriber that counts the rejections:
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use portcullis::{AuthLayer, Authenticator, Policy};
//! use tower::{Layer, ServiceExt};
//!
//! static REJECTED: AtomicUsize = AtomicUsize::new(0);
//! struct Count;
//! impl tracing::Subscriber for Count {
//!     fn enabled(&self, m: &tracing::Metadata<'_>) -> bool { m.target() == "portcullis::layer" }
//!     fn event(&self, e: &tracing::Event<'_>) {
//!         if *e.metadata().level() == tracing::Level::DEBUG { REJECTED.fetch_add(1, Ordering::SeqCst); }
//!     }
//!     fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id { tracing::span::Id::from_u64(1) }
//!     fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
//!     fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
//!     fn enter(&self, _: &tracing::span::Id) {}
//!     fn exit(&self, _: &tracing::span::Id) {}
//! }
//!
//! let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
//! let svc = AuthLayer::new(auth, Policy::builder().build()?).layer(tower::service_fn(
//!     |_req: http::Request<String>| async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) },
//! ));
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! tracing::subscriber::with_default(Count, || {
//!     rt.block_on(svc.oneshot(http::Request::get("/x").body(String::new()).unwrap()))
//! })?;
//! assert_eq!(REJECTED.load(Ordering::SeqCst), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
//! - `cli`: the `portcullis` binary: `mint`, `keygen`, `inspect`, `verify`, `check`,
//!   `lint`, and `serve`, a forward-auth service for nginx, Caddy and Traefik with a
//!   Prometheus `/metrics` endpoint. Run `portcullis --help`.
//!
//! MSRV: Rust 1.88 (edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "aistore")]
pub mod aistore;
mod answer;
mod authn;
mod authz;
mod body;
#[cfg(feature = "client")]
pub mod client;
mod clock;
mod config;
mod edges;
mod error;
#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "tonic")]
pub mod grpc;
mod jose;
mod keys;
pub mod layer;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
mod policy;
mod principal;
pub mod revoke;
mod signer;
#[cfg(feature = "test-util")]
pub mod test_util;

#[cfg(feature = "token-cache")]
pub use authn::TokenCache;
pub use authn::{
    Authenticator, AuthenticatorBuilder, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES,
    DangerousAuthenticatorBuilder, MAX_LEEWAY, MAX_TOKEN_BYTES_CAP, TokenSource,
};
#[cfg(feature = "axum")]
pub use authz::Authz;
#[cfg(feature = "watch")]
pub use authz::FileWatch;
pub use authz::{
    AccessDecision, AccessList, AccessReason, Authorizer, Grant, MemoryStore, Record, RecordSet,
    RecordSetBuilder, RecordStore, Statement, Subject, UserId, Via, resource_uri,
};
pub use clock::Clock;
pub use config::{EnvConfig, UnknownTargets};
pub use error::{AuthError, AuthErrorKind, ConfigError, ConfigErrorKind, GrpcCode};
#[cfg(feature = "axum")]
pub use extract::{AuthRejection, Claims};
pub use jose::{Algorithm, UnknownAlgorithm};
#[cfg(feature = "reqwest-client")]
pub use keys::JwksClient;
#[cfg(feature = "jwks")]
pub use keys::{AuthressServiceClients, JwksOptions, TenantOptions};
pub use layer::{AuthBody, AuthLayer};
pub use policy::{Decision, DecisionReason, Policy, PolicyBuilder, Refusal, Target, Unmatched};
pub use principal::{Principal, Strs};
pub use signer::{SignError, Signer};
