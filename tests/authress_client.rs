//! Authress service-client access keys: the tokens portcullis mints, and tokens the
//! Authress Python SDK minted for the same key (tests/fixtures/authress/python-sdk.json,
//! made once by tests/fixtures/authress/make_fixture.py with `authress` 3.1.126 from
//! PyPI; the key is test-only), verified offline with a clock at the tokens' `iat`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis::client::{AuthressAccessKey, AuthressClientVerifier, TokenProvider};
use portcullis::{AuthErrorKind, Authenticator};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(&common::fixture("authress/python-sdk.json")).unwrap()
}

fn key() -> AuthressAccessKey {
    AuthressAccessKey::parse(fixture()["access_key"].as_str().unwrap()).unwrap()
}

fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn verifier(jwk: &str, custom_domain: Option<&str>, now: u64) -> Authenticator {
    let mut client = AuthressClientVerifier::new("acc-portcullis", "sc_portcullis-test");
    if let Some(d) = custom_domain {
        client = client.custom_domain(d);
    }
    client
        .authenticator(jwk)
        .clock(move || now)
        .build()
        .unwrap()
}

fn python_jwk() -> String {
    fixture()["public_jwk"].to_string()
}

const NOW: u64 = common::NOW;

#[test]
fn parses_the_sdk_key_format() {
    let key = key();
    assert_eq!(key.client_id(), "sc_portcullis-test");
    assert_eq!(key.key_id(), "kid-portcullis-1");
    assert_eq!(key.account_id(), "acc-portcullis");
    // The public key derived from the private key is the one the SDK's fixture names.
    let derived: Value = serde_json::from_str(&key.public_jwk()).unwrap();
    assert_eq!(derived["x"], fixture()["public_jwk"]["x"]);
    assert_eq!(derived["kid"], "kid-portcullis-1");
    assert_eq!(
        (derived["kty"].as_str(), derived["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    for bad in [
        "",
        "a.b.c",
        "a.b.c.d.e",
        "a..c.MC4CAQAwBQYDK2VwBCIEIE99LFw2c3DCiYwrY/Qkg1nIDiagoHtdCwb88RxarVYA",
        "a.b.c.not-base64!",
        "a.b.c.AAAA",
        "eyJrZXlJZCI6ImsifQ==",
    ] {
        let err = AuthressAccessKey::parse(bad).unwrap_err();
        assert!(
            err.to_string().contains("authress access key"),
            "{bad}: {err}"
        );
    }
    let shown = format!("{key:?}");
    assert!(
        !shown.contains("MC4C") && shown.contains("<redacted>"),
        "{shown}"
    );
}

// Acceptance 4: a token minted from the fixed key verifies with the matching public JWK
// and carries the claims the SDKs produce for that key.
#[test]
fn minted_token_verifies_and_carries_the_sdk_claims() {
    let token = key().mint(NOW).unwrap();
    let principal = verifier(&python_jwk(), None, NOW + 10)
        .verify(&token)
        .unwrap();
    assert_eq!(principal.subject(), Some("sc_portcullis-test"));

    let header = segment(&token, 0);
    let claims = segment(&token, 1);
    let python = &fixture()["tokens"][0];
    assert_eq!(
        header, python["header"],
        "alg, kid and typ as the Python SDK sets them"
    );
    for name in ["iss", "aud", "sub", "client_id"] {
        assert_eq!(claims[name], python["claims"][name], "{name}");
    }
    assert_eq!(
        claims["iss"],
        "https://acc-portcullis.api.authress.io/v1/clients/sc_portcullis-test"
    );
    assert_eq!(claims["aud"], "acc-portcullis.accounts.authress.io");
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["exp"], NOW + 86_400, "24 hours, as the SDKs mint");
    let py_claims = &python["claims"];
    assert_eq!(
        py_claims["exp"].as_u64().unwrap() - py_claims["iat"].as_u64().unwrap(),
        86_400
    );
    assert_eq!(
        claims["scope"], "openid",
        "the JavaScript SDK's scope claim"
    );
}

#[test]
fn custom_domain_names_the_issuer() {
    let key = key().custom_domain("login.portcullis.example");
    let token = key.mint(NOW).unwrap();
    let python = &fixture()["tokens"][1];
    assert_eq!(segment(&token, 1)["iss"], python["claims"]["iss"]);
    let auth = verifier(&python_jwk(), Some("https://login.portcullis.example"), NOW);
    assert!(auth.verify(&token).is_ok());
    // Verified against the default issuer, the custom-domain token is refused.
    let err = verifier(&python_jwk(), None, NOW)
        .verify(&token)
        .unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
    // The development path: the verifier derived from the access key itself.
    assert!(
        key.verifier()
            .clock(|| NOW)
            .build()
            .unwrap()
            .verify(&token)
            .is_ok()
    );
}

// Acceptance 4: a tampered token and another key's token are refused.
#[test]
fn tampered_and_foreign_tokens_are_refused() {
    let auth = verifier(&python_jwk(), None, NOW);
    let token = key().mint(NOW).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = segment(&token, 1);
    claims["sub"] = "sc_someone-else".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let err = auth.verify(&forged).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        auth.verify(&flipped).unwrap_err().kind(),
        AuthErrorKind::InvalidToken
    );

    // Another key for the same client id and key id: right claims, wrong signature.
    let other = AuthressAccessKey::parse(
        "sc_portcullis-test.kid-portcullis-1.acc-portcullis.MC4CAQAwBQYDK2VwBCIEIE99LFw2c3DCiYwrY/Qkg1nIDiagoHtdCwb88RxarVYA",
    )
    .unwrap();
    let foreign = other.mint(NOW).unwrap();
    assert_eq!(
        auth.verify(&foreign).unwrap_err().kind(),
        AuthErrorKind::InvalidToken
    );
    assert!(
        other
            .verifier()
            .clock(|| NOW)
            .build()
            .unwrap()
            .verify(&foreign)
            .is_ok()
    );
}

