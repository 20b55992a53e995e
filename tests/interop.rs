//! Interoperability edges, one test each: JWKs without
//! `alg` (RFC 7520 section 4.2), literal dotted claim names, `aud` without a configured
//! audience, FEDn's RS256 set-up, and the gRPC-web answer's content type.

mod common;

use axum::body::Body;
use axum::routing::get;
use base64::Engine;
use common::*;
use http::{Request, StatusCode};
use portcullis::{
    Algorithm, AuthError, AuthErrorKind, AuthLayer, Authenticator, EnvConfig, Policy, Principal,
    Signer,
};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

// ---- RFC 7520 section 4.2: RSA-PSS (PS384) against a published key without `alg` ---------

/// RFC 7520 figure 3: the RSA public key of "bilbo.baggins@hobbiton.example" (no `alg`).
const RFC7520_N: &str = "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";

/// RFC 7520 figure 20: the compact serialization of the section 4.2 example.
const RFC7520_4_2: &str = concat!(
    "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
    ".",
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4",
    ".",
    "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw",
);

#[test]
fn rfc7520_4_2_ps384_verifies_against_its_published_key_without_alg() {
    let set = json!({"keys": [{
        "kty": "RSA", "kid": "bilbo.baggins@hobbiton.example", "use": "sig",
        "n": RFC7520_N, "e": "AQAB"
    }]});
    let auth = Authenticator::builder()
        .jwk_set_json(set.to_string())
        .build()
        .unwrap();
    let payload = auth.verify_signature(RFC7520_4_2).unwrap();
    assert_eq!(
        String::from_utf8(payload).unwrap(),
        "It\u{2019}s a dangerous business, Frodo, going out your door. You step onto the road, and if you don't keep your feet, there\u{2019}s no knowing where you might be swept off to."
    );
    // One changed signature byte is refused as a bad signature.
    let mut tampered = RFC7520_4_2.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'w' { 'x' } else { 'w' });
    let err = auth.verify_signature(&tampered).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
    assert_eq!(err.to_string(), "invalid signature");
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// One DER TLV: (contents, rest).
fn der(input: &[u8]) -> (&[u8], &[u8]) {
    let (len, head) = if input[1] < 0x80 {
        (input[1] as usize, 2)
    } else {
        let k = (input[1] & 0x7f) as usize;
        let len = input[2..2 + k]
            .iter()
            .fold(0usize, |l, &b| (l << 8) | b as usize);
        (len, 2 + k)
    };
    (&input[head..head + len], &input[head + len..])
}

/// The fixture RSA key as a JWK without `alg`.
fn rsa_jwk_without_alg() -> Value {
    let spki = pem_der(&keypair(Algorithm::RS256).1);
    let (spki, _) = der(&spki);
    let (_algorithm, rest) = der(spki);
    let (bits, _) = der(rest);
    let (rsa, _) = der(&bits[1..]);
    let (n, rest) = der(rsa);
    let (e, _) = der(rest);
    let strip = |b: &[u8]| {
        b.iter()
            .copied()
            .skip_while(|&x| x == 0)
            .collect::<Vec<u8>>()
    };
    json!({"kty": "RSA", "kid": "rsa-1", "n": b64(&strip(n)), "e": b64(&strip(e))})
}

fn token(signer: &Signer) -> String {
    signer.clone().kid("rsa-1").sign(&claims("client")).unwrap()
}

