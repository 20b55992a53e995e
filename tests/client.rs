//! The client side against real loopback servers: a FEDn-style token endpoint (and an
//! OAuth2 one) and a portcullis-guarded API, called through `TokenLayer` with a hyper
//! client and a tonic channel. Time is injected: the API and the client each read a clock
//! the test moves; nothing sleeps to wait.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use bytes::Bytes;
use common::{NOW, SECRET, hs256};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis::client::{
    AddToken, BoxError, Environment, FednRefresh, OAuth2, Refreshing, Token, TokenError,
    TokenErrorKind, TokenLayer, TokenProvider,
};
use portcullis::{AuthLayer, Authenticator, Policy, Principal};
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt};

/// A clock the test moves (seconds since the Unix epoch); it counts its readings.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>, Arc<AtomicUsize>);

impl TestClock {
    fn at(now: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now)), Arc::default())
    }
    fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
    fn reads(&self) -> usize {
        self.1.load(Ordering::SeqCst)
    }
    fn clock(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let (t, reads) = (self.0.clone(), self.1.clone());
        move || {
            reads.fetch_add(1, Ordering::SeqCst);
            t.load(Ordering::SeqCst)
        }
    }
}

/// How the token endpoint answers.
#[derive(Clone, Copy)]
enum Mode {
    /// A new token valid for `ttl` seconds of the endpoint's clock.
    Mint { ttl: u64 },
    /// This status and an error body.
    Status(u16),
}

/// A request the endpoint got: its body and `Authorization` header.
type Seen = (String, Option<String>);

/// The token endpoint: FEDn's refresh at `/refresh`, OAuth2 at `/oauth/token`.
#[derive(Clone)]
struct Endpoint {
    hits: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
    clock: TestClock,
    /// The last request: its body and `Authorization` header.
    last: Arc<Mutex<Option<Seen>>>,
    /// When set, the refresh waits for it (to make concurrent callers overlap).
    hold: Arc<Mutex<Option<Arc<tokio::sync::Semaphore>>>>,
    entered: Arc<tokio::sync::Notify>,
}

impl Endpoint {
    fn new(clock: TestClock, mode: Mode) -> Self {
        Self {
            hits: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
            clock,
            last: Arc::default(),
            hold: Arc::default(),
            entered: Arc::default(),
        }
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn last_body(&self) -> String {
        self.last.lock().unwrap().clone().unwrap().0
    }
    fn last_authorization(&self) -> Option<String> {
        self.last.lock().unwrap().clone().unwrap().1
    }
}

async fn answer(
    e: Endpoint,
    headers: HeaderMap,
    body: Bytes,
    oauth: bool,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let n = e.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let authz = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    *e.last.lock().unwrap() = Some((String::from_utf8_lossy(&body).into_owned(), authz));
    e.entered.notify_one();
    let hold = e.hold.lock().unwrap().clone();
    if let Some(hold) = hold {
        let _permit = hold.acquire().await.unwrap();
    }
    let mode = *e.mode.lock().unwrap();
    match mode {
        Mode::Status(status) => (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"error": "invalid_grant", "message": "refresh token refused"})),
        )
            .into_response(),
        Mode::Mint { ttl } => {
            let now = (e.clock.clock())();
            let token = hs256()
                .sign(&json!({"sub": format!("refreshed-{n}"), "role": "client", "iat": now, "exp": now + ttl}))
                .unwrap();
            let body = if oauth {
                json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl, "refresh_token": format!("rt-{n}")})
            } else {
                json!({"access": token, "refresh": format!("rt-{n}")})
            };
            axum::Json(body).into_response()
        }
    }
}

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn endpoint(clock: TestClock, mode: Mode) -> (Endpoint, String) {
    let e = Endpoint::new(clock, mode);
    let app = Router::new()
        .route(
            "/refresh",
            post(|State(e): State<Endpoint>, h: HeaderMap, b: Bytes| answer(e, h, b, false)),
        )
        .route(
            "/oauth/token",
            post(|State(e): State<Endpoint>, h: HeaderMap, b: Bytes| answer(e, h, b, true)),
        )
        .with_state(e.clone());
    let addr = serve(app).await;
    (e, format!("http://{addr}"))
}

