//! RFC 9728 through the layer: every challenge of a layer with
//! `AuthLayer::resource_metadata` names the metadata (the layer's own 401 and 400, a
//! `require_roles` 403 behind it, an `AuthError` a handler returns, the rejection hook's
//! input), the decisions are those of the same layer without it, and the router serves the
//! document at both well-known paths.
#![cfg(feature = "resource-metadata")]

use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::layer::require_roles;
use portcullis::resource_metadata::{ResourceMetadata, WELL_KNOWN_PATH};
use portcullis::{AuthError, AuthLayer, Authenticator, Policy, Signer};
use serde_json::json;
use tower::ServiceExt;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const URL: &str = "https://api.example.com/.well-known/oauth-protected-resource/mcp";

fn auth() -> Authenticator {
    Authenticator::builder()
        .hmac_secret(SECRET)
        .issuer("https://id.example.com")
        .audience("https://api.example.com/mcp")
        .build()
        .unwrap()
}

fn token(role: &str) -> String {
    let t = Signer::hmac(portcullis::Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&json!({
            "sub": "ada", "role": role, "iss": "https://id.example.com",
            "aud": "https://api.example.com/mcp", "exp": 4_000_000_000u64,
        }))
        .unwrap();
    format!("Bearer {t}")
}

fn app(layer: AuthLayer) -> axum::Router {
    axum::Router::new()
        .route("/tools", get(|| async { "tools" }))
        .route(
            "/admin",
            get(|| async { "admin" }).layer(require_roles(["admin"])),
        )
        .route(
            "/refuse",
            get(|| async { Err::<&str, _>(AuthError::forbidden()) }),
        )
        .layer(layer)
}

async fn call(app: &axum::Router, path: &str, bearer: Option<&str>) -> http::Response<Body> {
    let mut req = Request::get(path);
    if let Some(b) = bearer {
        req = req.header("authorization", b);
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn challenge(res: &http::Response<Body>) -> Option<String> {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_challenge_names_the_metadata_and_decisions_do_not_change() {
    let auth = auth();
    let metadata = ResourceMetadata::builder(&auth).build().unwrap();
    let policy = || {
        Policy::builder()
            .allow("GET", "/tools", ["client", "admin"])
            .allow("GET", "/admin", ["client", "admin"])
            .allow("GET", "/refuse", ["client"])
            .build()
            .unwrap()
    };
    let plain = app(AuthLayer::new(auth.clone(), policy()));
    let named = app(AuthLayer::new(auth, policy()).resource_metadata(&metadata));
    let client = token("client");
    let cases: [(&str, Option<&str>, StatusCode, Option<&str>); 6] = [
        ("/tools", Some(&client), StatusCode::OK, None),
        ("/tools", None, StatusCode::UNAUTHORIZED, Some("")),
        (
            "/tools",
            Some("Bearer a,b"),
            StatusCode::BAD_REQUEST,
            Some(r#", error="invalid_request""#),
        ),
        (
            "/tools",
            Some("Bearer x.y.z"),
            StatusCode::UNAUTHORIZED,
            Some(r#", error="invalid_token""#),
        ),
        // A require layer behind the layer, and a handler's own AuthError.
        (
            "/admin",
            Some(&client),
            StatusCode::FORBIDDEN,
            Some(r#", error="insufficient_scope""#),
        ),
        (
            "/refuse",
            Some(&client),
            StatusCode::FORBIDDEN,
            Some(r#", error="insufficient_scope""#),
        ),
    ];
    for (path, bearer, status, error) in cases {
        let without = call(&plain, path, bearer).await;
        let with = call(&named, path, bearer).await;
        assert_eq!(without.status(), status, "{path} {bearer:?}");
        assert_eq!(with.status(), status, "{path} {bearer:?}");
        let Some(error) = error else {
            assert_eq!(challenge(&with), None);
            continue;
        };
        assert_eq!(
            challenge(&without).as_deref(),
            Some(format!(r#"Bearer realm="api"{error}"#).as_str()),
            "{path} {bearer:?}"
        );
        assert_eq!(
            challenge(&with).as_deref(),
            Some(format!(r#"Bearer realm="api"{error}, resource_metadata="{URL}""#).as_str()),
            "{path} {bearer:?}"
        );
    }
}

#[tokio::test]
async fn the_rejection_hook_starts_from_the_challenge_with_the_metadata() {
    let auth = auth();
    let metadata = ResourceMetadata::builder(&auth).build().unwrap();
    let layer = AuthLayer::new(auth, Policy::builder().build().unwrap())
        .resource_metadata(&metadata)
        .on_rejection(|_err, mut res| {
            let seen = res.headers()["www-authenticate"].clone();
            res.headers_mut().insert("x-seen", seen);
            res
        });
    let res = call(&app(layer), "/tools", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let want = format!(r#"Bearer realm="api", resource_metadata="{URL}""#);
    assert_eq!(res.headers()["x-seen"], want.as_str());
    assert_eq!(res.headers()["www-authenticate"], want.as_str());
}

#[tokio::test]
async fn the_router_serves_the_document_at_both_well_known_paths() {
    let metadata = ResourceMetadata::builder(&auth())
        .scopes_supported(["mcp:tools"])
        .build()
        .unwrap();
    assert_eq!(metadata.url(), URL);
    let router: axum::Router = metadata.clone().into_router();
    for path in [metadata.path(), WELL_KNOWN_PATH] {
        let res = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            json!({
                "resource": "https://api.example.com/mcp",
                "authorization_servers": ["https://id.example.com"],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["mcp:tools"],
            })
        );
    }
    let res = router
        .oneshot(
            Request::get("/.well-known/oauth-protected-resource/other")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