#[test]
fn rsa_jwk_without_alg_accepts_every_rsa_algorithm_and_never_hmac() {
    let jwk = rsa_jwk_without_alg();
    let auth = hs_builder_free()
        .jwk_set_json(json!({"keys": [jwk.clone()]}).to_string())
        .build()
        .unwrap();
    let private = keypair(Algorithm::RS256).0;
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let signer = Signer::from_pem(alg, &private).unwrap();
        let principal = auth
            .verify(&token(&signer))
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(principal.subject(), Some("user-1"), "{alg}");
    }
    // HMAC with the public key's bytes, in every form an attacker might try.
    let public_pem = keypair(Algorithm::RS256).1;
    let forms: Vec<Vec<u8>> = vec![
        public_pem.as_bytes().to_vec(),
        pem_der(&public_pem),
        jwk.to_string().into_bytes(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().unwrap())
            .unwrap(),
    ];
    for (i, bytes) in forms.iter().enumerate() {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let forged = token(&Signer::hmac(alg, bytes).unwrap());
            let err = auth.verify(&forged).unwrap_err();
            assert_eq!(err.kind(), AuthErrorKind::InvalidToken, "form {i} {alg}");
            assert_eq!(err.to_string(), "no key: the token's alg is not the key's");
        }
    }
    // Another family is refused too.
    let es = Signer::from_pem(Algorithm::ES256, keypair(Algorithm::ES256).0).unwrap();
    assert_eq!(
        auth.verify(&token(&es)).unwrap_err().kind(),
        AuthErrorKind::InvalidToken
    );
}

#[test]
fn a_jwk_that_names_its_alg_verifies_that_alg_only() {
    let mut jwk = rsa_jwk_without_alg();
    jwk["alg"] = json!("PS256");
    let auth = hs_builder_free()
        .jwk_set_json(json!({"keys": [jwk]}).to_string())
        .build()
        .unwrap();
    let private = keypair(Algorithm::RS256).0;
    assert!(
        auth.verify(&token(
            &Signer::from_pem(Algorithm::PS256, &private).unwrap()
        ))
        .is_ok()
    );
    for alg in [Algorithm::RS256, Algorithm::PS384, Algorithm::RS512] {
        let err = auth
            .verify(&token(&Signer::from_pem(alg, &private).unwrap()))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no key: the token's alg is not the key's",
            "{alg}"
        );
    }
}

#[test]
fn oct_jwk_without_alg_accepts_the_hmac_algorithms_its_length_allows() {
    for (len, ok) in [
        (32usize, [true, false, false]),
        (48, [true, true, false]),
        (64, [true, true, true]),
    ] {
        let secret = vec![7u8; len];
        let set = json!({"keys": [{"kty": "oct", "kid": "h", "k": b64(&secret)}]});
        let auth = hs_builder_free()
            .jwk_set_json(set.to_string())
            .build()
            .unwrap();
        for (alg, ok) in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            .into_iter()
            .zip(ok)
        {
            let t = Signer::hmac(alg, &secret)
                .unwrap()
                .kid("h")
                .sign(&claims("client"))
                .unwrap();
            assert_eq!(auth.verify(&t).is_ok(), ok, "{len} bytes, {alg}");
        }
    }
    // Shorter than any hash: the set has no usable key.
    let short = json!({"keys": [{"kty": "oct", "k": b64(&[7u8; 16])}]});
    let err = hs_builder_free()
        .jwk_set_json(short.to_string())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("shorter than 32 bytes"), "{err}");
}

/// A builder with the fixed clock and no key yet.
fn hs_builder_free() -> portcullis::AuthenticatorBuilder {
    Authenticator::builder().clock(|| NOW)
}

// ---- claim paths: nested members only -------------------------------------------------

fn admin_app(auth: Authenticator) -> axum::Router {
    axum::Router::new()
        .route(
            "/admin",
            get(|p: Principal| async move { axum::Json(json!({"roles": p.roles()})) }),
        )
        .layer(
            AuthLayer::new(
                auth,
                Policy::builder()
                    .allow("GET", "/admin", ["admin"])
                    .build()
                    .unwrap(),
            )
            .attach_errors(),
        )
}

