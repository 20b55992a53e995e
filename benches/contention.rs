//! Contention: N threads (the machine's cores) each send the same token through one shared
//! guarded axum `Router`, in process, beside plain axum run the same way. Prints each
//! one's per-thread rate at N threads over one thread: a cache hit that writes memory
//! every core shares loses more of its rate as threads are added than plain axum does.
//!
//! `cargo bench --bench contention` (2 s a round; `CONTENTION_SECONDS` to change).

#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderValue, Request, Response};
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Principal, Signer};
use tower::Service;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the request did not finish at once"),
    }
}

fn call(router: &mut Router, auth: &HeaderValue) -> u16 {
    let req = Request::get("/me")
        .header(http::header::AUTHORIZATION, auth.clone())
        .body(Body::empty())
        .unwrap();
    let res: Response<Body> =
        ready(Service::call(router, req)).unwrap_or_else(|e: Infallible| match e {});
    res.status().as_u16()
}

/// Requests per second per thread with `threads` threads, each on its own clone of the
/// router (as axum gives each connection), for `secs`.
fn rate(router: &Router, auth: &HeaderValue, threads: usize, secs: f64) -> f64 {
    let barrier = Barrier::new(threads);
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut router = router.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    for _ in 0..100 {
                        assert_eq!(call(&mut router, auth), 200);
                    }
                    barrier.wait();
                    let end = Instant::now() + Duration::from_secs_f64(secs);
                    let mut n = 0u64;
                    while Instant::now() < end {
                        for _ in 0..64 {
                            black_box(call(&mut router, auth));
                        }
                        n += 64;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / secs / threads as f64
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read.
    let secs: f64 = std::env::var("CONTENTION_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let token = Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&serde_json::json!({"sub": "svc-1", "role": "client", "exp": 4_000_000_000u64}))
        .unwrap();
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let plain = Router::new()
        .route("/me", get(|| async { "hello" }))
        .with_state(());
    let guarded = Router::new()
        .route(
            "/me",
            get(|p: Principal| async move {
                black_box(&p);
                "hello"
            }),
        )
        .layer(AuthLayer::new(
            Authenticator::builder()
                .hmac_secret(SECRET)
                .build()
                .unwrap(),
            Policy::builder()
                .allow("GET", "/me", ["*"])
                .build()
                .unwrap(),
        ))
        .with_state(());
    println!("contention: {cores} threads against one, {secs} s a round, one token (cache hits)");
    for (name, router) in [("plain axum", &plain), ("AuthLayer, cache hit", &guarded)] {
        let one = rate(router, &auth, 1, secs);
        let many = rate(router, &auth, cores, secs);
        println!(
            "{name:22} 1 thread {one:>10.0}/s   {cores} threads {many:>10.0}/s per thread   ratio {:.2}",
            many / one
        );
    }
}
