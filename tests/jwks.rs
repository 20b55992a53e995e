//! Remote key sets (shared/SECURITY.md J1 to J7, K2): a real HTTP issuer on 127.0.0.1
//! (port 0) serves JWK sets, counts requests, and can delay, fail, answer garbage, answer
//! too much, redirect, or go down. The guarded app is called through the layer with
//! `oneshot`. Cache times come from an injected clock; nothing sleeps to wait for a
//! refresh.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use portcullis::{
    Algorithm, AuthErrorKind, AuthLayer, Authenticator, AuthenticatorBuilder, EnvConfig,
    JwksOptions, Policy, Principal, Signer,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

const NOW: u64 = 1_700_000_000;
const TTL: u64 = 600;
const COOLDOWN: u64 = 30;
const STALE: u64 = 3600;

// ---------------------------------------------------------------- keys and tokens

/// An ES256 key generated for this run, with its kid.
struct Key {
    kid: String,
    pem: String,
    signer: Signer,
    jwk: Value,
}

fn es256(kid: &str) -> Key {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    let b64 = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65);
    Key {
        kid: kid.to_owned(),
        signer: Signer::from_pem(Algorithm::ES256, &pem).unwrap().kid(kid),
        pem,
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }),
    }
}

fn set(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn token(key: &Key, iss: Option<&str>) -> String {
    let mut claims =
        json!({"sub": format!("user-of-{}", key.kid), "exp": NOW + 100_000, "iat": NOW});
    if let Some(iss) = iss {
        claims["iss"] = json!(iss);
    }
    key.signer.sign(&claims).unwrap()
}

/// A token whose header names `kid`, with another token's payload and signature: the kid
/// is looked up before any signature check.
fn with_kid(valid: &str, kid: &str) -> String {
    let mut parts = valid.splitn(2, '.');
    let _ = parts.next();
    let rest = parts.next().unwrap();
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": kid}).to_string());
    format!("{header}.{rest}")
}

// ---------------------------------------------------------------- the issuer

#[derive(Clone, Debug)]
enum Behaviour {
    Serve,
    Status(u16),
    Body(&'static str),
    /// `n` bytes sent in 64 KiB chunks; with a Content-Length when `exact`.
    TooBig {
        n: usize,
        exact: bool,
    },
    Redirect,
    Hang,
}

struct IssuerState {
    jwks: Mutex<String>,
    discovery: Mutex<Option<String>>,
    cache_control: Mutex<Option<String>>,
    behaviour: Mutex<Behaviour>,
    gated: AtomicBool,
    gate: Semaphore,
    arrived: Notify,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    other_hits: AtomicUsize,
}

struct Issuer {
    addr: SocketAddr,
    state: Arc<IssuerState>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A response body of chunks, with or without an exact size.
struct TestBody {
    chunks: VecDeque<Bytes>,
    exact: bool,
}

impl TestBody {
    fn full(s: impl Into<Bytes>) -> Self {
        Self {
            chunks: VecDeque::from([s.into()]),
            exact: true,
        }
    }
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.exact {
            http_body::SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            http_body::SizeHint::default()
        }
    }
}

async fn handle(
    st: Arc<IssuerState>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let respond = |status: u16, body: TestBody| {
        let mut res = Response::new(body);
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        res
    };
    match req.uri().path() {
        "/jwks.json" => {
            st.jwks_hits.fetch_add(1, SeqCst);
            st.arrived.notify_one();
            if st.gated.load(SeqCst) {
                st.gate.acquire().await.unwrap().forget();
            }
            let behaviour = st.behaviour.lock().unwrap().clone();
            Ok(match behaviour {
                Behaviour::Serve => {
                    let mut res = respond(200, TestBody::full(st.jwks.lock().unwrap().clone()));
                    res.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    if let Some(cc) = st.cache_control.lock().unwrap().clone() {
                        res.headers_mut()
                            .insert("cache-control", cc.parse().unwrap());
                    }
                    res
                }
                Behaviour::Status(code) => respond(code, TestBody::full("{\"keys\":[]}")),
                Behaviour::Body(body) => respond(200, TestBody::full(body)),
                Behaviour::TooBig { n, exact } => {
                    // A valid set padded with spaces to n bytes.
                    let mut body = st.jwks.lock().unwrap().clone().into_bytes();
                    body.resize(n, b' ');
                    let chunks = body.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
                    respond(200, TestBody { chunks, exact })
                }
                Behaviour::Redirect => {
                    let mut res = respond(302, TestBody::full(""));
                    res.headers_mut()
                        .insert("location", "/moved.json".parse().unwrap());
                    res
                }
                Behaviour::Hang => std::future::pending().await,
            })
        }
        "/.well-known/openid-configuration" => {
            st.discovery_hits.fetch_add(1, SeqCst);
            Ok(match st.discovery.lock().unwrap().clone() {
                Some(doc) => respond(200, TestBody::full(doc)),
                None => respond(404, TestBody::full("")),
            })
        }
        _ => {
            // `/moved.json` (a redirect target) and anything a token header names.
            st.other_hits.fetch_add(1, SeqCst);
            Ok(respond(
                200,
                TestBody::full(st.jwks.lock().unwrap().clone()),
            ))
        }
    }
}

async fn accept_loop(listener: TcpListener, st: Arc<IssuerState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let st = st.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
            // No keep-alive: every fetch is a new connection, so stopping the listener
            // really takes the issuer down.
            let _ = http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

impl Issuer {
    async fn start(jwks: String) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(IssuerState {
            jwks: Mutex::new(jwks),
            discovery: Mutex::new(None),
            cache_control: Mutex::new(None),
            behaviour: Mutex::new(Behaviour::Serve),
            gated: AtomicBool::new(false),
            gate: Semaphore::new(0),
            arrived: Notify::new(),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            other_hits: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Arc::new(Self {
            addr,
            state,
            task: Mutex::new(Some(task)),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn jwks_url(&self) -> String {
        self.url("/jwks.json")
    }

    fn hits(&self) -> usize {
        self.state.jwks_hits.load(SeqCst)
    }

    /// Waits until the issuer has seen `n` key set requests (without sleeping).
    async fn wait_for_hits(&self, n: usize) {
        while self.hits() < n {
            self.state.arrived.notified().await;
        }
    }

    fn publish(&self, jwks: String) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    fn behave(&self, b: Behaviour) {
        *self.state.behaviour.lock().unwrap() = b;
    }

    fn cache_control(&self, cc: &str) {
        *self.state.cache_control.lock().unwrap() = Some(cc.to_owned());
    }

    /// Holds every key set request until `open_gate` (again after an earlier opening).
    fn gate(&self) {
        self.state.gate.forget_permits(usize::MAX);
        self.state.gated.store(true, SeqCst);
    }

    fn open_gate(&self) {
        self.state.gated.store(false, SeqCst);
        self.state.gate.add_permits(10_000);
    }

    /// Stops listening: connections are refused.
    fn down(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    async fn up(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        let listener = TcpListener::bind(self.addr).await.unwrap();
        *self.task.lock().unwrap() = Some(tokio::spawn(accept_loop(listener, self.state.clone())));
    }
}

// ---------------------------------------------------------------- clock and app

#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn new() -> Self {
        Self(Arc::new(AtomicU64::new(NOW)))
    }
    fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, SeqCst);
    }
}

fn builder(clock: &TestClock) -> AuthenticatorBuilder {
    let c = clock.0.clone();
    Authenticator::builder().clock(move || c.load(SeqCst))
}

fn remote(issuer: &Issuer, clock: &TestClock) -> Authenticator {
    builder(clock).jwks_url(issuer.jwks_url()).build().unwrap()
}

fn app(auth: Authenticator) -> Router {
    let policy = Policy::builder()
        .allow("GET", "/me", ["*"])
        .build()
        .unwrap();
    Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { p.subject().unwrap_or("").to_owned() }),
        )
        .layer(AuthLayer::new(auth, policy))
}

/// Status, `WWW-Authenticate`, body.
async fn call(app: &Router, token: &str) -> (u16, Option<String>, String) {
    let req = Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req))
        .await
        .expect("the layer answered in time")
        .unwrap();
    let status = res.status().as_u16();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, www, String::from_utf8(body.to_vec()).unwrap())
}

