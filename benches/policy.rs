//! The policy decision at 10, 1,000 and 10,000 rules: what the layer runs once the token
//! is verified (`Policy::target` plus the allowed path), and a denial with its reason
//! (`Policy::target` plus `decide_roles`).
//!
//! Rules have a realistic shape: distinct literal paths with parameters across four route
//! families and methods, eight roles, and a few wildcard rules (`/admin/**`,
//! `/static/{*rest}`, `/docs/**`, `/api/v1/projects/*/meta`). Each measurement cycles
//! through 1,024 distinct request paths (random rules, random parameter values), never
//! one repeated path. The median at 10,000 rules should stay within 1.5x the median at
//! 10: the rules are compiled into segment tries, never scanned.

#![allow(missing_docs)]

mod support;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::Method;
use portcullis::{Algorithm, Authenticator, Policy, Principal, Signer};

const ROLES: usize = 8;
/// The caller holds these: two of the eight rule roles, and the wildcard rules' `reader`.
const CALLER: [&str; 3] = ["role-3", "role-5", "reader"];

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Rule `i`: (methods, pattern), one of four route families.
fn rule(i: usize) -> (&'static str, String) {
    match i % 4 {
        0 => ("GET", format!("/api/v1/projects/p{i}/items/{{id}}")),
        1 => ("POST", format!("/api/v1/projects/p{i}/items")),
        2 => (
            "GET,HEAD",
            format!("/api/v2/tenants/{{tenant}}/svc{i}/status"),
        ),
        _ => (
            "PUT",
            format!("/api/v1/projects/p{i}/items/{{id}}/tags/{{tag}}"),
        ),
    }
}

/// A request for rule `i` with random parameter values.
fn request(i: usize, rng: &mut Rng) -> (Method, String) {
    let (id, other) = (rng.below(100_000), rng.below(1_000));
    match i % 4 {
        0 => (Method::GET, format!("/api/v1/projects/p{i}/items/{id}")),
        1 => (Method::POST, format!("/api/v1/projects/p{i}/items")),
        2 => (
            Method::HEAD,
            format!("/api/v2/tenants/t{other}/svc{i}/status"),
        ),
        _ => (
            Method::PUT,
            format!("/api/v1/projects/p{i}/items/{id}/tags/t{other}"),
        ),
    }
}

fn role(i: usize) -> String {
    format!("role-{}", i % ROLES)
}

fn policy(n: usize) -> Policy {
    let mut b = Policy::builder()
        .allow("*", "/admin/**", ["admin"])
        .allow("GET", "/static/{*rest}", ["*"])
        .allow("GET", "/docs/**", ["reader"])
        .allow("GET", "/api/v1/projects/*/meta", ["ops", "admin"])
        .public_prefix("/health");
    for i in 0..n.saturating_sub(4) {
        let (methods, pattern) = rule(i);
        b = b.allow(methods, &pattern, [role(i)]);
    }
    b.build().expect("bench policy is valid")
}

/// 1,024 distinct requests: rules whose role `allowed` says the caller holds (or not),
/// with the wildcard rules among the allowed ones.
fn requests(n: usize, allowed: bool, rng: &mut Rng) -> Vec<(Method, String)> {
    let rules: Vec<usize> = (0..n.saturating_sub(4))
        .filter(|&i| CALLER.contains(&role(i).as_str()) == allowed)
        .collect();
    assert!(!rules.is_empty(), "no {allowed} rules at {n}");
    (0..1024)
        .map(|k| {
            if allowed && k % 8 == 0 {
                let x = rng.below(100_000);
                if k % 16 == 0 {
                    (Method::GET, format!("/static/css/{x}/site.css"))
                } else {
                    (Method::GET, format!("/docs/guide/{x}"))
                }
            } else {
                request(rules[rng.below(rules.len())], rng)
            }
        })
        .collect()
}

fn caller() -> Principal {
    let secret = support::SECRET;
    let token = Signer::hmac(Algorithm::HS256, secret)
        .unwrap()
        .sign(&serde_json::json!({"sub": "u", "role": CALLER, "exp": 4_000_000_000u64}))
        .unwrap();
    Authenticator::builder()
        .hmac_secret(secret)
        .hmac_algorithm(Algorithm::HS256)
        .build()
        .unwrap()
        .verify(&token)
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let principal = caller();
    let mut group = c.benchmark_group("policy");
    for n in [10usize, 1_000, 10_000] {
        let policy = policy(n);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
        let allowed = requests(n, true, &mut rng);
        let denied = requests(n, false, &mut rng);
        for (m, path) in &allowed {
            let t = policy.target(m, path).unwrap();
            assert!(
                policy.authorize_for_bench(&principal, &t).is_ok(),
                "{m} {path}"
            );
        }
        for (m, path) in &denied {
            let t = policy.target(m, path).unwrap();
            assert!(!policy.decide_roles(&CALLER, &t).is_allowed(), "{m} {path}");
        }

        group.bench_with_input(BenchmarkId::new("allowed", n), &n, |b, _| {
            let mut k = 0;
            b.iter(|| {
                let (m, path) = &allowed[k % allowed.len()];
                k += 1;
                let target = policy.target(m, black_box(path)).unwrap();
                policy.authorize_for_bench(black_box(&principal), &target)
            })
        });
        group.bench_with_input(BenchmarkId::new("denied", n), &n, |b, _| {
            let mut k = 0;
            b.iter(|| {
                let (m, path) = &denied[k % denied.len()];
                k += 1;
                let target = policy.target(m, black_box(path)).unwrap();
                policy.decide_roles(black_box(&CALLER), &target)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
