//! The answer table, precomputed: for each row (a kind with its fixed message), the HTTP
//! status, the JSON body, the `WWW-Authenticate` challenge with the authenticator's scheme
//! and realm, and the gRPC status and message.
//!
//! Bodies and challenges are fixed per row, so they are built once per authenticator (with
//! one answer more per message its issuer rules refuse with); a
//! rejection then costs only the response itself (its header map; the [`AuthError`] goes
//! into its extensions only when the layer was asked to attach it). Floods of requests without a token are the cheapest attack, and they
//! are answered from here.
//!
//! ```
//! use portcullis::{AuthLayer, Authenticator, Policy};
//! use tower::{Layer, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").realm("docs").build()?;
//! let svc = AuthLayer::new(auth, Policy::builder().build()?).layer(tower::service_fn(
//!     |_req: http::Request<String>| async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) },
//! ));
//! let res = svc.oneshot(http::Request::get("/x").body(String::new())?).await?;
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="docs""#);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::AuthBody;
use crate::error::{self, AuthError, AuthErrorKind, Row};

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const GRPC: HeaderValue = HeaderValue::from_static("application/grpc");

#[derive(Clone)]
struct Answer {
    status: StatusCode,
    body: Bytes,
    challenge: Option<HeaderValue>,
    grpc_status: HeaderValue,
    grpc_message: HeaderValue,
}

/// The precomputed answers of one authenticator (its scheme and realm).
pub(crate) struct Answers {
    scheme: Arc<str>,
    realm: Box<str>,
    /// The RFC 9728 metadata URL every challenge names, when a layer set one.
    resource_metadata: Option<Box<str>>,
    rows: Vec<Answer>,
    /// The refusals of issuer rules (401 `invalid_token`), by message.
    refusals: Vec<(&'static str, Answer)>,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers")
            .field("scheme", &self.scheme)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// A header value built once, shared by every clone from then on.
fn shared(value: HeaderValue) -> HeaderValue {
    let _ = value.clone();
    value
}

impl Answers {
    /// Precomputes every row for `scheme` and `realm` (already validated: a header-safe
    /// token and a quoted-string body), and the refusals of the issuer rules with these
    /// `refusals` messages.
    pub(crate) fn new(scheme: &str, realm: &str, refusals: &[&'static str]) -> Self {
        Self::build(scheme, realm, None, refusals.iter().copied())
    }

    fn build(
        scheme: &str,
        realm: &str,
        resource_metadata: Option<&str>,
        refusals: impl Iterator<Item = &'static str>,
    ) -> Self {
        let challenge = Challenge {
            scheme,
            realm,
            resource_metadata,
        };
        let rows = Row::ALL
            .iter()
            .map(|&row| answer(row.kind(), &row.message(scheme), &challenge))
            .collect();
        let mut rule_rows: Vec<(&'static str, Answer)> = Vec::new();
        for message in refusals {
            if !rule_rows.iter().any(|(m, _)| *m == message) {
                let a = answer(AuthErrorKind::InvalidToken, message, &challenge);
                rule_rows.push((message, a));
            }
        }
        Self {
            scheme: scheme.into(),
            realm: realm.into(),
            resource_metadata: resource_metadata.map(Into::into),
            rows,
            refusals: rule_rows,
        }
    }

    /// The same answers with every challenge naming `url` in a `resource_metadata`
    /// parameter (RFC 9728 section 5.1), precomputed like the table: `url` is already
    /// checked to be a quoted-string body (visible ASCII, no `"` or `\\`).
    pub(crate) fn with_resource_metadata(&self, url: &str) -> Self {
        Self::build(
            &self.scheme,
            &self.realm,
            Some(url),
            self.refusals.iter().map(|(m, _)| *m),
        )
    }

    fn row(&self, err: &AuthError) -> Cow<'_, Answer> {
        let Some(message) = err.rule_message() else {
            return Cow::Borrowed(&self.rows[err.row() as usize]);
        };
        match self.refusals.iter().find(|(m, _)| *m == message) {
            Some((_, a)) => Cow::Borrowed(a),
            // A refusal this authenticator's rules do not make (another's error), or a
            // sender-constraint refusal (its body names its own error code; the layer
            // sets its `DPoP` challenge).
            None => {
                let mut a = answer(
                    err.kind(),
                    message,
                    &Challenge {
                        scheme: &self.scheme,
                        realm: &self.realm,
                        resource_metadata: self.resource_metadata.as_deref(),
                    },
                );
                if err.sender_code().is_some() {
                    a.body = Bytes::from(err.body());
                }
                Cow::Owned(a)
            }
        }
    }

    pub(crate) fn scheme(&self) -> &Arc<str> {
        &self.scheme
    }

    pub(crate) fn realm(&self) -> &str {
        &self.realm
    }

    /// The `WWW-Authenticate` value for `err`, if its row carries one.
    pub(crate) fn challenge(&self, err: &AuthError) -> Option<&HeaderValue> {
        // Rows of one kind share their challenge.
        self.rows[err.row() as usize].challenge.as_ref()
    }

    /// The HTTP answer for `err`: status, `WWW-Authenticate`, JSON body, and the error in
    /// the response extensions (what a layer in front reads of a rejection made behind it).
    pub(crate) fn http<B>(&self, err: &AuthError) -> Response<AuthBody<B>> {
        let mut res = self.http_bare(err);
        res.extensions_mut().insert(err.clone());
        res
    }

    /// The HTTP answer for `err` without the error in its extensions: the response alone
    /// (its header map), nothing more allocated.
    pub(crate) fn http_bare<B>(&self, err: &AuthError) -> Response<AuthBody<B>> {
        let row = self.row(err);
        let mut res = Response::new(AuthBody::full(row.body.clone()));
        *res.status_mut() = row.status;
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, JSON);
        if let Some(challenge) = &row.challenge {
            headers.insert(WWW_AUTHENTICATE, challenge.clone());
        }
        res
    }

    /// The gRPC answer for `err`: a trailers-only response (HTTP 200, `grpc-status` and
    /// `grpc-message` in the headers, no body), without the error in its extensions.
    /// `content_type` is the request's (a gRPC-web client expects its own back), or
    /// `application/grpc` when `None`.
    pub(crate) fn grpc<B>(
        &self,
        err: &AuthError,
        content_type: Option<&HeaderValue>,
    ) -> Response<AuthBody<B>> {
        let row = self.row(err);
        let mut res = Response::new(AuthBody::empty());
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, content_type.cloned().unwrap_or(GRPC));
        headers.insert("grpc-status", row.grpc_status.clone());
        headers.insert("grpc-message", row.grpc_message.clone());
        res
    }
}

/// What every challenge of one set of answers names.
struct Challenge<'a> {
    scheme: &'a str,
    realm: &'a str,
    resource_metadata: Option<&'a str>,
}