async fn assert_ok(app: &Router, token: &str, key: &Key) {
    let (status, www, body) = call(app, token).await;
    assert_eq!(
        (status, www, body),
        (200, None, format!("user-of-{}", key.kid))
    );
}

async fn assert_invalid(app: &Router, token: &str) {
    let (status, www, body) = call(app, token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        www.as_deref(),
        Some(r#"Bearer realm="api", error="invalid_token""#)
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "invalid_token", "message": "Invalid token"})
    );
}

/// Polls a future once with a waker that does nothing: `Ready` means it did not wait.
fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(std::task::Waker::noop()))
}

/// Waits until the issuer has seen `n` key set requests, made by a fetch that runs behind
/// the requests (a refresh): no request waits for it.
async fn background_fetch(issuer: &Issuer, n: usize) {
    tokio::time::timeout(Duration::from_secs(20), issuer.wait_for_hits(n))
        .await
        .expect("a background fetch reached the issuer");
}

/// Lets the fetch held at the issuer's gate go on and waits until it has ended (its set
/// installed or its failure recorded): `load_keys` joins the running fetch.
async fn release(auth: &Authenticator, issuer: &Issuer) {
    let mut join = std::pin::pin!(auth.load_keys());
    assert!(
        poll_once(join.as_mut()).is_pending(),
        "no fetch was running"
    );
    issuer.open_gate();
    let _ = join.await;
}

async fn assert_unavailable(app: &Router, token: &str) {
    let (status, www, body) = call(app, token).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(www, None);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "temporarily_unavailable", "message": "Authentication keys unavailable"})
    );
}

// ---------------------------------------------------------------- J1

#[tokio::test]
async fn j1_urls_only_from_configuration_https_or_loopback_http() {
    // Plain http elsewhere than loopback, other schemes and non-URLs fail at build time.
    type Make = fn(AuthenticatorBuilder) -> AuthenticatorBuilder;
    let cases: [(Make, &str); 7] = [
        (
            |b| b.jwks_url("http://issuer.example/jwks.json"),
            "jwks_url",
        ),
        (|b| b.jwks_url("http://10.0.0.1/jwks.json"), "jwks_url"),
        (|b| b.jwks_url("ftp://127.0.0.1/jwks.json"), "jwks_url"),
        (|b| b.jwks_url("jwks.json"), "jwks_url"),
        (|b| b.oidc_issuer("http://login.example"), "oidc_issuer"),
        (
            |b| b.issuer_jwks_url("https://a.example", "http://a.example/jwks"),
            "issuer_jwks_url",
        ),
        (|b| b.jwks_url("file:///etc/passwd"), "jwks_url"),
    ];
    for (make, setting) in cases {
        let err = make(Authenticator::builder()).build().unwrap_err();
        assert_eq!(err.setting(), setting, "{err}");
    }
    for ok in [
        "https://issuer.example/jwks.json",
        "http://127.0.0.1:1/jwks.json",
        "http://localhost:1/jwks.json",
        "http://[::1]:1/jwks.json",
    ] {
        Authenticator::builder().jwks_url(ok).build().unwrap();
    }
    // The risky opt-in allows plain http anywhere.
    Authenticator::builder()
        .jwks_url("http://issuer.internal/jwks.json")
        .dangerous()
        .allow_http_key_urls()
        .build()
        .unwrap();
    // The environment names its variable.
    let err = EnvConfig::from_lookup(|n| {
        (n == "PORTCULLIS_JWKS_URL").then(|| "http://issuer.example/jwks".to_owned())
    })
    .unwrap()
    .build()
    .unwrap_err();
    assert_eq!(err.setting(), "PORTCULLIS_JWKS_URL");

    // A discovery document cannot point the keys at plain http elsewhere.
    let clock = TestClock::new();
    let a = es256("a");
    let issuer = Issuer::start(set(&[&a])).await;
    let iss = issuer.url("");
    *issuer.state.discovery.lock().unwrap() =
        Some(json!({"issuer": iss, "jwks_uri": "http://keys.example/jwks.json"}).to_string());
    let app = app(builder(&clock).oidc_issuer(&iss).build().unwrap());
    assert_unavailable(&app, &token(&a, Some(&iss))).await;
    assert_eq!(issuer.state.discovery_hits.load(SeqCst), 1);
    assert_eq!(issuer.hits(), 0);

    // URLs in token headers (`jku`, `x5u`) are never fetched.
    let app2 = {
        let issuer2 = Issuer::start(set(&[&a])).await;
        let auth = remote(&issuer2, &clock);
        let app = self::app(auth);
        let valid = token(&a, None);
        let mut parts = valid.splitn(2, '.');
        let _ = parts.next();
        let rest = parts.next().unwrap();
        let header = URL_SAFE_NO_PAD.encode(
            json!({"alg": "ES256", "kid": "evil", "jku": issuer2.url("/evil.json"), "x5u": issuer2.url("/evil.pem")})
                .to_string(),
        );
        assert_invalid(&app, &format!("{header}.{rest}")).await;
        assert_eq!(issuer2.state.other_hits.load(SeqCst), 0);
        (app, issuer2)
    };
    assert_ok(&app2.0, &token(&a, None), &a).await;
    assert_eq!(app2.1.state.other_hits.load(SeqCst), 0);
}

// ---------------------------------------------------------------- J2

