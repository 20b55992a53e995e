//! What the revocation check adds to a request, at 100,000 entries.
//!
//! One allowed HS256 request through the layer (FEDn REST policy, `service_fn` inner
//! service, polled once without a runtime), 1,000 distinct tokens in turn, none of them
//! revoked (the common case: every look-up runs and misses):
//!
//! - with no revocation store, with a `MemoryRevocations` of 100,000 entries (99,000 by
//!   `jti`, 1,000 by subject), and the same plus 1,000 exact-token entries (so the
//!   signing-input hash is computed on verification);
//! - with the `redis` feature and `redis-server` installed, a `RedisRevocations` copy of the
//!   same 100,000 entries, synced from a local server;
//! - verified-token cache off (every request verifies) and on (every request is a hit).
//!
//! Plus the bare `check` against the 100,000 entries: of 1,000 distinct tokens in turn
//! (`check_distinct`), and of one token again and again (`check`, everything in cache).

#![allow(missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use portcullis::revoke::{MemoryRevocations, Revocation, RevocationStore, TokenRef, Verdict};
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer, TokenCache};
use tower::{Layer, ServiceExt, service_fn};

#[path = "support/mod.rs"]
mod common;
use common::*;

const ENTRIES: usize = 100_000;

fn entries(tokens: bool) -> Vec<Revocation> {
    let mut v: Vec<Revocation> = (0..ENTRIES - 1_000)
        .map(|i| Revocation::jti("", format!("revoked-{i}"), 4_000_000_000))
        .collect();
    v.extend(
        (0..1_000)
            .map(|i| Revocation::subject("", format!("banned-{i}"), 1_900_000_000, 4_000_000_000)),
    );
    if tokens {
        v.extend((0..1_000u32).map(|i| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            Revocation::token_sha256(h, 4_000_000_000)
        }));
    }
    v
}

