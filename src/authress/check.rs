//! [`CheckApi`]: the Authress check API answered from access records (feature `authress`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde_json::json;

use crate::error::{ConfigError, ConfigErrorKind};
use crate::{AccessReason, AuthError, AuthLayer, Authorizer, Principal, Subject};

/// The role [`CheckApi`] asks of a caller that checks another user, unless told otherwise.
pub const DEFAULT_CHECK_ROLE: &str = "authress-check";

/// The Authress check API, answered from your access records ([`Authorizer`]), as an axum
/// [`Router`]: the Authress SDKs' `authorize_user` and
/// `get_user_permissions_for_resource` work against your service unchanged.
///
/// What the SDKs send and get (read from the Python SDK `authress` 3.1 and Authress's
/// OpenAPI document):
///
/// - `GET /v1/users/{userId}/resources/{resourceUri}/permissions/{permission}`: each path
///   parameter percent-encoded whole (the resource URI's `/` as `%2F`) and decoded once
///   here. 200 (no body): allowed. 404: the user lacks the permission. 403: the caller may
///   not check this user. 401: the caller's token was refused. 400: a resource URI or
///   permission the records cannot hold.
/// - `GET /v1/users/{userId}/resources/{resourceUri}/permissions`: 200 with
///   `{"userId", "permissions": [{"action", "allow": true, "grant": false, "delegate":
///   false}]}` as `application/links+json`; 404 when the user holds nothing there.
///
/// The caller authenticates through your [`AuthLayer`] with
/// [`Policy::required_claims_only`](crate::Policy::required_claims_only) (same keys,
/// required claims and answers). Checking for itself (its `sub` is the `userId`) is always
/// allowed; checking another user needs the check role (default
/// [`DEFAULT_CHECK_ROLE`]) in its token's roles or given to it by the records. The
/// decision asks the records about the user id alone, as Authress decides by user id.
///
/// ```
/// use axum::body::Body;
/// use portcullis::authress::CheckApi;
/// use portcullis::{Algorithm, AuthLayer, Authenticator, Authorizer, Policy, RecordSet, Signer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let secret = "0123456789abcdef0123456789abcdef";
/// let layer = AuthLayer::new(Authenticator::builder().hmac_secret(secret).build()?, Policy::builder().build()?);
/// let records = Authorizer::new(RecordSet::from_toml_str(r#"
///     [roles]
///     viewer = ["documents:read"]
///     [[records]]
///     id = "ada-docs"
///     [[records.statements]]
///     roles = ["viewer"]
///     resources = ["/documents"]
///     users = ["ada"]
/// "#)?);
/// let app = CheckApi::new(layer, records).into_router::<()>();
/// let token = Signer::hmac(Algorithm::HS256, secret)?
///     .sign(&serde_json::json!({"sub": "ada", "exp": 4_000_000_000u64}))?;
/// let check = |uri: &str| http::Request::get(uri)
///     .header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
/// let yes = "/v1/users/ada/resources/%2Fdocuments%2Fd1/permissions/documents:read";
/// assert_eq!(app.clone().oneshot(check(yes)).await?.status(), 200);
/// let no = "/v1/users/ada/resources/%2Fdocuments%2Fd1/permissions/documents:write";
/// assert_eq!(app.clone().oneshot(check(no)).await?.status(), 404);
/// // Ada may not check Bob: she lacks the check role.
/// let other = "/v1/users/bob/resources/%2Fdocuments%2Fd1/permissions/documents:read";
/// assert_eq!(app.oneshot(check(other)).await?.status(), 403);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct CheckApi {
    layer: AuthLayer,
    records: Authorizer,
    role: String,
}

impl CheckApi {
    /// The API for callers `layer` verifies, answered from `records`.
    pub fn new(layer: AuthLayer, records: Authorizer) -> Self {
        Self {
            layer,
            records,
            role: DEFAULT_CHECK_ROLE.to_owned(),
        }
    }