#[tokio::test]
async fn j2_bad_answers_never_load_keys_and_keep_the_previous_ones() {
    let a = es256("a");
    let hmac = r#"{"kty":"oct","alg":"HS256","kid":"h","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
    let mixed: &'static str =
        Box::leak(format!(r#"{{"keys":[{hmac},{}]}}"#, a.jwk).into_boxed_str());
    let only_hmac: &'static str = Box::leak(format!(r#"{{"keys":[{hmac}]}}"#).into_boxed_str());
    let many: &'static str = Box::leak(
        json!({"keys": (0..101).map(|i| { let mut k = a.jwk.clone(); k["kid"] = json!(format!("k{i}")); k }).collect::<Vec<_>>()})
            .to_string()
            .into_boxed_str(),
    );
    let cases: Vec<(&str, Behaviour)> = vec![
        ("status 500", Behaviour::Status(500)),
        ("status 404", Behaviour::Status(404)),
        ("status 204", Behaviour::Status(204)),
        ("status 203 with a set", Behaviour::Status(203)),
        ("redirect", Behaviour::Redirect),
        ("not JSON", Behaviour::Body("<html>hello</html>")),
        ("a JSON array", Behaviour::Body("[]")),
        ("no keys member", Behaviour::Body("{}")),
        ("keys not an array", Behaviour::Body(r#"{"keys":"a"}"#)),
        ("empty set", Behaviour::Body(r#"{"keys":[]}"#)),
        (
            "duplicate member",
            Behaviour::Body(r#"{"keys":[],"keys":[]}"#),
        ),
        ("oct key (K2)", Behaviour::Body(only_hmac)),
        ("oct mixed with EC (K2)", Behaviour::Body(mixed)),
        ("over the key-count cap", Behaviour::Body(many)),
        (
            "2 MiB, chunked, no Content-Length",
            Behaviour::TooBig {
                n: 2 << 20,
                exact: false,
            },
        ),
        (
            "2 MiB with Content-Length",
            Behaviour::TooBig {
                n: 2 << 20,
                exact: true,
            },
        ),
        ("no answer within the timeout", Behaviour::Hang),
    ];
    for (name, behaviour) in cases {
        let clock = TestClock::new();
        let issuer = Issuer::start(set(&[&a])).await;
        let auth = builder(&clock)
            .jwks_url(issuer.jwks_url())
            .jwks_options(JwksOptions::new().timeout(Duration::from_millis(300)))
            .build()
            .unwrap();
        let app = app(auth);
        let valid = token(&a, None);

        // Never loaded: 503, one fetch, nothing else fetched.
        issuer.behave(behaviour.clone());
        assert_unavailable(&app, &valid).await;
        assert_eq!(issuer.hits(), 1, "{name}");
        assert_eq!(
            issuer.state.other_hits.load(SeqCst),
            0,
            "{name}: redirect followed"
        );

        // Loaded, then the same bad answer at refresh time: the previous keys serve on
        // while the refresh runs behind the request.
        clock.advance(1);
        issuer.behave(Behaviour::Serve);
        assert_ok(&app, &valid, &a).await;
        assert_eq!(issuer.hits(), 2, "{name}");
        issuer.behave(behaviour);
        clock.advance(TTL + 1);
        assert_ok(&app, &valid, &a).await;
        background_fetch(&issuer, 3).await;
        assert_ok(&app, &valid, &a).await;
        assert_eq!(issuer.hits(), 3, "{name}");
        assert_eq!(issuer.state.other_hits.load(SeqCst), 0, "{name}");
        issuer.down();
    }
}

#[tokio::test]
async fn j2_body_cap_and_key_cap_are_settings() {
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let body_len = set(&[&a]).len();
    // A cap just under the body refuses it; at the body's size it loads.
    let app_small = app(builder(&clock)
        .jwks_url(issuer.jwks_url())
        .jwks_options(JwksOptions::new().max_bytes(body_len - 1))
        .build()
        .unwrap());
    assert_unavailable(&app_small, &token(&a, None)).await;
    let app_exact = app(builder(&clock)
        .jwks_url(issuer.jwks_url())
        .jwks_options(JwksOptions::new().max_bytes(body_len).max_keys(1))
        .build()
        .unwrap());
    assert_ok(&app_exact, &token(&a, None), &a).await;
    assert_eq!(issuer.hits(), 2);
    // Options out of range are configuration errors.
    for (options, setting) in [
        (JwksOptions::new().max_bytes(0), "jwks_max_bytes"),
        (JwksOptions::new().max_bytes(64 << 20), "jwks_max_bytes"),
        (JwksOptions::new().max_keys(0), "jwks_max_keys"),
        (JwksOptions::new().ttl(Duration::ZERO), "jwks_ttl"),
        (JwksOptions::new().cooldown(Duration::ZERO), "jwks_cooldown"),
        (JwksOptions::new().timeout(Duration::ZERO), "jwks_timeout"),
    ] {
        let err = Authenticator::builder()
            .jwks_url("https://issuer.example/jwks.json")
            .jwks_options(options)
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), setting);
    }
}

// ---------------------------------------------------------------- J3

#[tokio::test]
async fn j3_ttl_and_cache_control_max_age_within_bounds() {
    let a = es256("a");
    // (Cache-Control, seconds the set lives)
    let cases = [
        (None, TTL),
        (Some("public, max-age=120"), 120),
        (Some("max-age=5"), 60),        // clamped up to 1 min
        (Some("no-store"), 60),         // read as 0, clamped up
        (Some("max-age=999999"), 3600), // clamped down to 1 h
    ];
    for (cc, lives) in cases {
        let clock = TestClock::new();
        let issuer = Issuer::start(set(&[&a])).await;
        if let Some(cc) = cc {
            issuer.cache_control(cc);
        }
        // No background refresh here: only the TTL decides.
        let auth = builder(&clock)
            .jwks_url(issuer.jwks_url())
            .jwks_options(JwksOptions::new().refresh_ahead(Duration::ZERO))
            .build()
            .unwrap();
        let app = app(auth);
        let valid = token(&a, None);
        assert_ok(&app, &valid, &a).await;
        assert_eq!(issuer.hits(), 1, "{cc:?}");
        clock.advance(lives - 1);
        assert_ok(&app, &valid, &a).await;
        assert_eq!(issuer.hits(), 1, "{cc:?}: fetched before the TTL ended");
        clock.advance(1);
        assert_ok(&app, &valid, &a).await;
        background_fetch(&issuer, 2).await;
        assert_eq!(issuer.hits(), 2, "{cc:?}: no fetch at the end of the TTL");
        issuer.down();
    }
}

#[tokio::test]
async fn j3_a_refresh_window_longer_than_the_ttl_is_capped_at_half_the_ttl() {
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    // max-age=60 with the default 30 s window would be fine; a 120 s window on a 60 s set
    // would refetch on every request. The window is capped at half the set's TTL.
    issuer.cache_control("max-age=60");
    let auth = builder(&clock)
        .jwks_url(issuer.jwks_url())
        .jwks_options(JwksOptions::new().refresh_ahead(Duration::from_secs(120)))
        .build()
        .unwrap();
    let app = app(auth);
    let valid = token(&a, None);
    assert_ok(&app, &valid, &a).await;
    for _ in 0..5 {
        assert_ok(&app, &valid, &a).await;
    }
    clock.advance(29);
    assert_ok(&app, &valid, &a).await;
    tokio::task::yield_now().await;
    assert_eq!(issuer.hits(), 1, "refetched before half the TTL");
    clock.advance(1);
    assert_ok(&app, &valid, &a).await;
    background_fetch(&issuer, 2).await;
    assert_eq!(issuer.hits(), 2, "no refresh at half the TTL");
    issuer.down();
}

#[tokio::test]
async fn j3_background_refresh_before_the_ttl_ends() {
    let (a, b) = (es256("a"), es256("b"));
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let app = app(remote(&issuer, &clock));
    assert_ok(&app, &token(&a, None), &a).await;
    // In the last 30 s of the TTL a request is answered at once and starts a refresh.
    issuer.publish(set(&[&a, &b]));
    issuer.gate();
    clock.advance(TTL - 10);
    assert_ok(&app, &token(&a, None), &a).await;
    issuer.wait_for_hits(2).await;
    // A request for the new kid joins that refresh instead of making another.
    issuer.open_gate();
    assert_ok(&app, &token(&b, None), &b).await;
    assert_eq!(issuer.hits(), 2);
    // The refreshed set lives a full TTL from its fetch.
    clock.advance(TTL - 31);
    assert_ok(&app, &token(&b, None), &b).await;
    assert_eq!(issuer.hits(), 2);
}

// ---------------------------------------------------------------- J4

#[tokio::test]
async fn j4_unknown_kid_refetches_once_per_cooldown_with_a_negative_cache() {
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let app = app(remote(&issuer, &clock));
    let valid = token(&a, None);
    assert_ok(&app, &valid, &a).await;
    assert_eq!(issuer.hits(), 1);

    // The first unknown kid refetches; it is still unknown: 401.
    assert_invalid(&app, &with_kid(&valid, "ghost-1")).await;
    assert_eq!(issuer.hits(), 2);
    // Within the cooldown no other kid refetches.
    for i in 2..50 {
        assert_invalid(&app, &with_kid(&valid, &format!("ghost-{i}"))).await;
    }
    assert_eq!(issuer.hits(), 2);
    // After the cooldown, a kid already found missing stays in the negative cache...
    clock.advance(COOLDOWN);
    assert_invalid(&app, &with_kid(&valid, "ghost-1")).await;
    assert_eq!(issuer.hits(), 2);
    // ...while a new one may refetch once more.
    assert_invalid(&app, &with_kid(&valid, "ghost-new")).await;
    assert_eq!(issuer.hits(), 3);
    // The known key was never dropped by a miss.
    assert_ok(&app, &valid, &a).await;
    assert_eq!(issuer.hits(), 3);
    // A token without a kid, and a kid of the wrong algorithm, never refetch.
    clock.advance(COOLDOWN);
    let no_kid = {
        let mut parts = valid.splitn(2, '.');
        let _ = parts.next();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#),
            parts.next().unwrap()
        )
    };
    assert_invalid(&app, &no_kid).await;
    let wrong_alg = {
        let mut parts = valid.splitn(2, '.');
        let _ = parts.next();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES384","kid":"a"}"#),
            parts.next().unwrap()
        )
    };
    assert_invalid(&app, &wrong_alg).await;
    assert_eq!(issuer.hits(), 3);
}

/// A kid refused once (the refetch did not show it yet) is refused without a fetch for one
/// cooldown, and accepted after it once the issuer publishes it: the negative cache
/// expires by the injected clock, not only on a successful fetch.
#[tokio::test]
async fn j4_negative_cache_entries_expire_after_the_cooldown() {
    let (a, b) = (es256("a"), es256("b"));
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let app = app(remote(&issuer, &clock));
    assert_ok(&app, &token(&a, None), &a).await;
    assert_eq!(issuer.hits(), 1);
    // A token signed with b before the issuer publishes b: one refetch, still unknown.
    let valid_b = token(&b, None);
    assert_invalid(&app, &valid_b).await;
    assert_eq!(issuer.hits(), 2);
    issuer.publish(set(&[&a, &b]));
    // For the cooldown b is known missing: refused without a fetch.
    for step in [0, 1, COOLDOWN - 2, 1] {
        clock.advance(step);
        assert_invalid(&app, &valid_b).await;
        assert_eq!(issuer.hits(), 2);
    }
    // Past it the entry has expired: exactly one refetch, which finds b.
    clock.advance(1);
    assert_ok(&app, &valid_b, &b).await;
    assert_eq!(issuer.hits(), 3);
    assert_ok(&app, &valid_b, &b).await;
    assert_ok(&app, &token(&a, None), &a).await;
    assert_eq!(issuer.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j4_concurrent_misses_make_one_fetch() {
    let (a, b) = (es256("a"), es256("b"));
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let app = app(remote(&issuer, &clock));
    assert_ok(&app, &token(&a, None), &a).await;
    issuer.publish(set(&[&a, &b]));
    issuer.gate();
    let valid_b = token(&b, None);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let app = app.clone();
        // Half name the new key, half a made-up kid.
        let t = if i % 2 == 0 {
            valid_b.clone()
        } else {
            with_kid(&valid_b, &format!("ghost-{i}"))
        };
        tasks.push(tokio::spawn(async move { (i, call(&app, &t).await) }));
    }
    issuer.wait_for_hits(2).await;
    issuer.open_gate();
    for task in tasks {
        let (i, (status, _, _)) = task.await.unwrap();
        assert_eq!(status, if i % 2 == 0 { 200 } else { 401 }, "request {i}");
    }
    assert_eq!(issuer.hits(), 2);
}

/// Acceptance 2: 10,000 requests with random unknown kids, interleaved with valid tokens,
/// cause at most one extra fetch per cooldown, and every valid token passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j4_flood_of_random_kids() {
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let app = app(remote(&issuer, &clock));
    let valid = token(&a, None);
    assert_ok(&app, &valid, &a).await;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut random_kid = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        format!("{rng:016x}")
    };
    let mut hits_at = vec![issuer.hits()];
    let (mut passed, mut refused) = (0, 0);
    for _second in 0..100 {
        let mut tasks = Vec::new();
        for i in 0..100 {
            let app = app.clone();
            let (t, good) = if i % 10 == 0 {
                (valid.clone(), true)
            } else {
                (with_kid(&valid, &random_kid()), false)
            };
            tasks.push(tokio::spawn(async move { (good, call(&app, &t).await) }));
        }
        for task in tasks {
            let (good, (status, www, _)) = task.await.unwrap();
            if good {
                assert_eq!((status, www), (200, None));
                passed += 1;
            } else {
                assert_eq!(status, 401);
                assert_eq!(
                    www.as_deref(),
                    Some(r#"Bearer realm="api", error="invalid_token""#)
                );
                refused += 1;
            }
        }
        hits_at.push(issuer.hits());
        clock.advance(1);
    }
    assert_eq!((passed, refused), (1000, 9000));
    // At most one extra fetch in any cooldown window.
    for start in 0..hits_at.len() {
        let end = (start + COOLDOWN as usize).min(hits_at.len() - 1);
        assert!(
            hits_at[end] - hits_at[start] <= 1,
            "{} fetches between second {start} and {end}",
            hits_at[end] - hits_at[start]
        );
    }
    assert!(issuer.hits() <= 1 + 4, "{} fetches", issuer.hits());
}

/// Requests check the fetch gates (a fetch running, the backoff) without a lock; a fetch
/// still starts only under it, so concurrent requests in the refresh-ahead window make
/// exactly one fetch, and none in the backoff after it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j4_concurrent_requests_in_the_refresh_window_make_one_fetch() {
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let auth = remote(&issuer, &clock);
    let app = app(auth.clone());
    let valid = token(&a, None);
    auth.load_keys().await.unwrap();
    clock.advance(TTL - 10);
    let burst = |expect_hits: usize| {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (app, auth, t) = (app.clone(), auth.clone(), valid.clone());
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        call(&app, &t).await.0
                    } else {
                        auth.verify(&t).map_or(500, |_| 200)
                    }
                })
            })
            .collect();
        let issuer = issuer.clone();
        async move {
            for task in tasks {
                assert_eq!(task.await.unwrap(), 200);
            }
            issuer.wait_for_hits(expect_hits).await;
        }
    };
    // The refresh is held at the issuer while 200 requests come: one fetch.
    issuer.gate();
    burst(2).await;
    assert_eq!(issuer.hits(), 2);
    // It fails; in the backoff (1 s) 200 more requests make no fetch.
    issuer.behave(Behaviour::Status(500));
    release(&auth, &issuer).await;
    burst(2).await;
    assert_eq!(issuer.hits(), 2);
    // After the backoff, one fetch again.
    clock.advance(1);
    issuer.gate();
    burst(3).await;
    release(&auth, &issuer).await;
    assert_eq!(issuer.hits(), 3);
}

