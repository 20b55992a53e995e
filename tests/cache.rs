//! The verified-token cache: hits hand out the same principal, entries never outlive the
//! token, and a hash collision never shares a principal.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use portcullis::{AuthErrorKind, Authenticator, Principal, TokenCache};
use serde_json::json;

/// An HS256 authenticator (the cache on) whose clock the test sets.
fn clocked() -> (Arc<AtomicU64>, Authenticator) {
    let now = Arc::new(AtomicU64::new(NOW));
    let read = now.clone();
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .clock(move || read.load(Ordering::SeqCst))
        .build()
        .unwrap();
    (now, auth)
}

#[test]
fn a_token_seen_again_gets_the_same_principal() {
    let auth = hs_builder().build().unwrap();
    let token = hs256().sign(&claims("client")).unwrap();
    let first = auth.verify(&token).unwrap();
    let second = auth.verify(&token).unwrap(); // second sight: remembered
    let third = auth.verify(&token).unwrap();
    assert!(!first.is_same(&second));
    assert!(third.is_same(&second), "the third look-up is a hit");
    assert_eq!(third.roles(), ["client"]);
    // Off: every verification is its own.
    let off = hs_builder().token_cache(TokenCache::off()).build().unwrap();
    let (a, b, c) = (
        off.verify(&token).unwrap(),
        off.verify(&token).unwrap(),
        off.verify(&token).unwrap(),
    );
    assert!(!a.is_same(&b) && !b.is_same(&c));
}

/// An HS256 authenticator with this cache.
fn with_cache(cache: TokenCache) -> Authenticator {
    hs_builder().token_cache(cache).build().unwrap()
}

/// A token with these claims, sent twice (so cached), and the principal it is cached
/// with.
fn cached(auth: &Authenticator, claims: serde_json::Value) -> (String, Principal) {
    let token = hs256().sign(&claims).unwrap();
    let _ = auth.verify(&token).unwrap();
    let principal = auth.verify(&token).unwrap();
    (token, principal)
}

#[test]
fn a_cached_token_is_refused_at_its_exp() {
    let (now, auth) = clocked();
    let exp = NOW + 100;
    let (token, cached) = cached(&auth, json!({"sub": "u", "exp": exp, "nbf": NOW - 10}));
    // Up to exp + the 60 s leeway it is served from the cache.
    now.store(exp + 60, Ordering::SeqCst);
    assert!(auth.verify(&token).unwrap().is_same(&cached));
    // One second later it has expired, cache or not: `Token expired`.
    now.store(exp + 61, Ordering::SeqCst);
    let err = auth.verify(&token).unwrap_err();
    assert!(err.is_expired(), "{err}");
    assert_eq!(err.message(), "Token expired");
    // A clock that goes back before `nbf` (minus the leeway) refuses it too.
    now.store(NOW - 71, Ordering::SeqCst);
    assert_eq!(
        auth.verify(&token).unwrap_err().kind(),
        AuthErrorKind::InvalidToken
    );
}

#[test]
fn a_cached_token_is_verified_again_an_hour_after_it_was_cached() {
    // The shared cache has no expiry of its own: every hit checks the entry's end, its
    // token's `exp` but at most an hour after it was cached.
    let (now, auth) = clocked();
    let (token, cached) = cached(&auth, json!({"sub": "u", "exp": NOW + 7200}));
    now.store(NOW + 3600, Ordering::SeqCst);
    assert!(auth.verify(&token).unwrap().is_same(&cached));
    now.store(NOW + 3601, Ordering::SeqCst);
    let again = auth.verify(&token).unwrap();
    assert!(
        !again.is_same(&cached),
        "an hour on, the token is verified again"
    );
    assert_eq!(again.subject(), Some("u"));
}

#[test]
fn colliding_hashes_never_share_a_principal() {
    let auth = with_cache(TokenCache::new().colliding_hash_for_tests());
    let tokens: Vec<String> = (0..8)
        .map(|i| {
            hs256()
                .sign(&json!({"sub": format!("user-{i}"), "role": format!("role-{i}"), "exp": NOW + 600}))
                .unwrap()
        })
        .collect();
    for round in 0..5 {
        for (i, t) in tokens.iter().enumerate() {
            // Each token twice in a row (so it is admitted and then hit), in turn.
            for _ in 0..2 {
                let p = auth.verify(t).unwrap();
                assert_eq!(
                    p.subject(),
                    Some(format!("user-{i}").as_str()),
                    "round {round}"
                );
                assert_eq!(p.roles(), [format!("role-{i}")], "round {round}");
            }
        }
    }
    // A forged token under the same hash as a cached one is still verified (and refused).
    let good = &tokens[0];
    let _ = auth.verify(good).unwrap();
    let _ = auth.verify(good).unwrap();
    let mut forged = good.clone();
    forged.pop();
    forged.push(if good.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        auth.verify(&forged).unwrap_err().kind(),
        AuthErrorKind::InvalidToken
    );
}

#[test]
fn a_bounded_cache_stays_correct_under_many_tokens() {
    let auth = with_cache(TokenCache::new().max_entries(16).max_bytes(1 << 16));
    for i in 0..500 {
        let t = hs256()
            .sign(&json!({"sub": format!("u{i}"), "exp": NOW + 600}))
            .unwrap();
        for _ in 0..3 {
            assert_eq!(
                auth.verify(&t).unwrap().subject(),
                Some(format!("u{i}").as_str())
            );
        }
    }
}

