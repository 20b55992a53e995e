//! An introspected token served from the verified-token cache beside a cached JWT, same
//! run: one hot token (the thread's front slots), and 1,000 tokens in turn (the shared
//! cache).
//!
//! The introspection endpoint is a loopback listener that answers every request with one
//! fixed active answer; it is asked once per token while the cache warms up and never
//! during a measurement.

#![allow(missing_docs)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::introspection::Introspection;
use portcullis::{Algorithm, Authenticator, Signer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const EXP: u64 = 4_000_000_000;

/// Serves the fixed answer on 127.0.0.1 and returns its URL.
fn endpoint(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = json!({
        "active": true, "sub": "ada", "scope": "read write", "iss": "https://as.example",
        "exp": EXP, "iat": 1_700_000_000u64, "jti": "j-1", "client_id": "app"
    })
    .to_string();
    rt.spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // Read the head and the form body (Content-Length), then answer.
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen);
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if seen.len() >= head_end + 4 + len {
                            break;
                        }
                    }
                }
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(res.as_bytes()).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/introspect")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = endpoint(&rt);
    let introspected = Authenticator::builder()
        .hmac_secret(SECRET)
        .introspection(Introspection::new(url, "rs", "secret").max_cache(Duration::from_secs(3600)))
        .role_claim("scope")
        .build()
        .unwrap();
    let jwt = Authenticator::builder()
        .hmac_secret(SECRET)
        .role_claim("scope")
        .build()
        .unwrap();
    let signer = Signer::hmac(Algorithm::HS256, SECRET).unwrap();
    let jwts: Vec<String> = (0..1_000)
        .map(|i| {
            signer
                .sign(&json!({
                    "sub": "ada", "scope": "read write", "iss": "https://as.example",
                    "exp": EXP, "iat": 1_700_000_000u64, "jti": format!("j-{i}")
                }))
                .unwrap()
        })
        .collect();
    // Opaque tokens of a common length (32 random-looking base64url characters).
    let opaque: Vec<String> = (0..1_000)
        .map(|i| format!("{:0>32}", format!("op{i:x}q7ZpX3kB9-_")))
        .collect();
    for t in &opaque {
        rt.block_on(introspected.verify_async(t)).unwrap();
    }
    for _ in 0..3 {
        for (o, j) in opaque.iter().zip(&jwts) {
            introspected.verify(o).unwrap();
            jwt.verify(j).unwrap();
        }
    }

    let mut group = c.benchmark_group("introspection");
    group.bench_function("hot/cached_jwt", |b| {
        b.iter(|| jwt.verify(&jwts[0]).unwrap())
    });
    group.bench_function("hot/introspected", |b| {
        b.iter(|| introspected.verify(&opaque[0]).unwrap())
    });
    let mut i = 0;
    group.bench_function("1000/cached_jwt", |b| {
        b.iter(|| {
            i = (i + 1) % jwts.len();
            jwt.verify(&jwts[i]).unwrap()
        })
    });
    let mut i = 0;
    group.bench_function("1000/introspected", |b| {
        b.iter(|| {
            i = (i + 1) % opaque.len();
            introspected.verify(&opaque[i]).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