// Acceptance 4: tokens the Authress Python SDK minted for the key verify too.
#[test]
fn python_sdk_tokens_verify() {
    let fixture = fixture();
    for minted in fixture["tokens"].as_array().unwrap() {
        let token = minted["token"].as_str().unwrap();
        let iat = minted["claims"]["iat"].as_u64().unwrap();
        let domain = minted["custom_domain"].as_str();
        let principal = verifier(&python_jwk(), domain, iat).verify(token).unwrap();
        assert_eq!(principal.subject(), Some("sc_portcullis-test"));
        // With the key derived from the access key (development) as well.
        let mut key = key();
        if let Some(d) = domain {
            key = key.custom_domain(d);
        }
        let auth = key.verifier().clock(move || iat).build().unwrap();
        assert!(auth.verify(token).is_ok());
        // A day later it has expired.
        let late = verifier(&python_jwk(), domain, iat + 86_400 + 120);
        assert!(late.verify(token).unwrap_err().is_expired());
    }
}

// A minted token is reused until an hour before it expires, as in the SDKs.
#[tokio::test]
async fn source_reuses_a_token_until_an_hour_before_expiry() {
    let now = Arc::new(AtomicU64::new(NOW));
    let clock = now.clone();
    let source = key()
        .source_builder()
        .clock(move || clock.load(Ordering::SeqCst))
        .build();
    let first = source.token().await.unwrap();
    assert_eq!(first.expires_at(), Some(NOW + 86_400));
    now.store(NOW + 86_400 - 3_601, Ordering::SeqCst);
    assert_eq!(source.token().await.unwrap(), first);
    now.store(NOW + 86_400 - 3_599, Ordering::SeqCst);
    let second = source.token().await.unwrap();
    assert_ne!(second, first);
    assert_eq!(segment(second.secret(), 1)["iat"], NOW + 86_400 - 3_599);
}

#[test]
fn a_jwk_that_is_not_a_key_fails_at_build() {
    let client = AuthressClientVerifier::new("acc-portcullis", "sc_portcullis-test");
    assert!(
        client
            .authenticator(r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#)
            .build()
            .is_err()
    );
    assert_eq!(client.audience(), "acc-portcullis.accounts.authress.io");
}
