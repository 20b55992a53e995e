//! DPoP (RFC 9449): one request through the layer with `Authorization: DPoP` and an ES256
//! proof, beside a `Bearer` request with a twin access token (the same claims and size, the
//! `cnf` member renamed so that it is not bound), both through the same layer with the
//! verified-token cache on (every request a hit). Beside them, one bare ES256 signature
//! check (aws-lc-rs) of a proof: what DPoP should add, and little more.
//!
//! Each DPoP request carries a fresh proof (its own `jti`), signed outside the measured
//! part.

#![allow(missing_docs)]

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use portcullis::sender::{DpopOptions, jwk_thumbprint};
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
use tower::{Layer, ServiceExt, service_fn};

#[path = "support/mod.rs"]
mod common;
use common::*;

const URL: &str = "https://api.example.com/api/v1/clients/add";

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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh proof for `POST URL` with `token`, numbered `n`.
fn proof(key: &Signer, header_b64: &str, ath: &str, n: u64) -> String {
    let claims = serde_json::json!({
        "jti": format!("bench-{n}"), "htm": "POST", "htu": URL, "iat": now(), "ath": ath,
    });
    let payload = b64(claims.to_string().as_bytes());
    let sig = key.sign_segments(header_b64, &payload).unwrap();
    format!("{header_b64}.{payload}.{sig}")
}

fn request(authorization: &str, proof: Option<String>) -> Request<Full<Bytes>> {
    let mut req = Request::post("/api/v1/clients/add").header("authorization", authorization);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("dpop");
    let key = Signer::generate(Algorithm::ES256).unwrap();
    let jwk = key.public_jwk().unwrap().clone();
    let jkt = jwk_thumbprint(&jwk).unwrap();
    let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let header_b64 = b64(header.to_string().as_bytes());

    let signer = Signer::hmac(Algorithm::HS256, SECRET).unwrap();
    let mut claims = claims();
    claims["cnf"] = serde_json::json!({"jkt": jkt});
    let bound = signer.sign(&claims).unwrap();
    let mut twin = claims.clone();
    let cnf = twin.as_object_mut().unwrap().remove("cnf").unwrap();
    twin["cnx"] = cnf;
    let unbound = signer.sign(&twin).unwrap();
    assert_eq!(bound.len(), unbound.len());
    let ath = b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bound.as_bytes()).as_ref());

    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .dpop(
            DpopOptions::new()
                .public_url("https://api.example.com")
                .replay_capacity(5_000_000),
        )
        .build()
        .unwrap();
    let svc = AuthLayer::new(auth, Policy::fedn_rest().build().unwrap()).layer(inner());
    let dpop_header = format!("DPoP {bound}");
    let bearer_header = format!("Bearer {unbound}");
    let mut n = 0u64;
    for _ in 0..3 {
        n += 1;
        let res = ready(svc.clone().oneshot(request(
            &dpop_header,
            Some(proof(&key, &header_b64, &ath, n)),
        )));
        assert_eq!(res.unwrap().status(), 200);
        let res = ready(svc.clone().oneshot(request(&bearer_header, None)));
        assert_eq!(res.unwrap().status(), 200);
    }
    group.bench_function("es256_proof/layer_oneshot", |b| {
        b.iter_batched(
            || {
                n += 1;
                request(&dpop_header, Some(proof(&key, &header_b64, &ath, n)))
            },
            |req| ready(svc.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("bearer_twin/layer_oneshot", |b| {
        b.iter_batched(
            || request(&bearer_header, None),
            |req| ready(svc.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // One ES256 check of a proof's signature, the key already parsed.
    let one = proof(&key, &header_b64, &ath, 0);
    let (signed, sig) = one.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let coord = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let mut point = vec![4u8];
    point.extend(coord("x"));
    point.extend(coord("y"));
    let public = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &point,
    )
    .unwrap();
    group.bench_function("es256_verify/bare_aws_lc_rs", |b| {
        b.iter(|| public.verify_sig(signed.as_bytes(), &sig).unwrap())
    });
    // What a DPoP request must pay at least: a fresh proof each time (signed outside the
    // measured part, as above), its key parsed and its signature checked.
    let mut n = 1_000_000u64;
    group.bench_function("es256_verify/fresh_proof_and_key", |b| {
        b.iter_batched(
            || {
                n += 1;
                let p = proof(&key, &header_b64, &ath, n);
                let (signed, sig) = p.rsplit_once('.').unwrap();
                (signed.to_owned(), URL_SAFE_NO_PAD.decode(sig).unwrap())
            },
            |(signed, sig)| {
                aws_lc_rs::signature::ParsedPublicKey::new(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                    &point,
                )
                .unwrap()
                .verify_sig(signed.as_bytes(), &sig)
                .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    // Parsing the proof's public key (the point checked on the curve), which each proof
    // does once before its check.
    group.bench_function("es256_key_parse/bare_aws_lc_rs", |b| {
        b.iter(|| {
            aws_lc_rs::signature::ParsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                &point,
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
