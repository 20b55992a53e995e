//! The load-bench servers that build on this repository, and the token generator.
//!
//! ```text
//! load-server serve <plain|handrolled|portcullis-off|portcullis-on|portcullis-outer> <HS256|RS256|ES256|EdDSA> <port>
//! load-server gen <alg> <client|none> <count> <tag> <out-file>   one token a line
//! load-server jwks <alg> <out-file>                               the public key as a JWK set
//! ```
//!
//! Every server answers `GET /me` with `{"sub": ...}` on 127.0.0.1 only, on a
//! current-thread tokio runtime (one worker), guarded so that a token with role `client`
//! passes, a role-less token gets 403 and a request without a token 401 (plain axum has no
//! guard and answers 200). Keys: the crate's test fixtures (`LOAD_FIXTURES`, a directory)
//! and one HS256 secret. Tokens: signed with portcullis's `Signer`, `kid` "k1", `iss`
//! `LOAD_ISSUER`, `exp` far in the future. A server exits by itself after
//! `LOAD_MAX_SECONDS` (default 900), so none outlives a run. `portcullis-on` puts the
//! layer on the router (`Router::layer`, per route); `portcullis-outer` wraps the whole
//! router in it (the cache on).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

/// The HS256 secret of every HMAC variant (test-only, like the fixtures).
const SECRET: &str = "portcullis-load-bench-hs256-secret-0123456789";
/// The `kid` of every token and key (tower-oauth2-resource-server selects keys by kid).
const KID: &str = "k1";
/// `exp` of every token: far in the future.
const EXP: u64 = 4_000_000_000;

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("load-server: {msg}");
    std::process::exit(2)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| die(format!("{name} is not set")))
}

/// The fixture file stem of an asymmetric algorithm.
fn fixture(alg: &str) -> &'static str {
    match alg {
        "RS256" => "rsa2048",
        "ES256" => "p256",
        "EdDSA" => "ed25519",
        _ => die(format!("no key fixture for {alg}")),
    }
}

fn read_fixture(alg: &str, part: &str) -> String {
    let path = format!("{}/{}.{part}.pem", env("LOAD_FIXTURES"), fixture(alg));
    std::fs::read_to_string(&path).unwrap_or_else(|e| die(format!("{path}: {e}")))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> &str {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| die("usage: see the top of benches/load/servers/src/main.rs"))
    };
    match arg(1) {
        "serve" => serve(arg(2), arg(3), arg(4)),
        "gen" => generate(arg(2), arg(3), arg(4), arg(5), arg(6)),
        "jwks" => jwks(arg(2), arg(3)),
        other => die(format!("unknown command {other}")),
    }
}

// ----- tokens -----------------------------------------------------------------------

fn signer(alg: &str) -> portcullis::Signer {
    let a: portcullis::Algorithm = alg.parse().unwrap_or_else(|e| die(e));
    let s = if alg == "HS256" {
        portcullis::Signer::hmac(a, SECRET)
    } else {
        portcullis::Signer::from_pem(a, read_fixture(alg, "key"))
    };
    s.unwrap_or_else(|e| die(e)).kid(KID)
}

/// Writes `count` distinct tokens, one a line, signed on every core.
fn generate(alg: &str, role: &str, count: &str, tag: &str, out: &str) {
    let count: usize = count.parse().unwrap_or_else(|e| die(e));
    let with_role = match role {
        "client" => true,
        "none" => false,
        _ => die("role must be client or none"),
    };
    let issuer = env("LOAD_ISSUER");
    let signer = signer(alg);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads).max(1);
    let parts: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| {
                let (signer, issuer) = (&signer, &issuer);
                s.spawn(move || {
                    let mut buf = Vec::new();
                    for i in start..(start + chunk).min(count) {
                        let mut claims = serde_json::json!({
                            "sub": format!("{tag}-{i:08}"),
                            "iss": issuer,
                            "iat": 1_700_000_000u64,
                            "exp": EXP,
                            "jti": format!("{tag}{i}"),
                        });
                        if with_role {
                            claims["role"] = "client".into();
                        }
                        let token = signer.sign(&claims).unwrap_or_else(|e| die(e));
                        buf.extend_from_slice(token.as_bytes());
                        buf.push(b'\n');
                    }
                    buf
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tmp = format!("{out}.tmp");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&tmp).unwrap_or_else(|e| die(format!("{tmp}: {e}"))),
    );
    for p in parts {
        f.write_all(&p).unwrap_or_else(|e| die(e));
    }
    f.flush().unwrap_or_else(|e| die(e));
    drop(f);
    std::fs::rename(&tmp, out).unwrap_or_else(|e| die(e));
}

/// The public key of `alg` as a JWK set (for the OIDC issuer the peers serve).
fn jwks(alg: &str, out: &str) {
    use jsonwebtoken::{EncodingKey, jwk};
    let pem = read_fixture(alg, "key");
    let (key, a) = match alg {
        "RS256" => (
            EncodingKey::from_rsa_pem(pem.as_bytes()),
            jsonwebtoken::Algorithm::RS256,
        ),
        "ES256" => (
            EncodingKey::from_ec_pem(pem.as_bytes()),
            jsonwebtoken::Algorithm::ES256,
        ),
        "EdDSA" => (
            EncodingKey::from_ed_pem(pem.as_bytes()),
            jsonwebtoken::Algorithm::EdDSA,
        ),
        _ => die(format!("no public JWK for {alg}")),
    };
    let key = key.unwrap_or_else(|e| die(e));
    let mut k = jwk::Jwk::from_encoding_key(&key, a).unwrap_or_else(|e| die(e));
    k.common.key_id = Some(KID.into());
    k.common.public_key_use = Some(jwk::PublicKeyUse::Signature);
    let set = jwk::JwkSet { keys: vec![k] };
    std::fs::write(out, serde_json::to_string(&set).unwrap()).unwrap_or_else(|e| die(e));
}

