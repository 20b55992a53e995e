//! Heap allocations of one request through the layer, counted by a global allocator.
//!
//! The figures are pinned: a change that allocates more on the request path fails here,
//! with and without a revocation list checked on every request.
//! BENCHMARKS.md records them. One test in this binary, so no other test thread allocates
//! while it counts; the futures are polled by hand, so no runtime allocates either.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use portcullis::revoke::{MemoryRevocations, Revocation};
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer, TokenCache};
use serde_json::json;
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Most allocations of one allowed HS256 request that verifies its token (the cache off, or
/// a token not seen before): the decoded token buffer, the principal's strings, the
/// principal, and the request extensions that carry it (their map, its table and the
/// boxed entry).
const ALLOWED_MAX: u64 = 6;
/// Most allocations of one allowed request whose token is in the verified-token cache:
/// only the request extensions that carry the principal.
const ALLOWED_CACHED_MAX: u64 = 3;
/// Most allocations of one rejection without a token: the response's header map (two);
/// the body and challenge are precomputed and shared, and the `AuthError` goes into the
/// extensions only when the layer attaches errors.
const MISSING_MAX: u64 = 2;
/// The allocations the layer itself adds to a missing-token rejection beyond building that
/// response (its header map and its extensions entry): none.
const MISSING_BEYOND_RESPONSE_MAX: u64 = 0;

/// What the principal's entry in the request extensions may cost: the map, its table and
/// the boxed entry.
const PRINCIPAL_ENTRY: u64 = 3;

/// Allocations of one request through axum (a cache hit once warm, and a request
/// without a token): `(plain, guarded)` for the layer around the whole router, and for
/// `Router::layer` per route, whose plain baseline is the same router behind a per-route
/// layer that does nothing (axum boxes a layered route once more, guarded or not).
struct ThroughAxum {
    outer_hit: (u64, u64),
    outer_none: (u64, u64),
    route_hit: (u64, u64),
    route_none: (u64, u64),
}

fn through_axum(token: &str) -> ThroughAxum {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    let plain = || Router::new().route("/me", get(|| async { "hello" }));
    let guarded = || {
        Router::new().route(
            "/me",
            get(|p: portcullis::Principal| async move {
                drop(p);
                "hello"
            }),
        )
    };
    let layer = || {
        AuthLayer::new(
            Authenticator::builder()
                .hmac_secret(SECRET)
                .token_cache(TokenCache::new())
                .build()
                .unwrap(),
            Policy::builder()
                .allow("GET", "/me", ["client"])
                .build()
                .unwrap(),
        )
        .axum_native()
    };
    let header = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let with_token = || {
        Request::get("/me")
            .header("authorization", header.clone())
            .body(Body::empty())
            .unwrap()
    };
    let without = || Request::get("/me").body(Body::empty()).unwrap();
    fn run<S>(mut svc: S, want: u16, req: &dyn Fn() -> Request<Body>) -> u64
    where
        S: Service<Request<Body>, Response = axum::response::Response>,
        S::Error: std::fmt::Debug,
    {
        per_request(&mut svc, req, |res| assert_eq!(res.status(), want))
    }
    let noop = tower::layer::util::Identity::new();
    ThroughAxum {
        outer_hit: (
            run(plain().with_state::<()>(()), 200, &with_token),
            run(
                layer().layer(guarded().with_state::<()>(())),
                200,
                &with_token,
            ),
        ),
        outer_none: (
            run(plain().with_state::<()>(()), 200, &without),
            run(layer().layer(guarded().with_state::<()>(())), 401, &without),
        ),
        route_hit: (
            run(
                plain().layer(noop.clone()).with_state::<()>(()),
                200,
                &with_token,
            ),
            run(
                guarded().layer(layer()).with_state::<()>(()),
                200,
                &with_token,
            ),
        ),
        route_none: (
            run(plain().layer(noop).with_state::<()>(()), 200, &without),
            run(guarded().layer(layer()).with_state::<()>(()), 401, &without),
        ),
    }
}

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("future was not ready"),
    }
}

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