/// A guarded API on its own clock: `GET /me` answers the subject, `POST
/// /api/v1/clients/add` the body it got; `hits` counts every request that reached it.
async fn api(clock: &TestClock, hits: Arc<AtomicUsize>) -> String {
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .clock(clock.clock())
        .build()
        .unwrap();
    let policy = Policy::fedn_rest()
        .allow("GET", "/me", ["*"])
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { p.subject().unwrap_or("").to_owned() }),
        )
        .route(
            "/api/v1/clients/add",
            post(|p: Principal, body: String| async move {
                format!("{} added {body}", p.subject().unwrap_or(""))
            }),
        )
        .layer(AuthLayer::new(auth, policy))
        .layer(tower::util::MapRequestLayer::new(
            move |r: Request<axum::body::Body>| {
                hits.fetch_add(1, Ordering::SeqCst);
                r
            },
        ));
    format!("http://{}", serve(app).await)
}

type HyperClient = Client<HttpConnector, Full<Bytes>>;

fn client(layer: TokenLayer) -> AddToken<HyperClient> {
    layer.layer(Client::builder(TokioExecutor::new()).build_http())
}

/// Sends a request; returns the status and the body text.
async fn call(
    svc: &mut AddToken<HyperClient>,
    method: &str,
    url: &str,
    body: &str,
) -> Result<(u16, String), BoxError> {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let res = svc.ready().await?.call(req).await?;
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

fn token_error(e: BoxError) -> TokenError {
    match e.downcast::<TokenError>() {
        Ok(e) => *e,
        Err(e) => panic!("not a token error: {e}"),
    }
}

/// A token the client takes as valid until `exp`, signed with the API's secret.
fn token(sub: &str, exp: u64) -> Token {
    Token::new(
        hs256()
            .sign(&json!({"sub": sub, "role": "client", "iat": NOW, "exp": exp}))
            .unwrap(),
    )
}

/// The world of one test: an API and a token endpoint on `server` time, a FEDn refreshing
/// source on `client` time.
struct World {
    server: TestClock,
    client: TestClock,
    endpoint: Endpoint,
    api: String,
    api_hits: Arc<AtomicUsize>,
    source: Refreshing,
}

async fn world(initial: Option<Token>, mode: Mode) -> World {
    let server = TestClock::at(NOW);
    let client = TestClock::at(NOW);
    let (endpoint, base) = endpoint(server.clone(), mode).await;
    let api_hits = Arc::new(AtomicUsize::new(0));
    let api = api(&server, api_hits.clone()).await;
    let refresh = FednRefresh::new(&format!("{base}/refresh"), "refresh-secret").unwrap();
    let source = Refreshing::builder(refresh)
        .initial_token(initial)
        .clock(client.clock())
        .build();
    World {
        server,
        client,
        endpoint,
        api,
        api_hits,
        source,
    }
}

// Acceptance 1: FEDn refresh on `Token expired`, then the retry succeeds (with the body).
#[tokio::test]
async fn token_expired_refreshes_once_and_the_retry_succeeds() {
    let w = world(Some(token("first", NOW + 3600)), Mode::Mint { ttl: 3600 }).await;
    // The server's clock is two hours ahead: to it the token has expired, to the client not.
    w.server.set(NOW + 7200);
    let mut svc = client(TokenLayer::new(w.source.clone()));
    let got = call(
        &mut svc,
        "POST",
        &format!("{}/api/v1/clients/add", w.api),
        r#"{"name":"c1"}"#,
    )
    .await
    .unwrap();
    assert_eq!(got, (200, r#"refreshed-1 added {"name":"c1"}"#.to_owned()));
    assert_eq!(w.endpoint.hits(), 1, "one refresh");
    assert_eq!(
        w.api_hits.load(Ordering::SeqCst),
        2,
        "the refused call and its retry"
    );
    assert_eq!(
        w.endpoint.last_body(),
        r#"{"refresh":"refresh-secret"}"#,
        "FEDn's request"
    );
    // The next call uses the new token, with no refresh.
    let got = call(&mut svc, "GET", &format!("{}/me", w.api), "")
        .await
        .unwrap();
    assert_eq!(got, (200, "refreshed-1".to_owned()));
    assert_eq!(
        (w.endpoint.hits(), w.api_hits.load(Ordering::SeqCst)),
        (1, 3)
    );
}

// Acceptance 1: the refresh endpoint answers 401: the clear error, and no further request.
#[tokio::test]
async fn refused_refresh_is_the_clear_error_and_never_retried() {
    let w = world(Some(token("first", NOW + 3600)), Mode::Status(401)).await;
    w.server.set(NOW + 7200);
    let mut svc = client(TokenLayer::new(w.source.clone()));
    let me = format!("{}/me", w.api);
    let err = token_error(call(&mut svc, "GET", &me, "").await.unwrap_err());
    assert_eq!(err.kind(), TokenErrorKind::Rejected);
    assert_eq!(
        err.to_string(),
        "refresh token invalid or expired, log in again (the token endpoint answered 401)"
    );
    assert_eq!(
        (w.endpoint.hits(), w.api_hits.load(Ordering::SeqCst)),
        (1, 1)
    );
    // Again: the API refuses the old token, the source does not ask the endpoint again.
    let err = token_error(call(&mut svc, "GET", &me, "").await.unwrap_err());
    assert_eq!(err.kind(), TokenErrorKind::Rejected);
    assert_eq!(
        (w.endpoint.hits(), w.api_hits.load(Ordering::SeqCst)),
        (1, 2)
    );
    // Past the old token's expiry on the client's clock: the error, and nothing is sent.
    w.client.set(NOW + 3600);
    let err = token_error(call(&mut svc, "GET", &me, "").await.unwrap_err());
    assert!(
        err.to_string()
            .starts_with("refresh token invalid or expired, log in again")
    );
    assert_eq!(
        (w.endpoint.hits(), w.api_hits.load(Ordering::SeqCst)),
        (1, 2)
    );
}

#[tokio::test]
async fn refresh_answered_400_is_refused_too() {
    let w = world(None, Mode::Status(400)).await;
    let err = w.source.token().await.unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Rejected);
    assert!(err.to_string().contains("answered 400"), "{err}");
    assert!(w.source.token().await.is_err());
    assert_eq!(w.endpoint.hits(), 1);
}

// Acceptance 1: `Invalid token` triggers no refresh; the answer comes back whole.
#[tokio::test]
async fn invalid_token_triggers_no_refresh() {
    let forged = portcullis::Signer::hmac(
        portcullis::Algorithm::HS256,
        "another-secret-of-32-bytes-000000",
    )
    .unwrap()
    .sign(&json!({"sub": "x", "role": "client", "exp": NOW + 3600}))
    .unwrap();
    let w = world(Some(Token::new(forged)), Mode::Mint { ttl: 3600 }).await;
    let mut svc = client(TokenLayer::new(w.source.clone()));
    let (status, body) = call(&mut svc, "GET", &format!("{}/me", w.api), "")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"error": "invalid_token", "message": "Invalid token"})
    );
    assert_eq!(
        (w.endpoint.hits(), w.api_hits.load(Ordering::SeqCst)),
        (0, 1)
    );
}

