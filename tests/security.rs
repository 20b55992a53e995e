//! shared/SECURITY.md, one test (or table) per line: Extraction (E1-E7), Format (F1-F5),
//! Algorithms and keys (K1-K7), Header parameters (H1-H4), Claims (C1-C7) and
//! Decisions (R1-R4). K8 (Wycheproof) lives in tests/wycheproof.rs.
//!
//! Every refusal is checked for its status, its `WWW-Authenticate` and its JSON body, at the
//! `Authenticator` level and, where the token fits in a header, through the layer.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use portcullis::{
    Algorithm, AuthError, AuthErrorKind, AuthLayer, Authenticator, GrpcCode, Policy, Principal,
    Signer,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::*;

const INVALID_TOKEN: &str = r#"Bearer realm="api", error="invalid_token""#;
const INVALID_REQUEST: &str = r#"Bearer realm="api", error="invalid_request""#;
const MISSING: &str = r#"Bearer realm="api""#;
const INSUFFICIENT: &str = r#"Bearer realm="api", error="insufficient_scope""#;
const HS_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// A header whose base64url text has unused trailing bits.
const HS_HEADER_ODD: &str = r#"{"alg":"HS256","kid":"f2"}"#;

/// The group order n of P-256.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// FEDn's REST policy plus `GET /me` for any valid token.
fn me_policy() -> Policy {
    Policy::fedn_rest()
        .allow("GET", "/me", ["*"])
        .build()
        .unwrap()
}

/// Claims for a client, valid at NOW, as JSON text.
fn payload() -> String {
    claims("client").to_string()
}

/// Claims for `role` with the given changes applied (a `null` value removes the member).
fn claims_with(role: &str, changes: Value) -> Value {
    let mut c = claims(role);
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn hs_token(header: &str, payload: &str) -> String {
    craft(&hs256(), header, payload)
}

/// A token from raw header and payload bytes, signed over their base64url text.
fn craft_bytes(signer: &Signer, header: &[u8], payload: &[u8]) -> String {
    let (h, p) = (b64(header), b64(payload));
    let s = signer.sign_segments(&h, &p).unwrap();
    format!("{h}.{p}.{s}")
}

/// A token from already-encoded header and payload segments, signed over exactly that text.
fn craft_segments(signer: &Signer, h: &str, p: &str) -> String {
    let s = signer.sign_segments(h, p).unwrap();
    format!("{h}.{p}.{s}")
}

fn signer(alg: Algorithm) -> Signer {
    Signer::from_pem(alg, keypair(alg).0).unwrap()
}

fn pem_auth(alg: Algorithm) -> Authenticator {
    Authenticator::builder()
        .public_key_pem(alg, keypair(alg).1)
        .clock(|| NOW)
        .build()
        .unwrap()
}

fn token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Asserts the full answer an `AuthError` maps to.
fn check_error(
    auth: &Authenticator,
    err: &AuthError,
    status: u16,
    challenge: Option<&str>,
    code: &str,
    message: &str,
) {
    assert_eq!(err.status().as_u16(), status, "status of {err}");
    assert_eq!(
        auth.challenge(err).as_deref(),
        challenge,
        "challenge of {err}"
    );
    let body: Value = serde_json::from_str(&err.body()).unwrap();
    assert_eq!(
        body,
        json!({"error": code, "message": message}),
        "body of {err}"
    );
}

/// The token is refused with 401 `invalid_token` and `message`, by `verify` and through the
/// layer (where a header that is not token68 is a 400 before any decoding).
async fn refused_with(auth: &Authenticator, token: &str, message: &str) {
    let err = auth.verify(token).expect_err("the token must be refused");
    assert_eq!(err.kind(), AuthErrorKind::InvalidToken, "{err}");
    check_error(
        auth,
        &err,
        401,
        Some(INVALID_TOKEN),
        "invalid_token",
        message,
    );
    if token.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        let got = send(
            &app(auth.clone(), me_policy()),
            "GET",
            "/me",
            Some(&bearer(token)),
        )
        .await;
        // Leading spaces merge with the separator (`Bearer 1*SP token`).
        if token68(token.trim_start_matches(' ')) {
            assert_rejected(&got, 401, Some(INVALID_TOKEN), "invalid_token", message);
        } else {
            assert_rejected(
                &got,
                400,
                Some(INVALID_REQUEST),
                "invalid_request",
                "Invalid request",
            );
        }
    }
}

async fn refused(auth: &Authenticator, token: &str) {
    refused_with(auth, token, "Invalid token").await;
}

/// The token is accepted by `verify` and reaches `GET /me`; returns the handler's answer.
async fn accepted(auth: &Authenticator, token: &str) -> Value {
    if let Err(e) = auth.verify(token) {
        panic!("the token must be accepted: {e}");
    }
    let got = send(
        &app(auth.clone(), me_policy()),
        "GET",
        "/me",
        Some(&bearer(token)),
    )
    .await;
    assert_eq!(got.0, 200, "{:?}", got.2);
    got.2
}

async fn request(app: &Router, req: Request<Body>) -> (u16, HeaderMap, Value) {
    split(app.clone().oneshot(req).await.unwrap()).await
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// One DER TLV: (tag, contents, rest).
fn der(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let (len, head) = if input[1] < 0x80 {
        (input[1] as usize, 2)
    } else {
        let k = (input[1] & 0x7f) as usize;
        (
            input[2..2 + k]
                .iter()
                .fold(0usize, |l, &b| (l << 8) | b as usize),
            2 + k,
        )
    };
    (input[0], &input[head..head + len], &input[head + len..])
}

/// RSA modulus and exponent of a SubjectPublicKeyInfo PEM, big-endian without leading zeros.
fn rsa_n_e(pub_pem: &str) -> (Vec<u8>, Vec<u8>) {
    let spki = pem_der(pub_pem);
    let (_, spki, _) = der(&spki);
    let (_, _algorithm, rest) = der(spki);
    let (_, bits, _) = der(rest);
    let (_, rsa, _) = der(&bits[1..]);
    let (_, n, rest) = der(rsa);
    let (_, e, _) = der(rest);
    let strip = |b: &[u8]| {
        b.iter()
            .copied()
            .skip_while(|&x| x == 0)
            .collect::<Vec<u8>>()
    };
    (strip(n), strip(e))
}

fn rsa_jwk(pub_pem: &str) -> Value {
    let (n, e) = rsa_n_e(pub_pem);
    json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)})
}

fn p256_jwk() -> Value {
    let spki = pem_der(&keypair(Algorithm::ES256).1);
    let point = &spki[spki.len() - 64..];
    json!({"kty": "EC", "crv": "P-256", "x": b64(&point[..32]), "y": b64(&point[32..])})
}

fn ed25519_jwk() -> Value {
    let spki = pem_der(&keypair(Algorithm::EdDSA).1);
    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&spki[spki.len() - 32..])})
}

/// `jwk` with the members of `extra` added or replaced.
fn with(jwk: &Value, extra: Value) -> Value {
    let mut out = jwk.clone();
    for (k, v) in extra.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

fn jwk_set(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn jwk_auth(keys: &[Value]) -> Result<Authenticator, portcullis::ConfigError> {
    Authenticator::builder()
        .jwk_set_json(jwk_set(keys))
        .clock(|| NOW)
        .build()
}

fn signed_with_kid(alg: Algorithm, kid: &str) -> String {
    signer(alg).kid(kid).sign(&claims("client")).unwrap()
}

/// Replaces the signature segment of `token` with `sig` (raw bytes).
fn with_signature(token: &str, sig: &[u8]) -> String {
    let cut = token.rfind('.').unwrap();
    format!("{}.{}", &token[..cut], b64(sig))
}

fn signature_of(token: &str) -> Vec<u8> {
    let s = &token[token.rfind('.').unwrap() + 1..];
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

/// Flips the lowest bit of the last character of a base64url segment that has unused
/// trailing bits: the same bytes, in a non-canonical encoding.
fn non_canonical(seg: &str) -> String {
    assert_ne!(seg.len() % 4, 0, "segment has no trailing bits");
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = seg.as_bytes()[seg.len() - 1];
    let i = ALPHABET.iter().position(|&c| c == last).unwrap();
    let mut out = seg[..seg.len() - 1].to_owned();
    out.push(ALPHABET[i ^ 1] as char);
    out
}

fn big_sub_one(n: &[u8]) -> Vec<u8> {
    let mut out = n.to_vec();
    for b in out.iter_mut().rev() {
        if *b == 0 {
            *b = 0xff;
        } else {
            *b -= 1;
            break;
        }
    }
    out
}

fn big_add_one(n: &[u8]) -> Vec<u8> {
    let mut out = n.to_vec();
    for b in out.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            break;
        }
    }
    out
}

/// A big-endian integer as exactly `len` bytes.
fn be(value: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len - value.len()];
    out.extend_from_slice(value);
    out
}

fn der_integer(v: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = v.iter().copied().skip_while(|&b| b == 0).collect();
    if v.is_empty() || v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, v.len() as u8];
    out.extend(v);
    out
}

// ---------------------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn e1_no_header_401_without_error_code() {
    let app = fedn_app();
    for (method, path) in [
        ("GET", "/me"),
        ("POST", "/api/v1/clients/add"),
        ("GET", "/api/v1/clients/"),
        ("GET", "/nowhere"),
    ] {
        let got = send(&app, method, path, None).await;
        assert_rejected(&got, 401, Some(MISSING), "missing_token", "Missing token");
    }
    let auth = hs_builder().build().unwrap();
    let err = auth.authenticate(&HeaderMap::new()).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::MissingCredentials);
    check_error(
        &auth,
        &err,
        401,
        Some(MISSING),
        "missing_token",
        "Missing token",
    );
}

