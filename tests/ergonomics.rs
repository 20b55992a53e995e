//! What axum and tonic users reach for: a rejection hook, per-route requirements,
//! authentication on public routes, the Principal extractor there, typed-claims errors,
//! CORS preflights, unknown routes, and token sources. Real requests through the layer.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use common::*;
use http::{Method, Request, header};
use portcullis::layer::{PublicAuth, require_claim, require_roles};
use portcullis::{
    AuthError, AuthLayer, Authenticator, Claims, EnvConfig, Policy, Principal, TokenSource,
};
use serde_json::{Value, json};
use tower::ServiceExt;

fn token(extra: Value) -> String {
    let mut c = json!({"sub": "ada", "exp": NOW + 600});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    hs256().sign(&c).unwrap()
}

async fn call(app: &Router, req: Request<Body>) -> (u16, http::HeaderMap, Value) {
    split(app.clone().oneshot(req).await.unwrap()).await
}

fn get_with(path: &str, auth: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(t) = auth {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    r.body(Body::empty()).unwrap()
}

// 1. A rejection hook gives 401/403 our own body, keeps the challenge and the AuthError.
#[tokio::test]
async fn rejection_hook_reshapes_the_body_and_keeps_the_challenge() {
    let layer = AuthLayer::new(
        hs_builder().build().unwrap(),
        Policy::builder()
            .allow("GET", "/admin", ["admin"])
            .build()
            .unwrap(),
    )
    .attach_errors()
    .on_rejection(|err, mut res| {
        *res.body_mut() = Bytes::from(
            json!({"problem": err.kind().code(), "status": err.status().as_u16()}).to_string(),
        );
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            "application/problem+json".parse().unwrap(),
        );
        res
    });
    let app = Router::new()
        .route("/admin", get(|| async { "ok" }))
        .layer(layer);
    let res = app.clone().oneshot(get_with("/admin", None)).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(res.extensions().get::<AuthError>().is_some());
    let (_, _, body) = split(res).await;
    assert_eq!(body, json!({"problem": "missing_token", "status": 401}));
    let got = call(
        &app,
        get_with("/admin", Some(&token(json!({"role": "user"})))),
    )
    .await;
    assert_eq!(got.0, 403);
    assert_eq!(
        got.1["www-authenticate"],
        r#"Bearer realm="api", error="insufficient_scope""#
    );
    assert_eq!(
        got.2,
        json!({"problem": "insufficient_scope", "status": 403})
    );
    // Removing the challenge is possible on purpose.
    let app = Router::new().route("/x", get(|| async { "ok" })).layer(
        AuthLayer::new(
            hs_builder().build().unwrap(),
            Policy::builder().build().unwrap(),
        )
        .on_rejection(|_, mut res| {
            res.headers_mut().remove(header::WWW_AUTHENTICATE);
            res
        }),
    );
    let got = call(&app, get_with("/x", None)).await;
    assert_eq!(got.0, 401);
    assert!(got.1.get("www-authenticate").is_none());
}