// ---------------------------------------------------------------- J5

#[tokio::test]
async fn j5_never_loaded_is_503_with_backoff() {
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    issuer.behave(Behaviour::Status(500));
    let auth = remote(&issuer, &clock);
    let app = app(auth.clone());
    let valid = token(&a, None);
    assert_unavailable(&app, &valid).await;
    assert_eq!(issuer.hits(), 1);
    // Within the backoff no request fetches again.
    assert_unavailable(&app, &valid).await;
    assert_eq!(issuer.hits(), 1);
    // gRPC (through a gRPC layer) gets UNAVAILABLE as a real status.
    let grpc = tower::Layer::layer(
        &AuthLayer::new(
            auth.clone(),
            Policy::builder().allow_grpc("*", ["*"]).build().unwrap(),
        )
        .for_grpc(),
        tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }),
    );
    let req = Request::post("/pkg.Service/Method")
        .header("content-type", "application/grpc")
        .header("authorization", format!("Bearer {valid}"))
        .body(Body::empty())
        .unwrap();
    let res = grpc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(
        auth.verify(&valid).unwrap_err().kind(),
        AuthErrorKind::KeysUnavailable
    );
    // load_keys names the setting and the cause.
    clock.advance(1);
    let err = auth.load_keys().await.unwrap_err();
    assert_eq!(err.setting(), "jwks_url");
    assert!(err.to_string().contains("status 500"), "{err}");
    assert_eq!(issuer.hits(), 2);
    // Backoff doubles: 2 s after the second failure.
    clock.advance(1);
    assert_unavailable(&app, &valid).await;
    assert_eq!(issuer.hits(), 2);
    clock.advance(1);
    issuer.behave(Behaviour::Serve);
    assert_ok(&app, &valid, &a).await;
    assert_eq!(issuer.hits(), 3);
}

