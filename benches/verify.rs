//! Verification cost per algorithm: `Authenticator::verify` beside a bare
//! `jsonwebtoken::decode` of the same tokens, in the same run.
//!
//! Each side verifies 1,000 distinct tokens in turn (different subjects and ids), so a
//! repeated input cannot flatter either figure.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, Validation};
use portcullis::{Algorithm, Authenticator, Signer};
use serde::Deserialize;

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

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    alg.as_str().parse().unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    for &alg in Algorithm::ALL {
        let hmac = alg.as_str().starts_with("HS");
        let (signer, auth, bare_key) = if hmac {
            (
                Signer::hmac(alg, SECRET).unwrap(),
                Authenticator::builder()
                    .hmac_secret(SECRET)
                    .hmac_algorithm(alg)
                    .build()
                    .unwrap(),
                DecodingKey::from_secret(SECRET.as_bytes()),
            )
        } else {
            let stem = key_stem(alg);
            let public = fixture(&format!("{stem}.pub.pem"));
            let bare_key = match stem {
                "p256" | "p384" => DecodingKey::from_ec_pem(public.as_bytes()).unwrap(),
                "ed25519" => DecodingKey::from_ed_pem(public.as_bytes()).unwrap(),
                _ => DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
            };
            (
                Signer::from_pem(alg, fixture(&format!("{stem}.key.pem"))).unwrap(),
                Authenticator::builder()
                    .public_key_pem(alg, &public)
                    .build()
                    .unwrap(),
                bare_key,
            )
        };
        let tokens = distinct_tokens(&signer, 1_000);
        let validation = Validation::new(jwt_alg(alg));
        for token in &tokens {
            assert!(auth.verify(token).is_ok());
            assert!(jsonwebtoken::decode::<Claims>(token, &bare_key, &validation).is_ok());
        }
        let mut i = 0;
        group.bench_function(format!("{alg}/portcullis"), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                auth.verify(&tokens[i]).unwrap()
            })
        });
        let mut i = 0;
        group.bench_function(format!("{alg}/bare_jsonwebtoken"), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                jsonwebtoken::decode::<Claims>(&tokens[i], &bare_key, &validation).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