#[tokio::test]
async fn e2_other_scheme_401_without_error_code() {
    let app = fedn_app();
    let valid = hs256().sign(&claims("admin")).unwrap();
    let values = [
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        "Digest username=\"admin\"".to_owned(),
        "Negotiate YIIBhwYGKwYBBQUC".to_owned(),
        format!("Token {valid}"),
        format!("JWT {valid}"),
        format!("Bearer{valid}"),
        format!("Bear {valid}"),
        format!("Bearerx {valid}"),
        valid.clone(),
        String::new(),
    ];
    for value in &values {
        let got = send(&app, "GET", "/api/v1/clients/", Some(value)).await;
        assert_rejected(
            &got,
            401,
            Some(MISSING),
            "missing_token",
            "Invalid token scheme, expected Bearer",
        );
    }
    // With FEDN_AUTH_SCHEME=Token, `Bearer` is the other scheme.
    let auth = hs_builder().schemes(["Token"]).build().unwrap();
    let app = common::app(auth, me_policy());
    let got = send(&app, "GET", "/me", Some(&bearer(&valid))).await;
    assert_rejected(
        &got,
        401,
        Some(r#"Token realm="api""#),
        "missing_token",
        "Invalid token scheme, expected Token",
    );
}

#[tokio::test]
async fn e3_scheme_any_case_one_or_more_spaces_accepted() {
    let app = fedn_app();
    let token = hs256().sign(&claims("client")).unwrap();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        for spaces in [" ", "  ", "     "] {
            let got = send(
                &app,
                "GET",
                "/me",
                Some(&format!("{scheme}{spaces}{token}")),
            )
            .await;
            assert_eq!(got.0, 200, "{scheme}{spaces:?}: {:?}", got.2);
            assert_eq!(got.2, json!({"sub": "user-1", "roles": ["client"]}));
        }
    }
    let auth = hs_builder().schemes(["Token"]).build().unwrap();
    let app = common::app(auth, me_policy());
    let got = send(&app, "GET", "/me", Some(&format!("token  {token}"))).await;
    assert_eq!(got.0, 200, "{:?}", got.2);
}

#[tokio::test]
async fn e4_empty_duplicate_or_comma_joined_credentials_400() {
    let app = fedn_app();
    let t = hs256().sign(&claims("client")).unwrap();
    let values = [
        "Bearer".to_owned(),
        "bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        format!("Bearer {t}, Bearer {t}"),
        format!("Bearer {t},Bearer {t}"),
        format!("Bearer {t},{t}"),
        format!("Bearer {t}, {t}"),
        format!("Bearer {t} {t}"),
        format!("Bearer {t} "),
        format!("Bearer\t{t}"),
        format!("Bearer \t{t}"),
        format!("Bearer \"{t}\""),
    ];
    for value in &values {
        let got = send(&app, "GET", "/me", Some(value)).await;
        assert_rejected(
            &got,
            400,
            Some(INVALID_REQUEST),
            "invalid_request",
            "Invalid request",
        );
    }
    // Two Authorization headers: both valid, identical, or one of another scheme.
    let admin = hs256().sign(&claims("admin")).unwrap();
    for (first, second) in [
        (bearer(&t), bearer(&admin)),
        (bearer(&t), bearer(&t)),
        ("Basic dXNlcjpwYXNz".to_owned(), bearer(&admin)),
        (bearer(&admin), String::new()),
    ] {
        let req = Request::get("/api/v1/clients/")
            .header("authorization", &first)
            .header("authorization", &second)
            .body(Body::empty())
            .unwrap();
        let got = request(&app, req).await;
        assert_rejected(
            &got,
            400,
            Some(INVALID_REQUEST),
            "invalid_request",
            "Invalid request",
        );
    }
}

#[tokio::test]
async fn e5_size_cap_before_decoding_400() {
    let app = fedn_app();
    let huge_token = format!(
        "{}.{}.{}",
        b64(HS_HEADER.as_bytes()),
        "A".repeat(1 << 20),
        "A".repeat(43)
    );
    let dots = ".".repeat(1_000_000);
    let letters = "a".repeat(1 << 20);
    for value in [
        bearer(&huge_token),
        bearer(&dots),
        bearer(&letters),
        format!("Bearer {}", "x".repeat(2 << 20)),
    ] {
        let got = send(&app, "GET", "/me", Some(&value)).await;
        assert_rejected(
            &got,
            400,
            Some(INVALID_REQUEST),
            "invalid_request",
            "Invalid request",
        );
    }
    let auth = hs_builder().build().unwrap();
    for token in [&huge_token, &dots, &letters] {
        let err = auth.verify(token).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InvalidRequest, "{err}");
        assert_eq!(err.to_string(), "token larger than the size cap");
    }
    // The cap is the token's length: the largest valid token under 8 KiB passes, one more
    // byte of claims makes it a 400.
    let token_with = |pad: usize| {
        hs256()
            .sign(&claims_with("client", json!({"pad": "p".repeat(pad)})))
            .unwrap()
    };
    let pad = (5000..7000)
        .rev()
        .find(|&n| token_with(n).len() <= 8192)
        .unwrap();
    let fits = token_with(pad);
    assert!(fits.len() > 8188, "{}", fits.len());
    let got = send(&app, "GET", "/me", Some(&bearer(&fits))).await;
    assert_eq!(got.0, 200, "{:?}", got.2);
    let over = token_with(pad + 1);
    assert!(over.len() > 8192);
    let got = send(&app, "GET", "/me", Some(&bearer(&over))).await;
    assert_rejected(
        &got,
        400,
        Some(INVALID_REQUEST),
        "invalid_request",
        "Invalid request",
    );
}

#[tokio::test]
async fn e6_client_identity_headers_never_trusted() {
    let app = fedn_app();
    let spoof = |req: http::request::Builder| {
        req.header("x-user", "admin")
            .header("x-forwarded-user", "admin")
            .header("x-role", "admin")
            .header("x-roles", "admin")
            .header("x-auth-request-user", "admin")
            .header("remote-user", "admin")
    };
    // No token: the identity headers do not authenticate anyone.
    for path in ["/me", "/api/v1/clients/"] {
        let req = spoof(Request::get(path)).body(Body::empty()).unwrap();
        let got = request(&app, req).await;
        assert_rejected(&got, 401, Some(MISSING), "missing_token", "Missing token");
    }
    // A client token: the handler sees the token's identity only, and admin routes stay shut.
    let client = bearer(&hs256().sign(&claims("client")).unwrap());
    let req = spoof(Request::get("/me"))
        .header("authorization", &client)
        .body(Body::empty())
        .unwrap();
    let got = request(&app, req).await;
    assert_eq!(got.0, 200);
    assert_eq!(got.2, json!({"sub": "user-1", "roles": ["client"]}));
    let req = spoof(Request::get("/api/v1/clients/"))
        .header("authorization", &client)
        .body(Body::empty())
        .unwrap();
    let got = request(&app, req).await;
    assert_rejected(
        &got,
        403,
        Some(INSUFFICIENT),
        "insufficient_scope",
        "Insufficient permissions",
    );

    // A Principal already in the request extensions (put there by anything in front of the
    // layer) is dropped: only the layer's own verification makes one.
    let other = Authenticator::builder()
        .hmac_secret("another-secret-another-secret-32")
        .clock(|| NOW)
        .build()
        .unwrap();
    let other_token = Signer::hmac(Algorithm::HS256, "another-secret-another-secret-32")
        .unwrap()
        .sign(&json!({"sub": "mallory", "role": "admin", "exp": NOW + 3600}))
        .unwrap();
    let forged: Principal = other.verify(&other_token).unwrap();
    let with_forged = |path: &str, authz: Option<&str>| {
        let mut req = Request::get(path);
        if let Some(a) = authz {
            req = req.header("authorization", a);
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut().insert(forged.clone());
        req
    };
    let got = request(&app, with_forged("/api/v1/clients/", None)).await;
    assert_rejected(&got, 401, Some(MISSING), "missing_token", "Missing token");
    let got = request(&app, with_forged("/me", Some(&client))).await;
    assert_eq!(got.2, json!({"sub": "user-1", "roles": ["client"]}));
    // On a public route the handler sees no principal at all.
    let public = Router::new()
        .route(
            "/health/whoami",
            get(|p: Option<Principal>| async move {
                axum::Json(json!({"sub": p.as_ref().and_then(Principal::subject)}))
            }),
        )
        .layer(AuthLayer::new(hs_builder().build().unwrap(), me_policy()));
    let got = request(&public, with_forged("/health/whoami", None)).await;
    assert_eq!((got.0, got.2), (200, json!({"sub": null})));
}

#[test]
fn e7_grpc_metadata_duplicate_authorization_unauthenticated_bin_ignored() {
    let auth = hs_builder().build().unwrap();
    let token = hs256().sign(&claims("client")).unwrap();
    let value = HeaderValue::from_str(&bearer(&token)).unwrap();

    // Two `authorization` metadata entries.
    let mut md = HeaderMap::new();
    md.insert("content-type", HeaderValue::from_static("application/grpc"));
    md.append("authorization", value.clone());
    md.append("authorization", value.clone());
    let err = auth.token_from_headers(&md).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::InvalidRequest);
    assert_eq!(err.grpc_code(), GrpcCode::Unauthenticated);
    check_error(
        &auth,
        &err,
        400,
        Some(INVALID_REQUEST),
        "invalid_request",
        "Invalid request",
    );
    let err = auth.authenticate(&md).unwrap_err();
    assert_eq!(err.grpc_code(), GrpcCode::Unauthenticated);

    // Binary (`-bin`) entries are not credentials, whatever they hold.
    let bin = HeaderName::from_static("authorization-bin");
    let mut md = HeaderMap::new();
    md.insert("content-type", HeaderValue::from_static("application/grpc"));
    md.insert(
        bin.clone(),
        HeaderValue::from_str(&b64(bearer(&token).as_bytes())).unwrap(),
    );
    let err = auth.token_from_headers(&md).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::MissingCredentials);
    assert_eq!(err.grpc_code(), GrpcCode::Unauthenticated);
    check_error(
        &auth,
        &err,
        401,
        Some(MISSING),
        "missing_token",
        "Missing token",
    );
    md.insert(bin.clone(), HeaderValue::from_str(&bearer(&token)).unwrap());
    assert_eq!(
        auth.authenticate(&md).unwrap_err().kind(),
        AuthErrorKind::MissingCredentials
    );

    // Next to one real `authorization` entry, a `-bin` entry changes nothing.
    md.insert("authorization", value);
    md.append(bin, HeaderValue::from_static("garbage"));
    assert_eq!(auth.token_from_headers(&md).unwrap(), token);
    assert_eq!(auth.authenticate(&md).unwrap().subject(), Some("user-1"));
}