#[tokio::test]
async fn j5_failures_keep_the_last_good_keys_up_to_the_stale_age() {
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let auth = remote(&issuer, &clock);
    let app = app(auth.clone());
    let valid = token(&a, None);
    assert_ok(&app, &valid, &a).await;
    issuer.behave(Behaviour::Status(503));
    clock.advance(TTL);
    // `load_keys` joins a running fetch, and starts none in the backoff: after it, the
    // failure of the refresh a request started is recorded.
    let settle = || async { auth.load_keys().await.unwrap() };
    // Expired: the stale keys answer, and the refresh behind the request fails.
    assert_ok(&app, &valid, &a).await;
    settle().await;
    assert_eq!(issuer.hits(), 2);
    // Backoff: 1 s, then 2 s, then 4 s between attempts; requests never wait meanwhile.
    for (step, hits) in [(0, 2), (1, 3), (1, 3), (1, 4), (3, 4), (1, 5)] {
        clock.advance(step);
        assert_ok(&app, &valid, &a).await;
        settle().await;
        assert_eq!(issuer.hits(), hits);
    }
    // Just before the stale age ends the keys still serve; after it, 503.
    clock.advance(STALE - 7 - 1);
    assert_ok(&app, &valid, &a).await;
    clock.advance(1);
    assert_unavailable(&app, &valid).await;
    // The issuer comes back: keys recover after the backoff, nothing restarted.
    issuer.behave(Behaviour::Serve);
    clock.advance(60);
    assert_ok(&app, &valid, &a).await;
}

/// Acceptance 4: the issuer goes down after the first load.
#[tokio::test]
async fn j5_outage_then_recovery() {
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let auth = remote(&issuer, &clock);
    let app = app(auth.clone());
    let valid = token(&a, None);
    auth.load_keys().await.unwrap();
    assert_eq!(issuer.hits(), 1);
    issuer.down();
    for step in [TTL, 1, 100, 1000, STALE - 1101 - 1] {
        clock.advance(step);
        assert_ok(&app, &valid, &a).await;
        assert_eq!(auth.verify(&valid).unwrap().subject(), Some("user-of-a"));
    }
    clock.advance(1);
    assert_unavailable(&app, &valid).await;
    assert_eq!(issuer.hits(), 1);
    issuer.up().await;
    clock.advance(60);
    assert_ok(&app, &valid, &a).await;
    assert_eq!(issuer.hits(), 2);
}

