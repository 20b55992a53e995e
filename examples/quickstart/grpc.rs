//! The quickstart's gRPC services and client, written by hand in the shape tonic's code
//! generator produces for `quickstart.proto` (so building needs no protoc).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// `quickstart.v1.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloRequest {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
}

/// `quickstart.v1.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloReply {
    #[prost(string, tag = "1")]
    pub(crate) message: String,
}

/// `quickstart.v1.StatsRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatsRequest {}

/// `quickstart.v1.StatsReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatsReply {
    #[prost(uint64, tag = "1")]
    pub(crate) greetings: u64,
}

/// What both services share: a greeting counter.
#[derive(Clone, Default)]
pub(crate) struct State {
    greetings: Arc<AtomicU64>,
}

fn unimplemented() -> http::Response<Body> {
    let mut res = http::Response::new(Body::empty());
    let headers = res.headers_mut();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        "grpc-status",
        http::HeaderValue::from(tonic::Code::Unimplemented as i32),
    );
    res
}

/// The `quickstart.v1.Greeter` service.
#[derive(Clone)]
pub(crate) struct GreeterServer(pub State);

impl NamedService for GreeterServer {
    const NAME: &'static str = "quickstart.v1.Greeter";
}

impl Service<http::Request<Body>> for GreeterServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            if req.uri().path() != "/quickstart.v1.Greeter/SayHello" {
                return Ok(unimplemented());
            }
            let svc = tower::service_fn(move |r: Request<HelloRequest>| {
                let state = state.clone();
                async move {
                    state.greetings.fetch_add(1, Ordering::Relaxed);
                    // The layer put the verified caller into the extensions (with the
                    // `tonic` feature, `portcullis::grpc::principal(&r)` does the same).
                    let who = r
                        .extensions()
                        .get::<portcullis::Principal>()
                        .cloned()
                        .ok_or_else(|| Status::internal("no principal: is the layer in front?"))?;
                    let message = format!(
                        "Hello {}, from {}",
                        r.get_ref().name,
                        who.subject().unwrap_or("?")
                    );
                    Ok::<_, Status>(Response::new(HelloReply { message }))
                }
            });
            let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
            Ok(grpc.unary(svc, req).await)
        })
    }
}

/// The `quickstart.v1.Admin` service.
#[derive(Clone)]
pub(crate) struct AdminServer(pub State);

impl NamedService for AdminServer {
    const NAME: &'static str = "quickstart.v1.Admin";
}

impl Service<http::Request<Body>> for AdminServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            if req.uri().path() != "/quickstart.v1.Admin/Stats" {
                return Ok(unimplemented());
            }
            let svc = tower::service_fn(move |_r: Request<StatsRequest>| {
                let greetings = state.greetings.load(Ordering::Relaxed);
                async move { Ok::<_, Status>(Response::new(StatsReply { greetings })) }
            });
            let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
            Ok(grpc.unary(svc, req).await)
        })
    }
}

/// Calls one quickstart method on `addr` and prints `OK <reply>` or `<CODE> <message>`.
pub(crate) async fn call(
    addr: &str,
    method: &str,
    token: Option<&str>,
    scheme: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    fn request<T>(
        msg: T,
        token: Option<&str>,
        scheme: &str,
    ) -> Result<Request<T>, Box<dyn std::error::Error>> {
        let mut req = Request::new(msg);
        if let Some(t) = token {
            req.metadata_mut()
                .insert("authorization", format!("{scheme} {t}").parse()?);
        }
        Ok(req)
    }
    let outcome = match method {
        "Check" => {
            let req = request(
                tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                },
                token,
                scheme,
            )?;
            let path = PathAndQuery::from_static("/grpc.health.v1.Health/Check");
            grpc.unary::<_, tonic_health::pb::HealthCheckResponse, _>(
                req,
                path,
                ProstCodec::default(),
            )
            .await
            .map(|r| format!("status {}", r.into_inner().status))
        }
        "SayHello" => {
            let req = request(
                HelloRequest {
                    name: "quickstart".into(),
                },
                token,
                scheme,
            )?;
            let path = PathAndQuery::from_static("/quickstart.v1.Greeter/SayHello");
            grpc.unary::<_, HelloReply, _>(req, path, ProstCodec::default())
                .await
                .map(|r| r.into_inner().message)
        }
        "Stats" => {
            let req = request(StatsRequest {}, token, scheme)?;
            let path = PathAndQuery::from_static("/quickstart.v1.Admin/Stats");
            grpc.unary::<_, StatsReply, _>(req, path, ProstCodec::default())
                .await
                .map(|r| format!("greetings {}", r.into_inner().greetings))
        }
        other => {
            return Err(format!("unknown method `{other}`: use Check, SayHello or Stats").into());
        }
    };
    match outcome {
        Ok(reply) => println!("OK {reply}"),
        Err(status) => println!("{} {}", code_name(status.code()), status.message()),
    }
    Ok(())
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        _ => "OTHER",
    }
}