// Acceptance 1: proactive refresh inside the window (30 s) only.
#[tokio::test]
async fn proactive_refresh_inside_the_window_only() {
    let w = world(Some(token("first", NOW + 300)), Mode::Mint { ttl: 3600 }).await;
    let mut svc = client(TokenLayer::new(w.source.clone()));
    let me = format!("{}/me", w.api);
    for now in [NOW, NOW + 200, NOW + 269] {
        w.client.set(now);
        assert_eq!(
            call(&mut svc, "GET", &me, "").await.unwrap(),
            (200, "first".to_owned())
        );
    }
    assert_eq!(w.endpoint.hits(), 0, "31 s and more left: no refresh");
    w.client.set(NOW + 271);
    w.server.set(NOW + 271);
    assert_eq!(
        call(&mut svc, "GET", &me, "").await.unwrap(),
        (200, "refreshed-1".to_owned())
    );
    assert_eq!(w.endpoint.hits(), 1, "29 s left: refreshed before sending");
    assert_eq!(w.api_hits.load(Ordering::SeqCst), 4, "no refused call");
    // The new token lives an hour: no refresh until its own window.
    w.client.set(NOW + 271 + 3500);
    assert_eq!(
        call(&mut svc, "GET", &me, "").await.unwrap(),
        (200, "refreshed-1".to_owned())
    );
    assert_eq!(w.endpoint.hits(), 1);
}

#[tokio::test]
async fn a_custom_window_is_honoured() {
    let server = TestClock::at(NOW);
    let (e, base) = endpoint(server.clone(), Mode::Mint { ttl: 3600 }).await;
    let source = Refreshing::builder(FednRefresh::new(&format!("{base}/refresh"), "r").unwrap())
        .initial_token(Some(token("first", NOW + 3600)))
        .window(std::time::Duration::from_secs(600))
        .clock(server.clock())
        .build();
    server.set(NOW + 2999);
    assert_eq!(source.token().await.unwrap(), token("first", NOW + 3600));
    server.set(NOW + 3001);
    assert_ne!(source.token().await.unwrap(), token("first", NOW + 3600));
    assert_eq!(e.hits(), 1);
}

