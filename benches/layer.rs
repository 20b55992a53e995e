//! One request through the layer (a `service_fn` inner service, polled without a runtime):
//!
//! - an allowed request, beside a bare `jsonwebtoken::decode` of the same tokens (1,000
//!   distinct tokens in turn), for HS256 and RS256;
//! - a 401 without a token, and a 401 for a garbage token, beside the bare inner service
//!   answering the same request, and beside an inner service that answers with a
//!   response of the same shape (the floor of any rejection);
//! - a verified-token cache hit (RS256), beside the bare inner service;
//! - a cache hit (HS256) allowed by a rule with one condition (the `tenant` claim equal to
//!   the `{tenant}` path segment), beside the same request allowed by the same rule
//!   without it.
//!
//! The verification figures run with the token cache off.

#![allow(missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use jsonwebtoken::{DecodingKey, Validation};
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer, TokenCache};
use serde::Deserialize;
use tower::{Layer, ServiceExt, service_fn};

#[path = "support/mod.rs"]
mod common;
use common::*;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    role: String,
    exp: u64,
}

fn inner() -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

fn request(authorization: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::post("/api/v1/clients/add");
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    let rsa_pub = fixture("rsa2048.pub.pem");
    let cases = [
        (
            Algorithm::HS256,
            Signer::hmac(Algorithm::HS256, SECRET).unwrap(),
            Authenticator::builder()
                .hmac_secret(SECRET)
                .token_cache(TokenCache::off())
                .build()
                .unwrap(),
            DecodingKey::from_secret(SECRET.as_bytes()),
        ),
        (
            Algorithm::RS256,
            Signer::from_pem(Algorithm::RS256, fixture("rsa2048.key.pem")).unwrap(),
            Authenticator::builder()
                .public_key_pem(Algorithm::RS256, &rsa_pub)
                .token_cache(TokenCache::off())
                .build()
                .unwrap(),
            DecodingKey::from_rsa_pem(rsa_pub.as_bytes()).unwrap(),
        ),
    ];
    for (alg, signer, auth, bare_key) in cases {
        let tokens = distinct_tokens(&signer, 1_000);
        let headers: Vec<String> = tokens.iter().map(|t| format!("Bearer {t}")).collect();
        let policy = Policy::fedn_rest().build().unwrap();
        let svc = AuthLayer::new(auth, policy).layer(inner());
        for h in &headers {
            let res = ready(svc.clone().oneshot(request(Some(h)))).unwrap();
            assert_eq!(res.status(), 200);
        }
        let mut i = 0;
        group.bench_function(format!("{alg}/layer_oneshot"), |b| {
            b.iter_batched(
                || {
                    i = (i + 1) % headers.len();
                    request(Some(&headers[i]))
                },
                |req| ready(svc.clone().oneshot(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let validation = Validation::new(alg.as_str().parse::<jsonwebtoken::Algorithm>().unwrap());
        let mut i = 0;
        group.bench_function(format!("{alg}/bare_jsonwebtoken_decode"), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                jsonwebtoken::decode::<Claims>(&tokens[i], &bare_key, &validation).unwrap()
            })
        });
    }

    // Cheap rejections against the bare inner service answering the same request.
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let svc = AuthLayer::new(auth, Policy::fedn_rest().build().unwrap()).layer(inner());
    let bare = inner();
    // Not a JWS at all (no dots): refused before any decoding.
    let garbage = "Bearer gibberish-that-is-no-jwt";
    for (name, value, status) in [
        ("no_token", None, 401),
        ("garbage_token", Some(garbage), 401),
    ] {
        assert_eq!(
            ready(svc.clone().oneshot(request(value))).unwrap().status(),
            status
        );
        group.bench_function(format!("reject/{name}/layer_oneshot"), |b| {
            b.iter_batched(
                || request(value),
                |req| ready(svc.clone().oneshot(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("reject/{name}/bare_inner"), |b| {
            b.iter_batched(
                || request(value),
                |req| ready(bare.clone().oneshot(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    // The verified-token cache: a hit through the layer (RS256, one token repeated)
    // beside the bare inner service answering the same request.
    let auth = Authenticator::builder()
        .public_key_pem(Algorithm::RS256, &rsa_pub)
        .build()
        .unwrap();
    let svc = AuthLayer::new(auth, Policy::fedn_rest().build().unwrap()).layer(inner());
    let token = Signer::from_pem(Algorithm::RS256, fixture("rsa2048.key.pem"))
        .unwrap()
        .sign(&claims())
        .unwrap();
    let header = format!("Bearer {token}");
    for _ in 0..3 {
        assert_eq!(
            ready(svc.clone().oneshot(request(Some(&header))))
                .unwrap()
                .status(),
            200
        );
    }
    group.bench_function("cache/hit/layer_oneshot", |b| {
        b.iter_batched(
            || request(Some(&header)),
            |req| ready(svc.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("cache/hit/bare_inner", |b| {
        b.iter_batched(
            || request(Some(&header)),
            |req| ready(bare.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // A rule with a path-claim condition against the same rule without it; one token, so
    // both are cache hits and differ by the condition alone.
    let tenant_token = Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&serde_json::json!({"sub": "client-1", "role": "client", "tenant": "acme", "exp": 4_000_000_000u64}))
        .unwrap();
    let tenant_header = format!("Bearer {tenant_token}");
    let tenant_request = || {
        Request::post("/tenants/acme/reports")
            .header("authorization", tenant_header.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let guarded = |policy: Policy| {
        let auth = Authenticator::builder()
            .hmac_secret(SECRET)
            .build()
            .unwrap();
        let svc = AuthLayer::new(auth, policy).layer(inner());
        for _ in 0..3 {
            assert_eq!(
                ready(svc.clone().oneshot(tenant_request()))
                    .unwrap()
                    .status(),
                200
            );
        }
        svc
    };
    let plain_rule = guarded(
        Policy::builder()
            .allow("POST", "/tenants/{tenant}/reports", ["client"])
            .build()
            .unwrap(),
    );
    let conditioned = guarded(
        Policy::builder()
            .allow_when(
                "POST",
                "/tenants/{tenant}/reports",
                ["client"],
                [portcullis::Condition::claim_equals_param(
                    "tenant", "tenant",
                )],
            )
            .build()
            .unwrap(),
    );
    group.bench_function("condition/none/layer_oneshot", |b| {
        b.iter_batched(
            tenant_request,
            |req| ready(plain_rule.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("condition/path_claim/layer_oneshot", |b| {
        b.iter_batched(
            tenant_request,
            |req| ready(conditioned.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // The floor of any rejection: an inner service that answers with a response of the
    // same shape (two headers and an `AuthError` in the extensions).
    let err = portcullis::AuthError::keys_unavailable();
    let same_shape = service_fn(move |_req: Request<Full<Bytes>>| {
        let err = err.clone();
        async move {
            let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
            *res.status_mut() = http::StatusCode::UNAUTHORIZED;
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            res.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"api\""),
            );
            res.extensions_mut().insert(err);
            Ok::<_, Infallible>(res)
        }
    });
    group.bench_function("reject/no_token/bare_inner_same_response", |b| {
        b.iter_batched(
            || request(None),
            |req| ready(same_shape.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
