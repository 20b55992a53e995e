//! Remote keys for real: an in-process OpenID Connect issuer serves its discovery document
//! and JWK set on 127.0.0.1, signs tokens with an ES256 key generated at start, and an axum
//! API verifies them through OIDC discovery and the cached remote key set.
//!
//! ```text
//! cargo run --example remote_keys             # API on port 3000, issuer on a free port
//! PORT=8080 cargo run --example remote_keys
//! scripts/check-quickstart.sh remote_keys     # runs every printed curl command
//! ```
//!
//! At start it prints the issuer's URLs and curl commands with tokens, each with the
//! answer to expect. `PORTCULLIS_JWKS_TTL_SECONDS` and `PORTCULLIS_JWKS_COOLDOWN_SECONDS`
//! tune the cache as they do for `EnvConfig`.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::http::header::CACHE_CONTROL;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis::{Algorithm, AuthLayer, Authenticator, JwksOptions, Policy, Principal, Signer};
use serde_json::{Value, json};

const AUDIENCE: &str = "portcullis-demo";

/// An ES256 key pair: a signer for tokens (with `kid`) and the public JWK.
fn generate_key(kid: &str) -> Result<(Signer, Value), Box<dyn std::error::Error>> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?;
    let der = pair.to_pkcs8v1()?;
    let b64 = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line)?);
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    Ok((Signer::from_pem(Algorithm::ES256, pem)?.kid(kid), jwk))
}

fn seconds(name: &str) -> Result<Option<Duration>, String> {
    match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(|n| Some(Duration::from_secs(n)))
            .map_err(|_| format!("{name}: `{v}` is not a whole number of seconds")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remote_keys: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The issuer: discovery document and JWK set on a free loopback port.
    let issuer_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let iss = format!("http://{}", issuer_listener.local_addr()?);
    let (signer, jwk) = generate_key("demo-key-1")?;
    // A key the issuer never publishes, for the rogue token.
    let (rogue, _) = generate_key("not-published")?;
    let discovery = json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks.json")});
    let jwks = json!({"keys": [jwk]});
    let issuer_app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route(
            "/jwks.json",
            get(move || async move { ([(CACHE_CONTROL, "public, max-age=300")], Json(jwks)) }),
        );
    tokio::spawn(async move { axum::serve(issuer_listener, issuer_app).await });

    // The API: keys by OIDC discovery from the issuer, fetched once at start.
    let mut options = JwksOptions::new();
    if let Some(ttl) = seconds("PORTCULLIS_JWKS_TTL_SECONDS")? {
        options = options.ttl(ttl);
    }
    if let Some(cooldown) = seconds("PORTCULLIS_JWKS_COOLDOWN_SECONDS")? {
        options = options.cooldown(cooldown);
    }
    let auth = Authenticator::builder()
        .oidc_issuer(&iss)
        .audience(AUDIENCE)
        .jwks_options(options)
        .build()?;
    auth.load_keys().await?;
    let policy = Policy::builder()
        .allow("GET", "/me", ["*"])
        .allow("GET", "/admin", ["admin"])
        .public_prefix("/health")
        .build()?;
    let app = Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/me",
            get(
                |p: Principal| async move { Json(json!({"sub": p.subject(), "roles": p.roles()})) },
            ),
        )
        .route("/admin", get(|| async { Json(json!({"admin": true})) }))
        .layer(AuthLayer::new(auth, policy));

    let port: u16 = match std::env::var("PORT").ok().filter(|p| !p.trim().is_empty()) {
        Some(p) => p
            .trim()
            .parse()
            .map_err(|_| format!("PORT: `{p}` is not a port number"))?,
        None => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("PORT: cannot listen on 127.0.0.1:{port}: {e}"))?;
    let base = format!("http://127.0.0.1:{port}");

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mint = |signer: &Signer, sub: &str, role: &str, aud: &str| {
        signer.sign(&json!({
            "iss": iss, "aud": aud, "sub": sub, "role": role, "iat": now, "exp": now + 3600,
        }))
    };
    let admin = mint(&signer, "admin-1", "admin", AUDIENCE)?;
    let client = mint(&signer, "client-1", "client", AUDIENCE)?;
    let other_aud = mint(&signer, "client-1", "client", "another-api")?;
    let rogue = mint(&rogue, "mallory", "admin", AUDIENCE)?;

    println!("portcullis remote_keys listening on {base}");
    println!("issuer {iss}: discovery at {iss}/.well-known/openid-configuration\n");
    println!("ADMIN='{admin}'");
    println!("CLIENT='{client}'");
    println!("OTHER_AUD='{other_aud}'");
    println!("ROGUE='{rogue}'\n");
    println!("# the issuer's public key set -> 200");
    println!("curl -i {iss}/jwks.json\n");
    println!("# public route, no token needed -> 200");
    println!("curl -i {base}/health\n");
    println!("# no token -> 401 {{\"error\":\"missing_token\",\"message\":\"Missing token\"}}");
    println!("curl -i {base}/me\n");
    println!("# admin token, verified with the issuer's published key -> 200");
    println!("curl -i -H \"Authorization: Bearer $ADMIN\" {base}/admin\n");
    println!("# client token sees itself -> 200 {{\"roles\":[\"client\"],\"sub\":\"client-1\"}}");
    println!("curl -i -H \"Authorization: Bearer $CLIENT\" {base}/me\n");
    println!(
        "# client token on an admin route -> 403 {{\"error\":\"insufficient_scope\",\"message\":\"Insufficient permissions\"}}"
    );
    println!("curl -i -H \"Authorization: Bearer $CLIENT\" {base}/admin\n");
    println!(
        "# a token for another audience -> 401 {{\"error\":\"invalid_token\",\"message\":\"Invalid token\"}}"
    );
    println!("curl -i -H \"Authorization: Bearer $OTHER_AUD\" {base}/me\n");
    println!("# signed by a key the issuer never published: one refetch, then 401");
    println!("# (more unknown kids within the cooldown refetch nothing) -> 401");
    println!("curl -i -H \"Authorization: Bearer $ROGUE\" {base}/admin\n");

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