async fn sixteen_at_once(w: &World, svc: &AddToken<HyperClient>) -> Vec<(u16, String)> {
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    *w.endpoint.hold.lock().unwrap() = Some(hold.clone());
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut svc = svc.clone();
        let me = format!("{}/me", w.api);
        let started = started.clone();
        tasks.push(tokio::spawn(async move {
            started.fetch_add(1, Ordering::SeqCst);
            call(&mut svc, "GET", &me, "").await.unwrap()
        }));
    }
    // The first refresh is in flight; let every caller reach the source, then answer.
    w.endpoint.entered.notified().await;
    while started.load(Ordering::SeqCst) < 16 {
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    hold.add_permits(16);
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

// Acceptance 1: 16 concurrent callers cause exactly one refresh (proactive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_callers_share_one_proactive_refresh() {
    let w = world(Some(token("first", NOW + 10)), Mode::Mint { ttl: 3600 }).await;
    w.client.set(NOW + 6); // inside the window (at most half the 10 s lifetime)
    let svc = client(TokenLayer::new(w.source.clone()));
    for got in sixteen_at_once(&w, &svc).await {
        assert_eq!(got, (200, "refreshed-1".to_owned()));
    }
    assert_eq!(w.endpoint.hits(), 1);
    assert_eq!(w.api_hits.load(Ordering::SeqCst), 16);
}

// The same for a refresh caused by 16 refused calls (`Token expired`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_refusals_share_one_refresh() {
    let w = world(Some(token("first", NOW + 3600)), Mode::Mint { ttl: 3600 }).await;
    w.server.set(NOW + 7200);
    let svc = client(TokenLayer::new(w.source.clone()));
    let got = sixteen_at_once(&w, &svc).await;
    assert!(
        got.iter().all(|g| *g == (200, "refreshed-1".to_owned())),
        "{got:?}"
    );
    assert_eq!(w.endpoint.hits(), 1);
}

#[tokio::test]
async fn network_errors_back_off_without_a_loop() {
    let w = world(None, Mode::Status(503)).await;
    let err = w.source.token().await.unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Unavailable);
    assert_eq!(
        err.to_string(),
        "token endpoint unavailable: the token endpoint answered 503"
    );
    // Within the backoff (1 s, then 2 s, ...): no request, the error says when.
    let err = w.source.token().await.unwrap_err();
    assert!(err.to_string().ends_with("next attempt in 1 s"), "{err}");
    assert_eq!(w.endpoint.hits(), 1);
    w.client.set(NOW + 1);
    assert!(w.source.token().await.is_err());
    assert_eq!(w.endpoint.hits(), 2);
    w.client.set(NOW + 2);
    assert!(w.source.token().await.is_err());
    assert_eq!(w.endpoint.hits(), 2, "the second backoff is 2 s");
    w.endpoint.set(Mode::Mint { ttl: 3600 });
    w.client.set(NOW + 3);
    assert_eq!(
        w.source.token().await.unwrap().expires_at(),
        Some(NOW + 3600)
    );
    assert_eq!(w.endpoint.hits(), 3);
}

#[tokio::test]
async fn unreachable_endpoint_keeps_the_current_token_while_it_lasts() {
    // Nothing listens on this port once the listener is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clock = TestClock::at(NOW);
    let source = Refreshing::builder(
        FednRefresh::new(&format!("http://127.0.0.1:{port}/refresh"), "r").unwrap(),
    )
    .initial_token(Some(token("first", NOW + 20)))
    .clock(clock.clock())
    .build();
    // Inside the window: the refresh fails, the current token is still sent.
    clock.set(NOW + 15);
    assert_eq!(source.token().await.unwrap(), token("first", NOW + 20));
    clock.set(NOW + 20);
    let err = source.token().await.unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Unavailable);
}

