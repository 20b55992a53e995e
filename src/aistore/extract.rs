//! The axum extractor (features `aistore` and `axum`).

use axum_core::extract::FromRequestParts;
use http::request::Parts;

use super::{Access, AisClaims, AisDenied, Bucket};
use crate::error::AuthError;
use crate::extract::AuthRejection;
use crate::principal::Principal;

/// The verified caller's AIStore claims, for checks in handlers.
///
/// The extractor needs [`AuthLayer`](crate::AuthLayer) in front (without it, 500; on a
/// public route, 401, as the [`Principal`] extractor). It never refuses a token whose
/// AIStore claims are malformed: [`check`](Self::check) and [`require`](Self::require)
/// refuse every request of such a token with [`AisDenied::InvalidClaims`], unless the
/// handler never asks.
///
/// A refusal from [`require`](Self::require) answers 403 with
/// `WWW-Authenticate: Bearer realm="...", error="insufficient_scope"` and the JSON body of
/// the answer table; the reason ([`AisDenied`]'s text) goes to the logs
/// (`portcullis::aistore`, DEBUG) and the response's [`AuthError`], never to the client.
///
/// ```
/// use axum::{Router, body::Body, extract::Path, routing::get};
/// use http::{Request, StatusCode};
/// use portcullis::{AuthLayer, AuthRejection, Authenticator, Policy, Signer, Algorithm};
/// use portcullis::aistore::{Access, AisAuthz, Bucket};
/// use tower::ServiceExt;
///
/// async fn get_object(ais: AisAuthz, Path((bucket, obj)): Path<(String, String)>)
///     -> Result<String, AuthRejection>
/// {
///     ais.require("Q8XCZ", Some(&Bucket::new(bucket)), Access::GET)?;
///     Ok(format!("contents of {obj}"))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let secret = "0123456789abcdef0123456789abcdef";
/// let auth = Authenticator::builder().hmac_secret(secret).audience("Q8XCZ").build()?;
/// let policy = Policy::builder().allow("GET", "/v1/objects/{bucket}/{*obj}", ["*"]).build()?;
/// let app = Router::new()
///     .route("/v1/objects/{bucket}/{*obj}", get(get_object))
///     .layer(AuthLayer::new(auth, policy));
/// // Read-only on one bucket, as AuthN writes it.
/// let token = Signer::hmac(Algorithm::HS256, secret)?.sign(&serde_json::json!({
///     "clusters": null,
///     "buckets": [{"bck": {"name": "photos", "provider": "ais",
///                          "namespace": {"uuid": "Q8XCZ", "name": ""}}, "perm": "771"}],
///     "admin": false, "iss": "https://authn:52001", "sub": "alice", "aud": "Q8XCZ",
///     "exp": 4_000_000_000u64, "iat": 1_700_000_000u64,
/// }))?;
/// let get = |path: &str| Request::get(path)
///     .header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
/// assert_eq!(app.clone().oneshot(get("/v1/objects/photos/a.jpg")).await?.status(), StatusCode::OK);
/// let res = app.oneshot(get("/v1/objects/private/a.jpg")).await?;
/// assert_eq!(res.status(), StatusCode::FORBIDDEN);
/// assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api", error="insufficient_scope""#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct AisAuthz {
    principal: Principal,
    claims: Result<AisClaims, AisDenied>,
}

impl AisAuthz {
    /// Reads the AIStore claims of a verified caller (what the extractor does).
    pub fn new(principal: Principal) -> Self {
        let claims = AisClaims::from_principal(&principal);
        Self { principal, claims }
    }

    /// The verified caller.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The caller's AIStore claims, or why they could not be read.
    pub fn claims(&self) -> Result<&AisClaims, &AisDenied> {
        self.claims.as_ref()
    }

    /// AIStore's check ([`AisClaims::check`]).
    pub fn check(
        &self,
        cluster: &str,
        bucket: Option<&Bucket>,
        access: Access,
    ) -> Result<(), AisDenied> {
        match &self.claims {
            Ok(c) => c.check(cluster, bucket, access),
            Err(e) => Err(e.clone()),
        }
    }

    /// The same as a result for `?` in a handler: a refusal is a 403 rejection.
    pub fn require(
        &self,
        cluster: &str,
        bucket: Option<&Bucket>,
        access: Access,
    ) -> Result<(), AuthRejection> {
        self.check(cluster, bucket, access).map_err(|denied| {
            tracing::debug!(
                target: "portcullis::aistore",
                access = %access,
                reason = %denied,
                "AIStore access check refused the request"
            );
            AuthRejection::for_principal(
                AuthError::forbidden_because(denied.to_string()),
                &self.principal,
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AisAuthz {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal =
            <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        Ok(Self::new(principal))
    }
}
