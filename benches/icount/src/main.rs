//! The instruction-count harness: the same request K times through an axum `Router`, with
//! and without `AuthLayer`, polled by hand (a no-op waker, no runtime). The measured loop
//! is `run_loop`, never inlined, so callgrind collects inside it alone
//! (`--toggle-collect='*run_loop*'`); `run.sh` divides by K.
//!
//! ```text
//! portcullis-icount <case> <K>
//! ```
//!
//! Cases (each a `GET` with the answer it must give):
//!
//! - `plain-none`, `plain-hs`: plain axum, without a token header and with one;
//! - `hs`, `rs`: a verified-token cache hit (HS256, RS256) on a route open to any token;
//! - `none`: 401, no token; `norole`: 403, a cached token without the route's role;
//! - `outer-hs`, `outer-none`: the layer around the whole router instead of per route;
//! - `rot`: 10,000 HS256 tokens in turn, each a hit in the shared cache behind this
//!   thread's front slots (compare with `plain-hs`);
//! - `distinct`: K HS256 tokens, each sent once: every request a miss, verified in full
//!   (format, signature, claims) and marked in the cache's admission filter, not admitted
//!   (compare with `plain-hs`);
//! - `worker-<case>`: a per-route case whose router was built on another thread, as a
//!   multi-threaded server's workers serve the router its main thread built;
//! - `generic-<case>`: a per-route case with the layer's generic body (`AuthBody`, which
//!   axum boxes again) instead of `AuthLayer::axum_native`;
//! - `plain-tenant`, `tenant`, `tenant-cond`: `/tenants/acme/reports`, plain, by a rule,
//!   and by the same rule with the condition `tenant` = `{tenant}`.
//!
//! `ICOUNT_HEADERS=N` puts N more headers (up to 12: what curl, a proxy and a browser add)
//! before the `Authorization` header of every case, plain axum's included.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderValue, Request, Response};
use portcullis::{
    Algorithm, AuthLayer, Authenticator, Condition, Policy, Principal, Signer, TokenCache,
};
use tower::{Layer, Service};

const SECRET: &str = "portcullis-icount-hs256-secret-0123456789abcdef";
const KID: &str = "k1";

fn fixture(name: &str) -> String {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A token as an identity provider would send one; `role` and `tenant` when given.
fn token(alg: Algorithm, role: Option<&str>) -> String {
    token_of(alg, role, "user-00000001")
}

/// [`token`] for subject `sub`.
fn token_of(alg: Algorithm, role: Option<&str>, sub: &str) -> String {
    let signer = match alg {
        Algorithm::HS256 => Signer::hmac(alg, SECRET),
        _ => Signer::from_pem(alg, fixture("rsa2048.key.pem")),
    }
    .unwrap()
    .kid(KID);
    let mut claims = serde_json::json!({
        "sub": sub,
        "iss": "https://issuer.example",
        "iat": 1_700_000_000u64,
        "exp": 4_000_000_000u64,
        "jti": "t-0001",
        "tenant": "acme",
    });
    if let Some(role) = role {
        claims["role"] = role.into();
    }
    signer.sign(&claims).unwrap()
}

/// The `Authorization` value of a token.
fn bearer(token: String) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(&format!("Bearer {token}")).unwrap())
}

fn authenticator(alg: Algorithm) -> Authenticator {
    let b = match alg {
        Algorithm::HS256 => Authenticator::builder().hmac_secret(SECRET),
        _ => Authenticator::builder().public_key_pem_with_kid(alg, fixture("rsa2048.pub.pem"), KID),
    };
    b.token_cache(TokenCache::new()).build().unwrap()
}

async fn plain_handler() -> &'static str {
    "hello"
}

async fn me(p: Principal) -> &'static str {
    black_box(&p);
    "hello"
}

const ME: &str = "/me";
const TENANT: &str = "/tenants/{tenant}/reports";

