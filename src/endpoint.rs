//! What the compatibility endpoints (`revoke::AdminApi`, `authress::CheckApi`,
//! `kamiwaza::KamiwazaApi`) share: one way to write a JSON answer.

use axum::body::Body;
use axum::response::Response;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};

/// `body` with `status` as `content_type` (`application/json` and its kin).
pub(crate) fn json(
    status: StatusCode,
    content_type: &'static str,
    body: &serde_json::Value,
) -> Response {
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}