#[tokio::test]
async fn a_literal_dotted_member_never_stands_for_a_nested_claim() {
    let config = EnvConfig::from_lookup(|name| match name {
        "FEDN_JWT_SECRET_KEY" => Some(SECRET.to_owned()),
        "PORTCULLIS_ROLE_CLAIM" => Some("realm_access.roles".to_owned()),
        _ => None,
    })
    .unwrap()
    .map_authenticator(|a| a.clock(|| NOW));
    let (auth, _) = config.build().unwrap();
    let sign = |extra: Value| {
        let mut c = json!({"sub": "u", "exp": NOW + 600});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        hs256().sign(&c).unwrap()
    };
    // A user-settable top-level attribute literally named like the path: no roles.
    let literal = sign(json!({"realm_access.roles": ["admin"]}));
    assert_eq!(auth.verify(&literal).unwrap().roles().len(), 0);
    let got = send(
        &admin_app(auth.clone()),
        "GET",
        "/admin",
        Some(&format!("Bearer {literal}")),
    )
    .await;
    assert_eq!(got.0, 403, "{:?}", got.2);
    // Both present: only the nested claim counts.
    let both =
        sign(json!({"realm_access.roles": ["admin"], "realm_access": {"roles": ["viewer"]}}));
    assert_eq!(auth.verify(&both).unwrap().roles(), ["viewer"]);
    // The nested claim itself works.
    let nested = sign(json!({"realm_access": {"roles": ["admin"]}}));
    let got = send(
        &admin_app(auth.clone()),
        "GET",
        "/admin",
        Some(&format!("Bearer {nested}")),
    )
    .await;
    assert_eq!(got.0, 200, "{:?}", got.2);
    assert_eq!(got.2, json!({"roles": ["admin"]}));
}

#[test]
fn an_escaped_dot_names_a_member_with_a_dot() {
    let auth = hs_builder()
        .role_claim(r"https://example\.com/roles")
        .build()
        .unwrap();
    let t = hs256()
        .sign(&json!({"exp": NOW + 600, "https://example.com/roles": ["admin"], "https://example": {"com/roles": ["x"]}}))
        .unwrap();
    let p = auth.verify(&t).unwrap();
    assert_eq!(p.roles(), ["admin"]);
    assert_eq!(
        p.claim(r"https://example\.com/roles"),
        Some(&json!(["admin"]))
    );
    // Unescaped, the same text is a nested path: `https://example` then `com/roles`.
    assert_eq!(p.claim("https://example.com/roles"), Some(&json!(["x"])));
}

// ---- aud without a configured audience ----------------------------------------------------

