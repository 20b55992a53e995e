//! Token introspection (RFC 7662) against authlib's `IntrospectionEndpoint` behind Flask,
//! started on loopback by the test, and RFC 9068 `at+jwt` typing against authlib's
//! `JWTBearerTokenGenerator`.
//!
//! The authorization server counts the introspection requests per token (`GET /count`),
//! so the tests see what was cached and what was shared. Without python3 or PyPI the tests
//! skip visibly (and fail under `PORTCULLIS_STRICT_TESTS=1`).

mod common;
#[allow(unreachable_pub)]
mod python_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use portcullis::introspection::{ClientAuth, Introspection};
use portcullis::revoke::MemoryRevocations;
use portcullis::{Algorithm, AuthErrorKind, AuthLayer, Authenticator, Policy, Principal, Signer};
use serde_json::{Value, json};

const PACKAGES: &[&str] = &["authlib==1.6.5", "flask==3.1.2"];

const BASIC_ID: &str = "rs-basic";
/// Characters that RFC 6749's form encoding inside Basic must carry through.
const BASIC_SECRET: &str = "s3cret:/+ &%x";
const POST_ID: &str = "rs-post";
const POST_SECRET: &str = "p0st-secret";

/// The authorization server: authlib's introspection endpoint in a threaded Flask app.
const SERVER: &str = include_str!("fixtures/authlib_introspection.py");