/// After the TTL, with the issuer down (hanging, or answering 500), requests answer from
/// the stale keys on their first poll, through `verify_async` and through the layer, and
/// the refresh runs behind them: an outage never makes a request wait.
#[tokio::test]
async fn j5_refresh_past_the_ttl_never_waits_while_keys_are_usable() {
    let a = es256("a");
    let valid = token(&a, None);
    let request = || {
        Request::get("/me")
            .header("authorization", format!("Bearer {valid}"))
            .body(Body::empty())
            .unwrap()
    };
    for down in [Behaviour::Hang, Behaviour::Status(500)] {
        let clock = TestClock::new();
        let issuer = Issuer::start(set(&[&a])).await;
        let auth = remote(&issuer, &clock);
        let app = app(auth.clone());
        auth.load_keys().await.unwrap();
        issuer.behave(down.clone());
        clock.advance(TTL);
        for retry in 0..3 {
            let hits = issuer.hits();
            // verify_async: ready at the first poll, with the stale keys.
            let mut verify = std::pin::pin!(auth.verify_async(&valid));
            match poll_once(verify.as_mut()) {
                Poll::Ready(Ok(p)) => assert_eq!(p.subject(), Some("user-of-a")),
                Poll::Ready(Err(e)) => panic!("{down:?}, retry {retry}: {e}"),
                Poll::Pending => panic!("{down:?}, retry {retry}: verify_async waited"),
            }
            // The layer: ready at the first poll too.
            let mut res = std::pin::pin!(app.clone().oneshot(request()));
            let Poll::Ready(res) = poll_once(res.as_mut()) else {
                panic!("{down:?}, retry {retry}: the layer waited");
            };
            let res = res.unwrap();
            assert_eq!(res.status(), 200);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "user-of-a");
            if matches!(down, Behaviour::Hang) {
                // The first request's fetch is still running: later ones neither wait nor
                // fetch again.
                background_fetch(&issuer, 2).await;
                assert_eq!(issuer.hits(), 2, "{down:?}, retry {retry}");
                continue;
            }
            // A background fetch was attempted.
            background_fetch(&issuer, hits + 1).await;
            assert_eq!(issuer.hits(), hits + 1, "{down:?}, retry {retry}");
            // 500: the failure is recorded; after the backoff the next request retries.
            auth.load_keys().await.unwrap();
            clock.advance(1 << retry);
        }
        assert_eq!(
            issuer.hits(),
            if matches!(down, Behaviour::Hang) {
                2
            } else {
                4
            }
        );
        issuer.down();
    }
}

/// The WARN events of this crate on the thread it is the default subscriber of.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Runs `f` with this subscriber as the thread's default, and returns what it caught.
    fn during(f: impl FnOnce()) -> Vec<String> {
        let warnings = Self::default();
        tracing::subscriber::with_default(warnings.clone(), f);
        warnings.0.lock().unwrap().clone()
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("portcullis")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields<'a>(&'a mut String);
        impl tracing::field::Visit for Fields<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut line = String::new();
            event.record(&mut Fields(&mut line));
            self.0.lock().unwrap().push(line);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A runtime built without IO and timers cannot run a fetch: `verify_async` answers 503,
/// nothing panics on the request path, the failure is warned about once and starts the
/// backoff, which holds even for a runtime that could fetch.
#[test]
fn j5_runtime_without_io_or_timers_is_a_failed_fetch_with_backoff() {
    let a = es256("a");
    let valid = token(&a, None);
    let clock = TestClock::new();
    let server = tokio::runtime::Runtime::new().unwrap();
    let issuer = server.block_on(Issuer::start(set(&[&a])));
    let auth = remote(&issuer, &clock);
    let bare = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let full = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let unavailable = |rt: &tokio::runtime::Runtime| {
        let err = rt.block_on(auth.verify_async(&valid)).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
        assert_eq!(err.status(), 503);
        assert_eq!(auth.challenge(&err), None);
    };
    let warnings = Warnings::during(|| {
        // The fetch task panics inside the runtime; the request gets 503.
        unavailable(&bare);
        // Within the backoff: no new attempt, on this runtime or one that could fetch.
        unavailable(&bare);
        unavailable(&full);
        assert_eq!(issuer.hits(), 0);
        let err = full.block_on(auth.load_keys()).unwrap_err();
        assert!(err.to_string().contains("IO and timers"), "{err}");
        // After the backoff the bare runtime tries (and fails) again: no second warning.
        clock.advance(1);
        unavailable(&bare);
    });
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("enable_all"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("no keys are loaded yet; requests get 503"),
        "{}",
        warnings[0]
    );
    // That second failure doubled the backoff: 1 s is not enough, 2 s is.
    clock.advance(1);
    unavailable(&full);
    assert_eq!(issuer.hits(), 0);
    clock.advance(1);
    let p = full.block_on(auth.verify_async(&valid)).unwrap();
    assert_eq!(p.subject(), Some("user-of-a"));
    assert_eq!(issuer.hits(), 1);
}

/// Without any runtime, `verify` cannot start a fetch: 503 every time, and one warning
/// for 100 calls over 100 s (several backoff periods).
#[test]
fn j5_no_runtime_warns_once() {
    let a = es256("a");
    let valid = token(&a, None);
    let clock = TestClock::new();
    let auth = builder(&clock)
        .jwks_url("http://127.0.0.1:9/jwks.json")
        .build()
        .unwrap();
    let warnings = Warnings::during(|| {
        for _ in 0..100 {
            let err = auth.verify(&valid).unwrap_err();
            assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
            assert_eq!(err.status(), 503);
            clock.advance(1);
        }
    });
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("no tokio runtime"), "{}", warnings[0]);
}

// ---------------------------------------------------------------- J6

/// Acceptance 3: rotation.
#[tokio::test]
async fn j6_rotation_new_kid_on_first_sight_removed_key_refused() {
    let (a, b, c) = (es256("a"), es256("b"), es256("c"));
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let auth = remote(&issuer, &clock);
    let app = app(auth.clone());
    assert_ok(&app, &token(&a, None), &a).await;
    assert_eq!(issuer.hits(), 1);
    // The issuer publishes b and signs with it: the first b token refetches and passes.
    issuer.publish(set(&[&a, &b]));
    assert_ok(&app, &token(&b, None), &b).await;
    assert_eq!(issuer.hits(), 2);
    assert_ok(&app, &token(&a, None), &a).await;
    // After the cooldown a second rotation works too, and drops a.
    clock.advance(COOLDOWN);
    issuer.publish(set(&[&b, &c]));
    assert_ok(&app, &token(&c, None), &c).await;
    assert_eq!(issuer.hits(), 3);
    // a was removed by that refresh: refused (and within the cooldown, no refetch).
    assert_invalid(&app, &token(&a, None)).await;
    assert_eq!(issuer.hits(), 3);
    assert_ok(&app, &token(&b, None), &b).await;
    // A TTL refresh removes keys too (it runs behind the request that starts it).
    issuer.publish(set(&[&c]));
    issuer.gate();
    clock.advance(TTL);
    assert_ok(&app, &token(&c, None), &c).await;
    background_fetch(&issuer, 4).await;
    release(&auth, &issuer).await;
    assert_eq!(issuer.hits(), 4);
    assert_invalid(&app, &token(&b, None)).await;
}

