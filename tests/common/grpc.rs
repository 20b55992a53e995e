//! A gRPC test kit: a generic service that answers any method of its service name, a real
//! tonic server on 127.0.0.1, and a real tonic client. No protoc: messages are prost's
//! `String` (google.protobuf.StringValue on the wire).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// Answers any method: `ServerStream` (and FEDn's server-streaming `TaskStream`,
/// `Download`) streams three messages, `ClientStream` (and FEDn's `Upload`) counts the
/// messages it received, anything else echoes the caller's subject.
#[derive(Clone, Default)]
pub struct AnyMethod;

fn subject<T>(req: &Request<T>) -> String {
    req.extensions()
        .get::<portcullis::Principal>()
        .and_then(|p| p.subject().map(str::to_owned))
        .unwrap_or_else(|| "anonymous".to_owned())
}

impl Service<http::Request<Body>> for AnyMethod {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path().to_owned();
        Box::pin(async move {
            let codec = ProstCodec::<String, String>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            let method = path.rsplit('/').next().unwrap_or("");
            let res = if matches!(method, "ServerStream" | "TaskStream" | "Download") {
                let svc = tower::service_fn(|r: Request<String>| async move {
                    let who = subject(&r);
                    let items = (0..3).map(move |i| Ok::<_, Status>(format!("{who}:{i}")));
                    Ok::<_, Status>(Response::new(tokio_stream::iter(items)))
                });
                grpc.server_streaming(svc, req).await
            } else if matches!(method, "ClientStream" | "Upload") {
                let svc = tower::service_fn(|r: Request<Streaming<String>>| async move {
                    let who = subject(&r);
                    let mut stream = r.into_inner();
                    let mut n = 0;
                    while let Some(item) = stream.next().await {
                        item?;
                        n += 1;
                    }
                    Ok::<_, Status>(Response::new(format!("{who}:{n}")))
                });
                grpc.client_streaming(svc, req).await
            } else {
                let svc = tower::service_fn(|r: Request<String>| async move {
                    Ok::<_, Status>(Response::new(format!("{}:{}", subject(&r), r.get_ref())))
                });
                grpc.unary(svc, req).await
            };
            Ok(res)
        })
    }
}

/// `AnyMethod` under a fixed service name, for tonic's router.
#[derive(Clone, Default)]
pub struct Named<const N: usize>;

/// The service names `Named<N>` stands for.
pub const NAMES: [&str; 5] = [
    "test.v1.Echo",
    "fedn.Combiner",
    "fedn.Connector",
    "fedn.ModelService",
    "grpc.health.v1.Health",
];

macro_rules! named {
    ($($n:literal),*) => {$(
        impl NamedService for Named<$n> {
            const NAME: &'static str = NAMES[$n];
        }
    )*};
}
named!(0, 1, 2, 3, 4);

impl<const N: usize> Service<http::Request<Body>> for Named<N> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        AnyMethod.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        AnyMethod.call(req)
    }
}

/// Starts a tonic server on 127.0.0.1:0 guarded by `layer` (made a gRPC layer with
/// `for_grpc`), or unguarded for `None` (the benches' baseline); returns its address.
pub async fn serve(layer: Option<portcullis::AuthLayer>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder();
    let fut: Pin<Box<dyn Future<Output = _> + Send>> = match layer {
        Some(layer) => Box::pin(
            server
                .layer(layer.for_grpc())
                .add_service(Named::<0>)
                .add_service(Named::<1>)
                .add_service(Named::<2>)
                .add_service(Named::<3>)
                .add_service(Named::<4>)
                .serve_with_incoming(incoming),
        ),
        None => Box::pin(
            tonic::transport::Server::builder()
                .add_service(Named::<0>)
                .add_service(Named::<1>)
                .add_service(Named::<2>)
                .add_service(Named::<3>)
                .add_service(Named::<4>)
                .serve_with_incoming(incoming),
        ),
    };
    tokio::spawn(fut);
    addr
}

/// A client connected to `addr`, with an optional user agent.
pub async fn client(
    addr: std::net::SocketAddr,
    user_agent: Option<&str>,
) -> tonic::client::Grpc<Channel> {
    let mut endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    if let Some(ua) = user_agent {
        endpoint = endpoint.user_agent(ua).unwrap();
    }
    tonic::client::Grpc::new(endpoint.connect().await.unwrap())
}

fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", t.parse().unwrap());
    }
    req
}

/// A unary call of `method` with an optional `authorization` value.
pub async fn unary(
    grpc: &mut tonic::client::Grpc<Channel>,
    method: &str,
    auth: Option<&str>,
) -> Result<String, Status> {
    grpc.ready().await.unwrap();
    let path = PathAndQuery::try_from(method.to_owned()).unwrap();
    grpc.unary(
        with_token("hi".to_owned(), auth),
        path,
        ProstCodec::default(),
    )
    .await
    .map(Response::into_inner)
}

/// A server-streaming call; collects the stream.
pub async fn server_stream(
    grpc: &mut tonic::client::Grpc<Channel>,
    method: &str,
    auth: Option<&str>,
) -> Result<Vec<String>, Status> {
    grpc.ready().await.unwrap();
    let path = PathAndQuery::try_from(method.to_owned()).unwrap();
    let mut stream = grpc
        .server_streaming(
            with_token("hi".to_owned(), auth),
            path,
            ProstCodec::default(),
        )
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item?);
    }
    Ok(out)
}

/// A client-streaming call sending three messages.
pub async fn client_stream(
    grpc: &mut tonic::client::Grpc<Channel>,
    method: &str,
    auth: Option<&str>,
) -> Result<String, Status> {
    grpc.ready().await.unwrap();
    let path = PathAndQuery::try_from(method.to_owned()).unwrap();
    let items = tokio_stream::iter(["a", "b", "c"].map(str::to_owned));
    grpc.client_streaming(with_token(items, auth), path, ProstCodec::default())
        .await
        .map(Response::into_inner)
}
