//! Shared test helpers: fixture keys, signers, a fixed clock, and a guarded axum app.
#![allow(dead_code, unreachable_pub)]

pub mod events;
pub mod grpc;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::{Request, Response};
use portcullis::{
    Algorithm, AuthLayer, Authenticator, AuthenticatorBuilder, Policy, Principal, Signer,
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// "Now" for every test that injects a clock.
pub const NOW: u64 = 1_700_000_000;
/// A 32-byte HS256 secret.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (private PEM, public PEM) of the fixture key for `alg`.
pub fn keypair(alg: Algorithm) -> (String, String) {
    let stem = match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => "rsa2048",
        Algorithm::ES256 => "p256",
        Algorithm::ES384 => "p384",
        Algorithm::EdDSA => "ed25519",
        _ => panic!("{alg} has no key pair"),
    };
    (
        fixture(&format!("{stem}.key.pem")),
        fixture(&format!("{stem}.pub.pem")),
    )
}

pub fn hs256() -> Signer {
    Signer::hmac(Algorithm::HS256, SECRET).unwrap()
}

/// An HS256 token of `claims` with an `exp` far ahead (for tests on the system clock).
pub fn lasting_token(mut claims: Value) -> String {
    claims["exp"] = json!(4_000_000_000u64);
    hs256().sign(&claims).unwrap()
}

/// Claims valid at NOW for an hour.
pub fn claims(role: &str) -> Value {
    json!({"sub": "user-1", "role": role, "exp": NOW + 3600, "iat": NOW})
}

/// An HS256 authenticator with the fixed clock.
pub fn hs_builder() -> AuthenticatorBuilder {
    Authenticator::builder().hmac_secret(SECRET).clock(|| NOW)
}

/// An axum app with the FEDn REST policy plus `GET /me` for any valid token; the handler
/// of `/me` echoes the principal.
pub fn app(auth: Authenticator, policy: Policy) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/api/v1/clients/", get(|| async { "[]" }))
        .route("/api/v1/clients/add", post(|| async { "added" }))
        .route(
            "/me",
            get(|p: Principal| async move {
                axum::Json(json!({"sub": p.subject(), "roles": p.roles()}))
            }),
        )
        .fallback(|| async { "fallback" })
        .layer(AuthLayer::new(auth, policy))
}

pub fn fedn_app() -> Router {
    app(
        hs_builder().build().unwrap(),
        Policy::fedn_rest()
            .allow("GET", "/me", ["*"])
            .build()
            .unwrap(),
    )
}

/// Sends one request with an optional Authorization value; returns (status, headers, body).
pub async fn send(
    app: &Router,
    method: &str,
    path: &str,
    authz: Option<&str>,
) -> (u16, http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = authz {
        req = req.header("authorization", a);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    split(res).await
}

pub async fn split(res: Response<Body>) -> (u16, http::HeaderMap, Value) {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, body)
}

/// Asserts a rejection: status, WWW-Authenticate (None for absent) and JSON body.
pub fn assert_rejected(
    got: &(u16, http::HeaderMap, Value),
    status: u16,
    challenge: Option<&str>,
    code: &str,
    message: &str,
) {
    assert_eq!(got.0, status, "status; body {:?}", got.2);
    assert_eq!(
        got.1.get("www-authenticate").map(|v| v.to_str().unwrap()),
        challenge,
        "WWW-Authenticate"
    );
    assert_eq!(got.2, json!({"error": code, "message": message}), "body");
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with a hand-made header and payload (JSON text), signed with `signer`.
pub fn craft(signer: &Signer, header: &str, payload: &str) -> String {
    let h = b64(header.as_bytes());
    let p = b64(payload.as_bytes());
    let s = signer.sign_segments(&h, &p).unwrap();
    format!("{h}.{p}.{s}")
}
