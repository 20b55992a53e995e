//! axum extractors (feature `axum`, on by default).
//!
//! - [`Principal`] itself: the verified caller. Without [`AuthLayer`](crate::AuthLayer) in
//!   front, or on a public route, it answers 500 (misuse) with the JSON body of the table.
//! - `Option<Principal>`: `None` on public routes, never a rejection.
//! - [`Claims<T>`]: the token's claims deserialized into your type; claims that do not fit
//!   answer 401 `invalid_token`.
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use portcullis::{AuthLayer, Authenticator, Claims, Policy, Principal};
//! use tower::ServiceExt;
//!
//! #[derive(serde::Deserialize)]
//! struct MyClaims { sub: String }
//!
//! async fn me(p: Principal) -> String { format!("{:?}", p.roles()) }
//! async fn sub(Claims(c): Claims<MyClaims>) -> String { c.sub }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = "0123456789abcdef0123456789abcdef";
//! let auth = Authenticator::builder().hmac_secret(secret).build()?;
//! let policy = Policy::builder().allow("GET", "/**", ["*"]).build()?;
//! let app = Router::new()
//!     .route("/me", get(me))
//!     .route("/sub", get(sub))
//!     .layer(AuthLayer::new(auth, policy));
//! let token = portcullis::Signer::hmac(portcullis::Algorithm::HS256, secret)?
//!     .sign(&serde_json::json!({"sub": "ada", "role": "client", "exp": 4_000_000_000u64}))?;
//! let req = Request::get("/sub").header("authorization", format!("Bearer {token}")).body(Body::empty())?;
//! let res = app.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // Without the layer, the extractor is misused: 500.
//! let bare = Router::new().route("/me", get(me));
//! let res = bare.oneshot(Request::get("/me").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::answer::{self, Answers};
use crate::error::{AuthError, Reason};
use crate::layer::PublicTarget;
use crate::principal::Principal;

/// The rejection of the extractors: an [`AuthError`] answered as the table says.
#[derive(Debug)]
pub struct AuthRejection {
    error: AuthError,
    answers: Option<Arc<Answers>>,
}

impl AuthRejection {
    /// The error behind the rejection.
    pub fn error(&self) -> &AuthError {
        &self.error
    }

    /// A rejection with no challenge of its own (the layer in front adds one).
    pub(crate) fn plain(error: AuthError) -> Self {
        Self {
            error,
            answers: None,
        }
    }

    /// A rejection of a verified caller: the challenge names the scheme and realm of the
    /// authenticator that verified it.
    pub(crate) fn for_principal(error: AuthError, principal: &Principal) -> Self {
        Self {
            error,
            answers: Some(principal.answers().clone()),
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match &self.answers {
            Some(answers) => answers.http::<axum_core::body::Body>(&self.error),
            None => answer::plain::<axum_core::body::Body>(&self.error),
        }
        .map(axum_core::body::Body::new)
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        AuthRejection::plain(self).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            let error = if parts.extensions.get::<PublicTarget>().is_some() {
                // The policy made the route public and no valid token came: the caller
                // must authenticate for this handler (the layer adds its challenge).
                AuthError::missing()
            } else {
                AuthError::misuse("Principal extractor without AuthLayer in front")
            };
            tracing::debug!(target: "portcullis::extract", error = %error, "extractor refused the request");
            AuthRejection::plain(error)
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// The verified token's claims, deserialized into `T`.
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal =
            <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        principal.claims_path_as::<T>().map(Claims).map_err(|field| {
            let error = AuthError::invalid_token(Reason::ClaimsType(field));
            tracing::debug!(target: "portcullis::extract", error = %error, "claims do not fit the handler's type");
            AuthRejection::for_principal(error, &principal)
        })
    }
}