fn request(authorization: &str) -> Request<Full<Bytes>> {
    Request::post("/api/v1/clients/add")
        .header("authorization", authorization)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

type Store = Option<std::sync::Arc<dyn RevocationStore>>;

fn layer_case(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    store: Store,
    cache: bool,
    headers: &[String],
) {
    let mut b = Authenticator::builder()
        .hmac_secret(SECRET)
        .token_cache(if cache {
            TokenCache::new().max_entries(10_000)
        } else {
            TokenCache::off()
        });
    if let Some(s) = store {
        b = b.revocations(s);
    }
    let svc = AuthLayer::new(b.build().unwrap(), Policy::fedn_rest().build().unwrap()).layer(
        service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }),
    );
    // Every token seen three times: cached when the cache is on.
    for _ in 0..3 {
        for h in headers {
            assert_eq!(
                ready(svc.clone().oneshot(request(h))).unwrap().status(),
                200
            );
        }
    }
    let mut i = 0;
    let what = if cache { "cache_hit" } else { "verify" };
    c.bench_function(format!("{what}/{name}"), |bench| {
        bench.iter_batched(
            || {
                i = (i + 1) % headers.len();
                request(&headers[i])
            },
            |req| ready(svc.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

#[cfg(feature = "redis")]
struct Server(std::process::Child);

#[cfg(feature = "redis")]
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `RedisRevocations` copy of `revs` from a local `redis-server`, with the runtime that
/// keeps it current; `None` without `redis-server`.
#[cfg(feature = "redis")]
fn redis_store(
    revs: Vec<Revocation>,
) -> Option<(
    portcullis::revoke::RedisRevocations,
    tokio::runtime::Runtime,
    Server,
)> {
    use portcullis::revoke::{RedisOptions, RedisRevocations};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = std::env::temp_dir().join(format!("portcullis-bench-redis-{port}"));
    std::fs::create_dir_all(&dir).ok()?;
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn();
    let Ok(child) = child else {
        println!("revoke bench: skipped the Redis case: redis-server not installed");
        return None;
    };
    let server = Server(child);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .ok()?;
    let store = rt.block_on(async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let store =
            RedisRevocations::connect(&RedisOptions::new(format!("redis://127.0.0.1:{port}")))
                .await
                .unwrap();
        let n = revs.len();
        store.revoke_all(revs).await.unwrap();
        assert_eq!(store.len(), n);
        store
    });
    Some((store, rt, server))
}

fn bench(c: &mut Criterion) {
    let signer = Signer::hmac(Algorithm::HS256, SECRET).unwrap();
    let headers: Vec<String> = distinct_tokens(&signer, 1_000)
        .into_iter()
        .map(|t| format!("Bearer {t}"))
        .collect();
    let memory = MemoryRevocations::new();
    memory.revoke_all(entries(false));
    let with_tokens = MemoryRevocations::new();
    with_tokens.revoke_all(entries(true));
    assert_eq!(memory.len(), ENTRIES);

    let mut group = c.benchmark_group("revoke");
    #[cfg(feature = "redis")]
    let redis = redis_store(entries(false));
    for cache in [false, true] {
        layer_case(&mut group, "no_store", None, cache, &headers);
        layer_case(
            &mut group,
            "memory_100k",
            Some(std::sync::Arc::new(memory.clone())),
            cache,
            &headers,
        );
        layer_case(
            &mut group,
            "memory_100k_with_token_entries",
            Some(std::sync::Arc::new(with_tokens.clone())),
            cache,
            &headers,
        );
        #[cfg(feature = "redis")]
        if let Some((store, _, _)) = &redis {
            layer_case(
                &mut group,
                "redis_copy_100k",
                Some(std::sync::Arc::new(store.clone())),
                cache,
                &headers,
            );
        }
    }

    // The check alone over 1,000 distinct tokens in turn (each probes other cache lines, as
    // requests do), against 100,000 entries.
    let ids: Vec<(String, String, String)> = (0..1_000)
        .map(|i| {
            (
                format!("{i:08x}"),
                format!("user-{i}"),
                format!("e30.{i:x}"),
            )
        })
        .collect();
    let refs = || -> Vec<TokenRef<'_>> {
        ids.iter()
            .map(|(jti, sub, signed)| {
                let r = TokenRef::new("", Some(jti), Some(sub), Some(1_700_000_000), signed);
                // Hashed once, as a cache hit has it.
                let _ = r.token_sha256();
                r
            })
            .collect()
    };
    let stores: Vec<(&str, std::sync::Arc<dyn RevocationStore>)> = {
        let mut v: Vec<(&str, std::sync::Arc<dyn RevocationStore>)> = vec![
            ("memory_100k", std::sync::Arc::new(memory.clone())),
            (
                "memory_100k_with_token_entries",
                std::sync::Arc::new(with_tokens.clone()),
            ),
        ];
        #[cfg(feature = "redis")]
        if let Some((store, _, _)) = &redis {
            v.push(("redis_copy_100k", std::sync::Arc::new(store.clone())));
        }
        v
    };
    for (name, store) in stores {
        let refs = refs();
        let mut i = 0;
        group.bench_function(format!("check_distinct/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % refs.len();
                assert_eq!(store.check(&refs[i]), Verdict::Valid)
            })
        });
    }

    let token = TokenRef::new(
        "",
        Some("00000001"),
        Some("user-1"),
        Some(1_700_000_000),
        "e30.e30",
    );
    group.bench_function("check/memory_100k", |b| {
        b.iter(|| assert_eq!(memory.check(&token), Verdict::Valid))
    });
    let token = TokenRef::new(
        "",
        Some("00000001"),
        Some("user-1"),
        Some(1_700_000_000),
        "e30.e30",
    );
    group.bench_function("check/memory_100k_with_token_entries", |b| {
        b.iter(|| assert_eq!(with_tokens.check(&token), Verdict::Valid))
    });
    // What a fresh verification adds while exact-token entries exist: the SHA-256 of the
    // signing input (a cache hit reuses the one stored with the entry).
    let real = headers[0].trim_start_matches("Bearer ").to_owned();
    group.bench_function("signing_input_sha256", |b| {
        b.iter(|| TokenRef::new("", None, None, None, &real).token_sha256())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
