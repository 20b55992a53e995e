//! The client side: a FEDn-style client calling the quickstart's guarded routes (HTTP and
//! gRPC) through `TokenLayer`, with a token that refreshes.
//!
//! ```text
//! FEDN_JWT_SECRET_KEY=<64 hex chars> cargo run --example quickstart                      # one terminal
//! FEDN_JWT_SECRET_KEY=<the same> cargo run --example client --features client,tonic       # another
//! scripts/check-quickstart.sh client                                                      # both, checked
//! ```
//!
//! It starts its own FEDn-style token endpoint on 127.0.0.1 (`POST /api/auth/refresh`, JSON
//! `{"refresh": ...}` answered by `{"access": ...}`), minting client tokens with the
//! quickstart's secret (`FEDN_JWT_SECRET_KEY`, HMAC with `FEDN_JWT_ALGORITHM`). It then
//! calls the quickstart at `QUICKSTART_URL` (default `http://127.0.0.1:$PORT`, port 3000)
//! and `GRPC_PORT` (50051) and prints each call with the answer it expects, like the
//! quickstart does; it exits with an error when an answer differs. `FEDN_AUTH_SCHEME` is
//! honoured as by the quickstart.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis::client::{Environment, FednRefresh, Refreshing, Token, TokenLayer};
use portcullis::{Algorithm, Signer};
use serde_json::{Map, Value, json};
use tower::{Layer, Service, ServiceExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mints client tokens the quickstart accepts.
#[derive(Clone)]
struct Minter {
    signer: Signer,
}

impl Minter {
    fn from_env() -> Result<Self, Error> {
        let secret = env("FEDN_JWT_SECRET_KEY").ok_or(
            "FEDN_JWT_SECRET_KEY: unset; give the client the quickstart's secret (its token endpoint signs with it)",
        )?;
        let alg: Algorithm = match env("FEDN_JWT_ALGORITHM") {
            Some(a) => a.parse().map_err(|e| format!("FEDN_JWT_ALGORITHM: {e}"))?,
            None => Algorithm::HS256,
        };
        Ok(Self {
            signer: Signer::hmac(alg, secret)?,
        })
    }

    fn mint(&self, exp: u64) -> Result<String, Error> {
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("client-1"));
        claims.insert("role".into(), json!("client"));
        claims.insert("iat".into(), json!(now()));
        claims.insert("exp".into(), json!(exp));
        if let (Some(k), Some(v)) = (
            env("FEDN_JWT_CUSTOM_CLAIM_KEY"),
            env("FEDN_JWT_CUSTOM_CLAIM_VALUE"),
        ) {
            claims.insert(k, json!(v));
        }
        Ok(self.signer.sign(&Value::Object(claims))?)
    }
}