/// The answer of `kind` with `message`, with `challenge`'s scheme, realm and metadata URL.
fn answer(kind: AuthErrorKind, message: &str, challenge: &Challenge<'_>) -> Answer {
    let Challenge {
        scheme,
        realm,
        resource_metadata,
    } = *challenge;
    let body = Bytes::from(error::body(kind, message));
    // `Bytes` from a `Vec` turns shared on its first clone: do it here, once.
    let _ = body.clone();
    let challenge = match kind.status() {
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::INTERNAL_SERVER_ERROR => None,
        _ => {
            let mut value = match kind.rfc6750_code() {
                Some(code) => format!(r#"{scheme} realm="{realm}", error="{code}""#),
                None => format!(r#"{scheme} realm="{realm}""#),
            };
            if let Some(url) = resource_metadata {
                value.push_str(&format!(r#", resource_metadata="{url}""#));
            }
            HeaderValue::from_str(&value).ok().map(shared)
        }
    };
    Answer {
        status: kind.status(),
        body,
        challenge,
        grpc_status: HeaderValue::from(kind.grpc_code() as u16),
        // The fixed messages are printable ASCII without `%`: no encoding needed.
        grpc_message: shared(
            HeaderValue::from_str(message).unwrap_or(HeaderValue::from_static("Invalid token")),
        ),
    }
}

/// The HTTP answer for `err` without an authenticator at hand (no challenge: the layer in
/// front adds its own to responses that carry an [`AuthError`]).
pub(crate) fn plain<B>(err: &AuthError) -> Response<AuthBody<B>> {
    let mut res = Response::new(AuthBody::full(Bytes::from(err.body())));
    *res.status_mut() = err.status();
    res.headers_mut().insert(CONTENT_TYPE, JSON);
    res.extensions_mut().insert(err.clone());
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;

    fn refusal(message: &'static str) -> AuthError {
        AuthError::invalid_token(Reason::IssuerRule {
            message,
            detail: "a rule's detail",
        })
    }

    #[test]
    fn issuer_rule_refusals_are_invalid_token_with_their_message() {
        let answers = Answers::new("Bearer", "api", &["Token has no kid", "Token has no kid"]);
        assert_eq!(answers.refusals.len(), 1);
        // Precomputed, or built for a message this authenticator does not know: the same.
        for message in ["Token has no kid", "Token is someone else's"] {
            let err = refusal(message);
            let res = answers.http::<String>(&err);
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                res.headers()[WWW_AUTHENTICATE],
                r#"Bearer realm="api", error="invalid_token""#
            );
            let body = serde_json::json!({"error": "invalid_token", "message": message});
            assert_eq!(err.body(), body.to_string());
            assert_eq!(err.message(), message);
            assert_eq!(err.to_string(), "a rule's detail");
            let res = answers.grpc::<String>(&err, None);
            assert_eq!(res.headers()["grpc-status"], "16");
            assert_eq!(res.headers()["grpc-message"], message);
        }
        let body = answers.row(&refusal("Token has no kid")).body.clone();
        assert_eq!(
            body,
            r#"{"error":"invalid_token","message":"Token has no kid"}"#
        );
    }
}