#[tokio::test]
async fn j6_a_rotation_that_removes_a_key_drops_its_cached_tokens() {
    let (a, b, c) = (es256("a"), es256("b"), es256("c"));
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a, &b])).await;
    let auth = remote(&issuer, &clock);
    // One token per key, each seen three times: remembered by the verified-token cache.
    let (ta, tb) = (token(&a, None), token(&b, None));
    let mut held = Vec::new();
    for t in [&ta, &tb] {
        for _ in 0..3 {
            held.push(auth.verify_async(t).await.unwrap());
        }
    }
    assert!(
        held[2].is_same(&held[1]) && held[5].is_same(&held[4]),
        "cache hits"
    );
    // A refresh that only adds a key keeps what was remembered.
    issuer.publish(set(&[&a, &b, &c]));
    clock.advance(TTL);
    // A token not seen before goes through the key set and starts the refresh.
    let _ = auth.verify_async(&token(&b, None)).await.unwrap();
    background_fetch(&issuer, 2).await;
    auth.load_keys().await.unwrap();
    assert!(auth.verify_async(&ta).await.unwrap().is_same(&held[2]));
    // The issuer drops a: its remembered token is refused from then on, b's is verified
    // again and still passes.
    issuer.publish(set(&[&b, &c]));
    clock.advance(TTL);
    let _ = auth.verify_async(&token(&b, None)).await;
    background_fetch(&issuer, 3).await;
    auth.load_keys().await.unwrap();
    let err = auth.verify_async(&ta).await.unwrap_err();
    assert_eq!(err.kind(), portcullis::AuthErrorKind::InvalidToken, "{err}");
    let again = auth.verify_async(&tb).await.unwrap();
    assert!(
        !again.is_same(&held[5]),
        "b's token was verified again after the rotation"
    );
    issuer.down();
}

// ---------------------------------------------------------------- J7

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j7_clients_aborting_during_a_slow_fetch() {
    let (a, b) = (es256("a"), es256("b"));
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let app = app(remote(&issuer, &clock));
    assert_ok(&app, &token(&a, None), &a).await;
    issuer.publish(set(&[&a, &b]));
    issuer.gate();
    let valid_b = token(&b, None);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (app, t) = (app.clone(), valid_b.clone());
            tokio::spawn(async move { call(&app, &t).await })
        })
        .collect();
    // The fetch has reached the issuer; every client gives up.
    issuer.wait_for_hits(2).await;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let err = task.await.unwrap_err();
        assert!(err.is_cancelled(), "a client task panicked: {err}");
    }
    // The fetch still completes, once: the next request finds b without a new fetch.
    issuer.open_gate();
    assert_ok(&app, &valid_b, &b).await;
    assert_eq!(issuer.hits(), 2);
    // First load: the same with every waiter gone.
    let clock2 = TestClock::new();
    let issuer2 = Issuer::start(set(&[&a])).await;
    issuer2.gate();
    let app2 = self::app(remote(&issuer2, &clock2));
    let valid_a = token(&a, None);
    let waiter = {
        let (app2, t) = (app2.clone(), valid_a.clone());
        tokio::spawn(async move { call(&app2, &t).await })
    };
    issuer2.wait_for_hits(1).await;
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    issuer2.open_gate();
    assert_ok(&app2, &valid_a, &a).await;
    assert_eq!(issuer2.hits(), 1);
}

#[tokio::test]
async fn j7_slow_issuer_times_out_without_blocking_for_long() {
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    issuer.behave(Behaviour::Hang);
    let app = app(builder(&clock)
        .jwks_url(issuer.jwks_url())
        .jwks_options(JwksOptions::new().timeout(Duration::from_millis(200)))
        .build()
        .unwrap());
    let started = std::time::Instant::now();
    assert_unavailable(&app, &token(&a, None)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(issuer.hits(), 1);
}

// ---------------------------------------------------------------- issuers, discovery, env

#[tokio::test]
async fn oidc_discovery_and_several_issuers() {
    let (a, b) = (es256("a"), es256("b"));
    let clock = TestClock::new();
    let issuer_a = Issuer::start(set(&[&a])).await;
    let iss_a = issuer_a.url("");
    *issuer_a.state.discovery.lock().unwrap() =
        Some(json!({"issuer": iss_a, "jwks_uri": issuer_a.jwks_url()}).to_string());
    let issuer_b = Issuer::start(set(&[&b])).await;
    let iss_b = "https://b.example";
    let auth = builder(&clock)
        .oidc_issuer(&iss_a)
        .issuer_jwks_url(iss_b, issuer_b.jwks_url())
        // With an issuer list, the bound issuers are accepted too.
        .issuer("https://static.example")
        .build()
        .unwrap();
    let app = app(auth);
    assert_ok(&app, &token(&a, Some(&iss_a)), &a).await;
    assert_eq!(
        (
            issuer_a.state.discovery_hits.load(SeqCst),
            issuer_a.hits(),
            issuer_b.hits()
        ),
        (1, 1, 0)
    );
    assert_ok(&app, &token(&b, Some(iss_b)), &b).await;
    assert_eq!((issuer_a.hits(), issuer_b.hits()), (1, 1));
    // A's key claiming B's iss is checked against B's keys only.
    assert_invalid(&app, &token(&a, Some(iss_b))).await;
    assert_invalid(&app, &token(&b, Some(&iss_a))).await;
    // An issuer with no key source, or no iss at all: no keys, no fetch.
    let before = (issuer_a.hits(), issuer_b.hits());
    assert_invalid(&app, &token(&a, Some("https://other.example"))).await;
    assert_invalid(&app, &token(&a, None)).await;
    clock.advance(COOLDOWN);
    assert_invalid(&app, &token(&a, Some("https://static.example"))).await;
    assert_eq!((issuer_a.hits(), issuer_b.hits()), before);
    // Discovery is read once; refreshes go to the jwks_uri.
    let hits = issuer_a.hits();
    clock.advance(TTL);
    assert_ok(&app, &token(&a, Some(&iss_a)), &a).await;
    background_fetch(&issuer_a, hits + 1).await;
    assert_eq!(issuer_a.state.discovery_hits.load(SeqCst), 1);

    // A discovery document for another issuer is refused: no keys, 503.
    let issuer_c = Issuer::start(set(&[&a])).await;
    let iss_c = issuer_c.url("");
    *issuer_c.state.discovery.lock().unwrap() = Some(
        json!({"issuer": "https://evil.example", "jwks_uri": issuer_c.jwks_url()}).to_string(),
    );
    let app_c = self::app(builder(&clock).oidc_issuer(&iss_c).build().unwrap());
    assert_unavailable(&app_c, &token(&a, Some(&iss_c))).await;
    assert_eq!(issuer_c.hits(), 0);
    // Static keys beside issuer-bound remote keys keep verifying their own tokens.
    let hs = Signer::hmac(Algorithm::HS256, [9u8; 32]).unwrap();
    let mixed = self::app(
        builder(&clock)
            .hmac_secret([9u8; 32])
            .oidc_issuer(&iss_a)
            .build()
            .unwrap(),
    );
    let (status, _, body) = call(
        &mixed,
        &hs.sign(&json!({"sub": "svc", "exp": NOW + 100_000}))
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "svc"));
    assert_ok(&mixed, &token(&a, Some(&iss_a)), &a).await;
    // A URL for every token cannot sit beside static keys.
    let err = Authenticator::builder()
        .hmac_secret([9u8; 32])
        .jwks_url("https://issuer.example/jwks.json")
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "jwks_url");
}

