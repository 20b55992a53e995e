//! Recipes for the token shapes of common identity providers, driven by the test kit's
//! loopback issuer: Keycloak (`realm_access.roles`, `resource_access.<client>.roles`, `aud`
//! arrays), Auth0 (namespaced role claims, `scope`), Entra ID (`roles`, `scp`).
#![cfg(feature = "test-util")]

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use portcullis::test_util::TestIssuer;
use portcullis::{Algorithm, AuthLayer, Authenticator, AuthenticatorBuilder, Policy, Principal};
use serde_json::{Value, json};
use tower::ServiceExt;

fn app(auth: Authenticator) -> Router {
    let policy = Policy::builder()
        .allow("GET", "/admin", ["admin"])
        .allow("GET", "/docs", ["read:docs", "Documents.Read"])
        .allow("GET", "/me", ["*"])
        .build()
        .unwrap();
    Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route("/docs", get(|| async { "docs" }))
        .route(
            "/me",
            get(|p: Principal| async move { axum::Json(json!({"roles": p.roles()})) }),
        )
        .layer(AuthLayer::new(auth, policy))
}

async fn status(app: &Router, path: &str, token: &str) -> (u16, Value) {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let code = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn oidc(issuer: &TestIssuer) -> AuthenticatorBuilder {
    Authenticator::builder().oidc_issuer(issuer.issuer())
}

#[tokio::test]
async fn keycloak_realm_and_client_roles_with_an_audience_array() {
    let idp = TestIssuer::start(Algorithm::RS256).await.unwrap();
    // Realm roles: `realm_access.roles`; Keycloak's `aud` is often an array.
    let auth = oidc(&idp)
        .role_claim("realm_access.roles")
        .audience("my-api")
        .build()
        .unwrap();
    let app = app(auth);
    let token = idp.mint(&json!({
        "sub": "u1", "aud": ["account", "my-api"], "azp": "my-api",
        "realm_access": {"roles": ["admin", "offline_access"]},
        "resource_access": {"my-api": {"roles": ["read:docs"]}}
    }));
    assert_eq!(status(&app, "/admin", &token).await.0, 200);
    assert_eq!(status(&app, "/docs", &token).await.0, 403);
    // Another service's audience: refused.
    let other =
        idp.mint(&json!({"sub": "u1", "aud": ["account"], "realm_access": {"roles": ["admin"]}}));
    assert_eq!(status(&app, "/admin", &other).await.0, 401);
    // Client roles: `resource_access.<client>.roles`.
    let auth = oidc(&idp)
        .role_claim("resource_access.my-api.roles")
        .audience("my-api")
        .build()
        .unwrap();
    let app = self::app(auth);
    assert_eq!(status(&app, "/docs", &token).await.0, 200);
    assert_eq!(status(&app, "/admin", &token).await.0, 403);
}

#[tokio::test]
async fn auth0_namespaced_roles_and_scopes() {
    let idp = TestIssuer::start(Algorithm::RS256).await.unwrap();
    // Auth0 puts roles in a namespaced claim: escape its dots.
    let auth = oidc(&idp)
        .role_claim(r"https://myapp\.example\.com/roles")
        .audience("https://api.example.com")
        .build()
        .unwrap();
    let app = app(auth);
    let token = idp.mint(&json!({
        "sub": "auth0|1", "aud": ["https://api.example.com", "https://tenant.auth0.com/userinfo"],
        "https://myapp.example.com/roles": ["admin"], "scope": "openid read:docs"
    }));
    assert_eq!(status(&app, "/admin", &token).await.0, 200);
    assert_eq!(
        status(&app, "/me", &token).await.1,
        json!({"roles": ["admin"]})
    );
    // Scopes as roles: `scope` is split on spaces.
    let auth = oidc(&idp)
        .role_claim("scope")
        .audience("https://api.example.com")
        .build()
        .unwrap();
    let app = self::app(auth);
    assert_eq!(status(&app, "/docs", &token).await.0, 200);
    assert_eq!(status(&app, "/admin", &token).await.0, 403);
}

#[tokio::test]
async fn entra_id_app_roles_and_delegated_scopes() {
    let idp = TestIssuer::start(Algorithm::RS256).await.unwrap();
    let client_id = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    // App roles (`roles`, an array) for daemon apps.
    let auth = oidc(&idp)
        .role_claim("roles")
        .audience(client_id)
        .build()
        .unwrap();
    let app = app(auth);
    let daemon =
        idp.mint(&json!({"sub": "s", "aud": client_id, "roles": ["Documents.Read"], "tid": "t1"}));
    assert_eq!(status(&app, "/docs", &daemon).await.0, 200);
    // Delegated scopes (`scp`, space-delimited) for user tokens.
    let auth = oidc(&idp)
        .role_claim("scp")
        .audience(client_id)
        .build()
        .unwrap();
    let app = self::app(auth);
    let user = idp.mint(&json!({"sub": "s", "aud": client_id, "scp": "User.Read Documents.Read"}));
    assert_eq!(status(&app, "/docs", &user).await.0, 200);
    assert_eq!(status(&app, "/admin", &user).await.0, 403);
    // A token of another tenant's app (another audience) is refused.
    let stranger = idp.mint(&json!({"sub": "s", "aud": "another-app", "scp": "Documents.Read"}));
    assert_eq!(status(&app, "/docs", &stranger).await.0, 401);
}

#[tokio::test]
async fn rotation_on_demand() {
    let idp = TestIssuer::start(Algorithm::ES256).await.unwrap();
    let auth = oidc(&idp).build().unwrap();
    let app = app(auth);
    let before = idp.mint(&json!({"sub": "a"}));
    assert_eq!(status(&app, "/me", &before).await.0, 200);
    idp.rotate("test");
    let after = idp.mint(&json!({"sub": "a"}));
    // A new kid: fetched on first sight.
    assert_eq!(status(&app, "/me", &after).await.0, 200);
    assert!(idp.jwks_requests() >= 2);
    assert_eq!(idp.discovery_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_tenant_issuers_behind_one_pattern_survive_a_flood() {
    use portcullis::{AuthErrorKind, TenantOptions};
    let idp = TestIssuer::with_realms(Algorithm::ES256, ["a", "b", "c"])
        .await
        .unwrap();
    let base = idp.realm("a");
    let pattern = format!("{}/*", base.trim_end_matches("/a"));
    const BUDGET: u64 = 5;
    let auth = Authenticator::builder()
        .issuer_pattern(&pattern)
        .tenant_options(
            TenantOptions::new()
                .capacity(3)
                .discoveries_per_minute(BUDGET),
        )
        // A fixed clock: the discovery budget does not refill during the test.
        .clock(|| 1_700_000_000)
        .build()
        .unwrap();
    let claims = |sub: &str| json!({"sub": sub, "exp": 4_000_000_000u64});
    for realm in ["a", "b", "c"] {
        let t = idp.mint_in(realm, &claims(realm));
        assert_eq!(auth.verify_async(&t).await.unwrap().subject(), Some(realm));
    }
    assert_eq!(idp.discovery_requests(), 3);
    // Outside the pattern: refused without any fetch.
    let outside = idp.mint_in("a", &json!({"sub": "x", "exp": 4_000_000_000u64, "iss": idp.realm("a").replace("/realms/", "/other/")}));
    assert_eq!(
        auth.verify_async(&outside).await.unwrap_err().kind(),
        AuthErrorKind::InvalidToken
    );
    // A token of realm a claiming realm b's issuer: b's keys, refused.
    let forged = idp.mint_in(
        "a",
        &json!({"sub": "x", "exp": 4_000_000_000u64, "iss": idp.realm("b")}),
    );
    assert_eq!(
        auth.verify_async(&forged).await.unwrap_err().kind(),
        AuthErrorKind::InvalidToken
    );
    assert_eq!(idp.discovery_requests(), 3);
    // The flood: 10,000 tokens naming random matching issuers, the real realms in between.
    for i in 0..10_000u32 {
        let iss = format!("{}/realms/flood-{i:05}", base.trim_end_matches("/realms/a"));
        let t = idp.mint_in(
            "a",
            &json!({"sub": "f", "exp": 4_000_000_000u64, "iss": iss}),
        );
        assert!(auth.verify_async(&t).await.is_err());
        if i % 1_000 == 0 {
            let realm = ["a", "b", "c"][(i / 1_000) as usize % 3];
            let ok = idp.mint_in(realm, &claims(realm));
            assert_eq!(auth.verify_async(&ok).await.unwrap().subject(), Some(realm));
            assert!(auth.tenant_count() <= 3);
        }
    }
    let fetched = idp.discovery_requests() as u64;
    assert!(fetched <= 3 + (BUDGET - 3), "{fetched} discovery requests");
    assert!(auth.tenant_count() <= 3);
    for realm in ["a", "b", "c"] {
        let t = idp.mint_in(realm, &claims(realm));
        assert_eq!(auth.verify_async(&t).await.unwrap().subject(), Some(realm));
    }
}