// 2. Per-route roles reuse the verified principal.
#[tokio::test]
async fn per_route_roles_and_claims_reuse_the_principal() {
    let policy = Policy::builder()
        .allow("*", "/reports/**", ["*"])
        .build()
        .unwrap();
    let app = Router::new()
        .route("/reports/summary", get(|| async { "summary" }))
        .route(
            "/reports/payroll",
            get(|| async { "payroll" }).route_layer(require_roles(["hr", "admin"])),
        )
        .route(
            "/reports/acme",
            get(|| async { "acme" }).route_layer(require_claim("org.id", "acme")),
        )
        .layer(AuthLayer::new(hs_builder().build().unwrap(), policy));
    let staff = token(json!({"role": "staff", "org": {"id": "acme"}}));
    let hr = token(json!({"role": ["staff", "hr"], "org": {"id": "other"}}));
    assert_eq!(
        call(&app, get_with("/reports/summary", Some(&staff)))
            .await
            .0,
        200
    );
    let got = call(&app, get_with("/reports/payroll", Some(&staff))).await;
    assert_rejected(
        &got,
        403,
        Some(r#"Bearer realm="api", error="insufficient_scope""#),
        "insufficient_scope",
        "Insufficient permissions",
    );
    assert_eq!(
        call(&app, get_with("/reports/payroll", Some(&hr))).await.0,
        200
    );
    assert_eq!(
        call(&app, get_with("/reports/acme", Some(&staff))).await.0,
        200
    );
    assert_eq!(
        call(&app, get_with("/reports/acme", Some(&hr))).await.0,
        403
    );
    // Without a token the outer layer answers first.
    assert_eq!(call(&app, get_with("/reports/payroll", None)).await.0, 401);
    // Without any layer in front: misuse.
    let bare = Router::new().route(
        "/p",
        get(|| async { "p" }).route_layer(require_roles(["hr"])),
    );
    assert_eq!(call(&bare, get_with("/p", None)).await.0, 500);
}

// 3 and 4. Public routes: Option<Principal> filled by a valid token when asked; the
// Principal extractor answers 401 with the challenge there.
#[tokio::test]
async fn public_routes_see_a_valid_token_when_asked_and_principal_is_401() {
    let routes = || {
        Router::new()
            .route(
                "/docs/hello",
                get(|p: Option<Principal>| async move {
                    axum::Json(
                        json!({"sub": p.as_ref().and_then(|p| p.subject().map(str::to_owned))}),
                    )
                }),
            )
            .route(
                "/docs/me",
                get(|p: Principal| async move { p.subject().unwrap_or("").to_owned() }),
            )
    };
    let policy = || Policy::builder().public_prefix("/docs").build().unwrap();
    let valid = token(json!({}));
    // Ignore (the default): the token is never looked at.
    let app = routes().layer(AuthLayer::new(hs_builder().build().unwrap(), policy()));
    assert_eq!(
        call(&app, get_with("/docs/hello", Some(&valid))).await.2,
        json!({"sub": null})
    );
    let got = call(&app, get_with("/docs/me", None)).await;
    assert_rejected(
        &got,
        401,
        Some(r#"Bearer realm="api""#),
        "missing_token",
        "Missing token",
    );
    // IfValid: a valid token fills it, an invalid one is ignored.
    let app = routes().layer(
        AuthLayer::new(hs_builder().build().unwrap(), policy()).public_auth(PublicAuth::IfValid),
    );
    assert_eq!(
        call(&app, get_with("/docs/hello", Some(&valid))).await.2,
        json!({"sub": "ada"})
    );
    assert_eq!(call(&app, get_with("/docs/me", Some(&valid))).await.0, 200);
    let got = call(&app, get_with("/docs/hello", Some("garbage.token.here"))).await;
    assert_eq!((got.0, got.2), (200, json!({"sub": null})));
    // Verify: an invalid one is refused.
    let app = routes().layer(
        AuthLayer::new(hs_builder().build().unwrap(), policy()).public_auth(PublicAuth::Verify),
    );
    let got = call(&app, get_with("/docs/hello", Some("garbage.token.here"))).await;
    assert_eq!(got.0, 401);
    assert_eq!(call(&app, get_with("/docs/hello", None)).await.0, 200);
    // The same from the environment.
    let layer = EnvConfig::from_lookup(|n| match n {
        "FEDN_JWT_SECRET_KEY" => Some(SECRET.into()),
        "FEDN_AUTH_WHITELIST_URL_PREFIX" => Some("/docs".into()),
        "PORTCULLIS_PUBLIC_AUTH" => Some("optional".into()),
        _ => None,
    })
    .unwrap()
    .map_authenticator(|a| a.clock(|| NOW))
    .build_layer()
    .unwrap();
    let app = routes().layer(layer);
    assert_eq!(
        call(&app, get_with("/docs/hello", Some(&valid))).await.2,
        json!({"sub": "ada"})
    );
}

// 5. Claims<T> that do not fit name the field in the error detail.
#[tokio::test]
async fn typed_claims_mismatch_names_the_field() {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Mine {
        sub: String,
        tenant: Tenant,
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Tenant {
        id: u64,
    }
    let app = Router::new()
        .route("/me", get(|Claims(m): Claims<Mine>| async move { m.sub }))
        .layer(AuthLayer::new(
            hs_builder().build().unwrap(),
            Policy::builder()
                .allow("GET", "/me", ["*"])
                .build()
                .unwrap(),
        ));
    let res = app
        .clone()
        .oneshot(get_with(
            "/me",
            Some(&token(json!({"tenant": {"id": "x"}}))),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="api", error="invalid_token""#
    );
    let detail = res.extensions().get::<AuthError>().unwrap().to_string();
    assert!(detail.contains("`tenant.id`"), "{detail}");
    assert!(!detail.contains("\"x\""), "no claim value: {detail}");
    assert!(detail.contains("expected u64"), "{detail}");
    let (_, _, body) = split(res).await;
    assert_eq!(
        body,
        json!({"error": "invalid_token", "message": "Invalid token"})
    );
    let res = app
        .oneshot(get_with("/me", Some(&token(json!({"tenant": {"id": 7}})))))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

fn preflight(path: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .body(Body::empty())
        .unwrap()
}

// 5 (CORS). With tower-http's CorsLayer outside, preflights are answered with CORS
// headers and the real request stays guarded; the switch lets them through when CORS
// handling sits inside.
#[tokio::test]
async fn cors_preflight_outside_and_inside_the_layer() {
    use tower_http::cors::{Any, CorsLayer};
    let policy = || {
        Policy::builder()
            .allow("GET", "/data", ["*"])
            .build()
            .unwrap()
    };
    let cors = || {
        CorsLayer::new()
            .allow_origin(Any)
            .allow_methods(Any)
            .allow_headers(Any)
    };
    // Outside (added after, so it runs first): the documented order.
    let app = Router::new()
        .route("/data", get(|| async { "data" }))
        .layer(AuthLayer::new(hs_builder().build().unwrap(), policy()))
        .layer(cors());
    let got = call(&app, preflight("/data")).await;
    assert_eq!(got.0, 200);
    assert_eq!(got.1["access-control-allow-origin"], "*");
    let real = Request::get("/data")
        .header(header::ORIGIN, "https://app.example")
        .body(Body::empty())
        .unwrap();
    let got = call(&app, real).await;
    assert_eq!(got.0, 401);
    assert_eq!(got.1["access-control-allow-origin"], "*");
    // Inside, behind the guard: refused without the switch...
    let inside = || {
        Router::new()
            .route("/data", get(|| async { "data" }))
            .layer(cors())
    };
    let app = inside().layer(AuthLayer::new(hs_builder().build().unwrap(), policy()));
    assert_eq!(call(&app, preflight("/data")).await.0, 401);
    // ...let through with it; a plain OPTIONS stays guarded.
    let app = inside()
        .layer(AuthLayer::new(hs_builder().build().unwrap(), policy()).allow_cors_preflight());
    let got = call(&app, preflight("/data")).await;
    assert_eq!(got.0, 200);
    assert_eq!(got.1["access-control-allow-origin"], "*");
    let plain = Request::builder()
        .method(Method::OPTIONS)
        .uri("/data")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, plain).await.0, 401);
}

// 6. Unknown routes: with `Router::route_layer` the router answers 404 for paths it does
// not serve, and with `MethodRouter::route_layer` 405 for methods a route does not serve;
// served routes stay guarded, and a served route no rule names is still refused.
#[tokio::test]
async fn unknown_routes_answer_404_and_405_with_route_layer() {
    let policy = Policy::builder()
        .allow("GET", "/items", ["*"])
        .build()
        .unwrap();
    let app = Router::new()
        .route("/items", get(|| async { "items" }))
        .route("/secret", get(|| async { "secret" }))
        .route_layer(AuthLayer::new(hs_builder().build().unwrap(), policy));
    let valid = token(json!({}));
    assert_eq!(call(&app, get_with("/nowhere", Some(&valid))).await.0, 404);
    assert_eq!(call(&app, get_with("/nowhere", None)).await.0, 404);
    assert_eq!(call(&app, get_with("/items", None)).await.0, 401);
    assert_eq!(call(&app, get_with("/items", Some(&valid))).await.0, 200);
    // Served but named by no rule: deny by default, the handler never runs.
    assert_eq!(call(&app, get_with("/secret", Some(&valid))).await.0, 403);
    // Per route (MethodRouter::route_layer): unserved methods answer 405.
    let guard = AuthLayer::new(
        hs_builder().build().unwrap(),
        Policy::builder()
            .allow("GET", "/items", ["*"])
            .build()
            .unwrap(),
    );
    let app = Router::new().route("/items", get(|| async { "items" }).route_layer(guard));
    let post = || Request::post("/items").body(Body::empty()).unwrap();
    assert_eq!(call(&app, post()).await.0, 405);
    assert_eq!(call(&app, get_with("/items", None)).await.0, 401);
    assert_eq!(call(&app, get_with("/items", Some(&valid))).await.0, 200);
    // The default wiring (`layer`) answers 403 for unknown routes to a valid token.
    let app = Router::new()
        .route("/items", get(|| async { "items" }))
        .layer(AuthLayer::new(
            hs_builder().build().unwrap(),
            Policy::builder()
                .allow("GET", "/items", ["*"])
                .build()
                .unwrap(),
        ));
    assert_eq!(call(&app, get_with("/nowhere", Some(&valid))).await.0, 403);
}

// 7. Token sources: cookie, custom header, query parameter, in order; one credential each.
#[tokio::test]
async fn token_sources_in_order_with_one_credential_each() {
    let auth = hs_builder()
        .token_sources([
            TokenSource::Authorization,
            TokenSource::cookie("access_token"),
            TokenSource::header("X-Amz-Security-Token"),
            TokenSource::query("token"),
        ])
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { p.subject().unwrap_or("").to_owned() }),
        )
        .layer(AuthLayer::new(
            auth,
            Policy::builder()
                .allow("GET", "/me", ["*"])
                .build()
                .unwrap(),
        ));
    let t = token(json!({}));
    let req = |f: &dyn Fn(http::request::Builder) -> http::request::Builder, uri: &str| {
        f(Request::get(uri)).body(Body::empty()).unwrap()
    };
    let ok = |got: (u16, http::HeaderMap, Value)| {
        assert_eq!(got.0, 200, "{:?}", got.2);
        assert_eq!(got.2, json!("ada"));
    };
    ok(call(
        &app,
        req(
            &|b| b.header("cookie", format!("a=1; access_token={t}; b=2")),
            "/me",
        ),
    )
    .await);
    ok(call(
        &app,
        req(&|b| b.header("x-amz-security-token", t.as_str()), "/me"),
    )
    .await);
    ok(call(&app, req(&|b| b, &format!("/me?x=1&token={t}"))).await);
    // Two cookies of the name, two headers, two parameters: invalid request.
    for bad in [
        req(
            &|b| b.header("cookie", format!("access_token={t}; access_token={t}")),
            "/me",
        ),
        req(
            &|b| {
                b.header("x-amz-security-token", t.as_str())
                    .header("x-amz-security-token", t.as_str())
            },
            "/me",
        ),
        req(&|b| b, &format!("/me?token={t}&token={t}")),
    ] {
        assert_eq!(call(&app, bad).await.0, 400);
    }
    // Order: a broken Authorization header is not skipped for a good cookie.
    let got = call(
        &app,
        req(
            &|b| {
                b.header("authorization", "Bearer x.y.z")
                    .header("cookie", format!("access_token={t}"))
            },
            "/me",
        ),
    )
    .await;
    assert_eq!(got.0, 401);
    // Another scheme in Authorization: the next source is tried.
    ok(call(
        &app,
        req(
            &|b| {
                b.header("authorization", "Basic YTpi")
                    .header("cookie", format!("access_token={t}"))
            },
            "/me",
        ),
    )
    .await);
    // Nothing anywhere: missing.
    assert_eq!(call(&app, req(&|b| b, "/me")).await.0, 401);
    // Without a query source, the query is never read.
    let app = Router::new()
        .route("/me", get(|| async { "me" }))
        .layer(AuthLayer::new(
            hs_builder().build().unwrap(),
            Policy::builder()
                .allow("GET", "/me", ["*"])
                .build()
                .unwrap(),
        ));
    assert_eq!(
        call(&app, req(&|b| b, &format!("/me?token={t}"))).await.0,
        401
    );
    // The environment names.
    let config = EnvConfig::from_lookup(|n| match n {
        "FEDN_JWT_SECRET_KEY" => Some(SECRET.into()),
        "PORTCULLIS_TOKEN_SOURCES" => Some("cookie:access_token,authorization".into()),
        _ => None,
    })
    .unwrap();
    let (auth, _) = config
        .map_authenticator(|a| a.clock(|| NOW))
        .build()
        .unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("cookie", format!("access_token={t}").parse().unwrap());
    assert_eq!(auth.authenticate(&headers).unwrap().subject(), Some("ada"));
    let err = EnvConfig::from_lookup(|n| match n {
        "FEDN_JWT_SECRET_KEY" => Some(SECRET.into()),
        "PORTCULLIS_TOKEN_SOURCES" => Some("cookie:".into()),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(err.setting(), "PORTCULLIS_TOKEN_SOURCES");
    let _ = Authenticator::builder;
}

// 10. Listing: everything a subject may do, and its effective groups.
#[test]
fn listing_grants_and_effective_groups() {
    use portcullis::{Authorizer, Record, RecordSet, Statement, Subject, Via};
    let records = RecordSet::builder()
        .role("viewer", ["documents:read"])
        .role("editor", ["documents:read", "documents:write"])
        .role("auditor", ["audit:read"])
        .group("staff", ["ada"])
        .group("writers", ["ada"])
        .record(
            Record::new("r1")
                .statement(
                    Statement::new()
                        .roles(["viewer"])
                        .resources(["/docs"])
                        .groups(["staff"]),
                )
                .statement(
                    Statement::new()
                        .roles(["editor"])
                        .resources(["/docs/drafts"])
                        .groups(["writers"]),
                ),
        )
        .record(
            Record::new("r2").statement(
                Statement::new()
                    .roles(["auditor"])
                    .resources(["/audit"])
                    .groups(["auditors"]),
            ),
        )
        .record(
            Record::new("r3").statement(
                Statement::new()
                    .roles(["viewer"])
                    .resources(["/wiki"])
                    .token_roles(["reader"]),
            ),
        )
        .build()
        .unwrap();
    let authz = Authorizer::new(records);
    let list = authz.list(
        Subject::user("ada")
            .with_groups(["sso-users"])
            .with_roles(["reader"]),
    );
    assert_eq!(list.groups(), ["sso-users", "staff", "writers"]);
    // A right reached through two groups is listed once; the auditor role is not linked.
    assert_eq!(list.permissions(), ["documents:read", "documents:write"]);
    assert_eq!(list.roles(), ["editor", "viewer"]);
    let wiki: Vec<_> = list
        .grants()
        .iter()
        .filter(|g| g.resource() == "/wiki")
        .collect();
    assert_eq!(wiki.len(), 1);
    assert_eq!(
        (wiki[0].via(), wiki[0].via_id()),
        (Via::TokenRole, "reader")
    );
    assert!(list.grants().iter().all(|g| g.role() != "auditor"));
    // Someone else: nothing.
    let none = authz.list(Subject::user("bob"));
    assert!(none.grants().is_empty() && none.groups().is_empty());
}

// A principal already in the request when it reaches the layer (put there by a layer in
// front, or forged) never reaches a handler: the verified one replaces it, and a public
// route or a CORS preflight sees none.
#[tokio::test]
async fn a_principal_already_in_the_request_never_reaches_the_handler() {
    let eve = hs_builder()
        .build()
        .unwrap()
        .verify(&token(json!({"sub": "eve", "role": "admin"})))
        .unwrap();
    let who = |p: Option<Principal>| async move {
        p.and_then(|p| p.subject().map(str::to_owned))
            .unwrap_or_else(|| "nobody".to_owned())
    };
    let policy = Policy::builder()
        .allow("GET", "/me", ["*"])
        .allow("OPTIONS", "/me", ["*"])
        .public_prefix("/open")
        .build()
        .unwrap();
    let guarded = Router::new()
        .route("/me", get(who).options(who))
        .route("/open", get(who))
        .layer(
            AuthLayer::new(hs_builder().build().unwrap(), policy)
                .allow_cors_preflight()
                .axum_native(),
        );
    let forged = |mut req: Request<Body>| {
        req.extensions_mut().insert(eve.clone());
        req
    };
    let body = |res: axum::response::Response| async move {
        let bytes = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let ada = token(json!({}));
    let res = guarded
        .clone()
        .oneshot(forged(get_with("/me", Some(&ada))))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await, "ada");
    let res = guarded
        .clone()
        .oneshot(forged(get_with("/open", None)))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await, "nobody");
    let res = guarded
        .clone()
        .oneshot(forged(preflight("/me")))
        .await
        .unwrap();
    assert_eq!(body(res).await, "nobody");
    // Without a token the forged one does not help.
    let res = guarded
        .oneshot(forged(get_with("/me", None)))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