#[test]
fn a_byte_bound_far_below_the_entries_still_caches() {
    // 1 MiB cannot hold a million entries; it still holds what fits.
    let auth = with_cache(TokenCache::new().max_entries(1_000_000).max_bytes(1 << 20));
    let (token, second) = cached(&auth, claims("client"));
    assert!(auth.verify(&token).unwrap().is_same(&second));
}

#[test]
fn every_token_of_a_working_set_is_remembered_after_its_second_sight() {
    let auth = hs_builder().build().unwrap();
    let tokens: Vec<String> = (0..5_000)
        .map(|i| {
            hs256()
                .sign(&json!({"sub": format!("u{i}"), "exp": NOW + 600}))
                .unwrap()
        })
        .collect();
    let _first: Vec<_> = tokens.iter().map(|t| auth.verify(t).unwrap()).collect();
    let second: Vec<_> = tokens.iter().map(|t| auth.verify(t).unwrap()).collect();
    let third: Vec<_> = tokens.iter().map(|t| auth.verify(t).unwrap()).collect();
    let remembered = second
        .iter()
        .zip(&third)
        .filter(|(a, b)| a.is_same(b))
        .count();
    assert_eq!(remembered, tokens.len());
}

#[test]
fn a_working_set_near_the_default_capacity_taking_turns_is_remembered() {
    // 18,000 users each sending a request in turn (90 % of the default 20,000 entries):
    // every token comes back after 17,999 others, so the admission filter must remember
    // at least that many (it once held about 8,000, and such a rotation never got in).
    let auth = hs_builder().build().unwrap();
    let tokens: Vec<String> = (0..18_000)
        .map(|i| {
            hs256()
                .sign(&json!({"sub": format!("u{i}"), "exp": NOW + 600}))
                .unwrap()
        })
        .collect();
    for t in &tokens {
        auth.verify(t).unwrap();
    }
    let second: Vec<_> = tokens.iter().map(|t| auth.verify(t).unwrap()).collect();
    let third: Vec<_> = tokens.iter().map(|t| auth.verify(t).unwrap()).collect();
    let remembered = second
        .iter()
        .zip(&third)
        .filter(|(a, b)| a.is_same(b))
        .count();
    assert_eq!(remembered, tokens.len());
}

fn sign_tagged(tag: &str, i: usize) -> String {
    hs256()
        .sign(&json!({"sub": format!("{tag}{i}"), "exp": NOW + 600}))
        .unwrap()
}

/// A cache of 2,000 entries, full of admitted tokens that never come back.
fn full_cache() -> Authenticator {
    let auth = with_cache(TokenCache::new().max_entries(2_000));
    for i in 0..2_000 {
        let t = sign_tagged("old", i);
        auth.verify(&t).unwrap();
        auth.verify(&t).unwrap();
    }
    auth
}

#[test]
fn a_full_cache_takes_in_a_new_working_set() {
    // 1,500 new tokens (75 % of the capacity) in turn: once admitted (their second
    // sight), they must stay, not push each other out before they come round again.
    let auth = full_cache();
    let tokens: Vec<String> = (0..1_500).map(|i| sign_tagged("new", i)).collect();
    assert_remembered_after(&auth, &tokens, 3);
}

/// Sends `tokens` in turn `passes` times, then twice more: the last two passes must get
/// the same principals (every token a hit).
fn assert_remembered_after(auth: &Authenticator, tokens: &[String], passes: usize) {
    let pass = || -> Vec<_> { tokens.iter().map(|t| auth.verify(t).unwrap()).collect() };
    for _ in 0..passes {
        pass();
    }
    let (a, b) = (pass(), pass());
    let remembered = a.iter().zip(&b).filter(|(a, b)| a.is_same(b)).count();
    assert_eq!(
        remembered,
        tokens.len(),
        "remembered {remembered} of {}",
        tokens.len()
    );
}

#[test]
fn a_working_set_stays_while_tokens_seen_twice_pass_through() {
    // 500 tokens in use, and between their requests 10,000 others, each sent twice (so
    // admitted) and never again: once the first 2,000 have gone through (the old
    // entries make room), the ones in use keep their entries.
    let auth = full_cache();
    let hot: Vec<String> = (0..500).map(|i| sign_tagged("hot", i)).collect();
    for _ in 0..3 {
        for t in &hot {
            auth.verify(t).unwrap();
        }
    }
    let mut last: Vec<_> = hot.iter().map(|t| auth.verify(t).unwrap()).collect();
    let mut kept = 0;
    for i in 0..10_000 {
        let passing = sign_tagged("passing", i);
        auth.verify(&passing).unwrap();
        auth.verify(&passing).unwrap();
        let j = i % hot.len();
        let p = auth.verify(&hot[j]).unwrap();
        if i >= 2_000 {
            kept += usize::from(p.is_same(&last[j]));
        }
        last[j] = p;
    }
    assert_eq!(kept, 8_000, "hits {kept} of 8,000");
}

#[test]
fn a_working_set_comes_in_after_a_stream_of_tokens_seen_once() {
    // 20,000 tokens in turn, each back only after 19,999 others: the admission filter
    // (2,048 to 4,096 tokens at this capacity) keeps them out but for its false
    // positives (about 3 %), which fill the cache with entries never hit again. Then
    // 1,200 tokens in use take their place within a pass of being admitted.
    let auth = with_cache(TokenCache::new().max_entries(2_000));
    let tokens: Vec<String> = (0..20_000).map(|i| sign_tagged("p", i)).collect();
    for t in tokens.iter().cycle().take(100_000) {
        auth.verify(t).unwrap();
    }
    assert_remembered_after(&auth, &tokens[..1_200], 4);
}
