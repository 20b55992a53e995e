//! A test kit for your own tests (feature `test-util`): [`TestIssuer`], an OpenID Connect
//! issuer on 127.0.0.1 that serves discovery documents and JWK sets for one or more realms,
//! rotates keys on demand and mints tokens; and
//! [`Signer::generate`](crate::Signer::generate) for a bare key pair.
//!
//! ```
//! use portcullis::test_util::TestIssuer;
//! use portcullis::{Algorithm, AuthLayer, Authenticator, Policy};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let issuer = TestIssuer::start(Algorithm::RS256).await?;
//! let auth = Authenticator::builder().oidc_issuer(issuer.issuer()).build()?;
//! let app = axum::Router::new()
//!     .route("/me", axum::routing::get(|| async { "me" }))
//!     .layer(AuthLayer::new(auth, Policy::builder().allow("GET", "/me", ["*"]).build()?));
//! let token = issuer.mint(&serde_json::json!({"sub": "ada"}));
//! let req = http::Request::get("/me")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(axum::body::Body::empty())?;
//! assert_eq!(app.oneshot(req).await?.status(), 200);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::jose::Algorithm;
use crate::signer::Signer;

/// The name of the realm [`TestIssuer::start`] serves.
pub const DEFAULT_REALM: &str = "test";

/// An OIDC issuer on 127.0.0.1 for tests: each realm `NAME` has the issuer
/// `http://127.0.0.1:PORT/realms/NAME`, its discovery document at
/// `.../.well-known/openid-configuration` and its JWK set at `.../jwks`. Unknown realms
/// answer 404. It counts the requests it serves, and stops when dropped. It needs a tokio
/// runtime with IO enabled (as `#[tokio::test]` has).
pub struct TestIssuer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

struct Realm {
    /// Published keys, the current (signing) one last.
    keys: Vec<Signer>,
}

struct State {
    alg: Algorithm,
    realms: Mutex<HashMap<String, Realm>>,
    discovery: AtomicUsize,
    jwks: AtomicUsize,
}

impl State {
    fn realms(&self) -> std::sync::MutexGuard<'_, HashMap<String, Realm>> {
        self.realms.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TestIssuer {
    /// Starts an issuer with one realm, [`DEFAULT_REALM`], signing with `alg`.
    pub async fn start(alg: Algorithm) -> std::io::Result<Self> {
        Self::with_realms(alg, [DEFAULT_REALM]).await
    }

    /// Starts an issuer with these realms, each with its own key for `alg`.
    pub async fn with_realms<I, S>(alg: Algorithm, realms: I) -> std::io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut map = HashMap::new();
        for name in realms {
            map.insert(
                name.into(),
                Realm {
                    keys: vec![new_key(alg)?],
                },
            );
        }
        let state = Arc::new(State {
            alg,
            realms: Mutex::new(map),
            discovery: AtomicUsize::new(0),
            jwks: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let served = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, addr, &req)) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// The issuer URL of the default realm (for `oidc_issuer` and the `iss` claim).
    pub fn issuer(&self) -> String {
        self.realm(DEFAULT_REALM)
    }

    /// The issuer URL of realm `name`.
    pub fn realm(&self, name: &str) -> String {
        format!("http://{}/realms/{name}", self.addr)
    }

    /// The JWK set URL of realm `name`.
    pub fn jwks_url(&self, name: &str) -> String {
        format!("{}/jwks", self.realm(name))
    }

    /// Adds a realm with a key of its own.
    pub fn add_realm(&self, name: &str) {
        if let Ok(key) = new_key(self.state.alg) {
            self.state
                .realms()
                .insert(name.to_owned(), Realm { keys: vec![key] });
        }
    }

    /// A token from the default realm: `claims` plus `iss` (the realm's issuer) and `exp`
    /// (an hour from now) unless given, signed with the realm's current key (`kid` set).
    pub fn mint(&self, claims: &Value) -> String {
        self.mint_in(DEFAULT_REALM, claims)
    }

    /// A token from realm `name`, as [`mint`](Self::mint). Panics if the realm is unknown
    /// (a test mistake).
    pub fn mint_in(&self, name: &str, claims: &Value) -> String {
        let mut claims = claims.clone();
        if let Some(map) = claims.as_object_mut() {
            map.entry("iss").or_insert_with(|| self.realm(name).into());
            map.entry("exp").or_insert_with(|| (now() + 3600).into());
        }
        let realms = self.state.realms();
        let realm = realms
            .get(name)
            .unwrap_or_else(|| panic!("TestIssuer has no realm `{name}`"));
        let key = realm.keys.last().expect("a realm always has a key");
        key.sign(&claims).expect("a generated key signs")
    }

    /// Rotates realm `name`: a new key becomes the signing key; the old ones stay
    /// published until [`retire_old_keys`](Self::retire_old_keys).
    pub fn rotate(&self, name: &str) {
        if let Ok(key) = new_key(self.state.alg)
            && let Some(realm) = self.state.realms().get_mut(name)
        {
            realm.keys.push(key);
        }
    }

    /// Stops publishing every key of realm `name` but its current one.
    pub fn retire_old_keys(&self, name: &str) {
        if let Some(realm) = self.state.realms().get_mut(name) {
            let current = realm.keys.pop();
            realm.keys = current.into_iter().collect();
        }
    }

    /// How many discovery documents were requested (any realm, known or not).
    pub fn discovery_requests(&self) -> usize {
        self.state.discovery.load(Ordering::SeqCst)
    }

    /// How many JWK sets were requested.
    pub fn jwks_requests(&self) -> usize {
        self.state.jwks.load(Ordering::SeqCst)
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn new_key(alg: Algorithm) -> std::io::Result<Signer> {
    Signer::generate(alg).map_err(|e| std::io::Error::other(e.to_string()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn answer<B>(state: &State, addr: SocketAddr, req: &Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let json = |status: StatusCode, body: Value| {
        let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
        *res.status_mut() = status;
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        res
    };
    let Some(rest) = path.strip_prefix("/realms/") else {
        return json(StatusCode::NOT_FOUND, json!({"error": "not found"}));
    };
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let issuer = format!("http://{addr}/realms/{name}");
    match tail {
        ".well-known/openid-configuration" => {
            state.discovery.fetch_add(1, Ordering::SeqCst);
            if !state.realms().contains_key(name) {
                return json(StatusCode::NOT_FOUND, json!({"error": "unknown realm"}));
            }
            json(
                StatusCode::OK,
                json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}),
            )
        }
        "jwks" => {
            state.jwks.fetch_add(1, Ordering::SeqCst);
            match state.realms().get(name) {
                Some(realm) => {
                    let keys: Vec<&Value> =
                        realm.keys.iter().filter_map(Signer::public_jwk).collect();
                    json(StatusCode::OK, json!({ "keys": keys }))
                }
                None => json(StatusCode::NOT_FOUND, json!({"error": "unknown realm"})),
            }
        }
        _ => json(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}
