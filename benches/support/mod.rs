//! Shared bench helpers: fixture keys and a poll-once executor.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use portcullis::Algorithm;

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn key_stem(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "p256",
        Algorithm::ES384 => "p384",
        Algorithm::EdDSA => "ed25519",
        _ => "rsa2048",
    }
}

pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Polls a future that is ready at once (no runtime in the measurement).
pub fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("future was not ready"),
    }
}

/// `n` distinct tokens: the same shape as `claims()`, each with its own subject and id.
pub fn distinct_tokens(signer: &portcullis::Signer, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            signer
                .sign(&serde_json::json!({
                    "sub": format!("user-{i}"),
                    "jti": format!("{i:08x}"),
                    "role": "client",
                    "exp": 4_000_000_000u64,
                    "iat": 1_700_000_000u64,
                }))
                .unwrap()
        })
        .collect()
}

pub fn claims() -> serde_json::Value {
    serde_json::json!({"sub": "user-1", "role": "client", "exp": 4_000_000_000u64, "iat": 1_700_000_000u64})
}
