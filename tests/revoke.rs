//! Revocation with the in-memory store: by `(iss, jti)`, by subject, by exact token; the
//! answers over HTTP and gRPC; the high-S twin and the padding-bit variant of a revoked
//! token; tokens already in the verified-token cache; entries expiring with their tokens.

mod common;
mod revoke_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use portcullis::revoke::{MemoryRevocations, Revocation, RevocationStore, TokenRef, Verdict};
use portcullis::{Algorithm, AuthErrorKind, AuthLayer, Authenticator, Policy, Signer, TokenCache};
use revoke_support::{high_s_twin, padding_variant};
use serde_json::json;
use tower::{Layer, ServiceExt};

const ISS: &str = "https://issuer.example";

fn settable_clock() -> (
    Arc<AtomicU64>,
    impl Fn() -> u64 + Send + Sync + Clone + 'static,
) {
    let now = Arc::new(AtomicU64::new(NOW));
    let read = now.clone();
    (now, move || read.load(Ordering::SeqCst))
}

fn token(sub: &str, jti: &str, iat: u64) -> String {
    hs256()
        .sign(&json!({"iss": ISS, "sub": sub, "jti": jti, "iat": iat, "exp": NOW + 3600, "role": "client"}))
        .unwrap()
}

fn auth(store: &MemoryRevocations, cache: TokenCache) -> Authenticator {
    hs_builder()
        .revocations(store.clone())
        .token_cache(cache)
        .build()
        .unwrap()
}

fn assert_revoked(auth: &Authenticator, token: &str) {
    let err = auth.verify(token).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::InvalidToken, "{err}");
    assert!(err.is_revoked(), "{err}");
    assert_eq!(err.message(), "Token revoked");
}

#[test]
fn revoked_by_jti_subject_and_exact_token() {
    for cache in [TokenCache::off(), TokenCache::new()] {
        let store = MemoryRevocations::new().clock(|| NOW);
        let auth = auth(&store, cache);
        let (a, b, c, d) = (
            token("ada", "a", NOW - 10),
            token("bob", "b", NOW - 10),
            token("bob", "b2", NOW + 5),
            token("cy", "c", NOW - 10),
        );
        for t in [&a, &b, &c, &d] {
            for _ in 0..3 {
                auth.verify(t).unwrap();
            }
        }
        // By (iss, jti): the jti under another issuer is another token.
        store.revoke_jti("https://other.example", "a", NOW + 3600);
        auth.verify(&a).unwrap();
        store.revoke_jti(ISS, "a", NOW + 3600);
        assert_revoked(&auth, &a);
        // By subject: tokens issued before the cut-off only.
        store.revoke_subject(ISS, "bob", NOW, NOW + 3600);
        assert_revoked(&auth, &b);
        assert_eq!(auth.verify(&c).unwrap().subject(), Some("bob"));
        // By the exact token.
        store.revoke_token(&d).unwrap();
        assert_revoked(&auth, &d);
        let other = token("cy", "c-2", NOW - 10);
        auth.verify(&other).unwrap();
        assert_eq!(store.len(), 4);
    }
}

#[test]
fn a_subject_revocation_refuses_tokens_without_iat() {
    let store = MemoryRevocations::new().clock(|| NOW);
    let auth = auth(&store, TokenCache::off());
    let no_iat = hs256()
        .sign(&json!({"iss": ISS, "sub": "eve", "exp": NOW + 3600}))
        .unwrap();
    auth.verify(&no_iat).unwrap();
    store.revoke_subject(ISS, "eve", NOW - 1000, NOW + 3600);
    assert_revoked(&auth, &no_iat);
}

#[test]
fn tokens_without_iss_are_revoked_under_the_empty_issuer() {
    let store = MemoryRevocations::new().clock(|| NOW);
    let auth = auth(&store, TokenCache::off());
    let t = hs256()
        .sign(&json!({"sub": "ada", "jti": "x", "exp": NOW + 3600}))
        .unwrap();
    store.revoke_jti(ISS, "x", NOW + 3600);
    auth.verify(&t).unwrap();
    store.revoke_jti("", "x", NOW + 3600);
    assert_revoked(&auth, &t);
}

