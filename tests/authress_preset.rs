//! Authress service-client tokens on the server side
//! (`AuthenticatorBuilder::authress_service_clients`): a loopback "Authress domain" on
//! 127.0.0.1 serves each service client's key set at
//! `/v1/clients/<client>/.well-known/openid-configuration/jwks` and counts the requests;
//! tokens are minted here the way the Authress SDKs mint them (EdDSA, `kid`, `iss`, `sub`,
//! `aud`), then bent one claim at a time.
#![cfg(feature = "jwks")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use portcullis::{
    Algorithm, AuthErrorKind, Authenticator, AuthressServiceClients, ConfigErrorKind, EnvConfig,
    Signer,
};
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000;
const ACCOUNT: &str = "acc_test";

/// A service client's access key: its Ed25519 key and key id.
struct ClientKey {
    signer: Signer,
    jwk: Value,
}

fn client_key(kid: &str) -> ClientKey {
    let pair = Ed25519KeyPair::generate().unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    ClientKey {
        signer: Signer::from_der(Algorithm::EdDSA, der.as_ref())
            .unwrap()
            .kid(kid),
        jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        }),
    }
}

#[derive(Default)]
struct Domain {
    sets: Mutex<HashMap<String, Value>>,
    hits: Mutex<Vec<String>>,
    count: AtomicUsize,
}

async fn jwks(
    State(domain): State<Arc<Domain>>,
    Path(client): Path<String>,
) -> (StatusCode, String) {
    domain.count.fetch_add(1, SeqCst);
    domain.hits.lock().unwrap().push(client.clone());
    match domain.sets.lock().unwrap().get(&client) {
        Some(jwk) => (StatusCode::OK, json!({ "keys": [jwk] }).to_string()),
        None => (StatusCode::NOT_FOUND, String::new()),
    }
}