// FEDn's newer shape: `{"refresh_token", "role"}`, `access_token`, a rotated refresh token.
#[tokio::test]
async fn fedn_newer_shape_and_rotation() {
    let clock = TestClock::at(NOW);
    let (e, base) = endpoint(clock.clone(), Mode::Mint { ttl: 3600 }).await;
    let refresh = FednRefresh::new(&format!("{base}/oauth/token"), "r0")
        .unwrap()
        .role("client");
    let source = Refreshing::builder(refresh).clock(clock.clock()).build();
    let first = source.token().await.unwrap();
    assert_eq!(e.last_body(), r#"{"refresh_token":"r0","role":"client"}"#);
    assert_eq!(first.expires_at(), Some(NOW + 3600));
    // The server refuses it: renew refreshes with the rotated refresh token.
    let second = source.renew(&first).await.unwrap().unwrap();
    assert_ne!(second, first);
    assert_eq!(e.last_body(), r#"{"refresh_token":"rt-1","role":"client"}"#);
    // A renewal for a token already replaced hands out the new one without a request.
    assert_eq!(source.renew(&first).await.unwrap(), Some(second));
    assert_eq!(e.hits(), 2);
}

#[tokio::test]
async fn oauth2_refresh_token_grant() {
    let clock = TestClock::at(NOW);
    let (e, base) = endpoint(clock.clone(), Mode::Mint { ttl: 120 }).await;
    let grant = OAuth2::refresh_token(&format!("{base}/oauth/token"), "cli ent", "rt 0").unwrap();
    let source = Refreshing::builder(grant).clock(clock.clock()).build();
    let first = source.token().await.unwrap();
    assert_eq!(first.expires_at(), Some(NOW + 120));
    assert_eq!(
        e.last_body(),
        "grant_type=refresh_token&refresh_token=rt%200&client_id=cli%20ent"
    );
    assert_eq!(e.last_authorization(), None);
    // 120 s tokens: the 30 s window applies (at most half the lifetime).
    clock.set(NOW + 89);
    assert_eq!(source.token().await.unwrap(), first);
    clock.set(NOW + 91);
    assert_ne!(source.token().await.unwrap(), first);
    assert_eq!(
        e.last_body(),
        "grant_type=refresh_token&refresh_token=rt-1&client_id=cli%20ent"
    );
    e.set(Mode::Status(400));
    clock.set(NOW + 500);
    let err = source.token().await.unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Rejected);
    assert!(
        err.to_string()
            .starts_with("refresh token invalid or expired, log in again")
    );
}

#[tokio::test]
async fn oauth2_client_credentials_grant() {
    let clock = TestClock::at(NOW);
    let (e, base) = endpoint(clock.clone(), Mode::Mint { ttl: 3600 }).await;
    let url = format!("{base}/oauth/token");
    let grant = OAuth2::client_credentials(&url, "svc", "s3cret")
        .unwrap()
        .scope("read write");
    let source = Refreshing::builder(grant).clock(clock.clock()).build();
    source.token().await.unwrap();
    assert_eq!(
        e.last_body(),
        "grant_type=client_credentials&scope=read%20write"
    );
    // RFC 6749 section 2.3.1: HTTP Basic of the form-encoded id and secret.
    assert_eq!(
        e.last_authorization().as_deref(),
        Some("Basic c3ZjOnMzY3JldA==")
    );
    let in_body = OAuth2::client_credentials(&url, "svc", "s3cret")
        .unwrap()
        .secret_in_body();
    Refreshing::builder(in_body)
        .clock(clock.clock())
        .build()
        .token()
        .await
        .unwrap();
    assert_eq!(
        e.last_body(),
        "grant_type=client_credentials&client_id=svc&client_secret=s3cret"
    );
    e.set(Mode::Status(401));
    let refused = OAuth2::client_credentials(&url, "svc", "wrong").unwrap();
    let err = Refreshing::builder(refused)
        .clock(clock.clock())
        .build()
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Rejected);
    assert!(
        err.to_string().starts_with("client credentials refused"),
        "{err}"
    );
    assert!(
        !format!(
            "{grant_debug:?}",
            grant_debug = OAuth2::client_credentials(&url, "svc", "s3cret").unwrap()
        )
        .contains("s3cret")
    );
}

#[test]
fn token_endpoints_need_https_off_loopback() {
    let err = FednRefresh::new("http://fedn.example/refresh", "r").unwrap_err();
    assert!(
        err.to_string().contains("FEDN_AUTH_REFRESH_TOKEN_URI"),
        "{err}"
    );
    assert!(FednRefresh::new("https://fedn.example/refresh", "r").is_ok());
    assert!(FednRefresh::dangerous_plain_http("http://fedn.example/refresh", "r").is_ok());
    assert!(OAuth2::refresh_token("http://id.example/token", "c", "r").is_err());
    assert!(FednRefresh::new("https://fedn.example/refresh", " ").is_err());
}

