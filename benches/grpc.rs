//! One unary gRPC call over loopback through a tonic server guarded by the layer, beside
//! the same call to the same service unguarded, in the same run.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};

#[path = "../tests/common/grpc.rs"]
#[allow(dead_code, unreachable_pub)]
mod kit;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let policy = Policy::builder()
        .allow_grpc("/test.v1.Echo/*", ["client"])
        .build()
        .unwrap();
    let token = Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&serde_json::json!({"sub": "c1", "role": "client", "exp": 4_000_000_000u64}))
        .unwrap();
    let header = format!("Bearer {token}");
    let (mut guarded, mut bare) = rt.block_on(async {
        let g = kit::serve(Some(AuthLayer::new(auth, policy))).await;
        let b = kit::serve(None).await;
        (kit::client(g, None).await, kit::client(b, None).await)
    });
    // Both answer, and the guarded one refuses a call without a token.
    rt.block_on(async {
        assert_eq!(
            kit::unary(&mut guarded, "/test.v1.Echo/Hello", Some(&header))
                .await
                .unwrap(),
            "c1:hi"
        );
        assert!(
            kit::unary(&mut guarded, "/test.v1.Echo/Hello", None)
                .await
                .is_err()
        );
        assert!(
            kit::unary(&mut bare, "/test.v1.Echo/Hello", Some(&header))
                .await
                .is_ok()
        );
    });
    let mut group = c.benchmark_group("grpc_unary");
    group.bench_function("guarded_HS256", |b| {
        b.iter(|| {
            rt.block_on(kit::unary(
                &mut guarded,
                "/test.v1.Echo/Hello",
                Some(&header),
            ))
            .unwrap()
        })
    });
    group.bench_function("unguarded", |b| {
        b.iter(|| {
            rt.block_on(kit::unary(&mut bare, "/test.v1.Echo/Hello", Some(&header)))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
