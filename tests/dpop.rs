//! DPoP (RFC 9449) with a real client: proofs made by `requests-oauth2client` (PyPI,
//! pinned, in a virtualenv the test makes), tokens minted here with `cnf.jkt` the
//! thumbprint of the client's key, guarded axum servers on loopback. Every check of RFC
//! 9449 section 4.3 has a refusing case; a replayed proof is refused on the same replica
//! and on another replica through a real Redis (and, as the control, accepted by a replica
//! that does not share it); the server-nonce flow passes with the client's own retry.
//!
//! Skips, saying why, without python3, PyPI or redis-server; with
//! `PORTCULLIS_STRICT_TESTS=1` (CI) it fails instead.

mod common;
#[allow(unreachable_pub)]
mod python_support;
#[allow(unreachable_pub)]
mod revoke_support;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use portcullis::revoke::{RedisOptions, RedisRevocations};
use portcullis::sender::{DpopOptions, SharedReplay};
use portcullis::{AuthLayer, Authenticator, Policy, Principal};
use serde_json::{Value, json};

const CLIENT: &str = "requests-oauth2client==1.8.0";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A guarded app on a loopback port (`GET /me` and `POST /me` answer the subject), its
/// DPoP options made from its own origin; returns its `/me` URL.
async fn serve(make: impl FnOnce(&str) -> DpopOptions) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    start(listener, make(&own)).await;
    format!("{own}/me")
}

async fn start(listener: tokio::net::TcpListener, options: DpopOptions) {
    let auth = Authenticator::builder()
        .hmac_secret(common::SECRET)
        .dpop(options)
        .build()
        .unwrap();
    let policy = Policy::builder()
        .allow("GET", "/me", ["*"])
        .allow("POST", "/me", ["*"])
        .build()
        .unwrap();
    let me = |p: Principal| async move { p.subject().unwrap_or_default().to_owned() };
    let app = Router::new()
        .route("/me", get(me).post(me))
        .layer(AuthLayer::new(auth, policy));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

fn token(claims: Value) -> String {
    common::hs256().sign(&claims).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_oauth2client_proofs_pass_and_every_check_refuses() {
    let test = "requests_oauth2client_proofs_pass_and_every_check_refuses";
    let Some(venv) = python_support::venv(test, &[CLIENT]) else {
        return;
    };
    let Some(redis) = revoke_support::server::redis_server(test) else {
        return;
    };
    // The client's key: its RFC 7638 thumbprint binds the tokens.
    let key: Value = serde_json::from_str(&venv.run_ok(
        "import json\nfrom requests_oauth2client import DPoPKey\nk = DPoPKey.generate(alg='ES256')\nprint(json.dumps({'jkt': k.dpop_jkt, 'jwk': k.private_key.to_dict()}))",
        &[],
    ))
    .unwrap();
    let jkt = key["jkt"].as_str().unwrap();
    let exp = now() + 3600;
    let bound = token(json!({"sub": "ada", "exp": exp, "cnf": {"jkt": jkt}}));
    let other = token(json!({"sub": "bob", "exp": exp, "cnf": {"jkt": jkt}}));

    // Two replicas sharing Redis (A and B), one that does not (C), all behind A's URL;
    // and N, which requires nonces.
    let store = |r: RedisRevocations| -> SharedReplay { r.dpop_replay() };
    let a_store = store(
        RedisRevocations::connect(&RedisOptions::new(redis.url()))
            .await
            .unwrap(),
    );
    let b_store = store(
        RedisRevocations::connect(&RedisOptions::new(redis.url()))
            .await
            .unwrap(),
    );
    let url_a = serve(|own| DpopOptions::new().public_url(own).shared_replay(a_store)).await;
    let public = url_a.trim_end_matches("/me").to_owned();
    let url_b = serve(|_| {
        DpopOptions::new()
            .public_url(&public)
            .shared_replay(b_store)
    })
    .await;
    let url_c = serve(|_| DpopOptions::new().public_url(&public)).await;
    let url_n = serve(|own| DpopOptions::new().public_url(own).require_nonce()).await;

    let script = include_str!("dpop_support/cases.py");
    let jwk = key["jwk"].to_string();
    let out = {
        let env = [
            ("JWK", jwk.as_str()),
            ("TOKEN", bound.as_str()),
            ("OTHER_TOKEN", other.as_str()),
            ("URL_A", url_a.as_str()),
            ("URL_B", url_b.as_str()),
            ("URL_C", url_c.as_str()),
            ("URL_N", url_n.as_str()),
        ];
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            venv.run_ok(script, &env)
        })
        .await
        .unwrap()
    };
    let cases: Value = serde_json::from_str(out.trim()).unwrap();
    println!("{cases:#}");
    let case = |name: &str| -> (u64, String, Value) {
        let c = &cases[name];
        (
            c[0].as_u64().unwrap_or_else(|| panic!("{name}: {c}")),
            c[1].as_str().unwrap_or("").to_owned(),
            c[2].clone(),
        )
    };
    let proof_error = r#"DPoP realm="api", error="invalid_dpop_proof", algs="#;
    // The client's own flow passes, a query and fragment in the URL change nothing.
    for name in ["client", "client_post_query"] {
        assert_eq!(case(name).0, 200, "{name}: {:?}", case(name));
        assert_eq!(case(name).1, "ada");
    }
    // Each check of RFC 9449 section 4.3 refuses.
    for name in [
        "wrong_htm",
        "wrong_htu",
        "old_iat",
        "future_iat",
        "replay_same_replica",
        "replay_other_replica",
        "wrong_ath",
        "no_ath",
        "wrong_key",
        "private_jwk",
        "symmetric_alg",
        "wrong_typ",
        "no_proof",
        "two_proofs",
    ] {
        let (status, challenge, _) = case(name);
        assert_eq!(status, 401, "{name}: {challenge}");
        assert!(challenge.starts_with(proof_error), "{name}: {challenge}");
        assert!(challenge.contains("ES256"), "{name}: {challenge}");
    }
    assert_eq!(case("replay_first").0, 200);
    assert_eq!(case("across_first").0, 200);
    assert_eq!(case("fresh_other_replica").0, 200, "B takes fresh proofs");
    // The control: a replica without the shared store cannot know the proof was used.
    assert_eq!(case("replay_unshared_replica").0, 200);
    // A DPoP-bound token sent as a bearer token.
    let (status, challenge, _) = case("bearer");
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"DPoP realm="api", algs=""#),
        "{challenge}"
    );
    // Nonces: told to use one (with the nonce), the client retries with it and passes.
    let (status, challenge, nonce) = case("nonce_first");
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with(r#"DPoP realm="api", error="use_dpop_nonce", algs=""#),
        "{challenge}"
    );
    assert!(nonce.as_str().is_some_and(|n| n.len() == 32), "{nonce}");
    let (status, body, used) = case("nonce_client");
    assert_eq!((status, body.as_str()), (200, "ada"));
    assert!(used.is_string(), "the client kept the server's nonce");
    assert_eq!(case("nonce_forged").0, 401);
}