/// The environment of a test: a fixed list of variables and a temporary directory.
fn env_of(vars: &[(&str, &str)], dir: &std::path::Path) -> Environment {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Environment::from_lookup(move |n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
        .working_dir(dir.join("work"))
        .home_dir(dir.join("home"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("work")).unwrap();
    std::fs::create_dir_all(dir.join("home")).unwrap();
    dir
}

// Acceptance 2: AIS_AUTHN_TOKEN wins over AIS_AUTHN_TOKEN_FILE, which wins over the CLI's file.
#[tokio::test]
async fn aistore_precedence() {
    let dir = temp_dir("ais");
    let file = dir.join("token.json");
    std::fs::write(&file, r#"{"token":"from-file"}"#).unwrap();
    let stored = dir.join("home/.config/ais/cli");
    std::fs::create_dir_all(&stored).unwrap();
    std::fs::write(stored.join("auth.token"), r#"{"token":"from-login"}"#).unwrap();
    let path = file.to_str().unwrap();
    let find = |vars: &[(&str, &str)]| {
        let chain = env_of(vars, &dir).aistore();
        async move { chain.token().await }
    };
    let both = [
        ("AIS_AUTHN_TOKEN", "from-env"),
        ("AIS_AUTHN_TOKEN_FILE", path),
    ];
    assert_eq!(find(&both).await.unwrap().secret(), "from-env");
    assert_eq!(find(&both[1..]).await.unwrap().secret(), "from-file");
    assert_eq!(find(&[]).await.unwrap().secret(), "from-login");
    // A named file that is missing is an error, as in the CLI, not a fall-through.
    let missing = dir.join("nope.json");
    let err = find(&[("AIS_AUTHN_TOKEN_FILE", missing.to_str().unwrap())])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Invalid);
    assert!(err.to_string().contains("nope.json"), "{err}");
    // Nothing anywhere: the error lists every place, in order.
    std::fs::remove_file(stored.join("auth.token")).unwrap();
    let err = find(&[]).await.unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::NotFound);
    let looked: Vec<&str> = err.looked().collect();
    assert_eq!(looked.len(), 3);
    assert_eq!(
        looked[..2],
        ["env AIS_AUTHN_TOKEN", "env AIS_AUTHN_TOKEN_FILE"]
    );
    assert!(
        looked[2].ends_with("home/.config/ais/cli/auth.token"),
        "{looked:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// Acceptance 2: anaconda-cloud-auth's order, argument > env > .env > stored file.
#[tokio::test]
async fn anaconda_cloud_precedence() {
    let dir = temp_dir("anaconda");
    std::fs::write(
        dir.join("work/.env"),
        "OTHER=1\nANACONDA_CLOUD_API_KEY=\"from-dotenv\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("home/.anaconda")).unwrap();
    std::fs::write(
        dir.join("home/.anaconda/config.toml"),
        "[plugin.cloud]\napi_key = \"from-config\"\n",
    )
    .unwrap();
    let env = [("ANACONDA_CLOUD_API_KEY", "from-env")];
    let find = |vars: &[(&str, &str)], arg: Option<&str>| {
        let chain = env_of(vars, &dir).anaconda_cloud(arg);
        async move { chain.token().await.map(|t| t.secret().to_owned()) }
    };
    assert_eq!(find(&env, Some("from-arg")).await.unwrap(), "from-arg");
    assert_eq!(find(&env, None).await.unwrap(), "from-env");
    assert_eq!(find(&[], None).await.unwrap(), "from-dotenv");
    std::fs::remove_file(dir.join("work/.env")).unwrap();
    assert_eq!(find(&[], None).await.unwrap(), "from-config");
    // ANACONDA_CONFIG_TOML moves the stored file.
    let moved = dir.join("elsewhere.toml");
    std::fs::write(&moved, "[plugin.cloud]\napi_key = \"moved\"\n").unwrap();
    assert_eq!(
        find(&[("ANACONDA_CONFIG_TOML", moved.to_str().unwrap())], None)
            .await
            .unwrap(),
        "moved"
    );
    std::fs::remove_file(dir.join("home/.anaconda/config.toml")).unwrap();
    let err = env_of(&[], &dir)
        .anaconda_cloud(None)
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::NotFound);
    let looked: Vec<&str> = err.looked().collect();
    assert_eq!(looked[0], "env ANACONDA_CLOUD_API_KEY");
    assert!(
        looked[1].ends_with(".env (ANACONDA_CLOUD_API_KEY)"),
        "{looked:?}"
    );
    assert!(
        looked[2].ends_with("config.toml (plugin.cloud.api_key)"),
        "{looked:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A service that answers the `Authorization` header it got.
fn echo_authorization() -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<Full<Bytes>>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let got = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(got))))
    })
}