// ----- servers ----------------------------------------------------------------------

#[derive(Serialize)]
struct Me {
    sub: String,
}

/// The claims the hand-rolled check reads.
#[derive(Clone, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
}

/// The hand-rolled check: a key and a validation built once.
struct Hand {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

async fn hand_check(State(h): State<Arc<Hand>>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response();
    };
    match jsonwebtoken::decode::<Claims>(token, &h.key, &h.validation) {
        Ok(data) if data.claims.role.as_deref() == Some("client") => {
            req.extensions_mut().insert(data.claims);
            next.run(req).await
        }
        Ok(_) => (
            StatusCode::FORBIDDEN,
            [(
                header::WWW_AUTHENTICATE,
                "Bearer error=\"insufficient_scope\"",
            )],
        )
            .into_response(),
        Err(_) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response(),
    }
}

fn hand_rolled(alg: &str) -> Router {
    use jsonwebtoken::DecodingKey;
    let key = match alg {
        "HS256" => Ok(DecodingKey::from_secret(SECRET.as_bytes())),
        "RS256" => DecodingKey::from_rsa_pem(read_fixture(alg, "pub").as_bytes()),
        "ES256" => DecodingKey::from_ec_pem(read_fixture(alg, "pub").as_bytes()),
        "EdDSA" => DecodingKey::from_ed_pem(read_fixture(alg, "pub").as_bytes()),
        _ => die(format!("unknown algorithm {alg}")),
    }
    .unwrap_or_else(|e| die(e));
    let a: jsonwebtoken::Algorithm = alg.parse().unwrap_or_else(|e| die(e));
    let hand = Arc::new(Hand {
        key,
        validation: jsonwebtoken::Validation::new(a),
    });
    Router::new()
        .route(
            "/me",
            get(|Extension(c): Extension<Claims>| async move { Json(Me { sub: c.sub }) }),
        )
        .layer(from_fn_with_state(hand, hand_check))
}

/// The guard of the portcullis variants: the variant's keys, the cache on or off, and
/// `GET /me` for role `client`.
fn portcullis_layer(alg: &str, cache: bool) -> portcullis::layer::AxumAuthLayer {
    use portcullis::{AuthLayer, Authenticator, Policy, TokenCache};
    let mut b = Authenticator::builder();
    b = if alg == "HS256" {
        b.hmac_secret(SECRET)
    } else {
        let a: portcullis::Algorithm = alg.parse().unwrap_or_else(|e| die(e));
        b.public_key_pem_with_kid(a, read_fixture(alg, "pub"), KID)
    };
    let cache = if cache {
        TokenCache::new()
    } else {
        TokenCache::off()
    };
    let auth = b.token_cache(cache).build().unwrap_or_else(|e| die(e));
    let policy = Policy::builder()
        .allow("GET", "/me", ["client"])
        .build()
        .unwrap_or_else(|e| die(e));
    AuthLayer::new(auth, policy).axum_native()
}

/// The portcullis variants' routes, without the guard.
fn portcullis_routes() -> Router {
    Router::new().route(
        "/me",
        get(|p: portcullis::Principal| async move {
            Json(Me {
                sub: p.subject().unwrap_or("").to_owned(),
            })
        }),
    )
}

/// The layer per route (`Router::layer`), as most axum users place it.
fn portcullis(alg: &str, cache: bool) -> Router {
    portcullis_routes().layer(portcullis_layer(alg, cache))
}

fn plain() -> Router {
    Router::new().route(
        "/me",
        get(|| async {
            Json(Me {
                sub: "anonymous".to_owned(),
            })
        }),
    )
}

fn serve(variant: &str, alg: &str, port: &str) {
    let port: u16 = port.parse().unwrap_or_else(|e| die(e));
    let outer = variant == "portcullis-outer";
    let app = match variant {
        "plain" => plain(),
        "handrolled" => hand_rolled(alg),
        "portcullis-off" => portcullis(alg, false),
        "portcullis-on" => portcullis(alg, true),
        // The layer around the whole router (below).
        "portcullis-outer" => portcullis_routes(),
        _ => die(format!("unknown variant {variant}")),
    };
    let max: u64 = std::env::var("LOAD_MAX_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(900);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max));
        die(format!("ran {max} s (LOAD_MAX_SECONDS); exiting"));
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(e));
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| die(format!("bind 127.0.0.1:{port}: {e}")));
        if outer {
            use axum::ServiceExt;
            use tower_layer::Layer;
            let app = portcullis_layer(alg, true).layer(app);
            axum::serve(listener, ServiceExt::<Request>::into_make_service(app))
                .await
                .unwrap_or_else(|e| die(e));
        } else {
            axum::serve(listener, app).await.unwrap_or_else(|e| die(e));
        }
    });
}