/// A FEDn-style token endpoint on 127.0.0.1; returns its URL and its refresh counter.
async fn token_endpoint(
    minter: Minter,
    refresh_token: String,
) -> Result<(String, Arc<AtomicUsize>), Error> {
    let refreshes = Arc::new(AtomicUsize::new(0));
    let count = refreshes.clone();
    let app = Router::new().route(
        "/api/auth/refresh",
        post(move |Json(body): Json<Value>| {
            let (minter, refresh_token, count) =
                (minter.clone(), refresh_token.clone(), count.clone());
            async move {
                if body["refresh"].as_str() != Some(refresh_token.as_str()) {
                    return Err((
                        http::StatusCode::UNAUTHORIZED,
                        Json(json!({"message": "Invalid refresh token"})),
                    ));
                }
                count.fetch_add(1, Ordering::SeqCst);
                let access = minter.mint(now() + 3600).map_err(|_| {
                    (
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        Json(json!({"message": "cannot mint"})),
                    )
                })?;
                Ok(Json(json!({"access": access})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/auth/refresh", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, refreshes))
}

/// Counts the calls whose answer is not the one promised.
#[derive(Default)]
struct Checks {
    failed: usize,
}

impl Checks {
    fn check(&mut self, what: &str, expect: &str, got: &str) {
        println!("# {what} -> {expect}");
        if got.starts_with(expect) {
            println!("{got}\n");
        } else {
            println!("FAIL: got {got}\n");
            self.failed += 1;
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            eprintln!("client: {n} answers differed from the expected ones");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<usize, Error> {
    let port = env("PORT").unwrap_or_else(|| "3000".into());
    let base = env("QUICKSTART_URL").unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let grpc_port = env("GRPC_PORT").unwrap_or_else(|| "50051".into());
    let scheme = env("FEDN_AUTH_SCHEME").unwrap_or_else(|| "Bearer".into());
    let minter = Minter::from_env()?;
    let mut refresh_bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut refresh_bytes).map_err(|_| "no system randomness")?;
    let refresh_token: String = refresh_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let (refresh_uri, refreshes) = token_endpoint(minter.clone(), refresh_token.clone()).await?;
    let expired = minter.mint(now() - 3600)?;
    let mut checks = Checks::default();
    println!(
        "client: calling {base} and gRPC on 127.0.0.1:{grpc_port}; token endpoint {refresh_uri}\n"
    );

    // 1. A token the client cannot see the expiry of (an opaque token to it), already
    // expired: the quickstart answers 401 `Token expired`, the layer refreshes through
    // FEDn's protocol once and sends the request again.
    let source = Refreshing::builder(FednRefresh::new(&refresh_uri, &refresh_token)?)
        .initial_token(Some(Token::new(expired.clone()).with_expires_at(None)))
        .build();
    let layer = TokenLayer::new(source.clone()).scheme(&scheme);
    let mut http = layer.layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let mut send = async |method: &str, path: &str, body: &str| -> Result<String, Error> {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))?;
        let res = http.ready().await?.call(req).await?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok(format!("{status} {}", String::from_utf8_lossy(&body)))
    };
    let got = send("POST", "/api/v1/clients/add", r#"{"name":"client-1"}"#).await?;
    let n = refreshes.load(Ordering::SeqCst);
    checks.check(
        "an expired token: `Token expired`, one refresh, the retry adds the client",
        "200 refreshes=1",
        &format!("{} refreshes={n} {}", &got[..3], &got[4..]),
    );
    let got = send("GET", "/me", "").await?;
    checks.check(
        "the refreshed token again, no refresh",
        "200 {\"roles\":[\"client\"],\"sub\":\"client-1\"}",
        &got,
    );
    let got = send("GET", "/api/v1/clients/", "").await?;
    checks.check("a client lists clients", "403", &got);

    // 2. The same source on a tonic channel: the quickstart's Greeter/SayHello.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc_port}"))?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(layer.layer(channel));
    grpc.ready().await?;
    let got = match grpc
        .unary(
            tonic::Request::new("client-1".to_owned()),
            http::uri::PathAndQuery::from_static("/quickstart.v1.Greeter/SayHello"),
            tonic_prost::ProstCodec::<String, String>::default(),
        )
        .await
    {
        Ok(reply) => format!("OK {}", reply.into_inner()),
        Err(status) => format!("{:?} {}", status.code(), status.message()),
    };
    checks.check("gRPC SayHello through the layer", "OK", &got);
    checks.check(
        "still one refresh in all",
        "refreshes=1",
        &format!("refreshes={}", refreshes.load(Ordering::SeqCst)),
    );

    // 3. FEDn's variables: `FEDN_AUTH_TOKEN=Bearer <expired JWT>`; its `exp` is readable,
    // so the token is refreshed before anything is sent.
    let vars = [
        ("FEDN_AUTH_TOKEN", format!("Bearer {expired}")),
        ("FEDN_AUTH_REFRESH_TOKEN_URI", refresh_uri.clone()),
        ("FEDN_AUTH_REFRESH_TOKEN", refresh_token.clone()),
        ("FEDN_AUTH_SCHEME", scheme.clone()),
    ];
    let fedn_env = Environment::from_lookup(move |n| {
        vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone())
    });
    let client = TokenLayer::fedn(&fedn_env)?
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let res = client
        .oneshot(http::Request::get(format!("{base}/me")).body(Full::new(Bytes::new()))?)
        .await?;
    checks.check(
        "FEDN_AUTH_TOKEN expired by its exp: refreshed before sending",
        "200 refreshes=2",
        &format!(
            "{} refreshes={}",
            res.status().as_u16(),
            refreshes.load(Ordering::SeqCst)
        ),
    );

    // 4. A refresh token the endpoint refuses: the clear error, and no loop.
    let revoked = Refreshing::builder(FednRefresh::new(&refresh_uri, "revoked")?)
        .initial_token(Some(Token::new(expired)))
        .build();
    let client = TokenLayer::new(revoked)
        .scheme(&scheme)
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let got = match client
        .oneshot(http::Request::get(format!("{base}/me")).body(Full::new(Bytes::new()))?)
        .await
    {
        Ok(res) => format!("{}", res.status().as_u16()),
        Err(e) => format!("error: {e}"),
    };
    checks.check(
        "a refused refresh token",
        "error: refresh token invalid or expired, log in again",
        &got,
    );
    Ok(checks.failed)
}