/// The loopback domain (`http://127.0.0.1:<port>`) serving `clients`' key sets.
async fn domain(clients: &[(&str, &ClientKey)]) -> (String, Arc<Domain>) {
    let state = Arc::new(Domain::default());
    for (id, key) in clients {
        state
            .sets
            .lock()
            .unwrap()
            .insert((*id).to_owned(), key.jwk.clone());
    }
    let app = Router::new()
        .route(
            "/v1/clients/{client}/.well-known/openid-configuration/jwks",
            get(jwks),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

/// Claims as `ServiceClientTokenProvider.get_client_token()` sets them.
fn claims(origin: &str, client: &str) -> Value {
    json!({
        "iss": format!("{origin}/v1/clients/{client}"),
        "aud": format!("{ACCOUNT}.accounts.authress.io"),
        "sub": client,
        "client_id": client,
        "iat": NOW,
        "exp": NOW + 86_400,
        "scopes": "openId",
    })
}

fn auth(origin: &str) -> Authenticator {
    Authenticator::builder()
        .authress_service_clients(AuthressServiceClients::new(ACCOUNT).custom_domain(origin))
        .clock(|| NOW)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_service_client_token_verifies_with_its_clients_keys() {
    let key = client_key("kid-1");
    let (origin, state) = domain(&[("sc_one", &key)]).await;
    let auth = auth(&origin);
    let token = key.signer.sign(&claims(&origin, "sc_one")).unwrap();
    let p = auth.verify_async(&token).await.unwrap();
    assert_eq!(p.subject(), Some("sc_one"));
    assert_eq!(*state.hits.lock().unwrap(), ["sc_one"]);
    // Cached: the next token of that client fetches nothing.
    assert!(auth.verify_async(&token).await.is_ok());
    assert_eq!(state.count.load(SeqCst), 1);
    assert_eq!(auth.tenant_count(), 1);
}

#[tokio::test]
async fn a_service_client_cannot_grant_itself_roles_or_groups() {
    // The client holds the private key: every claim is its own word. Roles and groups it
    // writes are not read; access comes from the records, by `sub`.
    let key = client_key("kid-1");
    let (origin, _state) = domain(&[("sc_one", &key)]).await;
    let auth = auth(&origin);
    let mut c = claims(&origin, "sc_one");
    c["role"] = json!(["admin", "authress-check"]);
    c["groups"] = json!(["operators"]);
    let token = key.signer.sign(&c).unwrap();
    let p = auth.verify_async(&token).await.unwrap();
    assert_eq!(p.subject(), Some("sc_one"));
    assert_eq!(
        p.roles().count(),
        0,
        "self-granted roles: {:?}",
        p.roles().collect::<Vec<_>>()
    );
    assert_eq!(p.groups().count(), 0);
    assert!(!p.has_role("admin"));
    // Another issuer's token keeps its roles (only service clients lose theirs).
    let plain = Authenticator::builder()
        .hmac_secret("0123456789abcdef0123456789abcdef")
        .clock(|| NOW)
        .build()
        .unwrap();
    let t = Signer::hmac(Algorithm::HS256, "0123456789abcdef0123456789abcdef")
        .unwrap()
        .sign(&json!({"sub": "ada", "role": ["admin"], "exp": NOW + 60}))
        .unwrap();
    assert!(plain.verify(&t).unwrap().has_role("admin"));
}

#[tokio::test]
async fn each_client_has_its_own_keys() {
    let one = client_key("kid-1");
    let two = client_key("kid-2");
    let (origin, state) = domain(&[("sc_one", &one), ("sc_two", &two)]).await;
    let auth = auth(&origin);
    // sc_one's key signing a token that claims to be sc_two: sc_two's set lacks the key.
    let forged = one
        .signer
        .clone()
        .kid("kid-2")
        .sign(&claims(&origin, "sc_two"))
        .unwrap();
    let err = auth.verify_async(&forged).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
    assert_eq!(err.message(), "Invalid token");
    assert_eq!(err.to_string(), "invalid signature");
    let ok = two.signer.sign(&claims(&origin, "sc_two")).unwrap();
    assert!(auth.verify_async(&ok).await.is_ok());
    assert!(state.hits.lock().unwrap().iter().all(|c| c == "sc_two"));
}

/// One case per refusal: what is bent, the message, the log text, and whether a key set
/// was fetched for it.
#[tokio::test]
async fn refusals_each_with_their_reason() {
    let key = client_key("kid-1");
    let (origin, state) = domain(&[("sc_one", &key)]).await;
    let auth = auth(&origin);
    let other_port = {
        // The same host on another port is another domain.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut wrong_sub = claims(&origin, "sc_one");
    wrong_sub["sub"] = "sc_other".into();
    // The issuer with a trailing slash is the same client: its checks still apply.
    let mut slash_sub = claims(&origin, "sc_one");
    slash_sub["iss"] = format!("{origin}/v1/clients/sc_one/").into();
    slash_sub["sub"] = "ada".into();
    let mut no_sub = claims(&origin, "sc_one");
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut wrong_aud = claims(&origin, "sc_one");
    wrong_aud["aud"] = "acc_other.accounts.authress.io".into();
    let kidless = Signer::from_der(Algorithm::EdDSA, {
        // The same key without a kid in the header.
        let pair = Ed25519KeyPair::generate().unwrap();
        pair.to_pkcs8v1().unwrap().as_ref().to_vec()
    })
    .unwrap();
    let cases: Vec<(&str, String, &str, &str, bool)> = vec![
        (
            "issuer on another host",
            key.signer
                .sign(&claims("https://evil.example", "sc_one"))
                .unwrap(),
            "Token issuer is not the configured Authress domain",
            "service-client token: the issuer's host is not the configured Authress domain",
            false,
        ),
        (
            "issuer on another port",
            key.signer.sign(&claims(&other_port, "sc_one")).unwrap(),
            "Token issuer is not the configured Authress domain",
            "service-client token: the issuer's host is not the configured Authress domain",
            false,
        ),
        (
            "sub is not the client",
            key.signer.sign(&wrong_sub).unwrap(),
            "Token sub is not the service client of its issuer",
            "service-client token: sub is not the client id in the issuer's path",
            true,
        ),
        (
            "sub is not the client, issuer with a trailing slash",
            key.signer.sign(&slash_sub).unwrap(),
            "Token sub is not the service client of its issuer",
            "service-client token: sub is not the client id in the issuer's path",
            true,
        ),
        (
            "no kid, issuer with a trailing slash",
            kidless.sign(&slash_sub).unwrap(),
            "Token has no kid",
            "service-client token: no kid in the header",
            false,
        ),
        (
            "no sub",
            key.signer.sign(&no_sub).unwrap(),
            "Token sub is not the service client of its issuer",
            "service-client token: sub is not the client id in the issuer's path",
            true,
        ),
        (
            "no kid",
            kidless.sign(&claims(&origin, "sc_one")).unwrap(),
            "Token has no kid",
            "service-client token: no kid in the header",
            false,
        ),
        (
            "another account's audience",
            key.signer.sign(&wrong_aud).unwrap(),
            "Invalid token",
            "claim refused: aud does not match",
            true,
        ),
    ];
    for (name, token, message, log, fetches) in cases {
        let before = state.count.load(SeqCst);
        let err = auth.verify_async(&token).await.unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InvalidToken, "{name}");
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(err.message(), message, "{name}");
        assert_eq!(
            err.body(),
            json!({"error": "invalid_token", "message": message}).to_string(),
            "{name}"
        );
        assert_eq!(
            auth.challenge(&err).unwrap(),
            r#"Bearer realm="api", error="invalid_token""#,
            "{name}"
        );
        assert_eq!(err.to_string(), log, "{name}");
        let fetched = state.count.load(SeqCst) > before;
        // The sub and aud cases need the signature first (one fetch, then cached).
        assert!(fetched <= fetches, "{name}: fetched a key set");
    }
    // Never the foreign host's keys, never for a kid-less token; one fetch per issuer
    // (`.../sc_one` and `.../sc_one/`).
    assert!(state.hits.lock().unwrap().iter().all(|c| c == "sc_one"));
    assert_eq!(state.count.load(SeqCst), 2);
}

#[tokio::test]
async fn other_tokens_are_left_alone() {
    // Authress clients beside an HMAC secret: the users' HMAC tokens carry no `aud` and
    // need none; an Authress-shaped issuer under HMAC is still refused for its host.
    let secret = "0123456789abcdef0123456789abcdef";
    let auth = Authenticator::builder()
        .hmac_secret(secret)
        .authress_service_clients(AuthressServiceClients::new(ACCOUNT))
        .clock(|| NOW)
        .build()
        .unwrap();
    let hs = Signer::hmac(Algorithm::HS256, secret).unwrap();
    let user = hs
        .sign(&json!({"sub": "ada", "exp": NOW + 60, "iss": "https://id.example/realms/x"}))
        .unwrap();
    assert_eq!(auth.verify(&user).unwrap().subject(), Some("ada"));
    let shaped = hs
        .sign(&json!({"sub": "c", "exp": NOW + 60, "iss": "https://id.example/v1/clients/c"}))
        .unwrap();
    assert_eq!(
        auth.verify(&shaped).unwrap_err().message(),
        "Token issuer is not the configured Authress domain"
    );
}

#[test]
fn configuration() {
    let build = |vars: &'static [(&str, &str)]| {
        EnvConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    let c = build(&[("PORTCULLIS_AUTHRESS_ACCOUNT", "acc_1")]).unwrap();
    assert!(c.has_keys());
    assert!(c.build().is_ok());
    let c = build(&[
        ("PORTCULLIS_AUTHRESS_ACCOUNT", "acc_1"),
        ("PORTCULLIS_AUTHRESS_DOMAIN", "login.example.com"),
    ])
    .unwrap();
    assert!(c.build().is_ok());
    let err = build(&[("PORTCULLIS_AUTHRESS_DOMAIN", "login.example.com")]).unwrap_err();
    assert_eq!(err.setting(), "PORTCULLIS_AUTHRESS_ACCOUNT");
    assert_eq!(err.kind(), ConfigErrorKind::RemoteKeys);
    let bad = [
        AuthressServiceClients::new("acc_1").custom_domain("http://login.example.com"),
        AuthressServiceClients::new("acc_1").custom_domain("https://login.example.com/path"),
        AuthressServiceClients::new(""),
    ];
    for clients in bad {
        let err = Authenticator::builder()
            .authress_service_clients(clients.clone())
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "authress_service_clients", "{clients:?}");
    }
    assert_eq!(
        AuthressServiceClients::new("acc_1").audience(),
        "acc_1.accounts.authress.io"
    );
}
