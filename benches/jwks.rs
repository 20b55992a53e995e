//! One request verified with a cached remote key (a JWK set fetched from a loopback
//! issuer) beside the same request with the same key given statically, in the same run:
//! `verify` alone, and through the layer (oneshot over a `service_fn`).

#![allow(missing_docs)]

use std::convert::Infallible;
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use portcullis::{Algorithm, AuthLayer, Authenticator, JwksOptions, Policy, Signer};
use tower::{Layer, ServiceExt, service_fn};

#[path = "support/mod.rs"]
mod common;
use common::*;

fn bench(c: &mut Criterion) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(der.as_ref())
    );
    let point = pair.public_key().as_ref().to_vec();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "bench",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }]})
    .to_string();
    let token = Signer::from_pem(Algorithm::ES256, pem)
        .unwrap()
        .kid("bench")
        .sign(&claims())
        .unwrap();

    // The issuer runs on its own runtime for the whole bench.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let served = jwks.clone();
    rt.spawn(async move {
        let app = Router::new().route("/jwks.json", get(move || async move { served }));
        axum::serve(listener, app).await
    });

    let static_auth = Authenticator::builder().jwk_set_json(jwks).build().unwrap();
    // A TTL longer than the run: every measured request is a cache hit.
    let remote_auth = Authenticator::builder()
        .jwks_url(url)
        .jwks_options(
            JwksOptions::new()
                .ttl(Duration::from_secs(24 * 3600))
                .refresh_ahead(Duration::ZERO),
        )
        .build()
        .unwrap();
    rt.block_on(remote_auth.load_keys()).unwrap();

    let mut group = c.benchmark_group("jwks");
    for (name, auth) in [("static", static_auth), ("remote_cached", remote_auth)] {
        assert!(auth.verify(&token).is_ok());
        group.bench_function(format!("ES256/{name}/verify"), |b| {
            b.iter(|| auth.verify(&token).unwrap())
        });
        let header = format!("Bearer {token}");
        let policy = Policy::builder()
            .allow("GET", "/me", ["*"])
            .build()
            .unwrap();
        let svc =
            AuthLayer::new(auth, policy).layer(service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }));
        let request = || {
            Request::get("/me")
                .header("authorization", header.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        assert_eq!(ready(svc.clone().oneshot(request())).unwrap().status(), 200);
        group.bench_function(format!("ES256/{name}/layer_oneshot"), |b| {
            b.iter_batched(
                request,
                |req| ready(svc.clone().oneshot(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    drop(rt);
}

criterion_group!(benches, bench);
criterion_main!(benches);