/// Allocations made by `f`, once it ran a few times (first calls fill lazy statics, and a
/// token's first sights fill the token cache and then this thread's front of it).
fn count<T>(mut f: impl FnMut() -> T) -> u64 {
    for _ in 0..5 {
        drop(f());
    }
    let before = blocks();
    let out = f();
    let n = blocks() - before;
    drop(out);
    n
}

/// Allocations of one request through `svc`, once warm: eight requests made by `req`
/// beforehand (so their own allocations are not counted), each answer checked by `check`.
fn per_request<S, B>(svc: &mut S, req: impl Fn() -> Request<B>, check: impl Fn(&S::Response)) -> u64
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    let mut reqs = (0..8).map(|_| req()).collect::<Vec<_>>().into_iter();
    count(|| {
        let res = ready(svc.call(reqs.next().unwrap())).unwrap();
        check(&res);
        res
    })
}

/// `layer` over a service that answers 200 "ok".
fn over_ok(
    layer: AuthLayer,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<portcullis::AuthBody<Full<Bytes>>>,
    Error = Infallible,
> {
    layer.layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }))
}

#[test]
fn allocations_of_one_request() {
    let _profiler = dhat::Profiler::builder().testing().build();

    // A revocation list with every kind of entry, none of them for the token below: each
    // request runs every look-up (and the signing-input hash) and is still allowed.
    let revoked = MemoryRevocations::new();
    revoked.revoke_all((0..1000).map(|i| Revocation::jti("", format!("other-{i}"), 4_000_000_000)));
    revoked.revoke_subject("", "someone-else", 1_800_000_000, 4_000_000_000);
    revoked.revoke(Revocation::token_sha256([7; 32], 4_000_000_000));
    let guarded = |cache: TokenCache, revoked: Option<MemoryRevocations>, policy: Policy| {
        let mut auth = Authenticator::builder()
            .hmac_secret(SECRET)
            .token_cache(cache);
        if let Some(r) = revoked {
            auth = auth.revocations(r);
        }
        over_ok(AuthLayer::new(auth.build().unwrap(), policy))
    };
    let fedn = || Policy::fedn_rest().build().unwrap();
    let layer_with = |cache, revoked| guarded(cache, revoked, fedn());
    let layer = |cache: TokenCache| layer_with(cache, None);
    let mut svc = layer(TokenCache::off());
    let mut cached = layer(TokenCache::new());
    let mut svc_revoke = layer_with(TokenCache::off(), Some(revoked.clone()));
    let mut cached_revoke = layer_with(TokenCache::new(), Some(revoked));
    let token = Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&json!({"sub": "client-1", "role": "client", "jti": "t-1", "exp": 4_000_000_000u64, "iat": 1_700_000_000u64}))
        .unwrap();
    let header = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let request = || {
        Request::post("/api/v1/clients/add")
            .header("authorization", header.clone())
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let ok = |res: &Response<_>| assert_eq!(res.status(), 200);
    let allowed_cached = per_request(&mut cached, request, ok);
    let allowed = per_request(&mut svc, request, ok);

    // The same two with a revocation list checked on every request.
    let allowed_cached_revoke = per_request(&mut cached_revoke, request, ok);
    let allowed_revoke = per_request(&mut svc_revoke, request, ok);

    // A rule with a path-parameter condition, cache on: no allocation beyond the
    // unconditional rule's.
    let mut tenant = guarded(
        TokenCache::new(),
        None,
        Policy::builder()
            .allow_when(
                "POST",
                "/api/v1/{client}/add",
                ["client"],
                [portcullis::Condition::claim_equals_param("sub", "client")],
            )
            .build()
            .unwrap(),
    );
    let allowed_conditional = per_request(
        &mut tenant,
        || {
            Request::post("/api/v1/client-1/add")
                .header("authorization", header.clone())
                .body(Full::new(Bytes::new()))
                .unwrap()
        },
        ok,
    );
    assert!(
        allowed_conditional <= allowed_cached,
        "a rule with a condition: {allowed_conditional} allocations, {allowed_cached} without"
    );

    let bare = || {
        Request::post("/api/v1/clients/add")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let missing = per_request(&mut svc, bare, |res| assert_eq!(res.status(), 401));

    // The same rejection from a layer whose challenges name RFC 9728 metadata: the
    // challenge is precomputed too, so it costs what the plain one does.
    let metadata_auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .audience("https://api.example.com/mcp")
        .issuer("https://id.example.com")
        .build()
        .unwrap();
    let metadata = portcullis::resource_metadata::ResourceMetadata::builder(&metadata_auth)
        .build()
        .unwrap();
    let mut with_metadata =
        over_ok(AuthLayer::new(metadata_auth, fedn()).resource_metadata(&metadata));
    let missing_metadata = per_request(&mut with_metadata, bare, |res| {
        assert_eq!(res.status(), 401);
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .ends_with(r#"resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp""#)
        );
    });

    // The response itself: a header map with two entries.
    let response_itself = count(|| {
        let mut res = Response::new(());
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        res.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"api\""),
        );
        res
    });

    // The same rejection from a layer asked to attach its errors: the extensions entry
    // (its map, its table and the boxed error) on top.
    let mut attaching = over_ok(
        AuthLayer::new(
            Authenticator::builder()
                .hmac_secret(SECRET)
                .build()
                .unwrap(),
            fedn(),
        )
        .attach_errors(),
    );
    let missing_attached = per_request(&mut attaching, bare, |res| {
        assert!(res.extensions().get::<portcullis::AuthError>().is_some());
    });

    // Through axum, against plain axum's own request for the same path: a cache hit adds
    // no more than the principal's extension entry, and a 401 no more than plain axum's
    // own 200 answer for that path.
    let axum = through_axum(&token);
    for (what, (plain, guarded), extra) in [
        (
            "cache hit, layer around the router",
            axum.outer_hit,
            PRINCIPAL_ENTRY,
        ),
        ("cache hit, Router::layer", axum.route_hit, PRINCIPAL_ENTRY),
        ("401, layer around the router", axum.outer_none, 0),
        ("401, Router::layer", axum.route_none, 0),
    ] {
        println!("through axum, {what}: {guarded} allocations, plain axum {plain}");
        assert!(
            guarded <= plain + extra,
            "{what}: {guarded} allocations, plain axum {plain} (+{extra} allowed)"
        );
    }

    println!(
        "allocations: allowed HS256 request {allowed} (from the token cache: {allowed_cached}), with a revocation list {allowed_revoke} (from the cache: {allowed_cached_revoke}), missing-token rejection {missing} (with resource_metadata: {missing_metadata}; the response itself: {response_itself}; with attach_errors: {missing_attached})"
    );
    assert_eq!(
        missing_attached,
        missing + 3,
        "attach_errors adds the extensions entry and nothing else"
    );
    assert_eq!(
        missing_metadata, missing,
        "missing token with RFC 9728 metadata in the challenge: {missing_metadata} allocations, {missing} without"
    );
    assert!(
        allowed_revoke <= ALLOWED_MAX,
        "allowed request with a revocation list: {allowed_revoke} allocations"
    );
    assert!(
        allowed_cached_revoke <= ALLOWED_CACHED_MAX,
        "allowed request from the cache with a revocation list: {allowed_cached_revoke} allocations"
    );
    assert!(
        allowed <= ALLOWED_MAX,
        "allowed request: {allowed} allocations"
    );
    assert!(
        allowed_cached <= ALLOWED_CACHED_MAX,
        "allowed request from the cache: {allowed_cached} allocations"
    );
    assert!(
        missing <= MISSING_MAX,
        "missing token: {missing} allocations"
    );
    assert!(
        missing.saturating_sub(response_itself) == MISSING_BEYOND_RESPONSE_MAX,
        "missing token: {missing} allocations, {response_itself} of them the response itself"
    );
}
