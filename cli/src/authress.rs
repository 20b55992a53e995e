//! The Authress-compatible check API of `serve`, answered from the access records
//! (`authorize_user`), so the Authress SDKs' `authorize_user` and
//! `get_user_permissions_for_resource` work against portcullis unchanged.
//!
//! What the SDKs send and expect (read from the Python SDK `authress` 3.1.126, and the
//! Authress OpenAPI document):
//!
//! - `GET /v1/users/{userId}/resources/{resourceUri}/permissions/{permission}`: each path
//!   parameter percent-encoded whole (`quote(value, safe='')`: `/` is `%2F`, `:` is `%3A`),
//!   so it is decoded once here. 200 (no body): allowed. 404: the user lacks the permission
//!   (the Python SDK raises `NotFoundException`). 403: the caller may not check this user
//!   (`ForbiddenException`). 401: the caller's token was refused (`UnauthorizedException`).
//! - `GET /v1/users/{userId}/resources/{resourceUri}/permissions`: 200 with a
//!   `PermissionCollection`, `{"userId": .., "permissions": [{"action": .., "allow": true,
//!   "grant": false, "delegate": false}]}` as `application/links+json`; 404 when the user
//!   holds nothing on the resource.
//! - `Authorization: Bearer <token>`: the SDK's service-client token (EdDSA, minted from
//!   its access key) or a token given to `set_token`.
//!
//! The caller authenticates with the authenticator `serve` is configured with. Checking for
//! itself (its `sub` is the `userId`) is always allowed; checking another user needs the
//! `--authress-check-role` role, in its token's roles or given to it by the access records.
//! The decision asks the records about the user id alone (the records' groups count, the
//! caller's token does not), as Authress decides by user id.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use portcullis::{
    AccessReason, AuthError, AuthLayer, Authenticator, Authorizer, Policy, Principal, Subject,
};
use serde_json::json;

use crate::Fail;
use crate::forward::rejection;

/// The flags of the check API (a name of its own: clap groups flattened flags by it).
#[derive(clap::Args, Debug)]
pub(crate) struct AuthressFlags {
    /// The role a caller needs to check another user's permissions on the Authress check
    /// API (/v1/users/...): in its token's roles, or given to it by the access records.
    /// Checking one's own permissions needs none
    #[arg(
        long,
        value_name = "ROLE",
        env = "PORTCULLIS_AUTHRESS_CHECK_ROLE",
        default_value = "authress-check",
        help_heading = "Authress check API"
    )]
    authress_check_role: String,
}

/// What the handlers share.
struct Api {
    layer: AuthLayer,
    auth: Authenticator,
    policy: Policy,
    records: Authorizer,
    role: String,
}

fn json_response(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

fn problem(status: StatusCode, error: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        "application/json",
        json!({ "error": error, "message": message }).to_string(),
    )
}

/// A path that does not decode (invalid UTF-8 after percent-decoding, say).
fn bad_path(e: &PathRejection) -> Response<Body> {
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

impl Api {
    /// The verified caller, when it may ask about `user`.
    async fn caller(&self, headers: &HeaderMap, user: &str) -> Result<Principal, Response<Body>> {
        let caller = self.auth.authenticate_async(headers).await.map_err(|e| {
            tracing::debug!(reason = %e, "Authress check API: caller refused");
            rejection(&self.layer, e)
        })?;
        // The policy's required claims hold here as on `/auth`.
        self.policy
            .check_required_claims(&caller)
            .map_err(|e| rejection(&self.layer, e))?;
        if caller.subject() == Some(user) || caller.has_role(&self.role) {
            return Ok(caller);
        }
        let held = self.records.list(Subject::principal(&caller));
        if held.roles().contains(&self.role.as_str()) {
            return Ok(caller);
        }
        tracing::debug!(
            role = %self.role,
            "Authress check API: the caller may not check another user (it lacks the check role)"
        );
        Err(rejection(&self.layer, AuthError::forbidden()))
    }
}

async fn authorize(
    State(api): State<Arc<Api>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response<Body> {
    let Path((user, resource, permission)) = match path {
        Ok(p) => p,
        Err(e) => return bad_path(&e),
    };
    let caller = match api.caller(&headers, &user).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let decision = api
        .records
        .authorize_user(asked(&caller, &user), &resource, &permission);
    tracing::debug!(%decision, "Authress check API: authorize_user");
    match decision.reason() {
        AccessReason::Granted(_) => {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::OK;
            res
        }
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
    State(api): State<Arc<Api>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response<Body> {
    let Path((user, resource)) = match path {
        Ok(p) => p,
        Err(e) => return bad_path(&e),
    };
    let caller = match api.caller(&headers, &user).await {
        Ok(c) => c,
        Err(res) => return res,
    };
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
    json_response(
        StatusCode::OK,
        "application/links+json",
        json!({ "userId": user, "permissions": permissions }).to_string(),
    )
}

/// The check API's routes, answered from `records` for callers `auth` verifies.
pub(crate) fn routes(
    layer: AuthLayer,
    policy: Policy,
    records: Authorizer,
    flags: &AuthressFlags,
) -> Result<Router, Fail> {
    let role = flags.authress_check_role.trim();
    if role.is_empty() {
        return Err(Fail::usage(
            "--authress-check-role (PORTCULLIS_AUTHRESS_CHECK_ROLE) is empty; name the role that may check other users' permissions",
        ));
    }
    let api = Arc::new(Api {
        auth: layer.authenticator().clone(),
        layer,
        policy,
        records,
        role: role.to_owned(),
    });
    Ok(Router::new()
        .route(
            "/v1/users/{user}/resources/{resource}/permissions/{permission}",
            get(authorize),
        )
        .route(
            "/v1/users/{user}/resources/{resource}/permissions",
            get(permissions),
        )
        .with_state(api))
}