/// (router, path, Authorization, expected status) of a per-route case.
/// `generic`: the layer with its generic body (`AuthBody`) instead of axum's own.
fn case(name: &str, generic: bool) -> (Router, &'static str, Option<HeaderValue>, u16) {
    let hs = || bearer(token(Algorithm::HS256, Some("client")));
    let guarded = |alg, path: &'static str, policy: Policy| {
        let layer = AuthLayer::new(authenticator(alg), policy);
        let router = Router::new().route(path, get(me));
        if generic {
            router.layer(layer)
        } else {
            router.layer(layer.axum_native())
        }
    };
    let open = |path| Policy::builder().allow("GET", path, ["*"]).build().unwrap();
    let client = Policy::builder()
        .allow("GET", ME, ["client"])
        .build()
        .unwrap();
    let tenant = "/tenants/acme/reports";
    match name {
        "plain-none" => (Router::new().route(ME, get(plain_handler)), ME, None, 200),
        "plain-hs" => (Router::new().route(ME, get(plain_handler)), ME, hs(), 200),
        "hs" => (guarded(Algorithm::HS256, ME, open(ME)), ME, hs(), 200),
        "rs" => (
            guarded(Algorithm::RS256, ME, open(ME)),
            ME,
            bearer(token(Algorithm::RS256, Some("client"))),
            200,
        ),
        "none" => (guarded(Algorithm::HS256, ME, client), ME, None, 401),
        "norole" => (
            guarded(Algorithm::HS256, ME, client),
            ME,
            bearer(token(Algorithm::HS256, None)),
            403,
        ),
        "plain-tenant" => (
            Router::new().route(TENANT, get(plain_handler)),
            tenant,
            hs(),
            200,
        ),
        "tenant" => (
            guarded(Algorithm::HS256, TENANT, open(TENANT)),
            tenant,
            hs(),
            200,
        ),
        "tenant-cond" => {
            let policy = Policy::builder()
                .allow_when(
                    "GET",
                    TENANT,
                    ["*"],
                    [Condition::claim_equals_param("tenant", "tenant")],
                )
                .build()
                .unwrap();
            (guarded(Algorithm::HS256, TENANT, policy), tenant, hs(), 200)
        }
        _ => panic!("unknown case {name}"),
    }
}

/// Headers a request carries before its `Authorization`, when `ICOUNT_HEADERS` asks for
/// some (default none, as in the cases above): what curl, a proxy and a browser add.
const EXTRA_HEADERS: [(&str, &str); 12] = [
    ("host", "api.example"),
    ("user-agent", "curl/8.5.0"),
    ("accept", "*/*"),
    ("x-forwarded-for", "203.0.113.7"),
    ("x-forwarded-proto", "https"),
    ("x-request-id", "0f6c2d5e-6a1b-4c3e-9d8f-2b7a1c4e5f60"),
    ("accept-encoding", "gzip, deflate, br"),
    ("accept-language", "en-GB,en;q=0.9"),
    ("cache-control", "no-cache"),
    ("origin", "https://app.example"),
    ("referer", "https://app.example/reports"),
    ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
];

fn extra_headers() -> usize {
    std::env::var("ICOUNT_HEADERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
        .min(EXTRA_HEADERS.len())
}

fn request(path: &str, auth: &Option<HeaderValue>, extra: usize) -> Request<Body> {
    let mut req = Request::get(path);
    for (name, value) in &EXTRA_HEADERS[..extra] {
        req = req.header(*name, *value);
    }
    if let Some(v) = auth {
        req = req.header(http::header::AUTHORIZATION, v.clone());
    }
    req.body(Body::empty()).unwrap()
}

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the request did not finish at once"),
    }
}

/// The status, once the body is read to its end.
fn drain<B: http_body::Body>(res: Response<B>) -> u16 {
    let status = res.status().as_u16();
    let mut body = pin!(res.into_body());
    let mut cx = Context::from_waker(Waker::noop());
    let mut n = 0usize;
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    n += bytes::Buf::remaining(d);
                }
            }
            Poll::Ready(None) => break,
            Poll::Ready(Some(Err(_))) => panic!("body error"),
            Poll::Pending => panic!("body pending"),
        }
    }
    black_box(n);
    status
}

fn one<S, B>(svc: &mut S, path: &str, auth: &Option<HeaderValue>, extra: usize) -> u16
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body,
{
    drain(ready(svc.call(request(path, auth, extra))).unwrap())
}

#[inline(never)]
fn run_loop<S, B>(
    svc: &mut S,
    path: &str,
    auth: &Option<HeaderValue>,
    (k, extra): (usize, usize),
    want: u16,
) where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body,
{
    for _ in 0..k {
        let status = one(svc, path, auth, extra);
        assert_eq!(status, want, "status {status}, expected {want}");
    }
}