// ---------------------------------------------------------------------------------------
// Format
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn f1_exactly_three_non_empty_segments() {
    let auth = hs_builder().build().unwrap();
    let valid = hs_token(HS_HEADER, &payload());
    accepted(&auth, &valid).await;
    let parts: Vec<&str> = valid.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let jwe_header = b64(br#"{"alg":"dir","enc":"A256GCM"}"#);
    let cases = [
        String::new(),
        h.to_owned(),
        format!("{h}.{p}"),
        format!("{h}.{p}."),
        format!("{h}..{s}"),
        format!(".{p}.{s}"),
        format!("{h}.{p}.{s}."),
        format!(".{h}.{p}.{s}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}.{s}.{p}.{s}"),
        format!(
            "{jwe_header}..{}.{p}.{}",
            b64(b"iv-iv-iv-iv-"),
            b64(b"tag-tag-tag-tag-")
        ),
        format!(
            "{jwe_header}.{s}.{}.{p}.{}",
            b64(b"iv-iv-iv-iv-"),
            b64(b"tag-tag-tag-tag-")
        ),
        "..".to_owned(),
        "...".to_owned(),
        "....".to_owned(),
    ];
    for token in &cases {
        refused(&auth, token).await;
    }
    // JWS JSON serialization (flattened and general), raw and base64url-wrapped.
    let flattened = json!({"protected": h, "payload": p, "signature": s}).to_string();
    let general =
        json!({"payload": p, "signatures": [{"protected": h, "signature": s}]}).to_string();
    for doc in [&flattened, &general] {
        refused(&auth, doc).await;
        refused(&auth, &b64(doc.as_bytes())).await;
    }
}

#[tokio::test]
async fn f2_strict_base64url() {
    let auth = hs_builder().build().unwrap();
    let signer = hs256();
    // Claims whose encoding holds `_` and `-`, so the standard alphabet differs.
    let claims_text = claims_with("client", json!({"x": "???>>>~~~"})).to_string();
    let h = b64(HS_HEADER_ODD.as_bytes());
    let p = b64(claims_text.as_bytes());
    assert!(p.contains('_') && p.contains('-'), "{p}");
    assert_ne!(h.len() % 4, 0);
    let valid = craft_segments(&signer, &h, &p);
    accepted(&auth, &valid).await;

    let pad = |seg: &str| format!("{seg}{}", "=".repeat((4 - seg.len() % 4) % 4));
    let std_alphabet = |seg: &str| seg.replace('-', "+").replace('_', "/");
    let mut cases = vec![
        // Padding, signed over the padded text so only the padding is wrong.
        craft_segments(&signer, &pad(&h), &p),
        craft_segments(&signer, &h, &format!("{p}==")),
        // `+` and `/` (the standard alphabet), signed over that text.
        craft_segments(&signer, &h, &std_alphabet(&p)),
        // Whitespace inside a segment.
        craft_segments(&signer, &format!("{} {}", &h[..8], &h[8..]), &p),
        craft_segments(&signer, &h, &format!("{}\n{}", &p[..8], &p[8..])),
        craft_segments(&signer, &h, &format!("{}\t{}", &p[..8], &p[8..])),
        craft_segments(&signer, &format!(" {h}"), &p),
        // Non-canonical trailing bits in the header, and in the signature.
        craft_segments(&signer, &non_canonical(&h), &p),
    ];
    let sig = &valid[valid.rfind('.').unwrap() + 1..];
    assert_eq!(sig.len() % 4, 3);
    let head = &valid[..valid.rfind('.').unwrap()];
    cases.push(format!("{head}.{}", non_canonical(sig)));
    cases.push(format!("{head}.{}", pad(sig)));
    // A signature in the standard alphabet (vary a claim until the signature has `-` or `_`).
    let with_marks = (0..1000)
        .map(|i| {
            craft_segments(
                &signer,
                &h,
                &b64(claims_with("client", json!({"n": i}))
                    .to_string()
                    .as_bytes()),
            )
        })
        .find(|t| t[t.rfind('.').unwrap()..].contains(['-', '_']))
        .unwrap();
    let cut = with_marks.rfind('.').unwrap();
    accepted(&auth, &with_marks).await;
    cases.push(format!(
        "{}.{}",
        &with_marks[..cut],
        std_alphabet(&with_marks[cut + 1..])
    ));
    cases.push(format!("{head}.{sig} "));
    cases.push(format!("{head}.{sig}\r\n"));
    // Non-canonical trailing bits in the payload (a length with unused bits).
    let odd = ["a", "ab", "abc"]
        .iter()
        .map(|x| {
            b64(claims_with("client", json!({ "x": x }))
                .to_string()
                .as_bytes())
        })
        .find(|p| !p.len().is_multiple_of(4))
        .unwrap();
    accepted(&auth, &craft_segments(&signer, &h, &odd)).await;
    cases.push(craft_segments(&signer, &h, &non_canonical(&odd)));
    for token in &cases {
        refused(&auth, token).await;
    }
}

#[tokio::test]
async fn f3_header_and_claims_are_utf8_json_objects() {
    let auth = hs_builder().build().unwrap();
    let signer = hs256();
    let header = HS_HEADER.as_bytes();
    let body = payload();
    let body = body.as_bytes();
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    let bom = b"\xef\xbb\xbf";
    let utf16: Vec<u8> = HS_HEADER
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (cat(bom, header), body.to_vec()),
        (header.to_vec(), cat(bom, body)),
        (cat(header, b"x"), body.to_vec()),
        (header.to_vec(), cat(body, b"{}")),
        (header.to_vec(), cat(body, b"\0")),
        (header.to_vec(), cat(body, b"]")),
        (cat(header, b","), body.to_vec()),
        (format!("[{HS_HEADER}]").into_bytes(), body.to_vec()),
        (header.to_vec(), format!("[{}]", payload()).into_bytes()),
        (header.to_vec(), b"\"client\"".to_vec()),
        (header.to_vec(), b"4000000000".to_vec()),
        (header.to_vec(), b"null".to_vec()),
        (header.to_vec(), b"true".to_vec()),
        (header.to_vec(), Vec::new()),
        (b"\"HS256\"".to_vec(), body.to_vec()),
        (utf16, body.to_vec()),
        (
            b"{\"alg\":\"HS256\",\"x\":\"\xc3\x28\"}".to_vec(),
            body.to_vec(),
        ),
        (
            header.to_vec(),
            [&br#"{"sub":""#[..], b"\xff", &br#"","exp":4000000000}"#[..]].concat(),
        ),
        (
            header.to_vec(),
            [
                &br#"{"sub":""#[..],
                b"\xed\xa0\x80",
                &br#"","exp":4000000000}"#[..],
            ]
            .concat(),
        ),
        (b"{'alg':'HS256'}".to_vec(), body.to_vec()),
        (
            header.to_vec(),
            format!("{{sub:\"a\",exp:{}}}", NOW + 3600).into_bytes(),
        ),
    ];
    for (h, p) in &cases {
        let token = craft_bytes(&signer, h, p);
        refused(&auth, &token).await;
    }
}

#[tokio::test]
async fn f4_duplicate_member_names_401() {
    let auth = hs_builder().build().unwrap();
    let exp = NOW + 3600;
    let headers = [
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
        r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
        r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
    ];
    for header in headers {
        refused(&auth, &hs_token(header, &payload())).await;
    }
    let payloads = [
        format!(r#"{{"sub":"u","role":"client","role":"admin","exp":{exp}}}"#),
        format!(r#"{{"sub":"u","role":"client","r\u006fle":"admin","exp":{exp}}}"#),
        format!(r#"{{"sub":"u","role":"admin","exp":1,"exp":{exp}}}"#),
        format!(r#"{{"sub":"u","sub":"admin","role":"admin","exp":{exp}}}"#),
        format!(r#"{{"sub":"u","role":"admin","exp":{exp},"x":{{"a":1,"a":2}}}}"#),
        format!(r#"{{"sub":"u","role":"admin","exp":{exp},"x":[{{"a":1,"a":2}}]}}"#),
    ];
    let app = fedn_app();
    for p in &payloads {
        let token = hs_token(HS_HEADER, p);
        refused(&auth, &token).await;
        // Last-wins would have made these admins.
        let got = send(&app, "GET", "/api/v1/clients/", Some(&bearer(&token))).await;
        assert_rejected(
            &got,
            401,
            Some(INVALID_TOKEN),
            "invalid_token",
            "Invalid token",
        );
    }
}

#[tokio::test]
async fn f5_deep_nesting_and_huge_arrays_401() {
    let auth = hs_builder().build().unwrap();
    let exp = NOW + 3600;
    let nested_arrays = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let nested_objects =
        |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let zeros = |n: usize| format!("[{}]", vec!["0"; n].join(","));
    // All of these fit under the default 8 KiB cap.
    let payloads = [
        format!(r#"{{"sub":"u","exp":{exp},"x":{}}}"#, nested_arrays(2000)),
        format!(r#"{{"sub":"u","exp":{exp},"x":{}}}"#, nested_objects(800)),
        format!(r#"{{"sub":"u","exp":{exp},"role":{}}}"#, nested_arrays(200)),
        format!(r#"{{"sub":"u","exp":{exp},"x":{}}}"#, zeros(2500)),
        format!(
            r#"{{"sub":"u","exp":{exp},"aud":{}}}"#,
            zeros(2000).replace('0', "\"\"")
        ),
    ];
    for p in &payloads {
        let token = hs_token(HS_HEADER, p);
        assert!(token.len() <= 8192, "{}", token.len());
        refused(&auth, &token).await;
    }
    let header = format!(r#"{{"alg":"HS256","x":{}}}"#, nested_arrays(2000));
    refused(&auth, &hs_token(&header, &payload())).await;

    // With the cap raised far beyond any real token: still 401, no stack overflow.
    let big = hs_builder()
        .max_token_bytes(portcullis::MAX_TOKEN_BYTES_CAP)
        .build()
        .unwrap();
    let payloads = [
        format!(r#"{{"sub":"u","exp":{exp},"x":{}}}"#, nested_arrays(20_000)),
        format!(r#"{{"sub":"u","exp":{exp},"x":{}}}"#, nested_objects(5_000)),
        format!(r#"{{"sub":"u","exp":{exp},"x":{}}}"#, zeros(20_000)),
    ];
    for p in &payloads {
        let token = hs_token(HS_HEADER, p);
        let err = big.verify(&token).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InvalidToken, "{err}");
        check_error(
            &big,
            &err,
            401,
            Some(INVALID_TOKEN),
            "invalid_token",
            "Invalid token",
        );
    }
}

// ---------------------------------------------------------------------------------------
// Algorithms and keys
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn k1_none_lowercase_unknown_or_non_string_alg_401() {
    let auth = hs_builder().build().unwrap();
    accepted(&auth, &hs_token(r#"{"alg":"HS256"}"#, &payload())).await;
    let names = [
        "none", "None", "NONE", "nOnE", "hs256", "Hs256", "HS256 ", " HS256", "HS-256", "HS256\0",
        "HS384", "HS512", "RS256", "PS256", "ES256", "ES512", "EdDSA", "ES256K", "HS1", "A256KW",
        "dir", "",
    ];
    for name in names {
        let header = json!({"alg": name, "typ": "JWT"}).to_string();
        // Signed with the right secret: only the alg is wrong.
        refused(&auth, &hs_token(&header, &payload())).await;
    }
    for alg in [
        json!(256),
        json!(null),
        json!(true),
        json!(["HS256"]),
        json!({"name": "HS256"}),
        json!(0),
    ] {
        let header = json!({"alg": alg}).to_string();
        refused(&auth, &hs_token(&header, &payload())).await;
    }
    refused(&auth, &hs_token(r#"{"typ":"JWT"}"#, &payload())).await;
    // `none` with an empty signature (the classic unsecured JWS).
    let unsecured = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(payload().as_bytes())
    );
    refused(&auth, &unsecured).await;

    // The key decides: an HS384 secret refuses HS256 tokens made with the same secret.
    let secret48 = "0123456789abcdef0123456789abcdef0123456789abcdef";
    let hs384 = Authenticator::builder()
        .hmac_secret(secret48)
        .hmac_algorithm(Algorithm::HS384)
        .clock(|| NOW)
        .build()
        .unwrap();
    let as_hs256 = Signer::hmac(Algorithm::HS256, secret48)
        .unwrap()
        .sign(&claims("client"))
        .unwrap();
    refused(&hs384, &as_hs256).await;
    accepted(
        &hs384,
        &Signer::hmac(Algorithm::HS384, secret48)
            .unwrap()
            .sign(&claims("client"))
            .unwrap(),
    )
    .await;

    // An RSA key configured for RS256 refuses a PS256 signature by the same key.
    let rs = pem_auth(Algorithm::RS256);
    let (private, _) = keypair(Algorithm::RS256);
    accepted(
        &rs,
        &signer(Algorithm::RS256).sign(&claims("client")).unwrap(),
    )
    .await;
    for alg in [
        Algorithm::PS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS512,
    ] {
        refused(
            &rs,
            &Signer::from_pem(alg, &private)
                .unwrap()
                .sign(&claims("client"))
                .unwrap(),
        )
        .await;
    }
    for name in ["rs256", "none", "RS256 "] {
        let header = json!({"alg": name}).to_string();
        refused(&rs, &craft(&signer(Algorithm::RS256), &header, &payload())).await;
    }
}

#[tokio::test]
async fn k2_hmac_with_public_key_bytes_401_and_mixed_sets_refused() {
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let auth = pem_auth(alg);
        let public = keypair(alg).1;
        let jwk = match alg {
            Algorithm::RS256 => rsa_jwk(&public),
            Algorithm::ES256 => p256_jwk(),
            _ => ed25519_jwk(),
        };
        let der = pem_der(&public);
        let secrets: Vec<Vec<u8>> = vec![
            public.clone().into_bytes(),
            public.trim_end().as_bytes().to_vec(),
            public.replace('\n', "\r\n").into_bytes(),
            der.clone(),
            b64(&der).into_bytes(),
            jwk.to_string().into_bytes(),
            serde_json::to_vec_pretty(&jwk).unwrap(),
        ];
        for secret in &secrets {
            for hs in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let forger = Signer::hmac(hs, secret).unwrap();
                refused(&auth, &forger.sign(&claims("admin")).unwrap()).await;
                let header = json!({"alg": hs.as_str(), "typ": "JWT"}).to_string();
                refused(
                    &auth,
                    &craft(&forger, &header, &claims("admin").to_string()),
                )
                .await;
            }
        }
        // HMAC secrets and public keys are never mixed in one authenticator.
        let mixed = Authenticator::builder()
            .public_key_pem(alg, &public)
            .hmac_secret(SECRET)
            .build();
        assert_eq!(mixed.unwrap_err().setting(), "keys");
        // A JWK set mixing `oct` with asymmetric keys is refused whole.
        let oct = json!({"kty": "oct", "k": b64(SECRET.as_bytes()), "alg": "HS256", "kid": "h"});
        let err = jwk_auth(&[oct, with(&jwk, json!({"kid": "a"}))]).unwrap_err();
        assert_eq!(err.setting(), "jwk_set");
    }
}

#[tokio::test]
async fn k3_jwk_jku_x5u_x5c_never_followed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/.well-known/jwks.json");
    let https = format!("https://127.0.0.1:{port}/jwks");

    let auth = pem_auth(Algorithm::RS256);
    let (attacker_private, attacker_public) = (
        common::fixture("rsa2048b.key.pem"),
        common::fixture("rsa2048b.pub.pem"),
    );
    let attacker = Signer::from_pem(Algorithm::RS256, &attacker_private).unwrap();
    let attacker_jwk = with(
        &rsa_jwk(&attacker_public),
        json!({"kid": "attacker", "alg": "RS256", "use": "sig"}),
    );
    let cert = b64(&pem_der(&attacker_public));
    let headers = [
        json!({"alg": "RS256", "jku": url}),
        json!({"alg": "RS256", "jku": https, "kid": "attacker"}),
        json!({"alg": "RS256", "x5u": url}),
        json!({"alg": "RS256", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": attacker_jwk, "jku": url, "x5u": url}),
        json!({"alg": "RS256", "x5c": [cert]}),
        json!({"alg": "RS256", "x5c": [cert], "x5u": https, "jku": https, "jwk": attacker_jwk}),
    ];
    for header in &headers {
        // The attacker's own key, named or embedded in the header: refused.
        refused(
            &auth,
            &craft(&attacker, &header.to_string(), &claims("admin").to_string()),
        )
        .await;
        // The configured key's token with the same parameters: they are ignored.
        accepted(
            &auth,
            &craft(&signer(Algorithm::RS256), &header.to_string(), &payload()),
        )
        .await;
    }
    // HMAC: an embedded `oct` key is not used either.
    let hs = hs_builder().build().unwrap();
    let evil = "attacker-secret-attacker-secret-!";
    let header =
        json!({"alg": "HS256", "jwk": {"kty": "oct", "k": b64(evil.as_bytes())}, "jku": url})
            .to_string();
    refused(
        &hs,
        &craft(
            &Signer::hmac(Algorithm::HS256, evil).unwrap(),
            &header,
            &claims("admin").to_string(),
        ),
    )
    .await;

    // Nothing ever connected to the listener.
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("accept failed: {e}"),
        Ok((_, peer)) => panic!("the verifier connected to the header's URL (from {peer})"),
    }
}

#[tokio::test]
async fn k4_kid_is_an_opaque_capped_map_key() {
    let (_, pub_a) = keypair(Algorithm::RS256);
    let pub_b = common::fixture("rsa2048b.pub.pem");
    let auth = Authenticator::builder()
        .public_key_pem_with_kid(Algorithm::RS256, &pub_a, "k1")
        .public_key_pem_with_kid(Algorithm::RS256, &pub_b, "k2")
        .clock(|| NOW)
        .build()
        .unwrap();
    accepted(&auth, &signed_with_kid(Algorithm::RS256, "k1")).await;
    let marker = std::env::temp_dir().join(format!("portcullis-k4-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let m = marker.display();
    let kids = [
        "../../../../../../etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        "/dev/zero".to_owned(),
        "..\\..\\windows\\win.ini".to_owned(),
        "file:///etc/passwd".to_owned(),
        "http://127.0.0.1:1/key".to_owned(),
        "' OR '1'='1".to_owned(),
        "k1' OR 1=1 --".to_owned(),
        "1; DROP TABLE keys; --".to_owned(),
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("k1; touch {m}"),
        format!("k1 | touch {m}"),
        "k1\u{0}".to_owned(),
        "k1 ".to_owned(),
        "K1".to_owned(),
        "k\u{ff11}".to_owned(),
        "k2".to_owned(),
        "*".to_owned(),
        "%".to_owned(),
        String::new(),
        "k".repeat(257),
        "k1".repeat(1000),
    ];
    for kid in &kids {
        let header = json!({"alg": "RS256", "kid": kid}).to_string();
        refused(
            &auth,
            &craft(&signer(Algorithm::RS256), &header, &payload()),
        )
        .await;
    }
    for kid in [
        json!(1),
        json!(null),
        json!(true),
        json!(["k1"]),
        json!({"kid": "k1"}),
        json!(1.5),
    ] {
        let header = json!({"alg": "RS256", "kid": kid}).to_string();
        refused(
            &auth,
            &craft(&signer(Algorithm::RS256), &header, &payload()),
        )
        .await;
    }
    // A long kid is refused before any lookup, whatever the key set.
    let hs = hs_builder().build().unwrap();
    let header = json!({"alg": "HS256", "kid": "k".repeat(257)}).to_string();
    refused(&hs, &hs_token(&header, &payload())).await;
    assert!(!marker.exists(), "a kid ran a shell command");
}

#[tokio::test]
async fn k5_no_kid_and_several_candidates_401() {
    let (_, pub_a) = keypair(Algorithm::RS256);
    let pub_b = common::fixture("rsa2048b.pub.pem");
    let no_kid = signer(Algorithm::RS256).sign(&claims("client")).unwrap();

    // Two RS256 keys with kids: a token without kid names neither.
    let named = Authenticator::builder()
        .public_key_pem_with_kid(Algorithm::RS256, &pub_a, "a")
        .public_key_pem_with_kid(Algorithm::RS256, &pub_b, "b")
        .clock(|| NOW)
        .build()
        .unwrap();
    refused(&named, &no_kid).await;
    accepted(&named, &signed_with_kid(Algorithm::RS256, "a")).await;

    // Two RS256 keys without kids: no token could choose, so the configuration is refused
    // (rather than trying one key after the other).
    let unnamed = Authenticator::builder()
        .public_key_pem(Algorithm::RS256, &pub_a)
        .public_key_pem(Algorithm::RS256, &pub_b)
        .clock(|| NOW)
        .build()
        .unwrap_err();
    assert_eq!(unnamed.setting(), "keys");

    // Two ES256 keys in a JWK set: no kid in the token, two candidates.
    let ec = p256_jwk();
    let two_ec = jwk_auth(&[
        with(&ec, json!({"kid": "e1"})),
        with(&ec, json!({"kid": "e2"})),
    ])
    .unwrap();
    refused(
        &two_ec,
        &signer(Algorithm::ES256).sign(&claims("client")).unwrap(),
    )
    .await;
    accepted(&two_ec, &signed_with_kid(Algorithm::ES256, "e2")).await;

    // One candidate: it is used, with or without kids on the keys.
    accepted(&pem_auth(Algorithm::RS256), &no_kid).await;
    let one = Authenticator::builder()
        .public_key_pem_with_kid(Algorithm::RS256, &pub_a, "a")
        .clock(|| NOW)
        .build()
        .unwrap();
    accepted(&one, &no_kid).await;
    // Keys of other algorithms are no candidates.
    let mixed = Authenticator::builder()
        .public_key_pem_with_kid(Algorithm::RS256, &pub_a, "r")
        .public_key_pem_with_kid(Algorithm::ES256, keypair(Algorithm::ES256).1, "e")
        .clock(|| NOW)
        .build()
        .unwrap();
    accepted(
        &mixed,
        &signer(Algorithm::ES256).sign(&claims("client")).unwrap(),
    )
    .await;
    accepted(&mixed, &no_kid).await;
}

/// A token for a 1024-bit key. aws-lc refuses to sign with such a key, so the signature is
/// a placeholder of the key's size; the set-level assertions carry the rule.
fn rsa1024_token(alg: &str) -> String {
    let h = b64(json!({"alg": alg, "kid": "bad"}).to_string().as_bytes());
    let p = b64(payload().as_bytes());
    format!("{h}.{p}.{}", b64(&[0x5a; 128]))
}

/// EMSA-PKCS1-v1_5 encoding of SHA-256(`message`) for a 2048-bit modulus: what `s^e mod n`
/// must equal. With e = 1 it is a valid "signature" of itself.
fn pkcs1_sha256_em(message: &[u8]) -> Vec<u8> {
    const DIGEST_INFO: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
    let mut em = vec![0x00, 0x01];
    em.extend(std::iter::repeat_n(0xff, 256 - 3 - DIGEST_INFO.len() - 32));
    em.push(0x00);
    em.extend_from_slice(&DIGEST_INFO);
    em.extend_from_slice(hash.as_ref());
    em
}

#[tokio::test]
async fn k6_jwk_set_loading_rules() {
    let rsa = rsa_jwk(&keypair(Algorithm::RS256).1);
    let rsa_b = with(
        &rsa_jwk(&common::fixture("rsa2048b.pub.pem")),
        json!({"kid": "good"}),
    );
    let rsa1024 = rsa_jwk(&common::fixture("rsa1024.pub.pem"));
    let ec = p256_jwk();
    let ed = ed25519_jwk();
    let good_token = Signer::from_pem(Algorithm::RS256, common::fixture("rsa2048b.key.pem"))
        .unwrap()
        .kid("good")
        .sign(&claims("client"))
        .unwrap();

    // (label, key named `bad`, a token that the key would verify if it were loaded)
    let cases: Vec<(&str, Value, String)> = vec![
        (
            "use enc",
            with(&rsa, json!({"use": "enc"})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "use SIG",
            with(&rsa, json!({"use": "SIG"})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "use not a string",
            with(&rsa, json!({"use": ["sig"]})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "key_ops sign",
            with(&ec, json!({"key_ops": ["sign"]})),
            signed_with_kid(Algorithm::ES256, "bad"),
        ),
        (
            "key_ops encrypt",
            with(&ed, json!({"key_ops": ["encrypt", "wrapKey"]})),
            signed_with_kid(Algorithm::EdDSA, "bad"),
        ),
        (
            "key_ops empty",
            with(&rsa, json!({"key_ops": []})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "key_ops a string",
            with(&rsa, json!({"key_ops": "verify"})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "RSA with alg ES256",
            with(&rsa, json!({"alg": "ES256"})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "RSA with alg HS256",
            with(&rsa, json!({"alg": "HS256"})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "RSA with alg none",
            with(&rsa, json!({"alg": "none"})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "P-256 with alg ES384",
            with(&ec, json!({"alg": "ES384"})),
            signed_with_kid(Algorithm::ES256, "bad"),
        ),
        (
            "P-256 point named P-384",
            with(&ec, json!({"crv": "P-384"})),
            signed_with_kid(Algorithm::ES256, "bad"),
        ),
        (
            "EC without crv",
            {
                let mut k = ec.clone();
                k.as_object_mut().unwrap().remove("crv");
                k
            },
            signed_with_kid(Algorithm::ES256, "bad"),
        ),
        (
            "EC named P-521",
            with(&ec, json!({"crv": "P-521"})),
            signed_with_kid(Algorithm::ES256, "bad"),
        ),
        (
            "EC with alg EdDSA",
            with(&ec, json!({"alg": "EdDSA"})),
            signed_with_kid(Algorithm::ES256, "bad"),
        ),
        (
            "EC as kty OKP",
            with(&ec, json!({"kty": "OKP"})),
            signed_with_kid(Algorithm::ES256, "bad"),
        ),
        (
            "OKP named X25519",
            with(&ed, json!({"crv": "X25519"})),
            signed_with_kid(Algorithm::EdDSA, "bad"),
        ),
        (
            "OKP named Ed448",
            with(&ed, json!({"crv": "Ed448"})),
            signed_with_kid(Algorithm::EdDSA, "bad"),
        ),
        (
            "Ed25519 with alg ES256",
            with(&ed, json!({"alg": "ES256"})),
            signed_with_kid(Algorithm::EdDSA, "bad"),
        ),
        ("RSA 1024", rsa1024.clone(), rsa1024_token("RS256")),
        (
            "RSA 1024 with alg RS512",
            with(&rsa1024, json!({"alg": "RS512"})),
            rsa1024_token("RS512"),
        ),
        ("RSA with e = 1", with(&rsa, json!({"e": "AQ"})), {
            // With e = 1 the EMSA encoding is its own signature: a forgery anyone can make.
            let h = b64(br#"{"alg":"RS256","kid":"bad"}"#);
            let p = b64(claims("admin").to_string().as_bytes());
            let em = pkcs1_sha256_em(format!("{h}.{p}").as_bytes());
            format!("{h}.{p}.{}", b64(&em))
        }),
        (
            "RSA with e = 0",
            with(&rsa, json!({"e": "AA"})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "RSA without e",
            {
                let mut k = rsa.clone();
                k.as_object_mut().unwrap().remove("e");
                k
            },
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "RSA n padded base64",
            with(
                &rsa,
                json!({"n": format!("{}=", rsa["n"].as_str().unwrap())}),
            ),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "unknown kty",
            with(&rsa, json!({"kty": "RSA-PSS"})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "kty lowercase",
            with(&rsa, json!({"kty": "rsa"})),
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
        (
            "no kty",
            {
                let mut k = rsa.clone();
                k.as_object_mut().unwrap().remove("kty");
                k
            },
            signed_with_kid(Algorithm::RS256, "bad"),
        ),
    ];
    for (label, bad, token) in &cases {
        let bad = with(bad, json!({"kid": "bad"}));
        // Alone, the key leaves the set empty: a configuration error.
        assert!(
            jwk_auth(std::slice::from_ref(&bad)).is_err(),
            "{label}: a set of only this key must be refused"
        );
        // Next to a good key it is skipped, not the whole set.
        let auth = jwk_auth(&[bad, rsa_b.clone()]).unwrap_or_else(|e| panic!("{label}: {e}"));
        let err = auth.verify(token).expect_err(label);
        assert_eq!(err.kind(), AuthErrorKind::InvalidToken, "{label}: {err}");
        refused(&auth, token).await;
        accepted(&auth, &good_token).await;
    }

    // What passes: `use: sig`, `key_ops` holding `verify`, matching `alg`, private members
    // present (and ignored, even when they are garbage).
    let garbage =
        json!({"d": "AAAA", "p": "AAAA", "q": "AAAA", "dp": "AAAA", "dq": "AAAA", "qi": "AAAA"});
    let ok_cases: Vec<(Value, String)> = vec![
        (
            with(
                &rsa,
                json!({"use": "sig", "alg": "RS256", "key_ops": ["verify"]}),
            ),
            signed_with_kid(Algorithm::RS256, "ok"),
        ),
        (
            with(&with(&rsa, garbage.clone()), json!({"use": "sig"})),
            signed_with_kid(Algorithm::RS256, "ok"),
        ),
        (
            with(&ec, json!({"d": "AAAA", "key_ops": ["sign", "verify"]})),
            signed_with_kid(Algorithm::ES256, "ok"),
        ),
        (
            with(&ed, json!({"d": "AAAA", "alg": "EdDSA"})),
            signed_with_kid(Algorithm::EdDSA, "ok"),
        ),
        (
            with(&rsa, json!({"alg": "PS256"})),
            signer(Algorithm::PS256)
                .kid("ok")
                .sign(&claims("client"))
                .unwrap(),
        ),
    ];
    for (jwk, token) in &ok_cases {
        let auth = jwk_auth(&[with(jwk, json!({"kid": "ok"})), rsa_b.clone()]).unwrap();
        assert_eq!(
            accepted(&auth, token).await,
            json!({"sub": "user-1", "roles": ["client"]})
        );
    }
    // A key's `alg` is the only algorithm it verifies: PS256 key, RS256 token refused.
    let ps = jwk_auth(&[with(&rsa, json!({"alg": "PS256", "kid": "ok"}))]).unwrap();
    refused(&ps, &signed_with_kid(Algorithm::RS256, "ok")).await;

    // A duplicate kid refuses the whole set.
    let dup = jwk_auth(&[
        with(&rsa, json!({"kid": "same"})),
        with(&rsa_b, json!({"kid": "same"})),
    ]);
    assert_eq!(dup.unwrap_err().setting(), "jwk_set");
    let dup = jwk_auth(&[
        with(&ec, json!({"kid": "same"})),
        with(&ed, json!({"kid": "same"})),
        rsa_b.clone(),
    ]);
    assert!(dup.is_err());
    // Documents that are not a JWK set.
    for doc in [
        "[]".to_owned(),
        "{}".to_owned(),
        r#"{"keys":{}}"#.to_owned(),
        r#"{"keys":[]}"#.to_owned(),
        format!(r#"{{"keys":[{rsa_b}],"keys":[{rsa}]}}"#),
        format!("{{\"keys\":[{rsa_b}]}} trailing"),
    ] {
        let res = Authenticator::builder().jwk_set_json(doc.clone()).build();
        assert_eq!(res.unwrap_err().setting(), "jwk_set", "{doc}");
    }
}

#[tokio::test]
async fn k7_ecdsa_edge_signatures_401() {
    let auth = pem_auth(Algorithm::ES256);
    let valid = signer(Algorithm::ES256).sign(&claims("client")).unwrap();
    accepted(&auth, &valid).await;
    let sig = signature_of(&valid);
    assert_eq!(sig.len(), 64);
    let (r, s) = (sig[..32].to_vec(), sig[32..].to_vec());
    let zero = vec![0u8; 32];
    let one = be(&[1], 32);
    let n = P256_N.to_vec();
    let n1 = big_sub_one(&n);
    let max = vec![0xffu8; 32];
    let values = [
        ("0", &zero),
        ("1", &one),
        ("n", &n),
        ("n-1", &n1),
        ("2^256-1", &max),
    ];
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, v) in &values {
        cases.push((format!("r={name}"), [v.as_slice(), &s].concat()));
        cases.push((format!("s={name}"), [&r, v.as_slice()].concat()));
        cases.push((format!("r=s={name}"), [v.as_slice(), v.as_slice()].concat()));
    }
    cases.push(("r=s".into(), [r.as_slice(), &r].concat()));
    cases.push(("swapped".into(), [s.as_slice(), &r].concat()));
    // The same signature, DER-encoded (what OpenSSL and Java emit).
    let ints = [der_integer(&r), der_integer(&s)].concat();
    let der_sig = [vec![0x30, ints.len() as u8], ints].concat();
    cases.push(("DER".into(), der_sig));
    // Wrong lengths.
    for len in [1, 31, 32, 63, 65, 66, 96, 128] {
        let mut v = sig.clone();
        v.resize(len, 0);
        cases.push((format!("{len} bytes"), v));
    }
    cases.push(("leading zero".into(), [&[0u8][..], &sig].concat()));
    cases.push((
        "r and s with leading zeros".into(),
        [&[0u8][..], &r, &[0u8][..], &s].concat(),
    ));
    cases.push(("doubled".into(), [&sig[..], &sig[..]].concat()));
    for (label, bytes) in &cases {
        let token = with_signature(&valid, bytes);
        assert!(auth.verify(&token).is_err(), "{label}");
        refused(&auth, &token).await;
    }
    // P-384: a P-256-sized signature, and zeros.
    let es384 = pem_auth(Algorithm::ES384);
    let valid384 = signer(Algorithm::ES384).sign(&claims("client")).unwrap();
    accepted(&es384, &valid384).await;
    let sig384 = signature_of(&valid384);
    refused(&es384, &with_signature(&valid384, &sig384[..64])).await;
    refused(&es384, &with_signature(&valid384, &[0u8; 96])).await;
}

#[tokio::test]
async fn k7_rsa_edge_signatures_401() {
    let (n, _) = rsa_n_e(&keypair(Algorithm::RS256).1);
    assert_eq!(n.len(), 256);
    let n1 = big_sub_one(&n);
    let n_plus = big_add_one(&n);
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        let auth = pem_auth(alg);
        let valid = signer(alg).sign(&claims("client")).unwrap();
        accepted(&auth, &valid).await;
        let sig = signature_of(&valid);
        assert_eq!(sig.len(), 256);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("0", vec![0u8; 256]),
            ("1", be(&[1], 256)),
            ("n-1", n1.clone()),
            ("n", n.clone()),
            ("n+1", n_plus.clone()),
            ("2^2048-1", vec![0xff; 256]),
            ("1 byte", vec![1]),
            ("255 bytes", sig[1..].to_vec()),
            ("truncated", sig[..255].to_vec()),
            ("leading zero, 257 bytes", [&[0u8][..], &sig].concat()),
            ("trailing zero, 257 bytes", [&sig[..], &[0u8][..]].concat()),
            ("512 bytes", [&sig[..], &sig[..]].concat()),
            ("128 bytes", sig[..128].to_vec()),
        ];
        for (label, bytes) in &cases {
            let token = with_signature(&valid, bytes);
            assert!(auth.verify(&token).is_err(), "{alg} {label}");
            refused(&auth, &token).await;
        }
    }
    // Ed25519: zeros and wrong lengths.
    let ed = pem_auth(Algorithm::EdDSA);
    let valid = signer(Algorithm::EdDSA).sign(&claims("client")).unwrap();
    accepted(&ed, &valid).await;
    let sig = signature_of(&valid);
    for bytes in [
        vec![0u8; 64],
        sig[..63].to_vec(),
        [&sig[..], &[0u8][..]].concat(),
        vec![],
    ] {
        let token = with_signature(&valid, &bytes);
        refused(&ed, &token).await;
    }
}

// ---------------------------------------------------------------------------------------
// Header parameters
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn h1_crit_401_unless_every_name_understood() {
    let auth = hs_builder().build().unwrap();
    let headers = [
        json!({"alg": "HS256", "crit": ["exp"], "exp": NOW + 3600}),
        json!({"alg": "HS256", "crit": ["x-policy"], "x-policy": "strict"}),
        json!({"alg": "HS256", "crit": ["b64"], "b64": true}),
        json!({"alg": "HS256", "crit": ["alg"]}),
        json!({"alg": "HS256", "crit": []}),
        json!({"alg": "HS256", "crit": "x-policy", "x-policy": "strict"}),
        json!({"alg": "HS256", "crit": null}),
        json!({"alg": "HS256", "crit": [1]}),
    ];
    for h in &headers {
        refused(&auth, &hs_token(&h.to_string(), &payload())).await;
    }
    // Declared as understood: accepted when present; still refused for other names, for a
    // named parameter that is absent, and for a list mixing both.
    let understands = hs_builder().understand_crit("x-policy").build().unwrap();
    let h = json!({"alg": "HS256", "crit": ["x-policy"], "x-policy": "strict"});
    accepted(&understands, &hs_token(&h.to_string(), &payload())).await;
    for h in [
        json!({"alg": "HS256", "crit": ["x-policy"]}),
        json!({"alg": "HS256", "crit": ["x-policy", "x-other"], "x-policy": 1, "x-other": 2}),
        json!({"alg": "HS256", "crit": ["x-other"], "x-other": 2}),
    ] {
        refused(&understands, &hs_token(&h.to_string(), &payload())).await;
    }
}

#[tokio::test]
async fn h2_b64_false_401() {
    let auth = hs_builder().build().unwrap();
    let signer = hs256();
    for h in [
        json!({"alg": "HS256", "b64": false, "crit": ["b64"]}),
        json!({"alg": "HS256", "b64": false}),
        json!({"alg": "HS256", "b64": "false"}),
        json!({"alg": "HS256", "b64": 0}),
        json!({"alg": "HS256", "b64": null}),
    ] {
        let h64 = b64(h.to_string().as_bytes());
        // As RFC 7797 would sign it (the raw payload), and as plain JWS would.
        let raw = payload();
        let detached_sig = signer.sign_segments(&h64, &raw).unwrap();
        refused(&auth, &format!("{h64}..{detached_sig}")).await;
        refused(&auth, &craft(&signer, &h.to_string(), &payload())).await;
    }
    let understands = hs_builder().understand_crit("b64").build().unwrap();
    let h = json!({"alg": "HS256", "b64": false, "crit": ["b64"]}).to_string();
    refused(&understands, &craft(&signer, &h, &payload())).await;
}

#[tokio::test]
async fn h3_explicit_typing_when_configured() {
    let typed = hs_builder().require_typ("at+jwt").build().unwrap();
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/At+Jwt",
    ] {
        accepted(
            &typed,
            &hs_token(&json!({"alg": "HS256", "typ": typ}).to_string(), &payload()),
        )
        .await;
    }
    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("at+jwt "),
        json!("id+jwt"),
        json!("application/jwt"),
        json!(""),
        json!(5),
        json!(null),
        json!(["at+jwt"]),
    ] {
        refused(
            &typed,
            &hs_token(&json!({"alg": "HS256", "typ": typ}).to_string(), &payload()),
        )
        .await;
    }
    refused(&typed, &hs_token(r#"{"alg":"HS256"}"#, &payload())).await;
    // Not configured: `typ` is optional.
    let plain = hs_builder().build().unwrap();
    for h in [
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"alg":"HS256","typ":"at+jwt"}"#,
    ] {
        accepted(&plain, &hs_token(h, &payload())).await;
    }
}

#[tokio::test]
async fn h4_cty_jwt_enc_zip_401() {
    let auth = hs_builder().build().unwrap();
    let inner = hs256().sign(&claims("admin")).unwrap();
    let headers = [
        json!({"alg": "HS256", "cty": "JWT"}),
        json!({"alg": "HS256", "cty": "jwt"}),
        json!({"alg": "HS256", "cty": "application/jwt"}),
        json!({"alg": "HS256", "cty": "Application/JWT"}),
        json!({"alg": "HS256", "cty": 1}),
        json!({"alg": "HS256", "enc": "A256GCM"}),
        json!({"alg": "HS256", "enc": null}),
        json!({"alg": "HS256", "zip": "DEF"}),
        json!({"alg": "HS256", "zip": ""}),
    ];
    for h in &headers {
        refused(&auth, &hs_token(&h.to_string(), &payload())).await;
    }
    // A nested token as the payload, with cty JWT.
    let nested = craft_bytes(
        &hs256(),
        json!({"alg": "HS256", "cty": "JWT"}).to_string().as_bytes(),
        inner.as_bytes(),
    );
    refused(&auth, &nested).await;
}

// ---------------------------------------------------------------------------------------
// Claims (injected clock)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn c1_exp_required_and_leeway_boundary_pinned() {
    let policy = me_policy;
    for (leeway, auth) in [
        (60u64, hs_builder().build().unwrap()),
        (5, hs_builder().leeway(5).build().unwrap()),
        (0, hs_builder().leeway(0).build().unwrap()),
    ] {
        let app = app(auth.clone(), policy());
        let token = |exp: u64| {
            hs256()
                .sign(&claims_with(
                    "client",
                    json!({"exp": exp, "iat": exp - 3600}),
                ))
                .unwrap()
        };
        // NOW - L - 1: expired.
        let expired = token(NOW - leeway - 1);
        let got = send(&app, "GET", "/me", Some(&bearer(&expired))).await;
        assert_rejected(
            &got,
            401,
            Some(INVALID_TOKEN),
            "invalid_token",
            "Token expired",
        );
        let err = auth.verify(&expired).unwrap_err();
        assert!(err.is_expired(), "{err}");
        // NOW - L + 1: still inside the leeway.
        let got = send(&app, "GET", "/me", Some(&bearer(&token(NOW - leeway + 1)))).await;
        assert_eq!(got.0, 200, "leeway {leeway}: {:?}", got.2);
        assert_eq!(got.2["sub"], "user-1");
    }
    // The custom leeway is the one used: 30 s late passes with 60, fails with 5.
    let late = hs256()
        .sign(&claims_with("client", json!({"exp": NOW - 30})))
        .unwrap();
    accepted(&hs_builder().build().unwrap(), &late).await;
    refused_with(
        &hs_builder().leeway(5).build().unwrap(),
        &late,
        "Token expired",
    )
    .await;
    // `exp` is required.
    let auth = hs_builder().build().unwrap();
    refused(
        &auth,
        &hs256()
            .sign(&claims_with("client", json!({"exp": null})))
            .unwrap(),
    )
    .await;
    refused(
        &auth,
        &hs256().sign(&json!({"sub": "u", "role": "admin"})).unwrap(),
    )
    .await;
    // The leeway cap.
    assert_eq!(
        hs_builder().leeway(301).build().unwrap_err().setting(),
        "leeway"
    );
}

#[tokio::test]
async fn c2_nbf_in_the_future_beyond_leeway_401() {
    for (leeway, auth) in [
        (60u64, hs_builder().build().unwrap()),
        (5, hs_builder().leeway(5).build().unwrap()),
    ] {
        let token = |nbf: u64| {
            hs256()
                .sign(&claims_with("client", json!({"nbf": nbf})))
                .unwrap()
        };
        refused(&auth, &token(NOW + leeway + 1)).await;
        refused(&auth, &token(NOW + 86_400)).await;
        accepted(&auth, &token(NOW + leeway - 1)).await;
        accepted(&auth, &token(NOW - 10)).await;
    }
}

#[tokio::test]
async fn c3_iat_in_the_future_beyond_leeway_401() {
    for (leeway, auth) in [
        (60u64, hs_builder().build().unwrap()),
        (5, hs_builder().leeway(5).build().unwrap()),
    ] {
        let token = |iat: u64| {
            hs256()
                .sign(&claims_with("client", json!({"iat": iat})))
                .unwrap()
        };
        refused(&auth, &token(NOW + leeway + 1)).await;
        refused(&auth, &token(NOW + 3599)).await;
        accepted(&auth, &token(NOW + leeway - 1)).await;
        accepted(&auth, &token(NOW - 86_400)).await;
    }
}

#[tokio::test]
async fn c4_numeric_date_wrong_types_401() {
    let auth = hs_builder().build().unwrap();
    let exp = NOW + 3600;
    let bad = [
        json!(exp.to_string()),
        json!(true),
        json!(false),
        json!(null),
        json!(-1),
        json!(-1.5),
        json!(i64::MIN),
        json!(1e300),
        json!(f64::MAX),
        json!(u64::MAX),
        json!([exp]),
        json!({"t": exp}),
        json!(""),
    ];
    for name in ["exp", "nbf", "iat"] {
        for v in &bad {
            let mut c = claims("client");
            c[name] = v.clone();
            refused(&auth, &hs256().sign(&c).unwrap()).await;
        }
    }
    // Raw JSON spellings serde_json would otherwise read as numbers near NOW.
    for raw in [
        "1e400",
        "17e8x",
        "0x6553F100",
        "+1700003600",
        "01700003600",
        "NaN",
        "Infinity",
    ] {
        let p = format!(r#"{{"sub":"u","role":"client","exp":{exp},"nbf":{raw}}}"#);
        refused(&auth, &hs_token(HS_HEADER, &p)).await;
    }
}

#[tokio::test]
async fn c5_configured_iss_and_aud_required_and_matching() {
    let iss = "https://issuer.example";
    let aud = "portcullis-api";
    let auth = hs_builder().issuer(iss).audience(aud).build().unwrap();
    let good = claims_with("client", json!({"iss": iss, "aud": aud}));
    accepted(&auth, &hs256().sign(&good).unwrap()).await;
    accepted(
        &auth,
        &hs256()
            .sign(&claims_with(
                "client",
                json!({"iss": iss, "aud": ["other", aud]}),
            ))
            .unwrap(),
    )
    .await;
    let changes = [
        json!({"iss": null}),
        json!({"iss": 5}),
        json!({"iss": [iss]}),
        json!({"iss": {"iss": iss}}),
        json!({"iss": true}),
        json!({"iss": "https://evil.example"}),
        json!({"iss": "https://issuer.example/"}),
        json!({"iss": "HTTPS://ISSUER.EXAMPLE"}),
        json!({"iss": ""}),
        json!({"aud": null}),
        json!({"aud": 5}),
        json!({"aud": true}),
        json!({"aud": "other"}),
        json!({"aud": ["other"]}),
        json!({"aud": []}),
        json!({"aud": [5]}),
        json!({"aud": [aud, 5]}),
        json!({"aud": [[aud]]}),
        json!({"aud": {"aud": aud}}),
        json!({"aud": "portcullis-api "}),
        json!({"aud": "Portcullis-API"}),
        json!({"aud": "portcullis-api other"}),
    ];
    for change in &changes {
        let mut c = good.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        refused(&auth, &hs256().sign(&c).unwrap()).await;
    }
    // No issuer configured: any issuer passes, but a wrong type is still refused.
    let open = hs_builder().build().unwrap();
    accepted(
        &open,
        &hs256()
            .sign(&claims_with("client", json!({"iss": "anyone"})))
            .unwrap(),
    )
    .await;
    // No audience configured: a token that carries `aud` was minted for some service and
    // is refused (RFC 7519 section 4.1.3), with the fix named; the dangerous opt-out
    // takes any value.
    let anything = hs256()
        .sign(&claims_with(
            "client",
            json!({"iss": "anyone", "aud": "anything"}),
        ))
        .unwrap();
    refused(&open, &anything).await;
    let err = open.verify(&anything).unwrap_err();
    assert!(err.to_string().contains("PORTCULLIS_AUDIENCE"), "{err}");
    assert!(err.to_string().contains(".audience(..)"), "{err}");
    let unchecked = hs_builder()
        .dangerous()
        .allow_unchecked_audience()
        .build()
        .unwrap();
    accepted(&unchecked, &anything).await;
    for change in [json!({"aud": 5}), json!({"iss": 5}), json!({"aud": [1]})] {
        for auth in [&open, &unchecked] {
            refused(
                auth,
                &hs256()
                    .sign(&claims_with("client", change.clone()))
                    .unwrap(),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn c6_token_for_another_audience_or_issuer_refused() {
    let idp = "https://idp.example";
    // Two services trust one issuer and one key.
    let svc_a = hs_builder().issuer(idp).audience("svc-a").build().unwrap();
    let svc_b = hs_builder().issuer(idp).audience("svc-b").build().unwrap();
    let for_a = hs256()
        .sign(&claims_with("admin", json!({"iss": idp, "aud": "svc-a"})))
        .unwrap();
    let for_b = hs256()
        .sign(&claims_with("admin", json!({"iss": idp, "aud": ["svc-b"]})))
        .unwrap();
    accepted(&svc_a, &for_a).await;
    accepted(&svc_b, &for_b).await;
    refused(&svc_b, &for_a).await;
    refused(&svc_a, &for_b).await;
    // The same key used by another issuer.
    let other_idp = hs256()
        .sign(&claims_with(
            "admin",
            json!({"iss": "https://other.example", "aud": "svc-a"}),
        ))
        .unwrap();
    refused(&svc_a, &other_idp).await;
    // Through the layer, with an admin token for the other service.
    let app = app(svc_b.clone(), me_policy());
    let got = send(&app, "GET", "/api/v1/clients/", Some(&bearer(&for_a))).await;
    assert_rejected(
        &got,
        401,
        Some(INVALID_TOKEN),
        "invalid_token",
        "Invalid token",
    );
}

#[tokio::test]
async fn c7_bad_signature_on_expired_token_reports_signature() {
    let auth = hs_builder().build().unwrap();
    let expired = hs256()
        .sign(&claims_with(
            "client",
            json!({"exp": NOW - 3600, "iat": NOW - 7200}),
        ))
        .unwrap();
    refused_with(&auth, &expired, "Token expired").await;
    let other = Signer::hmac(Algorithm::HS256, "an-other-secret-an-other-secret-!").unwrap();
    let forged = other
        .sign(&claims_with(
            "client",
            json!({"exp": NOW - 3600, "iat": NOW - 7200}),
        ))
        .unwrap();
    let mut tampered_sig = signature_of(&expired);
    tampered_sig[0] ^= 1;
    for token in [forged, with_signature(&expired, &tampered_sig)] {
        let err = auth.verify(&token).unwrap_err();
        assert!(!err.is_expired());
        assert_eq!(err.to_string(), "invalid signature");
        refused_with(&auth, &token, "Invalid token").await;
    }
    // Same for an RSA key.
    let rs = pem_auth(Algorithm::RS256);
    let expired = signer(Algorithm::RS256)
        .sign(&claims_with("client", json!({"exp": NOW - 3600})))
        .unwrap();
    refused_with(&rs, &expired, "Token expired").await;
    let mut sig = signature_of(&expired);
    sig[10] ^= 0x80;
    let err = rs.verify(&with_signature(&expired, &sig)).unwrap_err();
    assert_eq!(err.to_string(), "invalid signature");
    refused_with(&rs, &with_signature(&expired, &sig), "Invalid token").await;
}

// ---------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn r1_role_claim_of_wrong_type_gives_no_roles_403() {
    let app = fedn_app();
    let values = [
        json!(5),
        json!(1.5),
        json!(true),
        json!(null),
        json!({"admin": true}),
        json!({"role": "admin"}),
        json!([1, 2]),
        json!([["admin"]]),
        json!([{"role": "admin"}]),
        json!([null]),
        json!(""),
        json!([]),
    ];
    for v in &values {
        let token = hs256()
            .sign(&json!({"sub": "u", "role": v, "exp": NOW + 3600}))
            .unwrap();
        for (method, path) in [("POST", "/api/v1/clients/add"), ("GET", "/api/v1/clients/")] {
            let got = send(&app, method, path, Some(&bearer(&token))).await;
            assert_rejected(
                &got,
                403,
                Some(INSUFFICIENT),
                "insufficient_scope",
                "Insufficient permissions",
            );
        }
        // Any valid token may see /me: it has no roles.
        let got = send(&app, "GET", "/me", Some(&bearer(&token))).await;
        assert_eq!(
            (got.0, got.2),
            (200, json!({"sub": "u", "roles": []})),
            "role {v}"
        );
    }
    // A nested role path whose parent has the wrong type.
    let auth = hs_builder()
        .role_claim("realm_access.roles")
        .build()
        .unwrap();
    let nested = common::app(auth, me_policy());
    for v in [
        json!("admin"),
        json!(5),
        json!(["admin"]),
        json!({"roles": 5}),
        json!({"roles": {"admin": 1}}),
    ] {
        let token = hs256()
            .sign(&json!({"sub": "u", "realm_access": v, "exp": NOW + 3600}))
            .unwrap();
        let got = send(&nested, "GET", "/api/v1/clients/", Some(&bearer(&token))).await;
        assert_rejected(
            &got,
            403,
            Some(INSUFFICIENT),
            "insufficient_scope",
            "Insufficient permissions",
        );
    }
    let token = hs256()
        .sign(&json!({"sub": "u", "realm_access": {"roles": ["admin"]}, "exp": NOW + 3600}))
        .unwrap();
    assert_eq!(
        send(&nested, "GET", "/api/v1/clients/", Some(&bearer(&token)))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn r2_default_deny_for_unmatched_routes_and_methods() {
    let app = fedn_app();
    let client = bearer(&hs256().sign(&claims("client")).unwrap());
    for (method, path) in [
        ("GET", "/nowhere"),
        ("GET", "/"),
        ("GET", "/api/v1/clients/add"),
        ("PUT", "/api/v1/clients/add"),
        ("DELETE", "/api/v1/clients/add"),
        ("DELETE", "/me"),
        ("POST", "/me"),
        ("POST", "/add_combiner"),
        ("OPTIONS", "/api/v1/clients/add"),
    ] {
        let got = send(&app, method, path, Some(&client)).await;
        assert_rejected(
            &got,
            403,
            Some(INSUFFICIENT),
            "insufficient_scope",
            "Insufficient permissions",
        );
    }
    assert_eq!(
        send(&app, "POST", "/api/v1/clients/add", Some(&client))
            .await
            .0,
        200
    );
    // An empty policy lets nobody in, not even admin.
    let empty = app_with(Policy::builder().build().unwrap());
    let admin = bearer(&hs256().sign(&claims("admin")).unwrap());
    for (method, path) in [
        ("GET", "/me"),
        ("GET", "/anything"),
        ("POST", "/api/v1/clients/add"),
    ] {
        let got = send(&empty, method, path, Some(&admin)).await;
        assert_rejected(
            &got,
            403,
            Some(INSUFFICIENT),
            "insufficient_scope",
            "Insufficient permissions",
        );
    }
}

fn app_with(policy: Policy) -> Router {
    app(hs_builder().build().unwrap(), policy)
}

#[tokio::test]
async fn r3_exact_role_and_segment_matching() {
    let app = fedn_app();
    let token = |role: &str| bearer(&hs256().sign(&claims(role)).unwrap());
    for role in [
        "administrator",
        "Admin",
        "ADMIN",
        "admin2",
        "adm",
        "admin*",
        "*",
    ] {
        let got = send(&app, "GET", "/api/v1/clients/", Some(&token(role))).await;
        assert_rejected(
            &got,
            403,
            Some(INSUFFICIENT),
            "insufficient_scope",
            "Insufficient permissions",
        );
    }
    assert_eq!(
        send(&app, "GET", "/api/v1/clients/", Some(&token("admin")))
            .await
            .0,
        200
    );
    for role in ["clients", "Client", "client-x", "cli"] {
        let got = send(&app, "POST", "/api/v1/clients/add", Some(&token(role))).await;
        assert_rejected(
            &got,
            403,
            Some(INSUFFICIENT),
            "insufficient_scope",
            "Insufficient permissions",
        );
    }
    assert_eq!(
        send(&app, "POST", "/api/v1/clients/add", Some(&token("client")))
            .await
            .0,
        200
    );

    // Public prefixes and rule paths match whole segments, case-sensitively.
    let policy = Policy::builder()
        .public_prefix("/internal")
        .allow("GET", "/api/items", ["reader"])
        .build()
        .unwrap();
    let app = app_with(policy);
    for path in ["/internal", "/internal/", "/internal/x", "/internal/x/y"] {
        assert_eq!(send(&app, "GET", path, None).await.0, 200, "{path}");
    }
    for path in [
        "/internalx",
        "/internal-x",
        "/Internal",
        "/internal.x",
        "/x/internal",
    ] {
        let got = send(&app, "GET", path, None).await;
        assert_rejected(&got, 401, Some(MISSING), "missing_token", "Missing token");
    }
    let reader = token("reader");
    assert_eq!(send(&app, "GET", "/api/items", Some(&reader)).await.0, 200);
    assert_eq!(
        send(&app, "GET", "/api/items?x=/internal", Some(&reader))
            .await
            .0,
        200
    );
    for path in [
        "/api/itemsx",
        "/api/item",
        "/API/items",
        "/api/items/",
        "/api/items/1",
        "/api//items",
        "/internalx?/internal",
    ] {
        let got = send(&app, "GET", path, Some(&reader)).await;
        assert_rejected(
            &got,
            403,
            Some(INSUFFICIENT),
            "insufficient_scope",
            "Insufficient permissions",
        );
    }
    // Methods are exact too: `get` is not `GET`.
    let req = Request::builder()
        .method("get")
        .uri("/api/items")
        .header("authorization", &reader)
        .body(Body::empty())
        .unwrap();
    let got = request(&app, req).await;
    assert_rejected(
        &got,
        403,
        Some(INSUFFICIENT),
        "insufficient_scope",
        "Insufficient permissions",
    );
}

#[tokio::test]
async fn r4_dot_segments_400_and_encoded_slash_never_splits() {
    let app = fedn_app();
    let admin = bearer(&hs256().sign(&claims("admin")).unwrap());
    let paths = [
        "/./me",
        "/../me",
        "/me/.",
        "/me/..",
        "/api/v1/clients/../clients/",
        "/api/v1/./clients/",
        "/api/%2e%2e/me",
        "/%2e/me",
        "/%2E%2E/me",
        "/.%2e/me",
        "/%2e./me",
        "/health/../api/v1/clients/",
        "/health/%2e%2e/api/v1/clients/",
        "/health/%2E%2e/api/v1/clients/",
        "/health/./x",
    ];
    for path in paths {
        for authz in [None, Some(admin.as_str())] {
            let got = send(&app, "GET", path, authz).await;
            assert_rejected(
                &got,
                400,
                Some(INVALID_REQUEST),
                "invalid_request",
                "Invalid request path",
            );
        }
    }
    // A dot segment behind an encoded slash is a dot segment: 400.
    let got = send(&app, "GET", "/health%2F..%2Fapi%2Fv1%2Fclients%2F", None).await;
    assert_rejected(
        &got,
        400,
        Some(r#"Bearer realm="api", error="invalid_request""#),
        "invalid_request",
        "Invalid request path",
    );
    // `%2F` stays inside its segment: not a public path, not the client route.
    for path in ["/health%2Fx", "/health%2fx"] {
        let got = send(&app, "GET", path, None).await;
        assert_rejected(&got, 401, Some(MISSING), "missing_token", "Missing token");
    }
    let client = bearer(&hs256().sign(&claims("client")).unwrap());
    for path in [
        "/api/v1/clients%2Fadd",
        "/api%2Fv1%2Fclients%2Fadd",
        "/api/v1%2Fclients/add",
    ] {
        let got = send(&app, "POST", path, Some(&client)).await;
        assert_rejected(
            &got,
            403,
            Some(INSUFFICIENT),
            "insufficient_scope",
            "Insufficient permissions",
        );
    }
    // A one-segment parameter takes `a%2Fb` as one segment, and refuses `a/b`.
    let files = app_with(
        Policy::builder()
            .allow("GET", "/files/{name}", ["reader"])
            .build()
            .unwrap(),
    );
    let reader = bearer(&hs256().sign(&claims("reader")).unwrap());
    assert_eq!(
        send(&files, "GET", "/files/a%2Fb", Some(&reader)).await.0,
        200
    );
    // ...but a dot segment hidden behind the encoded slash is refused.
    assert_eq!(
        send(&files, "GET", "/files/..%2Fsecret", Some(&reader))
            .await
            .0,
        400
    );
    let got = send(&files, "GET", "/files/a/b", Some(&reader)).await;
    assert_rejected(
        &got,
        403,
        Some(INSUFFICIENT),
        "insufficient_scope",
        "Insufficient permissions",
    );
}