/// Acceptance 5: a token already in the verified-token cache is refused once revoked, for
/// each kind of revocation, and stays refused.
#[test]
fn a_cached_token_is_refused_once_revoked() {
    type Revoke = fn(&MemoryRevocations, &str);
    let kinds: [(&str, Revoke); 3] = [
        ("jti", |s, _| s.revoke_jti(ISS, "j", NOW + 3600)),
        ("subject", |s, _| {
            s.revoke_subject(ISS, "ada", NOW, NOW + 3600)
        }),
        ("token", |s, t| s.revoke_token(t).unwrap()),
    ];
    for (kind, revoke) in kinds {
        let store = MemoryRevocations::new().clock(|| NOW);
        let auth = auth(&store, TokenCache::new());
        let t = token("ada", "j", NOW - 10);
        let _ = auth.verify(&t).unwrap();
        let second = auth.verify(&t).unwrap();
        let hit = auth.verify(&t).unwrap();
        assert!(
            hit.is_same(&second),
            "{kind}: the token is served from the cache"
        );
        revoke(&store, &t);
        for _ in 0..3 {
            assert_revoked(&auth, &t);
        }
    }
}

#[test]
fn a_cached_token_is_refused_once_revoked_through_the_layer() {
    let store = MemoryRevocations::new().clock(|| NOW);
    let app = app(
        auth(&store, TokenCache::new()),
        Policy::fedn_rest()
            .allow("GET", "/me", ["*"])
            .build()
            .unwrap(),
    );
    let t = token("ada", "j", NOW - 10);
    let bearer = format!("Bearer {t}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..3 {
            assert_eq!(send(&app, "GET", "/me", Some(&bearer)).await.0, 200);
        }
        store.revoke_jti(ISS, "j", NOW + 3600);
        let got = send(&app, "GET", "/me", Some(&bearer)).await;
        assert_rejected(
            &got,
            401,
            Some(r#"Bearer realm="api", error="invalid_token""#),
            "invalid_token",
            "Token revoked",
        );
    });
}

#[tokio::test]
async fn grpc_callers_get_unauthenticated_token_revoked() {
    let store = MemoryRevocations::new().clock(|| NOW);
    let policy = Policy::builder()
        .allow_grpc("/quickstart.v1.Greeter/*", ["client"])
        .build()
        .unwrap();
    let svc = AuthLayer::new(auth(&store, TokenCache::new()), policy)
        .for_grpc()
        .layer(tower::service_fn(|_req: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        }));
    let t = token("ada", "g", NOW - 10);
    let call = || {
        http::Request::post("/quickstart.v1.Greeter/SayHello")
            .header("content-type", "application/grpc")
            .header("authorization", format!("Bearer {t}"))
            .body(String::new())
            .unwrap()
    };
    let ok = svc.clone().oneshot(call()).await.unwrap();
    assert!(ok.headers().get("grpc-status").is_none());
    store.revoke_jti(ISS, "g", NOW + 3600);
    let res = svc.oneshot(call()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "16");
    assert_eq!(res.headers()["grpc-message"], "Token revoked");
}

/// The high-S twin of an ES256 token verifies (RFC 7518 allows it); revoking the token
/// refuses both twins, and revoking the twin refuses the original: exact-token entries are
/// keyed by the signing input, which the twins share.
#[test]
fn both_ecdsa_twins_of_a_revoked_token_are_refused() {
    let (private, public) = keypair(Algorithm::ES256);
    let signer = Signer::from_pem(Algorithm::ES256, private).unwrap();
    for (revoke_twin, cache) in [
        (false, TokenCache::off()),
        (true, TokenCache::off()),
        (false, TokenCache::new()),
        (true, TokenCache::new()),
    ] {
        let store = MemoryRevocations::new().clock(|| NOW);
        let auth = Authenticator::builder()
            .public_key_pem(Algorithm::ES256, &public)
            .clock(|| NOW)
            .token_cache(cache)
            .revocations(store.clone())
            .build()
            .unwrap();
        let original = signer
            .sign(&json!({"sub": "ada", "exp": NOW + 3600}))
            .unwrap();
        let twin = high_s_twin(&original);
        assert_ne!(twin, original);
        for t in [&original, &twin, &original, &twin, &original, &twin] {
            assert_eq!(auth.verify(t).unwrap().subject(), Some("ada"));
        }
        store
            .revoke_token(if revoke_twin { &twin } else { &original })
            .unwrap();
        assert_revoked(&auth, &original);
        assert_revoked(&auth, &twin);
    }
}