async fn sent_authorization(layer: TokenLayer) -> String {
    let svc = layer.layer(echo_authorization());
    let res = svc
        .oneshot(Request::new(Full::new(Bytes::new())))
        .await
        .unwrap();
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

// Acceptance 2: `Bearer xyz` in FEDN_AUTH_TOKEN is sent as `<scheme> xyz`.
#[tokio::test]
async fn fedn_auth_token_bearer_prefix_becomes_the_scheme() {
    let dir = temp_dir("fedn");
    let env = env_of(
        &[
            ("FEDN_AUTH_TOKEN", "Bearer xyz"),
            ("FEDN_AUTH_SCHEME", "Token"),
        ],
        &dir,
    );
    assert_eq!(
        sent_authorization(TokenLayer::fedn(&env).unwrap()).await,
        "Token xyz"
    );
    let env = env_of(&[("FEDN_AUTH_TOKEN", "Bearer xyz")], &dir);
    assert_eq!(
        sent_authorization(TokenLayer::fedn(&env).unwrap()).await,
        "Bearer xyz"
    );
    let env = env_of(
        &[("FEDN_AUTH_TOKEN", "xyz"), ("FEDN_AUTH_SCHEME", "Token")],
        &dir,
    );
    assert_eq!(
        sent_authorization(TokenLayer::fedn(&env).unwrap()).await,
        "Token xyz"
    );
    assert_eq!(
        sent_authorization(TokenLayer::new(env.fedn()).scheme("Token")).await,
        "Token xyz"
    );
    // Errors name the setting.
    let err = TokenLayer::fedn(&env_of(&[("FEDN_AUTH_TOKEN", "a b c")], &dir)).unwrap_err();
    assert!(err.to_string().contains("FEDN_AUTH_TOKEN"), "{err}");
    let err = TokenLayer::fedn(&env_of(
        &[("FEDN_AUTH_TOKEN", "x"), ("FEDN_AUTH_SCHEME", "Bad Scheme")],
        &dir,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("FEDN_AUTH_SCHEME"), "{err}");
    let err = TokenLayer::fedn(&env_of(
        &[("FEDN_AUTH_REFRESH_TOKEN_URI", "http://127.0.0.1:1/r")],
        &dir,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("FEDN_AUTH_REFRESH_TOKEN"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_caller_authorization_header_is_left_alone() {
    let svc = TokenLayer::new(Token::new("layer")).layer(echo_authorization());
    let req = Request::builder()
        .header("authorization", "Basic abc")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "Basic abc"
    );
}

#[tokio::test]
async fn a_source_with_nothing_fails_the_call_before_sending() {
    let dir = temp_dir("nothing");
    let svc = TokenLayer::new(env_of(&[], &dir).var("FEDN_AUTH_TOKEN")).layer(echo_authorization());
    let err = token_error(
        svc.oneshot(Request::new(Full::new(Bytes::new())))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.to_string(),
        "no token found; looked in env FEDN_AUTH_TOKEN"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn debug_never_shows_secrets() {
    let t = Token::new("s3cr3t-token");
    let shown = format!(
        "{t:?} {:?} {:?} {:?}",
        TokenLayer::new(t.clone()),
        Refreshing::builder(FednRefresh::new("https://f.example/r", "s3cr3t-refresh").unwrap())
            .initial_token(Some(t.clone()))
            .build(),
        FednRefresh::new("https://f.example/r", "s3cr3t-refresh").unwrap(),
    );
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

/// A request whose body cannot be replayed (not ready when sent) still gets the renewed
/// token on the next call, and is not retried.
#[tokio::test]
async fn a_streaming_body_is_not_replayed_but_the_next_call_has_the_new_token() {
    let w = world(Some(token("first", NOW + 3600)), Mode::Mint { ttl: 3600 }).await;
    w.server.set(NOW + 7200);
    let svc = TokenLayer::new(w.source.clone())
        .layer(Client::builder(TokioExecutor::new()).build_http::<axum::body::Body>());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
    let body = axum::body::Body::new(http_body_util::StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let req = Request::post(format!("{}/api/v1/clients/add", w.api))
        .body(body)
        .unwrap();
    let sending = tokio::spawn(async move {
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"late"))))
            .await
            .ok();
    });
    let res = svc.clone().oneshot(req).await.unwrap();
    sending.await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(w.endpoint.hits(), 1, "renewed for the next call");
    let res = svc
        .oneshot(
            Request::get(format!("{}/me", w.api))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(w.api_hits.load(Ordering::SeqCst), 2);
}

// Acceptance 3: a tonic client keeps working across a token expiry: a client stream started
// before the expiry goes on after it, and a unary call after it gets a new token.
#[tokio::test]
async fn tonic_channel_across_a_token_expiry() {
    use common::grpc::serve as serve_grpc;
    use tonic::transport::Endpoint as GrpcEndpoint;

    let w = world(Some(token("first", NOW + 300)), Mode::Mint { ttl: 3600 }).await;
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .clock(w.server.clock())
        .build()
        .unwrap();
    let policy = Policy::builder()
        .allow_grpc("/test.v1.Echo/*", ["client"])
        .build()
        .unwrap();
    let addr = serve_grpc(Some(AuthLayer::new(auth, policy))).await;
    let channel = GrpcEndpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(TokenLayer::new(w.source.clone()).layer(channel));

    // A client stream starts while the token is valid.
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(4);
    tx.send("a".into()).await.unwrap();
    let mut streaming = grpc.clone();
    let call = tokio::spawn(async move {
        streaming.ready().await.unwrap();
        streaming
            .client_streaming(
                tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
                http::uri::PathAndQuery::from_static("/test.v1.Echo/ClientStream"),
                tonic_prost::ProstCodec::<String, String>::default(),
            )
            .await
            .map(tonic::Response::into_inner)
    });
    // Once the server has checked the call's token (it read its clock)...
    let reads = w.server.reads();
    while w.server.reads() == reads {
        tokio::task::yield_now().await;
    }
    tx.send("b".into()).await.unwrap();
    // ...the token expires for both sides (past exp and the server's leeway)...
    w.server.set(NOW + 400);
    w.client.set(NOW + 400);
    tx.send("c".into()).await.unwrap();
    drop(tx);
    assert_eq!(
        call.await.unwrap().unwrap(),
        "first:3",
        "the stream went on"
    );

    // ...and a unary call after the expiry goes out with a refreshed token.
    grpc.ready().await.unwrap();
    let got = grpc
        .unary(
            tonic::Request::new("hi".to_owned()),
            http::uri::PathAndQuery::from_static("/test.v1.Echo/Hello"),
            tonic_prost::ProstCodec::<String, String>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, "refreshed-1:hi");
    assert_eq!(w.endpoint.hits(), 1);
}

// gRPC's `UNAUTHENTICATED` `Token expired` renews and replays a unary call once.
#[tokio::test]
async fn tonic_unary_refused_as_expired_is_replayed_once() {
    use common::grpc::serve as serve_grpc;
    use tonic::transport::Endpoint as GrpcEndpoint;

    let w = world(Some(token("first", NOW + 3600)), Mode::Mint { ttl: 3600 }).await;
    w.server.set(NOW + 7200);
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .clock(w.server.clock())
        .build()
        .unwrap();
    let policy = Policy::builder()
        .allow_grpc("/test.v1.Echo/*", ["client"])
        .build()
        .unwrap();
    let addr = serve_grpc(Some(AuthLayer::new(auth, policy))).await;
    let channel = GrpcEndpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(TokenLayer::new(w.source.clone()).layer(channel));
    grpc.ready().await.unwrap();
    let got = grpc
        .unary(
            tonic::Request::new("again".to_owned()),
            http::uri::PathAndQuery::from_static("/test.v1.Echo/Hello"),
            tonic_prost::ProstCodec::<String, String>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, "refreshed-1:again");
    assert_eq!(w.endpoint.hits(), 1);
}

/// A reqwest-style service: `http::Request` in, reqwest sends it, `http::Response` out.
fn reqwest_service() -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<reqwest::Body>,
    Error = BoxError,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let client = reqwest::Client::new();
    tower::service_fn(move |req: Request<Full<Bytes>>| {
        let client = client.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await?.to_bytes();
            let req = reqwest::Request::try_from(Request::from_parts(parts, body))?;
            let res = client.execute(req).await?;
            Ok::<_, BoxError>(http::Response::<reqwest::Body>::from(res))
        }
    })
}

#[tokio::test]
async fn a_reqwest_style_service_refreshes_and_retries_too() {
    let w = world(Some(token("first", NOW + 3600)), Mode::Mint { ttl: 3600 }).await;
    w.server.set(NOW + 7200);
    let svc = TokenLayer::new(w.source.clone()).layer(reqwest_service());
    let req = Request::post(format!("{}/api/v1/clients/add", w.api))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "refreshed-1 added {}");
    assert_eq!(
        (w.endpoint.hits(), w.api_hits.load(Ordering::SeqCst)),
        (1, 2)
    );
}