    /// The role a caller needs to check another user (default [`DEFAULT_CHECK_ROLE`]). An
    /// empty role is a configuration error.
    pub fn check_role(mut self, role: impl Into<String>) -> Result<Self, ConfigError> {
        let role = role.into().trim().to_owned();
        if role.is_empty() {
            return Err(ConfigError::new(
                ConfigErrorKind::Records,
                "CheckApi::check_role",
                "the check role is empty; name the role that may check other users' permissions",
            ));
        }
        self.role = role;
        Ok(self)
    }

    /// The router with both routes, guarded as described on [`CheckApi`].
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let guard = self.layer.endpoint_guard();
        Router::new()
            .route(
                "/v1/users/{user}/resources/{resource}/permissions/{permission}",
                get(authorize),
            )
            .route(
                "/v1/users/{user}/resources/{resource}/permissions",
                get(permissions),
            )
            .with_state(Arc::new(self))
            .layer(guard)
    }

    /// `None` when `caller` may ask about `user`, else the layer's 403.
    fn refusal(&self, caller: &Principal, user: &str) -> Option<Response> {
        if caller.subject() == Some(user) || caller.has_role(&self.role) {
            return None;
        }
        let held = self.records.list(Subject::principal(caller));
        if held.roles().contains(&self.role.as_str()) {
            return None;
        }
        tracing::debug!(
            role = %self.role,
            "Authress check API: the caller may not check another user (it lacks the check role)"
        );
        Some(
            self.layer
                .rejection::<Body>(AuthError::forbidden())
                .into_response(),
        )
    }
}

fn problem(status: StatusCode, error: &str, message: &str) -> Response {
    crate::endpoint::json(
        status,
        "application/json",
        &json!({ "error": error, "message": message }),
    )
}

/// A path that does not decode (invalid UTF-8 after percent-decoding, say).
fn bad_path(e: &PathRejection) -> Response {
    tracing::debug!(error = %e, "Authress check API: path refused");
    problem(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "The user id, resource URI or permission is not valid",
    )
}

/// The user asked about: the caller itself (with its issuer, so records that name users
/// of one issuer tell it from another issuer's user of the same id), or a user id the
/// caller names, which bare user ids in the records match.
fn asked<'a>(caller: &'a Principal, user: &'a str) -> Subject<'a> {
    match caller.subject() {
        Some(sub) if sub == user => Subject::user(user).with_issuer(caller.issuer().unwrap_or("")),
        _ => Subject::user(user),
    }
}

async fn authorize(
    State(api): State<Arc<CheckApi>>,
    caller: Principal,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Response {
    let Path((user, resource, permission)) = match path {
        Ok(p) => p,
        Err(e) => return bad_path(&e),
    };
    if let Some(res) = api.refusal(&caller, &user) {
        return res;
    }
    let decision = api
        .records
        .authorize_user(asked(&caller, &user), &resource, &permission);
    tracing::debug!(%decision, "Authress check API: authorize_user");
    match decision.reason() {
        AccessReason::Granted(_) => StatusCode::OK.into_response(),
        AccessReason::InvalidResource => problem(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The resource URI is not a valid path",
        ),
        AccessReason::InvalidPermission => problem(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The permission is not valid",
        ),
        // Authress answers 404 when the user lacks the permission.
        _ => problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "The user does not have the permission to the resource",
        ),
    }
}

async fn permissions(
    State(api): State<Arc<CheckApi>>,
    caller: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Path((user, resource)) = match path {
        Ok(p) => p,
        Err(e) => return bad_path(&e),
    };
    if let Some(res) = api.refusal(&caller, &user) {
        return res;
    }
    let held = api.records.permissions(asked(&caller, &user), &resource);
    if held.is_empty() {
        return problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "The user does not have any permissions to the resource",
        );
    }
    let permissions: Vec<_> = held
        .iter()
        .map(|action| json!({"action": action, "allow": true, "grant": false, "delegate": false}))
        .collect();
    crate::endpoint::json(
        StatusCode::OK,
        "application/links+json",
        &json!({ "userId": user, "permissions": permissions }),
    )
}
