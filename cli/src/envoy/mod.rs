//! `serve`'s Envoy ext_authz: the gRPC `envoy.service.auth.v3.Authorization/Check` service
//! (with gRPC health on its port), and the `--proxy envoy` HTTP service. Both hand the
//! original request to the library's [`ForwardAuth::decide_request`] and translate its
//! answer; neither decides or words an answer of its own.

pub(crate) mod proto;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use portcullis::AuthError;
use portcullis::forward::{ENVOY_HEADERS_TO_REMOVE, ForwardAuth};
use proto::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderValue, HeaderValueOption, HttpResponse,
    HttpStatus, OVERWRITE_IF_EXISTS_OR_ADD, OkHttpResponse, RpcStatus,
};

/// The gRPC service's full name.
pub(crate) const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// The `Check` method's path.
const CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

/// gRPC `OK`.
const OK: i32 = 0;

/// Counts one answer (the proxy label and HTTP status); see `serve::count_answer`.
pub(crate) type Count = fn(&'static str, http::StatusCode);

/// The decision behind `Check`.
struct Checker {
    forward: ForwardAuth,
    count: Count,
}

impl Checker {
    async fn check(&self, req: CheckRequest) -> CheckResponse {
        let http = req.attributes.and_then(|a| a.request).and_then(|r| r.http);
        let res = match http {
            // No request described: the library's answer for a proxy that sent nothing
            // (500, denied; never OK).
            None => {
                self.forward
                    .decide_request("", "", std::iter::empty::<(&[u8], &[u8])>())
                    .await
            }
            Some(h) => {
                let raw = h.header_map.map(|m| m.headers).unwrap_or_default();
                // Envoy fills one of the two; both are read, so a header sent twice (one
                // in each) is two headers, as the layer sees them.
                let headers = h
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                    .chain(raw.iter().map(raw_pair));
                self.forward
                    .decide_request(&h.method, &h.path, headers)
                    .await
            }
        };
        (self.count)("envoy-grpc", res.status());
        check_response(res).await
    }
}

/// A `header_map` entry: `raw_value` (what `encode_raw_headers` fills), else `value`.
fn raw_pair(h: &HeaderValue) -> (&[u8], &[u8]) {
    let value = if h.raw_value.is_empty() {
        h.value.as_bytes()
    } else {
        &h.raw_value
    };
    (h.key.as_bytes(), value)
}

/// One header for Envoy to set (`OVERWRITE_IF_EXISTS_OR_ADD`: every value the client sent
/// under the name is replaced).
fn set(name: &http::HeaderName, value: &http::HeaderValue) -> HeaderValueOption {
    let (value, raw_value) = match value.to_str() {
        Ok(s) => (s.to_owned(), Vec::new()),
        Err(_) => (String::new(), value.as_bytes().to_vec()),
    };
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.as_str().to_owned(),
            value,
            raw_value,
        }),
        append_action: OVERWRITE_IF_EXISTS_OR_ADD,
    }
}

/// The library's answer as a `CheckResponse`: 200 is `OK` with the identity headers to set
/// and the names to remove; anything else is denied with the answer's status, headers
/// (the challenge, the content type) and body, under the gRPC code of the answer table.
async fn check_response(res: Response<Full<Bytes>>) -> CheckResponse {
    let (parts, body) = res.into_parts();
    if parts.status == http::StatusCode::OK {
        let mut ok = OkHttpResponse::default();
        for (name, value) in &parts.headers {
            if name == ENVOY_HEADERS_TO_REMOVE {
                let list = value.to_str().unwrap_or_default();
                ok.headers_to_remove.extend(
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            } else if name != http::header::CONTENT_LENGTH && name != http::header::CONTENT_TYPE {
                ok.headers.push(set(name, value));
            }
        }
        return CheckResponse {
            status: Some(RpcStatus {
                code: OK,
                message: String::new(),
            }),
            http_response: Some(HttpResponse::OkResponse(ok)),
        };
    }
    let (code, message) = match parts.extensions.get::<AuthError>() {
        Some(e) => (e.grpc_code() as i32, e.message()),
        // An answer without the error (a rejection hook that built its own): denied.
        None => (7, String::from("Insufficient permissions")),
    };
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(never) => match never {},
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != http::header::CONTENT_LENGTH)
        .map(|(name, value)| set(name, value))
        .collect();
    CheckResponse {
        status: Some(RpcStatus {
            code: if code == OK { 7 } else { code },
            message,
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(parts.status.as_u16()),
            }),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })),
    }
}

