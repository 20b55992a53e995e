//! One request through the layer (oneshot over a `service_fn`), beside a bare
//! `jsonwebtoken::decode` of the same token, in the same run.

#![allow(missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use jsonwebtoken::{DecodingKey, Validation};
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    let rsa_pub = fixture("rsa2048.pub.pem");
    let cases = [
        (
            Algorithm::HS256,
            Signer::hmac(Algorithm::HS256, SECRET).unwrap(),
            Authenticator::builder()
                .hmac_secret(SECRET)
                .build()
                .unwrap(),
            DecodingKey::from_secret(SECRET.as_bytes()),
        ),
        (
            Algorithm::RS256,
            Signer::from_pem(Algorithm::RS256, fixture("rsa2048.key.pem")).unwrap(),
            Authenticator::builder()
                .public_key_pem(Algorithm::RS256, &rsa_pub)
                .build()
                .unwrap(),
            DecodingKey::from_rsa_pem(rsa_pub.as_bytes()).unwrap(),
        ),
    ];
    for (alg, signer, auth, bare_key) in cases {
        let token = signer.sign(&claims()).unwrap();
        let header = format!("Bearer {token}");
        let policy = Policy::fedn_rest().build().unwrap();
        let svc =
            AuthLayer::new(auth, policy).layer(service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }));
        let request = || {
            Request::post("/api/v1/clients/add")
                .header("authorization", header.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let res = ready(svc.clone().oneshot(request())).unwrap();
        assert_eq!(res.status(), 200);
        group.bench_function(format!("{alg}/layer_oneshot"), |b| {
            b.iter_batched(
                request,
                |req| {
                    let res = ready(svc.clone().oneshot(req)).unwrap();
                    debug_assert_eq!(res.status(), 200);
                    res
                },
                BatchSize::SmallInput,
            )
        });
        let validation = Validation::new(alg.as_str().parse::<jsonwebtoken::Algorithm>().unwrap());
        group.bench_function(format!("{alg}/bare_jsonwebtoken_decode"), |b| {
            b.iter(|| jsonwebtoken::decode::<Claims>(&token, &bare_key, &validation).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
