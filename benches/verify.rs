//! Verification cost per algorithm: `Authenticator::verify` beside a bare
//! `jsonwebtoken::decode` of the same tokens, in the same run.
//!
//! Each side verifies 1,000 distinct tokens in turn (different subjects and ids), so a
//! repeated input cannot flatter either figure, with the verified-token cache off. Then,
//! for HS256, RS256, ES256 and EdDSA, the cache: a miss (100,000 tokens in turn, so none is
//! ever admitted) beside the cache-less verification of the same tokens, and hits on
//! 1,000 and on 10,000 admitted tokens in turn (`hit`, `hit_10000`).

#![allow(missing_docs)]

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, Validation};
use portcullis::{Algorithm, Authenticator, Signer, TokenCache};
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

/// Admits `tokens` into `auth`'s cache (the second sight admits, the third hits), then
/// benches hits on them in turn.
fn hits(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: String,
    auth: &Authenticator,
    tokens: &[String],
) {
    for _ in 0..3 {
        for t in tokens {
            auth.verify(t).unwrap();
        }
    }
    let mut i = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            auth.verify(&tokens[i]).unwrap()
        })
    });
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
                    .token_cache(TokenCache::off())
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
                    .token_cache(TokenCache::off())
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

    let mut group = c.benchmark_group("cache");
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let stem = key_stem(alg);
        let signer = if alg == Algorithm::HS256 {
            Signer::hmac(alg, SECRET).unwrap()
        } else {
            Signer::from_pem(alg, fixture(&format!("{stem}.key.pem"))).unwrap()
        };
        let builder = || {
            if alg == Algorithm::HS256 {
                Authenticator::builder().hmac_secret(SECRET)
            } else {
                Authenticator::builder().public_key_pem(alg, fixture(&format!("{stem}.pub.pem")))
            }
        };
        // 2,000 entries: the admission filter then remembers 2,048 to 4,096 tokens, far
        // fewer than the pools below, so no miss is ever admitted (a miss costs the same
        // whatever the capacity: a hash and bit probes).
        let on = builder()
            .token_cache(TokenCache::new().max_entries(2_000))
            .build()
            .unwrap();
        let off = builder().token_cache(TokenCache::off()).build().unwrap();
        // Misses: a pool far larger than the admission filter, so no token is admitted.
        let pool = if alg == Algorithm::HS256 {
            100_000
        } else {
            20_000
        };
        let tokens = distinct_tokens(&signer, pool);
        let mut i = 0;
        group.bench_function(format!("{alg}/miss"), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                on.verify(&tokens[i]).unwrap()
            })
        });
        let mut i = 0;
        group.bench_function(format!("{alg}/no_cache"), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                off.verify(&tokens[i]).unwrap()
            })
        });
        // Hits: 1,000 tokens in turn.
        hits(&mut group, format!("{alg}/hit"), &on, &tokens[..1_000]);
        // Hits on 10,000 tokens in turn (the default capacity, 20,000): the entries they
        // read no longer fit this CPU's own caches, as in the load bench's `rot10k`.
        let wide = builder().build().unwrap();
        hits(
            &mut group,
            format!("{alg}/hit_10000"),
            &wide,
            &tokens[..10_000],
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