/// A padding-bit variant of a revoked token is refused as invalid (strict base64url), never
/// accepted as "not on the list".
#[test]
fn a_padding_bit_variant_of_a_revoked_token_is_invalid() {
    let store = MemoryRevocations::new().clock(|| NOW);
    let auth = auth(&store, TokenCache::new());
    let t = token("ada", "p", NOW - 10);
    store.revoke_token(&t).unwrap();
    let variant = padding_variant(&t);
    assert_ne!(variant, t);
    let err = auth.verify(&variant).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
    assert!(!err.is_revoked());
    assert_eq!(err.message(), "Invalid token");
    assert_revoked(&auth, &t);
}

/// Entries last until the token's `exp` plus 300 s (the largest leeway), then go.
#[test]
fn entries_expire_with_their_tokens() {
    let (now, clock) = settable_clock();
    let store = MemoryRevocations::new().clock(clock.clone());
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .clock(clock)
        .leeway(300)
        .revocations(store.clone())
        .build()
        .unwrap();
    let t = token("ada", "e", NOW - 10);
    store.revoke_jti(ISS, "e", NOW + 3600);
    store.revoke_all((0..10_000).map(|i| Revocation::jti(ISS, format!("x{i}"), NOW + 60)));
    assert_eq!(store.len(), 10_001);
    now.store(NOW + 3600 + 300, Ordering::SeqCst);
    assert_eq!(store.purge_expired(), 10_000);
    // Within the leeway the token would verify again: its entry is still there.
    assert_revoked(&auth, &t);
    now.store(NOW + 3600 + 301, Ordering::SeqCst);
    assert_eq!(store.purge_expired(), 1);
    assert!(store.is_empty());
    assert!(auth.verify(&t).unwrap_err().is_expired());
}

#[test]
fn revoking_a_token_reads_only_its_shape_and_exp() {
    let t = token("ada", "x", NOW);
    let r = Revocation::token(&t).unwrap();
    assert_eq!(r.expires_at(), NOW + 3600);
    // The signature segment is not part of the key.
    let (signed, _) = t.rsplit_once('.').unwrap();
    assert_eq!(Revocation::token(&format!("{signed}.AAAA")).unwrap(), r);
    for bad in ["", "a.b", "a.b.c.d", "x.e30.", "x.!!.y"] {
        assert!(Revocation::token(bad).is_err(), "{bad:?}");
    }
    let no_exp = hs256().sign(&json!({"sub": "ada"})).unwrap();
    let err = Revocation::token(&no_exp).unwrap_err();
    assert!(err.to_string().contains("exp"), "{err}");
    assert!(!err.is_pending());
    assert_eq!(
        Revocation::token_until(&no_exp, NOW).unwrap().expires_at(),
        NOW
    );
}

#[test]
fn a_custom_store_sees_the_registered_claims() {
    struct Seen(std::sync::Mutex<Vec<String>>);
    impl RevocationStore for Seen {
        fn check(&self, t: &TokenRef<'_>) -> Verdict {
            self.0.lock().unwrap().push(format!(
                "{} {:?} {:?} {:?}",
                t.issuer(),
                t.jti(),
                t.subject(),
                t.issued_at()
            ));
            Verdict::Valid
        }
    }
    let seen = Arc::new(Seen(Default::default()));
    let auth = hs_builder()
        .token_cache(TokenCache::new())
        .revocations(seen.clone())
        .build()
        .unwrap();
    let t = token("ada", "j-1", NOW - 5);
    for _ in 0..3 {
        auth.verify(&t).unwrap();
    }
    let line = format!("{ISS} Some(\"j-1\") Some(\"ada\") Some({})", NOW - 5);
    // Two verifications, one cache hit: the same view each time.
    assert_eq!(
        *seen.0.lock().unwrap(),
        vec![line.clone(), line.clone(), line]
    );
}
