//! The axum extractor (feature `axum`): the authorizer bound to the verified caller.

use axum_core::extract::FromRequestParts;
use http::request::Parts;

use super::{AccessDecision, Authorizer, Grant};
use crate::error::AuthError;
use crate::extract::AuthRejection;
use crate::principal::Principal;

/// The [`Authorizer`] bound to the verified caller, for one-line checks in handlers.
///
/// Put the authorizer into the request extensions (`axum::Extension(authorizer)` as a
/// layer) and [`AuthLayer`](crate::AuthLayer) in front. A refusal from
/// [`require`](Self::require) answers 403 with `WWW-Authenticate: Bearer realm="...",
/// error="insufficient_scope"` and the JSON body of the answer table. Without the
/// authorizer extension or without a verified principal, the extractor answers 500
/// (misuse).
///
/// ```
/// use axum::{Extension, Router, body::Body, extract::Path, routing::get};
/// use http::{Request, StatusCode};
/// use portcullis::{AuthLayer, AuthRejection, Authenticator, Authorizer, Authz, Policy, RecordSet, Signer, Algorithm};
/// use tower::ServiceExt;
///
/// async fn read(authz: Authz, Path(id): Path<String>) -> Result<String, AuthRejection> {
///     // `resource_uri` keeps a decoded `%2F` inside its segment.
///     authz.require(&portcullis::resource_uri(["documents", &id]), "documents:read")?;
///     Ok(format!("document {id}"))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let authorizer = Authorizer::new(RecordSet::from_toml_str(r#"
///     roles = { reader = ["documents:read"] }
///     [[records]]
///     id = "ada-reads-A"
///     statements = [{ roles = ["reader"], resources = ["/documents/A"], users = ["ada"] }]
/// "#)?);
/// let secret = "0123456789abcdef0123456789abcdef";
/// let layer = AuthLayer::new(
///     Authenticator::builder().hmac_secret(secret).build()?,
///     Policy::builder().allow("GET", "/documents/{id}", ["*"]).build()?,
/// );
/// let app = Router::new()
///     .route("/documents/{id}", get(read))
///     .layer(Extension(authorizer))
///     .layer(layer);
/// let token = Signer::hmac(Algorithm::HS256, secret)?
///     .sign(&serde_json::json!({"sub": "ada", "exp": 4_000_000_000u64}))?;
/// let get = |path: &str| Request::get(path)
///     .header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
///
/// assert_eq!(app.clone().oneshot(get("/documents/A")).await?.status(), StatusCode::OK);
/// let res = app.oneshot(get("/documents/B")).await?;
/// assert_eq!(res.status(), StatusCode::FORBIDDEN);
/// assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api", error="insufficient_scope""#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Authz {
    authorizer: Authorizer,
    principal: Principal,
}

impl Authz {
    /// Binds an authorizer to a verified caller (what the extractor does).
    pub fn new(authorizer: Authorizer, principal: Principal) -> Self {
        Self {
            authorizer,
            principal,
        }
    }

    /// The verified caller.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The authorizer.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// Whether the caller holds `permission` on `resource_uri`, and why.
    pub fn check(&self, resource_uri: &str, permission: &str) -> AccessDecision {
        self.authorizer
            .authorize_user(&self.principal, resource_uri, permission)
    }

    /// The same as a result: a refusal is a 403 rejection, ready for `?` in a handler.
    pub fn require(&self, resource_uri: &str, permission: &str) -> Result<Grant, AuthRejection> {
        self.check(resource_uri, permission)
            .into_result()
            .map_err(|e| {
                tracing::debug!(
                    target: "portcullis::authz",
                    permission,
                    reason = %e,
                    "authorize_user refused the request"
                );
                AuthRejection::for_principal(e, &self.principal)
            })
    }

    /// Everything the caller may do ([`Authorizer::list`]).
    pub fn list(&self) -> super::AccessList {
        self.authorizer.list(&self.principal)
    }

    /// The caller's permissions on `resource_uri` ([`Authorizer::permissions`]).
    pub fn permissions(&self, resource_uri: &str) -> Vec<String> {
        self.authorizer.permissions(&self.principal, resource_uri)
    }

    /// Where the caller holds `permission` ([`Authorizer::resources`]).
    pub fn resources(&self, permission: &str) -> Vec<String> {
        self.authorizer.resources(&self.principal, permission)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authz {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal =
            <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        let authorizer = parts
            .extensions
            .get::<Authorizer>()
            .cloned()
            .ok_or_else(|| {
                AuthRejection::plain(AuthError::misuse(
                    "Authz extractor without an Authorizer in the request extensions",
                ))
            })?;
        Ok(Self::new(authorizer, principal))
    }
}
