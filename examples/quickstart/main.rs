//! The quickstart: an axum server and a tonic gRPC server on 127.0.0.1, both guarded by
//! one portcullis layer with the FEDn policy plus `GET /me` for any valid token and the
//! quickstart's gRPC methods.
//!
//! ```text
//! cargo run --example quickstart            # dev secret, HTTP on 3000, gRPC on 50051
//! PORT=8080 GRPC_PORT=50052 FEDN_JWT_SECRET_KEY=... FEDN_AUTH_SCHEME=Token cargo run --example quickstart
//! cargo run --example quickstart -- call SayHello "$TOKEN"   # a gRPC client
//! ```
//!
//! It reads every setting of `portcullis::EnvConfig` (FEDn's names and `PORTCULLIS_*`).
//! Without a configured key it generates a development secret. With FEDn's RS256 set-up
//! (`FEDN_JWT_ALGORITHM=RS256`, the PEM public key in `FEDN_JWT_SECRET_KEY`) it mints its
//! example tokens with the development private key in `QUICKSTART_SIGNING_KEY_FILE`. At start it prints curl
//! commands with tokens for admin, client and a role-less caller, each with the answer to
//! expect. A bad configuration makes it exit with the message instead of starting.

mod grpc;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis::{Algorithm, EnvConfig, Principal, Signer};
use serde_json::{Map, Value, json};

