//! AIStore permission claims (feature `aistore`): tokens from AIStore's AuthN, checked
//! with AIStore's own rules.
//!
//! AIStore's AuthN issues JWTs whose claims say what the user may do: `admin` (every
//! operation), `clusters` (`[{"id": "<cluster UUID>", "perm": "<bits>"}]`, where an
//! empty `id` is the default entry for every other cluster) and `buckets`
//! (`[{"bck": {"name", "provider", "namespace": {"uuid": "<cluster UUID>", "name"}},
//! "perm": "<bits>"}]`), beside `iss`, `sub`, `aud` (the cluster UUIDs), `exp` and `iat`.
//! Each `perm` is a decimal string of [`Access`] bits.
//!
//! - [`Access`]: AIStore's bits and named sets (`api/apc/access.go`).
//! - [`AisClaims`]: the claims read from a [`Principal`](crate::Principal), and
//!   [`AisClaims::check`], AIStore's `CheckPermissions` (`cmd/authn/tok/token.go`) rule
//!   by rule, refusing with an [`AisDenied`] reason.
//! - [`AisAuthz`] (with `axum`): the extractor for handlers.
//! - [`PolicyBuilder::allow_ais`](crate::PolicyBuilder::allow_ais): a policy rule that
//!   requires access bits on the `{cluster}` and `{bucket}` of the path, decided and
//!   answered (403) by the layer like every other rule.
//!
//! AIStore's clients send `Authorization: Bearer <token>` (the Python SDK from its
//! `token=` argument or `AIS_AUTHN_TOKEN`), which the layer reads by default. Its tokens
//! carry `aud`, so configure the cluster's UUID as the audience.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
//! use portcullis::aistore::Access;
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = "0123456789abcdef0123456789abcdef";
//! let auth = Authenticator::builder().hmac_secret(secret).audience("Q8XCZ").build()?;
//! let policy = Policy::builder()
//!     .allow_ais("GET", "/v1/objects/{bucket}/{*object}", Access::GET)
//!     .allow_ais("PUT", "/v1/objects/{bucket}/{*object}", Access::PUT)
//!     .ais_cluster("Q8XCZ")
//!     .build()?;
//! let app = Router::new()
//!     .route("/v1/objects/{bucket}/{*object}", get(|| async { "object" }).put(|| async { "stored" }))
//!     .layer(AuthLayer::new(auth, policy));
//!
//! // Read-only on every bucket of every cluster (the default entry), as AuthN writes it.
//! let token = Signer::hmac(Algorithm::HS256, secret)?.sign(&serde_json::json!({
//!     "clusters": [{"id": "", "perm": Access::RO.bits().to_string()}],
//!     "admin": false, "iss": "https://authn:52001", "sub": "alice", "aud": "Q8XCZ",
//!     "exp": 4_000_000_000u64, "iat": 1_700_000_000u64,
//! }))?;
//! let call = |method: &str| Request::builder().method(method).uri("/v1/objects/photos/a.jpg")
//!     .header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(call("GET")).await?.status(), StatusCode::OK);
//! let res = app.oneshot(call("PUT")).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api", error="insufficient_scope""#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
//!
//! Where we differ from AIStore, on purpose: member names are exact (Go's decoder also
//! takes `Admin`); a token whose AIStore claims are malformed is refused with 403 and
//! [`AisDenied::InvalidClaims`] where AIStore answers 401 (the token verified; its
//! permissions cannot be read, so none are granted); a bucket's own properties (its
//! `access` mask) are the application's to check, since only the token is seen here.

mod access;
mod check;
mod claims;
mod denied;
#[cfg(feature = "axum")]
mod extract;
mod rule;

pub use access::{Access, UnknownAccess};
pub use claims::{AisClaims, Bucket, BucketAcl, ClusterAcl, Namespace, normalize_provider};
pub use denied::{AclEntry, AisDenied};
#[cfg(feature = "axum")]
pub use extract::AisAuthz;
pub(crate) use rule::POLICY_FILE_SECTION;
