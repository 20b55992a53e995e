//! The peers of the load bench, each set up as its documentation shows.
//!
//! ```text
//! load-peer serve <jwt-authorizer|tower-oauth2|plain-axum07> <HS256|RS256|ES256|EdDSA> <port>
//! ```
//!
//! The same contract as `load-server` (../servers): `GET /me` answers `{"sub": ...}` on
//! 127.0.0.1, on a current-thread tokio runtime; a token with role `client` passes, a
//! role-less token gets 403, no token 401.
//!
//! - jwt-authorizer 0.15 (axum 0.7, jsonwebtoken 9 on ring): the key from the fixture PEM
//!   (`from_rsa_pem`, `from_ec_pem`, `from_ed_pem`) or the secret (`from_secret`); the
//!   role by its claims checker (`check`, which answers 403).
//! - tower-oauth2-resource-server 0.12 (axum 0.8, jsonwebtoken 11 on aws-lc-rs): an OIDC
//!   tenant discovered from an issuer this process serves on `LOAD_ISSUER` (loopback:
//!   discovery document and JWK set from `LOAD_JWKS_DIR/jwks-<alg>.json`); it validates
//!   `iss` and `exp`, the handler checks the role (the crate leaves authorization to the
//!   application). It has no HMAC: an OIDC resource server takes its keys from a public
//!   JWK set, and the crate excludes HS* by default. `HS256` exits with status 3.
//! - plain axum 0.7: no guard, jwt-authorizer's own baseline.
//!
//! A server exits by itself after `LOAD_MAX_SECONDS` (default 900).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The HS256 secret, the same as load-server's.
const SECRET: &str = "portcullis-load-bench-hs256-secret-0123456789";

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("load-peer: {msg}");
    std::process::exit(2)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| die(format!("{name} is not set")))
}

#[derive(Serialize)]
struct Me {
    sub: String,
}

#[derive(Clone, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> &str {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| die("usage: see the top of benches/load/peers/src/main.rs"))
    };
    if arg(1) != "serve" {
        die("usage: load-peer serve <variant> <alg> <port>");
    }
    let (variant, alg) = (arg(2).to_owned(), arg(3).to_owned());
    let port: u16 = arg(4).parse().unwrap_or_else(|e| die(e));
    if variant == "tower-oauth2" && alg == "HS256" {
        eprintln!(
            "load-peer: tower-oauth2-resource-server verifies keys from a JWK set of an OIDC issuer; no HMAC"
        );
        std::process::exit(3);
    }
    let max: u64 = std::env::var("LOAD_MAX_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(900);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max));
        die(format!("ran {max} s (LOAD_MAX_SECONDS); exiting"));
    });
    if variant == "tower-oauth2" {
        issuer(&alg);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(e));
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| die(format!("bind 127.0.0.1:{port}: {e}")));
        match variant.as_str() {
            "jwt-authorizer" => {
                let app = jwt_authorizer_app(&alg).await;
                axum07::serve(listener, app)
                    .await
                    .unwrap_or_else(|e| die(e));
            }
            "plain-axum07" => {
                let app = axum07::Router::new().route(
                    "/me",
                    axum07::routing::get(|| async {
                        axum07::Json(Me {
                            sub: "anonymous".to_owned(),
                        })
                    }),
                );
                axum07::serve(listener, app)
                    .await
                    .unwrap_or_else(|e| die(e));
            }
            "tower-oauth2" => {
                let app = tower_oauth2_app(&alg).await;
                axum::serve(listener, app).await.unwrap_or_else(|e| die(e));
            }
            other => die(format!("unknown variant {other}")),
        }
    });
}

async fn jwt_authorizer_app(alg: &str) -> axum07::Router {
    use jwt_authorizer::{IntoLayer, JwtAuthorizer, JwtClaims};
    let pem = |stem: &str| format!("{}/{stem}.pub.pem", env("LOAD_FIXTURES"));
    let builder = match alg {
        "HS256" => JwtAuthorizer::<Claims>::from_secret(SECRET),
        "RS256" => JwtAuthorizer::from_rsa_pem(&pem("rsa2048")),
        "ES256" => JwtAuthorizer::from_ec_pem(&pem("p256")),
        "EdDSA" => JwtAuthorizer::from_ed_pem(&pem("ed25519")),
        _ => die(format!("unknown algorithm {alg}")),
    };
    let auth = builder
        .check(|c: &Claims| c.role.as_deref() == Some("client"))
        .build()
        .await
        .unwrap_or_else(|e| die(e));
    axum07::Router::new()
        .route(
            "/me",
            axum07::routing::get(|JwtClaims(c): JwtClaims<Claims>| async move {
                axum07::Json(Me { sub: c.sub })
            }),
        )
        .layer(auth.into_layer())
}

async fn tower_oauth2_app(alg: &str) -> axum::Router {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use tower_oauth2_resource_server::server::OAuth2ResourceServer;
    use tower_oauth2_resource_server::tenant::TenantConfiguration;
    let tenant = TenantConfiguration::builder(env("LOAD_ISSUER"))
        .build()
        .await
        .unwrap_or_else(|e| die(format!("OIDC tenant: {e}")));
    let server = OAuth2ResourceServer::<Claims>::builder()
        .add_tenant(tenant)
        .build()
        .await
        .unwrap_or_else(|e| die(e));
    let _ = alg;
    axum::Router::new()
        .route(
            "/me",
            axum::routing::get(|axum::Extension(c): axum::Extension<Claims>| async move {
                if c.role.as_deref() != Some("client") {
                    return (
                        StatusCode::FORBIDDEN,
                        [(
                            axum::http::header::WWW_AUTHENTICATE,
                            "Bearer error=\"insufficient_scope\"",
                        )],
                    )
                        .into_response();
                }
                axum::Json(Me { sub: c.sub }).into_response()
            }),
        )
        .layer(server.into_layer())
}

/// Serves the OIDC discovery document and the JWK set of `alg` on `LOAD_ISSUER`
/// (`http://127.0.0.1:<port>`), from a thread of its own.
fn issuer(alg: &str) {
    let iss = env("LOAD_ISSUER");
    let port: u16 = iss
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| die("LOAD_ISSUER must be http://127.0.0.1:<port>"));
    let path = format!("{}/jwks-{alg}.json", env("LOAD_JWKS_DIR"));
    let jwks = std::fs::read_to_string(&path).unwrap_or_else(|e| die(format!("{path}: {e}")));
    let discovery = serde_json::json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/jwks"),
    })
    .to_string();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| die(format!("bind 127.0.0.1:{port}: {e}")));
    listener.set_nonblocking(true).unwrap_or_else(|e| die(e));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| die(e));
        rt.block_on(async move {
            let json = |body: String| {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            };
            let app = axum::Router::new()
                .route(
                    "/.well-known/openid-configuration",
                    axum::routing::get(move || {
                        let d = discovery.clone();
                        async move { json(d) }
                    }),
                )
                .route(
                    "/jwks",
                    axum::routing::get(move || {
                        let j = jwks.clone();
                        async move { json(j) }
                    }),
                );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| die(e));
            axum::serve(listener, app).await.unwrap_or_else(|e| die(e));
        });
    });
}