fn routes() -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/api/v1/clients/",
            get(|| async { Json(json!({"count": 0, "result": []})) }),
        )
        .route(
            "/api/v1/clients/add",
            post(|| async { Json(json!({"success": true})) }),
        )
        .route(
            "/me",
            get(
                |p: Principal| async move { Json(json!({"sub": p.subject(), "roles": p.roles()})) },
            ),
        )
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn dev_secret(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Puts `value` at a dotted claim path (`realm_access.roles`).
fn set_path(claims: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or(path);
    let mut map = claims;
    for p in parts {
        map = map
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("object on the claim path");
    }
    map.insert(last.to_owned(), value);
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("call") {
        let port = env("GRPC_PORT").unwrap_or_else(|| "50051".to_owned());
        let scheme = env("FEDN_AUTH_SCHEME").unwrap_or_else(|| "Bearer".to_owned());
        let method = args.get(1).map(String::as_str).unwrap_or("");
        let token = args.get(2).map(String::as_str).filter(|t| !t.is_empty());
        return match grpc::call(&format!("127.0.0.1:{port}"), method, token, &scheme).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("quickstart call: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: configuration error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let alg: Algorithm = match env("FEDN_JWT_ALGORITHM") {
        Some(a) => a.parse().map_err(|e| format!("FEDN_JWT_ALGORITHM: {e}"))?,
        None => Algorithm::HS256,
    };
    let mut config = EnvConfig::from_env()?;
    let mut signing_secret = env("FEDN_JWT_SECRET_KEY");
    if !config.has_keys() {
        let secret = dev_secret(64);
        println!(
            "No key configured (FEDN_JWT_SECRET_KEY, PORTCULLIS_PUBLIC_KEY_FILE, PORTCULLIS_JWK_SET_FILE):"
        );
        println!("using a development HMAC secret generated for this run.\n");
        config = config.map_authenticator(|a| a.hmac_secret(&secret).hmac_algorithm(alg));
        signing_secret = Some(secret);
    }
    let policy_extra = config.map_policy(|p| {
        p.allow("GET", "/me", ["*"])
            .public_grpc("/grpc.health.v1.Health/Check")
            .allow_grpc("/quickstart.v1.Greeter/SayHello", ["client", "admin"])
            .allow_grpc("/quickstart.v1.Admin/Stats", ["admin"])
    });
    let unknown = policy_extra.unknown_targets();
    let layer = policy_extra.build_layer()?;
    let scheme = layer.authenticator().scheme().to_owned();

    let mut app = routes();
    if let Some(prefix) = env("FEDN_CUSTOM_URL_PREFIX") {
        app = app.clone().nest(prefix.trim_end_matches('/'), routes());
    }
    // PORTCULLIS_UNKNOWN_TARGETS=pass: the layer wraps only the routes the app serves, so
    // the router answers 404 for the others.
    let app = match unknown {
        portcullis::UnknownTargets::Pass => app.route_layer(layer.clone()),
        _ => app.layer(layer.clone()),
    };

    let port: u16 = match env("PORT") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("PORT: `{p}` is not a port number"))?,
        None => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("PORT: cannot listen on 127.0.0.1:{port}: {e}"))?;
    let base = format!("http://127.0.0.1:{port}");
    let grpc_port: u16 = match env("GRPC_PORT") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("GRPC_PORT: `{p}` is not a port number"))?,
        None => 50051,
    };
    let grpc_listener = tokio::net::TcpListener::bind(("127.0.0.1", grpc_port))
        .await
        .map_err(|e| format!("GRPC_PORT: cannot listen on 127.0.0.1:{grpc_port}: {e}"))?;
    // How to call the gRPC methods: the built-in client, or grpcurl with the proto file.
    let call = "cargo run -q --example quickstart -- call";
    let mut grpc_env = String::new();
    if grpc_port != 50051 {
        grpc_env.push_str(&format!("GRPC_PORT={grpc_port} "));
    }
    if let Some(scheme) = env("FEDN_AUTH_SCHEME") {
        grpc_env.push_str(&format!("FEDN_AUTH_SCHEME={scheme} "));
    }

    println!("portcullis quickstart listening on {base} (HTTP) and 127.0.0.1:{grpc_port} (gRPC)\n");
    println!("# public route, no token needed -> 200");
    println!("curl -i {base}/health\n");
    println!("# no token -> 401 {{\"error\":\"missing_token\",\"message\":\"Missing token\"}}");
    println!("curl -i {base}/me\n");
    // Tokens for the printed commands: signed with the HMAC secret, or, when the keys are
    // public keys (FEDn's RS256 set-up: the PEM public key in FEDN_JWT_SECRET_KEY), with
    // the development private key in QUICKSTART_SIGNING_KEY_FILE.
    let signer = match (&signing_secret, alg) {
        (Some(secret), Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => {
            Some(Signer::hmac(alg, secret)?)
        }
        _ => match env("QUICKSTART_SIGNING_KEY_FILE") {
            Some(path) => {
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    format!("QUICKSTART_SIGNING_KEY_FILE: cannot read `{path}`: {e}")
                })?;
                Some(
                    Signer::from_pem(alg, pem)
                        .map_err(|e| format!("QUICKSTART_SIGNING_KEY_FILE: {e}"))?,
                )
            }
            None => None,
        },
    };
    match signer {
        Some(signer) => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let role_claim = env("PORTCULLIS_ROLE_CLAIM").unwrap_or_else(|| "role".to_owned());
            let mint =
                |sub: &str, role: Option<&str>| -> Result<String, Box<dyn std::error::Error>> {
                    let mut claims = Map::new();
                    claims.insert("sub".into(), json!(sub));
                    claims.insert("iat".into(), json!(now));
                    claims.insert("exp".into(), json!(now + 3600));
                    if let Some(role) = role {
                        set_path(&mut claims, &role_claim, json!(role));
                    }
                    if let (Some(k), Some(v)) = (
                        env("FEDN_JWT_CUSTOM_CLAIM_KEY"),
                        env("FEDN_JWT_CUSTOM_CLAIM_VALUE"),
                    ) {
                        set_path(&mut claims, &k, json!(v));
                    }
                    if let Some(iss) = env("PORTCULLIS_ISSUER") {
                        claims.insert(
                            "iss".into(),
                            json!(iss.split(',').next().unwrap_or("").trim()),
                        );
                    }
                    if let Some(aud) = env("PORTCULLIS_AUDIENCE") {
                        claims.insert(
                            "aud".into(),
                            json!(aud.split(',').next().unwrap_or("").trim()),
                        );
                    }
                    Ok(signer.sign(&Value::Object(claims))?)
                };
            let admin = mint("admin-1", Some("admin"))?;
            let client = mint("client-1", Some("client"))?;
            let nobody = mint("nobody-1", None)?;
            println!("ADMIN='{admin}'");
            println!("CLIENT='{client}'");
            println!("NOROLE='{nobody}'\n");
            println!("# admin lists clients -> 200");
            println!("curl -i -H \"Authorization: {scheme} $ADMIN\" {base}/api/v1/clients/\n");
            println!("# client adds itself -> 200");
            println!(
                "curl -i -X POST -H \"Authorization: {scheme} $CLIENT\" {base}/api/v1/clients/add\n"
            );
            println!(
                "# client lists clients -> 403 {{\"error\":\"insufficient_scope\",\"message\":\"Insufficient permissions\"}}"
            );
            println!("curl -i -H \"Authorization: {scheme} $CLIENT\" {base}/api/v1/clients/\n");
            println!("# any valid token sees itself -> 200 {{\"roles\":[],\"sub\":\"nobody-1\"}}");
            println!("curl -i -H \"Authorization: {scheme} $NOROLE\" {base}/me\n");
            println!("# a role-less caller cannot add a client -> 403");
            println!(
                "curl -i -X POST -H \"Authorization: {scheme} $NOROLE\" {base}/api/v1/clients/add\n"
            );
            println!(
                "# a broken token -> 401 {{\"error\":\"invalid_token\",\"message\":\"Invalid token\"}}"
            );
            println!("curl -i -H \"Authorization: {scheme} $CLIENT\"x {base}/me\n");
            println!(
                "# the scheme alone -> 400 {{\"error\":\"invalid_request\",\"message\":\"Invalid request\"}}"
            );
            println!("curl -i -H \"Authorization: {scheme}\" {base}/me\n");
            match unknown {
                portcullis::UnknownTargets::Pass => {
                    println!(
                        "# a route the app does not serve (PORTCULLIS_UNKNOWN_TARGETS=pass) -> 404"
                    );
                }
                _ => println!("# a route the app does not serve: denied by default -> 403"),
            }
            println!("curl -i -H \"Authorization: {scheme} $CLIENT\" {base}/nowhere\n");
            if let Some(prefix) = env("FEDN_CUSTOM_URL_PREFIX") {
                let prefix = prefix.trim_end_matches('/');
                println!("# every route is also served under FEDN_CUSTOM_URL_PREFIX -> 200");
                println!(
                    "curl -i -X POST -H \"Authorization: {scheme} $CLIENT\" {base}{prefix}/api/v1/clients/add\n"
                );
            }
            println!("## gRPC, with the quickstart's own client (or grpcurl, shown once below)\n");
            println!("# public health check, no token -> OK");
            println!("{grpc_env}{call} Check\n");
            println!("# no token -> UNAUTHENTICATED Missing token");
            println!("{grpc_env}{call} SayHello\n");
            println!("# client greets -> OK");
            println!("{grpc_env}{call} SayHello \"$CLIENT\"\n");
            println!("# admin greets -> OK");
            println!("{grpc_env}{call} SayHello \"$ADMIN\"\n");
            println!(
                "# a role-less caller cannot greet -> PERMISSION_DENIED Insufficient permissions"
            );
            println!("{grpc_env}{call} SayHello \"$NOROLE\"\n");
            println!("# client asks for admin stats -> PERMISSION_DENIED Insufficient permissions");
            println!("{grpc_env}{call} Stats \"$CLIENT\"\n");
            println!("# admin stats -> OK");
            println!("{grpc_env}{call} Stats \"$ADMIN\"\n");
            println!("# the same with grpcurl (not needed for the quickstart):");
            println!(
                "#   grpcurl -plaintext -import-path examples/quickstart -proto quickstart.proto -H \"authorization: {scheme} $CLIENT\" -d '{{\"name\":\"you\"}}' 127.0.0.1:{grpc_port} quickstart.v1.Greeter/SayHello\n"
            );
        }
        None => {
            println!(
                "Keys are public keys or a JWK set: mint tokens with your issuer (or give the"
            );
            println!(
                "quickstart a development private key in QUICKSTART_SIGNING_KEY_FILE), then call"
            );
            println!("curl -i -H \"Authorization: {scheme} $TOKEN\" {base}/me");
            println!("{grpc_env}{call} SayHello \"$TOKEN\"\n");
        }
    }

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<grpc::GreeterServer>().await;
    let state = grpc::State::default();
    let grpc_server = tonic::transport::Server::builder()
        .layer(layer.for_grpc())
        .add_service(health)
        .add_service(grpc::GreeterServer(state.clone()))
        .add_service(grpc::AdminServer(state))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        );
    let http_server = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let (http, grpc) = tokio::join!(http_server, grpc_server);
    http?;
    grpc?;
    Ok(())
}