#[tokio::test]
async fn a_token_with_aud_is_refused_when_no_audience_is_configured() {
    let t = hs256()
        .sign(&json!({"sub": "u", "role": "admin", "exp": NOW + 600, "aud": "billing-service"}))
        .unwrap();
    let app = admin_app(hs_builder().build().unwrap());
    let res = app
        .clone()
        .oneshot(
            Request::get("/admin")
                .header("authorization", format!("Bearer {t}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="api", error="invalid_token""#
    );
    let err = res.extensions().get::<AuthError>().unwrap().clone();
    let detail = err.to_string();
    assert!(
        detail.contains("PORTCULLIS_AUDIENCE") && detail.contains(".audience(..)"),
        "{detail}"
    );
    let (_, _, body) = split(res).await;
    assert_eq!(
        body,
        json!({"error": "invalid_token", "message": "Invalid token"})
    );

    // The audience configured: accepted.
    let app = admin_app(hs_builder().audience("billing-service").build().unwrap());
    let got = send(&app, "GET", "/admin", Some(&format!("Bearer {t}"))).await;
    assert_eq!(got.0, 200, "{:?}", got.2);
    // The dangerous opt-out: accepted without one.
    let app = admin_app(
        hs_builder()
            .dangerous()
            .allow_unchecked_audience()
            .build()
            .unwrap(),
    );
    let got = send(&app, "GET", "/admin", Some(&format!("Bearer {t}"))).await;
    assert_eq!(got.0, 200, "{:?}", got.2);
    // Without `aud`, nothing changes.
    let no_aud = hs256()
        .sign(&json!({"sub": "u", "role": "admin", "exp": NOW + 600}))
        .unwrap();
    let app = admin_app(hs_builder().build().unwrap());
    let got = send(&app, "GET", "/admin", Some(&format!("Bearer {no_aud}"))).await;
    assert_eq!(got.0, 200, "{:?}", got.2);
}

// ---- FEDn's RS256 set-up: the PEM public key in FEDN_JWT_SECRET_KEY --------------------------

fn fedn_env(vars: Vec<(&'static str, String)>) -> Result<EnvConfig, portcullis::ConfigError> {
    EnvConfig::from_lookup(move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
}

#[tokio::test]
async fn fedn_rs256_with_the_pem_public_key_in_the_secret_variable() {
    let (private, public) = keypair(Algorithm::RS256);
    let layer = fedn_env(vec![
        ("FEDN_JWT_ALGORITHM", "RS256".into()),
        ("FEDN_JWT_SECRET_KEY", public.clone()),
    ])
    .unwrap()
    .build_layer()
    .unwrap();
    let svc = layer.layer(tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
    }));
    let call = |token: String| {
        Request::post("/api/v1/clients/add")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let rs256 = Signer::from_pem(Algorithm::RS256, &private)
        .unwrap()
        .sign(&json!({"sub": "c", "role": "client", "exp": 4_000_000_000u64}))
        .unwrap();
    assert_eq!(
        svc.clone().oneshot(call(rs256)).await.unwrap().status(),
        200
    );
    // HS256 signed with the PEM text (the classic confusion) is refused.
    let forged = Signer::hmac(Algorithm::HS256, public.as_bytes())
        .unwrap()
        .sign(&json!({"sub": "c", "role": "client", "exp": 4_000_000_000u64}))
        .unwrap();
    assert_eq!(svc.oneshot(call(forged)).await.unwrap().status(), 401);

    // A PEM block under an HMAC algorithm: an error that says what it looks like.
    let err = fedn_env(vec![("FEDN_JWT_SECRET_KEY", public.clone())])
        .unwrap()
        .build_layer()
        .unwrap_err();
    assert_eq!(err.setting(), "FEDN_JWT_SECRET_KEY", "{err}");
    assert!(
        err.to_string()
            .contains("looks like a PEM block (PUBLIC KEY)"),
        "{err}"
    );
    // A private key under RS256 is refused, naming the variable.
    let err = fedn_env(vec![
        ("FEDN_JWT_ALGORITHM", "RS256".into()),
        ("FEDN_JWT_SECRET_KEY", private),
    ])
    .unwrap_err();
    assert_eq!(err.setting(), "FEDN_JWT_SECRET_KEY", "{err}");
    assert!(err.to_string().contains("never a private key"), "{err}");
    // A key of another algorithm names the variable too.
    let err = fedn_env(vec![
        ("FEDN_JWT_ALGORITHM", "ES256".into()),
        ("FEDN_JWT_SECRET_KEY", public),
    ])
    .unwrap()
    .build_layer()
    .unwrap_err();
    assert_eq!(err.setting(), "FEDN_JWT_SECRET_KEY", "{err}");
}

// ---- smaller defects ------------------------------------------------------------------------

#[tokio::test]
async fn grpc_web_answers_echo_the_request_content_type() {
    let layer = AuthLayer::new(
        hs_builder().build().unwrap(),
        Policy::builder()
            .allow_grpc("/pkg.Svc/*", ["client"])
            .build()
            .unwrap(),
    )
    .for_grpc();
    let svc = layer.layer(tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
    }));
    for (sent, answered) in [
        ("application/grpc-web+proto", "application/grpc-web+proto"),
        ("application/grpc-web-text", "application/grpc-web-text"),
        ("application/grpc", "application/grpc"),
        ("application/grpc+proto", "application/grpc"),
    ] {
        let req = Request::post("/pkg.Svc/Call")
            .header("content-type", sent)
            .body(Body::empty())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.headers()["grpc-status"], "16", "{sent}");
        assert_eq!(res.headers()["content-type"], answered, "{sent}");
    }
}

#[test]
fn algorithm_all_is_a_slice() {
    let all: &'static [Algorithm] = Algorithm::ALL;
    assert_eq!(all.len(), 12);
    assert!(
        all.iter()
            .all(|a| a.as_str().parse::<Algorithm>() == Ok(*a))
    );
}
