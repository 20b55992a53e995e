//! The load run of BENCHMARKS.md for Envoy's gRPC ext_authz (`scripts/bench-ext-authz.sh`
//! runs it): a bounded client and the bare server it is compared with.
//!
//! ```text
//! ext_authz_load bare ADDR
//!     a tonic server whose Check answers OK (an empty OkHttpResponse) to everything: the
//!     baseline, the same messages and the same tonic, without a decision
//! ext_authz_load load ADDR SECONDS STREAMS CONNECTIONS TOKEN EXPECT
//!     STREAMS concurrent Check calls (each stream sends its next request when the answer
//!     came) over CONNECTIONS HTTP/2 connections for SECONDS; every answer is checked:
//!     EXPECT `ok` wants status OK, `subject=NAME` wants OK with X-Auth-Subject NAME set.
//!     Prints one JSON line: requests, wrong answers, errors, requests/s.
//! ```

#[allow(missing_docs)]
#[path = "../src/envoy/proto.rs"]
mod proto;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use proto::{
    AttributeContext, CheckRequest, CheckResponse, HttpRequest, HttpResponse, OkHttpResponse,
    Request, RpcStatus,
};

const CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The baseline: `Check` answers OK, nothing else.
#[derive(Clone)]
struct Bare;

impl tonic::server::NamedService for Bare {
    const NAME: &'static str = "envoy.service.auth.v3.Authorization";
}

struct BareCheck;

impl tonic::server::UnaryService<CheckRequest> for BareCheck {
    type Response = CheckResponse;
    type Future = std::future::Ready<Result<tonic::Response<CheckResponse>, tonic::Status>>;

    fn call(&mut self, _request: tonic::Request<CheckRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(CheckResponse {
            status: Some(RpcStatus {
                code: 0,
                message: String::new(),
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
        })))
    }
}

impl<B> tower_service::Service<http::Request<B>> for Bare
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(BareCheck, req).await)
        })
    }
}

fn check_request(token: &str) -> CheckRequest {
    let mut headers = std::collections::HashMap::new();
    headers.insert(":method".to_owned(), "GET".to_owned());
    headers.insert(":path".to_owned(), "/api/items?page=2".to_owned());
    headers.insert(":authority".to_owned(), "app.example.com".to_owned());
    headers.insert("authorization".to_owned(), format!("Bearer {token}"));
    headers.insert("user-agent".to_owned(), "ext_authz_load".to_owned());
    headers.insert("x-auth-subject".to_owned(), "forged".to_owned());
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    headers,
                    path: "/api/items?page=2".into(),
                    host: "app.example.com".into(),
                    scheme: "https".into(),
                    header_map: None,
                }),
            }),
        }),
    }
}

/// Whether `res` is the answer `expect` asks for.
fn right(res: &CheckResponse, expect: &str) -> bool {
    if res.status.as_ref().map(|s| s.code) != Some(0) {
        return false;
    }
    let Some(HttpResponse::OkResponse(ok)) = &res.http_response else {
        return false;
    };
    match expect.strip_prefix("subject=") {
        None => expect == "ok",
        Some(subject) => ok.headers.iter().any(|o| {
            o.header
                .as_ref()
                .is_some_and(|h| h.key == "x-auth-subject" && h.value == subject)
        }),
    }
}

async fn load(
    addr: SocketAddr,
    seconds: u64,
    streams: usize,
    connections: usize,
    token: String,
    expect: String,
) {
    let request = check_request(&token);
    let done = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut channels = Vec::new();
    for _ in 0..connections.max(1) {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        channels.push(channel);
    }
    let path = http::uri::PathAndQuery::from_static(CHECK);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..streams {
        let channel = channels[i % channels.len()].clone();
        let (done, total, wrong, errors) =
            (done.clone(), total.clone(), wrong.clone(), errors.clone());
        let (request, expect, path) = (request.clone(), expect.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            while !done.load(Ordering::Relaxed) {
                if grpc.ready().await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let codec = tonic_prost::ProstCodec::<CheckRequest, CheckResponse>::default();
                match grpc
                    .unary(tonic::Request::new(request.clone()), path.clone(), codec)
                    .await
                {
                    Ok(res) => {
                        if !right(res.get_ref(), &expect) {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                total.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = total.load(Ordering::Relaxed);
    println!(
        "{{\"requests\": {n}, \"wrong\": {}, \"errors\": {}, \"seconds\": {elapsed:.2}, \"rps\": {:.0}}}",
        wrong.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        n as f64 / elapsed
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: ext_authz_load bare ADDR | load ADDR SECONDS STREAMS CONNECTIONS TOKEN EXPECT";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.get(1).map(String::as_str) {
        Some("bare") => {
            let addr: SocketAddr = args.get(2).expect(usage).parse().expect("ADDR");
            rt.block_on(async move {
                tonic::transport::Server::builder()
                    .add_service(Bare)
                    .serve(addr)
                    .await
                    .expect("serve");
            });
        }
        Some("load") if args.len() == 8 => {
            let addr: SocketAddr = args[2].parse().expect("ADDR");
            let seconds = args[3].parse().expect("SECONDS");
            let streams = args[4].parse().expect("STREAMS");
            let connections = args[5].parse().expect("CONNECTIONS");
            rt.block_on(load(
                addr,
                seconds,
                streams,
                connections,
                args[6].clone(),
                args[7].clone(),
            ));
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
