//! The messages of Envoy's `envoy.service.auth.v3.Authorization/Check`, written by hand with
//! prost derives (no protoc, no build script): only the fields `serve` reads or writes,
//! with the field numbers and types of Envoy's protos. An unknown field (the peer's
//! addresses, the timestamp, metadata...) is skipped by prost as protobuf requires.
//!
//! - `envoy/service/auth/v3/external_auth.proto`: `CheckRequest`, `CheckResponse`,
//!   `DeniedHttpResponse`, `OkHttpResponse`;
//! - `envoy/service/auth/v3/attribute_context.proto`: `AttributeContext`, its `Request`
//!   and `HttpRequest`;
//! - `envoy/config/core/v3/base.proto`: `HeaderValue`, `HeaderValueOption`, `HeaderMap`;
//! - `envoy/type/v3/http_status.proto`: `HttpStatus` (its `StatusCode` enum's numbers are
//!   the HTTP status codes themselves);
//! - `google/rpc/status.proto`: `Status`.
//!
//! `cli/tests/envoy_ext_authz.rs` checks them against Envoy's own generated Python
//! messages (PyPI `xds-protos`).
#![allow(unreachable_pub, dead_code)]

use std::collections::HashMap;

/// `envoy.service.auth.v3.CheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckRequest {
    /// `AttributeContext attributes = 1`.
    #[prost(message, optional, tag = "1")]
    pub attributes: Option<AttributeContext>,
}

/// `envoy.service.auth.v3.AttributeContext` (only `request`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeContext {
    /// `Request request = 4`.
    #[prost(message, optional, tag = "4")]
    pub request: Option<Request>,
}

/// `envoy.service.auth.v3.AttributeContext.Request` (only `http`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// `HttpRequest http = 2`.
    #[prost(message, optional, tag = "2")]
    pub http: Option<HttpRequest>,
}

/// `envoy.service.auth.v3.AttributeContext.HttpRequest` (the fields the decision reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpRequest {
    /// `string method = 2`.
    #[prost(string, tag = "2")]
    pub method: String,
    /// `map<string, string> headers = 3`: lower-case names, repeated headers joined.
    #[prost(map = "string, string", tag = "3")]
    pub headers: HashMap<String, String>,
    /// `string path = 4`: the request target as in the request line, with the query.
    #[prost(string, tag = "4")]
    pub path: String,
    /// `string host = 5`.
    #[prost(string, tag = "5")]
    pub host: String,
    /// `string scheme = 6`.
    #[prost(string, tag = "6")]
    pub scheme: String,
    /// `config.core.v3.HeaderMap header_map = 13`: used instead of `headers` when Envoy's
    /// `encode_raw_headers` is set; repeated headers stay apart.
    #[prost(message, optional, tag = "13")]
    pub header_map: Option<HeaderMap>,
}

/// `envoy.config.core.v3.HeaderMap`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderMap {
    /// `repeated HeaderValue headers = 1`.
    #[prost(message, repeated, tag = "1")]
    pub headers: Vec<HeaderValue>,
}

/// `envoy.config.core.v3.HeaderValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValue {
    /// `string key = 1`.
    #[prost(string, tag = "1")]
    pub key: String,
    /// `string value = 2`.
    #[prost(string, tag = "2")]
    pub value: String,
    /// `bytes raw_value = 3`: what `encode_raw_headers` fills instead of `value`.
    #[prost(bytes = "vec", tag = "3")]
    pub raw_value: Vec<u8>,
}

/// `envoy.config.core.v3.HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD`.
pub const OVERWRITE_IF_EXISTS_OR_ADD: i32 = 2;

/// `envoy.config.core.v3.HeaderValueOption` (without the deprecated `append`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValueOption {
    /// `HeaderValue header = 1`.
    #[prost(message, optional, tag = "1")]
    pub header: Option<HeaderValue>,
    /// `HeaderAppendAction append_action = 3`.
    #[prost(int32, tag = "3")]
    pub append_action: i32,
}

/// `envoy.service.auth.v3.CheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckResponse {
    /// `google.rpc.Status status = 1`: `OK` allows, anything else denies.
    #[prost(message, optional, tag = "1")]
    pub status: Option<RpcStatus>,
    /// `oneof http_response`.
    #[prost(oneof = "HttpResponse", tags = "2, 3")]
    pub http_response: Option<HttpResponse>,
}

/// `CheckResponse.http_response`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HttpResponse {
    /// `DeniedHttpResponse denied_response = 2`.
    #[prost(message, tag = "2")]
    DeniedResponse(DeniedHttpResponse),
    /// `OkHttpResponse ok_response = 3`.
    #[prost(message, tag = "3")]
    OkResponse(OkHttpResponse),
}

/// `envoy.service.auth.v3.DeniedHttpResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeniedHttpResponse {
    /// `type.v3.HttpStatus status = 1`.
    #[prost(message, optional, tag = "1")]
    pub status: Option<HttpStatus>,
    /// `repeated config.core.v3.HeaderValueOption headers = 2`: response headers.
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<HeaderValueOption>,
    /// `string body = 3`.
    #[prost(string, tag = "3")]
    pub body: String,
}

/// `envoy.service.auth.v3.OkHttpResponse` (the fields we write).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OkHttpResponse {
    /// `repeated config.core.v3.HeaderValueOption headers = 2`: request headers to set.
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<HeaderValueOption>,
    /// `repeated string headers_to_remove = 5`: applied after `headers`.
    #[prost(string, repeated, tag = "5")]
    pub headers_to_remove: Vec<String>,
}

/// `envoy.type.v3.HttpStatus`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct HttpStatus {
    /// `StatusCode code = 1` (an enum whose numbers are the HTTP status codes).
    #[prost(int32, tag = "1")]
    pub code: i32,
}

/// `google.rpc.Status` (without `details`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// `int32 code = 1`: a gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// `string message = 2`.
    #[prost(string, tag = "2")]
    pub message: String,
}
