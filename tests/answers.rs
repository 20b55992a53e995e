//! The answer table, pinned. One row per way of reaching each
//! `AuthErrorKind`: exact status, exact `WWW-Authenticate` (or none), exact JSON body,
//! `content-type: application/json`, the `AuthError` in the response extensions, and the
//! gRPC code of the kind.

mod common;

use std::collections::HashSet;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::{AuthError, AuthErrorKind, AuthLayer, GrpcCode, Policy, Principal};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{NOW, claims, hs_builder, hs256};
use portcullis::revoke::{RevocationStore, TokenRef, Verdict};

/// Revokes the token whose `jti` is `revoked`; cannot tell for `jti` `unknown` (a shared
/// list too old to check, failing closed).
struct GoldenRevocations;

impl RevocationStore for GoldenRevocations {
    fn check(&self, token: &TokenRef<'_>) -> Verdict {
        match token.jti() {
            Some("revoked") => Verdict::Revoked,
            Some("unknown") => Verdict::Unavailable,
            _ => Verdict::Valid,
        }
    }
}

/// Every kind of the table; the golden table must reach each one.
const ALL_KINDS: [AuthErrorKind; 6] = [
    AuthErrorKind::MissingCredentials,
    AuthErrorKind::InvalidRequest,
    AuthErrorKind::InvalidToken,
    AuthErrorKind::Forbidden,
    AuthErrorKind::KeysUnavailable,
    AuthErrorKind::Misuse,
];

/// The guarded app: FEDn's REST policy, `/me` for any token, and `/keys` whose handler
/// answers with `AuthError::keys_unavailable()` (as a key-fetching source would).
fn guarded() -> Router {
    let policy = Policy::fedn_rest()
        .allow("GET", "/me", ["*"])
        .allow("GET", "/keys", ["*"])
        .build()
        .unwrap();
    Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { p.subject().unwrap_or_default().to_owned() }),
        )
        .route("/api/v1/clients/", get(|| async { "[]" }))
        .route(
            "/keys",
            get(|| async { Err::<String, _>(AuthError::keys_unavailable()) }),
        )
        .layer(
            AuthLayer::new(
                hs_builder().revocations(GoldenRevocations).build().unwrap(),
                policy,
            )
            .attach_errors(),
        )
}

/// An app that uses the `Principal` extractor with no layer in front: misuse.
fn unguarded() -> Router {
    Router::new().route(
        "/me",
        get(|p: Principal| async move { p.subject().unwrap_or_default().to_owned() }),
    )
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    challenge: Option<String>,
    body: Value,
    error: Option<AuthError>,
}