/// `envoy.service.auth.v3.Authorization` as a tonic service (what tonic's code generator
/// would write for one unary method).
#[derive(Clone)]
pub(crate) struct AuthorizationServer {
    checker: Arc<Checker>,
}

impl AuthorizationServer {
    /// `Check` answered by `forward` (a [`ProxyKind::Envoy`](portcullis::forward::ProxyKind)
    /// decision without a path prefix), each answer counted.
    pub(crate) fn new(forward: ForwardAuth, count: Count) -> Self {
        Self {
            checker: Arc::new(Checker { forward, count }),
        }
    }
}

impl tonic::server::NamedService for AuthorizationServer {
    const NAME: &'static str = SERVICE_NAME;
}

struct CheckSvc(Arc<Checker>);

impl tonic::server::UnaryService<CheckRequest> for CheckSvc {
    type Response = CheckResponse;
    type Future =
        Pin<Box<dyn Future<Output = Result<tonic::Response<CheckResponse>, tonic::Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<CheckRequest>) -> Self::Future {
        let checker = self.0.clone();
        Box::pin(async move {
            let res = checker.check(request.into_inner()).await;
            Ok(tonic::Response::new(res))
        })
    }
}

impl<B> tower_service::Service<http::Request<B>> for AuthorizationServer
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
        if req.uri().path() != CHECK {
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        let checker = self.checker.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(CheckSvc(checker), req).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Field numbers, checked against bytes written by hand from Envoy's protos: an
    /// `OkHttpResponse` with one header (`headers` = 2, `HeaderValueOption.header` = 1,
    /// `HeaderValue.key` = 1, `.value` = 2, `append_action` = 3) and one removal
    /// (`headers_to_remove` = 5).
    #[test]
    fn ok_response_wire_bytes() {
        let ok = OkHttpResponse {
            headers: vec![HeaderValueOption {
                header: Some(HeaderValue {
                    key: "a".into(),
                    value: "b".into(),
                    raw_value: Vec::new(),
                }),
                append_action: OVERWRITE_IF_EXISTS_OR_ADD,
            }],
            headers_to_remove: vec!["c".into()],
        };
        let bytes = ok.encode_to_vec();
        assert_eq!(
            bytes,
            [
                0x12, 0x0a, // headers (2), 10 bytes
                0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // header (1): key, value
                0x18, 0x02, // append_action (3) = 2
                0x2a, 0x01, b'c', // headers_to_remove (5)
            ]
        );
    }

    #[test]
    fn a_check_request_with_header_map_decodes() {
        // CheckRequest{attributes(1){request(4){http(2){method(2) "GET", path(4) "/",
        // header_map(13){headers(1){key(1) "x", raw_value(3) "y"}}}}}}
        let http = [
            &[0x12, 0x03][..],
            b"GET",
            &[0x22, 0x01, b'/'],
            &[0x6a, 0x08, 0x0a, 0x06, 0x0a, 0x01, b'x', 0x1a, 0x01, b'y'],
        ]
        .concat();
        let request = [&[0x12, http.len() as u8][..], &http].concat();
        let attributes = [&[0x22, request.len() as u8][..], &request].concat();
        let check = [&[0x0a, attributes.len() as u8][..], &attributes].concat();
        let req = CheckRequest::decode(&check[..]).unwrap();
        let http = req.attributes.unwrap().request.unwrap().http.unwrap();
        assert_eq!(http.method, "GET");
        assert_eq!(http.path, "/");
        let map = http.header_map.unwrap();
        assert_eq!(map.headers[0].key, "x");
        assert_eq!(map.headers[0].raw_value, b"y");
    }
}
