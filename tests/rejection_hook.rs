//! One rejection story: with a rejection hook set, every rejection the crate produces for
//! a request that went through the layer has the hook's body and keeps the challenge:
//! the layer's own, the require layers', every extractor's, an `AuthError` a handler
//! returns, the forward-auth answers and the compatibility endpoints. Without a hook,
//! each keeps today's body.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use portcullis::forward::{ForwardAuth, ProxyKind};
use portcullis::layer::require_roles;
use portcullis::{AuthError, AuthLayer, Authorizer, Authz, Claims, Policy, Principal, RecordSet};
use serde_json::json;
use tower::ServiceExt;

use common::{NOW, hs_builder, hs256};

/// The hook: an RFC 9457 problem document, status and challenge kept.
fn problem(err: &AuthError, mut res: Response<Bytes>) -> Response<Bytes> {
    *res.body_mut() = Bytes::from(format!(
        r#"{{"type":"about:blank","status":{},"detail":"{}"}}"#,
        err.status().as_u16(),
        err.message()
    ));
    res.headers_mut()
        .insert(CONTENT_TYPE, "application/problem+json".parse().unwrap());
    res
}

fn layer(hook: bool) -> AuthLayer {
    let policy = Policy::builder()
        .public_prefix("/public")
        .allow("GET", "/me", ["*"])
        .allow("GET", "/payroll", ["*"])
        .allow("GET", "/claims", ["*"])
        .allow("GET", "/doc", ["*"])
        .allow("GET", "/handler", ["*"])
        .allow("GET", "/ais", ["*"])
        .allow("GET", "/login", ["*"])
        .build()
        .unwrap();
    let layer = AuthLayer::new(hs_builder().build().unwrap(), policy);
    if hook {
        layer.on_rejection(problem)
    } else {
        layer
    }
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct NeedsTenant {
    tenant: String,
}

fn app(layer: AuthLayer) -> Router {
    let records = Authorizer::new(RecordSet::empty());
    Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { p.subject().unwrap_or("").to_owned() }),
        )
        .route(
            "/payroll",
            get(|| async { "payroll" }).route_layer(require_roles(["hr"])),
        )
        .route(
            "/public/whoami",
            get(|p: Principal| async move { p.subject().unwrap_or("").to_owned() }),
        )
        .route("/claims", get(|_: Claims<NeedsTenant>| async { "tenant" }))
        .route(
            "/doc",
            get(|a: Authz| async move { a.require("/docs/1", "docs:read").map(|_| "doc") }),
        )
        .route(
            "/handler",
            get(|| async { Err::<&'static str, _>(AuthError::forbidden()) }),
        )
        .route(
            "/login",
            get(|| async {
                // A handler that turns a rejection into a redirect keeps its answer.
                use axum::response::IntoResponse;
                let mut res = AuthError::forbidden().into_response();
                *res.status_mut() = http::StatusCode::FOUND;
                res.headers_mut()
                    .insert("location", "/signin".parse().unwrap());
                res
            }),
        )
        .layer(axum::Extension(records))
        .layer(layer)
}

/// The same app with an AIStore handler: a token without AIStore permissions reading a
/// bucket.
#[cfg(feature = "aistore")]
fn ais_app(layer: AuthLayer) -> Router {
    use portcullis::aistore::{Access, AisAuthz, Bucket};
    Router::new()
        .route(
            "/ais",
            get(|ais: AisAuthz| async move {
                ais.require("c1", Some(&Bucket::new("photos")), Access::GET)
                    .map(|()| "object")
            }),
        )
        .layer(layer)
}

fn token() -> String {
    hs256()
        .sign(&json!({"sub": "ada", "role": "staff", "exp": NOW + 3600}))
        .unwrap()
}

struct Seen {
    status: u16,
    challenge: Option<String>,
    content_type: String,
    body: String,
}

async fn seen(res: Response<Body>) -> Seen {
    let status = res.status().as_u16();
    let header = |n| {
        res.headers()
            .get(n)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let challenge = header("www-authenticate");
    let content_type = header("content-type").unwrap_or_default();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Seen {
        status,
        challenge,
        content_type,
        body,
    }
}

/// (source, request path, with the token, status, challenge).
const ROUTED: &[(&str, &str, bool, u16, Option<&str>)] = &[
    (
        "the layer",
        "/me",
        false,
        401,
        Some(r#"Bearer realm="api""#),
    ),
    (
        "require_roles",
        "/payroll",
        true,
        403,
        Some(r#"Bearer realm="api", error="insufficient_scope""#),
    ),
    (
        "the Principal extractor",
        "/public/whoami",
        false,
        401,
        Some(r#"Bearer realm="api""#),
    ),
    (
        "the Claims extractor",
        "/claims",
        true,
        401,
        Some(r#"Bearer realm="api", error="invalid_token""#),
    ),
    (
        "the Authz extractor",
        "/doc",
        true,
        403,
        Some(r#"Bearer realm="api", error="insufficient_scope""#),
    ),
    (
        "an AuthError a handler returns",
        "/handler",
        true,
        403,
        Some(r#"Bearer realm="api", error="insufficient_scope""#),
    ),
];

#[tokio::test]
async fn every_rejection_of_a_routed_request_goes_through_the_hook() {
    let tok = token();
    for hook in [true, false] {
        let app = app(layer(hook));
        for &(source, path, with_token, status, challenge) in ROUTED {
            let mut req = Request::get(path);
            if with_token {
                req = req.header("authorization", format!("Bearer {tok}"));
            }
            let res = app
                .clone()
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let got = seen(res).await;
            assert_eq!(got.status, status, "{source} (hook {hook})");
            assert_eq!(
                got.challenge.as_deref(),
                challenge,
                "{source} (hook {hook})"
            );
            if hook {
                assert_eq!(got.content_type, "application/problem+json", "{source}");
                assert!(
                    got.body
                        .starts_with(&format!(r#"{{"type":"about:blank","status":{status},"#)),
                    "{source}: {}",
                    got.body
                );
            } else {
                assert_eq!(got.content_type, "application/json", "{source}");
                assert!(
                    got.body.starts_with(r#"{"error":""#),
                    "{source}: {}",
                    got.body
                );
            }
        }
    }
}

#[cfg(feature = "aistore")]
#[tokio::test]
async fn the_aistore_extractor_goes_through_the_hook() {
    for hook in [true, false] {
        let req = Request::get("/ais")
            .header("authorization", format!("Bearer {}", token()))
            .body(Body::empty())
            .unwrap();
        let got = seen(ais_app(layer(hook)).oneshot(req).await.unwrap()).await;
        assert_eq!(got.status, 403, "hook {hook}");
        assert_eq!(
            got.challenge.as_deref(),
            Some(r#"Bearer realm="api", error="insufficient_scope""#)
        );
        let want = if hook {
            "application/problem+json"
        } else {
            "application/json"
        };
        assert_eq!(got.content_type, want);
    }
}

#[tokio::test]
async fn a_rejection_a_handler_turned_into_a_redirect_is_left_alone() {
    let req = Request::get("/login")
        .header("authorization", format!("Bearer {}", token()))
        .body(Body::empty())
        .unwrap();
    let res = app(layer(true)).oneshot(req).await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "/signin");
}

#[tokio::test]
async fn forward_auth_answers_go_through_the_hook() {
    for hook in [true, false] {
        let forward = ForwardAuth::new(layer(hook), ProxyKind::Caddy);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-method", "GET".parse().unwrap());
        headers.insert("x-forwarded-uri", "/me".parse().unwrap());
        let res = forward.decide(&headers).await.map(Body::new);
        let got = seen(res).await;
        assert_eq!(got.status, 401);
        assert_eq!(got.challenge.as_deref(), Some(r#"Bearer realm="api""#));
        if hook {
            assert_eq!(got.content_type, "application/problem+json");
        } else {
            assert_eq!(
                got.body,
                r#"{"error":"missing_token","message":"Missing token"}"#
            );
        }
    }
}

#[cfg(feature = "admin-api")]
#[tokio::test]
async fn the_compatibility_endpoints_answer_through_the_hook() {
    use portcullis::revoke::{AdminApi, MemoryRevocations};
    for hook in [true, false] {
        let app: Router = AdminApi::new(layer(hook), MemoryRevocations::new(), "admin")
            .unwrap()
            .into_router();
        let req = Request::post("/admin/revoke")
            .header("authorization", format!("Bearer {}", token()))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"jti":"x","iss":""}"#))
            .unwrap();
        let got = seen(app.oneshot(req).await.unwrap()).await;
        assert_eq!(got.status, 403, "hook {hook}");
        assert_eq!(
            got.challenge.as_deref(),
            Some(r#"Bearer realm="api", error="insufficient_scope""#)
        );
        let want = if hook {
            "application/problem+json"
        } else {
            "application/json"
        };
        assert_eq!(got.content_type, want);
    }
}

#[tokio::test]
async fn without_the_layer_an_extractor_answers_by_the_table_alone() {
    // No layer in front: the hook cannot be reached (the docs say so); the extractor's
    // default answer stands.
    let app = Router::new().route(
        "/me",
        get(|p: Principal| async move { p.subject().unwrap_or("").to_owned() }),
    );
    let res = app
        .oneshot(Request::get("/me").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let got = seen(res).await;
    assert_eq!(got.status, 500);
    assert_eq!(got.content_type, "application/json");
}
