//! Builder and layer behaviour found in review: configuration errors that name the
//! setting, the segment cap, handler-returned errors, and `crit` parameters a caller
//! declared.

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use portcullis::{Algorithm, AuthError, AuthLayer, Authenticator, EnvConfig, Policy, Principal};
use serde_json::json;

#[test]
fn two_keys_without_kid_for_one_alg_are_a_config_error() {
    let (_, public) = keypair(Algorithm::ES256);
    let err = Authenticator::builder()
        .public_key_pem(Algorithm::ES256, &public)
        .public_key_pem(Algorithm::ES256, &public)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "keys");
    assert!(err.to_string().contains("kid"), "{err}");
    // With kids they are fine.
    Authenticator::builder()
        .public_key_pem_with_kid(Algorithm::ES256, &public, "a")
        .public_key_pem_with_kid(Algorithm::ES256, &public, "b")
        .build()
        .unwrap();
    let err = Authenticator::builder()
        .hmac_secret(SECRET)
        .hmac_secret(SECRET)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "keys");
}

#[test]
fn realm_and_size_cap_are_checked() {
    for realm in ["", "a\r\nb", "tab\there", "quote\"", "é"] {
        let err = hs_builder().realm(realm).build().unwrap_err();
        assert_eq!(err.setting(), "realm", "{realm:?}");
    }
    hs_builder().realm("my api").build().unwrap();
    for cap in [0, usize::MAX, portcullis::MAX_TOKEN_BYTES_CAP + 1] {
        let err = hs_builder().max_token_bytes(cap).build().unwrap_err();
        assert_eq!(err.setting(), "max_token_bytes");
    }
    let lookup = |name: &str| match name {
        "FEDN_JWT_SECRET_KEY" => Some(SECRET.to_owned()),
        "PORTCULLIS_MAX_TOKEN_BYTES" => Some("18446744073709551615".to_owned()),
        _ => None,
    };
    let err = EnvConfig::from_lookup(lookup).unwrap().build().unwrap_err();
    assert_eq!(err.setting(), "PORTCULLIS_MAX_TOKEN_BYTES");
}

#[test]
fn env_errors_name_the_variable_that_was_set() {
    let run = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvConfig::from_lookup(move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .and_then(|c| c.build())
        .unwrap_err()
    };
    let err = run(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_AUTH_WHITELIST_URL", "/"),
    ]);
    assert_eq!(err.setting(), "FEDN_AUTH_WHITELIST_URL");
    assert!(err.to_string().contains("every route"), "{err}");
    let err = run(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_AUTH_WHITELIST_URL_PREFIX", "internal"),
    ]);
    assert_eq!(err.setting(), "FEDN_AUTH_WHITELIST_URL_PREFIX");
    let err = run(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_CUSTOM_URL_PREFIX", "/a/../b"),
    ]);
    assert_eq!(err.setting(), "FEDN_CUSTOM_URL_PREFIX");
    let dir = std::env::temp_dir().join(format!("portcullis-builder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("p256.pub.pem");
    std::fs::write(&pem, keypair(Algorithm::ES256).1).unwrap();
    // A PEM key with the default HS256 names the file variable and the algorithm variable.
    let err = run(&[("PORTCULLIS_PUBLIC_KEY_FILE", pem.to_str().unwrap())]);
    assert_eq!(err.setting(), "PORTCULLIS_PUBLIC_KEY_FILE");
    assert!(err.to_string().contains("FEDN_JWT_ALGORITHM"), "{err}");
    let jwks = dir.join("set.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}"#,
    )
    .unwrap();
    let err = run(&[("PORTCULLIS_JWK_SET_FILE", jwks.to_str().unwrap())]);
    assert_eq!(err.setting(), "PORTCULLIS_JWK_SET_FILE");
    let err = run(&[("PORTCULLIS_JWK_SET_FILE", "/nonexistent/set.json")]);
    assert_eq!(err.setting(), "PORTCULLIS_JWK_SET_FILE");
}

#[tokio::test]
async fn too_many_segments_are_400() {
    let app = fedn_app();
    let admin = format!("Bearer {}", hs256().sign(&claims("admin")).unwrap());
    let long = "/x".repeat(257);
    let got = send(&app, "GET", &long, Some(&admin)).await;
    assert_rejected(
        &got,
        400,
        Some(r#"Bearer realm="api", error="invalid_request""#),
        "invalid_request",
        "Invalid request path",
    );
    let ok = "/x".repeat(256);
    assert_eq!(send(&app, "GET", &ok, Some(&admin)).await.0, 200);
}

#[tokio::test]
async fn an_auth_error_from_a_handler_gets_the_layers_challenge() {
    let auth = hs_builder().schemes(["Token"]).realm("fl").build().unwrap();
    let policy = Policy::builder()
        .allow("GET", "/doc", ["*"])
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/doc",
            get(|_p: Principal| async { Err::<(), _>(AuthError::forbidden()) }),
        )
        .layer(AuthLayer::new(auth, policy));
    let token = format!("Token {}", hs256().sign(&claims("client")).unwrap());
    let got = send(&app, "GET", "/doc", Some(&token)).await;
    assert_rejected(
        &got,
        403,
        Some(r#"Token realm="fl", error="insufficient_scope""#),
        "insufficient_scope",
        "Insufficient permissions",
    );
}

#[test]
fn understood_crit_parameters_reach_the_principal() {
    let auth = hs_builder().understand_crit("tenant").build().unwrap();
    let payload = claims("client").to_string();
    let token = craft(
        &hs256(),
        r#"{"alg":"HS256","crit":["tenant"],"tenant":"acme"}"#,
        &payload,
    );
    let principal = auth.verify(&token).unwrap();
    assert_eq!(principal.header().get("tenant"), Some(&json!("acme")));
    // Not declared: refused.
    let strict = hs_builder().build().unwrap();
    assert_eq!(
        strict.verify(&token).unwrap_err().kind(),
        portcullis::AuthErrorKind::InvalidToken
    );
}