async fn call(app: &Router, path: &str, authz: Option<&str>) -> Answer {
    let mut req = Request::get(path);
    if let Some(a) = authz {
        req = req.header("authorization", a);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (status, content_type, challenge) = (
        res.status().as_u16(),
        header("content-type"),
        header("www-authenticate"),
    );
    let error = res.extensions().get::<AuthError>().cloned();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{path}: body is not JSON: {bytes:?}"));
    Answer {
        status,
        content_type,
        challenge,
        body,
        error,
    }
}

struct Row {
    name: &'static str,
    kind: AuthErrorKind,
    path: &'static str,
    authz: Option<String>,
    /// Whether the layer itself (not the handler or an extractor) answers.
    by_layer: bool,
    status: u16,
    challenge: Option<&'static str>,
    body: Value,
}

fn bearer(c: &Value) -> Option<String> {
    Some(format!("Bearer {}", hs256().sign(c).unwrap()))
}

fn rows() -> Vec<Row> {
    use AuthErrorKind::*;
    let row =
        |name, kind, path, authz, by_layer, status, challenge, code: &str, message: &str| Row {
            name,
            kind,
            path,
            authz,
            by_layer,
            status,
            challenge,
            body: json!({"error": code, "message": message}),
        };
    let mut expired = claims("client");
    expired["exp"] = json!(NOW - 3600);
    let mut revoked = claims("client");
    revoked["jti"] = json!("revoked");
    let mut unknown = claims("client");
    unknown["jti"] = json!("unknown");
    vec![
        row(
            "e1_no_header",
            MissingCredentials,
            "/me",
            None,
            true,
            401,
            Some(r#"Bearer realm="api""#),
            "missing_token",
            "Missing token",
        ),
        row(
            "e2_other_scheme",
            MissingCredentials,
            "/me",
            Some("Basic dXNlcjpwYXNz".into()),
            true,
            401,
            Some(r#"Bearer realm="api""#),
            "missing_token",
            "Invalid token scheme, expected Bearer",
        ),
        row(
            "e4_scheme_alone",
            InvalidRequest,
            "/me",
            Some("Bearer".into()),
            true,
            400,
            Some(r#"Bearer realm="api", error="invalid_request""#),
            "invalid_request",
            "Invalid request",
        ),
        row(
            "r4_dot_segment",
            InvalidRequest,
            "/api/%2e%2e/me",
            bearer(&claims("admin")),
            true,
            400,
            Some(r#"Bearer realm="api", error="invalid_request""#),
            "invalid_request",
            "Invalid request path",
        ),
        row(
            "f1_not_a_jwt",
            InvalidToken,
            "/me",
            Some("Bearer x.y.z".into()),
            true,
            401,
            Some(r#"Bearer realm="api", error="invalid_token""#),
            "invalid_token",
            "Invalid token",
        ),
        row(
            "c1_expired",
            InvalidToken,
            "/me",
            bearer(&expired),
            true,
            401,
            Some(r#"Bearer realm="api", error="invalid_token""#),
            "invalid_token",
            "Token expired",
        ),
        row(
            "revoked",
            InvalidToken,
            "/me",
            bearer(&revoked),
            true,
            401,
            Some(r#"Bearer realm="api", error="invalid_token""#),
            "invalid_token",
            "Token revoked",
        ),
        row(
            "r2_forbidden",
            Forbidden,
            "/api/v1/clients/",
            bearer(&claims("client")),
            true,
            403,
            Some(r#"Bearer realm="api", error="insufficient_scope""#),
            "insufficient_scope",
            "Insufficient permissions",
        ),
        row(
            "keys_unavailable",
            KeysUnavailable,
            "/keys",
            bearer(&claims("client")),
            false,
            503,
            None,
            "temporarily_unavailable",
            "Authentication keys unavailable",
        ),
        row(
            "revocation_list_unavailable",
            KeysUnavailable,
            "/me",
            bearer(&unknown),
            true,
            503,
            None,
            "temporarily_unavailable",
            "Revocation list unavailable",
        ),
        row(
            "misuse_extractor_without_layer",
            Misuse,
            "/me",
            None,
            false,
            500,
            None,
            "server_error",
            "Internal error",
        ),
    ]
}

#[tokio::test]
async fn golden_answer_table() {
    let (app, bare) = (guarded(), unguarded());
    let mut seen = HashSet::new();
    for row in rows() {
        let name = row.name;
        let target = if row.kind == AuthErrorKind::Misuse {
            &bare
        } else {
            &app
        };
        let got = call(target, row.path, row.authz.as_deref()).await;
        assert_eq!(got.status, row.status, "{name}: status; body {}", got.body);
        assert_eq!(
            got.challenge.as_deref(),
            row.challenge,
            "{name}: WWW-Authenticate"
        );
        assert_eq!(got.body, row.body, "{name}: body");
        assert_eq!(
            got.content_type.as_deref(),
            Some("application/json"),
            "{name}: content-type"
        );

        // The layer attaches its error for logging layers; the extractor and the handler
        // answers do too, and when they do it must be the same row.
        let err = match got.error {
            Some(err) => err,
            None if row.by_layer => panic!("{name}: no AuthError in the response extensions"),
            None => {
                seen.insert(row.kind);
                continue;
            }
        };
        assert_eq!(err.kind(), row.kind, "{name}: kind");
        assert_eq!(
            err.status().as_u16(),
            row.status,
            "{name}: AuthError::status"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&err.body()).unwrap(),
            row.body,
            "{name}: AuthError::body"
        );
        assert_eq!(
            err.message(),
            row.body["message"],
            "{name}: AuthError::message"
        );
        assert_eq!(
            err.www_authenticate("Bearer", "api").as_deref(),
            row.challenge,
            "{name}: AuthError::www_authenticate"
        );
        seen.insert(row.kind);
    }
    for kind in ALL_KINDS {
        assert!(seen.contains(&kind), "the table never reaches {kind:?}");
    }
}

#[tokio::test]
async fn golden_expired_flag() {
    let mut expired = claims("client");
    expired["exp"] = json!(NOW - 3600);
    let got = call(&guarded(), "/me", bearer(&expired).as_deref()).await;
    assert!(got.error.unwrap().is_expired());
    let got = call(&guarded(), "/me", Some("Bearer x.y.z")).await;
    assert!(!got.error.unwrap().is_expired());
}

#[test]
fn golden_kind_table() {
    // (kind, HTTP status, gRPC code, gRPC number, body `error`)
    let table = [
        (
            AuthErrorKind::MissingCredentials,
            StatusCode::UNAUTHORIZED,
            GrpcCode::Unauthenticated,
            16,
            "missing_token",
        ),
        (
            AuthErrorKind::InvalidRequest,
            StatusCode::BAD_REQUEST,
            GrpcCode::Unauthenticated,
            16,
            "invalid_request",
        ),
        (
            AuthErrorKind::InvalidToken,
            StatusCode::UNAUTHORIZED,
            GrpcCode::Unauthenticated,
            16,
            "invalid_token",
        ),
        (
            AuthErrorKind::Forbidden,
            StatusCode::FORBIDDEN,
            GrpcCode::PermissionDenied,
            7,
            "insufficient_scope",
        ),
        (
            AuthErrorKind::KeysUnavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            GrpcCode::Unavailable,
            14,
            "temporarily_unavailable",
        ),
        (
            AuthErrorKind::Misuse,
            StatusCode::INTERNAL_SERVER_ERROR,
            GrpcCode::Internal,
            13,
            "server_error",
        ),
    ];
    assert_eq!(table.len(), ALL_KINDS.len());
    for (kind, status, grpc, number, code) in table {
        assert_eq!(kind.status(), status, "{kind:?}");
        assert_eq!(kind.grpc_code(), grpc, "{kind:?}");
        assert_eq!(grpc as i32, number, "{kind:?}");
        assert_eq!(kind.code(), code, "{kind:?}");
    }
    // The public constructors land on their rows.
    let errors = [
        (AuthError::keys_unavailable(), GrpcCode::Unavailable, 503),
        (
            AuthError::revocation_unavailable(),
            GrpcCode::Unavailable,
            503,
        ),
        (AuthError::forbidden(), GrpcCode::PermissionDenied, 403),
        (AuthError::misuse("test"), GrpcCode::Internal, 500),
    ];
    for (err, grpc, status) in errors {
        assert_eq!(err.grpc_code(), grpc, "{err:?}");
        assert_eq!(err.status().as_u16(), status, "{err:?}");
    }
    assert_eq!(
        AuthError::keys_unavailable().www_authenticate("Bearer", "api"),
        None
    );
    assert_eq!(
        AuthError::misuse("test").www_authenticate("Bearer", "api"),
        None
    );
    assert_eq!(
        AuthError::revocation_unavailable().www_authenticate("Bearer", "api"),
        None
    );
    assert_eq!(
        AuthError::revocation_unavailable().message(),
        "Revocation list unavailable"
    );
    assert_eq!(
        AuthError::forbidden().www_authenticate("Token", "fedn"),
        Some(r#"Token realm="fedn", error="insufficient_scope""#.to_owned())
    );
}

#[tokio::test]
async fn golden_grpc_code_of_each_layer_rejection() {
    let app = guarded();
    for row in rows() {
        let target = if row.kind == AuthErrorKind::Misuse {
            unguarded()
        } else {
            app.clone()
        };
        let got = call(&target, row.path, row.authz.as_deref()).await;
        let Some(err) = got.error else {
            assert!(
                !row.by_layer,
                "{}: no AuthError in the response extensions",
                row.name
            );
            continue;
        };
        let want = match row.status {
            400 | 401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            503 => GrpcCode::Unavailable,
            500 => GrpcCode::Internal,
            other => panic!("{}: unexpected status {other}", row.name),
        };
        assert_eq!(err.grpc_code(), want, "{}", row.name);
    }
}