#[tokio::test]
async fn sync_verify_answers_from_loaded_keys_only() {
    let (a, b) = (es256("a"), es256("b"));
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a, &b])).await;
    let auth = remote(&issuer, &clock);
    // Before the first load: 503, and a background load starts.
    let err = auth.verify(&token(&a, None)).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    auth.load_keys().await.unwrap();
    assert_eq!(issuer.hits(), 1);
    assert_eq!(
        auth.verify(&token(&b, None)).unwrap().subject(),
        Some("user-of-b")
    );
    assert_eq!(
        auth.verify_async(&token(&a, None)).await.unwrap().subject(),
        Some("user-of-a")
    );
}

#[tokio::test]
async fn remote_sets_skip_ambiguous_kidless_keys() {
    let (a, b) = (es256("a"), es256("b"));
    let clock = TestClock::new();
    let mut a_nokid = a.jwk.clone();
    a_nokid.as_object_mut().unwrap().remove("kid");
    let mut b_nokid = b.jwk.clone();
    b_nokid.as_object_mut().unwrap().remove("kid");
    let c = es256("c");
    let issuer = Issuer::start(json!({"keys": [a_nokid, b_nokid, c.jwk]}).to_string()).await;
    let app = app(remote(&issuer, &clock));
    // The kid-less pair is skipped; the rest of the set serves.
    assert_ok(&app, &token(&c, None), &c).await;
    let unnamed = Signer::from_pem(Algorithm::ES256, &a.pem)
        .unwrap()
        .sign(&json!({"sub": "x", "exp": NOW + 60}))
        .unwrap();
    assert_invalid(&app, &unnamed).await;
    assert_eq!(issuer.hits(), 1);
}

#[tokio::test]
async fn environment_names_for_remote_keys() {
    let a = es256("a");
    let issuer = Issuer::start(set(&[&a])).await;
    let url = issuer.jwks_url();
    let vars = [
        ("PORTCULLIS_JWKS_URL", url.as_str()),
        ("PORTCULLIS_JWKS_TTL_SECONDS", "120"),
        ("PORTCULLIS_JWKS_COOLDOWN_SECONDS", "5"),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let config = EnvConfig::from_lookup(lookup).unwrap();
    assert!(config.has_keys());
    let (auth, _) = config.build().unwrap();
    auth.load_keys().await.unwrap();
    assert_eq!(issuer.hits(), 1);
    for (name, value) in [
        ("PORTCULLIS_JWKS_TTL_SECONDS", "ten"),
        ("PORTCULLIS_JWKS_TTL_SECONDS", "0"),
        ("PORTCULLIS_JWKS_COOLDOWN_SECONDS", "0"),
        ("PORTCULLIS_OIDC_ISSUER", "http://login.example"),
    ] {
        let err = EnvConfig::from_lookup(|n| {
            if n == name {
                Some(value.to_owned())
            } else {
                lookup(n)
            }
        })
        .and_then(EnvConfig::build)
        .unwrap_err();
        assert_eq!(err.setting(), name, "{err}");
    }
}

/// A client you bring may follow redirects; the answer is refused all the same (J2).
#[cfg(feature = "reqwest-client")]
#[tokio::test]
async fn j2_own_client_redirects_are_still_refused() {
    use portcullis::JwksClient;
    let a = es256("a");
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    issuer.behave(Behaviour::Redirect);
    let client = reqwest::Client::builder().build().unwrap();
    let auth = builder(&clock)
        .jwks_url(issuer.jwks_url())
        .jwks_client(JwksClient::from_reqwest(client))
        .build()
        .unwrap();
    let app = app(auth.clone());
    assert_unavailable(&app, &token(&a, None)).await;
    // The client followed the redirect; the redirected answer was not used.
    assert_eq!(issuer.state.other_hits.load(SeqCst), 1);
    clock.advance(1);
    let err = auth.load_keys().await.unwrap_err();
    assert!(err.to_string().contains("redirects"), "{err}");
    // Once the issuer answers directly, the same client loads the keys.
    issuer.behave(Behaviour::Serve);
    clock.advance(2);
    assert_ok(&app, &token(&a, None), &a).await;
}

// ---------------------------------------------------------------- the tonic interceptor

/// Issue 4: the interceptor answers from keys already loaded and never waits on the
/// network; an unknown kid starts a background refresh.
#[cfg(feature = "tonic")]
#[tokio::test]
async fn interceptor_unknown_kid_starts_a_background_refresh() {
    use portcullis::grpc::AuthInterceptor;
    use tonic::service::Interceptor;

    fn request(token: &str) -> tonic::Request<()> {
        let mut req = tonic::Request::new(());
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        req
    }

    let (a, b) = (es256("a"), es256("b"));
    let clock = TestClock::new();
    let issuer = Issuer::start(set(&[&a])).await;
    let auth = remote(&issuer, &clock);

    // Never loaded: UNAVAILABLE at once, and a background load starts.
    let mut interceptor = AuthInterceptor::new(auth.clone());
    let status = interceptor.call(request(&token(&a, None))).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "Authentication keys unavailable");
    issuer.wait_for_hits(1).await;
    auth.load_keys().await.unwrap();
    let hits = issuer.hits();

    // Loaded: a known kid passes, with the principal in the extensions.
    let req = interceptor.call(request(&token(&a, None))).unwrap();
    assert_eq!(
        portcullis::grpc::principal(&req).unwrap().subject(),
        Some("user-of-a")
    );

    // A new kid is published. The interceptor answers at once from the loaded keys
    // (UNAUTHENTICATED, Invalid token) and starts one background refresh.
    issuer.publish(set(&[&a, &b]));
    let status = interceptor.call(request(&token(&b, None))).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(status.message(), "Invalid token");
    issuer.wait_for_hits(hits + 1).await;
    // Join that refresh (single-flight) rather than sleeping; then the new kid passes.
    auth.verify_async(&token(&b, None)).await.unwrap();
    let req = interceptor.call(request(&token(&b, None))).unwrap();
    assert_eq!(
        portcullis::grpc::principal(&req).unwrap().subject(),
        Some("user-of-b")
    );
    assert_eq!(issuer.hits(), hits + 1, "one background fetch, no more");
}
