//! [`AdminApi`]: `POST /admin/revoke` as an axum router (feature `admin-api`): callers
//! holding an admin role revoke tokens in the list the authenticator checks.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::{MemoryRevocations, RevocationRequest};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::{AuthError, AuthLayer, Principal};

/// The revocation list an [`AdminApi`] writes to: the same list the authenticator checks.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AdminStore {
    /// This process's own list.
    Memory(MemoryRevocations),
    /// The list every replica shares through Redis (feature `redis`).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis(super::RedisRevocations),
}

impl From<MemoryRevocations> for AdminStore {
    fn from(m: MemoryRevocations) -> Self {
        Self::Memory(m)
    }
}

#[cfg(feature = "redis")]
impl From<super::RedisRevocations> for AdminStore {
    fn from(r: super::RedisRevocations) -> Self {
        Self::Redis(r)
    }
}

/// `POST /admin/revoke`: revocations from callers holding an admin role, into the list the
/// authenticator checks, as an axum [`Router`] to merge into your app.
///
/// The router is guarded by your [`AuthLayer`] with
/// [`Policy::required_claims_only`](crate::Policy::required_claims_only): the same keys,
/// required claims and answers (and rejection hook) as the app; the caller must hold the
/// admin role itself (its token's roles; the policy's role inheritance does not apply).
/// The token comes from the layer's token sources, a `query:` source included when the
/// authenticator has one (give the endpoint a layer without it to keep admin tokens out of
/// URLs).
///
/// The request: `Content-Type: application/json` (else 415, so a browser's cross-site
/// form cannot send it) and a [`RevocationRequest`] body: `{"token": T}` (until its
/// `exp`), `{"jti": J, "iss": I}` or `{"sub": S, "iss": I}` (every token of S issued up to
/// now), optionally `"expires_in"` seconds (default 7 days). The answers: 200
/// `{"revoked", "until"}`; 202 with `"pending"` when Redis is away (the change holds on
/// this replica and is written when Redis is back); 400 `invalid_request` naming the
/// field; 401 and 403 as the layer answers them; 503 when Redis refused the change.
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use portcullis::revoke::{AdminApi, MemoryRevocations};
/// use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let secret = "0123456789abcdef0123456789abcdef";
/// let revoked = MemoryRevocations::new();
/// let auth = Authenticator::builder().hmac_secret(secret).revocations(revoked.clone()).build()?;
/// let layer = AuthLayer::new(auth, Policy::builder().allow("GET", "/me", ["*"]).build()?);
/// let app = Router::new()
///     .route("/me", get(|| async { "me" }))
///     .layer(layer.clone())
///     .merge(AdminApi::new(layer, revoked, "admin")?.into_router());
///
/// let signer = Signer::hmac(Algorithm::HS256, secret)?;
/// let ada = signer.sign(&serde_json::json!({"sub": "ada", "jti": "t-1", "exp": 4_000_000_000u64}))?;
/// let root = signer.sign(&serde_json::json!({"sub": "root", "role": "admin", "exp": 4_000_000_000u64}))?;
/// let revoke = |token: &str| http::Request::post("/admin/revoke")
///     .header("authorization", format!("Bearer {token}"))
///     .header("content-type", "application/json")
///     .body(Body::from(r#"{"jti": "t-1", "iss": ""}"#)).unwrap();
/// // Ada holds no admin role: 403, nothing revoked.
/// assert_eq!(app.clone().oneshot(revoke(&ada)).await?.status(), 403);
/// assert_eq!(app.clone().oneshot(revoke(&root)).await?.status(), 200);
/// let me = http::Request::get("/me").header("authorization", format!("Bearer {ada}")).body(Body::empty())?;
/// assert_eq!(app.oneshot(me).await?.status(), 401);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct AdminApi {
    layer: AuthLayer,
    store: AdminStore,
    role: String,
    default_issuer: Option<String>,
}

impl AdminApi {
    /// The endpoint for callers holding `role`, writing to `store` (give the authenticator
    /// the same store). An empty role is a configuration error.
    pub fn new(
        layer: AuthLayer,
        store: impl Into<AdminStore>,
        role: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let role = role.into().trim().to_owned();
        if role.is_empty() {
            return Err(ConfigError::new(
                ConfigErrorKind::Policy,
                "AdminApi role",
                "the admin role is empty; name the role that may revoke tokens",
            ));
        }
        Ok(Self {
            layer,
            store: store.into(),
            role,
            default_issuer: None,
        })
    }

    /// The issuer of a `jti` or subject revocation that names none (for a service with one
    /// issuer). Default: none, and such a request is a 400 naming `iss`.
    #[must_use]
    pub fn default_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.default_issuer = Some(issuer.into());
        self
    }

    /// The router: `POST /admin/revoke`, guarded as described on [`AdminApi`].
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let guard = self.layer.endpoint_guard();
        Router::new()
            .route("/admin/revoke", post(revoke))
            .with_state(Arc::new(self))
            .layer(guard)
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    crate::endpoint::json(status, "application/json", body)
}

fn bad_request(description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_request", "error_description": description}),
    )
}

/// The JSON member for a field of [`RevocationRequest`].
fn member(name: &'static str) -> &'static str {
    match name {
        "jti" => "`jti`",
        "sub" => "`sub`",
        "token" => "`token`",
        "iss" => "`iss`",
        _ => "`expires_in`",
    }
}

async fn revoke(
    State(api): State<Arc<AdminApi>>,
    caller: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !caller.has_role(&api.role) {
        tracing::warn!(
            subject = caller.subject().unwrap_or(""),
            role = %api.role,
            "POST /admin/revoke refused: the caller lacks the admin role"
        );
        return api
            .layer
            .rejection::<Body>(AuthError::forbidden())
            .into_response();
    }
    // JSON only: a browser's cross-site form (text/plain, urlencoded) cannot send it, so
    // a cookie-borne admin token cannot be used from another site.
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &json!({"error": "invalid_request", "error_description": "send the body as Content-Type: application/json"}),
        );
    }
    let ask: RevocationRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad_request(&format!(
                "the body must be a JSON object with one of `token`, `jti` (with `iss`) or `sub` (with `iss`), and optionally `expires_in`: {e}"
            ));
        }
    };
    let planned = match ask.plan(api.default_issuer.as_deref(), member) {
        Ok(p) => p,
        Err(e) => return bad_request(&e),
    };
    let by = caller.subject().unwrap_or("");
    let (what, until) = (planned.what().to_owned(), planned.until());
    let pending: Option<String> = match &api.store {
        AdminStore::Memory(m) => {
            m.revoke(planned.into_revocation());
            None
        }
        #[cfg(feature = "redis")]
        AdminStore::Redis(r) => match r.revoke(planned.into_revocation()).await {
            Ok(()) => None,
            Err(e) if e.is_pending() => Some(e.to_string()),
            Err(e) => {
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"error": "temporarily_unavailable", "error_description": e.to_string()}),
                );
            }
        },
    };
    tracing::info!(by, what = %what, until, pending = pending.is_some(), "revoked");
    match pending {
        None => json_response(StatusCode::OK, &json!({"revoked": what, "until": until})),
        Some(p) => json_response(
            StatusCode::ACCEPTED,
            &json!({"revoked": what, "until": until, "pending": p}),
        ),
    }
}