/// The measured loop of `rot`: the tokens in turn.
#[inline(never)]
fn run_rotating<S, B>(svc: &mut S, auths: &[Option<HeaderValue>], k: usize)
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body,
{
    for auth in auths.iter().cycle().take(k) {
        let status = one(svc, ME, auth, 0);
        assert_eq!(status, 200, "status {status}, expected 200");
    }
}

/// Warms up (first sight verifies, the second admits into the cache, then hits), then runs
/// the measured loop.
fn measure<S, B>(mut svc: S, path: &str, auth: Option<HeaderValue>, want: u16, k: usize)
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body,
{
    let extra = extra_headers();
    for _ in 0..4 {
        assert_eq!(one(&mut svc, path, &auth, extra), want);
    }
    run_loop(&mut svc, path, &auth, (k, extra), want);
}

/// The HS256 router open to any token, and `n` tokens of distinct subjects.
fn open_with_tokens(n: usize) -> (Router, Vec<Option<HeaderValue>>) {
    let auths = (0..n)
        .map(|i| {
            let sub = format!("user-{i:08}");
            bearer(token_of(Algorithm::HS256, Some("client"), &sub))
        })
        .collect();
    let policy = Policy::builder().allow("GET", ME, ["*"]).build().unwrap();
    let layer = AuthLayer::new(authenticator(Algorithm::HS256), policy).axum_native();
    (
        Router::new().route(ME, get(me)).layer(layer).with_state(()),
        auths,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(name), Some(k)) = (args.get(1), args.get(2).and_then(|k| k.parse().ok())) else {
        eprintln!("usage: portcullis-icount <case> <K>");
        std::process::exit(2);
    };
    if let Some(rest) = name.strip_prefix("outer-") {
        // The layer around the whole router.
        let (roles, auth, want) = match rest {
            "hs" => ("*", Some(token(Algorithm::HS256, Some("client"))), 200),
            "none" => ("client", None, 401),
            _ => panic!("unknown case {name}"),
        };
        let policy = Policy::builder().allow("GET", ME, [roles]).build().unwrap();
        let router = Router::new().route(ME, get(me)).with_state(());
        let svc = AuthLayer::new(authenticator(Algorithm::HS256), policy)
            .axum_native()
            .layer(router);
        let auth = auth.and_then(bearer);
        measure(svc, ME, auth, want, k);
    } else if name == "rot" {
        // 10,000 tokens in turn: each request misses this thread's front slots and is
        // answered by the shared cache.
        let (mut svc, auths) = open_with_tokens(10_000);
        // Each token seen twice is admitted; a third pass makes every request a hit.
        for _ in 0..3 {
            for auth in &auths {
                assert_eq!(one(&mut svc, ME, auth, 0), 200);
            }
        }
        run_rotating(&mut svc, &auths, k);
    } else if name == "distinct" {
        // Every token new: the miss path, as a stream of distinct callers takes it.
        let (mut svc, auths) = open_with_tokens(k);
        let warm = bearer(token_of(Algorithm::HS256, Some("client"), "warm-up"));
        for _ in 0..4 {
            assert_eq!(one(&mut svc, ME, &warm, 0), 200);
        }
        run_rotating(&mut svc, &auths, k);
    } else if let Some(rest) = name.strip_prefix("worker-") {
        // Built on another thread and served on this one, as a multi-threaded server's
        // workers serve the router its main thread built.
        let rest = rest.to_owned();
        let (router, path, auth, want) = std::thread::spawn(move || {
            let (router, path, auth, want) = case(&rest, false);
            (router.with_state(()), path, auth, want)
        })
        .join()
        .unwrap();
        measure(router, path, auth, want, k);
    } else if let Some(rest) = name.strip_prefix("generic-") {
        let (router, path, auth, want) = case(rest, true);
        measure(router.with_state(()), path, auth, want, k);
    } else {
        let (router, path, auth, want) = case(name, false);
        // As axum::serve does per connection: the handlers become routes once.
        measure(router.with_state(()), path, auth, want, k);
    }
    eprintln!("{name}: {k} requests");
}