/// The authorization server, killed on drop.
struct AuthServer {
    child: Child,
    iss: String,
    jwt: String,
    http: reqwest::Client,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AuthServer {
    fn start(venv: &python_support::Venv, delay: &str) -> Self {
        Self::start_with(venv, delay, "")
    }

    /// `pkj`: the public JWK of the `private_key_jwt` client `rs-pkj` (empty: none).
    fn start_with(venv: &python_support::Venv, delay: &str, pkj: &str) -> Self {
        let mut child = Command::new(venv.python())
            .arg("-c")
            .arg(SERVER)
            .env("AUTHLIB_INSECURE_TRANSPORT", "1")
            .env("BASIC_ID", BASIC_ID)
            .env("BASIC_SECRET", BASIC_SECRET)
            .env("POST_ID", POST_ID)
            .env("POST_SECRET", POST_SECRET)
            .env("DELAY", delay)
            .env("PKJ_JWK", pkj)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let hello: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("server said {line:?}: {e}"));
        Self {
            child,
            iss: hello["iss"].as_str().unwrap().to_owned(),
            jwt: hello["jwt"].as_str().unwrap().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn endpoint(&self) -> String {
        format!("{}/introspect", self.iss)
    }

    /// Introspection requests the server received for `token`.
    async fn count(&self, token: &str) -> u64 {
        let token =
            percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC);
        let text = self
            .http
            .get(format!("{}/count?token={token}", self.iss))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.trim().parse().unwrap()
    }

    fn basic(&self) -> Introspection {
        Introspection::new(self.endpoint(), BASIC_ID, BASIC_SECRET)
    }
}

fn venv(test: &str) -> Option<python_support::Venv> {
    python_support::venv(test, PACKAGES)
}

fn authenticator(intro: Introspection) -> Authenticator {
    Authenticator::builder()
        .introspection(intro)
        .role_claim("scope")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn active_inactive_and_cached_with_client_secret_basic() {
    let Some(venv) = venv("active_inactive_and_cached_with_client_secret_basic") else {
        return;
    };
    let server = AuthServer::start(&venv, "0");
    let auth = authenticator(server.basic());

    // Active: a principal like a JWT's, roles from `scope` split at spaces.
    let p = auth.verify_async("opaque-ada").await.unwrap();
    assert_eq!(p.subject(), Some("ada"));
    assert_eq!(p.roles(), ["read", "write"]);
    assert_eq!(p.issuer(), Some(server.iss.as_str()));
    assert_eq!(p.claim("client_id"), Some(&json!("app")));
    // Cached: the sync path answers too, and the server saw one request.
    for _ in 0..5 {
        assert_eq!(
            auth.verify_async("opaque-ada").await.unwrap().subject(),
            Some("ada")
        );
        assert_eq!(auth.verify("opaque-ada").unwrap().subject(), Some("ada"));
    }
    assert_eq!(server.count("opaque-ada").await, 1);

    // Form encoding of the token itself.
    let p = auth.verify_async("opaque/with+odd=chars~").await.unwrap();
    assert_eq!(p.subject(), Some("odd"));

    // Inactive (unknown, expired at the server): 401 invalid_token, remembered briefly.
    for token in ["opaque-unknown", "opaque-expired"] {
        for _ in 0..3 {
            let err = auth.verify_async(token).await.unwrap_err();
            assert_eq!(err.kind(), AuthErrorKind::InvalidToken, "{token}");
            assert_eq!(err.status(), 401);
            assert_eq!(err.message(), "Invalid token");
        }
        assert_eq!(server.count(token).await, 1, "{token}");
    }
    // The sync path never waits: an unseen token is 503, not a pass; the introspection
    // starts in the background, and once it lands the sync path answers from the cache.
    let err = auth.verify("opaque-post").unwrap_err();
    assert_eq!(err.status(), 503);
    let mut answered = None;
    for _ in 0..200 {
        if let Ok(p) = auth.verify("opaque-post") {
            answered = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        answered.expect("introspected in the background").subject(),
        Some("bo")
    );
    assert_eq!(server.count("opaque-post").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_secret_post_and_a_wrong_method() {
    let Some(venv) = venv("client_secret_post_and_a_wrong_method") else {
        return;
    };
    let server = AuthServer::start(&venv, "0");
    let auth = authenticator(
        Introspection::new(server.endpoint(), POST_ID, POST_SECRET)
            .client_auth(ClientAuth::ClientSecretPost),
    );
    let p = auth.verify_async("opaque-post").await.unwrap();
    assert_eq!(p.subject(), Some("bo"));
    assert_eq!(server.count("opaque-post").await, 1);

    // The same client with the method it is not registered for: the server refuses the
    // client, and the answer is 503 (fail-closed), never a pass or a 401 for the token.
    let auth = authenticator(
        Introspection::new(server.endpoint(), POST_ID, POST_SECRET)
            .client_auth(ClientAuth::ClientSecretBasic),
    );
    let err = auth.verify_async("opaque-ada").await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(err.message(), "Token introspection unavailable");
    // A wrong secret likewise.
    let auth = authenticator(Introspection::new(server.endpoint(), BASIC_ID, "wrong"));
    assert_eq!(
        auth.verify_async("opaque-ada").await.unwrap_err().status(),
        503
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_first_requests_make_one_introspection() {
    let Some(venv) = venv("a_hundred_concurrent_first_requests_make_one_introspection") else {
        return;
    };
    // A slow server, so that every request arrives while the first is in flight.
    let server = AuthServer::start(&venv, "0.3");
    let auth = authenticator(server.basic());
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let auth = auth.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                auth.verify_async("opaque-crowd").await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().subject(), Some("crowd"));
    }
    assert_eq!(server.count("opaque-crowd").await, 1);
}

/// The layer: 200 with the principal, 401 with the challenge for an inactive token, and
/// 503 without a challenge when the endpoint is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_the_layer_and_endpoint_down_is_503() {
    let Some(venv) = venv("through_the_layer_and_endpoint_down_is_503") else {
        return;
    };
    let server = AuthServer::start(&venv, "0");
    let auth = authenticator(server.basic());
    let app = Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { axum::Json(json!({"sub": p.subject()})) }),
        )
        .layer(AuthLayer::new(
            auth,
            Policy::builder()
                .allow("GET", "/me", ["read"])
                .build()
                .unwrap(),
        ));
    let ok = common::send(&app, "GET", "/me", Some("Bearer opaque-ada")).await;
    assert_eq!(ok.0, 200, "{:?}", ok.2);
    assert_eq!(ok.2, json!({"sub": "ada"}));
    let bad = common::send(&app, "GET", "/me", Some("Bearer opaque-nope")).await;
    common::assert_rejected(
        &bad,
        401,
        Some(r#"Bearer realm="api", error="invalid_token""#),
        "invalid_token",
        "Invalid token",
    );

    drop(server);
    // Cached before the outage: still served.
    assert_eq!(
        common::send(&app, "GET", "/me", Some("Bearer opaque-ada"))
            .await
            .0,
        200
    );
    // Not cached: the endpoint is down, 503, fail-closed.
    let down = common::send(&app, "GET", "/me", Some("Bearer opaque-post")).await;
    common::assert_rejected(
        &down,
        503,
        None,
        "temporarily_unavailable",
        "Token introspection unavailable",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_jwt_issuers_and_revocation() {
    let Some(venv) = venv("discovery_jwt_issuers_and_revocation") else {
        return;
    };
    let server = AuthServer::start(&venv, "0");
    let revocations = MemoryRevocations::new();
    let auth = Authenticator::builder()
        .introspection(
            Introspection::discover(&server.iss, BASIC_ID, BASIC_SECRET).issuer(&server.iss),
        )
        .issuer(&server.iss)
        .role_claim("scope")
        .revocations(revocations.clone())
        .build()
        .unwrap();
    // The endpoint from the issuer's metadata.
    assert_eq!(
        auth.verify_async("opaque-revoked-here")
            .await
            .unwrap()
            .subject(),
        Some("eve")
    );
    // A JWT of the introspected issuer: the server vouches for it, no key is needed.
    let p = auth.verify_async(&server.jwt).await.unwrap();
    assert_eq!(p.subject(), Some("jay"));
    assert_eq!(server.count(&server.jwt).await, 1);

    // Revocation applies to a cached introspected token on its next use.
    revocations.revoke_jti(&server.iss, "jti-eve", u64::MAX / 2);
    let err = auth.verify_async("opaque-revoked-here").await.unwrap_err();
    assert_eq!(err.message(), "Token revoked");
    assert_eq!(server.count("opaque-revoked-here").await, 1);

    // Exactly this opaque token, by the hash of all of it.
    assert_eq!(
        auth.verify_async("opaque-ada").await.unwrap().subject(),
        Some("ada")
    );
    revocations.revoke(
        portcullis::revoke::Revocation::opaque_token("Bearer opaque-ada", u64::MAX / 2).unwrap(),
    );
    let err = auth.verify_async("opaque-ada").await.unwrap_err();
    assert_eq!(err.message(), "Token revoked");

    // Without the issuer named for introspection, the same JWT is verified with keys,
    // and this one has none: refused.
    let keyless = Authenticator::builder()
        .introspection(server.basic())
        .build()
        .unwrap();
    assert_eq!(
        keyless
            .verify_async(&server.jwt)
            .await
            .unwrap_err()
            .status(),
        401
    );
}

#[tokio::test]
async fn endpoint_down_from_the_start_is_503() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let auth = authenticator(Introspection::new(
        format!("http://127.0.0.1:{port}/introspect"),
        BASIC_ID,
        BASIC_SECRET,
    ));
    let err = auth.verify_async("opaque-ada").await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    assert_eq!(err.status(), 503);
    assert_eq!(auth.challenge(&err), None);
}

#[test]
fn configuration_errors_name_the_setting() {
    let cases = [
        Introspection::new("http://as.example/introspect", "rs", "s"),
        Introspection::new("not a url", "rs", "s"),
        Introspection::new("https://as.example/introspect", "", "s"),
        Introspection::new("https://as.example/introspect", "rs", "s").max_cache(Duration::ZERO),
        Introspection::new("https://as.example/introspect", "rs", "s").opaque_tokens(false),
    ];
    for intro in cases {
        let err = Authenticator::builder()
            .introspection(intro)
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "introspection", "{err}");
    }
    // The cache holds the answers: turning it off is refused.
    let err = Authenticator::builder()
        .introspection(Introspection::new(
            "https://as.example/introspect",
            "rs",
            "s",
        ))
        .token_cache(portcullis::TokenCache::off())
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "introspection");
    // With introspection beside keys, `sub` alone no longer names a user.
    let intro = || Introspection::new("https://as.example/introspect", "rs", "s");
    let alone = Authenticator::builder()
        .introspection(intro())
        .build()
        .unwrap();
    assert!(!alone.accepts_several_issuers());
    let beside = Authenticator::builder()
        .introspection(intro())
        .hmac_secret(common::SECRET)
        .build()
        .unwrap();
    assert!(beside.accepts_several_issuers());
    // The secret never shows.
    let intro = Introspection::new("https://as.example/introspect", "rs", "hunter2-secret");
    assert!(!format!("{intro:?}").contains("hunter2"));
}

/// RFC 9068: tokens of authlib's `JWTBearerTokenGenerator` pass when `at+jwt` is required
/// for their issuer; an ID token with the same claims does not.
#[test]
fn at_jwt_from_authlib_passes_and_an_id_token_does_not() {
    let Some(venv) = venv("at_jwt_from_authlib_passes_and_an_id_token_does_not") else {
        return;
    };
    let out = venv.run_ok(
        r#"
import json
from authlib.jose import JsonWebKey, KeySet, jwt
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator

key = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "k1"})
class Gen(JWTBearerTokenGenerator):
    def get_jwks(self):
        return KeySet([key])
class App:
    def get_client_id(self):
        return "app"
    def get_allowed_scope(self, scope):
        return scope
gen = Gen(issuer="https://as.example")
access = gen.access_token_generator(App(), "client_credentials", None, "read write")
claims = jwt.decode(access, key)
id_token = jwt.encode({"alg": "RS256", "kid": "k1", "typ": "JWT"}, dict(claims), key).decode()
print(json.dumps({"access": access, "id_token": id_token,
                  "jwks": {"keys": [key.as_dict(is_private=False, use="sig", alg="RS256")]}}))
"#,
        &[],
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let (access, id_token) = (
        v["access"].as_str().unwrap(),
        v["id_token"].as_str().unwrap(),
    );
    let build = |typed: bool| {
        let b = Authenticator::builder()
            .jwk_set_json(v["jwks"].to_string())
            .issuer("https://as.example")
            .audience("app")
            .role_claim("scope");
        let b = if typed {
            b.require_typ_for_issuer("https://as.example", "application/at+jwt")
        } else {
            b
        };
        b.build().unwrap()
    };
    let typed = build(true);
    let p = typed.verify(access).unwrap();
    assert_eq!(p.roles(), ["read", "write"]);
    assert_eq!(p.header().get("typ"), Some(&json!("at+jwt")));
    let err = typed.verify(id_token).unwrap_err();
    assert_eq!(err.status(), 401);
    assert_eq!(err.message(), "Invalid token");
    // Without the requirement the ID token would pass: the check is what refuses it.
    assert!(build(false).verify(id_token).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_config_reads_the_introspection_variables() {
    let Some(venv) = venv("env_config_reads_the_introspection_variables") else {
        return;
    };
    let server = AuthServer::start(&venv, "0");
    let vars = [
        ("PORTCULLIS_INTROSPECTION_ISSUER", server.iss.clone()),
        ("PORTCULLIS_INTROSPECTION_CLIENT_ID", POST_ID.to_owned()),
        (
            "PORTCULLIS_INTROSPECTION_CLIENT_SECRET",
            POST_SECRET.to_owned(),
        ),
        (
            "PORTCULLIS_INTROSPECTION_AUTH",
            "client_secret_post".to_owned(),
        ),
        ("PORTCULLIS_INTROSPECTION_CACHE_SECONDS", "30".to_owned()),
        ("PORTCULLIS_ROLE_CLAIM", "scope".to_owned()),
        ("PORTCULLIS_AT_JWT_ISSUERS", "https://as.example".to_owned()),
    ];
    let lookup = |vars: &[(&str, String)], name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let layer = portcullis::EnvConfig::from_lookup(|n| lookup(&vars, n))
        .unwrap()
        .build_layer()
        .unwrap();
    let p = layer
        .authenticator()
        .verify_async("opaque-post")
        .await
        .unwrap();
    assert_eq!(p.subject(), Some("bo"));
    assert_eq!(p.roles(), ["read"]);

    // Each mistake names its variable.
    for (vars, var) in [
        (
            vec![("PORTCULLIS_INTROSPECTION_URL", server.endpoint())],
            "PORTCULLIS_INTROSPECTION_CLIENT_ID",
        ),
        (
            vec![("PORTCULLIS_INTROSPECTION_CLIENT_ID", "rs".to_owned())],
            "PORTCULLIS_INTROSPECTION_CLIENT_ID",
        ),
        (
            vec![
                ("PORTCULLIS_INTROSPECTION_URL", server.endpoint()),
                ("PORTCULLIS_INTROSPECTION_CLIENT_ID", "rs".to_owned()),
                ("PORTCULLIS_INTROSPECTION_CLIENT_SECRET", "s".to_owned()),
                (
                    "PORTCULLIS_INTROSPECTION_AUTH",
                    "private_key_jwt".to_owned(),
                ),
            ],
            "PORTCULLIS_INTROSPECTION_AUTH",
        ),
        (
            vec![
                ("PORTCULLIS_INTROSPECTION_URL", server.endpoint()),
                ("PORTCULLIS_INTROSPECTION_CLIENT_ID", "rs".to_owned()),
                ("PORTCULLIS_INTROSPECTION_CLIENT_SECRET", "s".to_owned()),
                ("PORTCULLIS_INTROSPECTION_CACHE_SECONDS", "soon".to_owned()),
            ],
            "PORTCULLIS_INTROSPECTION_CACHE_SECONDS",
        ),
    ] {
        let err = portcullis::EnvConfig::from_lookup(|n| lookup(&vars, n)).unwrap_err();
        assert_eq!(err.setting(), var, "{err}");
    }
}

/// `private_key_jwt` (RFC 7523): authlib's `JWTBearerClientAssertion` checks the signature
/// with the client's public key, the audience (the endpoint) and that each `jti` is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_client_authentication() {
    let Some(venv) = venv("private_key_jwt_client_authentication") else {
        return;
    };
    let key = Signer::generate(Algorithm::ES256).unwrap();
    let jwk = key.public_jwk().unwrap().to_string();
    let server = AuthServer::start_with(&venv, "0", &jwk);
    let auth = authenticator(Introspection::new(server.endpoint(), "rs-pkj", "").private_key(key));
    // Two tokens, two assertions: a replayed jti would be refused.
    assert_eq!(
        auth.verify_async("opaque-ada").await.unwrap().subject(),
        Some("ada")
    );
    assert_eq!(
        auth.verify_async("opaque-post").await.unwrap().subject(),
        Some("bo")
    );
    // Another key under the same client id: the server refuses the client, 503.
    let other = Signer::generate(Algorithm::ES256).unwrap();
    let auth =
        authenticator(Introspection::new(server.endpoint(), "rs-pkj", "").private_key(other));
    assert_eq!(
        auth.verify_async("opaque-crowd")
            .await
            .unwrap_err()
            .status(),
        503
    );
    // An HMAC secret is not a private key.
    let hmac = Signer::hmac(Algorithm::HS256, [7u8; 32]).unwrap();
    let err = Authenticator::builder()
        .introspection(Introspection::new(server.endpoint(), "rs-pkj", "").private_key(hmac))
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "introspection");
}

/// A loopback server that answers every request with `status` and `body` (after `delay`):
/// a broken or hostile authorization server. Returns its endpoint URL.
async fn raw_server(status: &'static str, body: String, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nlocation: http://127.0.0.1:9/x\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/introspect")
}

/// Answers that are not an active answer fail closed: 503 when the endpoint did not
/// answer as RFC 7662 says, 401 when it did and the answer refuses the token. Never a pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_hostile_answers_never_pass() {
    let exp = 4_000_000_000u64;
    let cases: Vec<(&str, &'static str, String, u16)> = vec![
        (
            "active as a string",
            "200 OK",
            r#"{"active": "true", "sub": "x"}"#.into(),
            503,
        ),
        ("no active", "200 OK", r#"{"sub": "x"}"#.into(), 503),
        ("an array", "200 OK", "[]".into(), 503),
        ("not JSON", "200 OK", "active=true".into(), 503),
        (
            "duplicate active",
            "200 OK",
            r#"{"active": false, "active": true}"#.into(),
            503,
        ),
        ("a redirect", "302 Found", r#"{"active": true}"#.into(), 503),
        (
            "a server error",
            "500 Internal Server Error",
            r#"{"active": true}"#.into(),
            503,
        ),
        (
            "client refused",
            "401 Unauthorized",
            r#"{"error": "invalid_client"}"#.into(),
            503,
        ),
        (
            "over 64 KiB",
            "200 OK",
            format!(r#"{{"active": true, "pad": "{}"}}"#, "a".repeat(70_000)),
            503,
        ),
        (
            "bound to a key",
            "200 OK",
            format!(r#"{{"active": true, "sub": "x", "exp": {exp}, "cnf": {{"jkt": "abc"}}}}"#),
            401,
        ),
        (
            "a DPoP token",
            "200 OK",
            format!(r#"{{"active": true, "sub": "x", "exp": {exp}, "token_type": "DPoP"}}"#),
            401,
        ),
        (
            "for another audience",
            "200 OK",
            format!(r#"{{"active": true, "sub": "x", "exp": {exp}, "aud": "other-api"}}"#),
            401,
        ),
        (
            "another issuer",
            "200 OK",
            format!(
                r#"{{"active": true, "sub": "x", "exp": {exp}, "iss": "https://evil.example"}}"#
            ),
            401,
        ),
        (
            "expired",
            "200 OK",
            r#"{"active": true, "sub": "x", "exp": 1000}"#.into(),
            401,
        ),
        (
            "sub a number",
            "200 OK",
            format!(r#"{{"active": true, "sub": 5, "exp": {exp}}}"#),
            401,
        ),
        (
            "exp a string",
            "200 OK",
            r#"{"active": true, "sub": "x", "exp": "4000000000"}"#.into(),
            401,
        ),
    ];
    for (name, status, body, want) in cases {
        let url = raw_server(status, body, Duration::ZERO).await;
        let auth = Authenticator::builder()
            .introspection(Introspection::new(url, "rs", "s").issuer("https://as.example"))
            .build()
            .unwrap();
        let err = auth
            .verify_async("opaque-token")
            .await
            .map(|p| p.subject().map(str::to_owned))
            .expect_err(name);
        assert_eq!(err.status(), want, "{name}: {err}");
    }

    // Too slow: the shared client's timeout (JwksOptions) bounds the wait.
    let url = raw_server(
        "200 OK",
        r#"{"active": true}"#.into(),
        Duration::from_secs(5),
    )
    .await;
    let auth = Authenticator::builder()
        .introspection(Introspection::new(url, "rs", "s"))
        .jwks_options(portcullis::JwksOptions::new().timeout(Duration::from_millis(300)))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        auth.verify_async("opaque-token")
            .await
            .unwrap_err()
            .status(),
        503
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// An active answer without `iss` (RFC 7662 makes it optional) names the issuer the token
/// was sent for, and the principal says so (per-issuer rules and DPoP modes read it): a
/// JWT's own `iss`, else the one issuer configured; with several and an opaque token, the
/// principal names none (the answer still vouches for the token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_iss_takes_the_one_configured_issuer() {
    let body = r#"{"active": true, "sub": "ada", "exp": 4000000000}"#.to_owned();
    let url = raw_server("200 OK", body.clone(), Duration::ZERO).await;
    let auth = Authenticator::builder()
        .introspection(Introspection::new(url, "rs", "s").issuer("https://as.example"))
        .build()
        .unwrap();
    let p = auth.verify_async("opaque-token").await.unwrap();
    assert_eq!(p.issuer(), Some("https://as.example"));
    assert_eq!(p.subject(), Some("ada"));
    assert_eq!(p.claim("exp"), Some(&serde_json::json!(4_000_000_000u64)));
    let url = raw_server("200 OK", body, Duration::ZERO).await;
    let auth = Authenticator::builder()
        .introspection(
            Introspection::new(url, "rs", "s")
                .issuer("https://as.example")
                .issuer("https://other.example"),
        )
        .build()
        .unwrap();
    let p = auth.verify_async("opaque-token").await.unwrap();
    assert_eq!(p.issuer(), None);
    // A JWT of an introspected issuer: the answer speaks for the JWT's own `iss`.
    let b64 = |v: serde_json::Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let jwt = format!(
        "{}.{}.c2ln",
        b64(serde_json::json!({"alg": "RS256", "typ": "at+jwt"})),
        b64(serde_json::json!({"iss": "https://other.example", "sub": "ada"}))
    );
    let p = auth.verify_async(&jwt).await.unwrap();
    assert_eq!(p.issuer(), Some("https://other.example"));
}
