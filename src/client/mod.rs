//! The calling side (feature `client`): find a token, attach it to outgoing requests,
//! keep it fresh.
//!
//! What the seed systems' clients do, in one place:
//!
//! - Find a token: a [`Token`] (static), an environment variable ([`Environment::var`]:
//!   `FEDN_AUTH_TOKEN`, `AIS_AUTHN_TOKEN`, `ANACONDA_CLOUD_API_KEY`, any name; `Bearer
//!   xyz` is read as `xyz`, as FEDn reads it), a file ([`TokenFile`],
//!   [`Environment::file_from_var`]), a `.env` file ([`DotEnv`]), and [`Chain`]s of them
//!   with the seed clients' orders: [`Environment::aistore`] (`AIS_AUTHN_TOKEN` wins over
//!   `AIS_AUTHN_TOKEN_FILE`) and [`Environment::anaconda_cloud`] (argument > environment >
//!   `.env` > stored file). A source that finds nothing says where it looked.
//! - Refresh: [`Refreshing`] around a [`Refresh`]: FEDn's protocol ([`FednRefresh`]),
//!   OAuth2 `refresh_token` and `client_credentials` grants ([`OAuth2`]), Authress
//!   service-client keys ([`AuthressAccessKey`]) or your own. It refreshes inside a
//!   window before expiry (30 s by default), shares one refresh among concurrent callers,
//!   stops for good on a refused refresh ("refresh token invalid or expired, log in
//!   again") and backs off on network errors.
//! - Attach: [`TokenLayer`] adds `Authorization: <scheme> <token>` to hyper, axum,
//!   reqwest-style and tonic requests, and on a 401 `Token expired` (or gRPC
//!   `UNAUTHENTICATED` `Token expired`) renews the token and retries once.
//! - Verify Authress service-client tokens on the server: [`AuthressClientVerifier`].
//!
//! Every type holding a token or a key prints `<redacted>` in `Debug`; nothing here logs
//! a token. Failed refreshes are logged at WARN under the target `portcullis::client`,
//! with the error's log-safe text only.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use portcullis::client::{Environment, TokenLayer};
//! use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
//! use tower::{Layer, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = "0123456789abcdef0123456789abcdef";
//! let api = Router::new().route("/me", get(|| async { "me" })).layer(AuthLayer::new(
//!     Authenticator::builder().hmac_secret(secret).schemes(["Token"]).build()?,
//!     Policy::builder().allow("GET", "/me", ["*"]).build()?,
//! ));
//! let token = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&serde_json::json!({"sub": "c1", "exp": 4_000_000_000u64}))?;
//! // FEDn's variables, read through a lookup (here a fixed list).
//! let vars = [("FEDN_AUTH_TOKEN", format!("Bearer {token}")), ("FEDN_AUTH_SCHEME", "Token".into())];
//! let env = Environment::from_lookup(move |n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone()));
//! let client = TokenLayer::fedn(&env)?.layer(api);
//! let res = client.oneshot(http::Request::get("/me").body(Body::empty())?).await?;
//! assert_eq!(res.status(), 200);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # });
//! ```

mod authress;
mod body;
mod endpoint;
mod environment;
mod error;
mod layer;
mod provider;
mod refresh;
mod token;

pub use authress::{AuthressAccessKey, AuthressClientVerifier};
pub use body::{ReplayBody, ResponseBody};
pub use endpoint::{FednRefresh, OAuth2};
pub use environment::{DotEnv, EnvVar, Environment, TokenFile};
pub use error::{BoxError, TokenError, TokenErrorKind};
pub use layer::{AddToken, ResponseFuture, TokenLayer};
pub use provider::{Chain, RenewFuture, TokenFuture, TokenProvider};
pub use refresh::{
    DEFAULT_REFRESH_WINDOW, Refresh, RefreshFuture, Refreshed, Refreshing, RefreshingBuilder,
};
pub use token::Token;
